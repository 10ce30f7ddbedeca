-- Integration with the outside world: webhook endpoints and their deliveries, and the
-- notification outbox. These are operational tables filled by reactors (process managers),
-- not read models: they are never rebuilt from the log (a rebuild must not re-send anything).
create schema if not exists integration;

-- Endpoints registered by admins (from `webhook.registered` events). The secret stays sealed
-- with the webhook's own personal-data key; it is opened only to sign a delivery.
create table integration.webhook_endpoint (
    webhook_id     uuid primary key,
    url            text not null,
    event_types    text[] not null,
    secret         jsonb not null,
    registered_by  uuid not null,
    registered_at  timestamptz not null
);

-- One row per (endpoint, integration event): the outbox the dispatcher works from.
create table integration.webhook_delivery (
    delivery_id       uuid primary key,
    webhook_id        uuid not null references integration.webhook_endpoint on delete cascade,
    event_id          uuid not null,
    event_type        text not null,
    -- The integration event's JSON, exactly the bytes that are signed and sent.
    payload           text not null,
    -- pending (due at next_attempt_at), delivered, failed (attempts of the round used up).
    state             text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    -- Attempts in the current round (a replay starts a new round).
    round_attempts    integer not null default 0,
    attempts          integer not null default 0,
    next_attempt_at   timestamptz not null default now(),
    -- A dispatcher owns the delivery until then (several processes may dispatch).
    lease_until       timestamptz,
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz not null default now(),
    delivered_at      timestamptz,
    -- The replay request applied last, so a replayed request does not start another round.
    replay_event_id   uuid,
    unique (webhook_id, event_id)
);
create index webhook_delivery_due on integration.webhook_delivery (next_attempt_at) where state = 'pending';

-- Every attempt, in order.
create table integration.webhook_attempt (
    delivery_id   uuid not null references integration.webhook_delivery on delete cascade,
    attempt       integer not null,
    attempted_at  timestamptz not null,
    status_code   integer,
    error         text,
    duration_ms   integer not null,
    primary key (delivery_id, attempt)
);

-- Who can be notified, with their contact data still sealed: opened only when sending, so an
-- erasure (deleting the account's key) stops every notification, even one already queued.
create table integration.notification_recipient (
    account_id  uuid primary key,
    role        text not null,
    email       jsonb not null,
    name        jsonb not null,
    erased      boolean not null default false
);

-- What the notifier needs to know about an order when later events arrive.
create table integration.notification_order (
    order_id     uuid primary key,
    buyer_id     uuid not null,
    currency     text not null,
    total_cents  bigint not null
);

-- The notification outbox. Parameters hold no personal data; the message is rendered from
-- its template (with the recipient's name) when it is sent.
create table integration.notification (
    notification_id  uuid primary key,
    event_id         uuid not null,
    recipient_id     uuid not null,
    template         text not null,
    params           jsonb not null,
    subject          text not null,
    state            text not null default 'pending' check (state in ('pending', 'sent', 'failed', 'skipped')),
    channel          text,
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz not null default now(),
    sent_at          timestamptz
);
create index notification_due on integration.notification (next_attempt_at) where state = 'pending';
create index notification_recipient_idx on integration.notification (recipient_id);
