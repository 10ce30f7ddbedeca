//! Completion process: a delivery reported delivered -> the order is delivered, and the buyer
//! may now review its products.

use async_trait::async_trait;
use events::domain::deliveries::{DeliveryEvent, TrackingStatus};
use events::reactor::{ReactionError, Reactor};
use events::{AppendRequest, RecordedEvent};
use uuid::Uuid;

use super::decider::{OrderCommand, OrderDecider, PurchaseCommand, PurchasesDecider};
use super::handlers::{order_stream, purchases_stream};
use crate::decider::Decider;
use crate::error::{Result, refused};
use crate::handling::{Context, Meta, load, reaction_error, reaction_events};

pub struct CompletionProcess {
    pub ctx: Context,
}

impl CompletionProcess {
    async fn complete(&self, trigger: &RecordedEvent, order_id: Uuid, delivery_id: Uuid) -> Result<()> {
        let ctx = &self.ctx;
        let meta = Meta::system("completion", trigger);
        crate::retrying!(ctx, {
            let order = load::<OrderDecider>(&*ctx.store, &order_stream(order_id)).await?;
            let delivered =
                OrderDecider::decide(&OrderCommand::MarkDelivered { delivery_id }, &order.state).map_err(refused)?;
            let Some(info) = order.state.info() else { return Ok(()) };
            if delivered.is_empty() {
                return Ok(());
            }
            let purchases_stream = purchases_stream(info.buyer_id);
            let purchases = load::<PurchasesDecider>(&*ctx.store, &purchases_stream).await?;
            let product_ids = info.lines.iter().map(|l| l.product_id).collect();
            let recorded =
                PurchasesDecider::decide(&PurchaseCommand::RecordDelivered { order_id, product_ids }, &purchases.state)
                    .unwrap_or_default();
            let request = AppendRequest::new()
                .stream(order_stream(order_id), order.expected(), reaction_events(trigger, "order", &delivered, &meta))
                .stream(
                    purchases_stream,
                    purchases.expected(),
                    reaction_events(trigger, "purchases", &recorded, &meta),
                );
            // Purchases first where the store cannot append both at once: recording them
            // again decides nothing, and the order (last) is what a retry decides from.
            crate::handling::append_steps(ctx, request, &order_stream(order_id)).await?;
            Ok(())
        })
    }
}

#[async_trait]
impl Reactor for CompletionProcess {
    fn name(&self) -> &'static str {
        "completion"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "delivery.tracked"
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let DeliveryEvent::Tracked(tracked) =
            event.decode::<DeliveryEvent>().map_err(|e| ReactionError::Fatal(e.to_string()))?
        else {
            return Ok(());
        };
        if tracked.status != TrackingStatus::Delivered {
            return Ok(());
        }
        self.complete(event, tracked.order_id, tracked.delivery_id).await.map_err(reaction_error)
    }
}
