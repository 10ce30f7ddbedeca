//! Webhooks, for admins: registered endpoints with their delivery counts, and deliveries
//! with every attempt (time, status code, error), to see what failed and replay it through
//! the command API.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{request, shared};
use crate::error::Error;
use crate::pagination::parse_id;
use crate::read_models::webhooks::{self, AttemptRow, DeliveryRow, WebhookRow};

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// Registered webhook endpoints, oldest first (admins only).
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        request(ctx)?.viewer.require_admin()?;
        let rows = webhooks::all(shared(ctx)?.read.pool(), 500).await.map_err(Error::from)?;
        Ok(rows.into_iter().map(Webhook).collect())
    }

    /// One delivery with its attempts (admins only); null if there is none with this id.
    async fn webhook_delivery(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<WebhookDelivery>> {
        request(ctx)?.viewer.require_admin()?;
        let id = parse_id("delivery", &id)?;
        let pool = shared(ctx)?.read.pool();
        let Some(row) = webhooks::delivery(pool, id).await.map_err(Error::from)? else { return Ok(None) };
        let attempts = webhooks::attempts(pool, &[id]).await.map_err(Error::from)?;
        Ok(Some(WebhookDelivery { row, attempts: attempts.into_iter().map(WebhookAttempt::from).collect() }))
    }

    /// The newest deliveries of an endpoint, optionally only those in one state (admins only).
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        state: Option<WebhookDeliveryState>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        request(ctx)?.viewer.require_admin()?;
        let webhook_id = parse_id("webhook", &webhook_id)?;
        let first = first.unwrap_or(20);
        if !(1..=100).contains(&first) {
            return Err(Error::bad_input("first must be between 1 and 100").into());
        }
        let pool = shared(ctx)?.read.pool();
        let rows = webhooks::deliveries(pool, webhook_id, state.map(WebhookDeliveryState::as_str), i64::from(first))
            .await
            .map_err(Error::from)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.delivery_id).collect();
        // Every delivery's attempts in one statement.
        let mut attempts: HashMap<Uuid, Vec<WebhookAttempt>> = HashMap::new();
        for attempt in webhooks::attempts(pool, &ids).await.map_err(Error::from)? {
            attempts.entry(attempt.delivery_id).or_default().push(attempt.into());
        }
        Ok(rows
            .into_iter()
            .map(|row| WebhookDelivery { attempts: attempts.remove(&row.delivery_id).unwrap_or_default(), row })
            .collect())
    }
}

pub struct Webhook(WebhookRow);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.webhook_id.to_string())
    }

    async fn url(&self) -> &str {
        &self.0.url
    }

    /// Integration event types it receives.
    async fn event_types(&self) -> &[String] {
        &self.0.event_types
    }

    async fn registered_at(&self) -> DateTime<Utc> {
        self.0.registered_at
    }

    /// Deliveries waiting for their next attempt.
    async fn pending_deliveries(&self) -> i64 {
        self.0.pending
    }

    async fn delivered_deliveries(&self) -> i64 {
        self.0.delivered
    }

    /// Deliveries that used up their attempts (replay them with
    /// `POST /api/v1/webhooks/{id}/deliveries/{deliveryId}/replay`).
    async fn failed_deliveries(&self) -> i64 {
        self.0.failed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum WebhookDeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl WebhookDeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            WebhookDeliveryState::Pending => "pending",
            WebhookDeliveryState::Delivered => "delivered",
            WebhookDeliveryState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

pub struct WebhookDelivery {
    row: DeliveryRow,
    attempts: Vec<WebhookAttempt>,
}

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        ID(self.row.delivery_id.to_string())
    }

    async fn webhook_id(&self) -> ID {
        ID(self.row.webhook_id.to_string())
    }

    /// The integration event's id (the `id` in the payload).
    async fn event_id(&self) -> ID {
        ID(self.row.event_id.to_string())
    }

    async fn event_type(&self) -> &str {
        &self.row.event_type
    }

    /// The JSON body sent.
    async fn payload(&self) -> &str {
        &self.row.payload
    }

    async fn state(&self) -> async_graphql::Result<WebhookDeliveryState> {
        WebhookDeliveryState::parse(&self.row.state)
            .ok_or_else(|| Error::Internal(format!("unknown delivery state {:?}", self.row.state)).into())
    }

    /// Attempts made so far, all rounds.
    async fn attempt_count(&self) -> i32 {
        self.row.attempts
    }

    /// When the next attempt is due (while pending).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.row.state == "pending").then_some(self.row.next_attempt_at)
    }

    async fn last_status_code(&self) -> Option<i32> {
        self.row.last_status_code
    }

    async fn last_error(&self) -> Option<&str> {
        self.row.last_error.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.row.delivered_at
    }

    /// Every attempt, in order.
    async fn attempts(&self) -> &[WebhookAttempt] {
        &self.attempts
    }
}

#[derive(SimpleObject)]
pub struct WebhookAttempt {
    /// 1, 2, 3, ... across rounds.
    pub number: i32,
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status the endpoint answered, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed (non-2xx answer, timeout, connection refused, ...).
    pub error: Option<String>,
    pub duration_ms: i32,
}

impl From<AttemptRow> for WebhookAttempt {
    fn from(row: AttemptRow) -> Self {
        Self {
            number: row.attempt,
            attempted_at: row.attempted_at,
            status_code: row.status_code,
            error: row.error,
            duration_ms: row.duration_ms,
        }
    }
}
