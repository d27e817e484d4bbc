//! Resumable photo uploads (issue #10 item 2): the limits are announced, a file is declared by
//! hash and size, sent in chunks at offsets, and stored only once its hash is verified; the
//! state survives a restart; bad input is refused with the offset to continue at.
#![allow(clippy::unwrap_used)]

mod common;

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use common::{Backend, Phone, TestApp};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;
use yanshou_server::{blobs::BlobHash, model::Role, photos::sample};

const MIB: usize = 1024 * 1024;

/// Deterministic, incompressible-looking bytes.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// A real JPEG of exactly `len` bytes: a small photo, then noise after its end marker (as
/// phones append motion-photo data), different for each seed.
fn photo(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = sample::sample_jpeg(16, 12, None, 75);
    assert!(
        bytes.len() < len,
        "a test photo needs at least {} bytes",
        bytes.len()
    );
    let pad = len - bytes.len();
    bytes.extend(noise(pad, seed));
    bytes
}

/// A county with one open acceptance record; returns the app and the record id.
async fn county_with_record(app: &TestApp) -> String {
    let office = app.token_for("office", Role::CountyOffice).await;
    let township = app.token_for("sixi", Role::TownshipOfficer).await;
    let mine = app
        .approved_cancel_mine(&office, &township, "C-UPLOAD-1")
        .await;
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/rounds"),
            Some(&township),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    round["id"].as_str().unwrap().to_owned()
}

/// A forestry inspector's enrolled phone: its device-bound token.
async fn inspector_phone(app: &TestApp, username: &str) -> String {
    app.user(username, Role::DepartmentInspector).await;
    Phone::enroll(app, username).await.token
}

async fn create(
    app: &TestApp,
    token: &str,
    record: &str,
    bytes: &[u8],
    content_type: &str,
) -> (StatusCode, Value) {
    create_declared(
        app,
        token,
        record,
        &BlobHash::of(bytes).hex(),
        bytes.len(),
        content_type,
    )
    .await
}

async fn create_declared(
    app: &TestApp,
    token: &str,
    record: &str,
    sha256: &str,
    size: usize,
    content_type: &str,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/uploads",
        Some(token),
        Some(
            json!({"sha256": sha256, "size": size, "content_type": content_type,
                    "record_id": record}),
        ),
    )
    .await
}

/// Send a request; the status, the `Upload-Offset` header and the JSON body.
async fn send(app: &TestApp, req: Request<Body>) -> (StatusCode, Option<u64>, Value) {
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let offset = offset_of(res.headers());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, offset, body)
}

fn offset_of(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn chunk(
    app: &TestApp,
    token: &str,
    id: &str,
    offset: usize,
    bytes: &[u8],
) -> (StatusCode, Option<u64>, Value) {
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(Body::from(bytes.to_vec()))
        .unwrap();
    send(app, req).await
}

async fn status(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!("/api/v1/uploads/{id}"),
        Some(token),
        None,
    )
    .await
}

async fn finish(app: &TestApp, token: &str, id: &str) -> (StatusCode, Option<u64>, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/uploads/{id}/finish"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(app, req).await
}

/// Send `bytes` from `from` in chunks of at most 1 MiB; each chunk is acknowledged.
async fn send_all(app: &TestApp, token: &str, id: &str, bytes: &[u8], from: usize) {
    let mut at = from;
    while at < bytes.len() {
        let end = (at + MIB).min(bytes.len());
        let (s, offset, body) = chunk(app, token, id, at, &bytes[at..end]).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(offset, Some(end as u64));
        at = end;
    }
}

async fn stored(app: &TestApp, bytes: &[u8]) -> bool {
    app.state
        .blobs
        .size(BlobHash::of(bytes))
        .await
        .unwrap()
        .is_some()
}

/// The whole flow: limits, create, chunks, offset, finish (twice), and dedupe afterwards.
async fn main_flow(app: &TestApp) {
    let record = county_with_record(app).await;
    let token = inspector_phone(app, "lin").await;

    let (s, limits) = app
        .call(Method::GET, "/api/v1/uploads/limits", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(limits["chunk_max_bytes"], MIB);
    assert_eq!(limits["file_max_bytes"], 30_000_000);
    assert_eq!(limits["content_types"], json!(["image/jpeg", "image/png"]));

    let bytes = photo(2 * MIB + 12_345, 1);
    let (s, up) = create(app, &token, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["offset"], 0);
    assert_eq!(up["complete"], false);
    let id = up["id"].as_str().unwrap().to_owned();

    let (s, offset, _) = chunk(app, &token, &id, 0, &bytes[..MIB]).await;
    assert_eq!((s, offset), (StatusCode::NO_CONTENT, Some(MIB as u64)));
    let (s, st) = status(app, &token, &id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["offset"], MIB);
    assert_eq!(st["size"], bytes.len());
    assert_eq!(st["complete"], false);
    assert!(!stored(app, &bytes).await, "no blob before finish");

    send_all(app, &token, &id, &bytes, MIB).await;
    let (s, _, done) = finish(app, &token, &id).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["sha256"], BlobHash::of(&bytes).hex());
    assert_eq!(done["size"], bytes.len());
    assert_eq!(
        app.state.blobs.get(BlobHash::of(&bytes)).await.unwrap(),
        bytes
    );
    // The parts are gone; finishing again answers the same.
    let upload_id = Uuid::parse_str(&id).unwrap();
    assert!(
        app.state
            .blobs
            .read_parts(upload_id, bytes.len() as u64)
            .await
            .unwrap()
            .is_empty()
    );
    let (s, _, again) = finish(app, &token, &id).await;
    assert_eq!((s, &again), (StatusCode::OK, &done));
    let (_, st) = status(app, &token, &id).await;
    assert_eq!(st["complete"], true);

    // The same photo again (another record's view of it, a retry after a lost answer): the
    // server already holds it and says so at once.
    let (s, dup) = create(app, &token, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::OK, "{dup}");
    assert_eq!(dup["complete"], true);
    assert_eq!(dup["sha256"], BlobHash::of(&bytes).hex());
    assert!(dup.get("id").is_none());
}

async fn a_photo_is_uploaded_in_chunks_and_verified(b: Backend) {
    let app = TestApp::new(b).await;
    main_flow(&app).await;
}

async fn finishing_a_truncated_upload_is_409_with_the_offset(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    let bytes = photo(300_000, 2);
    let (_, up) = create(&app, &token, &record, &bytes, "image/jpeg").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let (s, _, _) = chunk(&app, &token, &id, 0, &bytes[..100_000]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, offset, body) = finish(&app, &token, &id).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "upload_incomplete");
    assert_eq!(offset, Some(100_000));
    assert!(!stored(&app, &bytes).await);
    // The rest, then finish: fine.
    send_all(&app, &token, &id, &bytes, 100_000).await;
    let (s, _, _) = finish(&app, &token, &id).await;
    assert_eq!(s, StatusCode::OK);
}

async fn a_wrong_hash_stores_nothing_and_never_finishes(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    let declared = photo(200_000, 3);
    let sent = photo(200_000, 4);
    let (s, up) = create_declared(
        &app,
        &token,
        &record,
        &BlobHash::of(&declared).hex(),
        sent.len(),
        "image/jpeg",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = up["id"].as_str().unwrap().to_owned();
    send_all(&app, &token, &id, &sent, 0).await;
    let (s, _, body) = finish(&app, &token, &id).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "hash_mismatch");
    assert!(!stored(&app, &declared).await);
    assert!(!stored(&app, &sent).await);
    // It stays unfinishable, and takes no more bytes.
    let (s, _, body) = finish(&app, &token, &id).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, _, _) = chunk(&app, &token, &id, 0, &sent[..10]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, st) = status(&app, &token, &id).await;
    assert_eq!(st["complete"], false);
    assert!(!stored(&app, &declared).await);
}

async fn a_chunk_at_a_wrong_offset_is_409_with_the_current_offset(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    let bytes = photo(50_000, 5);
    let (_, up) = create(&app, &token, &record, &bytes, "image/jpeg").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let (s, offset, body) = chunk(&app, &token, &id, 10, &bytes[10..20]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "upload_offset_mismatch");
    assert_eq!(offset, Some(0));
    let (s, _, _) = chunk(&app, &token, &id, 0, &bytes[..20_000]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The same chunk again (its acknowledgement was lost): 409 says where to go on.
    let (s, offset, _) = chunk(&app, &token, &id, 0, &bytes[..20_000]).await;
    assert_eq!((s, offset), (StatusCode::CONFLICT, Some(20_000)));
    // No Upload-Offset, or another content type.
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(Body::from(vec![1u8; 10]))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Upload-Offset", "20000")
        .body(Body::from(vec![1u8; 10]))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    send_all(&app, &token, &id, &bytes, 20_000).await;
    assert_eq!(finish(&app, &token, &id).await.0, StatusCode::OK);
}

async fn chunks_past_the_declared_size_or_the_limit_are_413(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    let bytes = photo(1000, 6);
    let (_, up) = create(&app, &token, &record, &bytes, "image/jpeg").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let mut longer = bytes.clone();
    longer.push(0);
    let (s, _, body) = chunk(&app, &token, &id, 0, &longer).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "upload_too_large");
    let (s, _, _) = chunk(&app, &token, &id, 0, &photo(MIB + 1, 7)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _, _) = chunk(&app, &token, &id, 0, &photo(4 * MIB, 7)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, st) = status(&app, &token, &id).await;
    assert_eq!(st["offset"], 0);
    // Files over the limit, of another type, or empty are refused when declared.
    let (s, body) = create_declared(
        &app,
        &token,
        &record,
        &"a".repeat(64),
        30_000_001,
        "image/jpeg",
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (s, body) = create(&app, &token, &record, &bytes, "image/gif").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = create(&app, &token, &record, &[], "image/jpeg").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = create_declared(&app, &token, &record, "ABC", 10, "image/jpeg").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn a_restarted_server_resumes_at_the_acknowledged_offset(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    let bytes = photo(MIB + 5000, 8);
    let (_, up) = create(&app, &token, &record, &bytes, "image/jpeg").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let (s, _, _) = chunk(&app, &token, &id, 0, &bytes[..MIB]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Another process over the same database and blob directory.
    let restarted = TestApp::from_state(app.db.as_ref().unwrap().state().await);
    let (s, st) = status(&restarted, &token, &id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["offset"], MIB);
    send_all(&restarted, &token, &id, &bytes, MIB).await;
    let (s, _, done) = finish(&restarted, &token, &id).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert!(stored(&app, &bytes).await);
}

async fn two_devices_uploading_one_photo_at_once_make_one_blob(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let lin = inspector_phone(&app, "lin").await;
    let wang = inspector_phone(&app, "wang").await;
    let bytes = photo(2 * MIB + 1, 9);
    let (s1, a) = create(&app, &lin, &record, &bytes, "image/jpeg").await;
    let (s2, b2) = create(&app, &wang, &record, &bytes, "image/jpeg").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    let (a, b2) = (
        a["id"].as_str().unwrap().to_owned(),
        b2["id"].as_str().unwrap().to_owned(),
    );
    // Each device sees only its own upload.
    assert_eq!(status(&app, &wang, &a).await.0, StatusCode::NOT_FOUND);
    let ((), ()) = tokio::join!(
        send_all(&app, &lin, &a, &bytes, 0),
        send_all(&app, &wang, &b2, &bytes, 0)
    );
    let ((s1, _, d1), (s2, _, d2), (s3, _, d3)) = tokio::join!(
        finish(&app, &lin, &a),
        finish(&app, &wang, &b2),
        // The same upload finished twice at once (a retry racing the first attempt).
        finish(&app, &lin, &a)
    );
    assert_eq!(s3, StatusCode::OK, "{d3}");
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{d1} {d2}");
    assert_eq!(d1, d2);
    assert_eq!(
        app.state.blobs.get(BlobHash::of(&bytes)).await.unwrap(),
        bytes
    );
}

async fn only_devices_of_writers_of_the_record_upload(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let bytes = photo(1000, 10);

    // The mine's holder sees the record (its mine is bound to them) but writes no section.
    let holder = app.user("holder", Role::Operator).await;
    let round = app
        .store
        .get_round(Uuid::parse_str(&record).unwrap())
        .await
        .unwrap();
    app.store
        .set_mine_holder(round.mine_id, Some(holder.id), 1)
        .await
        .unwrap();
    let holder = Phone::enroll(&app, "holder").await.token;
    let (s, body) = create(&app, &holder, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // A session without a device.
    app.user("lin", Role::DepartmentInspector).await;
    let no_device = app.login("lin").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = create(&app, &no_device, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::GET,
            "/api/v1/uploads/limits",
            Some(&no_device),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the limits are for everyone");

    // A township officer of another township does not see the record at all.
    let elsewhere = app.other_township("翰堂镇").await;
    app.user_scoped("hantang", Role::TownshipOfficer, None, Some(elsewhere))
        .await;
    let other = Phone::enroll(&app, "hantang").await.token;
    let (s, _) = create(&app, &other, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // No such record.
    let lin = Phone::enroll(&app, "lin").await.token;
    let (s, _) = create(
        &app,
        &lin,
        &Uuid::now_v7().to_string(),
        &bytes,
        "image/jpeg",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!stored(&app, &bytes).await);

    // The record's own township officer and the county office may.
    let sixi = Phone::enroll(&app, "sixi").await.token;
    let (s, body) = create(&app, &sixi, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let office = Phone::enroll(&app, "office").await.token;
    let (s, _) = create(&app, &office, &record, &bytes, "image/jpeg").await;
    assert_eq!(s, StatusCode::CREATED);
    // … and an upload is its device's only.
    let id = body["id"].as_str().unwrap();
    assert_eq!(status(&app, &office, id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        chunk(&app, &office, id, 0, &bytes).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(finish(&app, &office, id).await.0, StatusCode::NOT_FOUND);
}

async fn a_file_that_is_not_the_declared_photo_is_refused(b: Backend) {
    let app = TestApp::new(b).await;
    let record = county_with_record(&app).await;
    let token = inspector_phone(&app, "lin").await;
    // A text file named .jpg, and a PNG header claiming 100,000 × 100,000 pixels.
    let text = b"not a photo at all, just a text file named IMG_0001.jpg".repeat(20);
    let mut bomb = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    bomb.extend(b"IHDR");
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    for (bytes, declared) in [(text, "image/jpeg"), (bomb, "image/png")] {
        let (s, up) = create_declared(
            &app,
            &token,
            &record,
            &BlobHash::of(&bytes).hex(),
            bytes.len(),
            declared,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{up}");
        let id = up["id"].as_str().unwrap().to_owned();
        send_all(&app, &token, &id, &bytes, 0).await;
        let (s, _, body) = finish(&app, &token, &id).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "photo_refused", "{body}");
        assert!(!stored(&app, &bytes).await);
    }
}

both_backends!(
    a_file_that_is_not_the_declared_photo_is_refused,
    a_photo_is_uploaded_in_chunks_and_verified,
    finishing_a_truncated_upload_is_409_with_the_offset,
    a_wrong_hash_stores_nothing_and_never_finishes,
    a_chunk_at_a_wrong_offset_is_409_with_the_current_offset,
    chunks_past_the_declared_size_or_the_limit_are_413,
    a_restarted_server_resumes_at_the_acknowledged_offset,
    two_devices_uploading_one_photo_at_once_make_one_blob,
    only_devices_of_writers_of_the_record_upload,
);

/// The main flow with the blobs (and the parts) in an S3 bucket (`tests/ensure-s3.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_work_over_s3() {
    let url =
        std::env::var("YANSHOU_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let bucket = format!("yanshou-test-{}", Uuid::new_v4().simple());
    let status = reqwest::Client::new()
        .put(format!("{url}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no S3 server at {url} (run tests/ensure-s3.sh): {e}"))
        .status();
    assert!(status.is_success(), "creating bucket {bucket}: {status}");
    let app = TestApp::with_settings(Backend::Sqlite, |s| {
        s.s3_bucket = bucket;
        s.s3_endpoint = url;
        s.s3_access_key_id = "test".into();
        s.s3_secret_access_key = "test".into();
    })
    .await;
    assert_eq!(app.state.blobs.backend(), "s3");
    main_flow(&app).await;
}
