//! The `Projection` trait: what a read model tells the runtime about itself.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use events::RecordedEvent;
use sqlx::PgConnection;

use crate::{Error, Result};

/// A read model fed from the log.
///
/// The runtime owns everything around `apply`: which generation schema the SQL lands in
/// (`set local search_path`), the transaction, the checkpoint, batching, retries and
/// leadership. A projection only turns a batch of events into SQL.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: checkpoint key, schema prefix (`rm_<name>_g<N>`), label in status and
    /// metrics. Lowercase ascii letters, digits and `_`.
    fn name(&self) -> &'static str;

    /// Bump when the tables' shape or the projection logic changes: a live generation built
    /// by another version is rebuilt.
    fn version(&self) -> u32;

    /// `create table` / `create index` statements with UNQUALIFIED names; the runtime runs
    /// them inside the generation schema.
    fn ddl(&self) -> &'static str;

    /// Tables the query side reads, exposed as `read_model.<table>` views on the live
    /// generation. Other tables of the DDL stay internal to the projection.
    fn tables(&self) -> &'static [&'static str];

    /// Event types this projection wants; others are never passed to `apply` (but the
    /// checkpoint still moves past them).
    fn event_types(&self) -> &'static [&'static str];

    /// Write the read-model changes of `events` (in log order, only wanted types) on `conn`,
    /// inside the runtime's transaction, using unqualified table names. An error rolls the
    /// whole batch back.
    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()>;
}

pub type SharedProjection = Arc<dyn Projection>;

/// Whether `name` may be used as a projection or reactor name (it becomes part of schema
/// names, so it is checked before any SQL is built from it).
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase();
    if valid { Ok(()) } else { Err(Error::InvalidName(name.to_owned())) }
}

/// The schema of generation `generation` of projection `name` (a checked name).
pub fn schema_name(name: &str, generation: i32) -> String {
    format!("rm_{name}_g{generation}")
}

/// The cheap pre-decoding filter of a projection.
#[derive(Debug, Clone)]
pub struct EventFilter {
    types: HashSet<&'static str>,
}

impl EventFilter {
    pub fn new(types: &[&'static str]) -> Self {
        Self { types: types.iter().copied().collect() }
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.types.contains(event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers_only_when_safe() {
        for good in ["catalog", "vendor_sales", "a1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Catalog", "1abc", "a-b", "a;drop", "a b", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(schema_name("catalog", 3), "rm_catalog_g3");
    }

    #[test]
    fn filter_knows_its_types() {
        let filter = EventFilter::new(&["product.listed", "review.approved"]);
        assert!(filter.wants("product.listed"));
        assert!(!filter.wants("product.delisted"));
    }
}
