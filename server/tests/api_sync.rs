//! The sync endpoint over HTTP, driven by the `sync-protocol` client (`Replica`), on SQLite and
//! PostgreSQL: conflicts kept and resolved, retries, gaps, signatures that freeze a section,
//! section rights, township visibility, pagination and bad requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::{Backend, Phone, TestApp};
use serde_json::json;
use sync_protocol::{EntityId, OpId, OpResult, RejectCode, SyncRequest, Value};
use uuid::Uuid;
use yanshou_server::model::Role;

const FIELD: &str = "forestry/19.cover";

async fn office_creates_record(
    app: &TestApp,
    office: &mut Phone,
    fields: &[(&str, &str)],
) -> EntityId {
    let entity = EntityId(Uuid::now_v7());
    let fields: BTreeMap<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let now = office.tick();
    office
        .replica
        .create(
            OpId(Uuid::now_v7()),
            now,
            entity,
            "acceptance_record",
            fields,
        )
        .unwrap();
    let results = office.sync(app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    entity
}

async fn setup(b: Backend) -> (TestApp, Phone, Phone, Phone) {
    let app = TestApp::new(b).await;
    for (name, role) in [
        ("office", Role::CountyOffice),
        ("lin.a", Role::DepartmentInspector),
        ("lin.b", Role::DepartmentInspector),
    ] {
        app.user(name, role).await;
    }
    let office = Phone::enroll(&app, "office").await;
    let a = Phone::enroll(&app, "lin.a").await;
    let b = Phone::enroll(&app, "lin.b").await;
    (app, office, a, b)
}

async fn concurrent_offline_edits_end_as_a_visible_conflict_in_both_orders(b: Backend) {
    for a_first in [true, false] {
        let (app, mut office, mut pa, mut pb) = setup(b).await;
        let record = office_creates_record(&app, &mut office, &[("mine", "大岭采石场")]).await;
        pa.sync(&app).await;
        pb.sync(&app).await;

        // Offline, both forestry inspectors measure the vegetation cover.
        pa.set(record, FIELD, "82");
        pb.set(record, FIELD, "78");
        if a_first {
            pa.sync(&app).await;
            pb.sync(&app).await;
        } else {
            pb.sync(&app).await;
            pa.sync(&app).await;
        }
        for phone in [&mut pa, &mut pb, &mut office] {
            phone.sync(&app).await;
        }

        // Everyone converges, and both values are kept.
        assert_eq!(pa.replica.confirmed(), pb.replica.confirmed());
        assert_eq!(pa.replica.confirmed(), office.replica.confirmed());
        let field = &pa.replica.confirmed()[&record].fields[FIELD];
        let conflict = field.conflict.as_ref().expect("conflict must be visible");
        assert!(conflict.holds(&Value::from("82")) && conflict.holds(&Value::from("78")));

        // The conflict queue shows it to forestry inspectors, not to others.
        let (s, queue) = app
            .call(Method::GET, "/api/v1/sync/conflicts", Some(&pa.token), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let queue = queue.as_array().unwrap();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(queue[0]["field"], FIELD);
        assert_eq!(queue[0]["candidates"].as_array().unwrap().len(), 2);

        // Inspector A looks again and chooses; the resolution is an audited op.
        let chosen = conflict
            .candidates
            .iter()
            .find(|c| c.value == Value::from("78"))
            .map(|c| c.op);
        let now = pa.tick();
        pa.replica
            .resolve(
                OpId(Uuid::now_v7()),
                now,
                record,
                FIELD,
                Value::from("78"),
                chosen,
                "复测：东侧坡面覆盖率偏低",
            )
            .unwrap();
        let results = pa.sync(&app).await;
        assert!(
            matches!(results[0], OpResult::Applied { .. }),
            "{results:?}"
        );
        pb.sync(&app).await;
        let field = &pb.replica.confirmed()[&record].fields[FIELD];
        assert_eq!(field.value, Value::from("78"));
        let resolution = field.resolution.as_ref().unwrap();
        assert_eq!(resolution.device, pa.replica.device());
        assert_eq!(
            resolution.candidates.len(),
            2,
            "losing value stays on record"
        );
        let (_, queue) = app
            .call(Method::GET, "/api/v1/sync/conflicts", Some(&pa.token), None)
            .await;
        assert_eq!(queue.as_array().unwrap().len(), 0);
    }
}

async fn a_retried_batch_is_duplicate_not_a_second_copy(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pa.set(record, FIELD, "81");
    pa.set(record, "forestry/20.survival", "90");
    let request = pa.replica.build_request(None);
    // The first response is lost on the mountain road.
    let (s, first) = pa.post(&app, &request).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["results"][0]["status"], "applied");
    for _ in 0..3 {
        let (s, again) = pa.post(&app, &request).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
        assert_eq!(again["results"][1]["status"], "duplicate");
    }
    pa.sync(&app).await;
    // Exactly one change per op in the feed.
    let mut fresh = Phone::enroll(&app, "lin.b").await;
    let response = fresh.sync_once(&app).await;
    let field_changes = response
        .changes
        .iter()
        .filter(|c| c.entity == record)
        .count();
    assert_eq!(field_changes, 3, "create + two sets");
    assert_eq!(
        fresh.replica.confirmed()[&record].fields[FIELD].value,
        Value::from("81")
    );
}

async fn a_gap_is_held_not_applied(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pa.set(record, FIELD, "70");
    pa.set(record, FIELD, "71");
    let mut request = pa.replica.build_request(None);
    request.ops.remove(0); // the first op was lost
    let (s, body) = pa.post(&app, &request).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["results"][0]["status"], "gap");
    assert_eq!(body["results"][0]["expected"], 1);
    // Nothing applied; a full resend goes through in order.
    pa.sync(&app).await;
    assert_eq!(
        pa.replica.confirmed()[&record].fields[FIELD].value,
        Value::from("71")
    );
    assert_eq!(pa.replica.confirmed()[&record].fields[FIELD].rev, 2);
}

async fn a_signed_section_rejects_later_edits_and_returns_them(b: Backend) {
    let (app, mut office, mut pa, mut pb) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pb.sync(&app).await;
    pa.set(record, FIELD, "85");
    pa.sync(&app).await;
    pb.sync(&app).await;

    // B edits offline while A signs the forestry section online.
    pa.upload_strokes(&app, &app.any_round().await).await;
    let late = pb.set(record, FIELD, "60");
    pa.sign(record, "forestry");
    let results = pa.sync(&app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    let request = pb.replica.build_request(None);
    for attempt in 0..2 {
        // The second attempt is a retry after a lost response: the same reason comes back.
        let (s, body) = pb.post(&app, &request).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            body["results"][0]["status"], "rejected",
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["results"][0]["code"], "section_signed");
        assert_eq!(body["results"][0]["op"], json!(late.0));
    }
    pb.sync(&app).await;
    // The edit is not lost: it is on B's phone as a visible rejection.
    assert!(
        pb.replica.rejections().iter().any(|r| r.op.id == late),
        "{:?}",
        pb.replica.rejections()
    );
    assert_eq!(
        pb.replica.confirmed()[&record].fields[FIELD].value,
        Value::from("85")
    );
    assert!(pb.replica.confirmed()[&record].is_signed("forestry"));
}

async fn inspectors_cannot_write_other_departments(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pa.set(record, "water_resources/14.length", "120");
    pa.set(record, "nonsense/1", "x");
    let results = pa.sync(&app).await;
    let codes: Vec<_> = results
        .iter()
        .map(|r| match r {
            OpResult::Rejected { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [Some(RejectCode::Forbidden), Some(RejectCode::UnknownField)]
    );
    assert_eq!(pa.replica.rejections().len(), 2);
    // Inspectors cannot create records either.
    let now = pa.tick();
    pa.replica
        .create(
            OpId(Uuid::now_v7()),
            now,
            EntityId(Uuid::now_v7()),
            "acceptance_record",
            BTreeMap::new(),
        )
        .unwrap();
    let results = pa.sync(&app).await;
    assert!(matches!(
        &results[0],
        OpResult::Rejected {
            code: RejectCode::Forbidden,
            ..
        }
    ));
}

async fn township_officers_see_and_write_only_their_township(b: Backend) {
    let (app, mut office, _, _) = setup(b).await;
    app.user("sixi", Role::TownshipOfficer).await; // bound to the first township
    let own = app.store.list_townships().await.unwrap()[0].id;
    let other = Uuid::now_v7();
    app.store
        .create_township(&yanshou_server::model::Township {
            id: other,
            name: "翰堂镇".into(),
            kind: "town".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    let ours = office_creates_record(&app, &mut office, &[("township_id", &own.to_string())]).await;
    let theirs =
        office_creates_record(&app, &mut office, &[("township_id", &other.to_string())]).await;
    let mut officer = Phone::enroll(&app, "sixi").await;
    officer.sync(&app).await;
    let seen = officer.replica.confirmed();
    assert!(seen.contains_key(&ours));
    assert!(
        !seen.contains_key(&theirs),
        "another township's record leaked"
    );
    officer.set(ours, "township/28.opinion", "初验合格，群众无异议");
    let results = officer.sync(&app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    // The phone cannot even address the other record; a forged op is refused by the server.
    assert!(
        officer
            .replica
            .set(
                OpId(Uuid::now_v7()),
                1,
                theirs,
                "township/28.opinion",
                Value::from("越权")
            )
            .is_err()
    );
    let body = officer
        .push_forged_set(&app, 2, theirs, "township/28.opinion", "越权", 0)
        .await;
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    assert_eq!(body["results"][0]["code"], "forbidden");
}

async fn pull_is_paginated_and_resumes_from_the_cursor(b: Backend) {
    let (app, mut office, mut pa, mut pb) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    for round in 0..3 {
        for i in 0..400 {
            pa.set(record, &format!("forestry/f{round}_{i}"), "x");
        }
        pa.sync(&app).await;
    }
    // A phone that was offline for a week pulls 1,201 changes in pages.
    let request = SyncRequest {
        protocol_version: 1,
        device: pb.replica.device(),
        ops: vec![],
        cursor: 0,
        pull_limit: Some(500),
    };
    let (_, page1) = pb.post(&app, &request).await;
    assert_eq!(page1["changes"].as_array().unwrap().len(), 500);
    assert_eq!(page1["has_more"], true);
    assert_eq!(page1["cursor"], 500);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let response = pb.sync_once(&app).await;
        if !response.has_more {
            break;
        }
    }
    assert_eq!(rounds, 3, "1,201 changes in pages of 500");
    assert_eq!(pb.replica.confirmed(), pa.replica.confirmed());
    assert_eq!(pb.replica.confirmed()[&record].fields.len(), 1200);
}

async fn a_restored_phone_reusing_sequence_numbers_gets_its_ops_back(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    let backup = pa.replica.clone();
    pa.set(record, FIELD, "88");
    pa.sync(&app).await;
    // The phone is restored from the backup and the inspector enters another value.
    pa.replica = backup;
    let reentered = pa.set(record, "forestry/20.survival", "91");
    let results = pa.sync(&app).await;
    match &results[0] {
        OpResult::Rejected { code, op, .. } => {
            assert_eq!(*code, RejectCode::SeqReused);
            assert_eq!(*op, reentered);
        }
        other => panic!("expected seq_reused, got {other:?}"),
    }
    assert!(pa.replica.rejections().iter().any(|r| r.op.id == reentered));
}

async fn bad_sync_requests_get_clear_errors(b: Backend) {
    let (app, _, pa, _) = setup(b).await;
    let device = pa.replica.device();
    let post_raw = |token: String, body: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/sync")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let ok = json!({"protocol_version": 1, "device": device.0, "ops": [], "cursor": 0});

    let (s, body) = app
        .send(post_raw(
            pa.token.clone(),
            json!({"protocol_version": 2, "device": device.0, "ops": [], "cursor": 0}).to_string(),
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unsupported_protocol_version");

    let (s, body) = app
        .send(post_raw(
            pa.token.clone(),
            r#"{"protocol_version": 1, "ops": "#.into(),
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");

    let (s, body) = app
        .send(post_raw(
            pa.token.clone(),
            json!({"protocol_version": 1, "device": Uuid::now_v7(), "ops": [], "cursor": 0})
                .to_string(),
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another device's series: {body}");

    // A session not bound to a device cannot sync.
    let unbound = app.login("lin.a").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = app.send(post_raw(unbound, ok.to_string())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Too many ops in one request.
    let mut many = pa.replica.clone();
    let entity = EntityId(Uuid::now_v7());
    many.create(
        OpId(Uuid::now_v7()),
        1,
        entity,
        "acceptance_record",
        BTreeMap::new(),
    )
    .unwrap();
    for i in 0..500 {
        many.set(
            OpId(Uuid::now_v7()),
            1_700_000_000_000 + i,
            entity,
            "forestry/x",
            Value::from("y"),
        )
        .unwrap();
    }
    let mut request = many.build_request(None);
    assert_eq!(
        request.ops.len(),
        500,
        "the client sends at most 500 per request"
    );
    request.ops.push(request.ops[1].clone());
    let (s, body) = pa.post(&app, &request).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "ops");

    // Floats are refused (decimals travel as strings) with the op's position.
    let bad_value = json!({"protocol_version": 1, "device": device.0, "cursor": 0, "ops": [{
        "id": Uuid::now_v7(), "device": device.0, "seq": 1,
        "hlc": {"wall_ms": 1, "counter": 0}, "entity": Uuid::now_v7(),
        "kind": "set", "field": FIELD, "value": 85.5, "base_rev": 0}]});
    let (s, body) = app
        .send(post_raw(pa.token.clone(), bad_value.to_string()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // An expired token after a week offline: 401, then the refresh token still works.
    let mut claims = app
        .state
        .keys
        .verify(&pa.token, app.state.clock.now_ms() / 1000)
        .unwrap();
    claims.exp = chrono::Utc::now().timestamp() - 7 * 86_400;
    claims.nbf = claims.exp - 900;
    let expired = app.state.keys.sign(&claims).unwrap();
    let (s, _) = app.send(post_raw(expired, ok.to_string())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, session) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pa.refresh})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .send(post_raw(
            session["access_token"].as_str().unwrap().to_owned(),
            ok.to_string(),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn concurrent_pushes_from_many_phones_commit_together_without_losing_a_value(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("office", Role::CountyOffice).await;
    let mut office = Phone::enroll(&app, "office").await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    let mut phones = Vec::new();
    for i in 0..12 {
        let name = format!("lin.{i}");
        app.user(&name, Role::DepartmentInspector).await;
        let mut p = Phone::enroll(&app, &name).await;
        p.sync(&app).await;
        // Everyone measures the same item, plus a field of their own.
        p.set(record, FIELD, &format!("{}", 70 + i));
        p.set(record, &format!("forestry/own.{i}"), "x");
        phones.push(p);
    }
    // All push at once: the writer groups them into shared transactions.
    let requests: Vec<_> = phones
        .iter()
        .map(|p| p.replica.build_request(None))
        .collect();
    let responses = post_all(&app, &phones, &requests).await;
    for (s, body) in &responses {
        assert_eq!(*s, StatusCode::OK, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "one result per op: {body}");
        for r in results {
            let status = r["status"].as_str().unwrap();
            assert!(status == "applied" || status == "conflict", "{r}");
        }
    }
    let mut fresh = Phone::enroll(&app, "office").await;
    fresh.sync(&app).await;
    let state = &fresh.replica.confirmed()[&record];
    let conflict = state.fields[FIELD].conflict.as_ref().expect("a conflict");
    assert_eq!(
        conflict.candidates.len(),
        12,
        "every concurrent value is kept"
    );
    for i in 0..12 {
        assert!(state.fields.contains_key(&format!("forestry/own.{i}")));
    }
    // The feed is contiguous: 1 create + 24 changes.
    let request = SyncRequest {
        protocol_version: 1,
        device: fresh.replica.device(),
        ops: vec![],
        cursor: 0,
        pull_limit: Some(5000),
    };
    let (_, page) = fresh.post(&app, &request).await;
    let seqs: Vec<u64> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=25).collect::<Vec<u64>>());
}

/// Every phone posts its request at the same time (the writer groups them into shared
/// transactions).
async fn post_all(
    app: &TestApp,
    phones: &[Phone],
    requests: &[SyncRequest],
) -> Vec<(StatusCode, serde_json::Value)> {
    futures_join_all(
        phones
            .iter()
            .zip(requests)
            .map(|(p, r)| p.post(app, r))
            .collect(),
    )
    .await
}

/// Run futures concurrently on this task (they borrow the test's app, so no spawning).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

async fn a_request_sent_twice_at_once_never_acknowledges_a_rejected_op(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    let good = pa.set(record, FIELD, "90");
    let forbidden = pa.set(record, "water_resources/14.length", "120");
    let request = pa.replica.build_request(None);
    for _ in 0..5 {
        // Both copies usually land in one group commit.
        let responses =
            futures_join_all(vec![pa.post(&app, &request), pa.post(&app, &request)]).await;
        for (s, body) in &responses {
            assert_eq!(*s, StatusCode::OK, "{body}");
            let results = body["results"].as_array().unwrap();
            assert_eq!(results.len(), 2, "one result per op: {body}");
            for r in results {
                let op = r["op"].as_str().unwrap();
                if op == forbidden.0.to_string() {
                    assert_eq!(r["status"], "rejected", "a rejected op answered {r}");
                } else {
                    assert_eq!(op, good.0.to_string());
                    assert!(
                        r["status"] == "applied" || r["status"] == "duplicate",
                        "{r}"
                    );
                }
            }
        }
    }
}

/// An op reusing the id of a stored change (a client bug, or a forged push) fails its own
/// request with a clear error and saves nothing of it; the pushes it shared a group commit
/// with are written as usual, and the device's real op still goes through afterwards.
async fn a_push_reusing_a_stored_op_id_fails_alone(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("office", Role::CountyOffice).await;
    let mut office = Phone::enroll(&app, "office").await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    let taken = office.replica.confirmed()[&record].created_by;
    let mut phones = Vec::new();
    for i in 0..8 {
        let name = format!("lin.{i}");
        app.user(&name, Role::DepartmentInspector).await;
        let mut p = Phone::enroll(&app, &name).await;
        p.sync(&app).await;
        p.set(record, &format!("forestry/own.{i}"), "x");
        phones.push(p);
    }
    let mut requests: Vec<_> = phones
        .iter()
        .map(|p| p.replica.build_request(None))
        .collect();
    let offender = 3;
    requests[offender].ops[0].id = taken;
    for round in 0..3 {
        let responses = post_all(&app, &phones, &requests).await;
        for (i, (s, body)) in responses.iter().enumerate() {
            if i == offender {
                assert_eq!(*s, StatusCode::CONFLICT, "{body}");
                assert_eq!(body["error"]["code"], "op_id_reused", "{body}");
            } else {
                assert_eq!(*s, StatusCode::OK, "{body}");
                let expected = if round == 0 { "applied" } else { "duplicate" };
                assert_eq!(body["results"][0]["status"], expected, "{body}");
            }
        }
    }
    // Nothing of the refused request was saved: the phone's own op, under the same sequence
    // number, is applied.
    let results = phones[offender].sync(&app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
    let mut fresh = Phone::enroll(&app, "office").await;
    fresh.sync(&app).await;
    let state = &fresh.replica.confirmed()[&record];
    for i in 0..8 {
        assert!(
            state.fields.contains_key(&format!("forestry/own.{i}")),
            "own.{i}"
        );
    }
    assert_eq!(state.created_by, taken);
}

/// A phone drops a `duplicate` from its outbox, so only an op the server stored may be answered
/// `duplicate`: a second op under a sequence number taken earlier in the same batch, an op with
/// `seq` 0, and a retry whose content differs from the stored op under its id are refused with
/// a reason instead, and nothing of them is stored.
async fn only_a_stored_op_is_ever_acknowledged_as_duplicate(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pa.set(record, FIELD, "88");
    let mut request = pa.replica.build_request(None);
    let mut twin = request.ops[0].clone();
    twin.id = OpId(Uuid::now_v7());
    twin.body = sync_protocol::OpBody::Set {
        field: "forestry/20.survival".into(),
        value: Value::from("91"),
        base_rev: 0,
    };
    let mut zero = twin.clone();
    zero.id = OpId(Uuid::now_v7());
    zero.seq = 0;
    request.ops.push(twin.clone());
    request.ops.insert(0, zero.clone());
    let (s, body) = pa.post(&app, &request).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let results: Vec<OpResult> = serde_json::from_value(body["results"].clone()).unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(
        matches!(&results[0], OpResult::Rejected { code: RejectCode::InvalidOp, op, .. } if *op == zero.id),
        "seq 0: {results:?}"
    );
    assert!(
        matches!(results[1], OpResult::Applied { .. }),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], OpResult::Rejected { code: RejectCode::SeqReused, op, .. } if *op == twin.id),
        "same seq in one batch: {results:?}"
    );
    // A retry of the applied op with other content under the same id and number.
    let mut changed = request.ops[1].clone();
    if let sync_protocol::OpBody::Set { value, .. } = &mut changed.body {
        *value = Value::from("77");
    }
    let retry = SyncRequest {
        ops: vec![changed.clone(), zero.clone()],
        ..request.clone()
    };
    let (s, body) = pa.post(&app, &retry).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let results: Vec<OpResult> = serde_json::from_value(body["results"].clone()).unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        matches!(
            &results[0],
            OpResult::Rejected {
                code: RejectCode::SeqReused,
                ..
            }
        ),
        "changed retry: {results:?}"
    );
    assert!(
        matches!(
            &results[1],
            OpResult::Rejected {
                code: RejectCode::InvalidOp,
                ..
            }
        ),
        "seq 0 again: {results:?}"
    );
    // The exact op again is a duplicate; nothing of the refused ops was stored.
    let exact = SyncRequest {
        ops: vec![request.ops[1].clone()],
        ..request.clone()
    };
    let (_, body) = pa.post(&app, &exact).await;
    assert_eq!(body["results"][0]["status"], "duplicate", "{body}");
    let mut fresh = Phone::enroll(&app, "office").await;
    fresh.sync(&app).await;
    let state = &fresh.replica.confirmed()[&record];
    assert_eq!(state.value(FIELD), Some(&Value::from("88")));
    assert_eq!(state.value("forestry/20.survival"), None);
}

/// A `seq` the protocol cannot carry (above 2^53 − 1) is refused with the offending member
/// named, never stored changed (a signed 64-bit column would cap it at 2^63 − 1).
async fn a_seq_above_the_protocols_integer_bound_is_refused(b: Backend) {
    let (app, mut office, mut pa, _) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pa.set(record, FIELD, "88");
    for seq in [1u64 << 53, (1 << 63) + 1, u64::MAX] {
        let mut request = pa.replica.build_request(None);
        request.ops[0].seq = seq;
        let (s, body) = pa.post(&app, &request).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "seq {seq}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("ops[0].seq"), "{message}");
    }
    let results = pa.sync(&app).await;
    assert!(
        matches!(results[0], OpResult::Applied { .. }),
        "{results:?}"
    );
}

/// The conflict queue lists only what the caller's `resolve` would be allowed to change: the
/// county office does not get a department's conflicts it would be refused (`forbidden`) for.
async fn the_conflict_queue_lists_only_what_the_caller_may_resolve(b: Backend) {
    let (app, mut office, mut pa, mut pb) = setup(b).await;
    let record = office_creates_record(&app, &mut office, &[]).await;
    pa.sync(&app).await;
    pb.sync(&app).await;
    pa.set(record, FIELD, "82");
    pb.set(record, FIELD, "78");
    pa.sync(&app).await;
    pb.sync(&app).await;
    office.sync(&app).await;
    let queue = |token: String| {
        let app = &app;
        async move {
            let (s, queue) = app
                .call(Method::GET, "/api/v1/sync/conflicts", Some(&token), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{queue}");
            queue.as_array().unwrap().len()
        }
    };
    assert_eq!(queue(pa.token.clone()).await, 1, "the forestry inspector");
    assert_eq!(queue(office.token.clone()).await, 0, "the county office");
    // And indeed the office's resolve is refused.
    let conflict = office.replica.confirmed()[&record].fields[FIELD]
        .conflict
        .clone()
        .unwrap();
    let now = office.tick();
    office
        .replica
        .resolve(
            OpId(Uuid::now_v7()),
            now,
            record,
            FIELD,
            conflict.candidates[0].value.clone(),
            Some(conflict.candidates[0].op),
            "县办决定",
        )
        .unwrap();
    let results = office.sync(&app).await;
    assert!(
        matches!(
            results[0],
            OpResult::Rejected {
                code: RejectCode::Forbidden,
                ..
            }
        ),
        "{results:?}"
    );
}

/// The code of each result, `None` for an applied op.
fn outcomes(results: &[OpResult]) -> Vec<Option<RejectCode>> {
    results
        .iter()
        .map(|r| match r {
            OpResult::Applied { .. } => None,
            OpResult::Rejected { code, .. } => Some(*code),
            other => panic!("unexpected result {other:?}"),
        })
        .collect()
}

/// Queue `ops` on `phone` (each a closure over its replica) and sync: the results, one per op.
async fn push(app: &TestApp, phone: &mut Phone, ops: usize) -> Vec<Option<RejectCode>> {
    let results = phone.sync(app).await;
    assert_eq!(results.len(), ops, "one result per op: {results:?}");
    outcomes(&results)
}

/// Section rights by role, each through sync from an enrolled device: a holder pulls nothing and
/// writes nothing; only experts write `experts`; only the county office or an admin tombstones;
/// an inspector writes only their department's section; a township officer only their
/// township's records, and there only the `township` section (and the header).
async fn sync_rights_follow_the_role(b: Backend) {
    use RejectCode::Forbidden as F;
    let app = TestApp::new(b).await;
    let own = app.first_township().await;
    let other = app.other_township("翰堂镇").await;
    for (name, role) in [
        ("office", Role::CountyOffice),
        ("root", Role::Admin),
        ("lin", Role::DepartmentInspector),
        ("zhuan", Role::Expert),
        ("sixi", Role::TownshipOfficer),
        ("holder", Role::Operator),
    ] {
        app.user(name, role).await;
    }
    app.user_scoped(
        "shui",
        Role::DepartmentInspector,
        Some("water_resources"),
        None,
    )
    .await;
    app.user_scoped("hantang", Role::TownshipOfficer, None, Some(other))
        .await;
    let mut office = Phone::enroll(&app, "office").await;
    let ours = office_creates_record(&app, &mut office, &[("township_id", &own.to_string())]).await;
    let theirs =
        office_creates_record(&app, &mut office, &[("township_id", &other.to_string())]).await;
    let spare =
        office_creates_record(&app, &mut office, &[("township_id", &own.to_string())]).await;

    // A mining-right holder pulls nothing of the feed, and what it pushes is refused.
    let mut holder = Phone::enroll(&app, "holder").await;
    let response = holder.sync_once(&app).await;
    assert!(response.changes.is_empty(), "{:?}", response.changes);
    assert!(holder.replica.confirmed().is_empty());
    let body = holder
        .push_forged_set(&app, 1, ours, "township/28.opinion", "合格", 0)
        .await;
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    assert_eq!(body["results"][0]["code"], "forbidden", "{body}");

    // A record has no experts' section any more (the experts sign the opinion letter, an entity
    // of its own): nobody writes one, experts write nothing of a record.
    let mut expert = Phone::enroll(&app, "zhuan").await;
    let mut forestry = Phone::enroll(&app, "lin").await;
    let mut water = Phone::enroll(&app, "shui").await;
    let mut officer = Phone::enroll(&app, "sixi").await;
    let mut admin = Phone::enroll(&app, "root").await;
    for p in [
        &mut expert,
        &mut forestry,
        &mut water,
        &mut officer,
        &mut admin,
    ] {
        p.sync(&app).await;
    }
    expert.set(ours, "experts/opinion", "同意验收");
    expert.set(ours, "forestry/19.cover", "80");
    expert.set(ours, "township/28.opinion", "无异议");
    assert_eq!(
        push(&app, &mut expert, 3).await,
        [Some(RejectCode::UnknownField), Some(F), Some(F)]
    );
    for p in [&mut forestry, &mut office, &mut officer, &mut admin] {
        p.set(ours, "experts/letter", "越权");
        assert_eq!(
            push(&app, p, 1).await,
            [Some(RejectCode::UnknownField)],
            "experts section"
        );
    }

    // An inspector writes and signs only their own department's section.
    forestry.set(ours, "forestry/19.cover", "82");
    forestry.set(ours, "water_resources/14.length", "120");
    forestry.set(ours, "township/28.opinion", "越权");
    forestry.set(ours, "mine_name", "改名");
    assert_eq!(
        push(&app, &mut forestry, 4).await,
        [None, Some(F), Some(F), Some(F)]
    );
    water.set(ours, "water_resources/14.length", "120");
    water.set(ours, "forestry/19.cover", "10");
    assert_eq!(push(&app, &mut water, 2).await, [None, Some(F)]);
    water.upload_strokes(&app, &app.any_round().await).await;
    water.sign(ours, "forestry");
    water.sign(ours, "water_resources");
    assert_eq!(push(&app, &mut water, 2).await, [Some(F), None]);

    // A township officer: their township's records, the `township` section and the header.
    officer.set(ours, "township/28.opinion", "初验合格");
    officer.set(ours, "mine_name", "黄家山采石场");
    officer.set(ours, "forestry/19.cover", "50");
    assert_eq!(push(&app, &mut officer, 3).await, [None, None, Some(F)]);
    assert!(
        !officer.replica.confirmed().contains_key(&theirs),
        "another township's record was pulled"
    );
    let mut hantang = Phone::enroll(&app, "hantang").await;
    hantang.sync(&app).await;
    assert!(hantang.replica.confirmed().contains_key(&theirs));
    assert!(!hantang.replica.confirmed().contains_key(&ours));
    let body = hantang
        .push_forged_set(&app, 1, ours, "township/28.opinion", "越权", 1)
        .await;
    assert_eq!(body["results"][0]["code"], "forbidden", "{body}");

    // Tombstones: the county office and admins only.
    for p in [&mut forestry, &mut expert, &mut officer] {
        let now = p.tick();
        p.replica
            .tombstone(OpId(Uuid::now_v7()), now, spare)
            .unwrap();
        assert_eq!(push(&app, p, 1).await, [Some(F)], "tombstone");
    }
    let now = admin.tick();
    admin
        .replica
        .tombstone(OpId(Uuid::now_v7()), now, spare)
        .unwrap();
    assert_eq!(push(&app, &mut admin, 1).await, [None]);
    let now = office.tick();
    office
        .replica
        .tombstone(OpId(Uuid::now_v7()), now, theirs)
        .unwrap();
    assert_eq!(push(&app, &mut office, 1).await, [None]);

    // What stands is exactly what the rights allowed.
    let mut fresh = Phone::enroll(&app, "office").await;
    fresh.sync(&app).await;
    let record = &fresh.replica.confirmed()[&ours];
    let fields: Vec<(&str, &Value)> = record
        .fields
        .iter()
        .filter(|(k, _)| *k != "township_id")
        .map(|(k, f)| (k.as_str(), &f.value))
        .collect();
    assert_eq!(
        fields,
        [
            ("forestry/19.cover", &Value::from("82")),
            ("mine_name", &Value::from("黄家山采石场")),
            ("township/28.opinion", &Value::from("初验合格")),
            ("water_resources/14.length", &Value::from("120")),
        ]
    );
    assert_eq!(
        record.signatures.keys().collect::<Vec<_>>(),
        ["water_resources"]
    );
    assert!(fresh.replica.confirmed()[&spare].tombstoned);
    assert!(fresh.replica.confirmed()[&theirs].tombstoned);
    assert!(!record.tombstoned);
}

both_backends!(
    sync_rights_follow_the_role,
    the_conflict_queue_lists_only_what_the_caller_may_resolve,
    a_seq_above_the_protocols_integer_bound_is_refused,
    only_a_stored_op_is_ever_acknowledged_as_duplicate,
    a_push_reusing_a_stored_op_id_fails_alone,
    a_request_sent_twice_at_once_never_acknowledges_a_rejected_op,
    concurrent_pushes_from_many_phones_commit_together_without_losing_a_value,
    concurrent_offline_edits_end_as_a_visible_conflict_in_both_orders,
    a_retried_batch_is_duplicate_not_a_second_copy,
    a_gap_is_held_not_applied,
    a_signed_section_rejects_later_edits_and_returns_them,
    inspectors_cannot_write_other_departments,
    township_officers_see_and_write_only_their_township,
    pull_is_paginated_and_resumes_from_the_cursor,
    a_restored_phone_reusing_sequence_numbers_gets_its_ops_back,
    bad_sync_requests_get_clear_errors,
);
