//! The mining-right holder's rectification evidence (issue #12): a holder bound to a mine
//! uploads photos and PDF documents for it, files each with a description and what it
//! answers, and sees the findings they must fix; the county office, inspectors, experts and
//! the mine's township see the evidence; bad input is refused. Each runs on SQLite and
//! PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use common::{Backend, Phone, TestApp};
use serde_json::{Value, json};
use sync_protocol::EntityId;
use tower::ServiceExt;
use uuid::Uuid;
use yanshou_server::{blobs::BlobHash, model::Role, photos::sample};

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n";

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// A county with a 注销 mine bound to its holder, who has enrolled a phone.
struct County {
    office: String,
    township: String,
    mine: String,
    /// The holder's device-bound token.
    holder: String,
}

async fn county(app: &TestApp, licence_no: &str) -> County {
    let office = app.token_for("office", Role::CountyOffice).await;
    let township = app.token_for("sixi", Role::TownshipOfficer).await;
    let mine = app
        .approved_cancel_mine(&office, &township, licence_no)
        .await;
    let holder = app.user("holder", Role::Operator).await;
    let (s, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/mines/{mine}/holder"),
            Some(&office),
            Some(json!({"user_id": holder.id})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let holder = Phone::enroll(app, "holder").await.token;
    County {
        office,
        township,
        mine,
        holder,
    }
}

/// Declare an upload for `target` (`{"mine_id": …}` or `{"record_id": …}`).
async fn create(
    app: &TestApp,
    token: &str,
    target: Value,
    bytes: &[u8],
    content_type: &str,
) -> (StatusCode, Value) {
    let mut body = json!({"sha256": BlobHash::of(bytes).hex(), "size": bytes.len(),
                          "content_type": content_type});
    body.as_object_mut()
        .unwrap()
        .extend(target.as_object().unwrap().clone());
    app.call(Method::POST, "/api/v1/uploads", Some(token), Some(body))
        .await
}

async fn chunk(app: &TestApp, token: &str, id: &str, offset: usize, bytes: &[u8]) -> StatusCode {
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(Body::from(bytes.to_vec()))
        .unwrap();
    app.router.clone().oneshot(req).await.unwrap().status()
}

/// Upload a whole file for `target`: the answer of `finish` (or of `create` when it refused,
/// or already held the file).
async fn upload(
    app: &TestApp,
    token: &str,
    target: Value,
    bytes: &[u8],
    content_type: &str,
) -> (StatusCode, Value) {
    let (s, created) = create(app, token, target, bytes, content_type).await;
    if s != StatusCode::CREATED {
        return (s, created);
    }
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        chunk(app, token, id, 0, bytes).await,
        StatusCode::NO_CONTENT
    );
    app.call(
        Method::POST,
        &format!("/api/v1/uploads/{id}/finish"),
        Some(token),
        None,
    )
    .await
}

async fn file(app: &TestApp, token: &str, mine: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/mines/{mine}/evidence"),
        Some(token),
        Some(body),
    )
    .await
}

/// GET a file: status, headers, bytes.
async fn get_raw(app: &TestApp, token: &str, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

async fn a_holder_files_photos_and_documents_that_the_county_sees(b: Backend) {
    let app = TestApp::new(b).await;
    let c = county(&app, "C-HOLD-1").await;
    let target = json!({"mine_id": c.mine});
    let photo = sample::sample_jpeg(64, 48, None, 80);
    let (s, body) = upload(&app, &c.holder, target.clone(), &photo, "image/jpeg").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = upload(&app, &c.holder, target.clone(), PDF, "application/pdf").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Declaring it again for this mine: held, nothing to send.
    let (s, body) = create(&app, &c.holder, target, PDF, "application/pdf").await;
    assert_eq!(
        (s, &body["complete"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );

    let before = chrono::Utc::now().timestamp_millis();
    let photo_sha = BlobHash::of(&photo).hex();
    let (s, entry) = file(
        &app,
        &c.holder,
        &c.mine,
        json!({"sha256": photo_sha, "kind": "photo", "description": "  边坡削坡后覆土复绿  ",
               "items": ["19.1", "19.1", "20"], "deadline_key": "reinspection"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{entry}");
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(entry["kind"], "photo");
    assert_eq!(entry["description"], "边坡削坡后覆土复绿");
    assert_eq!(entry["items"], json!(["19.1", "20"]));
    assert_eq!(entry["deadline_key"], "reinspection");
    assert_eq!(entry["content_type"], "image/jpeg");
    assert_eq!(entry["size"], photo.len());
    assert_eq!(entry["filed_by"]["role"], "operator");
    let filed_at = entry["filed_at"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&filed_at),
        "server time: {filed_at}"
    );
    let small = entry["thumbnails"]["small"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(small, format!("/api/v1/photos/{photo_sha}/thumb/small"));

    let (s, doc) = file(
        &app,
        &c.office,
        &c.mine,
        json!({"sha256": BlobHash::of(PDF).hex(), "kind": "document",
               "description": "生态修复方案（代为提交）", "deadline_key": "restoration_plan"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["filed_by"]["role"], "county_office");
    assert!(doc.get("thumbnails").is_none(), "{doc}");
    assert_eq!(doc["items"], json!([]));

    // Whoever sees the mine sees its evidence, in filing order.
    app.user("lin", Role::DepartmentInspector).await;
    let inspector = app.login("lin").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expert = app.token_for("expert", Role::Expert).await;
    // (Registered before the second township: test mines go to the first one.)
    let other_mine = app
        .approved_cancel_mine(&c.office, &c.township, "C-HOLD-2")
        .await;
    let other_town = app.other_township("翰堂镇").await;
    app.user_scoped("hantang", Role::TownshipOfficer, None, Some(other_town))
        .await;
    let stranger = app.login("hantang").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.user("other.holder", Role::Operator).await;
    let other_holder = app.login("other.holder").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = format!("/api/v1/mines/{}/evidence", c.mine);
    for token in [&c.holder, &c.office, &c.township, &inspector, &expert] {
        let (s, entries) = app.call(Method::GET, &list, Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "{entries}");
        let ids: Vec<&Value> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["id"])
            .collect();
        assert_eq!(ids, [&entry["id"], &doc["id"]]);
        // The photo's thumbnail through the photo routes.
        let (s, headers, _) = get_raw(&app, token, &small).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
        // The document, with its type and a file name.
        let (s, headers, bytes) = get_raw(&app, token, doc["href"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
        let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename="),
            "{disposition}"
        );
        assert_eq!(bytes, PDF);
    }
    // Another township's officer and another holder: as if there were nothing.
    for token in [&stranger, &other_holder] {
        let (s, _) = app.call(Method::GET, &list, Some(token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(get_raw(&app, token, &small).await.0, StatusCode::NOT_FOUND);
        let (s, _, _) = get_raw(&app, token, doc["href"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // An entry of this mine under another mine's path is not found.
    let (s, _, _) = get_raw(
        &app,
        &c.office,
        &format!(
            "/api/v1/mines/{other_mine}/evidence/{}/file",
            doc["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The holder gets their own evidence photo back, original included; its facts name the mine.
    let (s, _, bytes) = get_raw(&app, &c.holder, &format!("/api/v1/photos/{photo_sha}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, photo);
    let (s, meta) = app
        .call(
            Method::GET,
            &format!("/api/v1/photos/{photo_sha}/meta"),
            Some(&c.office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{meta}");
    assert_eq!(meta["mines"], json!([c.mine]));
    assert_eq!(meta["records"], json!([]));
}

async fn bad_evidence_is_refused_with_its_reason(b: Backend) {
    let app = TestApp::new(b).await;
    let c = county(&app, "C-HOLD-3").await;
    let target = json!({"mine_id": c.mine});
    let pdf_sha = BlobHash::of(PDF).hex();

    // A mine not bound to the holder: not there.
    let foreign = app
        .approved_cancel_mine(&c.office, &c.township, "C-HOLD-4")
        .await;
    let (s, body) = upload(
        &app,
        &c.holder,
        json!({"mine_id": foreign}),
        PDF,
        "application/pdf",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, body) = file(
        &app,
        &c.holder,
        &foreign,
        json!({"sha256": pdf_sha, "kind": "document", "description": "方案"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    // An inspector neither uploads to a mine nor files for it.
    app.user("lin", Role::DepartmentInspector).await;
    let inspector = Phone::enroll(&app, "lin").await.token;
    let (s, body) = create(&app, &inspector, target.clone(), PDF, "application/pdf").await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (s, body) = file(
        &app,
        &inspector,
        &c.mine,
        json!({"sha256": pdf_sha, "kind": "document", "description": "方案"}),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );

    // A text file declared as a PDF: refused at finish, nothing kept.
    let text = b"this is not a pdf, only text named .pdf\n";
    let (s, body) = upload(&app, &c.holder, target.clone(), text, "application/pdf").await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "document_refused"),
        "{body}"
    );
    assert_eq!(
        app.state.blobs.size(BlobHash::of(text)).await.unwrap(),
        None
    );
    // A document over the cap.
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/uploads",
            Some(&c.holder),
            Some(json!({"sha256": "ab".repeat(32), "size": 20_000_001,
                        "content_type": "application/pdf", "mine_id": c.mine})),
        )
        .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large"),
        "{body}"
    );
    // Documents go to mines, never to records; other types nowhere.
    for (content_type, target) in [
        ("text/plain", target.clone()),
        ("application/pdf", json!({"record_id": Uuid::now_v7()})),
    ] {
        let (s, body) = create(&app, &c.holder, target, PDF, content_type).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "content_type");
    }
    // Exactly one target.
    let (s, body) = create(
        &app,
        &c.holder,
        json!({"mine_id": c.mine, "record_id": Uuid::now_v7()}),
        PDF,
        "application/pdf",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "mine_id");
    let (s, body) = create(&app, &c.holder, json!({}), PDF, "application/pdf").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "record_id");

    // Filing before the upload finished (half sent), and without any upload.
    let (s, created) = create(&app, &c.holder, target.clone(), PDF, "application/pdf").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        chunk(&app, &c.holder, &id, 0, &PDF[..10]).await,
        StatusCode::NO_CONTENT
    );
    let document = json!({"sha256": pdf_sha, "kind": "document", "description": "生态修复方案"});
    let (s, body) = file(&app, &c.holder, &c.mine, document.clone()).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "evidence_not_uploaded"),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("10 of"));
    let (s, body) = file(
        &app,
        &c.holder,
        &c.mine,
        json!({"sha256": "cd".repeat(32), "kind": "photo", "description": "照片"}),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "evidence_not_uploaded"),
        "{body}"
    );
    // Finished, it files; but not with an empty description, another kind or an unknown
    // deadline (each 400 naming its field).
    assert_eq!(
        chunk(&app, &c.holder, &id, 10, &PDF[10..]).await,
        StatusCode::NO_CONTENT
    );
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/uploads/{id}/finish"),
            Some(&c.holder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for (body, field) in [
        (
            json!({"sha256": pdf_sha, "kind": "document", "description": "  "}),
            "description",
        ),
        (
            json!({"sha256": pdf_sha, "kind": "photo", "description": "方案"}),
            "kind",
        ),
        (
            json!({"sha256": pdf_sha, "kind": "document", "description": "方案",
                   "deadline_key": "no_such_deadline"}),
            "deadline_key",
        ),
        (
            json!({"sha256": pdf_sha, "kind": "document", "description": "方案",
                   "items": [""]}),
            "items[0]",
        ),
    ] {
        let (s, res) = file(&app, &c.holder, &c.mine, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{res}");
        assert_eq!(res["error"]["fields"][0]["field"], field, "{res}");
    }
    let (s, body) = file(&app, &c.holder, &c.mine, document).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // A holder still adds nothing to an acceptance record of their mine.
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", c.mine),
            Some(&c.township),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let photo = sample::sample_jpeg(32, 24, None, 80);
    let (s, body) = create(
        &app,
        &c.holder,
        json!({"record_id": round["id"]}),
        &photo,
        "image/jpeg",
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
}

/// An inspector's photo of the holder's mine stays the inspector's: the holder sees its
/// thumbnail, never its original, and cannot make it their evidence by naming its hash — they
/// must send the bytes, which proves they have them.
async fn a_holder_cannot_claim_an_inspectors_photo(b: Backend) {
    let app = TestApp::new(b).await;
    let c = county(&app, "C-HOLD-5").await;
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", c.mine),
            Some(&c.township),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    app.user("lin", Role::DepartmentInspector).await;
    let inspector = Phone::enroll(&app, "lin").await.token;
    let photo = sample::sample_jpeg(48, 36, None, 85);
    let sha = BlobHash::of(&photo).hex();
    let (s, body) = upload(
        &app,
        &inspector,
        json!({"record_id": round["id"]}),
        &photo,
        "image/jpeg",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let original = format!("/api/v1/photos/{sha}");
    assert_eq!(
        get_raw(&app, &c.holder, &original).await.0,
        StatusCode::NOT_FOUND
    );
    let thumb = format!("/api/v1/photos/{sha}/thumb/small");
    assert_eq!(get_raw(&app, &c.holder, &thumb).await.0, StatusCode::OK);

    let claim = json!({"sha256": sha, "kind": "photo", "description": "我方整改照片"});
    let (s, body) = file(&app, &c.holder, &c.mine, claim.clone()).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "evidence_not_uploaded"),
        "{body}"
    );
    // Declared for the mine, the server asks for the bytes although it holds them.
    let (s, body) = create(
        &app,
        &c.holder,
        json!({"mine_id": c.mine}),
        &photo,
        "image/jpeg",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = file(&app, &c.holder, &c.mine, claim).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        get_raw(&app, &c.holder, &original).await.0,
        StatusCode::NOT_FOUND
    );
}

/// The holder sees what they must fix: the failing items of the round (read-only) and the
/// mine's open deadlines.
async fn the_holder_sees_the_findings_to_fix(b: Backend) {
    let app = TestApp::new(b).await;
    let c = county(&app, "C-HOLD-6").await;
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", c.mine),
            Some(&c.township),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let record = EntityId(Uuid::parse_str(round["id"].as_str().unwrap()).unwrap());
    app.user("lin", Role::DepartmentInspector).await;
    let mut phone = Phone::enroll(&app, "lin").await;
    phone.sync(&app).await;
    let cover = yanshou_server::rules::template::Template::default_2023()
        .unwrap()
        .field_keys(yanshou_server::model::Disposition::Cancel)
        .into_iter()
        .find(|k| k.starts_with("forestry/19."))
        .unwrap();
    phone.set(record, &cover, "72"); // below the 80 % threshold
    phone.sync(&app).await;

    let (s, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}", record.0),
            Some(&c.holder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert!(
        view["verdict"]["failing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["field_key"] == json!(cover)),
        "{view}"
    );
    let (s, mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/mines/{}", c.mine),
            Some(&c.holder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert!(mine["deadlines"].is_array(), "{mine}");
    // Read-only: the holder writes nothing of the record.
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", c.mine),
            Some(&c.holder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

both_backends!(
    a_holder_files_photos_and_documents_that_the_county_sees,
    bad_evidence_is_refused_with_its_reason,
    a_holder_cannot_claim_an_inspectors_photo,
    the_holder_sees_the_findings_to_fix,
);
