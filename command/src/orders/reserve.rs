//! Checkout on a store without atomic multi-stream appends (KurrentDB, or PostgreSQL with
//! `MULTI_STREAM_APPENDS=off`): the reserve / compensate path.
//!
//! 1. Decide the whole checkout on a snapshot of the cart and its products (prices, lines,
//!    refusals such as `out_of_stock` or `mixed_currencies` before anything is written).
//! 2. Hold the stock of each product on its own stream, one append with its own expected
//!    version each (retried on conflict), in product-id order. A product that cannot be
//!    held makes the checkout release the holds it already made (compensation) and refuse.
//! 3. Write the order stream last, with the `Idempotency-Key` record: a placed order claims
//!    its holds. If the `reservations` process already closed the order stream
//!    (`order.checkout_expired`, written only on an empty order stream), the order can no
//!    longer be placed and the checkout compensates and refuses with `checkout_expired`.
//! 4. Request the payment and empty the cart (one append each).
//!
//! Stock never goes below zero (each hold is an expected-version append on the product
//! stream), and none is lost forever: a checkout that dies between steps leaves holds that
//! no order claims, and the `reservations` process releases them after `checkout_hold`.
//! A crash between steps 3 and 4 leaves a placed order without a payment request; see
//! docs/ARCHITECTURE.md ("Stores without atomic multi-stream appends").

use chrono::{DateTime, Utc};
use events::domain::catalog::HoldReleaseReason;
use events::{AppendRequest, EventMetadata, ExpectedVersion, StreamId};
use uuid::Uuid;

use super::decider::{CartCommand, CartDecider, CheckoutDecision, CheckoutError, OrderError};
use super::handlers::{cart_stream, order_stream};
use crate::catalog::decider::{ProductCommand, ProductDecider, ProductError};
use crate::catalog::handlers::product_stream;
use crate::decider::Decider;
use crate::error::{CommandError, Result, refused};
use crate::handling::{Accepted, Context, Idempotency, append_accepted, load, new_events};
use crate::payments::handlers::payment_stream;

/// `AGORA_FAIL_POINT` value that stops a checkout after its first hold (crash tests).
pub const FAIL_AFTER_FIRST_HOLD: &str = "checkout-after-first-hold";

/// Carry out a checkout already decided on a snapshot: hold, claim, then the follow-ups.
pub async fn place(
    ctx: &Context,
    order_id: Uuid,
    buyer_id: Uuid,
    decision: CheckoutDecision,
    metadata: &EventMetadata,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let expires_at = ctx.now() + ctx.checkout_hold;
    let mut held = Vec::with_capacity(decision.stock.len());
    // `decision.stock` follows the cart's product-id order, so concurrent checkouts take
    // their holds in the same order.
    for (product_id, _) in &decision.stock {
        let quantity = decision
            .order_lines()
            .find(|line| line.product_id == *product_id)
            .map(|line| line.quantity)
            .ok_or_else(|| CommandError::internal("a reserved product has no order line"))?;
        if let Err(error) = hold(ctx, *product_id, order_id, quantity, expires_at, metadata).await {
            compensate(ctx, order_id, &held, metadata).await;
            return Err(error);
        }
        held.push(*product_id);
        if ctx.fail_point.as_deref() == Some(FAIL_AFTER_FIRST_HOLD) {
            tracing::error!(%order_id, "fail point {FAIL_AFTER_FIRST_HOLD}: this checkout stops here");
            std::future::pending::<()>().await;
        }
    }

    let mut body = crate::handling::id_body(order_id);
    body.insert("status".into(), "placed".into());
    body.insert("total_cents".into(), decision.total_cents.into());
    body.insert("currency".into(), decision.currency.clone().into());
    let claim = AppendRequest::new().stream(
        order_stream(order_id),
        ExpectedVersion::NoStream,
        new_events(&decision.order, metadata),
    );
    let mut accepted = match append_accepted(ctx, claim, 201, body, idempotency).await {
        Ok(accepted) => accepted,
        // Definitely not placed: the reaper closed the order stream first (a conflict: only
        // it writes there before us), or another request holds the idempotency key.
        Err(error @ (CommandError::Conflict | CommandError::IdempotencyKeyTaken)) => {
            compensate(ctx, order_id, &held, metadata).await;
            return Err(match error {
                CommandError::Conflict => refused(OrderError::CheckoutExpired),
                other => other,
            });
        }
        // Perhaps placed (the store may have failed after writing): releasing the holds now
        // could free the stock of a standing order. The reaper decides once they expire.
        Err(error) => {
            tracing::warn!(%order_id, %error, "order append failed; its holds are left to the reservations process");
            return Err(error);
        }
    };

    // The order stands from here on; what follows cannot undo it.
    let payment = AppendRequest::new().stream(
        payment_stream(order_id),
        ExpectedVersion::NoStream,
        new_events(&decision.payment, metadata),
    );
    match ctx.store.append(payment).await {
        Ok(appended) => accepted.position = accepted.position.max(appended.position()),
        Err(error) => tracing::error!(%order_id, %error, "order placed but its payment request was not written"),
    }
    match empty_cart(ctx, buyer_id, order_id, metadata).await {
        Ok(Some(position)) => accepted.position = accepted.position.max(position),
        Ok(None) => {}
        Err(error) => tracing::warn!(%order_id, %error, "order placed but the cart was not emptied"),
    }
    Ok(accepted)
}

/// Hold `quantity` of one product for the order: reload, decide, append with the product
/// stream's expected version, again on a conflict.
async fn hold(
    ctx: &Context,
    product_id: Uuid,
    order_id: Uuid,
    quantity: u32,
    expires_at: DateTime<Utc>,
    metadata: &EventMetadata,
) -> Result<()> {
    let stream = product_stream(product_id);
    crate::retrying!(ctx, {
        let product = load::<ProductDecider>(&*ctx.store, &stream).await?;
        let events = ProductDecider::decide(&ProductCommand::Hold { order_id, quantity, expires_at }, &product.state)
            .map_err(|error| match error {
            ProductError::NotFound => refused(CheckoutError::Product(ProductError::Unavailable { product_id })),
            other => refused(CheckoutError::Product(other)),
        })?;
        if !events.is_empty() {
            let request =
                AppendRequest::new().stream(stream.clone(), product.expected(), new_events(&events, metadata));
            ctx.store.append(request).await?;
        }
        Ok(())
    })
}

/// Release the holds this checkout made. Best effort: what fails here is released by the
/// `reservations` process once the holds expire.
async fn compensate(ctx: &Context, order_id: Uuid, held: &[Uuid], metadata: &EventMetadata) {
    for product_id in held.iter().rev() {
        if let Err(error) =
            release_hold(ctx, &product_stream(*product_id), order_id, HoldReleaseReason::Compensated, metadata).await
        {
            tracing::warn!(%order_id, %product_id, %error, "compensation failed; the hold is released when it expires");
        }
    }
}

/// Give back one hold of `order_id` on a product stream, if it is still held.
pub async fn release_hold(
    ctx: &Context,
    stream: &StreamId,
    order_id: Uuid,
    reason: HoldReleaseReason,
    metadata: &EventMetadata,
) -> Result<()> {
    crate::retrying!(ctx, {
        let product = load::<ProductDecider>(&*ctx.store, stream).await?;
        let events = ProductDecider::decide(&ProductCommand::ReleaseHold { order_id, reason }, &product.state)
            .map_err(refused)?;
        if !events.is_empty() {
            let request =
                AppendRequest::new().stream(stream.clone(), product.expected(), new_events(&events, metadata));
            ctx.store.append(request).await?;
        }
        Ok(())
    })
}

/// Mark the cart checked out (it is emptied), if it still holds items.
async fn empty_cart(
    ctx: &Context,
    buyer_id: Uuid,
    order_id: Uuid,
    metadata: &EventMetadata,
) -> Result<Option<events::LogPosition>> {
    let stream = cart_stream(buyer_id);
    crate::retrying!(ctx, {
        let cart = load::<CartDecider>(&*ctx.store, &stream).await?;
        let Ok(events) = CartDecider::decide(&CartCommand::CheckOut { order_id }, &cart.state) else {
            return Ok(None);
        };
        let request = AppendRequest::new().stream(stream.clone(), cart.expected(), new_events(&events, metadata));
        Ok(Some(ctx.store.append(request).await?.position()))
    })
}
