-- Foundation: organisation, accounts, devices, tokens, login throttling.
-- Timestamps are Unix milliseconds; ids are UUIDs (16-byte blobs in SQLite).

create table departments (
    code text primary key,
    name text not null unique,
    observer integer not null default 0,
    sort_order integer not null,
    created_at integer not null
);

create table specialties (
    code text primary key,
    name text not null unique,
    created_at integer not null
);

create table townships (
    id blob primary key,
    name text not null unique,
    kind text not null check (kind in ('township', 'town', 'subdistrict', 'forest_farm')),
    created_at integer not null
);

create table users (
    id blob primary key,
    username text not null,
    display_name text not null,
    role text not null check (role in ('admin', 'county_office', 'department_inspector',
                                       'township_officer', 'expert', 'operator')),
    department text references departments (code),
    township_id blob references townships (id),
    specialty text references specialties (code),
    disabled integer not null default 0,
    password_hash text not null,
    created_at integer not null,
    constraint users_username_key unique (username)
);

create table devices (
    id blob primary key,
    user_id blob not null references users (id),
    name text not null,
    public_key_spki text not null,
    created_at integer not null,
    revoked_at integer
);
create index devices_user_id_idx on devices (user_id);

create table refresh_tokens (
    id blob primary key,
    family_id blob not null,
    user_id blob not null references users (id),
    device_id blob references devices (id),
    token_hash blob not null,
    created_at integer not null,
    expires_at integer not null,
    used_at integer,
    revoked_at integer,
    constraint refresh_tokens_token_hash_key unique (token_hash)
);
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_device_idx on refresh_tokens (device_id);

create table login_failures (
    key text not null,
    window_start integer not null,
    failures integer not null,
    created_at integer not null,
    primary key (key, window_start)
);

-- One signing key in force; `slot` makes concurrent first starts of several replicas agree.
create table signing_keys (
    slot integer primary key check (slot = 1),
    kid text not null,
    private_pkcs8_pem text not null,
    created_at integer not null
);

insert into departments (code, name, observer, sort_order, created_at) values
    ('natural_resources', '自然资源局', 0, 1, unixepoch() * 1000),
    ('emergency_management', '应急管理局', 0, 2, unixepoch() * 1000),
    ('ecology_environment', '生态环境局', 0, 3, unixepoch() * 1000),
    ('water_resources', '水利局', 0, 4, unixepoch() * 1000),
    ('forestry', '林业局', 0, 5, unixepoch() * 1000),
    ('agriculture_rural', '农业农村局', 0, 6, unixepoch() * 1000),
    ('industry_it', '工信局', 0, 7, unixepoch() * 1000),
    ('transport', '交通运输局', 0, 8, unixepoch() * 1000),
    ('power_supply', '供电公司', 0, 9, unixepoch() * 1000),
    ('public_security', '公安局', 0, 10, unixepoch() * 1000),
    ('state_assets', '国资办', 1, 11, unixepoch() * 1000),
    ('finance', '财政局', 1, 12, unixepoch() * 1000),
    ('procuratorate', '检察院', 1, 13, unixepoch() * 1000),
    ('court', '法院', 1, 14, unixepoch() * 1000),
    ('discipline_inspection', '纪委监委', 1, 15, unixepoch() * 1000);

insert into specialties (code, name, created_at) values
    ('hydro_engineering_environmental_geology', '水工环', unixepoch() * 1000),
    ('environmental_protection', '环境保护', unixepoch() * 1000),
    ('forestry', '林业', unixepoch() * 1000);
