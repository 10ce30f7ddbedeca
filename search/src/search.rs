//! Running a `ProductQuery`: the fallback chain of match modes, one collection pass that
//! counts, facets and keeps the page, then hits with highlights and cursors.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::ColumnValues;
use tantivy::query::Query;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};
use uuid::Uuid;

use crate::Result;
use crate::cursor::{Cursor, Fingerprint, SortPosition};
use crate::error::SearchError;
use crate::expand::{self, Expansion};
use crate::highlight::{Highlighter, Snippet};
use crate::index::Generation;
use crate::query::{self, MAX_PAGE_SIZE, MatchMode, ProductQuery, Scope, SortOrder, Word};
use crate::schema::{ProductDoc, fast, parse_facet_key};

/// Below this many exact matches, the search tolerates typos.
pub const FEW_MATCHES: u64 = 10;
/// Brands listed in the facets at most (the most frequent ones).
pub const MAX_BRAND_FACETS: usize = 20;
/// Lower bounds of the price buckets, in cents; the last bucket has no upper bound.
pub const PRICE_BUCKETS_CENTS: [i64; 8] = [0, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub hits: Vec<ProductHit>,
    /// Products matching the query and filters (every page, not just this one).
    pub total: u64,
    /// Counts over all matching products (empty when `facets` was off).
    pub facets: Facets,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// How the words were matched.
    pub mode: MatchMode,
}

/// One product of a result page: what a result card shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductHit {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
    pub in_stock: bool,
    /// Average of approved ratings; 0 when there are none.
    pub rating: f64,
    pub rating_count: u64,
    pub created_at: DateTime<Utc>,
    /// Relevance score (0 for other sorts).
    pub score: f32,
    /// Pass as `after` to get the items after this one.
    pub cursor: String,
    pub title_snippet: Snippet,
    pub description_snippet: Snippet,
}

impl ProductHit {
    pub(crate) fn from_doc(doc: ProductDoc) -> Self {
        let rating = doc.rating_average();
        Self {
            product_id: doc.product_id,
            vendor_id: doc.vendor_id,
            title_snippet: Snippet { text: doc.title.clone(), highlights: Vec::new() },
            description_snippet: Snippet::default(),
            title: doc.title,
            description: doc.description,
            category: doc.category,
            brand: doc.brand,
            price_cents: doc.price_cents,
            currency: doc.currency,
            stock: doc.stock,
            in_stock: doc.stock > 0,
            rating,
            rating_count: doc.rating_count,
            created_at: doc.created_at,
            score: 0.0,
            cursor: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// Every category with matches, most matches first.
    pub categories: Vec<FacetCount>,
    /// The `MAX_BRAND_FACETS` brands with most matches.
    pub brands: Vec<FacetCount>,
    /// Every bucket of `PRICE_BUCKETS_CENTS`, in order, zero counts included.
    pub price_buckets: Vec<PriceBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceBucket {
    pub min_cents: i64,
    /// Exclusive; `None` for the last bucket.
    pub max_cents: Option<i64>,
    pub count: u64,
}

pub(crate) fn execute(generation: &Generation, request: &ProductQuery) -> Result<SearchResult> {
    query::validate(request)?;
    let words = query::words(&request.text);
    let fingerprint = fingerprint(&words, request);
    let cursor = request.after.as_deref().map(|text| Cursor::decode(text, fingerprint)).transpose()?;
    let limit = request.first.min(MAX_PAGE_SIZE);
    let searcher = generation.searcher();
    let fields = &generation.fields;
    let collector = PageCollector {
        sort: request.sort,
        keep: limit + 1,
        after: cursor.map(|c| c.position),
        facets: request.facets.then(|| generation.facets.clone()),
    };

    // Prefix expansions always, typo expansions only when the chain gets there; each at
    // most once per query.
    let mut expansions: [Option<Vec<Arc<Vec<Expansion>>>>; 2] = [None, None];
    let mut run = |mode: MatchMode, scope: Scope| -> Result<PageFruit> {
        let typos = mode != MatchMode::AllWords;
        let slot = &mut expansions[usize::from(typos)];
        if slot.is_none() {
            *slot = Some(expand::expand(&searcher, fields, &words, typos, &generation.expansions)?);
        }
        let expanded = slot.as_deref().unwrap_or_default();
        let query = query::build(fields, &words, expanded, mode, scope, &request.filter);
        Ok(searcher.search(&query as &dyn Query, &collector)?)
    };
    let typo_words = words.iter().any(|w| w.typo_distance > 0);
    // The fallback chain within one scope: every word; every word with typos when exact
    // matches are few; any word when nothing has them all.
    let mut chain = |scope: Scope| -> Result<(MatchMode, PageFruit)> {
        let mut mode = MatchMode::AllWords;
        let mut fruit = run(mode, scope)?;
        if fruit.total < FEW_MATCHES && typo_words {
            mode = MatchMode::AllWordsWithTypos;
            fruit = run(mode, scope)?;
        }
        if fruit.total == 0 && words.len() > 1 && scope == Scope::Anywhere {
            mode = MatchMode::AnyWord;
            fruit = run(mode, scope)?;
        }
        Ok((mode, fruit))
    };
    // A later page repeats what its first page settled on. Results sorted by something else
    // than relevance look in titles first: a description that merely mentions a word would
    // otherwise sit among real matches.
    let (mode, scope, fruit) = match cursor {
        Some(cursor) => (cursor.mode, cursor.scope, run(cursor.mode, cursor.scope)?),
        None if request.sort != SortOrder::Relevance && !words.is_empty() => {
            let (mode, fruit) = chain(Scope::Titles)?;
            if fruit.total > 0 {
                (mode, Scope::Titles, fruit)
            } else {
                let (mode, fruit) = chain(Scope::Anywhere)?;
                (mode, Scope::Anywhere, fruit)
            }
        }
        None => {
            let (mode, fruit) = chain(Scope::Anywhere)?;
            (mode, Scope::Anywhere, fruit)
        }
    };

    let PageFruit { total, mut top, categories, brands, prices } = fruit;
    let more = top.len() > limit;
    top.truncate(limit);
    let mut highlighter = Highlighter::new(&words, mode != MatchMode::AllWords);
    let mut hits = Vec::with_capacity(top.len());
    for candidate in &top {
        let stored: TantivyDocument = searcher.doc(candidate.address)?;
        let doc = ProductDoc::from_document(&stored, fields).ok_or_else(|| SearchError::Corrupt {
            path: generation.dir.clone().unwrap_or_default(),
            reason: "a stored product document lacks fields".into(),
        })?;
        let mut hit = ProductHit::from_doc(doc);
        hit.score = if request.sort == SortOrder::Relevance { candidate.score } else { 0.0 };
        hit.cursor = Cursor { fingerprint, mode, scope, position: candidate.position }.encode();
        hit.title_snippet = highlighter.full(&hit.title);
        hit.description_snippet = highlighter.excerpt(&hit.description);
        hits.push(hit);
    }
    let next_cursor = if more { hits.last().map(|h| h.cursor.clone()) } else { None };
    let facets = if request.facets { facets(categories, brands, prices) } else { Facets::default() };
    Ok(SearchResult { hits, total, facets, next_cursor, mode })
}

/// What a cursor must match: the words as searched (not the raw text), filters and sort.
fn fingerprint(words: &[Word], request: &ProductQuery) -> u64 {
    let mut f = Fingerprint::new();
    for word in words {
        f = f.field(word.raw.as_bytes()).bytes(&[u8::from(word.prefix)]);
    }
    let filter = &request.filter;
    f = f.bytes(b"|");
    for category in &filter.categories {
        f = f.field(category.as_bytes());
    }
    f = f.bytes(b"|");
    for brand in &filter.brands {
        f = f.field(brand.as_bytes());
    }
    let option = |f: Fingerprint, value: Option<[u8; 8]>| match value {
        Some(bytes) => f.bytes(&[1]).bytes(&bytes),
        None => f.bytes(&[0]),
    };
    f = option(f, filter.vendor_id.map(|v| v.as_u64_pair().0.to_le_bytes()));
    f = option(f, filter.vendor_id.map(|v| v.as_u64_pair().1.to_le_bytes()));
    f = option(f, filter.price_min_cents.map(i64::to_le_bytes));
    f = option(f, filter.price_max_cents.map(i64::to_le_bytes));
    f = option(f, filter.in_stock.map(|b| u64::from(b).to_le_bytes()));
    f = option(f, filter.min_rating.map(f64::to_le_bytes));
    f.bytes(&[request.sort as u8]).finish()
}

fn facets(
    categories: HashMap<String, u64>,
    brands: HashMap<String, u64>,
    prices: [u64; PRICE_BUCKETS_CENTS.len()],
) -> Facets {
    let sorted = |map: HashMap<String, u64>| {
        let mut list: Vec<FacetCount> = map.into_iter().map(|(value, count)| FacetCount { value, count }).collect();
        list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        list
    };
    let mut brands = sorted(brands);
    brands.truncate(MAX_BRAND_FACETS);
    let price_buckets = PRICE_BUCKETS_CENTS
        .iter()
        .enumerate()
        .map(|(i, &min_cents)| PriceBucket {
            min_cents,
            max_cents: PRICE_BUCKETS_CENTS.get(i + 1).copied(),
            count: prices[i],
        })
        .collect();
    Facets { categories: sorted(categories), brands, price_buckets }
}

pub(crate) fn price_bucket(price_cents: i64) -> usize {
    PRICE_BUCKETS_CENTS.partition_point(|&min| min <= price_cents).saturating_sub(1)
}

/// Sort keys normalised so that ascending key = result order, for every sort.
fn order_u64_of_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

fn order_u64_of_score(score: Score) -> u64 {
    let bits = score.to_bits();
    let ordered = if bits >> 31 == 1 { !bits } else { bits | (1 << 31) };
    u64::from(ordered)
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    position: SortPosition,
    score: Score,
    address: DocAddress,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.position == other.position
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.position.cmp(&other.position)
    }
}

/// One pass over the matches: count, facet counts, and the `keep` first items after the
/// cursor in sort order.
struct PageCollector {
    sort: SortOrder,
    keep: usize,
    after: Option<SortPosition>,
    /// Facet counting, with the generation's cache of decoded facet values.
    facets: Option<Arc<FacetCache>>,
}

struct PageFruit {
    total: u64,
    /// Ascending (result order).
    top: Vec<Candidate>,
    categories: HashMap<String, u64>,
    brands: HashMap<String, u64>,
    prices: [u64; PRICE_BUCKETS_CENTS.len()],
}

enum KeySource {
    Score,
    Signed { column: Arc<dyn ColumnValues<i64>>, descending: bool },
    Unsigned { column: Arc<dyn ColumnValues<u64>>, descending: bool },
}

/// The facet values of one segment, decoded once: by facet-column ordinal, the price
/// bucket and the indexes of category and brand in this segment's name lists.
pub(crate) struct SegmentFacets {
    ords: Arc<dyn ColumnValues<u64>>,
    entries: Vec<(usize, usize, usize)>,
    categories: Vec<String>,
    brands: Vec<String>,
}

impl SegmentFacets {
    fn load(reader: &SegmentReader) -> tantivy::Result<Self> {
        let keys = reader
            .fast_fields()
            .str(fast::FACET)?
            .ok_or_else(|| tantivy::TantivyError::FieldNotFound(fast::FACET.to_owned()))?;
        let mut facets = SegmentFacets {
            ords: keys.ords().clone().first_or_default_col(u64::MAX),
            entries: Vec::with_capacity(keys.num_terms()),
            categories: Vec::new(),
            brands: Vec::new(),
        };
        let mut category_index: HashMap<String, usize> = HashMap::new();
        let mut brand_index: HashMap<String, usize> = HashMap::new();
        let mut stream = keys.dictionary().stream()?;
        while stream.advance() {
            let parsed = std::str::from_utf8(stream.key()).ok().and_then(parse_facet_key);
            // Ordinals are dense: keep the slot even for a value this build cannot read.
            let Some((bucket, category, brand)) = parsed else {
                facets.entries.push((usize::MAX, usize::MAX, usize::MAX));
                continue;
            };
            let c = intern(&mut category_index, &mut facets.categories, category);
            let b = intern(&mut brand_index, &mut facets.brands, brand);
            facets.entries.push((bucket, c, b));
        }
        Ok(facets)
    }
}

fn intern(index: &mut HashMap<String, usize>, names: &mut Vec<String>, name: &str) -> usize {
    if let Some(&i) = index.get(name) {
        return i;
    }
    names.push(name.to_owned());
    index.insert(name.to_owned(), names.len() - 1);
    names.len() - 1
}

/// Decoded facet values per segment (segments never change; deletions do not touch them).
#[derive(Default)]
pub(crate) struct FacetCache {
    segments: std::sync::Mutex<HashMap<tantivy::index::SegmentId, Arc<SegmentFacets>>>,
}

impl FacetCache {
    /// More than this many cached segments: merges have retired some; start over.
    const MAX_SEGMENTS: usize = 256;

    fn get(&self, reader: &SegmentReader) -> tantivy::Result<Arc<SegmentFacets>> {
        let id = reader.segment_id();
        if let Some(found) = self.segments.lock().ok().and_then(|map| map.get(&id).cloned()) {
            return Ok(found);
        }
        let loaded = Arc::new(SegmentFacets::load(reader)?);
        if let Ok(mut map) = self.segments.lock() {
            if map.len() >= Self::MAX_SEGMENTS {
                map.clear();
            }
            map.insert(id, loaded.clone());
        }
        Ok(loaded)
    }
}

/// Facet counts of one segment, by category and brand index and price bucket: small
/// arrays, counted into directly (a count per distinct facet key was a large zeroed
/// allocation per segment and query).
struct FacetColumns {
    segment: Arc<SegmentFacets>,
    by_category: Vec<u64>,
    by_brand: Vec<u64>,
    prices: [u64; PRICE_BUCKETS_CENTS.len()],
}

struct PageSegment {
    segment: SegmentOrdinal,
    keep: usize,
    after: Option<SortPosition>,
    key: KeySource,
    id_hi: Arc<dyn ColumnValues<u64>>,
    id_lo: Arc<dyn ColumnValues<u64>>,
    /// Max-heap: the worst kept item on top.
    heap: BinaryHeap<Candidate>,
    total: u64,
    facets: Option<FacetColumns>,
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<PageSegment> {
        let fast_fields = reader.fast_fields();
        let key = match self.sort {
            SortOrder::Relevance => KeySource::Score,
            SortOrder::PriceAsc | SortOrder::PriceDesc => KeySource::Signed {
                column: fast_fields.column_first_or_default(fast::PRICE_CENTS)?,
                descending: self.sort == SortOrder::PriceDesc,
            },
            SortOrder::Newest => {
                KeySource::Signed { column: fast_fields.column_first_or_default(fast::CREATED_AT)?, descending: true }
            }
            SortOrder::Rating => {
                KeySource::Unsigned { column: fast_fields.column_first_or_default(fast::RATING_KEY)?, descending: true }
            }
        };
        let facets = match &self.facets {
            Some(cache) => {
                let segment = cache.get(reader)?;
                Some(FacetColumns {
                    by_category: vec![0; segment.categories.len()],
                    by_brand: vec![0; segment.brands.len()],
                    prices: [0; PRICE_BUCKETS_CENTS.len()],
                    segment,
                })
            }
            None => None,
        };
        Ok(PageSegment {
            segment,
            keep: self.keep,
            after: self.after,
            key,
            id_hi: fast_fields.column_first_or_default(fast::ID_HI)?,
            id_lo: fast_fields.column_first_or_default(fast::ID_LO)?,
            heap: BinaryHeap::with_capacity(self.keep + 1),
            total: 0,
            facets,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == SortOrder::Relevance
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit {
            total: 0,
            top: Vec::new(),
            categories: HashMap::new(),
            brands: HashMap::new(),
            prices: [0; PRICE_BUCKETS_CENTS.len()],
        };
        for fruit in fruits {
            merged.total += fruit.total;
            merged.top.extend(fruit.top);
            for (value, count) in fruit.categories {
                *merged.categories.entry(value).or_default() += count;
            }
            for (value, count) in fruit.brands {
                *merged.brands.entry(value).or_default() += count;
            }
            for (sum, count) in merged.prices.iter_mut().zip(fruit.prices) {
                *sum += count;
            }
        }
        merged.top.sort_unstable();
        merged.top.truncate(self.keep);
        Ok(merged)
    }
}

impl SegmentCollector for PageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        if let Some(f) = &mut self.facets
            && let Some(&(bucket, category, brand)) = f.segment.entries.get(f.segment.ords.get_val(doc) as usize)
            && bucket < PRICE_BUCKETS_CENTS.len()
        {
            f.by_category[category] += 1;
            f.by_brand[brand] += 1;
            f.prices[bucket] += 1;
        }
        let key = match &self.key {
            KeySource::Score => u64::MAX - order_u64_of_score(score),
            KeySource::Signed { column, descending } => {
                let key = order_u64_of_i64(column.get_val(doc));
                if *descending { !key } else { key }
            }
            KeySource::Unsigned { column, descending } => {
                let key = column.get_val(doc);
                if *descending { !key } else { key }
            }
        };
        // Cheap rejections first: before the cursor, or worse than everything kept.
        if self.after.is_some_and(|after| key < after.key) {
            return;
        }
        if self.heap.len() >= self.keep && self.heap.peek().is_some_and(|worst| key > worst.position.key) {
            return;
        }
        let id = (u128::from(self.id_hi.get_val(doc)) << 64) | u128::from(self.id_lo.get_val(doc));
        let position = SortPosition { key, id };
        if self.after.is_some_and(|after| position <= after) {
            return;
        }
        let candidate = Candidate { position, score, address: DocAddress::new(self.segment, doc) };
        if self.heap.len() < self.keep {
            self.heap.push(candidate);
        } else if self.heap.peek().is_some_and(|worst| candidate < *worst) {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    fn harvest(self) -> PageFruit {
        let mut categories = HashMap::new();
        let mut brands = HashMap::new();
        let mut prices = [0; PRICE_BUCKETS_CENTS.len()];
        if let Some(f) = self.facets {
            let segment = &f.segment;
            prices = f.prices;
            for (name, &count) in segment.categories.iter().zip(&f.by_category).filter(|(_, c)| **c > 0) {
                add(&mut categories, name, count);
            }
            for (name, &count) in segment.brands.iter().zip(&f.by_brand).filter(|(_, c)| **c > 0) {
                add(&mut brands, name, count);
            }
        }
        PageFruit { total: self.total, top: self.heap.into_sorted_vec(), categories, brands, prices }
    }
}

fn add(counts: &mut HashMap<String, u64>, value: &str, count: u64) {
    match counts.get_mut(value) {
        Some(sum) => *sum += count,
        None => {
            counts.insert(value.to_owned(), count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order() {
        let prices = [i64::MIN, -5, 0, 1, 999, i64::MAX];
        assert!(prices.windows(2).all(|w| order_u64_of_i64(w[0]) < order_u64_of_i64(w[1])));
        let scores = [-1.5f32, 0.0, 0.1, 1.0, 12.5, f32::MAX];
        assert!(scores.windows(2).all(|w| order_u64_of_score(w[0]) < order_u64_of_score(w[1])));
    }

    #[test]
    fn price_buckets_cover_everything() {
        assert_eq!(price_bucket(-1), 0);
        assert_eq!(price_bucket(0), 0);
        assert_eq!(price_bucket(999), 0);
        assert_eq!(price_bucket(1_000), 1);
        assert_eq!(price_bucket(99_999), 6);
        assert_eq!(price_bucket(i64::MAX), 7);
    }
}
