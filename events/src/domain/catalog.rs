//! Catalogue: products listed by vendors, their details, price and stock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;

/// Stream category of products: `product-<product id>`.
pub const PRODUCT_CATEGORY: &str = "product";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductListed {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
}

/// New values of every detail (not a diff), so projections simply overwrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetailsChanged {
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPriceChanged {
    pub price_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockAdjustmentReason {
    Restock,
    Correction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStockAdjusted {
    pub delta: i64,
    pub reason: StockAdjustmentReason,
    /// Stock after the adjustment.
    pub stock: u32,
}

/// Units taken by an order at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStockReserved {
    pub order_id: Uuid,
    pub quantity: u32,
    /// Stock after the reservation.
    pub stock: u32,
}

/// Units given back by a cancelled order (or a reservation no order claimed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStockReleased {
    pub order_id: Uuid,
    pub quantity: u32,
    /// Stock after the release.
    pub stock: u32,
}

/// Stock set aside for a checkout on a store without atomic multi-stream appends (the
/// reserve path): the order is written after every hold, and claims them. A hold no order
/// claimed by `expires_at` is released by the `reservations` process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStockHeld {
    pub order_id: Uuid,
    pub quantity: u32,
    /// Stock left after the hold.
    pub stock: u32,
    pub expires_at: DateTime<Utc>,
}

/// Why a hold went back on the shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReleaseReason {
    /// A later product of the same checkout could not be held (or the checkout failed).
    Compensated,
    /// No order claimed the hold in time.
    Expired,
}

/// A hold released before any order claimed it: its stock is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductHoldReleased {
    pub order_id: Uuid,
    pub quantity: u32,
    /// Stock after the release.
    pub stock: u32,
    pub reason: HoldReleaseReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDelisted {
    pub product_id: Uuid,
}

domain_events! {
    /// Events of a product stream.
    pub enum ProductEvent {
        "product.listed" v 1 => Listed(ProductListed),
        "product.details_changed" v 1 => DetailsChanged(ProductDetailsChanged),
        "product.price_changed" v 1 => PriceChanged(ProductPriceChanged),
        "product.stock_adjusted" v 1 => StockAdjusted(ProductStockAdjusted),
        "product.stock_reserved" v 1 => StockReserved(ProductStockReserved),
        "product.stock_released" v 1 => StockReleased(ProductStockReleased),
        "product.delisted" v 1 => Delisted(ProductDelisted),
        "product.stock_held" v 1 => StockHeld(ProductStockHeld),
        "product.hold_released" v 1 => HoldReleased(ProductHoldReleased),
    }
}
