-- Sync: per-device op series, the op log with results, entity states, the change feed and the
-- conflict queue. JSON documents are stored as text (opaque to the database; the sync-protocol
-- crate owns their format).

create table sync_series (
    device_id uuid primary key references devices (id),
    last_seq bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- Every op the server processed (except duplicates, gap-held and wrong-device ops), with its
-- result: the audit log, and the answer to a retry whose response was lost.
create table sync_ops (
    op_id uuid primary key,
    device_id uuid not null references devices (id),
    seq bigint not null,
    entity_id uuid not null,
    kind text not null,
    op_json text not null,
    result_json text not null,
    commit_seq bigint,
    -- The server's clock; device clocks are not trusted for anything that matters.
    received_at bigint not null,
    created_at bigint not null,
    constraint sync_ops_device_seq_key unique (device_id, seq)
);

create table sync_entities (
    id uuid primary key,
    entity_type text not null,
    -- Township the entity belongs to (null: county-wide); decides who may see it.
    scope uuid,
    state_json text not null,
    last_commit bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- The change feed: one row per committed change, in commit order. Pull = rows after a cursor.
create table sync_changes (
    commit_seq bigint primary key,
    entity_id uuid not null,
    entity_type text not null,
    scope uuid,
    change_json text not null,
    created_at bigint not null
);
create index sync_changes_entity_idx on sync_changes (entity_id);

-- Fields currently in conflict, kept up to date with each batch (no scan of entity states).
create table sync_conflicts (
    entity_id uuid not null,
    field text not null,
    section text not null,
    entity_type text not null,
    scope uuid,
    candidates integer not null,
    since_commit bigint not null,
    created_at bigint not null,
    primary key (entity_id, field)
);
create index sync_conflicts_scope_idx on sync_conflicts (scope);
