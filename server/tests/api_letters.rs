//! The experts' opinion letter (验收合格意见书, PROTOCOL.md §15; issue #11 item 4) over HTTP:
//! drafted by the county office from a record that passed, signed or declined by the panel's
//! experts through sync with real device signatures and uploaded strokes, invalidated by an
//! edit, issued when every specialty signed, and required by the workflow for a 注销 mine.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{
    Backend, Phone, TestApp,
    letters::{EXPERTS, Passed, expert, passed, push_one, text, word, word_on},
};
use serde_json::{Value, json};
use sync_protocol::{EntityId, OpResult, RejectCode, Value as SyncValue};
use uuid::Uuid;
use yanshou_server::model::{Role, letter::OPINIONS_FIELD};

fn rejected(result: &OpResult) -> Option<RejectCode> {
    match result {
        OpResult::Rejected { code, .. } => Some(*code),
        _ => None,
    }
}

/// The whole path: a letter drafted from the passed record, three experts sign offline-made
/// words through sync, the letter is issued, and the 注销 mine's acceptance, application and
/// licence cancellation follow.
async fn a_letter_signed_by_every_specialty_is_issued_and_cancels_the_licence(b: Backend) {
    let p = passed(b).await;
    let panel = p.panel().await;
    let letter = p.draft(&panel).await;
    let id = letter["letter_id"].as_str().unwrap().to_owned();
    let entity = EntityId(Uuid::parse_str(&id).unwrap());
    assert_eq!(letter["status"], "draft");
    assert_eq!(letter["issuable"], false);
    assert_eq!(letter["text"]["panel"].as_array().unwrap().len(), 3);
    assert_eq!(letter["text"]["panel"][0]["name"], "zhuanjia.shui 专家");
    assert_eq!(letter["text"]["record_hash"], letter["record_hash_now"]);
    assert_eq!(letter["text"]["conclusion_name"], "同意通过");
    assert_eq!(
        letter["blocking"].as_array().unwrap().len(),
        3,
        "one line per specialty without a signature: {letter}"
    );

    // Issuing before anyone signed names the missing specialties.
    let (s, body) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "letter_incomplete");
    assert!(body["error"]["message"].as_str().unwrap().contains("林业"));

    // Each expert reads the letter on the phone and signs it there.
    for (_, user) in EXPERTS {
        let mut phone = p.expert_phone(user).await;
        let element = word(&mut phone, entity, "sign", "");
        phone.add(entity, OPINIONS_FIELD, element);
        assert!(matches!(
            push_one(&mut phone, &p.app).await,
            OpResult::Applied { .. }
        ));
    }
    let letter = p.letter(&id).await;
    assert_eq!(letter["issuable"], true, "{letter}");
    assert!(
        letter["opinions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["current"] == true && o["signature_valid"] == true && o["on_panel"] == true),
        "{letter}"
    );
    for s in letter["specialties"].as_array().unwrap() {
        assert_eq!(s["signed_by"].as_array().unwrap().len(), 1, "{s}");
    }

    let (s, issued) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["issued"]["letter_hash"], issued["letter_hash"]);
    let (s, again) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(again["error"]["code"], "letter_issued");

    // The workflow: closure decision, plan, 初验, then the acceptance checked against the round
    // (its record and its issued letter), the holder's application and the cancellation.
    let today = p.app.state.clock.today();
    let deadline = (today + chrono::Days::new(90)).to_string();
    let holder = p.app.user("holder", Role::Operator).await;
    let township = p.app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let holder_token = p.app.login("holder").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let steps = [
        (
            &p.office,
            json!({"transition": "issue_closure_decision", "decision": {
            "document_no": "上府字〔2024〕88号", "responsible_party": "某公司",
            "restoration_deadline": deadline, "supervisor": "泗溪镇人民政府",
            "cancellation_application_deadline": deadline, "maintenance_party": "泗溪镇人民政府"}}),
        ),
        (&township, json!({"transition": "compile_plan"})),
        (&township, json!({"transition": "pass_preliminary"})),
        (
            &p.office,
            json!({"transition": "record_acceptance", "round_id": p.round.0,
            "verdict": {"verdict": "passed", "expert_letter_signed": true}}),
        ),
    ];
    for (token, step) in steps {
        let (s, body) = p
            .app
            .call(
                Method::POST,
                &format!("/api/v1/mines/{}/transitions", p.mine),
                Some(token),
                Some(step.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{step}: {body}");
    }
    let (s, body) = p
        .call(
            Method::PUT,
            &format!("/api/v1/mines/{}/holder", p.mine),
            Some(json!({"user_id": holder.id})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for (token, step) in [
        (&holder_token, json!({"transition": "apply_cancellation"})),
        (&p.office, json!({"transition": "cancel_licence"})),
    ] {
        let (s, body) = p
            .app
            .call(
                Method::POST,
                &format!("/api/v1/mines/{}/transitions", p.mine),
                Some(token),
                Some(step.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{step}: {body}");
    }
    let (_, mine) = p
        .call(Method::GET, &format!("/api/v1/mines/{}", p.mine), None)
        .await;
    assert_eq!(mine["facts"]["stage"], "licence_cancelled", "{mine}");

    // The archive: the bundle verifies offline; one flipped byte fails on exactly that file.
    let bundle = fetch_bundle(&p).await;
    let (ok, failed, out) = verify("bundle.zip", &bundle);
    assert!(ok && failed.is_empty(), "{out}");
    let files = unzip(&bundle);
    for name in ["letter.pdf", "record.json", "manifest.json"] {
        let mut broken = files.clone();
        let bytes = broken.get_mut(name).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let (ok, failed, out) = verify("flipped.zip", &rezip(&broken));
        assert!(!ok, "{name}: {out}");
        assert_eq!(
            failed,
            std::collections::BTreeSet::from([name.to_owned()]),
            "{out}"
        );
    }
    assert!(files.keys().any(|k| k.starts_with("strokes/")), "{files:?}");
}

/// Without an issued letter the record's acceptance of a 注销 mine is refused, even with every
/// section signed.
async fn a_cancel_mine_does_not_pass_without_an_issued_letter(b: Backend) {
    let p = passed(b).await;
    let today = p.app.state.clock.today();
    let deadline = (today + chrono::Days::new(90)).to_string();
    let township = p.app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (token, step) in [
        (
            &p.office,
            json!({"transition": "issue_closure_decision", "decision": {
            "document_no": "上府字〔2024〕89号", "responsible_party": "某公司",
            "restoration_deadline": deadline, "supervisor": "泗溪镇人民政府",
            "cancellation_application_deadline": deadline, "maintenance_party": "泗溪镇人民政府"}}),
        ),
        (&township, json!({"transition": "compile_plan"})),
        (&township, json!({"transition": "pass_preliminary"})),
    ] {
        let (s, body) = p
            .app
            .call(
                Method::POST,
                &format!("/api/v1/mines/{}/transitions", p.mine),
                Some(token),
                Some(step),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let panel = p.panel().await;
    p.draft(&panel).await;
    let (s, body) = p
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/transitions", p.mine),
            Some(
                json!({"transition": "record_acceptance", "round_id": p.round.0,
                "verdict": {"verdict": "passed", "expert_letter_signed": true}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "transition_not_allowed", "{body}");
}

/// What the panel and the office may not do, each refused with its own code.
async fn letter_bad_input_is_refused_with_its_own_code(b: Backend) {
    let p = passed(b).await;
    let panel = p.panel().await;
    let path = format!("/api/v1/rounds/{}/letter", p.round.0);

    // Panels: a specialty missing, a non-expert, an expert twice, fewer than three.
    let outsider = expert(&p.app, "zhuanjia.lin2", "forestry").await;
    let inspector = p.app.user("lin", Role::DepartmentInspector).await.id;
    for (bad, field) in [
        (vec![panel[0], panel[2], outsider], "panel"),
        (vec![panel[0], panel[1], inspector], "panel[2]"),
        (vec![panel[0], panel[1], panel[1]], "panel[2]"),
        (vec![panel[0], panel[1]], "panel"),
    ] {
        let (s, body) = p.call(Method::POST, &path, Some(text(&bad))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], field, "{body}");
    }
    let mut future = text(&panel);
    future["date"] = json!("2999-01-01");
    let (s, body) = p.call(Method::POST, &path, Some(future)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    // Only the county office drafts.
    let (s, _) = p
        .app
        .call(
            Method::POST,
            &path,
            Some(p.app.login("lin").await["access_token"].as_str().unwrap()),
            Some(text(&panel)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let letter = p.draft(&[panel[0], panel[1], panel[2], outsider]).await;
    let (s, body) = p.call(Method::POST, &path, Some(text(&panel))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "letter_exists");
    let id = letter["letter_id"].as_str().unwrap().to_owned();
    let entity = EntityId(Uuid::parse_str(&id).unwrap());

    // An expert who is not on the panel.
    expert(&p.app, "zhuanjia.wai", "forestry").await;
    let mut stranger = p.expert_phone("zhuanjia.wai").await;
    let element = word(&mut stranger, entity, "sign", "");
    stranger.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut stranger, &p.app).await),
        Some(RejectCode::Forbidden)
    );

    // Strokes not uploaded: refused, and the word can be given once they are.
    let mut lin = Phone::enroll(&p.app, "zhuanjia.lin").await;
    lin.sync(&p.app).await;
    let element = word(&mut lin, entity, "sign", "");
    lin.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut lin, &p.app).await),
        Some(RejectCode::StrokesMissing)
    );
    lin.upload_strokes(&p.app, &p.round.0.to_string()).await;
    let element = word(&mut lin, entity, "sign", "");
    lin.add(entity, OPINIONS_FIELD, element);
    assert!(matches!(
        push_one(&mut lin, &p.app).await,
        OpResult::Applied { .. }
    ));
    // A second word by the same expert on the same text.
    let element = word(&mut lin, entity, "sign", "");
    lin.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut lin, &p.app).await),
        Some(RejectCode::AlreadySigned)
    );
    // A word in someone else's name (the signer is another user).
    let mut shui = p.expert_phone("zhuanjia.shui").await;
    let mut forged = shui.signer.clone();
    if let SyncValue::Map(m) = &mut forged {
        m.insert("user".into(), SyncValue::from(panel[2].to_string()));
    }
    let honest = std::mem::replace(&mut shui.signer, forged);
    let element = word(&mut shui, entity, "sign", "");
    shui.signer = honest;
    shui.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut shui, &p.app).await),
        Some(RejectCode::InvalidSignature)
    );
    // A decline needs a reason; with one it is a word like any other, and blocks issuing.
    let element = word(&mut shui, entity, "decline", " ");
    shui.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut shui, &p.app).await),
        Some(RejectCode::InvalidSignature)
    );
    let element = word(&mut shui, entity, "decline", "边坡监测数据不全");
    shui.add(entity, OPINIONS_FIELD, element);
    assert!(matches!(
        push_one(&mut shui, &p.app).await,
        OpResult::Applied { .. }
    ));
    let mut huan = p.expert_phone("zhuanjia.huan").await;
    let element = word(&mut huan, entity, "sign", "");
    huan.add(entity, OPINIONS_FIELD, element);
    assert!(matches!(
        push_one(&mut huan, &p.app).await,
        OpResult::Applied { .. }
    ));
    let letter = p.letter(&id).await;
    assert_eq!(letter["issuable"], false);
    assert!(
        letter["blocking"].to_string().contains("边坡监测数据不全"),
        "{letter}"
    );
    let (s, body) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "letter_incomplete");

    // The office edits the text: every word is superseded, a word on the old text is refused
    // as stale, and the panel signs again.
    let old_hash = letter["letter_hash"].as_str().unwrap().to_owned();
    let mut edited = text(&[panel[0], panel[1], panel[2], outsider]);
    edited["opinions"] = json!("边坡稳定；补充了边坡监测数据。");
    let (s, letter) = p
        .call(
            Method::PUT,
            &format!("/api/v1/letters/{id}"),
            Some(edited.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{letter}");
    assert_ne!(letter["letter_hash"], json!(old_hash));
    assert!(
        letter["opinions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["current"] == false),
        "{letter}"
    );
    assert_eq!(letter["blocking"].as_array().unwrap().len(), 3, "{letter}");
    let element = word_on(&mut huan, entity, &old_hash, "sign", "");
    huan.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut huan, &p.app).await),
        Some(RejectCode::HashMismatch)
    );
    for phone in [&mut shui, &mut huan, &mut lin] {
        phone.sync(&p.app).await;
        let element = word(phone, entity, "sign", "");
        phone.add(entity, OPINIONS_FIELD, element);
        assert!(matches!(
            push_one(phone, &p.app).await,
            OpResult::Applied { .. }
        ));
    }
    let (s, issued) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");

    // After issuing: no edit, no word.
    let (s, body) = p
        .call(Method::PUT, &format!("/api/v1/letters/{id}"), Some(edited))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "letter_issued");
    let mut late = Phone::enroll(&p.app, "zhuanjia.lin2").await;
    late.sync(&p.app).await;
    late.upload_strokes(&p.app, &p.round.0.to_string()).await;
    let element = word(&mut late, entity, "sign", "");
    late.add(entity, OPINIONS_FIELD, element);
    assert_eq!(
        rejected(&push_one(&mut late, &p.app).await),
        Some(RejectCode::LetterIssued)
    );

    // Devices write nothing else of a letter, and records have no experts section any more.
    lin.set(entity, "letter/conclusion", "fail");
    assert_eq!(
        rejected(&push_one(&mut lin, &p.app).await),
        Some(RejectCode::Forbidden)
    );
    lin.set(p.round, "experts/opinion", "同意");
    assert_eq!(
        rejected(&push_one(&mut lin, &p.app).await),
        Some(RejectCode::UnknownField)
    );
}

/// The strokes upload checks the format (PROTOCOL.md §14) and who may send it.
async fn strokes_uploads_are_checked(b: Backend) {
    let p = passed(b).await;
    let record = p.round.0.to_string();
    let phone = Phone::enroll(&p.app, "insp.forestry").await;
    for bad in [
        &b"{\"format\":\"yanshou-strokes/1\",\"width\":600,\"height\":240,\"strokes\":[]}"[..],
        b"{\"format\":\"yanshou-strokes/1\",\"width\":600,\"height\":240,\"strokes\":[{\"points\":[[700,10,0]]}]}",
        b"{\"format\":\"yanshou-strokes/1\",\"width\":600,\"height\":240,\"strokes\":[{\"points\":[[1,1,10],[2,2,5]]}]}",
        b"{\"format\":\"yanshou-strokes/1\",\"width\":600,\"height\":240,\"strokes\":[{\"points\":[[1.5,1,0]]}]}",
        b"not json",
    ] {
        let (s, body) = upload(&p.app, &phone.token, &record, bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "strokes_refused", "{body}");
    }
    let good = common::strokes_blob("x");
    let (s, body) = upload(&p.app, &phone.token, &record, &good).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Another phone shows the handwriting: the strokes come back byte for byte by their hash.
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&good))
    };
    let (s, back) = p
        .call(Method::GET, &format!("/api/v1/strokes/{sha}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(back, serde_json::from_slice::<Value>(&good).unwrap());
    // Too large is refused before any byte is sent.
    let (s, body) = p
        .app
        .call(
            Method::POST,
            "/api/v1/uploads",
            Some(&phone.token),
            Some(json!({"sha256": "a".repeat(64), "size": 300_000,
                        "content_type": "application/vnd.yanshou.strokes+json", "record_id": record})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // An expert may upload strokes to a record, but no photo.
    expert(&p.app, "zhuanjia.lin", "forestry").await;
    let expert_phone = Phone::enroll(&p.app, "zhuanjia.lin").await;
    let jpeg = yanshou_server::photos::sample::sample_jpeg(64, 48, None, 80);
    let (s, _) = upload(&p.app, &expert_phone.token, &record, &jpeg).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// A phone revoked after it was lost cannot sign any more: its session is refused outright, the
/// signature never reaches the record, and an expert's word from it neither.
async fn a_revoked_device_signs_nothing(b: Backend) {
    let p = passed(b).await;
    let panel = p.panel().await;
    let letter = p.draft(&panel).await;
    let entity = EntityId(Uuid::parse_str(letter["letter_id"].as_str().unwrap()).unwrap());
    let mut lost = p.expert_phone("zhuanjia.lin").await;
    let element = word(&mut lost, entity, "sign", "");
    lost.add(entity, OPINIONS_FIELD, element);
    let device = lost.replica.device().0;
    let (s, _) = p
        .app
        .call(
            Method::POST,
            &format!("/api/v1/devices/{device}/revoke"),
            Some(&lost.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = lost.post(&p.app, &lost.replica.build_request(None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "device is revoked");
    let after = p.letter(entity.0.to_string().as_str()).await;
    assert_eq!(after["opinions"], json!([]), "{after}");
}

/// Declare, send and finish one upload; the status and body of the step that ended it.
async fn upload(app: &TestApp, token: &str, record: &str, bytes: &[u8]) -> (StatusCode, Value) {
    use sha2::Digest;
    let content_type = if bytes.starts_with(&[0xff, 0xd8]) {
        "image/jpeg"
    } else {
        "application/vnd.yanshou.strokes+json"
    };
    let (s, upload) = app
        .call(
            Method::POST,
            "/api/v1/uploads",
            Some(token),
            Some(
                json!({"sha256": hex::encode(sha2::Sha256::digest(bytes)), "size": bytes.len(),
                        "content_type": content_type, "record_id": record}),
            ),
        )
        .await;
    if s != StatusCode::CREATED {
        return (s, upload);
    }
    let id = upload["id"].as_str().unwrap();
    let (s, body) = app
        .send(
            axum::http::Request::builder()
                .method(Method::PATCH)
                .uri(format!("/api/v1/uploads/{id}"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", "0")
                .body(axum::body::Body::from(bytes.to_vec()))
                .unwrap(),
        )
        .await;
    if s != StatusCode::NO_CONTENT {
        return (s, body);
    }
    app.call(
        Method::POST,
        &format!("/api/v1/uploads/{id}/finish"),
        Some(token),
        None,
    )
    .await
}

/// The round's archive bundle carries the issued letter (`letter.json`, `letter-entity.json`)
/// with its experts' strokes and device keys, and `yanshou verify` checks the letter's hash
/// against its entity, the issue and every word; an edited letter text is blamed on the
/// letter's entity alone.
async fn the_round_bundle_archives_the_letter_and_verify_checks_it(b: Backend) {
    let p = passed(b).await;
    let panel = p.panel().await;
    let letter = p.draft(&panel).await;
    let id = letter["letter_id"].as_str().unwrap().to_owned();
    let entity = EntityId(Uuid::parse_str(&id).unwrap());
    for (_, user) in EXPERTS {
        let mut phone = p.expert_phone(user).await;
        let element = word(&mut phone, entity, "sign", "");
        phone.add(entity, OPINIONS_FIELD, element);
        push_one(&mut phone, &p.app).await;
    }
    let (s, issued) = p
        .call(Method::POST, &format!("/api/v1/letters/{id}/issue"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");

    let bundle = fetch_bundle(&p).await;
    let mut files = unzip(&bundle);
    assert!(files["letter.pdf"].starts_with(b"%PDF-"));
    let letter: Value = serde_json::from_slice(&files["letter.json"]).unwrap();
    assert_eq!(
        letter,
        p.letter(&id).await,
        "letter.json is the letter as the API answers it"
    );
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["letter"]["letter_id"], id.as_str());
    assert_eq!(manifest["letter"]["status"], "issued");
    assert_eq!(manifest["letter"]["letter_hash"], issued["letter_hash"]);
    // Every signer's strokes and device key: the inspectors' and the experts'.
    let record: Value = serde_json::from_slice(&files["record.json"]).unwrap();
    let signatures = record["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["signature"].as_object())
        .map(|s| (&s["device"], &s["strokes"]["sha256"]));
    let words = letter["opinions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (&o["device"], &o["strokes"]["sha256"]));
    let (devices, strokes): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
        signatures
            .chain(words)
            .map(|(d, s)| (d.as_str().unwrap(), s.as_str().unwrap()))
            .unzip();
    assert!(devices.len() >= 3 + EXPERTS.len(), "{devices:?}");
    for sha in &strokes {
        assert!(files.contains_key(&format!("strokes/{sha}.json")), "{sha}");
    }
    let keys: Value = serde_json::from_slice(&files["keys.json"]).unwrap();
    let held: std::collections::BTreeSet<&str> = keys["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(held, devices, "{keys}");

    let (ok, _, out) = verify("bundle.zip", &bundle);
    assert!(ok, "{out}");
    for expected in [
        "ok      letter.json: its content hash",
        "ok      letter-entity.json: the letter hashes to",
        "ok      letter-entity.json: the letter was drafted from this record",
        "ok      letter-entity.json: issued over this text",
        "ok      letter.json: agrees with letter-entity.json: letter hash, status and 3 experts' words",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("ok      letter-entity.json: the word of")
                && l.contains("given on this text"))
            .count(),
        EXPERTS.len(),
        "{out}"
    );

    // The conclusion edited in the archived entity: the letter no longer hashes to what was
    // signed and issued, and only the letter's entity is blamed.
    let mut edited: Value = serde_json::from_slice(&files["letter-entity.json"]).unwrap();
    edited["fields"]["letter/conclusion"]["value"] = "fail".into();
    files.insert(
        "letter-entity.json".into(),
        serde_json::to_vec_pretty(&edited).unwrap(),
    );
    let (ok, failed, out) = verify("edited.zip", &rezip(&files));
    assert!(!ok, "{out}");
    assert_eq!(
        failed,
        std::collections::BTreeSet::from(["letter-entity.json".to_owned()]),
        "{out}"
    );
    assert!(out.contains("it was changed after it was issued"), "{out}");
}

/// The round's archive bundle, as the county office downloads it.
async fn fetch_bundle(p: &Passed) -> Vec<u8> {
    let req = axum::http::Request::builder()
        .uri(format!("/api/v1/rounds/{}/bundle.zip", p.round.0))
        .header("authorization", format!("Bearer {}", p.office))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(p.app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

/// The files of a zip, by name.
fn unzip(bundle: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut files = std::collections::BTreeMap::new();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bundle)).unwrap();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        files.insert(f.name().unwrap().into_owned(), bytes);
    }
    files
}

/// A zip of `files` (as someone who changed one would write it again).
fn rezip(files: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// `yanshou verify` (the real binary) on `bytes` written as `name`: whether it passed, the files
/// its FAILED lines name, and its output.
fn verify(name: &str, bytes: &[u8]) -> (bool, std::collections::BTreeSet<String>, String) {
    let dir = std::env::temp_dir().join(format!("yanshou-letter-bundle-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yanshou"))
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let failed = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED"))
        .filter_map(|l| l.trim_start().split_once(": ").map(|(f, _)| f.to_owned()))
        .collect();
    (out.status.success(), failed, stdout)
}

both_backends!(
    the_round_bundle_archives_the_letter_and_verify_checks_it,
    a_letter_signed_by_every_specialty_is_issued_and_cancels_the_licence,
    a_cancel_mine_does_not_pass_without_an_issued_letter,
    letter_bad_input_is_refused_with_its_own_code,
    strokes_uploads_are_checked,
    a_revoked_device_signs_nothing,
);
