//! The tantivy schema of the product index, its analyzers, and the conversion between a
//! product's state ([`ProductDoc`]) and a tantivy document.
//!
//! Everything needed to rebuild a product's document from the index alone is stored, so an
//! update event (which carries only what changed) can replace the document without any
//! state outside the index.

use chrono::{DateTime, Utc};
use tantivy::schema::{FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument, Term};
use uuid::Uuid;

/// Words longer than this (in bytes) are not indexed: they are noise (hashes, base64, URLs).
pub(crate) const MAX_WORD_BYTES: usize = 40;

/// Analyzer of title and description: words, lowercased, accents folded, English stems.
pub(crate) const STEMMED: &str = "agora_stemmed";
/// Analyzer of `title_words`: the same words, unstemmed, for prefix and typo matching.
pub(crate) const WORDS: &str = "agora_words";

/// Schema version, stored in every commit payload: an index written by another version is
/// rebuilt rather than misread.
pub(crate) const SCHEMA_VERSION: u32 = 2;

pub(crate) fn stemmed_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES + 1))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

pub(crate) fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES + 1))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Field handles of the product schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub product_id: Field,
    pub id_hi: Field,
    pub id_lo: Field,
    pub vendor_id: Field,
    pub title: Field,
    pub title_words: Field,
    pub description: Field,
    pub category: Field,
    pub brand: Field,
    pub price_cents: Field,
    pub currency: Field,
    pub stock: Field,
    pub rating_sum: Field,
    pub rating_count: Field,
    pub rating: Field,
    pub rating_key: Field,
    pub created_at: Field,
    pub facet: Field,
}

/// Fast-field names read by collectors.
pub(crate) mod fast {
    pub const ID_HI: &str = "id_hi";
    pub const ID_LO: &str = "id_lo";
    pub const CATEGORY: &str = "category";
    pub const BRAND: &str = "brand";
    /// Category, brand and price bucket in one value: one read per matching document
    /// gives all three facet counts (see [`facet_key`](super::facet_key)).
    pub const FACET: &str = "facet";
    pub const PRICE_CENTS: &str = "price_cents";
    pub const RATING_KEY: &str = "rating_key";
    pub const CREATED_AT: &str = "created_at";
}

/// Small doc-store blocks: a result page reads ~10 random documents, and each read
/// decompresses a whole block.
pub(crate) fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings { docstore_blocksize: 4_096, ..Default::default() }
}

pub(crate) fn build_schema() -> Schema {
    let mut builder = Schema::builder();
    // BM25 needs term frequencies and field norms, not positions: no phrase queries here.
    let stemmed = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(STEMMED).set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    builder.add_text_field("product_id", STRING | STORED);
    builder.add_u64_field(fast::ID_HI, FAST);
    builder.add_u64_field(fast::ID_LO, FAST);
    builder.add_text_field("vendor_id", STRING | STORED);
    builder.add_text_field("title", stemmed.clone());
    builder.add_text_field("title_words", words);
    builder.add_text_field("description", stemmed);
    builder.add_text_field(fast::CATEGORY, STRING | STORED);
    builder.add_text_field(fast::BRAND, STRING | STORED);
    builder.add_text_field(fast::FACET, FAST);
    builder.add_i64_field(fast::PRICE_CENTS, FAST | STORED);
    builder.add_text_field("currency", STORED);
    builder.add_u64_field("stock", FAST | STORED);
    builder.add_u64_field("rating_sum", STORED);
    builder.add_u64_field("rating_count", STORED);
    builder.add_f64_field("rating", FAST);
    builder.add_u64_field(fast::RATING_KEY, FAST);
    builder.add_i64_field(fast::CREATED_AT, FAST | STORED);
    builder.build()
}

impl Fields {
    pub fn new(schema: &Schema) -> Result<Self, tantivy::TantivyError> {
        let f = |name: &str| schema.get_field(name);
        Ok(Self {
            product_id: f("product_id")?,
            id_hi: f(fast::ID_HI)?,
            id_lo: f(fast::ID_LO)?,
            vendor_id: f("vendor_id")?,
            title: f("title")?,
            title_words: f("title_words")?,
            description: f("description")?,
            category: f(fast::CATEGORY)?,
            brand: f(fast::BRAND)?,
            price_cents: f(fast::PRICE_CENTS)?,
            currency: f("currency")?,
            stock: f("stock")?,
            rating_sum: f("rating_sum")?,
            rating_count: f("rating_count")?,
            rating: f("rating")?,
            rating_key: f(fast::RATING_KEY)?,
            created_at: f(fast::CREATED_AT)?,
            facet: f(fast::FACET)?,
        })
    }

    pub fn id_term(&self, product_id: Uuid) -> Term {
        Term::from_field_text(self.product_id, &product_id.to_string())
    }
}

/// The facet value of a product: `"<bucket>:<category length>:<category><brand>"`, so any
/// category or brand text splits back unambiguously.
pub(crate) fn facet_key(category: &str, brand: &str, price_cents: i64) -> String {
    format!("{}:{}:{category}{brand}", crate::search::price_bucket(price_cents), category.len())
}

/// Split a facet value back into (price bucket, category, brand).
pub(crate) fn parse_facet_key(key: &str) -> Option<(usize, &str, &str)> {
    let (bucket, rest) = key.split_once(':')?;
    let (length, rest) = rest.split_once(':')?;
    let length: usize = length.parse().ok()?;
    if !rest.is_char_boundary(length) {
        return None;
    }
    let (category, brand) = rest.split_at(length);
    Some((bucket.parse().ok()?, category, brand))
}

/// Register the analyzers on an index (they are not persisted with it).
pub(crate) fn register_analyzers(index: &Index) {
    index.tokenizers().register(STEMMED, stemmed_analyzer());
    index.tokenizers().register(WORDS, words_analyzer());
}

/// Everything the index knows about one listed product.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProductDoc {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
    pub rating_sum: u64,
    pub rating_count: u64,
    pub created_at: DateTime<Utc>,
}

impl ProductDoc {
    pub fn rating_average(&self) -> f64 {
        if self.rating_count == 0 { 0.0 } else { self.rating_sum as f64 / self.rating_count as f64 }
    }

    /// Sort key of the `rating` sort: average (in thousandths) then number of ratings.
    pub fn rating_key(&self) -> u64 {
        let average = (self.rating_average() * 1000.0).round() as u64;
        (average << 32) | self.rating_count.min(u64::from(u32::MAX))
    }

    pub fn to_document(&self, fields: &Fields) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        let id = self.product_id.as_u128();
        doc.add_text(fields.product_id, self.product_id.to_string());
        doc.add_u64(fields.id_hi, (id >> 64) as u64);
        doc.add_u64(fields.id_lo, id as u64);
        doc.add_text(fields.vendor_id, self.vendor_id.to_string());
        doc.add_text(fields.title, &self.title);
        doc.add_text(fields.title_words, &self.title);
        doc.add_text(fields.description, &self.description);
        doc.add_text(fields.category, &self.category);
        doc.add_text(fields.brand, &self.brand);
        doc.add_i64(fields.price_cents, self.price_cents);
        doc.add_text(fields.currency, &self.currency);
        doc.add_u64(fields.stock, u64::from(self.stock));
        doc.add_u64(fields.rating_sum, self.rating_sum);
        doc.add_u64(fields.rating_count, self.rating_count);
        doc.add_f64(fields.rating, self.rating_average());
        doc.add_u64(fields.rating_key, self.rating_key());
        doc.add_i64(fields.created_at, self.created_at.timestamp_micros());
        doc.add_text(fields.facet, facet_key(&self.category, &self.brand, self.price_cents));
        doc
    }

    /// Read a stored document back; `None` if a field is missing (a document this crate did
    /// not write).
    pub fn from_document(doc: &TantivyDocument, fields: &Fields) -> Option<Self> {
        let text = |field: Field| doc.get_first(field).and_then(|v| v.as_str().map(str::to_owned));
        let number = |field: Field| doc.get_first(field).and_then(|v| v.as_u64());
        let signed = |field: Field| doc.get_first(field).and_then(|v| v.as_i64());
        Some(Self {
            product_id: Uuid::parse_str(&text(fields.product_id)?).ok()?,
            vendor_id: Uuid::parse_str(&text(fields.vendor_id)?).ok()?,
            title: text(fields.title)?,
            description: text(fields.description)?,
            category: text(fields.category)?,
            brand: text(fields.brand)?,
            price_cents: signed(fields.price_cents)?,
            currency: text(fields.currency)?,
            stock: u32::try_from(number(fields.stock)?).ok()?,
            rating_sum: number(fields.rating_sum)?,
            rating_count: number(fields.rating_count)?,
            created_at: DateTime::from_timestamp_micros(signed(fields.created_at)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProductDoc {
        ProductDoc {
            product_id: Uuid::now_v7(),
            vendor_id: Uuid::now_v7(),
            title: "Wireless Keyboard".into(),
            description: "A quiet keyboard.".into(),
            category: "Electronics".into(),
            brand: "Acme".into(),
            price_cents: 4999,
            currency: "EUR".into(),
            stock: 3,
            rating_sum: 9,
            rating_count: 2,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn document_round_trips() {
        let schema = build_schema();
        let fields = Fields::new(&schema).unwrap();
        let product = sample();
        let doc = product.to_document(&fields);
        assert_eq!(ProductDoc::from_document(&doc, &fields), Some(product));
    }

    #[test]
    fn facet_keys_split_back() {
        let key = facet_key("Home: Garden", "A:b", 1_234);
        assert_eq!(parse_facet_key(&key), Some((1, "Home: Garden", "A:b")));
        assert_eq!(parse_facet_key("x"), None);
        assert_eq!(parse_facet_key("1:99:short"), None);
    }

    #[test]
    fn rating_key_orders_by_average_then_count() {
        let mut a = sample();
        let mut b = sample();
        (a.rating_sum, a.rating_count) = (9, 2); // 4.5
        (b.rating_sum, b.rating_count) = (45, 10); // 4.5, more ratings
        assert!(b.rating_key() > a.rating_key());
        (b.rating_sum, b.rating_count) = (40, 10); // 4.0
        assert!(a.rating_key() > b.rating_key());
        assert_eq!(ProductDoc { rating_count: 0, rating_sum: 0, ..sample() }.rating_average(), 0.0);
    }
}
