//! Deliveries: created for a confirmed order, then tracked by a carrier until a final state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;
use crate::privacy::Sealed;

/// Stream category of deliveries: `delivery-<delivery id>`.
pub const DELIVERY_CATEGORY: &str = "delivery";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    FailedAttempt,
    Returned,
}

impl TrackingStatus {
    pub const ALL: [TrackingStatus; 6] = [
        TrackingStatus::PickedUp,
        TrackingStatus::InTransit,
        TrackingStatus::OutForDelivery,
        TrackingStatus::Delivered,
        TrackingStatus::FailedAttempt,
        TrackingStatus::Returned,
    ];

    /// No tracking event may follow a final one.
    pub fn is_final(self) -> bool {
        matches!(self, TrackingStatus::Delivered | TrackingStatus::Returned)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrackingStatus::PickedUp => "picked_up",
            TrackingStatus::InTransit => "in_transit",
            TrackingStatus::OutForDelivery => "out_for_delivery",
            TrackingStatus::Delivered => "delivered",
            TrackingStatus::FailedAttempt => "failed_attempt",
            TrackingStatus::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Option<TrackingStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCreated {
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    /// Sealed with the buyer's key.
    pub shipping_address: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTracked {
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    pub carrier_id: Uuid,
    pub status: TrackingStatus,
    pub location: String,
    pub occurred_at: DateTime<Utc>,
}

domain_events! {
    /// Events of a delivery stream.
    pub enum DeliveryEvent {
        "delivery.created" v 1 => Created(DeliveryCreated),
        "delivery.tracked" v 1 => Tracked(DeliveryTracked),
    }
}
