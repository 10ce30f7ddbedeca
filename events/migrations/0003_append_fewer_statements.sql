-- The same `event_store.append` (same arguments, same results, same errors), doing less per
-- call: every stream's current version in one query instead of one query per stream; each
-- event's version from its place in the request instead of a window function (which sorted);
-- the idempotency record written from the inserted rows in the same statement instead of
-- looking the last event up again. A checkout (5 or 6 streams) went from 8 or 9 statements
-- inside the function to 2. And its statements keep their generic plans: with array
-- arguments PostgreSQL judged a fresh plan per call cheaper, and planning cost more than
-- running them.
create or replace function event_store.append(
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
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
    v_txid     bigint := pg_current_xact_id()::text::bigint;
    v_actual   bigint[];
    -- Per event: its stream's index, and the version it gets.
    v_stream   integer[] := '{}';
    v_version  bigint[] := '{}';
    i          integer;
    j          integer;
begin
    select coalesce(array_agg(coalesce(h.version, 0) order by s.i), '{}')
      into v_actual
      from unnest(p_stream_ids) with ordinality as s(stream_id, i)
      left join lateral (select max(e.stream_version) as version
                           from event_store.event e where e.stream_id = s.stream_id) h on true;
    for i in 1 .. coalesce(cardinality(p_stream_ids), 0) loop
        if p_expected[i] >= 0 and v_actual[i] <> p_expected[i] then
            raise exception using
                errcode = 'AG001',
                message = 'wrong expected version',
                detail = json_build_object('stream', i, 'expected', p_expected[i], 'actual', v_actual[i])::text;
        end if;
        -- Plain expressions, no queries: plpgsql evaluates these itself.
        for j in 1 .. p_counts[i] loop
            v_stream := v_stream || i;
            v_version := v_version || (v_actual[i] + j);
        end loop;
    end loop;

    return query
    with inserted as (
        insert into event_store.event as ev
            (transaction_id, event_id, stream_id, stream_version, event_type, schema_version,
             data, correlation_id, causation_id, actor)
        select v_txid, n.event_id, p_stream_ids[n.s], n.version,
               n.event_type, n.schema_version, n.data::json,
               n.correlation_id, n.causation_id, n.actor
          from unnest(v_stream, v_version, p_event_ids, p_event_types, p_schema_versions, p_data,
                      p_correlation_ids, p_causation_ids, p_actors)
               with ordinality as n(s, version, event_id, event_type, schema_version, data,
                                    correlation_id, causation_id, actor, ord)
         order by n.ord
        returning ev.event_id, ev.stream_version, ev.transaction_id, ev.position
    ),
    keyed as (
        insert into event_store.idempotency_key
            (idempotency_key, request_hash, response_status, response_body, transaction_id, position)
        select p_idempotency_key, p_request_hash, p_response_status, p_response_body::json,
               last.transaction_id, last.position
          from (select * from inserted order by inserted.position desc limit 1) last
         where p_idempotency_key is not null
    )
    select * from inserted;
end
$$;
