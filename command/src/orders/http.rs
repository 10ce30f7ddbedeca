//! `PUT /api/v1/cart/items/{product_id}`, `POST /api/v1/checkout`, `POST /api/v1/orders/{id}/cancel`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::domain::accounts::Role;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers::{self, CheckoutOrder};
use crate::auth::require;
use crate::handling::Meta;
use crate::http::extract::{Auth, IdempotencyKey, Input, PathId, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, idempotency, respond};
use crate::values::{Address, AddressInput, PaymentToken, Quantity, Validator};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_cart_item)).routes(routes!(checkout)).routes(routes!(cancel_order))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemRequest {
    /// 0 removes the product from the cart; at most 1,000.
    pub quantity: i64,
}

/// Set how many of a product are in my cart (buyers).
#[utoipa::path(put, path = "/api/v1/cart/items/{product_id}", tag = "orders", request_body = CartItemRequest,
    security(("bearer" = [])),
    params(("product_id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Cart updated; `id` is the buyer's", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`product_unavailable`, `cart_full`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_cart_item(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(product_id): PathId,
    input: Input<CartItemRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Buyer])?;
    let quantity = match input.value.quantity {
        0 => 0,
        n => Quantity::parse(n)
            .map_err(|message| ApiError::field("quantity", format!("{message} (0 removes the item)")))?
            .get(),
    };
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::set_cart_item(&state.ctx, caller, product_id, quantity, &meta).await?, false))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub shipping_address: AddressInput,
    /// A payment token from the payment provider; in the sandbox: `tok_visa` (authorised),
    /// `tok_declined` (declined), `tok_timeout` (times out once, then authorised).
    pub payment_token: String,
}

/// Check out my cart (buyers). Needs an `Idempotency-Key` header: a retry with the same key
/// and body returns the same order and places nothing new.
#[utoipa::path(post, path = "/api/v1/checkout", tag = "orders", request_body = CheckoutRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Required: a fresh key (e.g. a UUID) per checkout")),
    responses(
        (status = 201, description = "Order placed; payment follows asynchronously", body = CommandResponse),
        (status = 400, description = "`idempotency_key_required`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out_of_stock`, `cart_empty`, `product_unavailable`, `mixed_currencies`, `conflict`; on stores without atomic multi-stream appends also `checkout_expired` (the checkout outlived its stock holds)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `idempotency_mismatch`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn checkout(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    key: IdempotencyKey,
    input: Input<CheckoutRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Buyer])?;
    if key.0.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "checkout needs an Idempotency-Key header (a fresh UUID per checkout), so a retried request never orders twice",
        ));
    }
    let mut v = Validator::default();
    let address = Address::parse(&input.value.shipping_address, "shipping_address", &mut v);
    let token = v.check("payment_token", PaymentToken::parse(&input.value.payment_token));
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let (Some(shipping_address), Some(payment_token)) = (address, token) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let meta = Meta::new(Some(caller), request_id);
    let scope = idempotency::scope(key.0, Some(&caller), "POST /api/v1/checkout", &input.digest);
    let order = CheckoutOrder { shipping_address, payment_token };
    if state.ctx.store.capabilities().atomic_multi_stream {
        // The checkout is one atomic append that stores the key with the order.
        crate::run_then_look_up!(&state, scope, |idem| handlers::checkout(&state.ctx, caller, order, &meta, idem).await)
    } else {
        // The reserve path holds stock before its final append: a replay must not get there.
        crate::idempotent!(&state, scope, |idem| handlers::checkout(&state.ctx, caller, order, &meta, idem).await)
    }
}

/// Cancel an order: its buyer before it ships, or an admin. Stock is released; a paid order is
/// refunded.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled (or already)", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_shipped`, `order_not_cancellable`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_order(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(order_id): PathId,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Buyer, Role::Admin])?;
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::cancel(&state.ctx, caller, order_id, &meta).await?, false))
}
