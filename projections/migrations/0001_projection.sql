-- Bookkeeping of projections and reactors. The read models themselves live in one schema
-- per generation (`rm_<projection>_g<N>`), created by the runtime from each projection's DDL,
-- and are read through the views of schema `read_model`, which point at the live generation.
create schema if not exists projection;
create schema if not exists read_model;

-- One row per (projection, generation). Exactly one generation of a projection is live; a
-- rebuild adds a shadow generation (live = false) and swaps it in. Reactors have a single
-- row (generation 0, always live).
create table projection.checkpoint (
    projection        text not null,
    generation        integer not null,
    kind              text not null default 'projection' check (kind in ('projection', 'reactor')),
    -- The `Projection::version()` the generation was built with.
    version           integer not null,
    live              boolean not null default false,
    -- `LogPosition` of the last event applied (0.0 = nothing yet).
    commit_position   bigint not null default 0,
    prepare_position  bigint not null default 0,
    events_processed  bigint not null default 0,
    -- Tables of this generation exposed as views in `read_model`.
    tables            text[] not null default '{}',
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    primary key (projection, generation)
);
create unique index checkpoint_one_live on projection.checkpoint (projection) where live;

-- Events an operator told a projection (or reactor) to skip.
create table projection.parked_event (
    projection        text not null,
    event_id          uuid not null,
    stream_id         text not null,
    stream_version    bigint not null,
    event_type        text not null,
    commit_position   bigint not null,
    prepare_position  bigint not null,
    reason            text not null,
    parked_at         timestamptz not null default now(),
    primary key (projection, event_id)
);

-- The event a projection or reactor is stopped at, while it retries; deleted once it passes.
create table projection.failure (
    projection        text primary key,
    event_id          uuid not null,
    stream_id         text not null,
    stream_version    bigint not null,
    event_type        text not null,
    commit_position   bigint not null,
    prepare_position  bigint not null,
    error             text not null,
    attempts          integer not null,
    first_failed_at   timestamptz not null default now(),
    last_failed_at    timestamptz not null default now()
);
