//! The `reservations` process: releases reserve-path stock holds that no order claimed in
//! time (a checkout that crashed, or lost its connection, between a hold and its order).
//!
//! For each `product.stock_held` it waits until the hold expires, then tries to close the
//! order stream with `order.checkout_expired`, expecting no stream:
//! - the append lands: the order can never be placed now (its checkout's own append of the
//!   order expects no stream too and conflicts), so the hold is released;
//! - the order stream holds a placed order: the hold was claimed, nothing to do;
//! - it holds `order.checkout_expired` already (another hold of the same checkout, or a
//!   replay): release this hold too.
//!
//! The order stream is the one place where the checkout and this process meet, so exactly
//! one of "order placed" and "holds released" wins. Reactions are idempotent: the expiry
//! event's id derives from the order id, and releasing a hold that is gone appends nothing.
//! A hold waits inside its reaction, so this process runs `checkout_hold` behind the log.

use async_trait::async_trait;
use events::domain::catalog::{HoldReleaseReason, ProductEvent};
use events::reactor::{ReactionError, Reactor};
use events::{AppendRequest, ExpectedVersion, NewEvent, RecordedEvent};
use uuid::Uuid;

use super::decider::{Order, OrderCommand, OrderDecider};
use super::handlers::order_stream;
use super::reserve::release_hold;
use crate::decider::Decider;
use crate::error::{Result, refused};
use crate::handling::{Context, Meta, load, reaction_error};

pub struct ReservationsProcess {
    pub ctx: Context,
}

impl ReservationsProcess {
    /// Close the order stream unless an order claimed it; `true` when the holds of this
    /// order are to be released.
    async fn expire_unclaimed(&self, trigger: &RecordedEvent, order_id: Uuid) -> Result<bool> {
        let ctx = &self.ctx;
        let meta = Meta::system("reservations", trigger);
        crate::retrying!(ctx, {
            let order = load::<OrderDecider>(&*ctx.store, &order_stream(order_id)).await?;
            match order.state {
                Order::Expired => return Ok(true),
                Order::NotPlaced => {}
                _ => return Ok(false),
            }
            let expired = OrderDecider::decide(&OrderCommand::Expire { order_id }, &order.state).map_err(refused)?;
            // Derived from the order, not the trigger: every hold of the checkout writes the
            // same event, so the second one is a replay, not a conflict.
            let events: Vec<NewEvent> = expired
                .iter()
                .enumerate()
                .map(|(n, e)| {
                    NewEvent::from_domain_with_id(
                        events::ids::reaction_event(order_id, "checkout-expired", n),
                        e,
                        meta.metadata(),
                    )
                })
                .collect();
            ctx.store
                .append(AppendRequest::new().stream(order_stream(order_id), ExpectedVersion::NoStream, events))
                .await?;
            Ok(true)
        })
    }
}

#[async_trait]
impl Reactor for ReservationsProcess {
    fn name(&self) -> &'static str {
        "reservations"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "product.stock_held"
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let ProductEvent::StockHeld(held) =
            event.decode::<ProductEvent>().map_err(|e| ReactionError::Fatal(e.to_string()))?
        else {
            return Ok(());
        };
        if let Ok(wait) = (held.expires_at - self.ctx.now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        if !self.expire_unclaimed(event, held.order_id).await.map_err(reaction_error)? {
            return Ok(());
        }
        let meta = Meta::system("reservations", event);
        release_hold(&self.ctx, &event.stream_id, held.order_id, HoldReleaseReason::Expired, &meta.metadata())
            .await
            .map_err(reaction_error)?;
        tracing::info!(order_id = %held.order_id, stream = %event.stream_id, "released an unclaimed stock hold");
        Ok(())
    }
}
