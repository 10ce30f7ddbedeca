//! Carts and orders: a buyer's cart, checkout into an order, and the order's life until it
//! is delivered, cancelled or refunded. Also the buyer's purchase record, which the review
//! rules read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;
use crate::privacy::Sealed;

/// Stream category of carts: `cart-<buyer id>`.
pub const CART_CATEGORY: &str = "cart";
/// Stream category of orders: `order-<order id>`.
pub const ORDER_CATEGORY: &str = "order";
/// Stream category of a buyer's delivered purchases: `purchases-<buyer id>`.
pub const PURCHASES_CATEGORY: &str = "purchases";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItemSet {
    pub product_id: Uuid,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItemRemoved {
    pub product_id: Uuid,
}

/// The cart became an order and is empty again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartCheckedOut {
    pub order_id: Uuid,
}

domain_events! {
    /// Events of a cart stream.
    pub enum CartEvent {
        "cart.item_set" v 1 => ItemSet(CartItemSet),
        "cart.item_removed" v 1 => ItemRemoved(CartItemRemoved),
        "cart.checked_out" v 1 => CheckedOut(CartCheckedOut),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub quantity: u32,
    /// Price per unit at the time of checkout.
    pub unit_price_cents: i64,
}

impl OrderLine {
    pub fn total_cents(&self) -> i64 {
        self.unit_price_cents * i64::from(self.quantity)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    pub total_cents: i64,
    /// Sealed with the buyer's key.
    pub shipping_address: Sealed,
}

/// Payment authorised: the order will be fulfilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub authorization_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Stable code: `buyer_request`, `admin_request`, `payment_declined`, ...
    pub reason: String,
    /// Lines whose stock went back on the shelf, so projections need not look elsewhere.
    pub released: Vec<OrderLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    pub delivery_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefunded {
    pub amount_cents: i64,
    pub refund_id: String,
}

/// A reserve-path checkout that never wrote its order: written by the `reservations`
/// process on the still-empty order stream (expected version: no stream), so the checkout
/// can no longer place the order and its stock holds can be released safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCheckoutExpired {
    pub order_id: Uuid,
}

domain_events! {
    /// Events of an order stream.
    pub enum OrderEvent {
        "order.placed" v 1 => Placed(OrderPlaced),
        "order.confirmed" v 1 => Confirmed(OrderConfirmed),
        "order.cancelled" v 1 => Cancelled(OrderCancelled),
        "order.delivered" v 1 => Delivered(OrderDelivered),
        "order.refunded" v 1 => Refunded(OrderRefunded),
        "order.checkout_expired" v 1 => CheckoutExpired(OrderCheckoutExpired),
    }
}

/// An order of this buyer was delivered: the buyer may now review these products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseDelivered {
    pub order_id: Uuid,
    pub product_ids: Vec<Uuid>,
}

domain_events! {
    /// Events of a buyer's purchases stream.
    pub enum PurchaseEvent {
        "purchase.delivered" v 1 => Delivered(PurchaseDelivered),
    }
}
