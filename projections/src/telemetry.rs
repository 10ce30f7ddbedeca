//! Metrics of projections and reactors (through the `metrics` facade; the binary installs
//! the Prometheus exporter). Every series carries `projection` (the name) and `kind`
//! (`projection` or `reactor`).

use std::time::Duration;

use events::LogPosition;
use metrics::{counter, gauge, histogram};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    pub name: &'static str,
    pub kind: &'static str,
}

impl Meter {
    pub fn projection(name: &'static str) -> Self {
        Self { name, kind: "projection" }
    }

    pub fn reactor(name: &'static str) -> Self {
        Self { name, kind: "reactor" }
    }

    fn labels(&self) -> [(&'static str, &'static str); 2] {
        [("projection", self.name), ("kind", self.kind)]
    }

    /// A batch committed: checkpoint, batch size, events passed and events applied.
    pub fn batch(&self, checkpoint: LogPosition, size: usize, applied: usize, took: Duration) {
        gauge!("agora_projection_checkpoint", &self.labels()).set(checkpoint.commit() as f64);
        histogram!("agora_projection_batch_size", &self.labels()).record(size as f64);
        histogram!("agora_projection_batch_seconds", &self.labels()).record(took.as_secs_f64());
        counter!("agora_projection_events_processed_total", &self.labels()).increment(size as u64);
        counter!("agora_projection_events_applied_total", &self.labels()).increment(applied as u64);
    }

    pub fn lag(&self, events: u64, seconds: f64) {
        gauge!("agora_projection_lag_events", &self.labels()).set(events as f64);
        gauge!("agora_projection_lag_seconds", &self.labels()).set(seconds);
    }

    /// An error (of an event or of the infrastructure).
    pub fn error(&self) {
        counter!("agora_projection_errors_total", &self.labels()).increment(1);
    }

    /// 1 while stopped at a failing event.
    pub fn stalled(&self, stalled: bool) {
        gauge!("agora_projection_stalled", &self.labels()).set(if stalled { 1.0 } else { 0.0 });
    }

    /// 1 while this process is the active instance.
    pub fn leader(&self, leader: bool) {
        gauge!("agora_projection_leader", &self.labels()).set(if leader { 1.0 } else { 0.0 });
    }
}
