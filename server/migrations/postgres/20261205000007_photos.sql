-- Photos (issue #10 items 3–4): what ingest learned from each stored original, one row per
-- SHA-256 (the blob's content address), and the records each photo was uploaded for. The
-- original and both thumbnails are blobs; the thumbnails carry no metadata.

create table photos (
    sha256 text primary key,
    content_type text not null,
    bytes bigint not null,
    -- As stored, before the EXIF orientation.
    width bigint not null,
    height bigint not null,
    -- The EXIF facts as JSON (position, accuracy, altitude, capture time, make, model,
    -- orientation, and the warnings for dropped fields).
    exif text not null,
    small_sha256 text not null,
    small_bytes bigint not null,
    small_width bigint not null,
    small_height bigint not null,
    large_sha256 text not null,
    large_bytes bigint not null,
    large_width bigint not null,
    large_height bigint not null,
    created_at bigint not null
);

create table photo_records (
    sha256 text not null references photos (sha256),
    -- The acceptance record (a round's id) the photo was uploaded for.
    record_id uuid not null references acceptance_rounds (id),
    created_at bigint not null,
    primary key (sha256, record_id)
);

create index photo_records_record_idx on photo_records (record_id, created_at);
