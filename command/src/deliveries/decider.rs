//! Deliveries, as a pure decider: created for a confirmed order, then tracked by one
//! carrier until a final state (delivered or returned), after which nothing changes.

use chrono::{DateTime, Utc};
use events::domain::accounts::Role;
use events::domain::deliveries::{DeliveryCreated, DeliveryEvent, DeliveryTracked, TrackingStatus};
use events::identity::Caller;
use events::privacy::Sealed;
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    NotCreated,
    Open { delivery_id: Uuid, order_id: Uuid, buyer_id: Uuid, carrier_id: Option<Uuid>, history: Vec<TrackingStatus> },
    Closed { delivery_id: Uuid, order_id: Uuid, buyer_id: Uuid, carrier_id: Uuid, status: TrackingStatus },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryCommand {
    Create { delivery_id: Uuid, order_id: Uuid, buyer_id: Uuid, shipping_address: Sealed },
    Track { by: Caller, status: TrackingStatus, location: String, occurred_at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    NotFound,
    Finished { status: TrackingStatus },
    OtherCarrier,
}

impl Refuse for DeliveryError {
    fn refusal(&self) -> Refusal {
        match self {
            DeliveryError::NotFound => {
                Refusal { status: 404, code: "not_found", message: "delivery was not found".into() }
            }
            DeliveryError::Finished { status } => Refusal {
                status: 409,
                code: "delivery_finished",
                message: format!("this delivery is {}: no more tracking updates", status.as_str()),
            },
            DeliveryError::OtherCarrier => {
                Refusal { status: 403, code: "forbidden", message: "another carrier is handling this delivery".into() }
            }
        }
    }
}

pub struct DeliveryDecider;

impl Decider for DeliveryDecider {
    type State = Delivery;
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;

    fn initial_state() -> Delivery {
        Delivery::NotCreated
    }

    fn evolve(state: Delivery, event: &DeliveryEvent) -> Delivery {
        match (state, event) {
            (_, DeliveryEvent::Created(e)) => Delivery::Open {
                delivery_id: e.delivery_id,
                order_id: e.order_id,
                buyer_id: e.buyer_id,
                carrier_id: None,
                history: vec![],
            },
            (Delivery::Open { delivery_id, order_id, buyer_id, mut history, .. }, DeliveryEvent::Tracked(e)) => {
                if e.status.is_final() {
                    Delivery::Closed { delivery_id, order_id, buyer_id, carrier_id: e.carrier_id, status: e.status }
                } else {
                    history.push(e.status);
                    Delivery::Open { delivery_id, order_id, buyer_id, carrier_id: Some(e.carrier_id), history }
                }
            }
            (state, _) => state,
        }
    }

    fn decide(command: &DeliveryCommand, state: &Delivery) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        match (command, state) {
            (DeliveryCommand::Create { delivery_id, order_id, buyer_id, shipping_address }, Delivery::NotCreated) => {
                Ok(vec![DeliveryEvent::Created(DeliveryCreated {
                    delivery_id: *delivery_id,
                    order_id: *order_id,
                    buyer_id: *buyer_id,
                    shipping_address: shipping_address.clone(),
                })])
            }
            (DeliveryCommand::Create { .. }, _) => Ok(vec![]),
            (DeliveryCommand::Track { .. }, Delivery::NotCreated) => Err(DeliveryError::NotFound),
            (DeliveryCommand::Track { .. }, Delivery::Closed { status, .. }) => {
                Err(DeliveryError::Finished { status: *status })
            }
            (
                DeliveryCommand::Track { by, status, location, occurred_at },
                Delivery::Open { delivery_id, order_id, carrier_id, .. },
            ) => {
                // The first carrier to scan the parcel takes the delivery; admins may correct.
                if let Some(assigned) = carrier_id
                    && *assigned != by.account_id
                    && by.role != Role::Admin
                {
                    return Err(DeliveryError::OtherCarrier);
                }
                Ok(vec![DeliveryEvent::Tracked(DeliveryTracked {
                    delivery_id: *delivery_id,
                    order_id: *order_id,
                    carrier_id: carrier_id.unwrap_or(by.account_id),
                    status: *status,
                    location: location.clone(),
                    occurred_at: *occurred_at,
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn carrier(n: u128) -> Caller {
        Caller { account_id: Uuid::from_u128(n), role: Role::Carrier }
    }

    fn created() -> DeliveryEvent {
        DeliveryEvent::Created(DeliveryCreated {
            delivery_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            buyer_id: Uuid::from_u128(3),
            shipping_address: Sealed { key_id: Uuid::nil(), nonce: "n".into(), ciphertext: "c".into() },
        })
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn tracked(by: u128, status: TrackingStatus) -> DeliveryEvent {
        DeliveryEvent::Tracked(DeliveryTracked {
            delivery_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            carrier_id: Uuid::from_u128(by),
            status,
            location: "Lyon hub".into(),
            occurred_at: at(),
        })
    }

    fn track(by: Caller, status: TrackingStatus) -> DeliveryCommand {
        DeliveryCommand::Track { by, status, location: "Lyon hub".into(), occurred_at: at() }
    }

    #[test]
    fn creating_is_idempotent() {
        let DeliveryEvent::Created(c) = created() else { unreachable!() };
        let command = DeliveryCommand::Create {
            delivery_id: c.delivery_id,
            order_id: c.order_id,
            buyer_id: c.buyer_id,
            shipping_address: c.shipping_address.clone(),
        };
        Spec::<DeliveryDecider>::given(Vec::<DeliveryEvent>::new()).when(command.clone()).then([created()]);
        Spec::<DeliveryDecider>::given([created()]).when(command).then_nothing();
    }

    #[test]
    fn the_first_carrier_takes_the_delivery() {
        Spec::<DeliveryDecider>::given([created()])
            .when(track(carrier(7), TrackingStatus::PickedUp))
            .then([tracked(7, TrackingStatus::PickedUp)]);
        Spec::<DeliveryDecider>::given([created(), tracked(7, TrackingStatus::PickedUp)])
            .when(track(carrier(8), TrackingStatus::InTransit))
            .then_error(DeliveryError::OtherCarrier);
        let admin = Caller { account_id: Uuid::from_u128(9), role: Role::Admin };
        Spec::<DeliveryDecider>::given([created(), tracked(7, TrackingStatus::PickedUp)])
            .when(track(admin, TrackingStatus::InTransit))
            .then([tracked(7, TrackingStatus::InTransit)]);
    }

    #[test]
    fn no_updates_after_a_final_state() {
        for last in [TrackingStatus::Delivered, TrackingStatus::Returned] {
            Spec::<DeliveryDecider>::given([created(), tracked(7, TrackingStatus::PickedUp), tracked(7, last)])
                .when(track(carrier(7), TrackingStatus::InTransit))
                .then_error(DeliveryError::Finished { status: last });
        }
        Spec::<DeliveryDecider>::given([created(), tracked(7, TrackingStatus::FailedAttempt)])
            .when(track(carrier(7), TrackingStatus::Delivered))
            .then([tracked(7, TrackingStatus::Delivered)]);
        Spec::<DeliveryDecider>::given(Vec::<DeliveryEvent>::new())
            .when(track(carrier(7), TrackingStatus::PickedUp))
            .then_error(DeliveryError::NotFound);
    }
}
