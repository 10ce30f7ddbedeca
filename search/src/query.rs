//! What a caller asks for (`ProductQuery`), how free text becomes words, and how words and
//! filters become an engine query.
//!
//! Free text is never parsed as query syntax: it is split into words exactly as the
//! documents were, so quotes, colons, brackets or operators are just separators.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer, TokenStream};
use uuid::Uuid;

use crate::error::SearchError;
use crate::expand::Expansion;
use crate::schema::{self, Fields};

/// Results per page unless the caller says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a caller can ask for; larger requests get this many.
pub const MAX_PAGE_SIZE: usize = 100;
/// Words of a query beyond this many are ignored (a 10 KB paste is not a query).
pub const MAX_WORDS: usize = 12;
/// The last word is matched as a prefix from this many characters on.
pub const MIN_PREFIX_CHARS: usize = 3;

pub(crate) const TITLE_BOOST: f32 = 3.0;
pub(crate) const DESCRIPTION_BOOST: f32 = 1.0;
/// A word completing the prefix being typed counts this much of a typed one (an exact word
/// first: `kettle` before `kettlebell`).
pub(crate) const PREFIX_WEIGHT: f32 = 0.7;
/// A word reached by a typo counts this much of a typed one.
pub(crate) const TYPO_WEIGHT: f32 = 0.6;

/// A product search, as a storefront sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuery {
    /// What the user typed, as typed. Empty matches every product (filters still apply).
    pub text: String,
    pub filter: ProductFilter,
    pub sort: SortOrder,
    /// Page size, at most [`MAX_PAGE_SIZE`] (larger values are capped).
    pub first: usize,
    /// The cursor of the last item of the previous page (from `ProductHit::cursor` or
    /// `SearchResult::next_cursor`).
    pub after: Option<String>,
    /// Compute facet counts (category, brand, price buckets).
    pub facets: bool,
}

impl Default for ProductQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            filter: ProductFilter::default(),
            sort: SortOrder::Relevance,
            first: DEFAULT_PAGE_SIZE,
            after: None,
            facets: true,
        }
    }
}

impl ProductQuery {
    /// A first page of relevance-sorted results with facets.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }
}

/// Filters; every one given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFilter {
    /// Any of these categories (exact names).
    pub categories: Vec<String>,
    /// Any of these brands (exact names).
    pub brands: Vec<String>,
    pub vendor_id: Option<Uuid>,
    /// Inclusive bounds, in cents (of the product's own currency).
    pub price_min_cents: Option<i64>,
    pub price_max_cents: Option<i64>,
    /// `Some(true)`: stock > 0; `Some(false)`: out of stock.
    pub in_stock: Option<bool>,
    /// Average of approved ratings at least this (0 to 5); unrated products count as 0.
    pub min_rating: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Best match first (BM25, title boosted over description).
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    /// Most recently listed first.
    Newest,
    /// Highest average rating first, then most ratings.
    Rating,
}

/// How strictly the words of the query were matched (the fallback chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// Every word matched exactly (stemmed; the last word also as a prefix).
    AllWords,
    /// Few exact matches: every word matched, long words also within an edit distance.
    AllWordsWithTypos,
    /// Nothing matched every word: products matching any word, those matching more first.
    AnyWord,
}

impl MatchMode {
    pub(crate) fn code(self) -> u8 {
        match self {
            MatchMode::AllWords => 0,
            MatchMode::AllWordsWithTypos => 1,
            MatchMode::AnyWord => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(MatchMode::AllWords),
            1 => Some(MatchMode::AllWordsWithTypos),
            2 => Some(MatchMode::AnyWord),
            _ => None,
        }
    }
}

/// One word of the query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    /// Lowercased, accents folded: matched against `title_words` for prefix and typos.
    pub raw: String,
    /// English stem: matched against title and description.
    pub stem: String,
    /// The last word, still being typed.
    pub prefix: bool,
    /// Edit distance tolerated in typo mode.
    pub typo_distance: u8,
}

/// The query text as words: split and normalised like the documents, deduplicated, at most
/// `MAX_WORDS`. Words too long to be indexed are kept (they match nothing), so a query of
/// only such words finds nothing rather than everything.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let mut splitter =
        TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).filter(AsciiFoldingFilter).build();
    let mut stemmer = schema::stemmed_analyzer();
    let mut raw_words: Vec<String> = Vec::new();
    let mut stream = splitter.token_stream(text);
    while stream.advance() {
        let raw = &stream.token().text;
        if !raw_words.iter().any(|w| w == raw) {
            raw_words.push(raw.clone());
        }
        if raw_words.len() == MAX_WORDS {
            break;
        }
    }
    // Still typing the last word unless the text ends with a separator.
    let typing = text.chars().last().is_some_and(char::is_alphanumeric);
    let count = raw_words.len();
    raw_words
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let stem = if raw.len() > schema::MAX_WORD_BYTES {
                raw.clone()
            } else {
                let mut stems = stemmer.token_stream(&raw);
                if stems.advance() { stems.token().text.clone() } else { raw.clone() }
            };
            let chars = raw.chars().count();
            let indexable = raw.len() <= schema::MAX_WORD_BYTES;
            let typo_distance = match chars {
                _ if !indexable => 0,
                n if n >= 9 => 2,
                n if n >= 5 => 1,
                _ => 0,
            };
            let prefix = indexable && typing && i + 1 == count && chars >= MIN_PREFIX_CHARS;
            Word { raw, stem, prefix, typo_distance }
        })
        .collect()
}

/// Where the words must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Title or description (the title boosted): for relevance ranking.
    Anywhere,
    /// Titles only: for results sorted by price, date or rating, where a description that
    /// merely mentions a word would be listed among real matches.
    Titles,
}

/// The engine query for `words` (each with its prefix/typo `expansions`) in `mode`, with
/// `filter`.
pub(crate) fn build(
    fields: &Fields,
    words: &[Word],
    expansions: &[std::sync::Arc<Vec<Expansion>>],
    mode: MatchMode,
    scope: Scope,
    filter: &ProductFilter,
) -> Box<dyn Query> {
    let text: Box<dyn Query> = if words.is_empty() {
        Box::new(AllQuery)
    } else {
        let occur = if mode == MatchMode::AnyWord { Occur::Should } else { Occur::Must };
        let clauses = words
            .iter()
            .enumerate()
            .map(|(i, w)| (occur, word_query(fields, w, expansions.get(i).map_or(&[][..], |e| e.as_slice()), scope)))
            .collect();
        Box::new(BooleanQuery::new(clauses))
    };
    let filters = filter_queries(fields, filter);
    if filters.is_empty() {
        return text;
    }
    let mut clauses = vec![(Occur::Must, text)];
    // Filters select, they do not score.
    clauses
        .extend(filters.into_iter().map(|q| (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)) as Box<dyn Query>)));
    Box::new(BooleanQuery::new(clauses))
}

/// One word: its stem, or any of its expansions, in the title (boosted) or the description.
fn word_query(fields: &Fields, word: &Word, expansions: &[Expansion], scope: Scope) -> Box<dyn Query> {
    let stems = std::iter::once((word.stem.as_str(), 1.0))
        .chain(expansions.iter().map(|e| (e.stem.as_str(), if e.typo { TYPO_WEIGHT } else { PREFIX_WEIGHT })));
    let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (stem, weight) in stems {
        alternatives.push((Occur::Should, boosted(term(fields.title, stem), TITLE_BOOST * weight)));
        if scope == Scope::Anywhere {
            alternatives.push((Occur::Should, boosted(term(fields.description, stem), DESCRIPTION_BOOST * weight)));
        }
    }
    Box::new(BooleanQuery::new(alternatives))
}

fn term(field: tantivy::schema::Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::WithFreqs))
}

fn boosted(query: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(query, boost))
}

fn filter_queries(fields: &Fields, filter: &ProductFilter) -> Vec<Box<dyn Query>> {
    let mut queries: Vec<Box<dyn Query>> = Vec::new();
    if !filter.categories.is_empty() {
        let terms = filter.categories.iter().map(|c| Term::from_field_text(fields.category, c));
        queries.push(Box::new(TermSetQuery::new(terms)));
    }
    if !filter.brands.is_empty() {
        let terms = filter.brands.iter().map(|b| Term::from_field_text(fields.brand, b));
        queries.push(Box::new(TermSetQuery::new(terms)));
    }
    if let Some(vendor) = filter.vendor_id {
        queries.push(Box::new(TermQuery::new(
            Term::from_field_text(fields.vendor_id, &vendor.to_string()),
            IndexRecordOption::Basic,
        )));
    }
    if filter.price_min_cents.is_some() || filter.price_max_cents.is_some() {
        let bound = |v: Option<i64>| {
            v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(fields.price_cents, v)))
        };
        queries.push(Box::new(RangeQuery::new(bound(filter.price_min_cents), bound(filter.price_max_cents))));
    }
    match filter.in_stock {
        Some(true) => queries
            .push(Box::new(RangeQuery::new(Bound::Included(Term::from_field_u64(fields.stock, 1)), Bound::Unbounded))),
        Some(false) => queries.push(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_u64(fields.stock, 0)),
            Bound::Included(Term::from_field_u64(fields.stock, 0)),
        ))),
        None => {}
    }
    if let Some(min) = filter.min_rating {
        queries.push(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_f64(fields.rating, min)),
            Bound::Unbounded,
        )));
    }
    queries
}

/// Reject structured input that makes no sense (free text is never rejected).
pub(crate) fn validate(query: &ProductQuery) -> Result<(), SearchError> {
    let f = &query.filter;
    if let (Some(min), Some(max)) = (f.price_min_cents, f.price_max_cents)
        && min > max
    {
        return Err(SearchError::InvalidQuery(format!("price range is empty: minimum {min} is above maximum {max}")));
    }
    if let Some(rating) = f.min_rating
        && !(0.0..=5.0).contains(&rating)
    {
        return Err(SearchError::InvalidQuery(format!("minimum rating must be between 0 and 5, not {rating}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_folded_stemmed_and_capped() {
        let w = words("Wireless KEYBOARDS, café:\"x\"");
        let raws: Vec<&str> = w.iter().map(|w| w.raw.as_str()).collect();
        assert_eq!(raws, ["wireless", "keyboards", "cafe", "x"]);
        assert_eq!(w[1].stem, "keyboard");
        assert_eq!(w[0].typo_distance, 1);
        assert!(w.iter().all(|w| !w.prefix), "text ends with a quote: nothing being typed");
        assert_eq!(words(&"word ".repeat(5000)).len(), 1);
        let many: String = (0..100).map(|i| format!("w{i} ")).collect();
        assert_eq!(words(&many).len(), MAX_WORDS);
    }

    #[test]
    fn last_word_is_a_prefix_while_typed() {
        let w = words("wireless keyb");
        assert!(!w[0].prefix && w[1].prefix);
        assert!(!words("wireless keyb ")[1].prefix);
        assert!(!words("wireless ke")[1].prefix, "too short to expand");
    }

    #[test]
    fn typo_distance_grows_with_length() {
        let d = |t: &str| words(t)[0].typo_distance;
        assert_eq!(d("lamp "), 0);
        assert_eq!(d("chair "), 1);
        assert_eq!(d("headphones "), 2);
    }

    #[test]
    fn unindexable_words_stay_and_match_nothing() {
        let long = "a".repeat(300);
        let w = words(&long);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].typo_distance, 0);
        assert!(!w[0].prefix);
    }
}
