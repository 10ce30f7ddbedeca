//! Cursor pagination: walking every page never repeats or skips an item, for every sort.

mod common;

use std::collections::HashSet;

use common::*;
use search::catalog::listed_products;
use search::{MAX_PAGE_SIZE, ProductFilter, ProductIndex, ProductQuery, SearchError, SortOrder};
use uuid::Uuid;

fn generated_index(count: usize) -> ProductIndex {
    let products: Vec<_> = listed_products(42, count, 20).collect();
    let mut events = listing_events(&products);
    // Reviews and equal prices make ties, which the id must break.
    for (i, p) in products.iter().enumerate().step_by(3) {
        let review = Uuid::now_v7();
        let n = events.len() as u64 + 1;
        events.push(recorded(n, review_stream(review), &review_approved(review, p.product_id, (i % 5 + 1) as u8)));
        let n = events.len() as u64 + 1;
        events.push(recorded(n, product_stream(p.product_id), &price_changed(1_000)));
    }
    // Several commits: several segments.
    let index = ProductIndex::in_memory().unwrap();
    let mut indexer = search::Indexer::open(&index, search::CommitPolicy::live()).unwrap();
    for chunk in events.chunks(97) {
        for event in chunk {
            indexer.apply(event).unwrap();
        }
        indexer.commit().unwrap();
    }
    index
}

fn walk(index: &ProductIndex, mut query: ProductQuery) -> (Vec<Uuid>, u64) {
    let mut seen = Vec::new();
    let mut total = None;
    loop {
        let page = index.search(&query).unwrap();
        assert!(page.hits.len() <= query.first.min(MAX_PAGE_SIZE));
        assert_eq!(*total.get_or_insert(page.total), page.total, "total changes between pages");
        seen.extend(page.hits.iter().map(|h| h.product_id));
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(Some(&cursor), page.hits.last().map(|h| &h.cursor));
                query.after = Some(cursor);
            }
            None => break,
        }
    }
    (seen, total.unwrap_or(0))
}

#[test]
fn walking_all_pages_never_repeats_or_skips_for_every_sort() {
    let index = generated_index(700);
    let texts = ["", "wireless ", "lamp", "oak desk ", "headphnes ", "steel kettle bamboo "];
    let filters = [
        ProductFilter::default(),
        ProductFilter { in_stock: Some(true), ..Default::default() },
        ProductFilter { price_max_cents: Some(5_000), ..Default::default() },
    ];
    for sort in [SortOrder::Relevance, SortOrder::PriceAsc, SortOrder::PriceDesc, SortOrder::Newest, SortOrder::Rating]
    {
        for text in texts {
            for filter in &filters {
                let query =
                    ProductQuery { text: text.into(), filter: filter.clone(), sort, first: 7, ..Default::default() };
                let (seen, total) = walk(&index, query.clone());
                let unique: HashSet<&Uuid> = seen.iter().collect();
                assert_eq!(unique.len(), seen.len(), "repeats: {sort:?} {text:?} {filter:?}");
                assert_eq!(seen.len() as u64, total, "gaps: {sort:?} {text:?} {filter:?}");
                // The pages, end to end, are the one big page.
                let all = index.search(&ProductQuery { first: MAX_PAGE_SIZE, ..query }).unwrap();
                let head: Vec<Uuid> = all.hits.iter().map(|h| h.product_id).collect();
                assert_eq!(&seen[..head.len()], head.as_slice(), "{sort:?} {text:?}");
            }
        }
    }
}

#[test]
fn empty_query_walks_the_whole_catalogue() {
    let index = generated_index(250);
    let (seen, total) = walk(&index, ProductQuery { first: 100, ..Default::default() });
    assert_eq!(total, index.num_products());
    assert_eq!(seen.iter().collect::<HashSet<_>>().len() as u64, index.num_products());
}

#[test]
fn page_size_is_capped_and_zero_still_counts() {
    let index = generated_index(250);
    let page = index.search(&ProductQuery { first: 10_000, ..Default::default() }).unwrap();
    assert_eq!(page.hits.len(), MAX_PAGE_SIZE);
    assert!(page.next_cursor.is_some());
    let count_only = index.search(&ProductQuery { first: 0, ..Default::default() }).unwrap();
    assert!(count_only.hits.is_empty());
    assert_eq!(count_only.total, index.num_products());
    assert!(!count_only.facets.categories.is_empty());
}

#[test]
fn cursors_of_other_queries_and_garbage_are_client_errors() {
    let index = generated_index(100);
    let first = index.search(&ProductQuery { text: "wireless ".into(), first: 2, ..Default::default() }).unwrap();
    let cursor = first.next_cursor.clone().unwrap();
    // Same words, differently typed: the same query.
    let same =
        ProductQuery { text: "  WIRELESS!! ".into(), first: 2, after: Some(cursor.clone()), ..Default::default() };
    assert!(index.search(&same).is_ok());
    let others = [
        ProductQuery { text: "lamp ".into(), after: Some(cursor.clone()), ..Default::default() },
        ProductQuery {
            text: "wireless ".into(),
            sort: SortOrder::PriceAsc,
            after: Some(cursor.clone()),
            ..Default::default()
        },
        ProductQuery {
            text: "wireless ".into(),
            filter: ProductFilter { in_stock: Some(true), ..Default::default() },
            after: Some(cursor.clone()),
            ..Default::default()
        },
    ];
    for query in others {
        assert!(matches!(index.search(&query), Err(SearchError::InvalidCursor)), "{query:?}");
    }
    for garbage in ["", "null", "AAAA", "%%%", &"Zm9v".repeat(5_000), &cursor[1..], "😀😀😀"] {
        let query = ProductQuery { text: "wireless ".into(), after: Some(garbage.to_owned()), ..Default::default() };
        let error = index.search(&query).unwrap_err();
        assert!(error.is_client_error(), "{garbage:?}: {error}");
    }
}
