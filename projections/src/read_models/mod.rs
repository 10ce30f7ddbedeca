//! The PostgreSQL read models. Each projection has a pure part (events in, rows out, tested
//! with given-events / expect-rows) and a thin SQL part: per batch it loads the rows the
//! batch touches (one query per table, `= any($1)`), folds the events over them in memory,
//! and writes the changed rows back (one multi-row upsert per table, `unnest` arrays).
//! Tables whose rows are updated many times (products, orders, deliveries, vendors) leave
//! room in their pages (`fillfactor`), so updates that touch no indexed column stay HOT
//! (no index writes).

pub mod accounts;
pub mod catalog;
pub mod deliveries;
pub mod orders;
pub mod reviews;

use std::sync::Arc;

use events::RecordedEvent;
use events::privacy::KeyVault;
use uuid::Uuid;

use crate::projection::SharedProjection;
use crate::{Error, Result};

/// Every read model of Agora (personal data opened with `vault`).
pub fn all_projections(vault: KeyVault) -> Vec<SharedProjection> {
    vec![
        Arc::new(catalog::Catalog),
        Arc::new(accounts::Accounts::new(vault)),
        Arc::new(orders::Orders),
        Arc::new(deliveries::Deliveries),
        Arc::new(reviews::Reviews),
    ]
}

/// The projections named in `names` (all when empty), in the order given.
pub fn select(all: &[SharedProjection], names: &[&str]) -> Result<Vec<SharedProjection>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|name| {
            all.iter().find(|p| p.name() == *name).cloned().ok_or_else(|| Error::UnknownProjection((*name).to_owned()))
        })
        .collect()
}

/// The aggregate id of the event's stream (`<category>-<uuid>`).
pub(crate) fn stream_uuid(event: &RecordedEvent) -> Result<Uuid> {
    event.stream_id.uuid().ok_or_else(|| Error::invalid_event(event, "stream id does not end in a uuid"))
}

/// Shown instead of the name of an erased account.
pub const ERASED_NAME: &str = "erased account";

/// Building recorded events for the given-events / expect-rows tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU64, Ordering};

    use chrono::{DateTime, TimeZone, Utc};
    use events::domain::DomainEvent;
    use events::{EventMetadata, LogPosition, RecordedEvent, StreamId};
    use uuid::Uuid;

    /// A fixed instant, `n` minutes after a base.
    pub fn at(n: u64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + 60 * n as i64, 0).single().expect("valid timestamp")
    }

    /// `event` as stored at version `version` of stream `<category>-<id>`, recorded at
    /// `at(version)`.
    pub fn recorded<E: DomainEvent>(category: &str, id: Uuid, version: u64, event: &E) -> RecordedEvent {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RecordedEvent {
            position: LogPosition::new(1, NEXT.fetch_add(1, Ordering::Relaxed)),
            event_id: Uuid::now_v7(),
            stream_id: StreamId::new(category, id),
            stream_version: version,
            event_type: event.event_type().to_owned(),
            schema_version: 1,
            data: event.to_json(),
            metadata: EventMetadata::default(),
            recorded_at: at(version),
        }
    }
}
