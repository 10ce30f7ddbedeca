//! Prefix and typo expansion: the words of the catalogue's titles that a query word may
//! stand for.
//!
//! A word still being typed (`wirel`) or mistyped (`keybaord`) is matched against the
//! unstemmed title vocabulary (`title_words`) with an automaton, once per query. The words
//! found become ordinary scored term queries on the stemmed title and description, so an
//! expanded word is ranked by BM25 like a typed one (a typo slightly lower) and costs what a
//! typed word costs, instead of a per-segment bitset of every matching document.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use tantivy::query::FuzzyTermQuery;
use tantivy::tokenizer::TokenStream;
use tantivy::{Searcher, Term};

use crate::query::Word;
use crate::schema::{self, Fields};

/// At most this many title words per query word (the most frequent ones).
pub const MAX_EXPANSIONS: usize = 50;

/// A stem a query word stands for, besides its own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expansion {
    pub stem: String,
    /// Reached by a typo (edit distance > 0), not by completing a prefix.
    pub typo: bool,
}

/// Expansions already worked out, valid for one set of segments: a word's expansions
/// depend only on the term dictionaries, which a segment never changes (deletions leave
/// them as they are), so they are kept until the searched segments change. Popular words
/// and prefixes are then expanded once, not on every keystroke of every shopper.
#[derive(Default)]
pub(crate) struct ExpansionCache {
    inner: Mutex<CachedExpansions>,
}

#[derive(Default)]
struct CachedExpansions {
    /// Which segments the entries were computed on.
    segments: u64,
    entries: HashMap<(String, bool, u8), Arc<Vec<Expansion>>>,
}

impl ExpansionCache {
    /// Entries kept at most; then the cache starts over.
    const MAX_ENTRIES: usize = 20_000;

    fn get(&self, segments: u64, key: &(String, bool, u8)) -> Option<Arc<Vec<Expansion>>> {
        let inner = self.inner.lock().ok()?;
        if inner.segments != segments {
            return None;
        }
        inner.entries.get(key).cloned()
    }

    fn put(&self, segments: u64, key: (String, bool, u8), expansions: Arc<Vec<Expansion>>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.segments != segments || inner.entries.len() >= Self::MAX_ENTRIES {
            inner.entries.clear();
            inner.segments = segments;
        }
        inner.entries.insert(key, expansions);
    }
}

/// Identifies the segments a searcher searches.
fn segments_key(searcher: &Searcher) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for segment in searcher.segment_readers() {
        segment.segment_id().hash(&mut hasher);
    }
    hasher.finish()
}

/// For every word: the stems it expands to (not including its own stem). Prefixes always
/// expand; with `typos`, words long enough expand within their edit distance too.
pub(crate) fn expand(
    searcher: &Searcher,
    fields: &Fields,
    words: &[Word],
    typos: bool,
    cache: &ExpansionCache,
) -> tantivy::Result<Vec<Arc<Vec<Expansion>>>> {
    let segments = segments_key(searcher);
    let mut all = Vec::with_capacity(words.len());
    for word in words {
        let distance = if typos { word.typo_distance } else { 0 };
        if !word.prefix && distance == 0 {
            all.push(Arc::default());
            continue;
        }
        let key = (word.raw.clone(), word.prefix, distance);
        if let Some(found) = cache.get(segments, &key) {
            all.push(found);
            continue;
        }
        let expansions = Arc::new(expand_word(searcher, fields, word, distance)?);
        cache.put(segments, key, expansions.clone());
        all.push(expansions);
    }
    Ok(all)
}

/// The stems one word expands to, read from the term dictionaries.
fn expand_word(searcher: &Searcher, fields: &Fields, word: &Word, distance: u8) -> tantivy::Result<Vec<Expansion>> {
    let mut stemmer = schema::stemmed_analyzer();
    {
        // Document frequency per title word, over all segments.
        let mut found: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut add = |key: &[u8], doc_freq: u32| match found.get_mut(key) {
            Some(sum) => *sum += u64::from(doc_freq),
            None => {
                found.insert(key.to_vec(), u64::from(doc_freq));
            }
        };
        if distance == 0 {
            // A plain prefix is a range of the sorted dictionary: no automaton needed.
            let prefix = word.raw.as_bytes();
            for segment in searcher.segment_readers() {
                let inverted = segment.inverted_index(fields.title_words)?;
                let mut stream = inverted.terms().range().ge(prefix).into_stream()?;
                while stream.advance() && stream.key().starts_with(prefix) {
                    add(stream.key(), stream.value().doc_freq);
                }
            }
        } else {
            let term = Term::from_field_text(fields.title_words, &word.raw);
            let query = if word.prefix {
                FuzzyTermQuery::new_prefix(term, distance, true)
            } else {
                FuzzyTermQuery::new(term, distance, true)
            };
            let automaton = query.automaton()?;
            for segment in searcher.segment_readers() {
                let inverted = segment.inverted_index(fields.title_words)?;
                let mut stream = inverted.terms().search(&automaton).into_stream()?;
                while stream.advance() {
                    add(stream.key(), stream.value().doc_freq);
                }
            }
        }
        let mut found: Vec<(Vec<u8>, u64)> = found.into_iter().collect();
        found.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut expansions: Vec<Expansion> = Vec::new();
        for (bytes, _) in found.into_iter().take(MAX_EXPANSIONS) {
            let Ok(text) = std::str::from_utf8(&bytes) else { continue };
            let mut stems = stemmer.token_stream(text);
            let stem = if stems.advance() { stems.token().text.clone() } else { text.to_owned() };
            if stem == word.stem || expansions.iter().any(|e| e.stem == stem) {
                continue;
            }
            let typo = !(word.prefix && text.starts_with(word.raw.as_str())) && text != word.raw;
            expansions.push(Expansion { stem, typo });
        }
        Ok(expansions)
    }
}
