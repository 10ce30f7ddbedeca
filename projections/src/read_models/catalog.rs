//! `catalog`: products (details, price, stock, listing, approved-review rating) and listed
//! products per category.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::domain::catalog::ProductEvent;
use events::domain::reviews::ReviewEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::stream_uuid;
use crate::Result;
use crate::projection::Projection;

pub struct Catalog;

const DDL: &str = "
create table product (
    product_id    uuid primary key,
    vendor_id     uuid not null,
    title         text not null,
    description   text not null,
    category      text not null,
    brand         text not null,
    price_cents   bigint not null,
    currency      text not null,
    stock         bigint not null,
    in_stock      boolean not null,
    listed        boolean not null,
    rating_sum    bigint not null,
    rating_count  bigint not null,
    -- Average of approved reviews; null while there is none.
    rating_avg    double precision,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    delisted_at   timestamptz
) with (fillfactor = 70);
create index product_vendor on product (vendor_id);
create index product_listed_category on product (category) where listed;
create table category_count (
    category       text primary key,
    product_count  bigint not null
);
-- Internal: approved reviews counted in a rating, so a later rejection can take them out.
create table approved_review (
    review_id   uuid primary key,
    product_id  uuid not null,
    rating      smallint not null
);
";

const EVENT_TYPES: &[&str] = &[
    "product.listed",
    "product.details_changed",
    "product.price_changed",
    "product.stock_adjusted",
    "product.stock_reserved",
    "product.stock_released",
    "product.stock_held",
    "product.hold_released",
    "product.delisted",
    "review.approved",
    "review.rejected",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub listed: bool,
    pub rating_sum: i64,
    pub rating_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delisted_at: Option<DateTime<Utc>>,
}

impl ProductRow {
    pub fn in_stock(&self) -> bool {
        self.listed && self.stock > 0
    }

    pub fn rating_avg(&self) -> Option<f64> {
        (self.rating_count > 0).then(|| self.rating_sum as f64 / self.rating_count as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovedReview {
    pub product_id: Uuid,
    pub rating: i16,
}

/// The pure part: the rows a batch touches, folded over its events.
#[derive(Debug, Default)]
pub struct CatalogChanges {
    /// Current state of every product loaded or created.
    pub products: HashMap<Uuid, ProductRow>,
    pub changed: BTreeSet<Uuid>,
    /// Change of the listed-product count per category.
    pub category_delta: BTreeMap<String, i64>,
    /// Approval state of the reviews the batch moderates (`None`: not counted).
    pub approved: HashMap<Uuid, Option<ApprovedReview>>,
    pub approved_changed: BTreeSet<Uuid>,
}

/// A decoded event of this projection.
pub enum CatalogEvent {
    Product(ProductEvent),
    Review(ReviewEvent),
}

impl CatalogEvent {
    pub fn decode(event: &RecordedEvent) -> Result<Self> {
        Ok(if event.event_type.starts_with("review.") {
            CatalogEvent::Review(event.decode()?)
        } else {
            CatalogEvent::Product(event.decode()?)
        })
    }
}

impl CatalogChanges {
    fn count(&mut self, category: &str, delta: i64) {
        *self.category_delta.entry(category.to_owned()).or_default() += delta;
    }

    /// Fold one event in.
    pub fn apply(&mut self, event: &RecordedEvent, decoded: CatalogEvent) -> Result<()> {
        let at = event.recorded_at;
        match decoded {
            CatalogEvent::Product(ProductEvent::Listed(listed)) => {
                let previous = self.products.get(&listed.product_id).map(|p| (p.listed, p.category.clone()));
                if let Some((true, category)) = previous {
                    self.count(&category, -1);
                }
                let row = ProductRow {
                    product_id: listed.product_id,
                    vendor_id: listed.vendor_id,
                    title: listed.title,
                    description: listed.description,
                    category: listed.category,
                    brand: listed.brand,
                    price_cents: listed.price_cents,
                    currency: listed.currency,
                    stock: i64::from(listed.stock),
                    listed: true,
                    rating_sum: 0,
                    rating_count: 0,
                    created_at: at,
                    updated_at: at,
                    delisted_at: None,
                };
                self.count(&row.category, 1);
                self.changed.insert(row.product_id);
                self.products.insert(row.product_id, row);
            }
            CatalogEvent::Product(other) => {
                let product_id = stream_uuid(event)?;
                let Some(row) = self.products.get_mut(&product_id) else {
                    // Nothing to update: the product was never listed.
                    tracing::debug!(stream = %event.stream_id, event_type = %event.event_type, "event for an unknown product");
                    return Ok(());
                };
                let mut moved: Option<(String, String)> = None;
                let mut delisted = false;
                match other {
                    ProductEvent::DetailsChanged(details) => {
                        if row.listed && row.category != details.category {
                            moved = Some((row.category.clone(), details.category.clone()));
                        }
                        row.title = details.title;
                        row.description = details.description;
                        row.category = details.category;
                        row.brand = details.brand;
                    }
                    ProductEvent::PriceChanged(price) => {
                        row.price_cents = price.price_cents;
                        row.currency = price.currency;
                    }
                    ProductEvent::StockAdjusted(stock) => row.stock = i64::from(stock.stock),
                    ProductEvent::StockReserved(stock) => row.stock = i64::from(stock.stock),
                    ProductEvent::StockReleased(stock) => row.stock = i64::from(stock.stock),
                    ProductEvent::StockHeld(stock) => row.stock = i64::from(stock.stock),
                    ProductEvent::HoldReleased(stock) => row.stock = i64::from(stock.stock),
                    ProductEvent::Delisted(_) => {
                        if row.listed {
                            delisted = true;
                            row.listed = false;
                            row.delisted_at = Some(at);
                        }
                    }
                    ProductEvent::Listed(_) => {}
                }
                row.updated_at = at;
                let category = row.category.clone();
                self.changed.insert(product_id);
                if let Some((from, to)) = moved {
                    self.count(&from, -1);
                    self.count(&to, 1);
                }
                if delisted {
                    self.count(&category, -1);
                }
            }
            CatalogEvent::Review(ReviewEvent::Approved(approved)) => {
                if matches!(self.approved.get(&approved.review_id), Some(Some(_))) {
                    return Ok(());
                }
                let Some(row) = self.products.get_mut(&approved.product_id) else {
                    tracing::debug!(review_id = %approved.review_id, "approved review of an unknown product");
                    return Ok(());
                };
                row.rating_sum += i64::from(approved.rating);
                row.rating_count += 1;
                row.updated_at = at;
                self.changed.insert(approved.product_id);
                let rating = i16::from(approved.rating);
                self.approved
                    .insert(approved.review_id, Some(ApprovedReview { product_id: approved.product_id, rating }));
                self.approved_changed.insert(approved.review_id);
            }
            CatalogEvent::Review(ReviewEvent::Rejected(rejected)) => {
                // Only a review counted before (approved, then rejected) changes the rating.
                if let Some(Some(counted)) = self.approved.get(&rejected.review_id).copied() {
                    if let Some(row) = self.products.get_mut(&counted.product_id) {
                        row.rating_sum -= i64::from(counted.rating);
                        row.rating_count -= 1;
                        row.updated_at = at;
                        self.changed.insert(counted.product_id);
                    }
                    self.approved.insert(rejected.review_id, None);
                    self.approved_changed.insert(rejected.review_id);
                }
            }
            CatalogEvent::Review(ReviewEvent::Submitted(_)) => {}
        }
        Ok(())
    }
}

/// Products and reviews a batch needs loaded.
fn keys(events: &[RecordedEvent], decoded: &[CatalogEvent]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut products = BTreeSet::new();
    let mut reviews = BTreeSet::new();
    for (event, decoded) in events.iter().zip(decoded) {
        match decoded {
            CatalogEvent::Product(ProductEvent::Listed(listed)) => {
                products.insert(listed.product_id);
            }
            CatalogEvent::Product(_) => {
                if let Some(id) = event.stream_id.uuid() {
                    products.insert(id);
                }
            }
            CatalogEvent::Review(ReviewEvent::Approved(a)) => {
                products.insert(a.product_id);
                reviews.insert(a.review_id);
            }
            CatalogEvent::Review(ReviewEvent::Rejected(r)) => {
                products.insert(r.product_id);
                reviews.insert(r.review_id);
            }
            CatalogEvent::Review(ReviewEvent::Submitted(_)) => {}
        }
    }
    (products.into_iter().collect(), reviews.into_iter().collect())
}

#[async_trait]
impl Projection for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn version(&self) -> u32 {
        1
    }

    fn ddl(&self) -> &'static str {
        DDL
    }

    fn tables(&self) -> &'static [&'static str] {
        &["product", "category_count"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let decoded = events.iter().map(CatalogEvent::decode).collect::<Result<Vec<_>>>()?;
        let (product_ids, review_ids) = keys(events, &decoded);
        let mut changes =
            CatalogChanges { products: sql::load_products(conn, &product_ids).await?, ..Default::default() };
        if !review_ids.is_empty() {
            changes.approved = sql::load_approved(conn, &review_ids).await?;
        }
        for (event, decoded) in events.iter().zip(decoded) {
            changes.apply(event, decoded)?;
        }
        sql::save(conn, &changes).await
    }
}

mod sql {
    use super::*;

    const PRODUCT_COLUMNS: &str = "product_id, vendor_id, title, description, category, brand, price_cents, \
         currency, stock, listed, rating_sum, rating_count, created_at, updated_at, delisted_at";

    fn product(row: PgRow) -> sqlx::Result<ProductRow> {
        Ok(ProductRow {
            product_id: row.try_get(0)?,
            vendor_id: row.try_get(1)?,
            title: row.try_get(2)?,
            description: row.try_get(3)?,
            category: row.try_get(4)?,
            brand: row.try_get(5)?,
            price_cents: row.try_get(6)?,
            currency: row.try_get(7)?,
            stock: row.try_get(8)?,
            listed: row.try_get(9)?,
            rating_sum: row.try_get(10)?,
            rating_count: row.try_get(11)?,
            created_at: row.try_get(12)?,
            updated_at: row.try_get(13)?,
            delisted_at: row.try_get(14)?,
        })
    }

    pub async fn load_products(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("select {PRODUCT_COLUMNS} from product where product_id = any($1)"));
        let rows = sqlx::query(SQL.as_str()).bind(ids).try_map(product).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|p| (p.product_id, p)).collect())
    }

    pub async fn load_approved(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, Option<ApprovedReview>>> {
        let rows: Vec<(Uuid, Uuid, i16)> =
            sqlx::query_as("select review_id, product_id, rating from approved_review where review_id = any($1)")
                .bind(ids)
                .fetch_all(&mut *conn)
                .await?;
        Ok(rows.into_iter().map(|(id, product_id, rating)| (id, Some(ApprovedReview { product_id, rating }))).collect())
    }

    pub async fn save(conn: &mut PgConnection, changes: &CatalogChanges) -> Result<()> {
        let rows: Vec<&ProductRow> = changes.changed.iter().filter_map(|id| changes.products.get(id)).collect();
        if !rows.is_empty() {
            sqlx::query(
                "insert into product (product_id, vendor_id, title, description, category, brand, price_cents, \
                                      currency, stock, in_stock, listed, rating_sum, rating_count, rating_avg, \
                                      created_at, updated_at, delisted_at) \
                 select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                      $7::bigint[], $8::text[], $9::bigint[], $10::bool[], $11::bool[], \
                                      $12::bigint[], $13::bigint[], $14::float8[], $15::timestamptz[], \
                                      $16::timestamptz[], $17::timestamptz[]) \
                 on conflict (product_id) do update set \
                    vendor_id = excluded.vendor_id, title = excluded.title, description = excluded.description, \
                    category = excluded.category, brand = excluded.brand, price_cents = excluded.price_cents, \
                    currency = excluded.currency, stock = excluded.stock, in_stock = excluded.in_stock, \
                    listed = excluded.listed, rating_sum = excluded.rating_sum, \
                    rating_count = excluded.rating_count, rating_avg = excluded.rating_avg, \
                    created_at = excluded.created_at, updated_at = excluded.updated_at, \
                    delisted_at = excluded.delisted_at",
            )
            .bind(rows.iter().map(|r| r.product_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.vendor_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.description.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.category.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.brand.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.price_cents).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.currency.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.stock).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.in_stock()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.listed).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rating_sum).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rating_count).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rating_avg()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.delisted_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let deltas: Vec<(&String, &i64)> = changes.category_delta.iter().filter(|(_, d)| **d != 0).collect();
        if !deltas.is_empty() {
            let categories: Vec<&str> = deltas.iter().map(|(c, _)| c.as_str()).collect();
            sqlx::query(
                "insert into category_count (category, product_count) \
                 select * from unnest($1::text[], $2::bigint[]) \
                 on conflict (category) do update set product_count = category_count.product_count + excluded.product_count",
            )
            .bind(&categories)
            .bind(deltas.iter().map(|(_, d)| **d).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
            sqlx::query("delete from category_count where category = any($1) and product_count = 0")
                .bind(&categories)
                .execute(&mut *conn)
                .await?;
        }
        let (added, removed): (Vec<_>, Vec<_>) = changes
            .approved_changed
            .iter()
            .map(|id| (*id, changes.approved.get(id).copied().flatten()))
            .partition(|(_, state)| state.is_some());
        if !added.is_empty() {
            sqlx::query(
                "insert into approved_review (review_id, product_id, rating) \
                 select * from unnest($1::uuid[], $2::uuid[], $3::smallint[]) on conflict (review_id) do nothing",
            )
            .bind(added.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(added.iter().filter_map(|(_, a)| a.map(|a| a.product_id)).collect::<Vec<_>>())
            .bind(added.iter().filter_map(|(_, a)| a.map(|a| a.rating)).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !removed.is_empty() {
            sqlx::query("delete from approved_review where review_id = any($1)")
                .bind(removed.iter().map(|(id, _)| *id).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::testing::{at, recorded};
    use events::domain::catalog::*;
    use events::domain::reviews::*;

    fn listed(product: Uuid, vendor: Uuid, category: &str, stock: u32) -> ProductEvent {
        ProductEvent::Listed(ProductListed {
            product_id: product,
            vendor_id: vendor,
            title: "Kettle".into(),
            description: "Boils water".into(),
            category: category.into(),
            brand: "Acme".into(),
            price_cents: 2999,
            currency: "EUR".into(),
            stock,
        })
    }

    fn given(events: Vec<(RecordedEvent, CatalogEvent)>) -> CatalogChanges {
        let mut changes = CatalogChanges::default();
        for (event, decoded) in events {
            changes.apply(&event, decoded).expect("apply");
        }
        changes
    }

    fn product_event(product: Uuid, n: u64, event: ProductEvent) -> (RecordedEvent, CatalogEvent) {
        (recorded("product", product, n, &event), CatalogEvent::Product(event))
    }

    fn review_event(review: Uuid, n: u64, event: ReviewEvent) -> (RecordedEvent, CatalogEvent) {
        (recorded("review", review, n, &event), CatalogEvent::Review(event))
    }

    #[test]
    fn listing_price_stock_and_delisting_give_the_product_row_and_category_counts() {
        let (p, v) = (Uuid::now_v7(), Uuid::now_v7());
        let changes = given(vec![
            product_event(p, 1, listed(p, v, "kitchen", 3)),
            product_event(
                p,
                2,
                ProductEvent::PriceChanged(ProductPriceChanged { price_cents: 2499, currency: "EUR".into() }),
            ),
            product_event(
                p,
                3,
                ProductEvent::StockReserved(ProductStockReserved { order_id: Uuid::now_v7(), quantity: 3, stock: 0 }),
            ),
        ]);
        let row = &changes.products[&p];
        assert_eq!((row.price_cents, row.stock, row.listed, row.in_stock()), (2499, 0, true, false));
        assert_eq!(row.created_at, at(1));
        assert_eq!(row.updated_at, at(3));
        assert_eq!(changes.category_delta, BTreeMap::from([("kitchen".to_owned(), 1)]));

        let changes = given(vec![
            product_event(p, 1, listed(p, v, "kitchen", 3)),
            product_event(
                p,
                2,
                ProductEvent::DetailsChanged(ProductDetailsChanged {
                    title: "Kettle 2".into(),
                    description: "Boils faster".into(),
                    category: "appliances".into(),
                    brand: "Acme".into(),
                }),
            ),
            product_event(p, 3, ProductEvent::Delisted(ProductDelisted { product_id: p })),
        ]);
        let row = &changes.products[&p];
        assert_eq!(
            (row.title.as_str(), row.category.as_str(), row.listed, row.in_stock()),
            ("Kettle 2", "appliances", false, false)
        );
        assert_eq!(row.delisted_at, Some(at(3)));
        assert_eq!(
            changes.category_delta,
            BTreeMap::from([("kitchen".to_owned(), 0), ("appliances".to_owned(), 0)]),
            "listed, moved, then delisted: no listed product left in either category"
        );
    }

    #[test]
    fn only_approved_reviews_count_towards_the_rating() {
        let (p, v) = (Uuid::now_v7(), Uuid::now_v7());
        let (r1, r2, r3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let approve = |review, rating| {
            ReviewEvent::Approved(ReviewApproved { review_id: review, product_id: p, rating, moderator_id: v })
        };
        let changes = given(vec![
            product_event(p, 1, listed(p, v, "kitchen", 3)),
            review_event(r1, 2, approve(r1, 5)),
            review_event(r2, 2, approve(r2, 2)),
            review_event(r1, 3, approve(r1, 5)),
            review_event(
                r3,
                2,
                ReviewEvent::Rejected(ReviewRejected {
                    review_id: r3,
                    product_id: p,
                    moderator_id: v,
                    reason: "spam".into(),
                }),
            ),
        ]);
        let row = &changes.products[&p];
        assert_eq!((row.rating_sum, row.rating_count), (7, 2), "approving twice counts once; rejected never counts");
        assert_eq!(row.rating_avg(), Some(3.5));

        // Approved, then rejected: taken out again.
        let changes = given(vec![
            product_event(p, 1, listed(p, v, "kitchen", 3)),
            review_event(r1, 2, approve(r1, 4)),
            review_event(
                r1,
                3,
                ReviewEvent::Rejected(ReviewRejected {
                    review_id: r1,
                    product_id: p,
                    moderator_id: v,
                    reason: "late".into(),
                }),
            ),
        ]);
        assert_eq!((changes.products[&p].rating_count, changes.products[&p].rating_avg()), (0, None));
    }
}
