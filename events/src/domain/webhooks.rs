//! Webhooks: endpoints an admin registered to receive integration events over HTTP, and
//! requests to deliver one of them again.
//!
//! The signing secret is personal to the endpoint and must never sit in the log in clear: it is
//! sealed with a key of its own (key id = webhook id), like personal data of accounts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;
use crate::privacy::Sealed;

/// Stream category of webhooks: `webhook-<webhook id>`.
pub const WEBHOOK_CATEGORY: &str = "webhook";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRegistered {
    pub webhook_id: Uuid,
    pub url: String,
    /// Integration event types (`order.placed`, ...) the endpoint receives.
    pub event_types: Vec<String>,
    /// HMAC-SHA256 key of the `Agora-Signature` header, sealed with the webhook's own key.
    pub secret: Sealed,
    pub registered_by: Uuid,
}

/// An admin asked for one delivery to be attempted again (a fresh round of attempts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDeliveryReplayRequested {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub requested_by: Uuid,
}

domain_events! {
    /// Events of a webhook stream.
    pub enum WebhookEvent {
        "webhook.registered" v 1 => Registered(WebhookRegistered),
        "webhook.delivery_replay_requested" v 1 => DeliveryReplayRequested(WebhookDeliveryReplayRequested),
    }
}
