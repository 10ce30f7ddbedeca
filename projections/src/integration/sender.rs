//! Sending queued notifications through a [`Channel`].
//!
//! A sender task (in every `project` process; leases keep them from sending one message
//! twice) takes due notifications, opens the recipient's sealed email and name (an erased
//! account is `skipped`), renders the template and hands the message to the channel. A
//! failure is retried with doubling delays up to `max_attempts`, then the notification is
//! `failed`; a channel error that retrying cannot fix (a malformed address) fails it at once.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use events::privacy::{KeyVault, Opened, Sealed};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::notifications::{NotificationOptions, render, template};
use crate::runtime::sleep_or_shutdown;

/// A rendered message for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub notification_id: Uuid,
    pub recipient_id: Uuid,
    pub to_email: String,
    pub to_name: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Worth another attempt later (server unreachable, temporary SMTP failure).
    #[error("{0}")]
    Transient(String),
    /// Will not succeed by retrying (address refused, malformed).
    #[error("{0}")]
    Permanent(String),
}

/// A way to reach people: email over SMTP, the log, (later) SMS or push.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Recorded with each sent notification.
    fn name(&self) -> &'static str;
    async fn send(&self, message: &Message) -> Result<(), ChannelError>;
}

/// The default channel: writes one log line per message (without the address or body, which
/// are personal data), so a development setup shows what would have been sent.
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &Message) -> Result<(), ChannelError> {
        tracing::info!(channel = "log", notification_id = %message.notification_id, recipient_id = %message.recipient_id,
            subject = %message.subject, "notification");
        Ok(())
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Due {
    notification_id: Uuid,
    recipient_id: Uuid,
    template: String,
    params: Value,
    subject: String,
    attempts: i32,
    email: Option<Value>,
    name: Option<Value>,
}

enum Outcome {
    Sent,
    Skipped(String),
    Failed { error: String, permanent: bool },
}

/// Send due notifications until `shutdown` turns true.
pub async fn run_notification_sender(
    pool: PgPool,
    vault: KeyVault,
    channel: Arc<dyn Channel>,
    options: NotificationOptions,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    tracing::info!(channel = channel.name(), "notification sender running");
    loop {
        let due = match claim(&pool, 16).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot claim notifications, retrying");
                Vec::new()
            }
        };
        if due.is_empty() {
            if sleep_or_shutdown(options.poll, &mut shutdown).await {
                return Ok(());
            }
            continue;
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(4, |due| {
                let (pool, vault, channel, options) = (&pool, &vault, &channel, &options);
                async move {
                    let id = due.notification_id;
                    let attempts = due.attempts;
                    let outcome = send(vault, &**channel, due).await;
                    if let Err(error) = record(pool, id, attempts, channel.name(), outcome, options).await {
                        // The lease runs out and it is attempted again: at-least-once.
                        tracing::warn!(notification_id = %id, %error, "cannot record a notification attempt");
                    }
                }
            })
            .await;
    }
}

async fn claim(pool: &PgPool, limit: i64) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "with due as ( \
           select notification_id from integration.notification \
           where state = 'pending' and next_attempt_at <= now() and (lease_until is null or lease_until < now()) \
           order by next_attempt_at limit $1 for update skip locked) \
         update integration.notification n set lease_until = now() + interval '2 minutes' \
         from due \
         where n.notification_id = due.notification_id \
         returning n.notification_id, n.recipient_id, n.template, n.params, n.subject, n.attempts, \
           (select email from integration.notification_recipient where account_id = n.recipient_id and not erased) as email, \
           (select name from integration.notification_recipient where account_id = n.recipient_id and not erased) as name",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

async fn send(vault: &KeyVault, channel: &dyn Channel, due: Due) -> Outcome {
    let (Some(email), Some(name)) = (due.email, due.name) else {
        return Outcome::Skipped("recipient erased".into());
    };
    let open = |value: Value| async move {
        let sealed: Sealed =
            serde_json::from_value(value).map_err(|e| format!("stored contact data unreadable: {e}"))?;
        vault.open(&sealed).await.map_err(|e| format!("cannot open contact data: {e}"))
    };
    let (email, name) = match (open(email).await, open(name).await) {
        (Ok(Opened::Value(email)), Ok(Opened::Value(name))) => (email, name),
        (Ok(Opened::Erased), _) | (_, Ok(Opened::Erased)) => return Outcome::Skipped("recipient erased".into()),
        (Err(error), _) | (_, Err(error)) => return Outcome::Failed { error, permanent: false },
    };
    let Some(template) = template(&due.template) else {
        return Outcome::Failed { error: format!("no template {}", due.template), permanent: true };
    };
    let mut params: Map<String, Value> = match due.params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    params.insert("name".into(), Value::String(name.clone()));
    let body = match render(template.body, &params) {
        Ok(body) => body,
        Err(error) => return Outcome::Failed { error, permanent: true },
    };
    let message = Message {
        notification_id: due.notification_id,
        recipient_id: due.recipient_id,
        to_email: email,
        to_name: name,
        subject: due.subject,
        body,
    };
    match channel.send(&message).await {
        Ok(()) => Outcome::Sent,
        Err(ChannelError::Transient(error)) => Outcome::Failed { error, permanent: false },
        Err(ChannelError::Permanent(error)) => Outcome::Failed { error, permanent: true },
    }
}

async fn record(
    pool: &PgPool,
    id: Uuid,
    attempts: i32,
    channel: &str,
    outcome: Outcome,
    options: &NotificationOptions,
) -> Result<(), sqlx::Error> {
    let attempt = attempts + 1;
    let (state, error) = match &outcome {
        Outcome::Sent => ("sent", None),
        Outcome::Skipped(reason) => ("skipped", Some(reason.as_str())),
        Outcome::Failed { error, permanent } if *permanent || attempt >= options.max_attempts as i32 => {
            ("failed", Some(error.as_str()))
        }
        Outcome::Failed { error, .. } => ("pending", Some(error.as_str())),
    };
    if let Outcome::Failed { error, .. } = &outcome {
        tracing::warn!(notification_id = %id, attempt, state, %error, "notification not sent");
    }
    metrics::counter!("agora_notifications_total", "channel" => channel.to_owned(), "state" => state).increment(1);
    let delay = options.backoff.saturating_mul(1u32 << (attempt - 1).clamp(0, 20) as u32);
    let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
    let attempted = !matches!(outcome, Outcome::Skipped(_));
    sqlx::query(
        "update integration.notification set state = $2, last_error = $3, lease_until = null, \
           attempts = attempts + $4, next_attempt_at = $5, channel = case when $4 = 1 then $6 else channel end, \
           sent_at = case when $2 = 'sent' then now() else sent_at end \
         where notification_id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .bind(i32::from(attempted))
    .bind(next)
    .bind(channel)
    .execute(pool)
    .await?;
    Ok(())
}
