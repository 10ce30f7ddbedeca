//! A payment per order, as a pure decider.

use events::domain::payments::{PaymentAuthorized, PaymentDeclined, PaymentEvent, PaymentRefunded, PaymentRequested};
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    NotRequested,
    Requested(PaymentRequested),
    Authorized { request: PaymentRequested, authorization_id: String },
    Declined { request: PaymentRequested, reason: String },
    Refunded { request: PaymentRequested, authorization_id: String, refund_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    RecordAuthorization { authorization_id: String },
    RecordDecline { reason: String },
    RecordRefund { refund_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentError {
    NotFound,
    NotAuthorized,
}

impl Refuse for PaymentError {
    fn refusal(&self) -> Refusal {
        match self {
            PaymentError::NotFound => {
                Refusal { status: 404, code: "not_found", message: "payment was not found".into() }
            }
            PaymentError::NotAuthorized => Refusal {
                status: 409,
                code: "payment_not_authorized",
                message: "this payment was never authorised".into(),
            },
        }
    }
}

pub struct PaymentDecider;

impl Decider for PaymentDecider {
    type State = Payment;
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn initial_state() -> Payment {
        Payment::NotRequested
    }

    fn evolve(state: Payment, event: &PaymentEvent) -> Payment {
        match (state, event) {
            (_, PaymentEvent::Requested(e)) => Payment::Requested(e.clone()),
            (Payment::Requested(request), PaymentEvent::Authorized(e)) => {
                Payment::Authorized { request, authorization_id: e.authorization_id.clone() }
            }
            (Payment::Requested(request), PaymentEvent::Declined(e)) => {
                Payment::Declined { request, reason: e.reason.clone() }
            }
            (Payment::Authorized { request, authorization_id }, PaymentEvent::Refunded(e)) => {
                Payment::Refunded { request, authorization_id, refund_id: e.refund_id.clone() }
            }
            (state, _) => state,
        }
    }

    fn decide(command: &PaymentCommand, state: &Payment) -> Result<Vec<PaymentEvent>, PaymentError> {
        let order_id = |r: &PaymentRequested| -> Uuid { r.order_id };
        match (command, state) {
            (_, Payment::NotRequested) => Err(PaymentError::NotFound),
            (PaymentCommand::RecordAuthorization { authorization_id }, Payment::Requested(request)) => {
                Ok(vec![PaymentEvent::Authorized(PaymentAuthorized {
                    order_id: order_id(request),
                    authorization_id: authorization_id.clone(),
                    amount_cents: request.amount_cents,
                })])
            }
            (PaymentCommand::RecordDecline { reason }, Payment::Requested(request)) => {
                Ok(vec![PaymentEvent::Declined(PaymentDeclined {
                    order_id: order_id(request),
                    reason: reason.clone(),
                })])
            }
            // The outcome is already recorded: a replayed gateway answer changes nothing.
            (PaymentCommand::RecordAuthorization { .. } | PaymentCommand::RecordDecline { .. }, _) => Ok(vec![]),
            (PaymentCommand::RecordRefund { refund_id }, Payment::Authorized { request, .. }) => {
                Ok(vec![PaymentEvent::Refunded(PaymentRefunded {
                    order_id: order_id(request),
                    refund_id: refund_id.clone(),
                    amount_cents: request.amount_cents,
                })])
            }
            (PaymentCommand::RecordRefund { .. }, Payment::Refunded { .. }) => Ok(vec![]),
            (PaymentCommand::RecordRefund { .. }, _) => Err(PaymentError::NotAuthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn requested() -> PaymentEvent {
        PaymentEvent::Requested(PaymentRequested {
            order_id: Uuid::from_u128(1),
            buyer_id: Uuid::from_u128(2),
            amount_cents: 1500,
            currency: "EUR".into(),
            payment_token: "tok_visa".into(),
        })
    }

    fn authorized() -> PaymentEvent {
        PaymentEvent::Authorized(PaymentAuthorized {
            order_id: Uuid::from_u128(1),
            authorization_id: "auth_1".into(),
            amount_cents: 1500,
        })
    }

    #[test]
    fn a_requested_payment_is_authorised_or_declined_once() {
        Spec::<PaymentDecider>::given([requested()])
            .when(PaymentCommand::RecordAuthorization { authorization_id: "auth_1".into() })
            .then([authorized()]);
        Spec::<PaymentDecider>::given([requested()])
            .when(PaymentCommand::RecordDecline { reason: "card_declined".into() })
            .then([PaymentEvent::Declined(PaymentDeclined {
                order_id: Uuid::from_u128(1),
                reason: "card_declined".into(),
            })]);
        Spec::<PaymentDecider>::given([requested(), authorized()])
            .when(PaymentCommand::RecordAuthorization { authorization_id: "auth_1".into() })
            .then_nothing();
        Spec::<PaymentDecider>::given([requested(), authorized()])
            .when(PaymentCommand::RecordDecline { reason: "late".into() })
            .then_nothing();
        Spec::<PaymentDecider>::given(Vec::<PaymentEvent>::new())
            .when(PaymentCommand::RecordAuthorization { authorization_id: "a".into() })
            .then_error(PaymentError::NotFound);
    }

    #[test]
    fn only_authorised_payments_are_refunded_and_only_once() {
        let refunded = PaymentEvent::Refunded(PaymentRefunded {
            order_id: Uuid::from_u128(1),
            refund_id: "re_1".into(),
            amount_cents: 1500,
        });
        Spec::<PaymentDecider>::given([requested(), authorized()])
            .when(PaymentCommand::RecordRefund { refund_id: "re_1".into() })
            .then([refunded.clone()]);
        Spec::<PaymentDecider>::given([requested(), authorized(), refunded])
            .when(PaymentCommand::RecordRefund { refund_id: "re_1".into() })
            .then_nothing();
        Spec::<PaymentDecider>::given([requested()])
            .when(PaymentCommand::RecordRefund { refund_id: "re_1".into() })
            .then_error(PaymentError::NotAuthorized);
    }
}
