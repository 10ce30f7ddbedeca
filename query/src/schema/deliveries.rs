//! Deliveries: an order's delivery and its tracking history (read models `delivery` and
//! `delivery_tracking`).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::request;
use crate::error::Error;
use crate::loaders::{AccountKey, TrackingKey};
use crate::read_models::deliveries::DeliveryRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum DeliveryStatus {
    /// Opened, not picked up yet.
    Created,
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    FailedAttempt,
    Returned,
}

impl DeliveryStatus {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "created" => DeliveryStatus::Created,
            "picked_up" => DeliveryStatus::PickedUp,
            "in_transit" => DeliveryStatus::InTransit,
            "out_for_delivery" => DeliveryStatus::OutForDelivery,
            "delivered" => DeliveryStatus::Delivered,
            "failed_attempt" => DeliveryStatus::FailedAttempt,
            "returned" => DeliveryStatus::Returned,
            other => return Err(Error::Internal(format!("unknown delivery status {other:?} in the read model"))),
        })
    }
}

pub struct Delivery(DeliveryRow);

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Self(row)
    }
}

#[Object]
impl Delivery {
    async fn id(&self) -> ID {
        ID(self.0.delivery_id.to_string())
    }

    async fn status(&self) -> async_graphql::Result<DeliveryStatus> {
        Ok(DeliveryStatus::parse(&self.0.status)?)
    }

    /// The name of the carrier handling it, once picked up.
    async fn carrier(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let Some(carrier) = self.0.carrier_id else { return Ok(None) };
        Ok(request(ctx)?.loader.load_one(AccountKey(carrier)).await?.map(|a| a.name))
    }

    /// The last reported location.
    async fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Every tracking event, in the order the carrier reported them.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TrackingEvent>> {
        let rows = request(ctx)?.loader.load_one(TrackingKey(self.0.delivery_id)).await?.unwrap_or_default();
        rows.into_iter()
            .map(|r| {
                Ok(TrackingEvent {
                    status: DeliveryStatus::parse(&r.status)?,
                    location: r.location,
                    occurred_at: r.occurred_at,
                    recorded_at: r.recorded_at,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
            .map_err(Into::into)
    }
}

#[derive(SimpleObject)]
pub struct TrackingEvent {
    pub status: DeliveryStatus,
    pub location: String,
    /// When it happened, as the carrier says.
    pub occurred_at: DateTime<Utc>,
    /// When it was reported.
    pub recorded_at: DateTime<Utc>,
}
