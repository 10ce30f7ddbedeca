//! A webhook endpoint, as a pure decider: registered once; replays only of a registered one.

use events::domain::webhooks::{WebhookDeliveryReplayRequested, WebhookEvent, WebhookRegistered};
use events::privacy::Sealed;
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    Unregistered,
    Registered { webhook_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookCommand {
    /// `url` and `event_types` already validated; `secret` sealed by the handler.
    Register {
        webhook_id: Uuid,
        url: String,
        event_types: Vec<String>,
        secret: Sealed,
        admin_id: Uuid,
    },
    RequestReplay {
        delivery_id: Uuid,
        admin_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    AlreadyRegistered,
    NotFound,
}

impl Refuse for WebhookError {
    fn refusal(&self) -> Refusal {
        let (status, code, message) = match self {
            WebhookError::AlreadyRegistered => (409, "already_registered", "this webhook is already registered"),
            WebhookError::NotFound => (404, "not_found", "webhook was not found"),
        };
        Refusal { status, code, message: message.to_owned() }
    }
}

pub struct WebhookDecider;

impl Decider for WebhookDecider {
    type State = Webhook;
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;

    fn initial_state() -> Webhook {
        Webhook::Unregistered
    }

    fn evolve(state: Webhook, event: &WebhookEvent) -> Webhook {
        match event {
            WebhookEvent::Registered(registered) => Webhook::Registered { webhook_id: registered.webhook_id },
            WebhookEvent::DeliveryReplayRequested(_) => state,
        }
    }

    fn decide(command: &WebhookCommand, state: &Webhook) -> Result<Vec<WebhookEvent>, WebhookError> {
        match (command, state) {
            (WebhookCommand::Register { .. }, Webhook::Registered { .. }) => Err(WebhookError::AlreadyRegistered),
            (WebhookCommand::Register { webhook_id, url, event_types, secret, admin_id }, Webhook::Unregistered) => {
                Ok(vec![WebhookEvent::Registered(WebhookRegistered {
                    webhook_id: *webhook_id,
                    url: url.clone(),
                    event_types: event_types.clone(),
                    secret: secret.clone(),
                    registered_by: *admin_id,
                })])
            }
            (WebhookCommand::RequestReplay { .. }, Webhook::Unregistered) => Err(WebhookError::NotFound),
            (WebhookCommand::RequestReplay { delivery_id, admin_id }, Webhook::Registered { webhook_id }) => {
                // Whether the delivery exists is the dispatcher's knowledge, not this
                // stream's: an unknown delivery id requeues nothing.
                Ok(vec![WebhookEvent::DeliveryReplayRequested(WebhookDeliveryReplayRequested {
                    webhook_id: *webhook_id,
                    delivery_id: *delivery_id,
                    requested_by: *admin_id,
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn sealed(id: Uuid) -> Sealed {
        Sealed { key_id: id, nonce: "n".into(), ciphertext: "c".into() }
    }

    fn register(id: Uuid) -> WebhookCommand {
        WebhookCommand::Register {
            webhook_id: id,
            url: "http://127.0.0.1:9/hook".into(),
            event_types: vec!["order.placed".into()],
            secret: sealed(id),
            admin_id: Uuid::nil(),
        }
    }

    fn registered(id: Uuid) -> WebhookEvent {
        WebhookEvent::Registered(WebhookRegistered {
            webhook_id: id,
            url: "http://127.0.0.1:9/hook".into(),
            event_types: vec!["order.placed".into()],
            secret: sealed(id),
            registered_by: Uuid::nil(),
        })
    }

    #[test]
    fn a_webhook_is_registered_once() {
        let id = Uuid::now_v7();
        Spec::<WebhookDecider>::given(Vec::<WebhookEvent>::new()).when(register(id)).then([registered(id)]);
        Spec::<WebhookDecider>::given([registered(id)]).when(register(id)).then_error(WebhookError::AlreadyRegistered);
    }

    #[test]
    fn replays_need_a_registered_webhook() {
        let (id, delivery) = (Uuid::now_v7(), Uuid::now_v7());
        let replay = WebhookCommand::RequestReplay { delivery_id: delivery, admin_id: Uuid::nil() };
        Spec::<WebhookDecider>::given(Vec::<WebhookEvent>::new())
            .when(replay.clone())
            .then_error(WebhookError::NotFound);
        Spec::<WebhookDecider>::given([registered(id)]).when(replay).then([WebhookEvent::DeliveryReplayRequested(
            WebhookDeliveryReplayRequested { webhook_id: id, delivery_id: delivery, requested_by: Uuid::nil() },
        )]);
    }
}
