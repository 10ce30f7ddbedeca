//! Relevance, matching modes, filters, facets, sorts and updates on a small fixed catalogue.

mod common;

use common::*;
use events::domain::catalog::ProductEvent;
use search::{MatchMode, ProductFilter, ProductQuery, SortOrder};
use uuid::Uuid;

fn catalogue_index() -> search::ProductIndex {
    index_of(&listing_events(&fixed_catalogue()))
}

#[test]
fn exact_title_beats_description_mention() {
    let index = catalogue_index();
    let found = ids(&index, &ProductQuery::text("keyboard "));
    // Title matches (1, 7) come before products that only mention a keyboard (2, 5).
    assert_eq!(found.len(), 4, "{found:?}");
    let (titles, mentions) = found.split_at(2);
    assert!(titles.iter().all(|id| [1, 7].contains(id)), "{found:?}");
    assert!(mentions.iter().all(|id| [2, 5].contains(id)), "{found:?}");
}

#[test]
fn every_word_must_match_first() {
    let index = catalogue_index();
    let result = index.search(&ProductQuery::text("wireless keyboard ")).unwrap();
    // Two exact matches are "few": typo tolerance is on, but finds nothing more here.
    assert_ne!(result.mode, MatchMode::AnyWord);
    let found: Vec<u128> = result.hits.iter().map(|h| h.product_id.as_u128()).collect();
    // 1 has both in its title; 5 has "wireless" in its title and "keyboard" in its description.
    assert_eq!(found, [1, 5]);
}

#[test]
fn falls_back_to_any_word_when_nothing_has_them_all() {
    let index = catalogue_index();
    let result = index.search(&ProductQuery::text("walnut kettle ")).unwrap();
    assert_eq!(result.mode, MatchMode::AnyWord);
    let mut found: Vec<u128> = result.hits.iter().map(|h| h.product_id.as_u128()).collect();
    found.sort_unstable();
    assert_eq!(found, [8, 9]);
}

#[test]
fn last_word_matches_as_prefix_while_typing() {
    let index = catalogue_index();
    let mut found = ids(&index, &ProductQuery::text("wirel"));
    found.sort_unstable();
    assert_eq!(found, [1, 3, 5], "wirel -> wireless in titles");
    assert_eq!(ids(&index, &ProductQuery::text("oak desk lam")), [4]);
    // Two letters are too few to expand: "la" is a whole word, found nowhere, so the
    // search falls back to any word.
    let short = index.search(&ProductQuery::text("oak desk la")).unwrap();
    assert_eq!(short.mode, MatchMode::AnyWord);
    // A finished word (followed by a space) is not a prefix.
    assert!(ids(&index, &ProductQuery::text("wirel ")).is_empty());
}

#[test]
fn typos_are_tolerated_when_exact_matches_are_few() {
    let index = catalogue_index();
    let result = index.search(&ProductQuery::text("keybaord ")).unwrap();
    assert_eq!(result.mode, MatchMode::AllWordsWithTypos);
    let found: Vec<u128> = result.hits.iter().map(|h| h.product_id.as_u128()).collect();
    assert!(found.starts_with(&[1]) || found.starts_with(&[7]), "{found:?}");
    assert!(found.contains(&1) && found.contains(&7), "{found:?}");
    assert_eq!(result.hits[0].title_snippet.highlighted(), ["Keyboard"]);
    // Nine letters or more: two edits.
    assert_eq!(ids(&index, &ProductQuery::text("headphnoes ")), [3]);
    // Short words get no typo tolerance: "lamq" is not "lamp".
    assert!(ids(&index, &ProductQuery::text("lamq ")).is_empty());
    // Accents are folded: "cafe" finds "Café".
    assert_eq!(ids(&index, &ProductQuery::text("cafe espresso ")), [10]);
}

/// Which products of the fixed catalogue a filter should keep.
type Expectation = Box<dyn Fn(&events::domain::catalog::ProductListed) -> bool>;

#[test]
fn filters_and_facet_counts_are_exact() {
    let index = catalogue_index();
    let catalogue = fixed_catalogue();
    let cases: Vec<(ProductFilter, Expectation)> = vec![
        (
            ProductFilter { categories: vec!["Computers".into()], ..Default::default() },
            Box::new(|p| p.category == "Computers"),
        ),
        (
            ProductFilter { categories: vec!["Audio".into(), "Kitchen".into()], ..Default::default() },
            Box::new(|p| p.category == "Audio" || p.category == "Kitchen"),
        ),
        (ProductFilter { brands: vec!["Halden".into()], ..Default::default() }, Box::new(|p| p.brand == "Halden")),
        (
            ProductFilter { price_min_cents: Some(3_999), price_max_cents: Some(12_999), ..Default::default() },
            Box::new(|p| (3_999..=12_999).contains(&p.price_cents)),
        ),
        (ProductFilter { in_stock: Some(true), ..Default::default() }, Box::new(|p| p.stock > 0)),
        (ProductFilter { in_stock: Some(false), ..Default::default() }, Box::new(|p| p.stock == 0)),
        (
            ProductFilter { vendor_id: Some(Uuid::from_u128(1_000)), ..Default::default() },
            Box::new(|p| p.vendor_id == Uuid::from_u128(1_000)),
        ),
        (
            ProductFilter {
                categories: vec!["Computers".into()],
                in_stock: Some(true),
                price_max_cents: Some(5_000),
                ..Default::default()
            },
            Box::new(|p| p.category == "Computers" && p.stock > 0 && p.price_cents <= 5_000),
        ),
    ];
    for (filter, expected) in cases {
        let query = ProductQuery { filter: filter.clone(), first: 100, ..Default::default() };
        let result = index.search(&query).unwrap();
        let wanted: Vec<&events::domain::catalog::ProductListed> = catalogue.iter().filter(|p| expected(p)).collect();
        let mut found: Vec<u128> = result.hits.iter().map(|h| h.product_id.as_u128()).collect();
        found.sort_unstable();
        let mut want_ids: Vec<u128> = wanted.iter().map(|p| p.product_id.as_u128()).collect();
        want_ids.sort_unstable();
        assert_eq!(found, want_ids, "{filter:?}");
        assert_eq!(result.total, wanted.len() as u64);

        // Facets count the filtered matches.
        let count =
            |f: &dyn Fn(&&&events::domain::catalog::ProductListed) -> bool| wanted.iter().filter(f).count() as u64;
        for facet in &result.facets.categories {
            assert_eq!(facet.count, count(&|p| p.category == facet.value), "{filter:?} {facet:?}");
        }
        assert_eq!(result.facets.categories.iter().map(|f| f.count).sum::<u64>(), wanted.len() as u64);
        for facet in &result.facets.brands {
            assert_eq!(facet.count, count(&|p| p.brand == facet.value), "{filter:?} {facet:?}");
        }
        for bucket in &result.facets.price_buckets {
            let in_bucket =
                count(&|p| p.price_cents >= bucket.min_cents && bucket.max_cents.is_none_or(|max| p.price_cents < max));
            assert_eq!(bucket.count, in_bucket, "{filter:?} {bucket:?}");
        }
    }
    // Text and filter together; facet counts follow the text too.
    let query = ProductQuery {
        text: "wireless ".into(),
        filter: ProductFilter { categories: vec!["Computers".into()], ..Default::default() },
        ..Default::default()
    };
    let result = index.search(&query).unwrap();
    let mut found: Vec<u128> = result.hits.iter().map(|h| h.product_id.as_u128()).collect();
    found.sort_unstable();
    assert_eq!(found, [1, 5]);
    assert_eq!(result.facets.brands.len(), 1);
    assert_eq!((result.facets.brands[0].value.as_str(), result.facets.brands[0].count), ("Kestrel", 2));
}

#[test]
fn invalid_filters_are_client_errors() {
    let index = catalogue_index();
    let bad = ProductQuery {
        filter: ProductFilter { price_min_cents: Some(10), price_max_cents: Some(5), ..Default::default() },
        ..Default::default()
    };
    assert!(index.search(&bad).unwrap_err().is_client_error());
    let bad =
        ProductQuery { filter: ProductFilter { min_rating: Some(7.0), ..Default::default() }, ..Default::default() };
    assert!(index.search(&bad).unwrap_err().is_client_error());
}

#[test]
fn sorts_order_by_price_newest_and_rating() {
    let catalogue = fixed_catalogue();
    let mut events = listing_events(&catalogue);
    // Ratings: product 4 averages 5 (one review), 6 averages 4.5 (two), 9 averages 4.5 (four).
    let mut n = events.len() as u64;
    for (product, rating) in [(4u128, 5u8), (6, 4), (6, 5), (9, 5), (9, 4), (9, 5), (9, 4)] {
        n += 1;
        let review = Uuid::now_v7();
        events.push(recorded(n, review_stream(review), &review_approved(review, Uuid::from_u128(product), rating)));
    }
    let index = index_of(&events);
    let all = |sort| ids(&index, &ProductQuery { sort, first: 100, ..Default::default() });

    let mut by_price = catalogue.clone();
    by_price.sort_by_key(|p| (p.price_cents, p.product_id));
    assert_eq!(all(SortOrder::PriceAsc), by_price.iter().map(|p| p.product_id.as_u128()).collect::<Vec<_>>());
    by_price.sort_by_key(|p| (std::cmp::Reverse(p.price_cents), p.product_id));
    assert_eq!(all(SortOrder::PriceDesc), by_price.iter().map(|p| p.product_id.as_u128()).collect::<Vec<_>>());
    assert_eq!(all(SortOrder::Newest), (1..=10).rev().collect::<Vec<u128>>());
    assert_eq!(&all(SortOrder::Rating)[..3], [4, 9, 6]);

    let rated = index.search(&ProductQuery { sort: SortOrder::Rating, first: 1, ..Default::default() }).unwrap();
    assert_eq!((rated.hits[0].rating, rated.hits[0].rating_count), (5.0, 1));
    let filtered =
        ProductQuery { filter: ProductFilter { min_rating: Some(4.5), ..Default::default() }, ..Default::default() };
    let mut found = ids(&index, &filtered);
    found.sort_unstable();
    assert_eq!(found, [4, 6, 9]);
}

#[test]
fn hits_carry_the_card_fields_and_highlights() {
    let index = catalogue_index();
    let result = index.search(&ProductQuery::text("oak lamp ")).unwrap();
    let hit = &result.hits[0];
    assert_eq!(hit.product_id, Uuid::from_u128(4));
    assert_eq!(
        (hit.title.as_str(), hit.brand.as_str(), hit.category.as_str()),
        ("Oak Desk Lamp", "Halden", "Lighting")
    );
    assert_eq!((hit.price_cents, hit.currency.as_str(), hit.stock, hit.in_stock), (4_500, "EUR", 7, true));
    assert_eq!(hit.created_at, epoch() + chrono::Duration::minutes(4));
    assert!(hit.score > 0.0);
    assert_eq!(hit.title_snippet.highlighted(), ["Oak", "Lamp"]);
    assert_eq!(hit.description_snippet.highlighted(), ["lamp", "oak"]);
    assert_eq!(hit.title_snippet.to_html(), "<mark>Oak</mark> Desk <mark>Lamp</mark>");
}

#[test]
fn updates_replace_the_document_and_delisting_removes_it() {
    let catalogue = fixed_catalogue();
    let mut events = listing_events(&catalogue);
    let id = |n: u128| Uuid::from_u128(n);
    let review = Uuid::now_v7();
    let rejected = Uuid::now_v7();
    let more: Vec<(events::StreamId, ProductEvent)> = vec![
        (product_stream(id(9)), price_changed(1_999)),
        (product_stream(id(3)), stock_adjusted(5)),
        (
            product_stream(id(6)),
            details_changed("Rugged Trail Speaker", "Built for mountain trails.", "Outdoor", "Nordvik"),
        ),
        (product_stream(id(7)), delisted(id(7))),
        // An update of a delisted product changes nothing.
        (product_stream(id(7)), price_changed(1)),
    ];
    for (stream, event) in more {
        let n = events.len() as u64 + 1;
        events.push(recorded(n, stream, &event));
    }
    let n = events.len() as u64;
    events.push(recorded(n + 1, review_stream(review), &review_submitted(review, id(9), 1)));
    events.push(recorded(n + 2, review_stream(rejected), &review_rejected(rejected, id(9))));
    events.push(recorded(n + 3, review_stream(review), &review_approved(review, id(9), 3)));
    let index = index_of(&events);

    let kettle = index.product(id(9)).unwrap().unwrap();
    assert_eq!((kettle.price_cents, kettle.rating, kettle.rating_count), (1_999, 3.0, 1));
    assert_eq!(index.product(id(3)).unwrap().unwrap().stock, 5);
    assert!(index.product(id(7)).unwrap().is_none());
    assert_eq!(index.num_products(), 9);
    assert_eq!(ids(&index, &ProductQuery::text("trail ")), [6]);
    assert!(ids(&index, &ProductQuery::text("bluetooth ")).is_empty(), "old title gone");
    assert!(!ids(&index, &ProductQuery::text("keyboard ")).contains(&7));
    assert_eq!(index.checkpoint(), events.last().unwrap().position);
}

#[test]
fn updates_within_one_batch_and_across_commits_agree() {
    // The same events applied with a commit after every event, and in one batch.
    let catalogue = fixed_catalogue();
    let mut events = listing_events(&catalogue);
    for (i, price) in [500i64, 600, 700].into_iter().enumerate() {
        events.push(recorded(20 + i as u64, product_stream(Uuid::from_u128(2)), &price_changed(price)));
    }
    let one_batch = index_of(&events);
    let committed_each = search::ProductIndex::in_memory().unwrap();
    let mut indexer = search::Indexer::open(&committed_each, search::CommitPolicy::live()).unwrap();
    for event in &events {
        indexer.apply(event).unwrap();
        indexer.commit().unwrap();
    }
    for index in [&one_batch, &committed_each] {
        assert_eq!(index.product(Uuid::from_u128(2)).unwrap().unwrap().price_cents, 700);
        assert_eq!(index.num_products(), 10);
    }
}

#[test]
fn sorted_results_keep_to_titles_when_titles_match() {
    let index = catalogue_index();
    let by_price = |text: &str| ProductQuery { text: text.into(), sort: SortOrder::PriceAsc, ..Default::default() };
    // Mentions in descriptions (2, 5) would sort first by price: titles only.
    assert_eq!(ids(&index, &by_price("keyboard ")), [1, 7]);
    // No title has the word: descriptions count.
    assert_eq!(ids(&index, &by_price("switches ")), [1, 7]);
    // Pages of a sorted query stay in the scope of the first page.
    let first = index.search(&ProductQuery { first: 1, ..by_price("keyboard ") }).unwrap();
    let next = ProductQuery { after: first.next_cursor, ..by_price("keyboard ") };
    assert_eq!(ids(&index, &next), [7]);
}
