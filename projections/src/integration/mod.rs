//! Talking to the outside world from the log: integration events to NATS JetStream, webhooks
//! and notifications.
//!
//! All three are reactors (process managers) on the shared runtime, so they get a checkpoint,
//! one active instance across processes, retries with backoff, failure records, parking, and a
//! line in `agora status` and the metrics. None of them is a read model: they are never
//! rebuilt, because a rebuild must not publish, call or mail anything twice.
//!
//! - [`relay`]: publishes each integration event and moves its checkpoint only after the
//!   broker acknowledged it (at-least-once; the event id is the `Nats-Msg-Id`, so JetStream
//!   drops duplicates within its de-duplication window).
//! - [`webhooks`]: the outbox reactor turns integration events into one delivery per
//!   subscribed endpoint; the [`dispatch`] task sends them (signed, retried, recorded) outside
//!   the reactor, so a slow endpoint holds back nothing but its own deliveries.
//! - [`notifications`]: the notifier turns order and delivery events into messages in an
//!   outbox; the [`sender`] sends them through a [`Channel`] (SMTP, or the log).

/// Sending webhook deliveries: claim, sign, POST, record, back off.
pub mod dispatch;
/// The webhook HTTP client (HTTP/1.1, rustls).
pub mod http;
/// The notification process manager and its templates.
pub mod notifications;
/// The JetStream relay.
pub mod relay;
/// Sending notifications from the outbox through a channel.
pub mod sender;
/// The webhook outbox reactor and the signature scheme.
pub mod webhooks;

pub use dispatch::{WebhookOptions, run_webhook_dispatcher};
pub use notifications::{NotificationOptions, Notifier};
pub use relay::{NatsRelay, RelayConfig};
pub use sender::{Channel, ChannelError, LogChannel, Message, run_notification_sender};
pub use webhooks::{WebhookOutbox, sign};

use crate::RunOptions;

/// Runtime options for the integration reactors: one reaction at a time, in log order.
///
/// The relay publishes in log order (consumers see a stream's events in order, and the
/// global order too); the outbox and the notifier read tables written by earlier events of
/// other streams (an endpoint registered, an account registered), so they must not overtake.
pub fn in_order(mut options: RunOptions) -> RunOptions {
    options.reactor_concurrency = 1;
    options
}
