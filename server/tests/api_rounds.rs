//! Acceptance rounds: a round's record appears in the sync feed, departments fill it offline
//! against its template version (bad answers come back with a reason), the verdict follows the
//! template's rule, and a re-inspection is a new round linked to the previous one.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, Phone, TestApp};
use serde_json::json;
use sync_protocol::{EntityId, OpResult, RejectCode, Value};
use uuid::Uuid;
use yanshou_server::model::Role;

async fn a_round_is_filled_offline_against_its_template_and_judged(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("office", Role::CountyOffice).await;
    app.user("sixi", Role::TownshipOfficer).await;
    app.user("lin", Role::DepartmentInspector).await; // forestry
    let office = app.login("office").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let township = app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mine = app
        .approved_cancel_mine(&office, &township, "C-ROUND-1")
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
    assert_eq!(round["round_no"], 1);
    assert_eq!(round["template_ref"], "shanggao-2023@2023.1");
    let record = EntityId(Uuid::parse_str(round["id"].as_str().unwrap()).unwrap());

    // The forestry inspector's phone pulls the record and fills the forestry section.
    let mut phone = Phone::enroll(&app, "lin").await;
    phone.sync(&app).await;
    let header = &phone.replica.confirmed()[&record];
    assert_eq!(
        header.value("template").and_then(Value::as_str),
        round["template_ref"].as_str()
    );
    assert_eq!(
        header.value("mine_name").and_then(Value::as_str),
        Some("大岭石灰岩矿")
    );

    let keys: Vec<String> = yanshou_server::rules::template::Template::default_2023()
        .unwrap()
        .field_keys(yanshou_server::model::Disposition::Cancel)
        .into_iter()
        .filter(|k| k.starts_with("forestry/"))
        .collect();
    assert!(!keys.is_empty());
    let cover = keys
        .iter()
        .find(|k| k.starts_with("forestry/19."))
        .unwrap()
        .clone();
    phone.set(record, &cover, "72"); // below the 80 % threshold
    phone.set(record, "forestry/19.nonsense", "1");
    phone.set(record, &cover, "eighty");
    phone.set(record, "template", "other@1");
    let results = phone.sync(&app).await;
    let codes: Vec<Option<RejectCode>> = results
        .iter()
        .map(|r| match r {
            OpResult::Rejected { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(RejectCode::UnknownField),
            Some(RejectCode::InvalidOp),
            Some(RejectCode::Forbidden)
        ],
        "{results:?}"
    );
    assert_eq!(
        phone.replica.rejections().len(),
        3,
        "bad answers come back to the phone"
    );

    let (s, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}", record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["verdict"]["conclusion"], "rectify_by_deadline");
    let failing = view["verdict"]["failing"].as_array().unwrap();
    let cover_problem = failing
        .iter()
        .find(|p| p["field_key"] == json!(cover))
        .expect("the low cover is a failing item");
    assert_eq!(cover_problem["reason"]["kind"], "threshold_not_met");

    // The workflow's acceptance outcome is checked against the record when it names a round.
    let record_acceptance = |round: String| {
        json!({"transition": "record_acceptance", "round_id": round,
               "verdict": {"verdict": "passed", "expert_letter_signed": true}})
    };
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/transitions"),
            Some(&office),
            Some(record_acceptance(record.0.to_string())),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "record_not_signed");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("林业"),
        "{body}"
    );
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/transitions"),
            Some(&office),
            Some(json!({"transition": "approve", "round_id": record.0})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "round_id");

    // A re-inspection is the next round, linked to this one.
    let (s, second) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/rounds"),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(second["round_no"], 2);
    assert_eq!(second["previous_round_id"], round["id"]);
    let (_, list) = app
        .call(
            Method::GET,
            &format!("/api/v1/mines/{mine}/rounds"),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Inspectors fill records; they do not open rounds.
    let inspector = app.login("lin").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/rounds"),
            Some(&inspector),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Every item takes a remark (备注) and a rectification requirement (整改要求) from the inspector of
/// its section; other sections' items and items that do not exist are refused with a reason.
async fn inspectors_write_a_remark_and_a_rectification_requirement_per_item(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("office", Role::CountyOffice).await;
    app.user("sixi", Role::TownshipOfficer).await;
    app.user("lin", Role::DepartmentInspector).await; // forestry
    let office = app.login("office").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let township = app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = app
        .approved_cancel_mine(&office, &township, "C-ROUND-1")
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
    let record = EntityId(Uuid::parse_str(round["id"].as_str().unwrap()).unwrap());
    let template = yanshou_server::rules::template::Template::default_2023().unwrap();
    let forestry_item = template
        .fields(yanshou_server::model::Disposition::Cancel)
        .iter()
        .find(|f| f.section.department.code() == "forestry")
        .unwrap()
        .item
        .number;
    let remark = format!("forestry/{forestry_item}.remark");
    let rectification = format!("forestry/{forestry_item}.rectification");

    let mut phone = Phone::enroll(&app, "lin").await;
    phone.sync(&app).await;
    phone.set(record, &remark, "东侧边坡补植苗木长势较差");
    phone.set(record, &rectification, "2024年4月底前补植并提交成活率报告");
    phone.set(record, "water_resources/14.remark", "不归林业局填写");
    phone.set(record, "forestry/999.rectification", "没有这一项");
    phone.set(record, "forestry/14.remark", "第14项属于水利");
    phone.set(record, &remark, &"长".repeat(4001));
    let results = phone.sync(&app).await;
    let codes: Vec<Option<RejectCode>> = results
        .iter()
        .map(|r| match r {
            OpResult::Rejected { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            None,
            None,
            Some(RejectCode::Forbidden),
            Some(RejectCode::UnknownField),
            Some(RejectCode::UnknownField),
            Some(RejectCode::InvalidOp),
        ],
        "{results:?}"
    );
    let state = &phone.replica.confirmed()[&record];
    assert_eq!(
        state.value(&remark).and_then(Value::as_str),
        Some("东侧边坡补植苗木长势较差")
    );
    assert_eq!(
        state.value(&rectification).and_then(Value::as_str),
        Some("2024年4月底前补植并提交成活率报告")
    );

    // null clears a text; the texts never count as answers in the verdict.
    let id = sync_protocol::OpId(Uuid::now_v7());
    let now = phone.tick();
    phone
        .replica
        .set(id, now, record, &remark, Value::Null)
        .unwrap();
    let results = phone.sync(&app).await;
    assert!(
        results
            .iter()
            .all(|r| !matches!(r, OpResult::Rejected { .. })),
        "{results:?}"
    );
    let (s, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}", record.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    let failing = view["verdict"]["failing"].as_array().unwrap();
    assert!(
        failing.iter().all(|p| {
            let key = p["field_key"].as_str().unwrap();
            !key.ends_with(".remark") && !key.ends_with(".rectification")
        }),
        "{view}"
    );
}

async fn rounds_need_an_approved_disposition(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("office", Role::CountyOffice).await;
    let office = app.login("office").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let township_id = app.store.list_townships().await.unwrap_or_default();
    let township_id = match township_id.first() {
        Some(t) => t.id,
        None => {
            app.user("sixi", Role::TownshipOfficer).await;
            app.store.list_townships().await.unwrap()[0].id
        }
    };
    let (_, mine) = app
        .call(
            Method::POST,
            "/api/v1/mines",
            Some(&office),
            Some(json!({"name": "新矿", "licence_no": "C-NEW", "holder": "某公司",
                        "township_id": township_id, "mineral": "石灰岩", "mining_method": "露天开采"})),
        )
        .await;
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", mine["id"].as_str().unwrap()),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "no_disposition");
}

async fn new_rounds_use_the_configured_template_and_old_records_keep_theirs(b: Backend) {
    const V2: &str = "shanggao-2023@2024.1";
    let app = TestApp::with_settings(b, |s| s.acceptance_template = V2.into()).await;
    let source = yanshou_server::rules::template::DEFAULT_2023_TOML
        .replace("version = \"2023.1\"", "version = \"2024.1\"");
    assert_ne!(source, yanshou_server::rules::template::DEFAULT_2023_TOML);
    app.store
        .ensure_template(V2, &source, app.state.clock.now_ms())
        .await
        .unwrap();
    app.user("office", Role::CountyOffice).await;
    app.user("sixi", Role::TownshipOfficer).await;
    let office = app.login("office").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let township = app.login("sixi").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = app
        .approved_cancel_mine(&office, &township, "C-ROUND-1")
        .await;
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{mine}/rounds"),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    assert_eq!(round["template_ref"], V2);
    let (s, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}", round["id"].as_str().unwrap()),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["verdict"]["template"], V2);
}

both_backends!(
    new_rounds_use_the_configured_template_and_old_records_keep_theirs,
    a_round_is_filled_offline_against_its_template_and_judged,
    rounds_need_an_approved_disposition,
    inspectors_write_a_remark_and_a_rectification_requirement_per_item,
);
