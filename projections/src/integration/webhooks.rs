//! The webhook outbox reactor (`webhook_outbox`): keeps the table of registered endpoints
//! from `webhook.*` events, and turns every integration event into one pending delivery per
//! endpoint subscribed to its type. Sending is the dispatcher's job ([`super::dispatch`]), so
//! a slow endpoint never holds this reactor (or anything else) back.
//!
//! Reactions are idempotent: a delivery's id derives from the endpoint and the event, and a
//! replay request remembers the event that asked for it.

use async_trait::async_trait;
use events::RecordedEvent;
use events::domain::webhooks::WebhookEvent;
use events::integration::{IntegrationEvent, SOURCE_TYPES};
use events::reactor::{ReactionError, Reactor};
use hmac::{KeyInit, Mac};
use sqlx::PgPool;
use uuid::Uuid;

/// The `Agora-Signature` header value of `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>`.
///
/// Signing the timestamp with the body lets a receiver refuse old (replayed) requests.
pub fn sign(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// The id of the delivery of `event_id` to `webhook_id`.
pub fn delivery_id(webhook_id: Uuid, event_id: Uuid) -> Uuid {
    events::ids::derived("webhook-delivery", &[webhook_id.as_bytes(), event_id.as_bytes()])
}

pub struct WebhookOutbox {
    pool: PgPool,
}

impl WebhookOutbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn on_webhook(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        match event.decode::<WebhookEvent>().map_err(|e| ReactionError::Fatal(e.to_string()))? {
            WebhookEvent::Registered(registered) => {
                let secret =
                    serde_json::to_value(&registered.secret).map_err(|e| ReactionError::Fatal(e.to_string()))?;
                sqlx::query(
                    "insert into integration.webhook_endpoint \
                     (webhook_id, url, event_types, secret, registered_by, registered_at) \
                     values ($1, $2, $3, $4, $5, $6) on conflict (webhook_id) do nothing",
                )
                .bind(registered.webhook_id)
                .bind(&registered.url)
                .bind(&registered.event_types)
                .bind(secret)
                .bind(registered.registered_by)
                .bind(event.recorded_at)
                .execute(&self.pool)
                .await
                .map_err(retry)?;
            }
            WebhookEvent::DeliveryReplayRequested(replay) => {
                // A fresh round of attempts, due now; once per request event.
                let updated = sqlx::query(
                    "update integration.webhook_delivery \
                     set state = 'pending', round_attempts = 0, next_attempt_at = now(), lease_until = null, \
                         replay_event_id = $3 \
                     where delivery_id = $1 and webhook_id = $2 and replay_event_id is distinct from $3",
                )
                .bind(replay.delivery_id)
                .bind(replay.webhook_id)
                .bind(event.event_id)
                .execute(&self.pool)
                .await
                .map_err(retry)?;
                tracing::info!(webhook_id = %replay.webhook_id, delivery_id = %replay.delivery_id,
                    requeued = updated.rows_affected(), "webhook delivery replay requested");
            }
        }
        Ok(())
    }

    async fn on_integration(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let public = match IntegrationEvent::from_recorded(event) {
            Ok(Some(public)) => public,
            Ok(None) => return Ok(()),
            Err(error) => return Err(ReactionError::Fatal(error.to_string())),
        };
        let endpoints: Vec<Uuid> = sqlx::query_scalar(
            "select webhook_id from integration.webhook_endpoint where $1 = any(event_types) order by webhook_id",
        )
        .bind(&public.event_type)
        .fetch_all(&self.pool)
        .await
        .map_err(retry)?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = endpoints.iter().map(|w| delivery_id(*w, public.id)).collect();
        sqlx::query(
            "insert into integration.webhook_delivery (delivery_id, webhook_id, event_id, event_type, payload) \
             select d, w, $3, $4, $5 from unnest($1::uuid[], $2::uuid[]) as t(d, w) \
             on conflict (webhook_id, event_id) do nothing",
        )
        .bind(&ids)
        .bind(&endpoints)
        .bind(public.id)
        .bind(&public.event_type)
        .bind(public.to_json())
        .execute(&self.pool)
        .await
        .map_err(retry)?;
        Ok(())
    }
}

fn retry(error: sqlx::Error) -> ReactionError {
    ReactionError::Retry(format!("webhook outbox: {error}"))
}

#[async_trait]
impl Reactor for WebhookOutbox {
    fn name(&self) -> &'static str {
        "webhook_outbox"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type.starts_with("webhook.") || SOURCE_TYPES.contains(&event_type)
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        if event.event_type.starts_with("webhook.") {
            self.on_webhook(event).await
        } else {
            self.on_integration(event).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value computed independently with `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret`.
        let header = sign(b"secret", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(header, "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686");
    }

    #[test]
    fn delivery_ids_are_stable_per_endpoint_and_event() {
        let (a, b, e) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(delivery_id(a, e), delivery_id(a, e));
        assert_ne!(delivery_id(a, e), delivery_id(b, e));
    }
}
