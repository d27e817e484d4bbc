//! Photos in the record through sync (issue #10 item 5, PROTOCOL.md §13): an item's evidence
//! names each photo by its capture attestation, verified on arrival against the pushing
//! device's key; the server's findings (upload status, EXIF facts, place and time verdicts)
//! come back to every phone through the feed; a section signature covers its photos.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use common::{Backend, Phone, TestApp};
use serde_json::json;
use sha2::Digest;
use sync_protocol::{EntityId, OpResult, Value};
use uuid::Uuid;
use yanshou_server::{
    model::Role,
    photos::{exif::build::ExifSpec, sample},
};

/// Inside the square.
const INSIDE: (f64, f64) = (28.2354, 114.8133);
/// About 1.6 km north of it.
const FAR: (f64, f64) = (28.2500, 114.8133);
const PHOTOS: &str = "forestry/19.photos";

struct County {
    app: TestApp,
    record: EntityId,
    forestry: Phone,
}

/// A 注销 mine with a licence boundary, an open round, and a forestry inspector's phone that
/// holds the record.
async fn county(b: Backend) -> County {
    let app = TestApp::new(b).await;
    let (_, record) = app.open_round_on_square_mine("C-EVIDENCE-1").await;
    app.user("lin", Role::DepartmentInspector).await;
    let mut forestry = Phone::enroll(&app, "lin").await;
    forestry.sync(&app).await;
    assert!(forestry.replica.confirmed().contains_key(&record));
    forestry.upload_strokes(&app, &record.0.to_string()).await;
    County {
        app,
        record,
        forestry,
    }
}

/// A real JPEG with EXIF position `at` and the given capture time (county time, no offset).
fn photo(at: Option<(f64, f64)>, taken: &str, seed: u8) -> Vec<u8> {
    let spec = ExifSpec {
        lat: at.map(|p| p.0),
        lon: at.map(|p| p.1),
        accuracy_m: Some(5.0),
        date_time_original: Some(taken.to_owned()),
        make: Some("Huawei".into()),
        model: Some(format!("P{seed}")),
        ..ExifSpec::default()
    };
    sample::sample_jpeg(64 + u32::from(seed), 48, Some(&spec), 80)
}

fn position(at: (f64, f64)) -> Value {
    Value::Map(BTreeMap::from([
        ("lat".to_owned(), Value::from(format!("{:.6}", at.0))),
        ("lon".to_owned(), Value::from(format!("{:.6}", at.1))),
        ("accuracy_m".to_owned(), Value::from("8")),
        ("altitude_m".to_owned(), Value::Null),
    ]))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The findings the phone holds for `sha256`, as JSON.
fn findings(phone: &Phone, record: EntityId, sha256: &str) -> serde_json::Value {
    let state = &phone.replica.confirmed()[&record];
    let field = state
        .fields
        .get(&format!("photos/{sha256}"))
        .unwrap_or_else(|| panic!("no findings for {sha256}: {:?}", state.fields.keys()));
    serde_json::to_value(&field.value).unwrap()
}

/// Today in the county (UTC+8) as EXIF's `YYYY:MM:DD HH:MM:SS` at 10:00.
fn today_exif() -> String {
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    now.format("%Y:%m:%d 10:00:00").to_string()
}

async fn an_attested_photo_reaches_the_record_and_its_findings_follow_the_upload(b: Backend) {
    let mut c = county(b).await;
    let bytes = photo(Some(INSIDE), &today_exif(), 1);
    let hash = sha(&bytes);
    c.forestry.now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    let element = c.forestry.attest(&bytes, "image/jpeg", position(INSIDE));
    let op = c.forestry.add(c.record, PHOTOS, element.clone());
    let results = c.forestry.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { op: o, .. } if o == op),
        "{results:?}"
    );
    let state = &c.forestry.replica.confirmed()[&c.record];
    assert!(holds(state, &element), "the attestation is the element");

    // Named but not uploaded: the record says so, with the phone's own place and time judged.
    let f = findings(&c.forestry, c.record, &hash);
    assert_eq!(f["status"], "awaiting_upload", "{f}");
    assert_eq!(f["sha256"], hash.as_str());
    assert_eq!(f["exif"], serde_json::Value::Null);
    assert_eq!(f["location"]["phone"]["verdict"], "inside", "{f}");
    assert_eq!(f["location"]["exif"]["verdict"], "unknown", "{f}");
    assert_eq!(f["time"]["phone"]["verdict"], "same_day", "{f}");

    // The upload completes: the next sync brings the EXIF facts and their verdicts.
    let token = c.forestry.token.clone();
    c.app
        .upload_photo(&token, &c.record.0.to_string(), &bytes, "image/jpeg")
        .await;
    c.forestry.sync(&c.app).await;
    let f = findings(&c.forestry, c.record, &hash);
    assert_eq!(f["status"], "received", "{f}");
    assert_eq!(f["content_type"], "image/jpeg");
    assert_eq!(f["bytes"], bytes.len());
    assert_eq!(f["exif"]["make"], "Huawei");
    assert_eq!(f["exif"]["lat"], "28.2354000", "{f}");
    assert_eq!(f["location"]["exif"]["verdict"], "inside", "{f}");
    assert_eq!(f["time"]["exif"]["verdict"], "same_day", "{f}");
    assert_eq!(f["positions"]["disagree"], false, "{f}");

    // Another department's phone sees the same findings (it sees the record).
    c.app
        .user_scoped(
            "shui",
            Role::DepartmentInspector,
            Some("water_resources"),
            None,
        )
        .await;
    let mut water = Phone::enroll(&c.app, "shui").await;
    water.sync(&c.app).await;
    assert_eq!(findings(&water, c.record, &hash), f);

    // A photo taken 1.6 km away whose EXIF and phone positions disagree says so, and stays.
    let far = photo(Some(FAR), &today_exif(), 2);
    let element = c.forestry.attest(&far, "image/jpeg", position(INSIDE));
    c.forestry.add(c.record, PHOTOS, element);
    c.forestry.sync(&c.app).await;
    c.app
        .upload_photo(&token, &c.record.0.to_string(), &far, "image/jpeg")
        .await;
    c.forestry.sync(&c.app).await;
    let f = findings(&c.forestry, c.record, &sha(&far));
    assert_eq!(f["location"]["exif"]["verdict"], "outside", "{f}");
    let metres: f64 = f["location"]["exif"]["metres"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1_400.0..1_700.0).contains(&metres), "{f}");
    assert_eq!(f["positions"]["disagree"], true, "{f}");
    assert_eq!(
        c.forestry.replica.confirmed()[&c.record].sets[PHOTOS]
            .elements
            .len(),
        2,
        "a photo outside the boundary is flagged, not dropped"
    );

    // Nobody else writes the findings section.
    c.forestry
        .set(c.record, &format!("photos/{hash}"), "received");
    let results = c.forestry.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "unknown_field", "{results:?}");
}

fn holds(state: &sync_protocol::EntityState, element: &Value) -> bool {
    state.sets[PHOTOS]
        .elements
        .values()
        .any(|e| &e.value == element)
}

/// Pushes one hand-made op after everything the phone made (as a buggy or forged client would,
/// around the replica's own checks); the phone must not make ops afterwards.
async fn push_raw(c: &County, body: serde_json::Value) -> serde_json::Value {
    let device = c.forestry.replica.device();
    let seq = serde_json::to_value(&c.forestry.replica).unwrap()["next_seq"].clone();
    let mut op = json!({"id": Uuid::now_v7(), "device": device, "seq": seq,
                        "hlc": {"wall_ms": 1_700_000_100_000u64, "counter": 0},
                        "entity": c.record});
    op.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    let (s, body) = c
        .app
        .call(
            Method::POST,
            "/api/v1/sync",
            Some(&c.forestry.token),
            Some(json!({"protocol_version": 1, "device": device, "cursor": 0, "ops": [op]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

/// Pushes one op the replica made and returns its result.
async fn push_one(c: &mut County) -> OpResult {
    let results = c.forestry.sync(&c.app).await;
    assert_eq!(results.len(), 1, "{results:?}");
    results[0].clone()
}

fn rejected_code(r: &OpResult) -> String {
    match r {
        OpResult::Rejected { code, .. } => code.as_str().to_owned(),
        other => format!("not rejected: {other:?}"),
    }
}

async fn evidence_that_does_not_hold_is_rejected_with_its_reason(b: Backend) {
    let mut c = county(b).await;
    let bytes = photo(Some(INSIDE), &today_exif(), 3);
    let device = c.forestry.replica.device();

    // Signed by a key that is not this device's.
    let stranger = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let statement = |size: i64, content_type: &str| {
        sync_protocol::signature::photo_statement(
            device,
            &sha(&bytes),
            size,
            content_type,
            1_700_000_000_000,
            Value::Null,
        )
    };
    let forged =
        sync_protocol::signature::sign(&stranger, statement(bytes.len() as i64, "image/jpeg"));
    c.forestry.add(c.record, PHOTOS, forged.to_value());
    assert_eq!(rejected_code(&push_one(&mut c).await), "invalid_signature");

    // Changed after signing (the size), by the right key.
    let mut tampered = sync_protocol::signature::sign(
        &c.forestry.key,
        statement(bytes.len() as i64, "image/jpeg"),
    );
    tampered
        .statement
        .insert("size".into(), Value::Int(bytes.len() as i64 + 1));
    c.forestry.add(c.record, PHOTOS, tampered.to_value());
    assert_eq!(rejected_code(&push_one(&mut c).await), "invalid_signature");

    // A statement of another device, signed by this one's key.
    let other = sync_protocol::signature::sign(
        &c.forestry.key,
        sync_protocol::signature::photo_statement(
            sync_protocol::DeviceId(Uuid::now_v7()),
            &sha(&bytes),
            bytes.len() as i64,
            "image/jpeg",
            1,
            Value::Null,
        ),
    );
    c.forestry.add(c.record, PHOTOS, other.to_value());
    assert_eq!(rejected_code(&push_one(&mut c).await), "invalid_signature");

    // A type the server refuses, or a file over the limit: refused before anyone relies on it.
    for (size, content_type) in [
        (bytes.len() as i64, "image/heic"),
        (40_000_000, "image/jpeg"),
    ] {
        let signed = sync_protocol::signature::sign(&c.forestry.key, statement(size, content_type));
        c.forestry.add(c.record, PHOTOS, signed.to_value());
        assert_eq!(rejected_code(&push_one(&mut c).await), "invalid_op");
    }

    // Not an item of the template, or not an evidence field.
    let good = c.forestry.attest(&bytes, "image/jpeg", Value::Null);
    for field in [
        "forestry/999.photos",
        "forestry/photos",
        "forestry/19.cover",
    ] {
        c.forestry.add(c.record, field, good.clone());
        let r = push_one(&mut c).await;
        assert!(
            ["unknown_field", "field_kind_mismatch"].contains(&rejected_code(&r).as_str()),
            "{field}: {r:?}"
        );
    }

    // Another department's item: forbidden, whatever the signature.
    c.forestry
        .add(c.record, "water_resources/14.photos", good.clone());
    assert_eq!(rejected_code(&push_one(&mut c).await), "forbidden");

    // A section signature made by another key, or in another user's name.
    let mut water = {
        c.app
            .user_scoped(
                "shui",
                Role::DepartmentInspector,
                Some("water_resources"),
                None,
            )
            .await;
        Phone::enroll(&c.app, "shui").await
    };
    water.sync(&c.app).await;
    water.answer_section(c.record, "water_resources");
    water.sync(&c.app).await;
    // Strokes the server does not hold: refused until they are uploaded (PROTOCOL.md §14).
    water.sign(c.record, "water_resources");
    let results = water.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "strokes_missing");
    water.upload_strokes(&c.app, &c.record.0.to_string()).await;
    let real_key = water.key.clone();
    water.key = stranger.clone();
    water.sign(c.record, "water_resources");
    let results = water.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "invalid_signature");
    water.key = real_key;
    let mut signer = water.signer.clone();
    if let Value::Map(m) = &mut signer {
        m.insert("user".into(), Value::from(Uuid::now_v7().to_string()));
    }
    let real_signer = std::mem::replace(&mut water.signer, signer);
    water.sign(c.record, "water_resources");
    let results = water.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "invalid_signature");
    water.signer = real_signer;
    water.sign(c.record, "water_resources");
    let results = water.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
}

async fn a_signature_covers_the_photos_of_its_section(b: Backend) {
    let mut c = county(b).await;
    let bytes = photo(Some(INSIDE), &today_exif(), 4);
    let element = c.forestry.attest(&bytes, "image/jpeg", position(INSIDE));
    c.forestry.add(c.record, PHOTOS, element.clone());
    // Not before every answer is there.
    c.forestry.sign(c.record, "forestry");
    let results = c.forestry.sync(&c.app).await;
    assert_eq!(
        rejected_code(&results[1]),
        "incomplete_section",
        "{results:?}"
    );
    c.forestry.answer_section(c.record, "forestry");
    c.forestry.sign(c.record, "forestry");
    let results = c.forestry.sync(&c.app).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, OpResult::Applied { .. })),
        "{results:?}"
    );
    // The signed section document names the photo's hash: it is what the signature covers.
    let state = &c.forestry.replica.confirmed()[&c.record];
    let signed = &state.signatures["forestry"];
    assert_eq!(
        signed.content_hash,
        sync_protocol::section_hash(state, "forestry").unwrap()
    );
    // Taking the photo off afterwards is refused with the reason; the photo stays.
    let tags = serde_json::to_value(
        state.sets[PHOTOS]
            .elements
            .values()
            .flat_map(|e| e.tags.iter().copied())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let element_json = serde_json::to_value(&element).unwrap();
    let body = push_raw(
        &c,
        json!({"kind": "remove", "field": PHOTOS, "element": element_json, "observed": tags}),
    )
    .await;
    assert_eq!(body["results"][0]["code"], "section_signed", "{body}");
    c.forestry.sync(&c.app).await;
    assert!(
        holds(&c.forestry.replica.confirmed()[&c.record], &element),
        "still on the record"
    );
    // The findings still arrive after the signature: they are the server's, outside the
    // signed section.
    let token = c.forestry.token.clone();
    c.app
        .upload_photo(&token, &c.record.0.to_string(), &bytes, "image/jpeg")
        .await;
    c.forestry.sync(&c.app).await;
    assert_eq!(
        findings(&c.forestry, c.record, &sha(&bytes))["status"],
        "received"
    );
    let state = &c.forestry.replica.confirmed()[&c.record];
    assert_eq!(
        state.signatures["forestry"].content_hash,
        sync_protocol::section_hash(state, "forestry").unwrap(),
        "the findings did not change the signed section"
    );

    // The assembled record shows the section, its photo and signature, checked again.
    let office = c.app.login("office").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, doc) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/record", c.record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["mine"]["licence_no"], "C-EVIDENCE-1");
    assert_eq!(doc["disposition"], "cancel");
    let forestry = doc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["department"] == "forestry")
        .unwrap();
    assert_eq!(forestry["signature"]["hash_holds"], true, "{forestry}");
    assert_eq!(forestry["signature"]["signature_valid"], true);
    assert_eq!(
        forestry["signature"]["signer"]["user"],
        c.forestry.signer_user()
    );
    let item = forestry["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == 19)
        .unwrap();
    assert_eq!(item["photos"][0]["sha256"], sha(&bytes).as_str());
    assert_eq!(item["photos"][0]["attestation_valid"], true);
    assert_eq!(item["photos"][0]["findings"]["status"], "received");
    assert_eq!(doc["photos_awaiting_upload"], 0);
    assert_eq!(
        doc["fully_signed"], false,
        "other departments have not signed"
    );
    // Its content hash is the canonical hash of the rest of the document.
    let mut rest = doc.clone();
    let claimed = rest
        .as_object_mut()
        .unwrap()
        .remove("content_hash")
        .unwrap();
    let value: Value = serde_json::from_value(rest).unwrap();
    assert_eq!(claimed, json!(sync_protocol::content_hash(&value).unwrap()));
}

async fn a_signer_withdraws_with_a_reason_and_racing_edits_keep_the_rule(b: Backend) {
    let mut c = county(b).await;
    c.app.user("lin2", Role::DepartmentInspector).await;
    let mut colleague = Phone::enroll(&c.app, "lin2").await;
    colleague.sync(&c.app).await;
    c.forestry.answer_section(c.record, "forestry");
    c.forestry.sync(&c.app).await;
    colleague.sync(&c.app).await;

    // The colleague edits offline while the inspector signs online: the signature got there
    // first, so the edit comes back with the reason.
    let late = colleague.set(c.record, "forestry/19.coverage", "70");
    c.forestry.sign(c.record, "forestry");
    let results = c.forestry.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    let results = colleague.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "section_signed");
    assert!(
        colleague
            .replica
            .rejections()
            .iter()
            .any(|r| r.op.id == late)
    );

    // Only the signer may take the signature back.
    let now = colleague.tick();
    colleague
        .replica
        .withdraw(
            sync_protocol::OpId(Uuid::now_v7()),
            now,
            c.record,
            "forestry",
            "不是我签的",
        )
        .unwrap();
    let results = colleague.sync(&c.app).await;
    assert_eq!(rejected_code(&results[0]), "forbidden", "{results:?}");

    // The signer withdraws, with the reason kept on record.
    let now = c.forestry.tick();
    c.forestry
        .replica
        .withdraw(
            sync_protocol::OpId(Uuid::now_v7()),
            now,
            c.record,
            "forestry",
            "19 号项目郁闭度需复测",
        )
        .unwrap();
    let results = c.forestry.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    let state = &c.forestry.replica.confirmed()[&c.record];
    assert!(!state.is_signed("forestry"));
    assert_eq!(state.withdrawals.len(), 1);
    assert_eq!(state.withdrawals[0].reason, "19 号项目郁闭度需复测");
    assert_eq!(state.withdrawals[0].section, "forestry");

    // The section changes again, and must be signed again over its new hash.
    colleague.sync(&c.app).await;
    colleague.set(c.record, "forestry/19.coverage", "72");
    let results = colleague.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    c.forestry.sync(&c.app).await;
    c.forestry.sign(c.record, "forestry");
    let results = c.forestry.sync(&c.app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    let state = &c.forestry.replica.confirmed()[&c.record];
    assert_eq!(
        state.signatures["forestry"].content_hash,
        sync_protocol::section_hash(state, "forestry").unwrap()
    );
    assert_ne!(
        state.signatures["forestry"].content_hash, state.withdrawals[0].signature.content_hash,
        "the new signature covers the changed section"
    );
}

both_backends!(
    an_attested_photo_reaches_the_record_and_its_findings_follow_the_upload,
    evidence_that_does_not_hold_is_rejected_with_its_reason,
    a_signature_covers_the_photos_of_its_section,
    a_signer_withdraws_with_a_reason_and_racing_edits_keep_the_rule,
);
