-- The holder's rectification evidence (issue #12): an upload targets an acceptance record (an
-- inspector's photo) or a mine (its holder's photos and documents), exactly one of the two; a
-- filed entry names the uploaded blob with the holder's description.

alter table uploads alter column record_id drop not null;
-- The mine whose holder's evidence the file is (instead of a record).
alter table uploads add column mine_id uuid references mines (id);
alter table uploads add constraint uploads_one_target
    check ((record_id is null) <> (mine_id is null));

create index uploads_mine_idx on uploads (mine_id, sha256);

create table mine_evidence (
    id uuid primary key,
    mine_id uuid not null references mines (id),
    -- `photo` (ingested: thumbnails in `photos`) or `document` (a PDF, kept as uploaded).
    kind text not null check (kind in ('photo', 'document')),
    sha256 text not null,
    content_type text not null,
    size bigint not null,
    -- 说明: what the file shows or is.
    description text not null,
    -- The acceptance items it answers, a JSON array of item numbers (may be empty).
    items_json text not null,
    -- The deadline it answers (a campaign deadline's key, or `reinspection`).
    deadline_key text,
    created_by uuid not null references users (id),
    created_at bigint not null
);

create index mine_evidence_mine_idx on mine_evidence (mine_id, created_at);
create index mine_evidence_sha_idx on mine_evidence (sha256);
