//! Highlighted snippets of title and description.
//!
//! A word of the text is highlighted when it matches a query word the way the search
//! matched it: same stem, the typed prefix, or (in typo mode) within the edit distance.

use std::collections::HashSet;

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

use crate::query::Word;
use crate::schema;

/// Description snippets are cut to about this many characters around the first match.
pub const SNIPPET_CHARS: usize = 180;

/// A piece of text with highlighted byte ranges (ascending, non-overlapping).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snippet {
    pub text: String,
    pub highlights: Vec<(usize, usize)>,
}

impl Snippet {
    /// HTML with highlights in `<mark>`, everything else escaped.
    pub fn to_html(&self) -> String {
        let mut html = String::with_capacity(self.text.len() + 16 * self.highlights.len());
        let mut at = 0;
        for &(start, end) in &self.highlights {
            escape_into(&mut html, &self.text[at..start]);
            html.push_str("<mark>");
            escape_into(&mut html, &self.text[start..end]);
            html.push_str("</mark>");
            at = end;
        }
        escape_into(&mut html, &self.text[at..]);
        html
    }

    /// The highlighted pieces of text, for tests and logs.
    pub fn highlighted(&self) -> Vec<&str> {
        self.highlights.iter().map(|&(s, e)| &self.text[s..e]).collect()
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Decides which words of a text match the query.
pub(crate) struct Highlighter {
    rules: Rules,
    words: TextAnalyzer,
    stemmer: TextAnalyzer,
}

struct Rules {
    stems: HashSet<String>,
    /// The first two characters of every stem: stemming only changes the end of a word,
    /// so a word starting otherwise need not be stemmed.
    heads: Vec<String>,
    prefixes: Vec<String>,
    typos: Vec<(String, u8)>,
}

impl Rules {
    fn matches(&self, word: &str, stemmer: &mut TextAnalyzer) -> bool {
        if self.prefixes.iter().any(|p| word.starts_with(p.as_str())) {
            return true;
        }
        if self.typos.iter().any(|(typo, d)| within_distance(word, typo, *d)) {
            return true;
        }
        if !self.heads.iter().any(|h| word.starts_with(h.as_str())) {
            return false;
        }
        let mut stems = stemmer.token_stream(word);
        stems.advance() && self.stems.contains(&stems.token().text)
    }
}

impl Highlighter {
    pub fn new(query_words: &[Word], typos: bool) -> Self {
        let rules = Rules {
            stems: query_words.iter().map(|w| w.stem.clone()).collect(),
            heads: query_words.iter().map(|w| w.stem.chars().take(2).collect()).collect(),
            prefixes: query_words.iter().filter(|w| w.prefix).map(|w| w.raw.clone()).collect(),
            typos: if typos {
                query_words.iter().filter(|w| w.typo_distance > 0).map(|w| (w.raw.clone(), w.typo_distance)).collect()
            } else {
                Vec::new()
            },
        };
        Self { rules, words: schema::words_analyzer(), stemmer: schema::stemmed_analyzer() }
    }

    /// Byte ranges of the matching words of `text`.
    fn ranges(&mut self, text: &str) -> Vec<(usize, usize)> {
        let Highlighter { rules, words, stemmer } = self;
        let mut found = Vec::new();
        if rules.stems.is_empty() {
            return found;
        }
        let mut stream = words.token_stream(text);
        while stream.advance() {
            let token = stream.token();
            if rules.matches(&token.text, stemmer) {
                found.push((token.offset_from, token.offset_to));
            }
        }
        found
    }

    /// The whole text, highlighted (titles are short).
    pub fn full(&mut self, text: &str) -> Snippet {
        Snippet { text: text.to_owned(), highlights: self.ranges(text) }
    }

    /// About `SNIPPET_CHARS` characters around the first match (or the start), cut at word
    /// boundaries, with an ellipsis where text was left out.
    pub fn excerpt(&mut self, text: &str) -> Snippet {
        let ranges = self.ranges(text);
        if text.chars().count() <= SNIPPET_CHARS {
            return Snippet { text: text.to_owned(), highlights: ranges };
        }
        let first = ranges.first().map_or(0, |r| r.0);
        // Start a little before the first match, at a word boundary.
        let mut start = back_chars(text, first, SNIPPET_CHARS / 4);
        if start > 0 {
            start = text[..start].rfind(char::is_whitespace).map_or(0, |i| i + 1);
            if first < start {
                start = first;
            }
        }
        let mut end = forward_chars(text, start, SNIPPET_CHARS);
        if end < text.len() {
            end = text[..end].rfind(char::is_whitespace).filter(|&i| i > start).unwrap_or(end);
        }
        let body = text[start..end].trim_end();
        let end = start + body.len();
        let lead = if start > 0 { "… " } else { "" };
        let tail = if end < text.len() { " …" } else { "" };
        let shift = lead.len();
        let highlights = ranges
            .into_iter()
            .filter(|&(s, e)| s >= start && e <= end)
            .map(|(s, e)| (s - start + shift, e - start + shift))
            .collect();
        Snippet { text: format!("{lead}{body}{tail}"), highlights }
    }
}

/// The byte index `n` characters before `at` (or 0).
fn back_chars(text: &str, at: usize, n: usize) -> usize {
    text[..at].char_indices().rev().nth(n.saturating_sub(1)).map_or(0, |(i, _)| i)
}

/// The byte index `n` characters after `at` (or the end).
fn forward_chars(text: &str, at: usize, n: usize) -> usize {
    text[at..].char_indices().nth(n).map_or(text.len(), |(i, _)| at + i)
}

/// Optimal-string-alignment distance of `a` and `b` is at most `max` (adjacent
/// transpositions cost 1, as in the typo-tolerant query).
pub(crate) fn within_distance(a: &str, b: &str, max: u8) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let max = usize::from(max);
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let width = b.len() + 1;
    let mut rows = vec![vec![0usize; width]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        let mut best = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev][j] + 1).min(rows[cur][j - 1] + 1).min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = d;
            best = best.min(d);
        }
        if best > max {
            return false;
        }
    }
    rows[a.len() % 3][b.len()] <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::words;

    #[test]
    fn distance_counts_transpositions_as_one() {
        assert!(within_distance("keyboard", "keybaord", 1));
        assert!(within_distance("headphones", "headphnes", 1));
        assert!(!within_distance("keyboard", "kyebaord", 1));
        assert!(within_distance("keyboard", "kyebaord", 2));
        assert!(within_distance("", "", 0));
        assert!(!within_distance("lamp", "lamps!!", 2));
    }

    #[test]
    fn highlights_stems_prefixes_and_typos() {
        let mut h = Highlighter::new(&words("keyboards wirel"), false);
        let s = h.full("Wireless Keyboard <fast> & quiet");
        assert_eq!(s.highlighted(), ["Wireless", "Keyboard"]);
        assert_eq!(s.to_html(), "<mark>Wireless</mark> <mark>Keyboard</mark> &lt;fast&gt; &amp; quiet");
        let mut typo = Highlighter::new(&words("keybaord "), true);
        assert_eq!(typo.full("A keyboard").highlighted(), ["keyboard"]);
    }

    #[test]
    fn excerpts_centre_on_the_first_match() {
        let text = format!("{} the oak desk lamp is here. {}", "filler ".repeat(60), "tail ".repeat(60));
        let mut h = Highlighter::new(&words("lamp "), false);
        let s = h.excerpt(&text);
        assert!(s.text.starts_with("… ") && s.text.ends_with(" …"), "{}", s.text);
        assert!(s.text.chars().count() <= SNIPPET_CHARS + 4);
        assert_eq!(s.highlighted(), ["lamp"]);
        let short = h.excerpt("a lamp");
        assert_eq!(short.highlighted(), ["lamp"]);
    }
}
