//! Payments: one payment per order (stream `payment-<order id>`), authorised through the
//! payment gateway with the order id as the gateway's idempotency key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;

/// Stream category of payments: `payment-<order id>`.
pub const PAYMENT_CATEGORY: &str = "payment";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    /// The gateway's token for the buyer's payment method (never card data).
    pub payment_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAuthorized {
    pub order_id: Uuid,
    pub authorization_id: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    pub order_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub refund_id: String,
    pub amount_cents: i64,
}

domain_events! {
    /// Events of a payment stream.
    pub enum PaymentEvent {
        "payment.requested" v 1 => Requested(PaymentRequested),
        "payment.authorized" v 1 => Authorized(PaymentAuthorized),
        "payment.declined" v 1 => Declined(PaymentDeclined),
        "payment.refunded" v 1 => Refunded(PaymentRefunded),
    }
}
