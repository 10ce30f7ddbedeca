//! Public integration events: what other systems see of the marketplace (NATS JetStream,
//! webhooks).
//!
//! Domain events are the private language of Agora and may change shape with every release
//! (upcasting keeps the log readable). Integration events are a contract with outsiders, so
//! they are a separate, small, versioned schema, mapped from domain events by a pure function:
//!
//! - only facts other systems care about (orders, deliveries, catalogue, approved reviews);
//!   internal events (carts, stock reservations, payments, accounts, ...) map to nothing;
//! - ids and business values only: never personal data. Names, emails and shipping addresses
//!   are sealed in the log and erasable; they are left out entirely, so nothing published
//!   can outlive an erasure.
//!
//! Every message is an [`IntegrationEvent`] envelope; `id` is the domain event's id, so a
//! consumer (or the broker) can drop duplicates of an at-least-once delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::catalog::ProductEvent;
use crate::domain::deliveries::DeliveryEvent;
use crate::domain::orders::OrderEvent;
use crate::domain::reviews::ReviewEvent;
use crate::envelope::RecordedEvent;

/// Version of the envelope and of every payload below. Adding an optional field keeps it;
/// renaming or removing one, or changing a meaning, bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// Every integration event type, as published (`<prefix>.<type>` is the NATS subject).
pub const EVENT_TYPES: &[&str] = &[
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "delivery.status_changed",
    "product.listed",
    "product.price_changed",
    "product.out_of_stock",
    "review.approved",
];

/// Domain event types that may map to an integration event (the relay's pre-decoding filter).
pub const SOURCE_TYPES: &[&str] = &[
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "delivery.tracked",
    "product.listed",
    "product.price_changed",
    "product.stock_adjusted",
    "product.stock_reserved",
    "review.approved",
];

/// The envelope of every published integration event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationEvent {
    /// The id of the domain event it came from: the de-duplication key.
    pub id: Uuid,
    /// One of [`EVENT_TYPES`].
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    /// When the fact was recorded in the log.
    pub occurred_at: DateTime<Utc>,
    pub data: IntegrationData,
}

/// The payload, tagged by nothing (the envelope's `type` says which it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntegrationData {
    OrderPlaced(OrderPlaced),
    OrderConfirmed(OrderRef),
    OrderCancelled(OrderCancelled),
    DeliveryStatusChanged(DeliveryStatusChanged),
    ProductListed(ProductListed),
    ProductPriceChanged(ProductPriceChanged),
    ProductOutOfStock(ProductRef),
    ReviewApproved(ReviewApproved),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    /// Pseudonymous account id; no name, email or address.
    pub buyer_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRef {
    pub order_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    /// Stable code: `buyer_request`, `admin_request`, `payment_declined`, ...
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStatusChanged {
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    /// `picked_up`, `in_transit`, `out_for_delivery`, `delivered`, `failed_attempt`, `returned`.
    pub status: String,
    /// The carrier's location label (a hub or town, not the buyer's address).
    pub location: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductListed {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductPriceChanged {
    pub product_id: Uuid,
    pub price_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRef {
    pub product_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewApproved {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub rating: u8,
}

/// Why an event that should map could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Decode(#[from] crate::domain::DecodeError),
    #[error("stream {0} does not end in a uuid")]
    StreamId(String),
}

impl IntegrationEvent {
    /// The public event a domain event stands for, if any (`Ok(None)` for internal events).
    pub fn from_recorded(event: &RecordedEvent) -> Result<Option<IntegrationEvent>, MappingError> {
        if !SOURCE_TYPES.contains(&event.event_type.as_str()) {
            return Ok(None);
        }
        let aggregate = || event.stream_id.uuid().ok_or_else(|| MappingError::StreamId(event.stream_id.to_string()));
        let mapped = match event.stream_id.category() {
            "order" => match event.decode::<OrderEvent>()? {
                OrderEvent::Placed(placed) => {
                    Some(("order.placed", IntegrationData::OrderPlaced(order_placed(placed))))
                }
                OrderEvent::Confirmed(_) => {
                    Some(("order.confirmed", IntegrationData::OrderConfirmed(OrderRef { order_id: aggregate()? })))
                }
                OrderEvent::Cancelled(cancelled) => Some((
                    "order.cancelled",
                    IntegrationData::OrderCancelled(OrderCancelled {
                        order_id: aggregate()?,
                        reason: cancelled.reason,
                    }),
                )),
                _ => None,
            },
            "delivery" => match event.decode::<DeliveryEvent>()? {
                DeliveryEvent::Tracked(tracked) => Some((
                    "delivery.status_changed",
                    IntegrationData::DeliveryStatusChanged(DeliveryStatusChanged {
                        delivery_id: tracked.delivery_id,
                        order_id: tracked.order_id,
                        status: tracked.status.as_str().to_owned(),
                        location: tracked.location,
                        occurred_at: tracked.occurred_at,
                    }),
                )),
                _ => None,
            },
            "product" => match event.decode::<ProductEvent>()? {
                ProductEvent::Listed(listed) => Some((
                    "product.listed",
                    IntegrationData::ProductListed(ProductListed {
                        product_id: listed.product_id,
                        vendor_id: listed.vendor_id,
                        title: listed.title,
                        category: listed.category,
                        brand: listed.brand,
                        price_cents: listed.price_cents,
                        currency: listed.currency,
                        stock: listed.stock,
                    }),
                )),
                ProductEvent::PriceChanged(changed) => Some((
                    "product.price_changed",
                    IntegrationData::ProductPriceChanged(ProductPriceChanged {
                        product_id: aggregate()?,
                        price_cents: changed.price_cents,
                        currency: changed.currency,
                    }),
                )),
                // The stock reached zero: the moment a storefront or a feed should know.
                ProductEvent::StockReserved(reserved) if reserved.stock == 0 => Some((
                    "product.out_of_stock",
                    IntegrationData::ProductOutOfStock(ProductRef { product_id: aggregate()? }),
                )),
                ProductEvent::StockAdjusted(adjusted) if adjusted.stock == 0 && adjusted.delta < 0 => Some((
                    "product.out_of_stock",
                    IntegrationData::ProductOutOfStock(ProductRef { product_id: aggregate()? }),
                )),
                _ => None,
            },
            "review" => match event.decode::<ReviewEvent>()? {
                ReviewEvent::Approved(approved) => Some((
                    "review.approved",
                    IntegrationData::ReviewApproved(ReviewApproved {
                        review_id: approved.review_id,
                        product_id: approved.product_id,
                        rating: approved.rating,
                    }),
                )),
                _ => None,
            },
            _ => None,
        };
        Ok(mapped.map(|(event_type, data)| IntegrationEvent {
            id: event.event_id,
            event_type: event_type.to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: event.recorded_at,
            data,
        }))
    }

    /// The JSON document published (stable field order: serde follows the struct).
    pub fn to_json(&self) -> String {
        // Plain structs with string keys: serde_json cannot fail on them.
        serde_json::to_string(self).expect("integration events serialise to JSON")
    }
}

fn order_placed(placed: crate::domain::orders::OrderPlaced) -> OrderPlaced {
    // The shipping address (sealed personal data) is deliberately not carried over.
    OrderPlaced {
        order_id: placed.order_id,
        buyer_id: placed.buyer_id,
        lines: placed
            .lines
            .into_iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                vendor_id: l.vendor_id,
                title: l.title,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        currency: placed.currency,
        total_cents: placed.total_cents,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::DomainEvent;
    use crate::domain::accounts::{AccountErased, AccountEvent};
    use crate::domain::catalog::{ProductStockReserved, StockAdjustmentReason};
    use crate::domain::deliveries::{DeliveryTracked, TrackingStatus};
    use crate::domain::orders::{CartEvent, CartItemSet, OrderConfirmed};
    use crate::privacy::Sealed;
    use crate::{EventMetadata, LogPosition, StreamId};

    fn recorded<E: DomainEvent>(category: &str, id: Uuid, event: &E) -> RecordedEvent {
        RecordedEvent {
            position: LogPosition::new(1, 1),
            event_id: Uuid::now_v7(),
            stream_id: StreamId::new(category, id),
            stream_version: 1,
            event_type: event.event_type().to_owned(),
            schema_version: 1,
            data: event.to_json(),
            metadata: EventMetadata::default(),
            recorded_at: Utc.timestamp_opt(1_700_000_000, 0).single().unwrap(),
        }
    }

    #[test]
    fn order_placed_is_published_without_the_shipping_address() {
        let (order_id, buyer_id) = (Uuid::now_v7(), Uuid::now_v7());
        let placed = OrderEvent::Placed(crate::domain::orders::OrderPlaced {
            order_id,
            buyer_id,
            lines: vec![crate::domain::orders::OrderLine {
                product_id: Uuid::now_v7(),
                vendor_id: Uuid::now_v7(),
                title: "Kettle".into(),
                quantity: 2,
                unit_price_cents: 1500,
            }],
            currency: "EUR".into(),
            total_cents: 3000,
            shipping_address: Sealed { key_id: buyer_id, nonce: "bm9uY2U".into(), ciphertext: "c2VjcmV0".into() },
        });
        let event = recorded("order", order_id, &placed);
        let public = IntegrationEvent::from_recorded(&event).unwrap().expect("published");
        assert_eq!(public.id, event.event_id);
        assert_eq!(public.event_type, "order.placed");
        let json: serde_json::Value = serde_json::from_str(&public.to_json()).unwrap();
        assert_eq!(json["type"], "order.placed");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["data"]["order_id"], order_id.to_string());
        assert_eq!(json["data"]["total_cents"], 3000);
        assert_eq!(json["data"]["lines"][0]["title"], "Kettle");
        let text = public.to_json();
        assert!(!text.contains("c2VjcmV0") && !text.contains("shipping"), "{text}");
    }

    #[test]
    fn order_confirmed_takes_the_order_id_from_the_stream() {
        let order_id = Uuid::now_v7();
        let event =
            recorded("order", order_id, &OrderEvent::Confirmed(OrderConfirmed { authorization_id: "a".into() }));
        let public = IntegrationEvent::from_recorded(&event).unwrap().unwrap();
        assert_eq!(public.data, IntegrationData::OrderConfirmed(OrderRef { order_id }));
        // The payment authorisation is internal.
        assert!(!public.to_json().contains("authorization"));
    }

    #[test]
    fn stock_reaching_zero_is_out_of_stock_and_other_stock_moves_are_internal() {
        let product_id = Uuid::now_v7();
        let empty =
            ProductEvent::StockReserved(ProductStockReserved { order_id: Uuid::now_v7(), quantity: 1, stock: 0 });
        let left =
            ProductEvent::StockReserved(ProductStockReserved { order_id: Uuid::now_v7(), quantity: 1, stock: 3 });
        let restock = ProductEvent::StockAdjusted(crate::domain::catalog::ProductStockAdjusted {
            delta: 5,
            reason: StockAdjustmentReason::Restock,
            stock: 5,
        });
        let public = IntegrationEvent::from_recorded(&recorded("product", product_id, &empty)).unwrap().unwrap();
        assert_eq!(public.event_type, "product.out_of_stock");
        assert_eq!(public.data, IntegrationData::ProductOutOfStock(ProductRef { product_id }));
        assert!(IntegrationEvent::from_recorded(&recorded("product", product_id, &left)).unwrap().is_none());
        assert!(IntegrationEvent::from_recorded(&recorded("product", product_id, &restock)).unwrap().is_none());
    }

    #[test]
    fn delivery_tracking_becomes_a_status_change() {
        let tracked = DeliveryEvent::Tracked(DeliveryTracked {
            delivery_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            carrier_id: Uuid::now_v7(),
            status: TrackingStatus::OutForDelivery,
            location: "Lyon hub".into(),
            occurred_at: Utc.timestamp_opt(1_700_000_100, 0).single().unwrap(),
        });
        let event = recorded("delivery", Uuid::now_v7(), &tracked);
        let public = IntegrationEvent::from_recorded(&event).unwrap().unwrap();
        assert_eq!(public.event_type, "delivery.status_changed");
        let json: serde_json::Value = serde_json::from_str(&public.to_json()).unwrap();
        assert_eq!(json["data"]["status"], "out_for_delivery");
    }

    #[test]
    fn internal_events_map_to_nothing() {
        let id = Uuid::now_v7();
        let cart = CartEvent::ItemSet(CartItemSet { product_id: id, quantity: 1 });
        let erased = AccountEvent::Erased(AccountErased { account_id: id });
        assert!(IntegrationEvent::from_recorded(&recorded("cart", id, &cart)).unwrap().is_none());
        assert!(IntegrationEvent::from_recorded(&recorded("account", id, &erased)).unwrap().is_none());
    }

    #[test]
    fn every_published_type_is_listed() {
        for t in EVENT_TYPES {
            assert!(t.contains('.'), "{t}");
        }
        assert_eq!(EVENT_TYPES.len(), 8);
    }
}
