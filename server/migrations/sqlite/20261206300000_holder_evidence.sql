-- The holder's rectification evidence (issue #12): an upload targets an acceptance record (an
-- inspector's photo) or a mine (its holder's photos and documents), exactly one of the two; a
-- filed entry names the uploaded blob with the holder's description.

-- SQLite cannot drop a column's `not null`: the table is rebuilt (nothing references it).
create table uploads_new (
    id blob primary key,
    user_id blob not null references users (id),
    device_id blob not null references devices (id),
    -- The acceptance record (a round's id) the photo is for, or
    record_id blob references acceptance_rounds (id),
    -- the mine whose holder's evidence the file is.
    mine_id blob references mines (id),
    sha256 text not null,
    size integer not null,
    content_type text not null,
    -- Bytes acknowledged so far (advanced only after they are durably written).
    received integer not null,
    created_at integer not null,
    updated_at integer not null,
    completed_at integer,
    constraint uploads_one_target check ((record_id is null) <> (mine_id is null))
);

insert into uploads_new (id, user_id, device_id, record_id, mine_id, sha256, size, content_type,
                         received, created_at, updated_at, completed_at)
select id, user_id, device_id, record_id, null, sha256, size, content_type,
       received, created_at, updated_at, completed_at
from uploads;

drop table uploads;

alter table uploads_new rename to uploads;

create index uploads_mine_idx on uploads (mine_id, sha256);

create table mine_evidence (
    id blob primary key,
    mine_id blob not null references mines (id),
    -- `photo` (ingested: thumbnails in `photos`) or `document` (a PDF, kept as uploaded).
    kind text not null check (kind in ('photo', 'document')),
    sha256 text not null,
    content_type text not null,
    size integer not null,
    -- 说明: what the file shows or is.
    description text not null,
    -- The acceptance items it answers, a JSON array of item numbers (may be empty).
    items_json text not null,
    -- The deadline it answers (a campaign deadline's key, or `reinspection`).
    deadline_key text,
    created_by blob not null references users (id),
    created_at integer not null
);

create index mine_evidence_mine_idx on mine_evidence (mine_id, created_at);
create index mine_evidence_sha_idx on mine_evidence (sha256);
