//! Shared test support: events as the log would hold them, and a small fixed catalogue.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use events::domain::DomainEvent;
use events::domain::catalog::{
    PRODUCT_CATEGORY, ProductDelisted, ProductDetailsChanged, ProductEvent, ProductListed, ProductPriceChanged,
    ProductStockAdjusted, StockAdjustmentReason,
};
use events::domain::reviews::{REVIEW_CATEGORY, ReviewApproved, ReviewEvent, ReviewRejected, ReviewSubmitted};
use events::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, PgEventStore, PgStoreOptions,
    RecordedEvent, StreamId,
};
use search::{CommitPolicy, Indexer, ProductIndex, ProductQuery};
use uuid::Uuid;

/// A recorded event at log position `(n, n)`, listed `n` minutes after a fixed instant.
pub fn recorded<E: DomainEvent>(n: u64, stream: StreamId, event: &E) -> RecordedEvent {
    RecordedEvent {
        position: LogPosition::new(n, n),
        event_id: Uuid::now_v7(),
        stream_id: stream,
        stream_version: 1,
        event_type: event.event_type().to_owned(),
        schema_version: E::schema_version(event.event_type()),
        data: event.to_json(),
        metadata: EventMetadata::default(),
        recorded_at: epoch() + Duration::minutes(n as i64),
    }
}

pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

pub fn product_stream(id: Uuid) -> StreamId {
    StreamId::new(PRODUCT_CATEGORY, id)
}

pub fn listed(
    id: u128,
    title: &str,
    description: &str,
    category: &str,
    brand: &str,
    price_cents: i64,
    stock: u32,
) -> ProductListed {
    ProductListed {
        product_id: Uuid::from_u128(id),
        vendor_id: Uuid::from_u128(if id.is_multiple_of(2) { 1_000 } else { 2_000 }),
        title: title.into(),
        description: description.into(),
        category: category.into(),
        brand: brand.into(),
        price_cents,
        currency: "EUR".into(),
        stock,
    }
}

/// The fixed catalogue of the relevance tests.
pub fn fixed_catalogue() -> Vec<ProductListed> {
    vec![
        listed(
            1,
            "Wireless Mechanical Keyboard",
            "A compact keyboard with hot-swappable switches.",
            "Computers",
            "Kestrel",
            8_999,
            12,
        ),
        listed(
            2,
            "Leather Desk Mat",
            "A large mat that fits your keyboard and mouse side by side.",
            "Computers",
            "Halden",
            2_999,
            40,
        ),
        listed(
            3,
            "Wireless Noise-Cancelling Headphones",
            "Over-ear headphones with a 30-hour battery.",
            "Audio",
            "Nordvik",
            19_900,
            0,
        ),
        listed(
            4,
            "Oak Desk Lamp",
            "A dimmable lamp with an oak base, made for reading.",
            "Lighting",
            "Halden",
            4_500,
            7,
        ),
        listed(
            5,
            "Ergonomic Wireless Mouse",
            "A quiet mouse that pairs with any wireless keyboard.",
            "Computers",
            "Kestrel",
            3_499,
            3,
        ),
        listed(6, "Portable Bluetooth Speaker", "A waterproof speaker for the beach.", "Audio", "Nordvik", 6_000, 25),
        listed(
            7,
            "Gaming Keyboard with RGB Lighting",
            "Mechanical switches, RGB lighting and a wrist rest.",
            "Computers",
            "Vantor",
            12_999,
            0,
        ),
        listed(
            8,
            "Walnut Standing Desk",
            "An adjustable desk in solid walnut for your home office.",
            "Furniture",
            "Halden",
            54_900,
            2,
        ),
        listed(
            9,
            "Stainless Steel Kettle",
            "A cordless kettle that boils a litre in three minutes.",
            "Kitchen",
            "Lumora",
            3_999,
            18,
        ),
        listed(
            10,
            "Café Espresso Machine",
            "Espresso like your favourite café, at home.",
            "Kitchen",
            "Lumora",
            34_900,
            4,
        ),
    ]
}

/// The catalogue as `product.listed` events at positions 1..=n.
pub fn listing_events(products: &[ProductListed]) -> Vec<RecordedEvent> {
    products
        .iter()
        .enumerate()
        .map(|(i, p)| recorded(i as u64 + 1, product_stream(p.product_id), &ProductEvent::from(p.clone())))
        .collect()
}

/// An in-memory index holding `events`, committed.
pub fn index_of(events: &[RecordedEvent]) -> ProductIndex {
    let index = ProductIndex::in_memory().unwrap();
    let mut indexer = Indexer::open(&index, CommitPolicy::live()).unwrap();
    for event in events {
        indexer.apply(event).unwrap();
    }
    indexer.commit().unwrap();
    index
}

pub fn ids(index: &ProductIndex, query: &ProductQuery) -> Vec<u128> {
    index.search(query).unwrap().hits.iter().map(|h| h.product_id.as_u128()).collect()
}

pub fn price_changed(price_cents: i64) -> ProductEvent {
    ProductPriceChanged { price_cents, currency: "EUR".into() }.into()
}

pub fn stock_adjusted(stock: u32) -> ProductEvent {
    ProductStockAdjusted { delta: 0, reason: StockAdjustmentReason::Correction, stock }.into()
}

pub fn details_changed(title: &str, description: &str, category: &str, brand: &str) -> ProductEvent {
    ProductDetailsChanged {
        title: title.into(),
        description: description.into(),
        category: category.into(),
        brand: brand.into(),
    }
    .into()
}

pub fn delisted(id: Uuid) -> ProductEvent {
    ProductDelisted { product_id: id }.into()
}

pub fn review_stream(review_id: Uuid) -> StreamId {
    StreamId::new(REVIEW_CATEGORY, review_id)
}

pub fn review_submitted(review_id: Uuid, product_id: Uuid, rating: u8) -> ReviewEvent {
    ReviewSubmitted { review_id, product_id, buyer_id: Uuid::now_v7(), rating, text: "fine".into() }.into()
}

pub fn review_approved(review_id: Uuid, product_id: Uuid, rating: u8) -> ReviewEvent {
    ReviewApproved { review_id, product_id, rating, moderator_id: Uuid::from_u128(9) }.into()
}

pub fn review_rejected(review_id: Uuid, product_id: Uuid) -> ReviewEvent {
    ReviewRejected { review_id, product_id, moderator_id: Uuid::from_u128(9), reason: "spam".into() }.into()
}

/// A PostgreSQL event store over a fresh test database.
pub async fn pg_store(db: &events::testing::TestDatabase) -> Arc<dyn EventStore> {
    Arc::new(PgEventStore::new(db.pool().clone(), PgStoreOptions::default()))
}

/// Append one event to `stream` (no version check); the position it landed at.
pub async fn append<E: DomainEvent>(store: &Arc<dyn EventStore>, stream: StreamId, event: &E) -> LogPosition {
    let request = AppendRequest::new().stream(
        stream,
        ExpectedVersion::Any,
        vec![NewEvent::from_domain(event, EventMetadata::default())],
    );
    store.append(request).await.unwrap().position()
}

/// Append many single-event streams in one request.
pub async fn append_listings(store: &Arc<dyn EventStore>, products: &[ProductListed]) -> LogPosition {
    let mut request = AppendRequest::new();
    for p in products {
        request = request.stream(
            product_stream(p.product_id),
            ExpectedVersion::NoStream,
            vec![NewEvent::from_domain(&ProductEvent::from(p.clone()), EventMetadata::default())],
        );
    }
    store.append(request).await.unwrap().position()
}

/// Wait until the index can show `position` (at most 20 s).
pub async fn wait_indexed(index: &ProductIndex, position: LogPosition) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while index.checkpoint() < position {
        assert!(tokio::time::Instant::now() < deadline, "index stuck at {} waiting for {position}", index.checkpoint());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
