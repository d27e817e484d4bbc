-- Photos (issue #10 items 3–4): what ingest learned from each stored original, one row per
-- SHA-256 (the blob's content address), and the records each photo was uploaded for. The
-- original and both thumbnails are blobs; the thumbnails carry no metadata.

create table photos (
    sha256 text primary key,
    content_type text not null,
    bytes integer not null,
    -- As stored, before the EXIF orientation.
    width integer not null,
    height integer not null,
    -- The EXIF facts as JSON (position, accuracy, altitude, capture time, make, model,
    -- orientation, and the warnings for dropped fields).
    exif text not null,
    small_sha256 text not null,
    small_bytes integer not null,
    small_width integer not null,
    small_height integer not null,
    large_sha256 text not null,
    large_bytes integer not null,
    large_width integer not null,
    large_height integer not null,
    created_at integer not null
);

create table photo_records (
    sha256 text not null references photos (sha256),
    -- The acceptance record (a round's id) the photo was uploaded for.
    record_id blob not null references acceptance_rounds (id),
    created_at integer not null,
    primary key (sha256, record_id)
);

create index photo_records_record_idx on photo_records (record_id, created_at);
