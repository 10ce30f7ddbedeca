//! Readiness of a query process: every read model and the search index must be within a
//! lag of the log, measured as the age of the oldest event each has not applied yet.

use std::time::Duration;

use chrono::Utc;
use events::{EventStore, LogPosition};

use crate::api::QueryApi;
use crate::consistency::{Source, read_positions};

/// How far behind the log one source is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub source: Source,
    pub position: LogPosition,
    /// Age of the oldest event not applied yet; zero when caught up.
    pub behind: Duration,
}

/// The lag of every source (one checkpoint statement and one small log read per source).
pub async fn lags(api: &QueryApi, store: &dyn EventStore) -> Result<Vec<Lag>, String> {
    let positions = read_positions(api.read_models().pool())
        .await
        .map_err(|e| format!("cannot read projection checkpoints: {e}"))?;
    let mut lags = Vec::with_capacity(Source::ALL.len());
    for source in Source::ALL {
        let position = match source {
            Source::SearchIndex => api.index().checkpoint(),
            other => positions.get(other).unwrap_or(LogPosition::START),
        };
        let next = store.read_all(position, 1).await.map_err(|e| format!("cannot read the log: {e}"))?;
        let behind = next
            .first()
            .map(|event| (Utc::now() - event.recorded_at).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::ZERO);
        metrics::gauge!("agora_query_source_lag_seconds", "source" => source.name()).set(behind.as_secs_f64());
        lags.push(Lag { source, position, behind });
    }
    Ok(lags)
}

/// `Ok` when every source is within `max_lag`, else which ones are not and by how much.
pub async fn check(api: &QueryApi, store: &dyn EventStore, max_lag: Duration) -> Result<(), String> {
    let late: Vec<String> = lags(api, store)
        .await?
        .into_iter()
        .filter(|lag| lag.behind > max_lag)
        .map(|lag| {
            format!("{} is {:.1} s behind the log (at {})", lag.source.name(), lag.behind.as_secs_f64(), lag.position)
        })
        .collect();
    if late.is_empty() { Ok(()) } else { Err(late.join("; ")) }
}
