//! `POST /api/v1/products`, `PATCH|DELETE /api/v1/products/{id}`, `POST /api/v1/products/{id}/stock`.

use axum::extract::State;
use axum::response::Response;
use events::domain::accounts::Role;
use events::domain::catalog::StockAdjustmentReason;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers::{self, NewProduct, ProductChanges};
use crate::auth::require;
use crate::handling::Meta;
use crate::http::extract::{Auth, IdempotencyKey, Input, PathId, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, idempotency, respond};
use crate::values::{Currency, Description, Label, PriceCents, StockDelta, StockLevel, Title, Validator};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_product))
        .routes(routes!(change_product, delist_product))
        .routes(routes!(adjust_stock))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    /// Price in minor units (cents), > 0.
    pub price_cents: i64,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    /// Units in stock, 0 to 1,000,000.
    pub stock: i64,
}

impl ProductRequest {
    pub fn parse(&self) -> Result<NewProduct, ApiError> {
        let mut v = Validator::default();
        let title = v.check("title", Title::parse(&self.title));
        let description = v.check("description", Description::parse(&self.description));
        let category = v.check("category", Label::parse(&self.category));
        let brand = v.check("brand", Label::parse(&self.brand));
        let price = v.check("price_cents", PriceCents::parse(self.price_cents));
        let currency = v.check("currency", Currency::parse(&self.currency));
        let stock = v.check("stock", StockLevel::parse(self.stock));
        v.finish().map_err(|e| ApiError::validation(e.0))?;
        match (title, description, category, brand, price, currency, stock) {
            (Some(title), Some(description), Some(category), Some(brand), Some(price), Some(currency), Some(stock)) => {
                Ok(NewProduct { title, description, category, brand, price, currency, stock })
            }
            _ => Err(ApiError::field("body", "is invalid")),
        }
    }
}

/// List a product (vendors).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = ProductRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 201, description = "Listed", body = CommandResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a vendor", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_product(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    key: IdempotencyKey,
    input: Input<ProductRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Vendor])?;
    let product = input.value.parse()?;
    let meta = Meta::new(Some(caller), request_id);
    let scope = idempotency::scope(key.0, Some(&caller), "POST /api/v1/products", &input.digest);
    crate::idempotent!(&state, scope, |idem| handlers::list(&state.ctx, caller.account_id, product, &meta, idem).await)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChangeRequest {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
}

/// Change a product's details or price (its vendor).
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "catalog", request_body = ProductChangeRequest,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Changed (or nothing to change)", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`product_delisted`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_product(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(product_id): PathId,
    input: Input<ProductChangeRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Vendor])?;
    let r = &input.value;
    let mut v = Validator::default();
    let changes = ProductChanges {
        title: v.check_opt("title", r.title.as_deref(), Title::parse).flatten(),
        description: v.check_opt("description", r.description.as_deref(), Description::parse).flatten(),
        category: v.check_opt("category", r.category.as_deref(), Label::parse).flatten(),
        brand: v.check_opt("brand", r.brand.as_deref(), Label::parse).flatten(),
        price: v.check_opt("price_cents", r.price_cents, PriceCents::parse).flatten(),
        currency: v.check_opt("currency", r.currency.as_deref(), Currency::parse).flatten(),
    };
    if [
        r.title.is_none(),
        r.description.is_none(),
        r.category.is_none(),
        r.brand.is_none(),
        r.price_cents.is_none(),
        r.currency.is_none(),
    ]
    .iter()
    .all(|absent| *absent)
    {
        v.fail("body", "give at least one of title, description, category, brand, price_cents, currency");
    }
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::change(&state.ctx, caller, product_id, changes, &meta).await?, false))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRequest {
    /// Units to add (restock) or remove (correction); not 0.
    pub delta: i64,
    /// `restock` or `correction`; by default `restock` for a positive delta, `correction` otherwise.
    pub reason: Option<String>,
}

/// Restock or correct a product's stock (its vendor). Stock never goes below zero.
#[utoipa::path(post, path = "/api/v1/products/{id}/stock", tag = "catalog", request_body = StockRequest,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Adjusted; `stock` is the new level", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_stock`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn adjust_stock(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(product_id): PathId,
    key: IdempotencyKey,
    input: Input<StockRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Vendor])?;
    let mut v = Validator::default();
    let delta = v.check("delta", StockDelta::parse(input.value.delta));
    let reason = v.check(
        "reason",
        match input.value.reason.as_deref() {
            None if input.value.delta > 0 => Ok(StockAdjustmentReason::Restock),
            None => Ok(StockAdjustmentReason::Correction),
            Some("restock") => Ok(StockAdjustmentReason::Restock),
            Some("correction") => Ok(StockAdjustmentReason::Correction),
            Some(_) => Err("must be restock or correction".to_owned()),
        },
    );
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let (Some(delta), Some(reason)) = (delta, reason) else { return Err(ApiError::field("body", "is invalid")) };
    let meta = Meta::new(Some(caller), request_id);
    let route = format!("POST /api/v1/products/{product_id}/stock");
    let scope = idempotency::scope(key.0, Some(&caller), &route, &input.digest);
    crate::idempotent!(&state, scope, |idem| {
        handlers::adjust_stock(&state.ctx, caller, product_id, delta, reason, &meta, idem).await
    })
}

/// Delist a product (its vendor, or an admin).
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Delisted (or already)", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delist_product(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(product_id): PathId,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Vendor, Role::Admin])?;
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::delist(&state.ctx, caller, product_id, &meta).await?, false))
}
