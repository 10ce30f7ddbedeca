//! Webhook commands: register (admins), request a replay of a delivery (admins).

use events::StreamId;
use events::domain::webhooks::WEBHOOK_CATEGORY;
use events::identity::Caller;
use uuid::Uuid;

use super::decider::{WebhookCommand, WebhookDecider};
use crate::error::Result;
use crate::handling::{Accepted, Context, Meta, execute, id_body};
use crate::values::{EventTypes, WebhookSecret, WebhookUrl};

pub fn webhook_stream(webhook_id: Uuid) -> StreamId {
    StreamId::new(WEBHOOK_CATEGORY, webhook_id)
}

pub async fn register(
    ctx: &Context,
    caller: Caller,
    url: WebhookUrl,
    event_types: EventTypes,
    secret: WebhookSecret,
    meta: &Meta,
) -> Result<Accepted> {
    let webhook_id = Uuid::now_v7();
    // The secret is sealed with a key of the webhook's own, never stored in clear.
    ctx.vault.create_key(webhook_id).await?;
    let sealed = ctx.vault.seal(webhook_id, secret.expose()).await?;
    let command = WebhookCommand::Register {
        webhook_id,
        url: url.into_string(),
        event_types: event_types.into_vec(),
        secret: sealed,
        admin_id: caller.account_id,
    };
    execute::<WebhookDecider>(ctx, &webhook_stream(webhook_id), &command, &meta.metadata(), 201, None, |_| {
        id_body(webhook_id)
    })
    .await
}

pub async fn replay(
    ctx: &Context,
    caller: Caller,
    webhook_id: Uuid,
    delivery_id: Uuid,
    meta: &Meta,
) -> Result<Accepted> {
    let command = WebhookCommand::RequestReplay { delivery_id, admin_id: caller.account_id };
    execute::<WebhookDecider>(ctx, &webhook_stream(webhook_id), &command, &meta.metadata(), 200, None, |_| {
        let mut body = id_body(delivery_id);
        body.insert("status".into(), "queued".into());
        body
    })
    .await
}
