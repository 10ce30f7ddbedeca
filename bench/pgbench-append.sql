-- pgbench script: one events-shaped row (same columns and indexes as event_store.event,
-- ~300-byte JSON) inserted per transaction. The physical reference for `agora bench append`.
\set s random(1, 9000000000000000000)
insert into bench_reference_event
    (event_id, stream_id, stream_version, event_type, schema_version, data, correlation_id, actor)
values
    (gen_random_uuid(), 'bench-' || :s, 1, 'bench.updated', 1,
     '{"product_id":"00000000-0000-0000-0000-000000002a1f","title":"oak desk lamp","description":"wireless keyboard organic cotton shirt steel kettle hiking boots oak desk lamp organic","category":"home","brand":"Acme","price_cents":48213,"currency":"EUR","stock":211,"revision":3}',
     gen_random_uuid(), 'bench');
