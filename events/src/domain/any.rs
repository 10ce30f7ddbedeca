//! `MarketEvent`: any domain event of the marketplace, for readers of the whole log.

use super::DomainEvent;
use super::accounts::{AccountEvent, EmailEvent};
use super::catalog::ProductEvent;
use super::deliveries::DeliveryEvent;
use super::orders::{CartEvent, OrderEvent, PurchaseEvent};
use super::payments::PaymentEvent;
use super::reviews::ReviewEvent;
use super::webhooks::WebhookEvent;
use crate::domain::DecodeError;
use crate::envelope::RecordedEvent;

/// Every event family, chosen by the prefix of the type name (`"order.placed"` -> orders).
#[derive(Debug, Clone, PartialEq)]
pub enum MarketEvent {
    Account(AccountEvent),
    Email(EmailEvent),
    Product(ProductEvent),
    Cart(CartEvent),
    Order(OrderEvent),
    Purchase(PurchaseEvent),
    Payment(PaymentEvent),
    Delivery(DeliveryEvent),
    Review(ReviewEvent),
    Webhook(WebhookEvent),
}

impl MarketEvent {
    /// Decode any stored event; an unknown family or type is a `DecodeError` naming the event.
    pub fn decode(event: &RecordedEvent) -> Result<MarketEvent, DecodeError> {
        let family = event.event_type.split_once('.').map_or("", |(family, _)| family);
        Ok(match family {
            "account" => MarketEvent::Account(event.decode()?),
            "email" => MarketEvent::Email(event.decode()?),
            "product" => MarketEvent::Product(event.decode()?),
            "cart" => MarketEvent::Cart(event.decode()?),
            "order" => MarketEvent::Order(event.decode()?),
            "purchase" => MarketEvent::Purchase(event.decode()?),
            "payment" => MarketEvent::Payment(event.decode()?),
            "delivery" => MarketEvent::Delivery(event.decode()?),
            "review" => MarketEvent::Review(event.decode()?),
            "webhook" => MarketEvent::Webhook(event.decode()?),
            _ => {
                return Err(DecodeError {
                    stream_id: event.stream_id.to_string(),
                    stream_version: event.stream_version,
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    reason: "unknown event type".to_owned(),
                });
            }
        })
    }

    /// Every event type name the marketplace knows.
    pub fn event_types() -> Vec<&'static str> {
        [
            AccountEvent::event_types(),
            EmailEvent::event_types(),
            ProductEvent::event_types(),
            CartEvent::event_types(),
            OrderEvent::event_types(),
            PurchaseEvent::event_types(),
            PaymentEvent::event_types(),
            DeliveryEvent::event_types(),
            ReviewEvent::event_types(),
            WebhookEvent::event_types(),
        ]
        .concat()
    }
}
