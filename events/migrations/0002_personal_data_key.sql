-- Per-account keys for personal data in events (crypto-shredding). Outside the log on
-- purpose: erasing an account deletes its row here, and every value sealed with it is
-- unreadable from then on, in the log, in backups of the log and in every rebuild.
create table event_store.personal_data_key (
    key_id      uuid primary key,
    key         bytea not null check (length(key) = 32),
    created_at  timestamptz not null default now()
);
