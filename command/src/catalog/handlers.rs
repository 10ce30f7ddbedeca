//! Catalogue commands: list, change, adjust stock, delist.

use events::StreamId;
use events::domain::catalog::{PRODUCT_CATEGORY, ProductEvent, StockAdjustmentReason};
use events::identity::Caller;
use uuid::Uuid;

use super::decider::{ProductCommand, ProductDecider};
use crate::error::Result;
use crate::handling::{Accepted, Context, Idempotency, Meta, execute, id_body};
use crate::values::{Currency, Description, Label, PriceCents, StockDelta, StockLevel, Title};

pub fn product_stream(product_id: Uuid) -> StreamId {
    StreamId::new(PRODUCT_CATEGORY, product_id)
}

/// A new product, as a vendor describes it.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub title: Title,
    pub description: Description,
    pub category: Label,
    pub brand: Label,
    pub price: PriceCents,
    pub currency: Currency,
    pub stock: StockLevel,
}

/// List a product for sale, owned by `vendor_id`.
pub async fn list(
    ctx: &Context,
    vendor_id: Uuid,
    product: NewProduct,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let product_id = Uuid::now_v7();
    let command = ProductCommand::List {
        product_id,
        vendor_id,
        title: product.title,
        description: product.description,
        category: product.category,
        brand: product.brand,
        price: product.price,
        currency: product.currency,
        stock: product.stock,
    };
    execute::<ProductDecider>(ctx, &product_stream(product_id), &command, &meta.metadata(), 201, idempotency, |_| {
        id_body(product_id)
    })
    .await
}

/// Fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub category: Option<Label>,
    pub brand: Option<Label>,
    pub price: Option<PriceCents>,
    pub currency: Option<Currency>,
}

pub async fn change(
    ctx: &Context,
    caller: Caller,
    product_id: Uuid,
    changes: ProductChanges,
    meta: &Meta,
) -> Result<Accepted> {
    let command = ProductCommand::Change {
        by: caller,
        title: changes.title,
        description: changes.description,
        category: changes.category,
        brand: changes.brand,
        price: changes.price,
        currency: changes.currency,
    };
    execute::<ProductDecider>(ctx, &product_stream(product_id), &command, &meta.metadata(), 200, None, |_| {
        id_body(product_id)
    })
    .await
}

/// Restock or correct the stock; the response carries the new stock level.
pub async fn adjust_stock(
    ctx: &Context,
    caller: Caller,
    product_id: Uuid,
    delta: StockDelta,
    reason: StockAdjustmentReason,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let command = ProductCommand::AdjustStock { by: caller, delta, reason };
    execute::<ProductDecider>(
        ctx,
        &product_stream(product_id),
        &command,
        &meta.metadata(),
        200,
        idempotency,
        |events| {
            let mut body = id_body(product_id);
            if let Some(ProductEvent::StockAdjusted(adjusted)) = events.last() {
                body.insert("stock".into(), adjusted.stock.into());
            }
            body
        },
    )
    .await
}

/// Take a product off sale (its vendor or an admin).
pub async fn delist(ctx: &Context, caller: Caller, product_id: Uuid, meta: &Meta) -> Result<Accepted> {
    execute::<ProductDecider>(
        ctx,
        &product_stream(product_id),
        &ProductCommand::Delist { by: caller },
        &meta.metadata(),
        200,
        None,
        |_| id_body(product_id),
    )
    .await
}
