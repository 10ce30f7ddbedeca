//! `read_model.account` and `read_model.vendor` (projection `accounts`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub role: String,
    /// `None` once erased.
    pub email: Option<String>,
    pub name: String,
    pub erased: bool,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VendorRow {
    pub vendor_id: Uuid,
    pub display_name: String,
    pub product_count: i64,
    pub erased: bool,
}

pub async fn accounts(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<AccountRow>> {
    sqlx::query_as(
        "select account_id, role, email, name, erased, registered_at from read_model.account \
          where account_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

pub async fn vendors(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<VendorRow>> {
    sqlx::query_as(
        "select vendor_id, display_name, product_count, erased from read_model.vendor where vendor_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Vendor rows read in the last second, for the vendor of every product a list shows: a
/// storefront page names the same few vendors again and again, and reading them was a
/// statement per page. A request with a `Consistency-Token` never uses it (it reads, then
/// refreshes it); without one, a vendor's name or product count may be up to
/// `RecentVendors::FRESH_FOR` older than the read model, which the read models' own lag
/// already allows.
#[derive(Debug, Default)]
pub struct RecentVendors {
    rows: RwLock<HashMap<Uuid, (VendorRow, Instant)>>,
}

impl RecentVendors {
    pub const FRESH_FOR: Duration = Duration::from_secs(1);
    /// Rows kept at most: then the map starts over.
    const CAPACITY: usize = 10_000;

    /// The row of `vendor_id` if it was read within `FRESH_FOR`.
    pub fn get(&self, vendor_id: Uuid) -> Option<VendorRow> {
        let rows = self.rows.read().ok()?;
        let (row, read_at) = rows.get(&vendor_id)?;
        (read_at.elapsed() < Self::FRESH_FOR).then(|| row.clone())
    }

    /// Forget every row (the next reads go to the read model).
    pub fn forget(&self) {
        if let Ok(mut map) = self.rows.write() {
            map.clear();
        }
    }

    /// Remember `rows`, read just now.
    pub fn put(&self, rows: &[VendorRow]) {
        let now = Instant::now();
        if let Ok(mut map) = self.rows.write() {
            if map.len() + rows.len() > Self::CAPACITY {
                map.retain(|_, (_, read_at)| read_at.elapsed() < Self::FRESH_FOR);
                if map.len() + rows.len() > Self::CAPACITY {
                    map.clear();
                }
            }
            for row in rows {
                map.insert(row.vendor_id, (row.clone(), now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor(name: &str) -> VendorRow {
        VendorRow { vendor_id: Uuid::from_u128(7), display_name: name.into(), product_count: 1, erased: false }
    }

    #[test]
    fn recent_vendors_answer_only_while_fresh_and_keep_the_latest_read() {
        let recent = RecentVendors::default();
        assert_eq!(recent.get(Uuid::from_u128(7)), None);
        recent.put(&[vendor("Old name")]);
        recent.put(&[vendor("New name")]);
        assert_eq!(recent.get(Uuid::from_u128(7)).map(|r| r.display_name), Some("New name".into()));
        if let Ok(mut rows) = recent.rows.write() {
            for (_, read_at) in rows.values_mut() {
                *read_at -= RecentVendors::FRESH_FOR;
            }
        }
        assert_eq!(recent.get(Uuid::from_u128(7)), None, "a row older than FRESH_FOR is not used");
    }
}
