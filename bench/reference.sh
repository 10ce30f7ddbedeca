#!/usr/bin/env bash
# The physical reference of `agora bench append`: pgbench inserting one events-shaped row per
# transaction (bench/pgbench-append.sql), 50,000 transactions, with 1 and with 16 clients, in a
# fresh database on the same server. Prints one JSON object per client count.
#
#   bench/reference.sh            # server from DATABASE_URL, else postgres://postgres@127.0.0.1:5432
set -euo pipefail
# The same transport agora uses on loopback (no TLS; see README, "Configuration"): the
# comparison is of the work per append, not of encryption.
export PGSSLMODE=${PGSSLMODE:-disable}
here=$(cd "$(dirname "$0")" && pwd)
server=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/agora}
server=${server%/*}
db="$server/agora_bench_reference"
total=${EVENTS:-50000}

psql "$server/postgres" -q -v ON_ERROR_STOP=1 \
  -c "drop database if exists agora_bench_reference with (force)" \
  -c "create database agora_bench_reference"
psql "$db" -q -v ON_ERROR_STOP=1 <<'SQL'
create table bench_reference_event (
    position        bigint generated always as identity primary key,
    transaction_id  bigint not null default (pg_current_xact_id()::text::bigint),
    event_id        uuid not null unique,
    stream_id       text not null,
    stream_version  bigint not null,
    event_type      text not null,
    schema_version  integer not null,
    data            json not null,
    correlation_id  uuid,
    causation_id    uuid,
    actor           text,
    recorded_at     timestamptz not null default now(),
    unique (stream_id, stream_version)
);
create index on bench_reference_event (transaction_id, position);
SQL

for clients in ${CLIENTS:-1 16}; do
  per_client=$(( total / clients ))
  out=$(pgbench "$db" -n -M prepared -f "$here/pgbench-append.sql" -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -t "$per_client" 2>&1)
  tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  lat=$(printf '%s\n' "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  printf '{"workload":"pgbench-append","clients":%d,"events":%d,"events_per_s":%.0f,"latency_avg_ms":%s}\n' \
    "$clients" "$(( per_client * clients ))" "$tps" "$lat"
done
psql "$server/postgres" -q -c "drop database if exists agora_bench_reference with (force)"
