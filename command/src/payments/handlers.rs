//! The payment process: authorises requested payments through the gateway, confirms or
//! cancels the order accordingly, and refunds cancelled orders that were paid.

use std::sync::Arc;

use async_trait::async_trait;
use events::domain::orders::OrderEvent;
use events::domain::payments::{PAYMENT_CATEGORY, PaymentEvent};
use events::reactor::{ReactionError, Reactor};
use events::{AppendRequest, RecordedEvent, StreamId};
use uuid::Uuid;

use super::decider::{Payment, PaymentCommand, PaymentDecider};
use super::gateway::{AuthorizeRequest, GatewayError, PaymentGateway, RefundRequest};
use crate::catalog::handlers::product_stream;
use crate::decider::Decider;
use crate::error::{Result, refused};
use crate::handling::{Context, Meta, append_steps, fold_recorded, reaction_error, reaction_events};
use crate::orders::decider::{Order, OrderCommand, OrderDecider};
use crate::orders::handlers::{order_stream, release_events, stock_releases};

pub fn payment_stream(order_id: Uuid) -> StreamId {
    StreamId::new(PAYMENT_CATEGORY, order_id)
}

/// What the gateway said, turned into what to record.
enum Outcome {
    Authorized(String),
    Declined(String),
}

/// Payment process manager: `payment.requested` -> authorise -> `order.confirmed`, or
/// `order.cancelled` with the stock released; `order.cancelled` of a paid order -> refund.
pub struct PaymentProcess {
    pub ctx: Context,
}

impl PaymentProcess {
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    fn gateway(&self) -> &Arc<dyn PaymentGateway> {
        &self.ctx.gateway
    }

    async fn authorize(&self, trigger: &RecordedEvent, order_id: Uuid) -> Result<(), ReactionError> {
        let ctx = &self.ctx;
        let recorded = ctx
            .store
            .read_streams(&[payment_stream(order_id), order_stream(order_id)])
            .await
            .map_err(|e| reaction_error(e.into()))?;
        let payment = fold_recorded::<PaymentDecider>(&recorded[0]).map_err(reaction_error)?;
        let Payment::Requested(request) = &payment.state else { return Ok(()) };
        // The order id is the gateway's idempotency key: however often this runs, one charge.
        let outcome = match self
            .gateway()
            .authorize(AuthorizeRequest {
                idempotency_key: format!("authorize-{order_id}"),
                amount_cents: request.amount_cents,
                currency: request.currency.clone(),
                payment_token: request.payment_token.clone(),
            })
            .await
        {
            Ok(authorization_id) => Outcome::Authorized(authorization_id),
            Err(GatewayError::Declined(reason)) => Outcome::Declined(reason),
            Err(error) => return Err(ReactionError::Retry(error.to_string())),
        };
        let authorized = matches!(outcome, Outcome::Authorized(_));
        self.record(trigger, order_id, outcome).await.map_err(reaction_error)?;
        // Authorised after the buyer cancelled: give the money back now.
        if authorized {
            self.refund_if_cancelled(trigger, order_id).await?;
        }
        Ok(())
    }

    /// Record the gateway's answer on the payment and the order, in one append (retried on
    /// conflict: the order may be cancelled meanwhile).
    async fn record(&self, trigger: &RecordedEvent, order_id: Uuid, outcome: Outcome) -> Result<()> {
        let ctx = &self.ctx;
        let meta = Meta::system("payment", trigger);
        crate::retrying!(ctx, {
            let recorded = ctx.store.read_streams(&[payment_stream(order_id), order_stream(order_id)]).await?;
            let payment = fold_recorded::<PaymentDecider>(&recorded[0])?;
            let order = fold_recorded::<OrderDecider>(&recorded[1])?;
            let mut request = AppendRequest::new();
            match &outcome {
                Outcome::Authorized(authorization_id) => {
                    let authorized = PaymentDecider::decide(
                        &PaymentCommand::RecordAuthorization { authorization_id: authorization_id.clone() },
                        &payment.state,
                    )
                    .map_err(refused)?;
                    request = request.stream(
                        payment_stream(order_id),
                        payment.expected(),
                        reaction_events(trigger, "payment", &authorized, &meta),
                    );
                    // A cancelled order stays cancelled: its payment is refunded below.
                    if !matches!(order.state, Order::Cancelled { .. }) {
                        let confirmed = OrderDecider::decide(
                            &OrderCommand::Confirm { authorization_id: authorization_id.clone() },
                            &order.state,
                        )
                        .map_err(refused)?;
                        request = request.stream(
                            order_stream(order_id),
                            order.expected(),
                            reaction_events(trigger, "order", &confirmed, &meta),
                        );
                    }
                }
                Outcome::Declined(reason) => {
                    let declined = PaymentDecider::decide(
                        &PaymentCommand::RecordDecline { reason: reason.clone() },
                        &payment.state,
                    )
                    .map_err(refused)?;
                    request = request.stream(
                        payment_stream(order_id),
                        payment.expected(),
                        reaction_events(trigger, "payment", &declined, &meta),
                    );
                    let system = events::identity::Caller {
                        account_id: Uuid::nil(),
                        role: events::domain::accounts::Role::Admin,
                    };
                    let cancelled = OrderDecider::decide(
                        &OrderCommand::Cancel { by: system, reason: "payment_declined".into(), shipped: false },
                        &order.state,
                    )
                    .map_err(refused)?;
                    // In steps (no atomic multi-stream append), a retry may find the order
                    // cancelled by this very decline but its stock not yet all released.
                    let resumed = !ctx.store.capabilities().atomic_multi_stream
                        && matches!(&order.state, Order::Cancelled { reason, .. } if reason == "payment_declined");
                    if !cancelled.is_empty() || resumed {
                        request = request.stream(
                            order_stream(order_id),
                            order.expected(),
                            reaction_events(trigger, "order", &cancelled, &meta),
                        );
                        for (product_id, expected, released) in stock_releases(ctx, &order.state, order_id).await? {
                            request = request.stream(
                                product_stream(product_id),
                                expected,
                                release_events(order_id, product_id, &released, &meta.metadata()),
                            );
                        }
                    }
                }
            }
            if request.event_count() > 0 {
                // In steps, the payment goes last: a retry starts from `Payment::Requested`.
                append_steps(ctx, request, &payment_stream(order_id)).await?;
            }
            Ok(())
        })
    }

    /// Refund a cancelled order whose payment was authorised.
    async fn refund_if_cancelled(&self, trigger: &RecordedEvent, order_id: Uuid) -> Result<(), ReactionError> {
        let ctx = &self.ctx;
        let recorded = ctx
            .store
            .read_streams(&[payment_stream(order_id), order_stream(order_id)])
            .await
            .map_err(|e| reaction_error(e.into()))?;
        let payment = fold_recorded::<PaymentDecider>(&recorded[0]).map_err(reaction_error)?;
        let order = fold_recorded::<OrderDecider>(&recorded[1]).map_err(reaction_error)?;
        let (Payment::Authorized { request, authorization_id }, Order::Cancelled { .. }) =
            (&payment.state, &order.state)
        else {
            return Ok(());
        };
        let refund_id = self
            .gateway()
            .refund(RefundRequest {
                idempotency_key: format!("refund-{order_id}"),
                authorization_id: authorization_id.clone(),
                amount_cents: request.amount_cents,
            })
            .await
            .map_err(|e| ReactionError::Retry(e.to_string()))?;
        let meta = Meta::system("payment", trigger);
        crate::retrying!(ctx, {
            let recorded = ctx.store.read_streams(&[payment_stream(order_id), order_stream(order_id)]).await?;
            let payment = fold_recorded::<PaymentDecider>(&recorded[0])?;
            let order = fold_recorded::<OrderDecider>(&recorded[1])?;
            let refunded =
                PaymentDecider::decide(&PaymentCommand::RecordRefund { refund_id: refund_id.clone() }, &payment.state)
                    .map_err(refused)?;
            let order_refunded = OrderDecider::decide(
                &OrderCommand::RecordRefund { refund_id: refund_id.clone(), amount_cents: request.amount_cents },
                &order.state,
            )
            .map_err(refused)?;
            let request = AppendRequest::new()
                .stream(
                    payment_stream(order_id),
                    payment.expected(),
                    reaction_events(trigger, "refund", &refunded, &meta),
                )
                .stream(
                    order_stream(order_id),
                    order.expected(),
                    reaction_events(trigger, "order-refund", &order_refunded, &meta),
                );
            if request.event_count() > 0 {
                // In steps, the payment goes last: a retry starts from `Payment::Authorized`.
                append_steps(ctx, request, &payment_stream(order_id)).await?;
            }
            Ok(())
        })
        .map_err(reaction_error)
    }
}

#[async_trait]
impl Reactor for PaymentProcess {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(event_type, "payment.requested" | "order.cancelled")
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let Some(order_id) = event.stream_id.uuid() else { return Ok(()) };
        match event.event_type.as_str() {
            "payment.requested" => {
                let PaymentEvent::Requested(_) =
                    event.decode::<PaymentEvent>().map_err(|e| ReactionError::Fatal(e.to_string()))?
                else {
                    return Ok(());
                };
                self.authorize(event, order_id).await
            }
            "order.cancelled" => {
                let OrderEvent::Cancelled(_) =
                    event.decode::<OrderEvent>().map_err(|e| ReactionError::Fatal(e.to_string()))?
                else {
                    return Ok(());
                };
                self.refund_if_cancelled(event, order_id).await
            }
            _ => Ok(()),
        }
    }
}
