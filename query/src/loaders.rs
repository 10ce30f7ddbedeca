//! DataLoaders: every relation a list could ask for item by item (a product's vendor, an
//! order's lines, a delivery's history, a product's reviews, ...) is collected for a moment
//! and read in one statement per relation.
//!
//! One `DataLoader<Loaders>` per request (so nothing is shared between callers), with one
//! key type per relation. Each batch first waits for its read model when the request
//! carries a consistency token.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use crate::consistency::{Consistency, Source};
use crate::error::{Error, LoadError};
use crate::pagination::Keyset;
use crate::read_models::accounts::{self, AccountRow, VendorRow};
use crate::read_models::catalog::{self, ProductRow};
use crate::read_models::deliveries::{self, DeliveryRow, TrackingRow};
use crate::read_models::orders::{self, LineRow, OrderRow, StatusRow};
use crate::read_models::reviews::{self, ReviewRow};
use crate::read_models::{Page, ReadModels};

/// How long a loader collects keys before it queries.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_micros(250);

/// The batch functions of one request.
pub struct Loaders {
    read: ReadModels,
    consistency: Arc<Consistency>,
}

impl Loaders {
    /// A request's loader.
    pub fn data_loader(read: ReadModels, consistency: Arc<Consistency>) -> DataLoader<Loaders> {
        // Keys of one level of a response arrive within microseconds of each other; the
        // default 1 ms wait would add a millisecond per level to every response.
        DataLoader::new(Loaders { read, consistency }, tokio::spawn).delay(BATCH_WINDOW)
    }

    async fn ready(&self, source: Source) -> Result<(), LoadError> {
        Ok(self.consistency.ready(source).await?)
    }
}

fn db(error: sqlx::Error) -> LoadError {
    LoadError::from(Error::Database(error))
}

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(|k| id(*k)).collect()
}

/// Rows grouped under every key asked for (empty lists included).
fn grouped<K, R>(keys: &[K], rows: Vec<R>, key_of: impl Fn(&R) -> K) -> HashMap<K, Vec<R>>
where
    K: Copy + Eq + std::hash::Hash,
{
    let mut map: HashMap<K, Vec<R>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in rows {
        map.entry(key_of(&row)).or_default().push(row);
    }
    map
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProductKey(pub Uuid);

impl Loader<ProductKey> for Loaders {
    type Value = ProductRow;
    type Error = LoadError;

    async fn load(&self, keys: &[ProductKey]) -> Result<HashMap<ProductKey, ProductRow>, LoadError> {
        self.ready(Source::Catalog).await?;
        let rows = catalog::products(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(rows.into_iter().map(|r| (ProductKey(r.product_id), r)).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorKey(pub Uuid);

impl Loader<VendorKey> for Loaders {
    type Value = VendorRow;
    type Error = LoadError;

    async fn load(&self, keys: &[VendorKey]) -> Result<HashMap<VendorKey, VendorRow>, LoadError> {
        self.ready(Source::Accounts).await?;
        let rows = accounts::vendors(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        self.read.recent_vendors().put(&rows);
        Ok(rows.into_iter().map(|r| (VendorKey(r.vendor_id), r)).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(pub Uuid);

impl Loader<AccountKey> for Loaders {
    type Value = AccountRow;
    type Error = LoadError;

    async fn load(&self, keys: &[AccountKey]) -> Result<HashMap<AccountKey, AccountRow>, LoadError> {
        self.ready(Source::Accounts).await?;
        let rows = accounts::accounts(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(rows.into_iter().map(|r| (AccountKey(r.account_id), r)).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderKey(pub Uuid);

impl Loader<OrderKey> for Loaders {
    type Value = OrderRow;
    type Error = LoadError;

    async fn load(&self, keys: &[OrderKey]) -> Result<HashMap<OrderKey, OrderRow>, LoadError> {
        self.ready(Source::Orders).await?;
        let rows = orders::orders(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(rows.into_iter().map(|r| (OrderKey(r.order_id), r)).collect())
    }
}

/// An order's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinesKey(pub Uuid);

impl Loader<LinesKey> for Loaders {
    type Value = Vec<LineRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[LinesKey]) -> Result<HashMap<LinesKey, Vec<LineRow>>, LoadError> {
        self.ready(Source::Orders).await?;
        let rows = orders::lines(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(grouped(keys, rows, |r| LinesKey(r.order_id)))
    }
}

/// An order's status timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusHistoryKey(pub Uuid);

impl Loader<StatusHistoryKey> for Loaders {
    type Value = Vec<StatusRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[StatusHistoryKey]) -> Result<HashMap<StatusHistoryKey, Vec<StatusRow>>, LoadError> {
        self.ready(Source::Orders).await?;
        let rows = orders::status_history(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(grouped(keys, rows, |r| StatusHistoryKey(r.order_id)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryKey(pub Uuid);

impl Loader<DeliveryKey> for Loaders {
    type Value = DeliveryRow;
    type Error = LoadError;

    async fn load(&self, keys: &[DeliveryKey]) -> Result<HashMap<DeliveryKey, DeliveryRow>, LoadError> {
        self.ready(Source::Deliveries).await?;
        let rows = deliveries::deliveries(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(rows.into_iter().map(|r| (DeliveryKey(r.delivery_id), r)).collect())
    }
}

/// A delivery's tracking history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackingKey(pub Uuid);

impl Loader<TrackingKey> for Loaders {
    type Value = Vec<TrackingRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[TrackingKey]) -> Result<HashMap<TrackingKey, Vec<TrackingRow>>, LoadError> {
        self.ready(Source::Deliveries).await?;
        let rows = deliveries::tracking(self.read.pool(), &ids(keys, |k| k.0)).await.map_err(db)?;
        Ok(grouped(keys, rows, |r| TrackingKey(r.delivery_id)))
    }
}

/// One page of a product's approved reviews: `size` reviews after `after`. The rows
/// loaded are one more than `size` when another page follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReviewPageKey {
    pub product_id: Uuid,
    pub size: usize,
    pub after: Option<Keyset>,
}

impl Loader<ReviewPageKey> for Loaders {
    type Value = Vec<ReviewRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[ReviewPageKey]) -> Result<HashMap<ReviewPageKey, Vec<ReviewRow>>, LoadError> {
        self.ready(Source::Reviews).await?;
        // Keys asking for the same page (size and cursor) of different products share a
        // statement: a list of products showing their first reviews is one statement.
        let mut pages: HashMap<(usize, Option<Keyset>), Vec<ReviewPageKey>> = HashMap::new();
        for key in keys {
            pages.entry((key.size, key.after)).or_default().push(*key);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for ((size, after), keys) in pages {
            let rows = reviews::approved_pages(self.read.pool(), &ids(&keys, |k| k.product_id), Page::of(size, after))
                .await
                .map_err(db)?;
            let by_product = grouped(&ids(&keys, |k| k.product_id), rows, |r| r.product_id);
            for key in keys {
                out.insert(key, by_product.get(&key.product_id).cloned().unwrap_or_default());
            }
        }
        Ok(out)
    }
}
