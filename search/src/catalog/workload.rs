//! Realistic queries over a generated catalogue: what shoppers type.
//!
//! Built from a sample of the catalogue's own products, so every query has matches: single
//! words, 2-3 word phrases, phrases still being typed (last word cut short), and product
//! names with one typo (whose intended product is known), some with filters or a sort.

use events::domain::catalog::ProductListed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tantivy::tokenizer::TokenStream;
use uuid::Uuid;

use crate::query::{ProductQuery, SortOrder};
use crate::schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// One word: `headphones`, `oak`.
    Word,
    /// Two or three words: `wireless headphones`, `oak desk lamp`.
    Phrase,
    /// Being typed: the last word is cut short: `wireless headph`.
    Prefix,
    /// A product's name with one typo in a word of five letters or more:
    /// `arcis 4821 headphnoes`.
    Typo,
}

/// One query of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadQuery {
    pub kind: QueryKind,
    pub query: ProductQuery,
    /// For `Typo` queries: the product the shopper means.
    pub intended: Option<Uuid>,
}

impl WorkloadQuery {
    /// The query's words, lowercased (as typed, typos included).
    pub fn words(&self) -> Vec<String> {
        split(&self.query.text)
    }

    /// Whether `title` contains every word of the query: the same English stem, or, for the
    /// last word of a `Prefix` query, a word starting with it.
    pub fn title_has_every_word(&self, title: &str) -> bool {
        let title_words = split(title);
        let title_stems: Vec<String> = title_words.iter().map(|w| stem(w)).collect();
        let words = self.words();
        words.iter().enumerate().all(|(i, word)| {
            if self.kind == QueryKind::Prefix && i + 1 == words.len() {
                title_words.iter().any(|t| t.starts_with(word.as_str()))
            } else {
                title_stems.contains(&stem(word))
            }
        })
    }
}

fn stem(word: &str) -> String {
    let mut stemmer = schema::stemmed_analyzer();
    let mut stream = stemmer.token_stream(word);
    if stream.advance() { stream.token().text.clone() } else { word.to_owned() }
}

fn split(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// `count` queries drawn from `sample` (products of the catalogue being searched).
/// Mix: 25 % single words, 30 % phrases, 20 % prefixes, 25 % typos; about a third of the
/// non-typo queries carry a filter and one in eight a non-relevance sort.
pub fn query_workload(seed: u64, sample: &[ProductListed], count: usize) -> Vec<WorkloadQuery> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queries = Vec::with_capacity(count);
    if sample.is_empty() {
        return queries;
    }
    while queries.len() < count {
        let product = &sample[rng.random_range(0..sample.len())];
        let roll = rng.random_range(0..100);
        let kind = match roll {
            0..25 => QueryKind::Word,
            25..55 => QueryKind::Phrase,
            55..75 => QueryKind::Prefix,
            _ => QueryKind::Typo,
        };
        if let Some(query) = make(kind, product, &mut rng) {
            queries.push(query);
        }
    }
    queries
}

fn make(kind: QueryKind, product: &ProductListed, rng: &mut StdRng) -> Option<WorkloadQuery> {
    let words = split(&product.title);
    // "brand series model descriptive... type": what shoppers type is mostly the end.
    let (name, descriptive) = if words.len() > 3 { words.split_at(3) } else { return None };
    let text = match kind {
        QueryKind::Word => {
            if rng.random_bool(0.1) {
                name[0].clone()
            } else {
                descriptive[rng.random_range(0..descriptive.len())].clone()
            }
        }
        QueryKind::Phrase => {
            let n = rng.random_range(2..=3).min(descriptive.len());
            if n < 2 {
                format!("{} {}", name[0], descriptive[0])
            } else {
                let start = rng.random_range(0..=descriptive.len() - n);
                descriptive[start..start + n].join(" ")
            }
        }
        QueryKind::Prefix => {
            let n = rng.random_range(1..=2).min(descriptive.len());
            let start = rng.random_range(0..=descriptive.len() - n);
            let mut typed: Vec<String> = descriptive[start..start + n].to_vec();
            let last = typed.pop()?;
            let chars: Vec<char> = last.chars().collect();
            if chars.len() < 5 {
                return None;
            }
            let cut = rng.random_range(3..chars.len());
            typed.push(chars[..cut].iter().collect());
            typed.join(" ")
        }
        QueryKind::Typo => {
            // The product's name (series + model) and one more word; one of the long words
            // gets the typo.
            let extra = descriptive.last()?.clone();
            let mut typed = [name[1].clone(), name[2].clone(), extra];
            let candidates: Vec<usize> = (0..typed.len())
                .filter(|&i| typed[i].chars().count() >= 5 && typed[i].chars().all(char::is_alphabetic))
                .collect();
            if candidates.is_empty() {
                return None;
            }
            let at = candidates[rng.random_range(0..candidates.len())];
            // A typo that stems like the word (`headphone`) is no typo to a search engine.
            let original = stem(&typed[at]);
            typed[at] = (0..10).map(|_| typo(&typed[at], rng)).find(|t| stem(t) != original)?;
            typed.join(" ")
        }
    };
    let mut query = ProductQuery::text(text);
    query.first = 10;
    if kind != QueryKind::Typo {
        match rng.random_range(0..9) {
            0 => query.filter.categories = vec![product.category.clone()],
            1 => query.filter.in_stock = Some(true),
            2 => query.filter.price_max_cents = Some(product.price_cents * 2),
            _ => {}
        }
        match rng.random_range(0..16) {
            0 => query.sort = SortOrder::PriceAsc,
            1 => query.sort = SortOrder::Newest,
            _ => {}
        }
    }
    Some(WorkloadQuery { kind, intended: (kind == QueryKind::Typo).then_some(product.product_id), query })
}

/// One edit: a dropped, doubled, swapped or replaced letter, never the first letter (people
/// rarely get that wrong), and always a different word.
fn typo(word: &str, rng: &mut StdRng) -> String {
    let chars: Vec<char> = word.chars().collect();
    loop {
        let at = rng.random_range(1..chars.len());
        let mut edited = chars.clone();
        match rng.random_range(0..4) {
            0 => {
                edited.remove(at);
            }
            1 => edited.insert(at, chars[at]),
            2 if at + 1 < chars.len() => edited.swap(at, at + 1),
            _ => edited[at] = (b'a' + rng.random_range(0..26u8)) as char,
        }
        let edited: String = edited.into_iter().collect();
        if edited != word {
            return edited;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::listed_products;
    use crate::query::ProductFilter;

    #[test]
    fn workload_is_deterministic_and_mixed() {
        let sample: Vec<ProductListed> = listed_products(3, 300, 5).collect();
        let a = query_workload(11, &sample, 1000);
        assert_eq!(a, query_workload(11, &sample, 1000));
        assert_eq!(a.len(), 1000);
        for kind in [QueryKind::Word, QueryKind::Phrase, QueryKind::Prefix, QueryKind::Typo] {
            let n = a.iter().filter(|q| q.kind == kind).count();
            assert!(n > 100, "{kind:?}: {n}");
        }
        assert!(a.iter().filter(|q| q.query.filter != ProductFilter::default()).count() > 150);
        for q in a.iter().filter(|q| q.kind != QueryKind::Typo) {
            let source = sample.iter().filter(|p| q.title_has_every_word(&p.title)).count();
            assert!(source > 0, "{:?} matches no title of its sample", q.query.text);
        }
        for q in a.iter().filter(|q| q.kind == QueryKind::Typo) {
            let intended = sample.iter().find(|p| Some(p.product_id) == q.intended).unwrap();
            assert!(!q.title_has_every_word(&intended.title), "{:?} has no typo", q.query.text);
        }
    }

    #[test]
    fn typos_are_one_edit_away() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let t = typo("headphones", &mut rng);
            assert!(crate::highlight::within_distance(&t, "headphones", 1) && t != "headphones", "{t}");
        }
    }
}
