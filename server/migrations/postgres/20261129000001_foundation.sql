-- Foundation: organisation, accounts, devices, tokens, login throttling.
-- Timestamps are Unix milliseconds; ids are UUIDs (native uuid in PostgreSQL).

create table departments (
    code text primary key,
    name text not null unique,
    observer boolean not null default false,
    sort_order integer not null,
    created_at bigint not null
);

create table specialties (
    code text primary key,
    name text not null unique,
    created_at bigint not null
);

create table townships (
    id uuid primary key,
    name text not null unique,
    kind text not null check (kind in ('township', 'town', 'subdistrict', 'forest_farm')),
    created_at bigint not null
);

create table users (
    id uuid primary key,
    username text not null,
    display_name text not null,
    role text not null check (role in ('admin', 'county_office', 'department_inspector',
                                       'township_officer', 'expert', 'operator')),
    department text references departments (code),
    township_id uuid references townships (id),
    specialty text references specialties (code),
    disabled boolean not null default false,
    password_hash text not null,
    created_at bigint not null,
    constraint users_username_key unique (username)
);

create table devices (
    id uuid primary key,
    user_id uuid not null references users (id),
    name text not null,
    public_key_spki text not null,
    created_at bigint not null,
    revoked_at bigint
);
create index devices_user_id_idx on devices (user_id);

create table refresh_tokens (
    id uuid primary key,
    family_id uuid not null,
    user_id uuid not null references users (id),
    device_id uuid references devices (id),
    token_hash bytea not null,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    revoked_at bigint,
    constraint refresh_tokens_token_hash_key unique (token_hash)
);
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_device_idx on refresh_tokens (device_id);

create table login_failures (
    key text not null,
    window_start bigint not null,
    failures integer not null,
    created_at bigint not null,
    primary key (key, window_start)
);

-- One signing key in force; `slot` makes concurrent first starts of several replicas agree.
create table signing_keys (
    slot integer primary key check (slot = 1),
    kid text not null,
    private_pkcs8_pem text not null,
    created_at bigint not null
);

insert into departments (code, name, observer, sort_order, created_at) values
    ('natural_resources', '自然资源局', false, 1, (extract(epoch from now()) * 1000)::bigint),
    ('emergency_management', '应急管理局', false, 2, (extract(epoch from now()) * 1000)::bigint),
    ('ecology_environment', '生态环境局', false, 3, (extract(epoch from now()) * 1000)::bigint),
    ('water_resources', '水利局', false, 4, (extract(epoch from now()) * 1000)::bigint),
    ('forestry', '林业局', false, 5, (extract(epoch from now()) * 1000)::bigint),
    ('agriculture_rural', '农业农村局', false, 6, (extract(epoch from now()) * 1000)::bigint),
    ('industry_it', '工信局', false, 7, (extract(epoch from now()) * 1000)::bigint),
    ('transport', '交通运输局', false, 8, (extract(epoch from now()) * 1000)::bigint),
    ('power_supply', '供电公司', false, 9, (extract(epoch from now()) * 1000)::bigint),
    ('public_security', '公安局', false, 10, (extract(epoch from now()) * 1000)::bigint),
    ('state_assets', '国资办', true, 11, (extract(epoch from now()) * 1000)::bigint),
    ('finance', '财政局', true, 12, (extract(epoch from now()) * 1000)::bigint),
    ('procuratorate', '检察院', true, 13, (extract(epoch from now()) * 1000)::bigint),
    ('court', '法院', true, 14, (extract(epoch from now()) * 1000)::bigint),
    ('discipline_inspection', '纪委监委', true, 15, (extract(epoch from now()) * 1000)::bigint);

insert into specialties (code, name, created_at) values
    ('hydro_engineering_environmental_geology', '水工环', (extract(epoch from now()) * 1000)::bigint),
    ('environmental_protection', '环境保护', (extract(epoch from now()) * 1000)::bigint),
    ('forestry', '林业', (extract(epoch from now()) * 1000)::bigint);
