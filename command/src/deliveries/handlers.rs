//! Delivery commands: tracking updates from carriers, and the fulfilment process that opens a
//! delivery for every confirmed order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::domain::deliveries::{DELIVERY_CATEGORY, TrackingStatus};
use events::domain::orders::OrderEvent;
use events::identity::Caller;
use events::reactor::{ReactionError, Reactor};
use events::{AppendRequest, RecordedEvent, StreamId};
use uuid::Uuid;

use super::decider::{DeliveryCommand, DeliveryDecider};
use crate::decider::Decider;
use crate::error::{Result, refused};
use crate::handling::{Accepted, Context, Idempotency, Meta, execute, id_body, load, reaction_error, reaction_events};
use crate::orders::decider::OrderDecider;
use crate::orders::handlers::order_stream;
use crate::values::Location;

pub fn delivery_stream(delivery_id: Uuid) -> StreamId {
    StreamId::new(DELIVERY_CATEGORY, delivery_id)
}

/// An order has one delivery, whose id follows from the order's.
pub fn delivery_id_for(order_id: Uuid) -> Uuid {
    events::ids::derived("delivery", &[order_id.as_bytes()])
}

/// A carrier's tracking update.
#[derive(Debug, Clone)]
pub struct Tracking {
    pub status: TrackingStatus,
    pub location: Location,
    pub occurred_at: DateTime<Utc>,
}

pub async fn track(
    ctx: &Context,
    caller: Caller,
    delivery_id: Uuid,
    tracking: Tracking,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let command = DeliveryCommand::Track {
        by: caller,
        status: tracking.status,
        location: tracking.location.into_string(),
        occurred_at: tracking.occurred_at,
    };
    execute::<DeliveryDecider>(ctx, &delivery_stream(delivery_id), &command, &meta.metadata(), 200, idempotency, |_| {
        let mut body = id_body(delivery_id);
        body.insert("status".into(), tracking.status.as_str().into());
        body
    })
    .await
}

/// Fulfilment: order confirmed -> delivery created (with the order's sealed address).
pub struct FulfilmentProcess {
    pub ctx: Context,
}

impl FulfilmentProcess {
    async fn open_delivery(&self, trigger: &RecordedEvent, order_id: Uuid) -> Result<()> {
        let ctx = &self.ctx;
        let order = load::<OrderDecider>(&*ctx.store, &order_stream(order_id)).await?;
        let Some(info) = order.state.info() else { return Ok(()) };
        let delivery_id = delivery_id_for(order_id);
        let stream = delivery_stream(delivery_id);
        let delivery = load::<DeliveryDecider>(&*ctx.store, &stream).await?;
        let command = DeliveryCommand::Create {
            delivery_id,
            order_id,
            buyer_id: info.buyer_id,
            shipping_address: info.shipping_address.clone(),
        };
        let created = DeliveryDecider::decide(&command, &delivery.state).map_err(refused)?;
        if created.is_empty() {
            return Ok(());
        }
        let meta = Meta::system("fulfilment", trigger);
        let events = reaction_events(trigger, "delivery", &created, &meta);
        ctx.store.append(AppendRequest::new().stream(stream, delivery.expected(), events)).await?;
        Ok(())
    }
}

#[async_trait]
impl Reactor for FulfilmentProcess {
    fn name(&self) -> &'static str {
        "fulfilment"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "order.confirmed"
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let Ok(OrderEvent::Confirmed(_)) = event.decode::<OrderEvent>() else { return Ok(()) };
        let Some(order_id) = event.stream_id.uuid() else { return Ok(()) };
        self.open_delivery(event, order_id).await.map_err(reaction_error)
    }
}
