//! The notification process manager (`notifications`): order and delivery events become
//! messages to the people concerned, queued in `integration.notification`.
//!
//! | event | to | template |
//! | --- | --- | --- |
//! | `order.placed` | each vendor of the order | `new_order` |
//! | `order.confirmed` | the buyer | `order_confirmed` |
//! | `order.cancelled` | the buyer | `order_cancelled` |
//! | `delivery.tracked` | the buyer | `delivery_update` |
//!
//! Contact data is kept sealed (from the account events) and opened only by the sender, so an
//! erased account receives nothing, even a message queued before the erasure. Events older
//! than `max_age` queue nothing: replaying the log (a reset checkpoint, a restored backup)
//! must not mail people about last year's orders.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use events::RecordedEvent;
use events::domain::accounts::AccountEvent;
use events::domain::deliveries::DeliveryEvent;
use events::domain::orders::OrderEvent;
use events::privacy::KeyVault;
use events::reactor::{ReactionError, Reactor};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Tuning of notifications (`NOTIFY_*` settings).
#[derive(Debug, Clone)]
pub struct NotificationOptions {
    /// Events older than this queue no notification.
    pub max_age: Duration,
    /// Attempts before a notification is `failed`.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each further failure.
    pub backoff: Duration,
    /// How often an idle sender looks for due notifications.
    pub poll: Duration,
}

impl Default for NotificationOptions {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(72 * 3600),
            max_attempts: 5,
            backoff: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }
}

/// A message template: `{{name}}` placeholders, filled from the notification's parameters
/// plus `name` (the recipient's, opened when sending).
pub struct Template {
    pub name: &'static str,
    pub subject: &'static str,
    pub body: &'static str,
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "new_order",
        subject: "New order {{order_ref}}",
        body: "Hello {{name}},\n\nyou have a new order {{order_ref}}:\n{{lines}}\n\nPlease prepare it for shipping.\n\n-- Agora\n",
    },
    Template {
        name: "order_confirmed",
        subject: "Your order {{order_ref}} is confirmed",
        body: "Hello {{name}},\n\nthank you for your order {{order_ref}} ({{total}}). Payment is authorised and \
               your vendors are preparing it. We will tell you when it is on its way.\n\n-- Agora\n",
    },
    Template {
        name: "order_cancelled",
        subject: "Your order {{order_ref}} was cancelled",
        body: "Hello {{name}},\n\nyour order {{order_ref}} ({{total}}) was cancelled ({{reason}}). \
               Any payment is refunded.\n\n-- Agora\n",
    },
    Template {
        name: "delivery_update",
        subject: "Your order {{order_ref}}: {{status}}",
        body: "Hello {{name}},\n\nyour parcel for order {{order_ref}} is {{status}} ({{location}}, {{occurred_at}}).\n\n-- Agora\n",
    },
];

/// Render `text`, replacing every `{{key}}` with its parameter. A placeholder without a value
/// is an error (a bug in a template), never sent as is.
pub fn render(text: &str, params: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "unclosed placeholder".to_owned())?;
        let key = after[..end].trim();
        match params.get(key) {
            Some(Value::String(value)) => out.push_str(value),
            Some(other) => out.push_str(&other.to_string()),
            None => return Err(format!("no value for placeholder {key:?}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// A notification to queue.
struct Queued {
    recipient_id: Uuid,
    template: &'static str,
    params: Map<String, Value>,
}

pub struct Notifier {
    pool: PgPool,
    vault: KeyVault,
    options: NotificationOptions,
}

impl Notifier {
    pub fn new(pool: PgPool, vault: KeyVault, options: NotificationOptions) -> Self {
        Self { pool, vault, options }
    }

    async fn on_account(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let account_id = event.stream_id.uuid().ok_or_else(|| fatal("account stream without a uuid"))?;
        match event.decode::<AccountEvent>().map_err(|e| fatal(e.to_string()))? {
            AccountEvent::Registered(registered) => {
                sqlx::query(
                    "insert into integration.notification_recipient (account_id, role, email, name) \
                     values ($1, $2, $3, $4) on conflict (account_id) do nothing",
                )
                .bind(account_id)
                .bind(registered.role.as_str())
                .bind(to_json(&registered.email)?)
                .bind(to_json(&registered.name)?)
                .execute(&self.pool)
                .await
                .map_err(retry)?;
            }
            AccountEvent::EmailChanged(changed) => {
                sqlx::query("update integration.notification_recipient set email = $2 where account_id = $1")
                    .bind(account_id)
                    .bind(to_json(&changed.email)?)
                    .execute(&self.pool)
                    .await
                    .map_err(retry)?;
            }
            AccountEvent::NameChanged(changed) => {
                sqlx::query("update integration.notification_recipient set name = $2 where account_id = $1")
                    .bind(account_id)
                    .bind(to_json(&changed.name)?)
                    .execute(&self.pool)
                    .await
                    .map_err(retry)?;
            }
            AccountEvent::Erased(_) => {
                // The key is gone (maybe deleted by another process): forget any cached copy,
                // and drop what is still queued for this person.
                self.vault.forget(account_id);
                let mut tx = self.pool.begin().await.map_err(retry)?;
                sqlx::query("update integration.notification_recipient set erased = true where account_id = $1")
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(retry)?;
                sqlx::query(
                    "update integration.notification set state = 'skipped', last_error = 'recipient erased', \
                     lease_until = null where recipient_id = $1 and state = 'pending'",
                )
                .bind(account_id)
                .execute(&mut *tx)
                .await
                .map_err(retry)?;
                tx.commit().await.map_err(retry)?;
            }
            AccountEvent::PasswordChanged(_) => {}
        }
        Ok(())
    }

    /// The notifications an order or delivery event asks for.
    async fn plan(&self, event: &RecordedEvent) -> Result<Vec<Queued>, ReactionError> {
        let mut queued = Vec::new();
        match event.stream_id.category() {
            "order" => {
                let order_id = event.stream_id.uuid().ok_or_else(|| fatal("order stream without a uuid"))?;
                match event.decode::<OrderEvent>().map_err(|e| fatal(e.to_string()))? {
                    OrderEvent::Placed(placed) => {
                        sqlx::query(
                            "insert into integration.notification_order (order_id, buyer_id, currency, total_cents) \
                             values ($1, $2, $3, $4) on conflict (order_id) do nothing",
                        )
                        .bind(order_id)
                        .bind(placed.buyer_id)
                        .bind(&placed.currency)
                        .bind(placed.total_cents)
                        .execute(&self.pool)
                        .await
                        .map_err(retry)?;
                        let vendors: BTreeSet<Uuid> = placed.lines.iter().map(|l| l.vendor_id).collect();
                        for vendor in vendors {
                            let lines: Vec<String> = placed
                                .lines
                                .iter()
                                .filter(|l| l.vendor_id == vendor)
                                .map(|l| {
                                    format!(
                                        "  {} x {} ({})",
                                        l.quantity,
                                        l.title,
                                        money(l.total_cents(), &placed.currency)
                                    )
                                })
                                .collect();
                            let mut params = order_params(order_id);
                            params.insert("lines".into(), lines.join("\n").into());
                            queued.push(Queued { recipient_id: vendor, template: "new_order", params });
                        }
                    }
                    OrderEvent::Confirmed(_) => {
                        if let Some((buyer, params)) = self.order(order_id).await? {
                            queued.push(Queued { recipient_id: buyer, template: "order_confirmed", params });
                        }
                    }
                    OrderEvent::Cancelled(cancelled) => {
                        if let Some((buyer, mut params)) = self.order(order_id).await? {
                            params.insert("reason".into(), cancelled.reason.replace('_', " ").into());
                            queued.push(Queued { recipient_id: buyer, template: "order_cancelled", params });
                        }
                    }
                    _ => {}
                }
            }
            "delivery" => {
                if let DeliveryEvent::Tracked(tracked) =
                    event.decode::<DeliveryEvent>().map_err(|e| fatal(e.to_string()))?
                {
                    if let Some((buyer, mut params)) = self.order(tracked.order_id).await? {
                        params.insert("status".into(), tracked.status.as_str().replace('_', " ").into());
                        params.insert("location".into(), tracked.location.clone().into());
                        params.insert(
                            "occurred_at".into(),
                            tracked.occurred_at.format("%Y-%m-%d %H:%M UTC").to_string().into(),
                        );
                        queued.push(Queued { recipient_id: buyer, template: "delivery_update", params });
                    }
                }
            }
            _ => {}
        }
        Ok(queued)
    }

    /// The buyer of an order and the order's parameters (`None` for an order placed before
    /// the notifier existed, or too long ago to have been seen).
    async fn order(&self, order_id: Uuid) -> Result<Option<(Uuid, Map<String, Value>)>, ReactionError> {
        let row: Option<(Uuid, String, i64)> = sqlx::query_as(
            "select buyer_id, currency, total_cents from integration.notification_order where order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(retry)?;
        Ok(row.map(|(buyer, currency, total)| {
            let mut params = order_params(order_id);
            params.insert("total".into(), money(total, &currency).into());
            (buyer, params)
        }))
    }

    async fn queue(&self, event: &RecordedEvent, queued: Vec<Queued>) -> Result<(), ReactionError> {
        for q in queued {
            let template = template(q.template).ok_or_else(|| fatal(format!("no template {}", q.template)))?;
            // The subject holds no personal data, so it is rendered now and shown to admins;
            // the body (with the recipient's name) is rendered when sending.
            let subject = render(template.subject, &q.params).map_err(fatal)?;
            let recipient: Option<bool> =
                sqlx::query_scalar("select erased from integration.notification_recipient where account_id = $1")
                    .bind(q.recipient_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(retry)?;
            let (state, error) = match recipient {
                Some(false) => ("pending", None),
                Some(true) => ("skipped", Some("recipient erased")),
                None => ("skipped", Some("recipient unknown")),
            };
            let id = events::ids::derived(
                "notification",
                &[event.event_id.as_bytes(), q.recipient_id.as_bytes(), q.template.as_bytes()],
            );
            sqlx::query(
                "insert into integration.notification \
                 (notification_id, event_id, recipient_id, template, params, subject, state, last_error) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (notification_id) do nothing",
            )
            .bind(id)
            .bind(event.event_id)
            .bind(q.recipient_id)
            .bind(q.template)
            .bind(Value::Object(q.params))
            .bind(subject)
            .bind(state)
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(retry)?;
        }
        Ok(())
    }
}

fn order_params(order_id: Uuid) -> Map<String, Value> {
    let reference = order_id.simple().to_string();
    let mut params = Map::new();
    params.insert("order_id".into(), json!(order_id));
    params.insert("order_ref".into(), reference[reference.len() - 8..].to_uppercase().into());
    params
}

fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ReactionError> {
    serde_json::to_value(value).map_err(|e| fatal(e.to_string()))
}

fn fatal(message: impl Into<String>) -> ReactionError {
    ReactionError::Fatal(message.into())
}

fn retry(error: sqlx::Error) -> ReactionError {
    ReactionError::Retry(format!("notifications: {error}"))
}

const WANTED: &[&str] = &[
    "account.registered",
    "account.name_changed",
    "account.email_changed",
    "account.erased",
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "delivery.tracked",
];

#[async_trait]
impl Reactor for Notifier {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn wants(&self, event_type: &str) -> bool {
        WANTED.contains(&event_type)
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        if event.stream_id.category() == "account" {
            return self.on_account(event).await;
        }
        let queued = self.plan(event).await?;
        let age = Utc::now().signed_duration_since(event.recorded_at).to_std().unwrap_or_default();
        if age > self.options.max_age {
            if !queued.is_empty() {
                tracing::debug!(event_id = %event.event_id, age_s = age.as_secs(), "event too old to notify anyone");
            }
            return Ok(());
        }
        self.queue(event, queued).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_with_their_parameters_and_refuse_missing_ones() {
        let mut params = order_params(Uuid::from_u128(0xabcdef12));
        params.insert("total".into(), money(12345, "EUR").into());
        params.insert("name".into(), "Ada".into());
        let t = template("order_confirmed").unwrap();
        assert_eq!(render(t.subject, &params).unwrap(), "Your order ABCDEF12 is confirmed");
        let body = render(t.body, &params).unwrap();
        assert!(body.starts_with("Hello Ada,") && body.contains("123.45 EUR"), "{body}");
        params.remove("name");
        assert_eq!(render(t.body, &params).unwrap_err(), "no value for placeholder \"name\"");
    }

    #[test]
    fn every_template_is_known_by_name() {
        for name in ["new_order", "order_confirmed", "order_cancelled", "delivery_update"] {
            assert!(template(name).is_some(), "{name}");
        }
    }
}
