-- The event log. Append-only: nothing ever updates or deletes a row.
create schema if not exists event_store;

create table event_store.event (
    -- Taken from a sequence at insert time, so NOT commit order (see transaction_id).
    position        bigint generated always as identity primary key,
    -- The inserting transaction's id (xid8 as bigint). Readers walk the log in
    -- (transaction_id, position) order and only up to the oldest running transaction,
    -- so an event that commits late can never appear behind a reader's checkpoint.
    transaction_id  bigint not null default (pg_current_xact_id()::text::bigint),
    event_id        uuid not null,
    stream_id       text not null,
    stream_version  bigint not null check (stream_version > 0),
    event_type      text not null,
    schema_version  integer not null check (schema_version > 0),
    -- json, not jsonb: events are written once and read whole, never queried inside,
    -- and json stores and returns the text as written (no parse, no re-serialisation).
    data            json not null,
    correlation_id  uuid,
    causation_id    uuid,
    actor           text,
    recorded_at     timestamptz not null default now(),
    constraint event_event_id_key unique (event_id),
    constraint event_stream_version_key unique (stream_id, stream_version)
);

-- read_all / subscribe_all: commit-safe order.
create index event_commit_order on event_store.event (transaction_id, position);

-- Idempotency keys of commands, written in the same transaction as the command's events.
create table event_store.idempotency_key (
    idempotency_key   text primary key,
    request_hash      text not null,
    response_status   integer not null,
    response_body     json not null,
    transaction_id    bigint not null,
    position          bigint not null,
    created_at        timestamptz not null default now()
);
create index idempotency_key_created_at on event_store.idempotency_key (created_at);

-- One append = one call = one round trip = one transaction (when called outside one).
--
-- Streams arrive sorted by stream id (the client sorts them), so concurrent multi-stream
-- appends wait on each other's unique-index entries in one global order and cannot deadlock.
-- p_expected per stream: -1 any, 0 no stream, n > 0 exactly version n.
-- Events are given stream by stream, p_counts[i] events for stream i.
--
-- A wrong expected version raises SQLSTATE AG001 with the stream index, expected and
-- actual version in DETAIL. A concurrent append that wins the race to the same stream
-- version makes this one fail with 23505 on event_stream_version_key (the client re-reads
-- the actual version); a replayed event id fails with 23505 on event_event_id_key.
create function event_store.append(
    p_stream_ids      text[],
    p_expected        bigint[],
    p_counts          integer[],
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_data            text[],
    p_correlation_ids uuid[],
    p_causation_ids   uuid[],
    p_actors          text[],
    p_idempotency_key text,
    p_request_hash    text,
    p_response_status integer,
    p_response_body   text
) returns table (event_id uuid, stream_version bigint, transaction_id bigint, log_position bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_txid     bigint := pg_current_xact_id()::text::bigint;
    v_actual   bigint;
    v_base     bigint[] := '{}';
    v_stream   integer[] := '{}';
    i          integer;
begin
    for i in 1 .. coalesce(cardinality(p_stream_ids), 0) loop
        select coalesce(max(e.stream_version), 0) into v_actual
          from event_store.event e where e.stream_id = p_stream_ids[i];
        if p_expected[i] >= 0 and v_actual <> p_expected[i] then
            raise exception using
                errcode = 'AG001',
                message = 'wrong expected version',
                detail = json_build_object('stream', i, 'expected', p_expected[i], 'actual', v_actual)::text;
        end if;
        v_base := v_base || v_actual;
        v_stream := v_stream || array_fill(i, array[p_counts[i]]);
    end loop;

    return query
    with inserted as (
        insert into event_store.event as ev
            (transaction_id, event_id, stream_id, stream_version, event_type, schema_version,
             data, correlation_id, causation_id, actor)
        select v_txid, n.event_id, p_stream_ids[n.s],
               v_base[n.s] + row_number() over (partition by n.s order by n.ord),
               n.event_type, n.schema_version, n.data::json,
               n.correlation_id, n.causation_id, n.actor
          from unnest(v_stream, p_event_ids, p_event_types, p_schema_versions, p_data,
                      p_correlation_ids, p_causation_ids, p_actors)
               with ordinality as n(s, event_id, event_type, schema_version, data,
                                    correlation_id, causation_id, actor, ord)
         order by n.ord
        returning ev.event_id, ev.stream_version, ev.transaction_id, ev.position
    )
    select * from inserted;

    if p_idempotency_key is not null then
        insert into event_store.idempotency_key
            (idempotency_key, request_hash, response_status, response_body, transaction_id, position)
        select p_idempotency_key, p_request_hash, p_response_status, p_response_body::json,
               e.transaction_id, e.position
          from event_store.event e
         where e.event_id = p_event_ids[cardinality(p_event_ids)];
    end if;
end
$$;
