//! Cart, checkout and cancellation commands.

use std::collections::HashMap;

use events::domain::catalog::ProductEvent;
use events::domain::orders::{CART_CATEGORY, ORDER_CATEGORY, PURCHASES_CATEGORY};
use events::identity::Caller;
use events::{AppendRequest, ExpectedVersion, StreamId};
use uuid::Uuid;

use super::decider::{
    CartCommand, CartDecider, CheckoutDecision, CheckoutInput, Order, OrderCommand, OrderDecider, decide_checkout,
};
use crate::catalog::decider::{Product, ProductCommand, ProductDecider, ProductError};
use crate::catalog::handlers::product_stream;
use crate::decider::Decider;
use crate::deliveries::decider::{Delivery, DeliveryDecider};
use crate::deliveries::handlers::{delivery_id_for, delivery_stream};
use crate::error::{CommandError, Result, refused};
use crate::handling::{
    Accepted, Context, Idempotency, Loaded, Meta, execute, fold_recorded, id_body, load_current, new_events, remember,
    unchanged,
};
use crate::payments::handlers::payment_stream;
use crate::values::{Address, PaymentToken};

pub fn cart_stream(buyer_id: Uuid) -> StreamId {
    StreamId::new(CART_CATEGORY, buyer_id)
}

pub fn order_stream(order_id: Uuid) -> StreamId {
    StreamId::new(ORDER_CATEGORY, order_id)
}

pub fn purchases_stream(buyer_id: Uuid) -> StreamId {
    StreamId::new(PURCHASES_CATEGORY, buyer_id)
}

/// Put `quantity` of a product in the caller's cart (0 takes it out).
pub async fn set_cart_item(
    ctx: &Context,
    caller: Caller,
    product_id: Uuid,
    quantity: u32,
    meta: &Meta,
) -> Result<Accepted> {
    if quantity > 0 {
        // The current state, not a cached one: the cart append does not check the product.
        match load_current::<ProductDecider>(ctx, &product_stream(product_id)).await?.state {
            Product::Listed(_) => {}
            Product::Unlisted => return Err(refused(ProductError::NotFound)),
            Product::Delisted { .. } => return Err(refused(ProductError::Unavailable { product_id })),
        }
    }
    let command = CartCommand::SetItem { product_id, quantity };
    execute::<CartDecider>(ctx, &cart_stream(caller.account_id), &command, &meta.metadata(), 200, None, |_| {
        let mut body = id_body(caller.account_id);
        body.insert("product_id".into(), product_id.to_string().into());
        body.insert("quantity".into(), quantity.into());
        body
    })
    .await
}

/// Where the order goes and how it is paid.
#[derive(Debug, Clone)]
pub struct CheckoutOrder {
    pub shipping_address: Address,
    pub payment_token: PaymentToken,
}

/// Turn the caller's cart into an order: one atomic append of the cart, the order, the
/// payment request and every product's stock reservation. Stock cannot be oversold: a
/// concurrent checkout of the same product makes this append conflict, and the retry sees
/// the lower stock. A store without atomic multi-stream appends takes the reserve path
/// instead ([`super::reserve`]).
pub async fn checkout(
    ctx: &Context,
    caller: Caller,
    order: CheckoutOrder,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let buyer_id = caller.account_id;
    let address = serde_json::to_string(&order.shipping_address).map_err(CommandError::internal)?;
    let shipping_address = ctx.vault.seal(buyer_id, &address).await?;
    let order_id = Uuid::now_v7();
    let metadata = meta.metadata();
    if !ctx.store.capabilities().atomic_multi_stream {
        let decision = decide_snapshot(ctx, order_id, buyer_id, shipping_address, &order, true).await?.decision;
        let accepted = super::reserve::place(ctx, order_id, buyer_id, decision, &metadata, idempotency).await?;
        metrics::counter!("agora_checkouts_total").increment(1);
        return Ok(accepted);
    }
    let mut current = false;
    let accepted = crate::retrying!(ctx, {
        // The first try decides on cached states; after a conflict, on current ones.
        let snapshot = decide_snapshot(ctx, order_id, buyer_id, shipping_address.clone(), &order, current).await?;
        current = true;
        let Snapshot { decision, cart, products } = snapshot;
        let mut request = AppendRequest::new()
            .stream(cart_stream(buyer_id), cart.expected(), new_events(&decision.cart, &metadata))
            .stream(order_stream(order_id), ExpectedVersion::NoStream, new_events(&decision.order, &metadata))
            .stream(payment_stream(order_id), ExpectedVersion::NoStream, new_events(&decision.payment, &metadata));
        for (product_id, events) in &decision.stock {
            let expected = products.get(product_id).map_or(ExpectedVersion::NoStream, Loaded::expected);
            request = request.stream(product_stream(*product_id), expected, new_events(events, &metadata));
        }
        let mut body = id_body(order_id);
        body.insert("status".into(), "placed".into());
        body.insert("total_cents".into(), decision.total_cents.into());
        body.insert("currency".into(), decision.currency.clone().into());
        if let Some(idempotency) = idempotency {
            request = request.idempotent(idempotency.record(201, &body));
        }
        match ctx.store.append(request).await {
            Ok(appended) => {
                remember::<CartDecider>(ctx, &cart_stream(buyer_id), cart, &decision.cart, &appended);
                let mut products = products;
                for (product_id, events) in &decision.stock {
                    if let Some(product) = products.remove(product_id) {
                        remember::<ProductDecider>(ctx, &product_stream(*product_id), product, events, &appended);
                    }
                }
                Ok(Accepted { status: 201, body, position: appended.position() })
            }
            Err(error) => {
                ctx.aggregates.forget(&cart_stream(buyer_id));
                for product_id in products.keys() {
                    ctx.aggregates.forget(&product_stream(*product_id));
                }
                Err(error.into())
            }
        }
    })?;
    metrics::counter!("agora_checkouts_total").increment(1);
    Ok(accepted)
}

/// A checkout decision and the states it was decided on.
struct Snapshot {
    decision: CheckoutDecision,
    cart: Loaded<super::decider::Cart>,
    products: HashMap<Uuid, Loaded<Product>>,
}

/// Checkout decided on the cart and its products. Unless `current`, on their cached states
/// when all are cached and they allow the checkout (the append's expected versions catch a
/// stale one); a refusal is only ever given on the current states.
async fn decide_snapshot(
    ctx: &Context,
    order_id: Uuid,
    buyer_id: Uuid,
    shipping_address: events::privacy::Sealed,
    order: &CheckoutOrder,
    current: bool,
) -> Result<Snapshot> {
    let decide = |cart: &Loaded<super::decider::Cart>, products: &HashMap<Uuid, Loaded<Product>>| {
        let states: HashMap<Uuid, Product> = products.iter().map(|(id, p)| (*id, p.state.clone())).collect();
        decide_checkout(&CheckoutInput {
            order_id,
            buyer_id,
            cart: &cart.state,
            products: &states,
            shipping_address: shipping_address.clone(),
            payment_token: order.payment_token.as_str().to_owned(),
        })
    };
    if !current && let Some(cart) = ctx.aggregates.get::<super::decider::Cart>(&cart_stream(buyer_id)) {
        let products: Option<HashMap<Uuid, Loaded<Product>>> = cart
            .state
            .items
            .keys()
            .map(|id| ctx.aggregates.get::<Product>(&product_stream(*id)).map(|p| (*id, p)))
            .collect();
        if let Some(products) = products
            && let Ok(decision) = decide(&cart, &products)
        {
            return Ok(Snapshot { decision, cart, products });
        }
    }
    let cart = load_current::<CartDecider>(ctx, &cart_stream(buyer_id)).await?;
    let product_ids: Vec<Uuid> = cart.state.items.keys().copied().collect();
    let streams: Vec<StreamId> = product_ids.iter().map(|id| product_stream(*id)).collect();
    let recorded = ctx.store.read_streams(&streams).await?;
    let mut products = HashMap::with_capacity(product_ids.len());
    for ((id, stream), events) in product_ids.iter().zip(&streams).zip(&recorded) {
        let loaded = fold_recorded::<ProductDecider>(events)?;
        ctx.aggregates.put(stream, loaded.clone());
        products.insert(*id, loaded);
    }
    let decision = decide(&cart, &products).map_err(refused)?;
    Ok(Snapshot { decision, cart, products })
}

/// Cancel an order (its buyer before it ships, or an admin): its stock goes back on the
/// shelves in the same append; the payment process refunds an authorised payment.
pub async fn cancel(ctx: &Context, caller: Caller, order_id: Uuid, meta: &Meta) -> Result<Accepted> {
    let reason = if caller.role == events::domain::accounts::Role::Admin { "admin_request" } else { "buyer_request" };
    let metadata = meta.metadata();
    crate::retrying!(ctx, {
        let delivery_id = delivery_id_for(order_id);
        let recorded = ctx.store.read_streams(&[order_stream(order_id), delivery_stream(delivery_id)]).await?;
        let order = fold_recorded::<OrderDecider>(&recorded[0])?;
        let delivery = fold_recorded::<DeliveryDecider>(&recorded[1])?;
        let shipped = matches!(&delivery.state, Delivery::Open { history, .. } if !history.is_empty())
            || matches!(delivery.state, Delivery::Closed { .. });
        let command = OrderCommand::Cancel { by: caller, reason: reason.to_owned(), shipped };
        let cancelled = OrderDecider::decide(&command, &order.state).map_err(refused)?;
        let mut body = id_body(order_id);
        body.insert("status".into(), "cancelled".into());
        // Appended in steps (no atomic multi-stream append), an order may be cancelled with
        // some of its stock not yet released (a conflict or crash between the steps): finish.
        let resumed = !ctx.store.capabilities().atomic_multi_stream && matches!(order.state, Order::Cancelled { .. });
        if cancelled.is_empty() && !resumed {
            return Ok(Accepted { status: 200, body, position: unchanged(ctx, order.position).await? });
        }
        let mut request =
            AppendRequest::new().stream(order_stream(order_id), order.expected(), new_events(&cancelled, &metadata));
        for (product_id, expected, released) in stock_releases(ctx, &order.state, order_id).await? {
            request = request.stream(
                product_stream(product_id),
                expected,
                release_events(order_id, product_id, &released, &metadata),
            );
        }
        if request.event_count() == 0 {
            return Ok(Accepted { status: 200, body, position: unchanged(ctx, order.position).await? });
        }
        // In steps, in the request's order: the order first (once cancelled, a retry finishes
        // the releases), then each release.
        let last = request.streams.last().map(|s| s.stream_id.clone()).unwrap_or_else(|| order_stream(order_id));
        let appended = crate::handling::append_steps(ctx, request, &last).await?;
        Ok(Accepted { status: 200, body, position: appended.position() })
    })
}

/// Release events of a cancelled order's line, with ids derived from the order and the
/// product: released in steps and retried, the same release is a replay, never a second one.
pub(crate) fn release_events(
    order_id: Uuid,
    product_id: Uuid,
    released: &[events::domain::catalog::ProductEvent],
    metadata: &events::EventMetadata,
) -> Vec<events::NewEvent> {
    released
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let n = (n as u64).to_be_bytes();
            let id = events::ids::derived("stock-release", &[order_id.as_bytes(), product_id.as_bytes(), &n]);
            events::NewEvent::from_domain_with_id(id, event, metadata.clone())
        })
        .collect()
}

/// The stock releases of every line of a cancelled order, per product with its expected
/// version. A product whose stream already gave this order's stock back is left out.
pub(crate) async fn stock_releases(
    ctx: &Context,
    order: &Order,
    order_id: Uuid,
) -> Result<Vec<(Uuid, ExpectedVersion, Vec<events::domain::catalog::ProductEvent>)>> {
    let Some(info) = order.info() else { return Ok(vec![]) };
    let streams: Vec<StreamId> = info.lines.iter().map(|l| product_stream(l.product_id)).collect();
    let recorded = ctx.store.read_streams(&streams).await?;
    let mut releases = Vec::with_capacity(info.lines.len());
    for (line, events) in info.lines.iter().zip(&recorded) {
        let already = events.iter().filter(|e| e.event_type == "product.stock_released").any(
            |e| matches!(e.decode::<ProductEvent>(), Ok(ProductEvent::StockReleased(r)) if r.order_id == order_id),
        );
        if already {
            continue;
        }
        let product = fold_recorded::<ProductDecider>(events)?;
        let released =
            ProductDecider::decide(&ProductCommand::Release { order_id, quantity: line.quantity }, &product.state)
                .map_err(refused)?;
        if !released.is_empty() {
            releases.push((line.product_id, product.expected(), released));
        }
    }
    Ok(releases)
}
