-- Resumable photo uploads (issue #10): the state of an upload lives here, its received bytes in
-- the blob store (`uploads/<id>/…`), so any replica sharing both continues it.

create table uploads (
    id uuid primary key,
    user_id uuid not null references users (id),
    device_id uuid not null references devices (id),
    -- The acceptance record (a round's id) the photo is for.
    record_id uuid not null references acceptance_rounds (id),
    sha256 text not null,
    size bigint not null,
    content_type text not null,
    -- Bytes acknowledged so far (advanced only after they are durably written).
    received bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    completed_at bigint
);
