-- Mines, campaigns, the disposition workflow's audit trail, case records and acceptance rounds.

create table campaigns (
    id text primary key,
    title text not null,
    -- The campaign file as loaded (TOML): deadlines are data, never code.
    source text not null,
    created_at bigint not null
);

create table mines (
    id uuid primary key,
    name text not null,
    licence_no text not null,
    holder text not null,
    township_id uuid not null references townships (id),
    mineral text not null,
    mining_method text not null,
    -- Hectares as a decimal string (exact; never a float).
    area_ha text,
    -- Boundary: corner points as given and as WGS-84/CGCS2000 latitude/longitude (JSON).
    boundary_json text,
    campaign_id text not null references campaigns (id),
    stage text not null,
    disposition text,
    facts_json text not null,
    -- Optimistic concurrency: a transition applies only to the version it was computed from.
    version bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    constraint mines_licence_no_key unique (licence_no)
);
create index mines_township_idx on mines (township_id);

-- Every workflow transition: who, when (server clock), from, to, why.
create table mine_events (
    id uuid primary key,
    mine_id uuid not null references mines (id),
    transition text not null,
    from_stage text not null,
    to_stage text not null,
    actor_id uuid references users (id),
    reason text not null,
    data_json text not null,
    as_of text not null,
    created_at bigint not null
);
create index mine_events_mine_idx on mine_events (mine_id, created_at);

-- The plan's other mechanisms on a mine's timeline: 一事一议, 线索移送, 公告.
create table case_records (
    id uuid primary key,
    mine_id uuid not null references mines (id),
    kind text not null check (kind in ('collective_study', 'referral', 'announcement')),
    data_json text not null,
    created_by uuid references users (id),
    created_at bigint not null
);
create index case_records_mine_idx on case_records (mine_id, created_at);
