//! Process managers (sagas): code that reacts to events by issuing commands.
//!
//! A `Reactor` is run by the projections runtime like a projection: from a checkpoint,
//! with one active instance per reactor across processes. Delivery is at-least-once (a
//! crash between a reaction and the checkpoint replays it), so every reaction must be
//! idempotent: commands it issues carry event ids derived from the triggering event
//! ([`crate::ids::reaction_event`]), so a replay appends nothing new, and calls to outside
//! systems carry their own idempotency keys.

use async_trait::async_trait;

use crate::envelope::RecordedEvent;

#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth trying again later (gateway timeout, database unavailable, lost race).
    #[error("transient: {0}")]
    Retry(String),
    /// Will not succeed by retrying: the runtime stops at this event and reports it until
    /// an operator parks it.
    #[error("{0}")]
    Fatal(String),
}

#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the name in status and metrics.
    fn name(&self) -> &'static str;

    /// Whether events of this type concern the reactor (checked before `react`).
    fn wants(&self, event_type: &str) -> bool;

    /// React to one event. Called at least once per wanted event, in log order per
    /// stream; may be called again for the same event.
    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError>;
}
