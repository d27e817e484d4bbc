//! The mine registry and the disposition workflow through the HTTP API, on SQLite and PostgreSQL:
//! a 注销 mine from disposition to licence cancellation, a 延续 mine through its extension and its
//! lapse, a failed acceptance followed by a passing re-inspection, the dashboard's overdue list on
//! chosen dates, licence boundaries in Gauss-Krüger coordinates, CSV import/export, case records.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use chrono::NaiveDate;
use common::{Backend, TestApp, TestDb};
use serde_json::{Value, json};
use yanshou_server::{clock::ManualClock, model::Role};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

struct County {
    app: TestApp,
    clock: Arc<ManualClock>,
    office: String,
    township: String,
    holder: String,
    township_id: String,
}

async fn county(b: Backend) -> County {
    let db = TestDb::new(b).await;
    let clock = ManualClock::new(date("2023-11-01"));
    let state = db.state_with_clock(clock.clone()).await;
    let mut app = TestApp::from_state(state);
    app.db = Some(db);
    let office = app.token_for("office", Role::CountyOffice).await;
    let township = app.token_for("sixi", Role::TownshipOfficer).await;
    let holder = app.token_for("holder", Role::Operator).await;
    let township_id = app.store.list_townships().await.unwrap()[0].id.to_string();
    County {
        app,
        clock,
        office,
        township,
        holder,
        township_id,
    }
}

impl County {
    async fn mine(&self, licence: &str) -> String {
        let (s, body) = self
            .app
            .call(
                Method::POST,
                "/api/v1/mines",
                Some(&self.office),
                Some(json!({
                    "name": format!("{licence} 采石场"), "licence_no": licence,
                    "holder": "上高县某石业有限公司", "township_id": self.township_id,
                    "mineral": "建筑用石灰岩", "mining_method": "露天开采", "area_ha": "3.2561"
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Take a step on `on`; returns (status, body).
    async fn step(&self, who: &str, mine: &str, on: &str, t: Value) -> (StatusCode, Value) {
        self.clock.set(date(on));
        let token = match who {
            "office" => &self.office,
            "township" => &self.township,
            _ => &self.holder,
        };
        self.app
            .call(
                Method::POST,
                &format!("/api/v1/mines/{mine}/transitions"),
                Some(token),
                Some(t),
            )
            .await
    }

    /// The county office binds `mine` to an account (`null` unbinds).
    async fn bind(&self, mine: &str, user_id: Value) -> (StatusCode, Value) {
        self.app
            .call(
                Method::PUT,
                &format!("/api/v1/mines/{mine}/holder"),
                Some(&self.office),
                Some(json!({ "user_id": user_id })),
            )
            .await
    }

    async fn holder_id(&self) -> String {
        let (_, me) = self
            .app
            .call(Method::GET, "/api/v1/me", Some(&self.holder), None)
            .await;
        me["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.app.call(Method::GET, path, Some(token), None).await
    }

    async fn ok(&self, who: &str, mine: &str, on: &str, t: Value, stage: &str) {
        let (s, body) = self.step(who, mine, on, t.clone()).await;
        assert_eq!(s, StatusCode::OK, "{t} on {on}: {body}");
        assert_eq!(body["facts"]["stage"], stage, "{t}");
    }

    async fn refused(
        &self,
        who: &str,
        mine: &str,
        on: &str,
        t: Value,
        status: StatusCode,
    ) -> Value {
        let (s, body) = self.step(who, mine, on, t.clone()).await;
        assert_eq!(s, status, "{t} on {on}: {body}");
        body
    }
}

fn doc_record(on: &str) -> Value {
    json!({"number": "上自然资字〔2024〕3号", "issuer": "上高县自然资源局", "date": on})
}

fn closure() -> Value {
    json!({"transition": "issue_closure_decision", "decision": {
        "document_no": "上府字〔2023〕88号", "responsible_party": "上高县某石业有限公司",
        "restoration_deadline": "2024-03-31", "supervisor": "泗溪镇人民政府",
        "cancellation_application_deadline": "2024-04-30", "maintenance_party": "泗溪镇人民政府"}})
}

async fn a_cancel_mine_from_disposition_to_licence_cancellation(b: Backend) {
    let c = county(b).await;
    let m = c.mine("C3609232009127130012345").await;
    c.ok(
        "township",
        &m,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel", "reason": "资源枯竭"}),
        "disposition_proposed",
    )
    .await;
    c.refused(
        "township",
        &m,
        "2023-11-03",
        json!({"transition": "approve"}),
        StatusCode::FORBIDDEN,
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-10",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    c.ok("office", &m, "2023-11-20", closure(), "closure_decided")
        .await;
    c.ok(
        "township",
        &m,
        "2023-12-20",
        json!({"transition": "compile_plan"}),
        "plan_compiled",
    )
    .await;
    c.ok(
        "township",
        &m,
        "2024-03-01",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    let body = c.refused("office", &m, "2024-03-20", json!({"transition": "record_acceptance", "verdict": {"verdict": "passed", "expert_letter_signed": false}}), StatusCode::CONFLICT).await;
    assert_eq!(body["error"]["code"], "transition_not_allowed");
    c.ok("office", &m, "2024-03-20", json!({"transition": "record_acceptance", "verdict": {"verdict": "passed", "expert_letter_signed": true}}), "acceptance_passed").await;
    // The holder applies, once the county office has bound the mine to their account.
    c.refused(
        "holder",
        &m,
        "2024-04-10",
        json!({"transition": "apply_cancellation"}),
        StatusCode::NOT_FOUND,
    )
    .await;
    let (s, body) = c.bind(&m, json!(c.holder_id().await)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Officials date steps from paper; a holder acts on the day.
    c.refused(
        "holder",
        &m,
        "2024-04-10",
        json!({"transition": "apply_cancellation", "effective_date": "2024-04-01"}),
        StatusCode::FORBIDDEN,
    )
    .await;
    c.ok(
        "holder",
        &m,
        "2024-04-10",
        json!({"transition": "apply_cancellation"}),
        "cancellation_applied",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-04-20",
        json!({"transition": "cancel_licence"}),
        "licence_cancelled",
    )
    .await;

    let (s, detail) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/mines/{m}?as_of=2024-05-01"),
            Some(&c.office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let events = detail["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        8,
        "every accepted transition is an audit event"
    );
    assert_eq!(events[0]["reason"], "资源枯竭");
    assert_eq!(events[0]["from_stage"], "registered");
    assert_eq!(events[7]["to_stage"], "licence_cancelled");
    assert_eq!(events[7]["as_of"], "2024-04-20");
    assert_eq!(
        detail["facts"]["closure_decision"]["maintenance_party"],
        "泗溪镇人民政府"
    );
    assert_eq!(detail["deadlines"][0]["key"], "maintenance_period");
}

async fn a_continue_mine_through_its_extension_and_lapse(b: Backend) {
    let c = county(b).await;
    let m = c.mine("C3609232010047130099999").await;
    c.ok(
        "township",
        &m,
        "2023-08-20",
        json!({"transition": "propose", "disposition": "continue"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-08-31",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    c.ok(
        "township",
        &m,
        "2023-10-01",
        json!({"transition": "record_approval_document", "document": "development_plan",
               "record": {"number": "宜自然资矿审〔2023〕41号", "issuer": "宜春市自然资源局",
                          "date": "2023-09-28"}}),
        "disposition_approved",
    )
    .await;
    c.refused(
        "office",
        &m,
        "2024-02-29",
        json!({"transition": "grant_extension"}),
        StatusCode::CONFLICT,
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-03-01",
        json!({"transition": "grant_extension"}),
        "disposition_approved",
    )
    .await;
    c.refused(
        "office",
        &m,
        "2024-03-02",
        json!({"transition": "grant_extension"}),
        StatusCode::CONFLICT,
    )
    .await;
    c.refused(
        "office",
        &m,
        "2024-05-29",
        json!({"transition": "deem_abandoned"}),
        StatusCode::CONFLICT,
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-05-30",
        json!({"transition": "deem_abandoned"}),
        "right_abandoned",
    )
    .await;
    c.ok(
        "township",
        &m,
        "2024-06-01",
        json!({"transition": "apply_cancellation"}),
        "cancellation_applied",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-06-10",
        json!({"transition": "cancel_licence"}),
        "licence_cancelled",
    )
    .await;
}

async fn a_failed_acceptance_then_a_passing_reinspection(b: Backend) {
    let c = county(b).await;
    let m = c.mine("C3609232011057130011111").await;
    c.ok(
        "township",
        &m,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-10",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    c.ok("office", &m, "2023-11-20", closure(), "closure_decided")
        .await;
    c.ok(
        "township",
        &m,
        "2023-12-20",
        json!({"transition": "compile_plan"}),
        "plan_compiled",
    )
    .await;
    c.ok(
        "township",
        &m,
        "2024-02-01",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    c.ok("office", &m, "2024-02-10", json!({"transition": "record_acceptance", "verdict": {"verdict": "rectify", "requirements": "截排水沟淤堵，沉淀池未清淤", "reinspect_by": "2024-03-10"}}), "rectification_required").await;
    // The holder, bound to the mine, sees what to fix and by when.
    let (s, body) = c.bind(&m, json!(c.holder_id().await)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, seen) = c.get(&c.holder, &format!("/api/v1/mines/{m}")).await;
    assert_eq!(s, StatusCode::OK, "{seen}");
    assert_eq!(
        seen["facts"]["rectification"]["requirements"],
        "截排水沟淤堵，沉淀池未清淤"
    );
    let reinspection = seen["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "reinspection")
        .unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(reinspection["due"], "2024-03-10");
    assert_eq!(reinspection["responsible"], "holder");
    c.ok(
        "township",
        &m,
        "2024-03-05",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    c.ok("office", &m, "2024-03-10", json!({"transition": "record_acceptance", "verdict": {"verdict": "passed", "expert_letter_signed": true}}), "acceptance_passed").await;
    // A stale version is refused instead of acting on old facts.
    let body = c
        .refused(
            "office",
            &m,
            "2024-03-11",
            json!({"transition": "cancel_licence", "version": 1}),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(body["error"]["code"], "stale_version");
}

async fn the_dashboard_lists_overdue_and_due_soon_mines_on_chosen_dates(b: Backend) {
    let c = county(b).await;
    let late = c.mine("C-LATE").await;
    let fine = c.mine("C-FINE").await;
    let _undecided = c.mine("C-NEW").await;
    for m in [&late, &fine] {
        c.ok(
            "township",
            m,
            "2023-08-20",
            json!({"transition": "propose", "disposition": "continue"}),
            "disposition_proposed",
        )
        .await;
        c.ok(
            "office",
            m,
            "2023-08-31",
            json!({"transition": "approve"}),
            "disposition_approved",
        )
        .await;
    }
    for doc in [
        "development_plan",
        "two_in_one_plan",
        "environmental_impact_report",
        "soil_conservation_plan",
    ] {
        c.ok(
            "township",
            &fine,
            "2024-01-10",
            json!({"transition": "record_approval_document", "document": doc,
                   "record": doc_record("2024-01-05")}),
            "disposition_approved",
        )
        .await;
    }
    let board = |as_of: &'static str| {
        let app = &c.app;
        let token = c.office.clone();
        async move {
            let (s, body) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/dashboard?as_of={as_of}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{body}");
            body
        }
    };
    let keys = |list: &Value| -> Vec<(String, String, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["mine"].as_str().unwrap().to_owned(),
                    i["key"].as_str().unwrap().to_owned(),
                    i["due"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let feb = board("2024-02-10").await;
    assert_eq!(feb["mines"], 3);
    assert_eq!(feb["by_disposition"]["continue"], 2);
    assert_eq!(feb["by_disposition"]["undecided"], 1);
    assert!(keys(&feb["overdue"]).is_empty(), "{}", feb["overdue"]);
    assert_eq!(
        keys(&feb["due_soon"]),
        [(
            "C-LATE 采石场".into(),
            "approval_documents".into(),
            "2024-02-29".into()
        )]
    );
    let march = board("2024-03-01").await;
    assert_eq!(
        keys(&march["overdue"]),
        [(
            "C-LATE 采石场".into(),
            "approval_documents".into(),
            "2024-02-29".into()
        )]
    );
    let due_soon = keys(&march["due_soon"]);
    assert!(due_soon.contains(&(
        "C-FINE 采石场".into(),
        "continue_unused_areas".into(),
        "2024-03-31".into()
    )));
    assert_eq!(march["townships"][0]["overdue"], 1);
    assert_eq!(march["townships"][0]["mines"], 3);
    // Township officers see their township's dashboard; inspectors none.
    let (s, _) = c
        .app
        .call(Method::GET, "/api/v1/dashboard", Some(&c.township), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let inspector = c.app.token_for("insp", Role::DepartmentInspector).await;
    let (s, _) = c
        .app
        .call(Method::GET, "/api/v1/dashboard", Some(&inspector), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn licence_boundaries_in_gauss_kruger_are_converted_and_bad_lists_reported(b: Backend) {
    let c = county(b).await;
    let base = json!({"name": "大岭采石场", "licence_no": "GK-1", "holder": "某公司",
        "township_id": c.township_id, "mineral": "石灰岩", "mining_method": "露天开采"});
    let mut good = base.clone();
    good["boundary"] = json!({"format": "gauss_kruger", "points":
        "1, 3124696.73, 38579727.20\n2, 3124696.73, 38579927.20\n3, 3124896.73, 38579927.20\n4, 3124896.73, 38579727.20"});
    let (s, mine) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(good))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    let boundary = &mine["boundary"];
    assert_eq!(boundary["datum"], "cgcs2000");
    let first = &boundary["corners"][0]["position"];
    // pyproj/PROJ reference for this corner: 28.23449999792 N, 114.81230003234 E.
    let (lat, lon) = (
        first["lat"].as_f64().unwrap(),
        first["lon"].as_f64().unwrap(),
    );
    let (dn, de) = (
        (lat - 28.234_499_997_92) * 110_900.0,
        (lon - 114.812_300_032_34) * 98_100.0,
    );
    assert!(
        dn.abs() < 0.1 && de.abs() < 0.1,
        "off by {dn} m N, {de} m E"
    );

    let mut bad = base.clone();
    bad["licence_no"] = json!("GK-2");
    bad["boundary"] = json!({"format": "gauss_kruger", "points": "1, 3124696.73, 38579727.20\n2, 3124696.73, abc"});
    let (s, body) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(bad))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.iter().any(|f| f.contains("row 2")), "{body}");

    let mut gcj = base.clone();
    gcj["licence_no"] = json!("GK-3");
    gcj["boundary"] = json!({"format": "lat_lon", "datum": "gcj02", "points": "28.2,114.8\n28.3,114.8\n28.3,114.9"});
    let (s, body) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(gcj))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("GCJ-02"), "{body}");

    let dup = base.clone();
    let (s, body) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(dup))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "licence_taken");
}

async fn csv_import_reports_every_bad_row_then_imports_and_exports(b: Backend) {
    let c = county(b).await;
    let township = c.app.store.list_townships().await.unwrap()[0].name.clone();
    let post_csv = |text: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/mines/import")
            .header(header::AUTHORIZATION, format!("Bearer {}", c.office))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text))
            .unwrap()
    };
    let header_row =
        "矿山名称,采矿许可证号,采矿权人,所在乡镇,矿种,开采方式,矿区面积(公顷),坐标系,带号,拐点坐标";
    let bad = format!(
        "{header_row}\n\
         甲矿,L-1,甲公司,{township},石灰岩,露天开采,1.5,CGCS2000,,\"1,3124696.73,38579727.20;2,3124696.73,38579927.20;3,3124896.73,38579927.20\"\n\
         乙矿,L-1,乙公司,{township},石灰岩,露天开采,abc,,,\n\
         丙矿,L-3,丙公司,不存在镇,石灰岩,露天开采,,,,\n\
         丁矿,L-4,丁公司,{township},石灰岩,露天开采,,CGCS2000,,\"1,3124696.73,38579727.20;2,3124696.73,38579927.20\"\n"
    );
    let (s, report) = c.app.send(post_csv(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{report}");
    assert_eq!(report["imported"], 0);
    let problems: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(problems.contains(&(3, "licence_no".into())), "{problems:?}");
    assert!(problems.contains(&(3, "area_ha".into())), "{problems:?}");
    assert!(problems.contains(&(4, "township".into())), "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|(r, f)| *r == 5 && f.starts_with("boundary")),
        "{problems:?}"
    );
    assert!(
        c.app.store.list_mines(None).await.unwrap().is_empty(),
        "all or nothing"
    );

    let good = format!(
        "{header_row}\n\
         甲矿,L-1,甲公司,{township},石灰岩,露天开采,1.5,CGCS2000,,\"1,3124696.73,38579727.20;2,3124696.73,38579927.20;3,3124896.73,38579927.20\"\n\
         乙矿,L-2,乙公司,{township},石灰岩,露天开采,2,,,\n"
    );
    let (s, report) = c.app.send(post_csv(good)).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 2);
    // 甲矿 declares 1.5 ha; its three corners enclose 2 ha: imported, with a warning.
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["warnings"][0]["row"], 2);
    assert_eq!(report["warnings"][0]["field"], "area_ha");
    assert!(
        report["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("enclose 2 ha"),
        "{report}"
    );

    let res = tower::ServiceExt::oneshot(
        c.app.router.clone(),
        Request::builder()
            .uri("/api/v1/mines/export")
            .header(header::AUTHORIZATION, format!("Bearer {}", c.office))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("\u{feff}矿山名称,采矿许可证号"), "{text}");
    assert!(text.contains("甲矿,L-1,甲公司"), "{text}");
    assert!(text.contains("已登记"), "{text}");
}

async fn case_records_and_the_generated_announcement(b: Backend) {
    let c = county(b).await;
    let m = c.mine("C-ANN").await;
    let (s, case) = c
        .app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{m}/cases"),
            Some(&c.office),
            Some(
                json!({"kind": "collective_study", "question": "采矿权人失联，整治由谁实施？",
                        "decision": "由泗溪镇代为实施，费用依法追偿", "date": "2024-01-15",
                        "participants": ["自然资源局", "生态环境局", "泗溪镇"]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{case}");
    let (s, _) = c
        .app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{m}/cases"),
            Some(&c.office),
            Some(json!({"kind": "referral", "what": "", "to": "县检察院", "evidence": []})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Lapsed rectification → announcement with generated text.
    c.ok(
        "township",
        &m,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-10",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    // The announcement rests on the closure decision: none yet, none announced.
    let body = c
        .refused(
            "office",
            &m,
            "2024-04-01",
            json!({"transition": "announce"}),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(body.to_string().contains("关闭决定文书"), "{body}");
    c.ok(
        "office",
        &m,
        "2024-04-01",
        json!({"effective_date": "2023-11-20", "transition": "issue_closure_decision",
               "decision": closure()["decision"]}),
        "closure_decided",
    )
    .await;
    c.refused(
        "office",
        &m,
        "2024-03-31",
        json!({"transition": "announce"}),
        StatusCode::CONFLICT,
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-04-01",
        json!({"transition": "announce"}),
        "announced",
    )
    .await;
    let (_, detail) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/mines/{m}"),
            Some(&c.office),
            None,
        )
        .await;
    let cases = detail["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let text = cases[1]["data"]["text"].as_str().unwrap();
    assert!(text.contains("C-ANN"), "{text}");
    assert!(text.contains("上府办发〔2023〕35号"), "{text}");
    assert!(text.contains("视为你单位自动放弃矿权"), "{text}");
    assert!(text.ends_with("上高县人民政府\n2024年4月1日"), "{text}");
    // Another township's officer cannot see the mine.
    let other = c.app.store.list_townships().await.unwrap();
    assert_eq!(other.len(), 1);
    let (s, _) = c
        .app
        .call(
            Method::GET,
            &format!("/api/v1/mines/{m}"),
            Some(&c.holder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A mining-right holder sees only the mines the county office bound to their account, and
/// loses them when unbound; only an `operator` account can be bound, only by the county office.
async fn holders_see_and_act_on_the_mines_bound_to_them(b: Backend) {
    let c = county(b).await;
    let mine_a = c.mine("C3609232009127130010001").await;
    let mine_b = c.mine("C3609232009127130010002").await;
    let holder_id = c.holder_id().await;
    let (s, list) = c.get(&c.holder, "/api/v1/mines").await;
    assert_eq!((s, list), (StatusCode::OK, json!([])), "nothing bound yet");

    let (s, body) = c
        .app
        .call(
            Method::PUT,
            &format!("/api/v1/mines/{mine_a}/holder"),
            Some(&c.township),
            Some(json!({ "user_id": holder_id })),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (_, me) = c.get(&c.township, "/api/v1/me").await;
    let (s, body) = c.bind(&mine_a, me["id"].clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "user_id", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator"),
        "{body}"
    );
    let (s, body) = c.bind(&mine_a, json!(uuid::Uuid::now_v7())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = c
        .bind(&uuid::Uuid::now_v7().to_string(), json!(holder_id))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, body) = c.bind(&mine_a, json!(holder_id)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["holder_user_id"], json!(holder_id));
    let (s, list) = c.get(&c.holder, "/api/v1/mines").await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine_a.as_str()]);
    let (s, detail) = c.get(&c.holder, &format!("/api/v1/mines/{mine_a}")).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    for path in [
        format!("/api/v1/mines/{mine_b}"),
        format!("/api/v1/mines/{mine_b}/rounds"),
    ] {
        let (s, body) = c.get(&c.holder, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (s, rounds) = c
        .get(&c.holder, &format!("/api/v1/mines/{mine_a}/rounds"))
        .await;
    assert_eq!((s, rounds), (StatusCode::OK, json!([])));
    // Bound is not promoted: the county's steps stay the county's.
    c.refused(
        "holder",
        &mine_a,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel"}),
        StatusCode::FORBIDDEN,
    )
    .await;
    // The dashboard stays the county's and townships'.
    let (s, _) = c.get(&c.holder, "/api/v1/dashboard").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, body) = c.bind(&mine_a, Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["holder_user_id"], Value::Null);
    let (s, list) = c.get(&c.holder, "/api/v1/mines").await;
    assert_eq!((s, list), (StatusCode::OK, json!([])));
    let (s, _) = c.get(&c.holder, &format!("/api/v1/mines/{mine_a}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "unbound: gone again");
}

/// A cell a spreadsheet would run as a formula is exported with a leading `'`, the export starts
/// with a byte order mark (Excel on a Chinese Windows reads it as UTF-8), and importing the
/// exported file gives the original values back.
async fn csv_export_neutralises_formulas_and_imports_back(b: Backend) {
    let c = county(b).await;
    let township = c.app.store.list_townships().await.unwrap()[0].name.clone();
    let post_csv = |app: &TestApp, token: &str, text: String| {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/mines/import")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text))
            .unwrap();
        let app = app.router.clone();
        async move {
            let res = tower::ServiceExt::oneshot(app, req).await.unwrap();
            res.status()
        }
    };
    let names = [
        "=HYPERLINK(\"http://x.example\",\"甲矿\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "'=已有引号",
    ];
    let mut text = String::from(
        "矿山名称,采矿许可证号,采矿权人,所在乡镇,矿种,开采方式,矿区面积(公顷),坐标系,带号,拐点坐标\n",
    );
    for (i, name) in names.iter().enumerate() {
        // An import takes one `'` off before a formula character (it undoes the export's).
        let name = if name.starts_with('\'') {
            format!("'{name}")
        } else {
            (*name).to_owned()
        };
        let quoted = name.replace('"', "\"\"");
        text.push_str(&format!(
            "\"{quoted}\",F-{i},=公司,{township},石灰岩,露天开采,,,,\n"
        ));
    }
    assert_eq!(post_csv(&c.app, &c.office, text).await, StatusCode::OK);
    let res = tower::ServiceExt::oneshot(
        c.app.router.clone(),
        Request::builder()
            .uri("/api/v1/mines/export")
            .header(header::AUTHORIZATION, format!("Bearer {}", c.office))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(
        bytes.starts_with(b"\xef\xbb\xbf"),
        "a UTF-8 byte order mark first"
    );
    let exported = String::from_utf8(bytes.to_vec()).unwrap();
    let mut reader = csv::Reader::from_reader(exported.trim_start_matches('\u{feff}').as_bytes());
    for record in reader.records() {
        let record = record.unwrap();
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a live formula: {cell:?}"
            );
        }
    }
    // The exported file imports into another county's server with the same values.
    let other = county(b).await;
    assert_eq!(
        post_csv(&other.app, &other.office, exported).await,
        StatusCode::OK
    );
    let mut got: Vec<(String, String)> = other
        .app
        .store
        .list_mines(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.holder))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = names
        .iter()
        .map(|n| ((*n).to_owned(), "=公司".to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

impl County {
    /// A mine with a real-looking name, holder and licence.
    async fn named_mine(&self, name: &str, licence: &str, holder: &str) -> String {
        let (s, body) = self
            .app
            .call(
                Method::POST,
                "/api/v1/mines",
                Some(&self.office),
                Some(json!({
                    "name": name, "licence_no": licence, "holder": holder,
                    "township_id": self.township_id, "mineral": "建筑用石灰岩",
                    "mining_method": "露天开采", "county_leader": "刘副县长"
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn board(&self, as_of: &str) -> Value {
        let (s, body) = self
            .get(&self.office, &format!("/api/v1/dashboard?as_of={as_of}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }
}

/// (mine, key, due, status-list) of a dashboard list.
fn items(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["mine"].as_str().unwrap().to_owned(),
                i["key"].as_str().unwrap().to_owned(),
                i["due"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn closure_until(restoration: &str, application: &str, no: &str) -> Value {
    json!({"transition": "issue_closure_decision", "decision": {
        "document_no": no, "responsible_party": "采矿权人",
        "restoration_deadline": restoration, "supervisor": "泗溪镇人民政府",
        "cancellation_application_deadline": application, "maintenance_party": "泗溪镇人民政府"}})
}

/// The 2023 plan walked on its own calendar: the restoration plan by 2023-12-31, the exposed
/// areas by 2024-03-31 (unless the mine's closure decision gave it longer), the township's
/// takeover by 2024-05-31, the 30-day application window, the announcement with its notice,
/// the township's application, the business licence, and a spot check in the maintenance years.
async fn the_plan_calendar_with_closure_decisions_of_their_own(b: Backend) {
    let c = county(b).await;
    let dl = c
        .named_mine(
            "泗溪镇大岭石灰岩矿",
            "C3609232009127130051001",
            "上高县大岭石业有限公司",
        )
        .await;
    let cs = c
        .named_mine(
            "泗溪镇茶山石灰岩矿",
            "C3609232021027130171013",
            "上高县茶山矿业有限公司",
        )
        .await;
    for m in [&dl, &cs] {
        c.ok(
            "township",
            m,
            "2023-11-02",
            json!({"transition": "propose", "disposition": "cancel"}),
            "disposition_proposed",
        )
        .await;
        c.ok(
            "office",
            m,
            "2023-11-10",
            json!({"transition": "approve"}),
            "disposition_approved",
        )
        .await;
    }
    c.ok("office", &dl, "2023-11-20", closure(), "closure_decided")
        .await;
    // 茶山's decision gives it until 2024-06-30 (a slope to stabilise first).
    c.ok(
        "office",
        &cs,
        "2023-11-20",
        closure_until("2024-06-30", "2024-07-31", "上府字〔2023〕102号"),
        "closure_decided",
    )
    .await;
    // 2023-12-31: the restoration plan is in time on the day itself.
    c.ok(
        "township",
        &cs,
        "2023-12-20",
        json!({"transition": "compile_plan"}),
        "plan_compiled",
    )
    .await;
    let new_year = c.board("2023-12-31").await;
    assert_eq!(
        items(&new_year["due_soon"])
            .iter()
            .filter(|i| i.1 == "restoration_plan")
            .count(),
        1,
        "{new_year}"
    );
    c.ok(
        "township",
        &dl,
        "2023-12-31",
        json!({"transition": "compile_plan"}),
        "plan_compiled",
    )
    .await;

    // 2024-03-31 passes: 大岭 is overdue (its holder must act, its county leader urges), 茶山 not.
    c.clock.set(date("2024-04-01"));
    let april = c.board("2024-04-01").await;
    assert_eq!(
        items(&april["overdue"]),
        [(
            "泗溪镇大岭石灰岩矿".into(),
            "cancel_rectification".into(),
            "2024-03-31".into()
        )],
        "{april}"
    );
    assert_eq!(april["overdue"][0]["responsible"], "holder");
    assert_eq!(
        april["overdue"][0]["responsible_name"],
        "上高县大岭石业有限公司"
    );
    assert_eq!(april["overdue"][0]["county_leader"], "刘副县长");
    for t in ["take_over", "announce"] {
        let who = if t == "take_over" {
            "township"
        } else {
            "office"
        };
        let body = c
            .refused(
                who,
                &cs,
                "2024-04-01",
                json!({"transition": t}),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(body["error"]["code"], "transition_not_allowed", "{body}");
    }
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{cs}")).await;
    let rect = detail["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "cancel_rectification")
        .unwrap();
    assert_eq!(
        (rect["due"].clone(), rect["status"].clone()),
        (json!("2024-06-30"), json!("pending"))
    );
    let body = c
        .refused(
            "township",
            &dl,
            "2024-04-03",
            json!({"transition": "take_over", "effective_date": "2024-04-04"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(
        body["error"]["fields"][0]["field"], "effective_date",
        "{body}"
    );
    let body = c
        .refused(
            "township",
            &dl,
            "2024-04-03",
            json!({"transition": "take_over", "effective_date": "2023-12-30"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(
        body.to_string().contains("previous step (2023-12-31)"),
        "{body}"
    );
    // The township took over on 2024-04-02 on paper; the server hears of it a day later.
    let (s, body) = c
        .step(
            "township",
            &dl,
            "2024-04-03",
            json!({"transition": "take_over", "effective_date": "2024-04-02"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{dl}")).await;
    let last = detail["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["as_of"].clone(), last["recorded_on"].clone()),
        (json!("2024-04-02"), json!("2024-04-03"))
    );
    let takeover = detail["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "cancel_rectification")
        .unwrap();
    assert_eq!(takeover["responsible"], "township", "{detail}");

    // The township rectifies before its 2024-05-31; a 限期整改 sets a re-inspection date first.
    c.ok(
        "township",
        &dl,
        "2024-04-20",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    c.ok(
        "office",
        &dl,
        "2024-04-25",
        json!({"transition": "record_acceptance", "verdict": {
        "verdict": "rectify", "requirements": "截排水沟淤堵", "reinspect_by": "2024-05-10"}}),
        "rectification_required",
    )
    .await;
    let may = c.board("2024-05-11").await;
    let reinspection = may["overdue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "reinspection")
        .unwrap_or_else(|| panic!("{may}"));
    assert_eq!(reinspection["due"], "2024-05-10");
    assert_eq!(reinspection["responsible_name"], "泗溪镇");
    c.ok(
        "township",
        &dl,
        "2024-05-12",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    c.ok(
        "office",
        &dl,
        "2024-05-20",
        json!({"transition": "record_acceptance", "verdict": {
        "verdict": "passed", "expert_letter_signed": true}}),
        "acceptance_passed",
    )
    .await;
    // 2024-05-31 passes: 茶山's takeover deadline moved with its decision (2024-08-30).
    let june = c.board("2024-06-01").await;
    assert!(items(&june["overdue"]).is_empty(), "{june}");

    // The 30-day window: accepted 2024-05-20, the application is due 2024-06-19 (later than
    // the decision's 2024-04-30). The announcement, entered on 2024-06-25, is dated 2024-06-20.
    c.refused(
        "office",
        &dl,
        "2024-06-19",
        json!({"transition": "announce"}),
        StatusCode::CONFLICT,
    )
    .await;
    let (s, body) = c
        .step(
            "office",
            &dl,
            "2024-06-25",
            json!({"transition": "announce", "effective_date": "2024-06-20"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["facts"]["announced_on"], "2024-06-20");
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{dl}")).await;
    let notice = detail["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "announcement")
        .unwrap();
    assert_eq!(notice["data"]["date"], "2024-06-20");
    assert_eq!(
        notice["data"]["text"],
        "上高县人民政府关于上高县大岭石业有限公司泗溪镇大岭石灰岩矿采矿许可证注销的公告\n\n\
         上高县大岭石业有限公司：\n\
         \u{3000}\u{3000}你单位泗溪镇大岭石灰岩矿（采矿许可证号：C3609232009127130051001）位于上高县泗溪镇，\
         为停产非煤矿山。上高县人民政府已下达关闭决定（上府字〔2023〕88号），决定予以注销关闭。\
         你单位矿山生态环境整治任务已于2024年5月20日通过验收，应在30日内向相关部门提交采矿权注销申请\
         （申请期限至2024年6月19日），逾期未提交。\
         根据《上高县停产非煤矿山生态环境整治专项行动方案》（上府办发〔2023〕35号）关于\
         “完成矿山生态环境整治任务后，原采矿权人在30日内向相关部门提交注销申请”和\
         “逾期未完成矿山生态环境整治任务的或者完成整治任务未按时申请注销的，在县政府网站上发布注销公告后，\
         视为采矿权人自动放弃矿权”的规定，现予公告：自本公告发布之日起，视为你单位自动放弃矿权，\
         由上高县泗溪镇作出注销矿权申请后，依法注销采矿许可证、营业执照等证照。\n\
         \u{3000}\u{3000}特此公告。\n\n\
         上高县人民政府\n\
         2024年6月20日"
    );
    let waiting = c.board("2024-06-25").await;
    assert_eq!(
        waiting["announced"][0]["mine"], "泗溪镇大岭石灰岩矿",
        "{waiting}"
    );
    assert_eq!(waiting["announced"][0]["next_step"], "deem_abandoned");
    assert_eq!(waiting["announced"][0]["announced_on"], "2024-06-20");

    // 茶山 lapses only after its own 2024-06-30.
    c.refused(
        "township",
        &cs,
        "2024-06-30",
        json!({"transition": "take_over"}),
        StatusCode::CONFLICT,
    )
    .await;
    c.ok(
        "township",
        &cs,
        "2024-07-01",
        json!({"transition": "take_over"}),
        "plan_compiled",
    )
    .await;
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{cs}")).await;
    let takeover = detail["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "township_takeover")
        .unwrap();
    assert_eq!(takeover["due"], "2024-08-30", "{detail}");

    // Abandoned → the township applies → cancelled → 市场监督管理局 cancels the business licence.
    c.ok(
        "office",
        &dl,
        "2024-07-21",
        json!({"transition": "deem_abandoned"}),
        "right_abandoned",
    )
    .await;
    c.ok(
        "township",
        &dl,
        "2024-07-25",
        json!({"transition": "apply_cancellation"}),
        "cancellation_applied",
    )
    .await;
    c.ok(
        "office",
        &dl,
        "2024-08-01",
        json!({"transition": "cancel_licence"}),
        "licence_cancelled",
    )
    .await;
    let (s, body) = c
        .step(
            "office",
            &dl,
            "2024-08-12",
            json!({"transition": "record_business_licence_cancellation",
            "notice": {"number": "（上）登记企销字〔2024〕第88号", "issuer": "上高县市场监督管理局",
                       "date": "2024-08-09"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["facts"]["business_licence_cancellation"]["issuer"],
        "上高县市场监督管理局"
    );

    // A spot check in the maintenance years (until 2027-08-01), none after them.
    c.clock.set(date("2025-06-01"));
    let (s, round) = c
        .app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{dl}/rounds"),
            Some(&c.office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let round_id = uuid::Uuid::parse_str(round["id"].as_str().unwrap()).unwrap();
    let record = c
        .app
        .store
        .sync_entities(&[sync_protocol::EntityId(round_id)])
        .await
        .unwrap();
    assert_eq!(
        record[0].fields["purpose"].value,
        sync_protocol::Value::from("maintenance_spot_check")
    );
    c.clock.set(date("2027-08-02"));
    let (s, body) = c
        .app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{dl}/rounds"),
            Some(&c.office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_inspectable");

    // The dashboard of a past day is that day's: stage counts from the audit trail.
    let past = c.board("2023-11-05").await;
    assert_eq!(past["snapshot"], true);
    assert_eq!(
        past["by_stage"],
        json!({"disposition_proposed": 2}),
        "{past}"
    );
    assert_eq!(
        past["awaiting_disposition"].as_array().unwrap().len(),
        2,
        "{past}"
    );
    assert_eq!(past["awaiting_disposition"][0]["next_step"], "approve");
    let jan = c.board("2024-01-15").await;
    assert_eq!(jan["by_stage"], json!({"plan_compiled": 2}), "{jan}");
    let summer = c.board("2024-06-19").await;
    assert_eq!(
        summer["by_stage"],
        json!({"acceptance_passed": 1, "plan_compiled": 1}),
        "{summer}"
    );
    let announced = c.board("2024-06-22").await;
    assert_eq!(announced["by_stage"]["announced"], 1, "{announced}");
    assert_eq!(announced["announced"][0]["next_step"], "deem_abandoned");
}

/// A decision issued today with a 2027 deadline is not lapsed today; one whose deadline is
/// already past is refused.
async fn a_decision_issued_today_cannot_be_announced_as_lapsed_today(b: Backend) {
    let c = county(b).await;
    let m = c
        .named_mine("泗溪镇岭下采石场", "C-2027", "上高县岭下石业有限公司")
        .await;
    c.ok(
        "township",
        &m,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-10",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    let body = c
        .refused("office", &m, "2024-04-05", closure(), StatusCode::CONFLICT)
        .await;
    assert!(body.to_string().contains("already past"), "{body}");
    c.ok(
        "office",
        &m,
        "2024-04-05",
        closure_until("2027-06-30", "2027-07-31", "上府字〔2024〕7号"),
        "closure_decided",
    )
    .await;
    c.refused(
        "office",
        &m,
        "2024-04-05",
        json!({"transition": "announce"}),
        StatusCode::CONFLICT,
    )
    .await;
    let board = c.board("2024-04-05").await;
    assert!(
        !items(&board["overdue"])
            .iter()
            .any(|i| i.1 == "cancel_rectification"),
        "{board}"
    );
}

/// A mine follows the campaign chosen at registration (one imported like `yanshou campaign
/// import` does); an unknown one is a 400 naming the field. A declared area far from the
/// boundary's is accepted with a warning.
async fn mines_choose_their_campaign_and_are_warned_about_their_area(b: Backend) {
    let c = county(b).await;
    let base = json!({"name": "大岭采石场", "licence_no": "CAMP-1", "holder": "某公司",
        "township_id": c.township_id, "mineral": "石灰岩", "mining_method": "露天开采"});
    // The OpenAPI document says so.
    let (_, doc) = c
        .app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["NewMine"]["properties"]["campaign_id"].is_object(),
        "{}",
        schemas["NewMine"]
    );
    assert!(
        schemas["CreatedMine"].to_string().contains("warnings"),
        "{}",
        schemas["CreatedMine"]
    );
    assert!(
        schemas["TransitionRequest"]
            .to_string()
            .contains("effective_date"),
        "{}",
        schemas["TransitionRequest"]
    );
    let mut unknown = base.clone();
    unknown["campaign_id"] = json!("shanggao-2031");
    let (s, body) = c
        .app
        .call(
            Method::POST,
            "/api/v1/mines",
            Some(&c.office),
            Some(unknown),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "campaign_id", "{body}");
    assert!(body.to_string().contains("shanggao-2031"), "{body}");

    let source = yanshou_server::rules::campaign::SHANGGAO_2023_TOML
        .replace("id = \"shanggao-2023\"", "id = \"shanggao-2024\"")
        .replace("due = 2024-03-31", "due = 2024-09-30");
    let parsed = yanshou_server::rules::campaign::Campaign::parse(&source).unwrap();
    c.app
        .store
        .ensure_campaign(&parsed.id, &parsed.title, &source, 0)
        .await
        .unwrap();
    let mut chosen = base.clone();
    chosen["campaign_id"] = json!("shanggao-2024");
    let (s, mine) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(chosen))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["campaign_id"], "shanggao-2024");
    assert_eq!(mine["warnings"], json!([]));
    let m = mine["id"].as_str().unwrap();
    c.ok(
        "township",
        m,
        "2023-11-02",
        json!({"transition": "propose", "disposition": "cancel"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        m,
        "2023-11-10",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{m}")).await;
    let rect = detail["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "cancel_rectification")
        .unwrap();
    assert_eq!(rect["due"], "2024-09-30", "{detail}");

    // A square of 1009 m × 1009 m (≈ 101.8 ha) declared as 3.26 ha.
    let square = "1, 3124696.73, 38579727.20\n2, 3124696.73, 38580736.20\n\
                  3, 3125705.73, 38580736.20\n4, 3125705.73, 38579727.20";
    let mut typo = base.clone();
    typo["licence_no"] = json!("AREA-1");
    typo["area_ha"] = json!("3.26");
    typo["boundary"] = json!({"format": "gauss_kruger", "points": square});
    let (s, mine) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(typo))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["warnings"][0]["field"], "area_ha", "{mine}");
    let message = mine["warnings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("3.26 ha") && message.contains("101.8"),
        "{message}"
    );
    let mut right = base.clone();
    right["licence_no"] = json!("AREA-2");
    right["area_ha"] = json!("101.8");
    right["boundary"] = json!({"format": "gauss_kruger", "points": square});
    let (s, mine) = c
        .app
        .call(Method::POST, "/api/v1/mines", Some(&c.office), Some(right))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["warnings"], json!([]), "{mine}");
}

/// The bodies the plan names: 挂点县领导, approval documents as records, 工信局's equipment
/// decision, the 县政府常务会议 before the extension.
async fn the_bodies_the_plan_names_take_their_steps(b: Backend) {
    let c = county(b).await;
    let m = c
        .named_mine("蒙山镇万石岭石灰岩矿", "C-WSL", "上高县万石岭矿业有限公司")
        .await;
    c.ok(
        "township",
        &m,
        "2023-10-20",
        json!({"transition": "propose", "disposition": "continue"}),
        "disposition_proposed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-01",
        json!({"transition": "approve"}),
        "disposition_approved",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2023-11-02",
        json!({"transition": "assign_county_leader",
        "leader": "陈副县长"}),
        "disposition_approved",
    )
    .await;
    let body = c
        .refused(
            "township",
            &m,
            "2023-12-01",
            json!({"transition": "record_approval_document",
            "document": "development_plan", "record": {"number": "", "issuer": "宜春市自然资源局",
            "date": "2023-11-28"}}),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(body.to_string().contains("document number"), "{body}");
    for doc in [
        "development_plan",
        "two_in_one_plan",
        "environmental_impact_report",
        "soil_conservation_plan",
    ] {
        c.ok(
            "township",
            &m,
            "2024-01-05",
            json!({"transition": "record_approval_document",
            "document": doc, "record": doc_record("2024-01-04")}),
            "disposition_approved",
        )
        .await;
    }
    c.ok(
        "township",
        &m,
        "2024-03-20",
        json!({"transition": "pass_preliminary"}),
        "preliminary_passed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-04-10",
        json!({"transition": "record_acceptance", "verdict": {
        "verdict": "passed", "expert_letter_signed": false}}),
        "acceptance_passed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-04-25",
        json!({"transition": "record_equipment_decision", "decision": {
        "compliant": true, "findings": "保留的破碎、筛分生产线符合现行产业政策",
        "document": {"number": "上工信字〔2024〕21号", "issuer": "上高县工业和信息化局",
                     "date": "2024-04-22"}}}),
        "acceptance_passed",
    )
    .await;
    c.ok(
        "office",
        &m,
        "2024-05-10",
        json!({"transition": "pass_joint_review"}),
        "joint_review_passed",
    )
    .await;
    let body = c
        .refused(
            "office",
            &m,
            "2024-05-12",
            json!({"transition": "extend_licence"}),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(body.to_string().contains("县政府常务会议"), "{body}");
    c.ok("office", &m, "2024-05-20", json!({"transition": "record_executive_meeting", "minutes": {
        "number": "县政府常务会议纪要〔2024〕9号", "issuer": "上高县人民政府", "date": "2024-05-18"}}),
        "joint_review_passed").await;
    c.ok(
        "office",
        &m,
        "2024-06-01",
        json!({"transition": "extend_licence"}),
        "licence_extended",
    )
    .await;
    let (_, detail) = c.get(&c.office, &format!("/api/v1/mines/{m}")).await;
    let facts = &detail["facts"];
    assert_eq!(facts["county_leader"], "陈副县长");
    assert_eq!(
        facts["documents"]["environmental_impact_report"],
        doc_record("2024-01-04")
    );
    assert_eq!(
        facts["equipment_decision"]["document"]["issuer"],
        "上高县工业和信息化局"
    );
    assert_eq!(facts["executive_meeting"]["date"], "2024-05-18");
}

/// The demo county shows each state of the plan: a decision with its own later deadline, an
/// announced mine with its notice, a 限期整改 with its re-inspection date, county leaders,
/// documents on record, a cancelled mine's spot check in its maintenance years.
async fn the_demo_county_shows_the_plan_as_lived(b: Backend) {
    let db = TestDb::new(b).await;
    let clock = ManualClock::new(date("2025-06-01"));
    let state = db.state_with_clock(clock.clone()).await;
    yanshou_server::demo::seed(&state).await.unwrap();
    let opened = yanshou_server::demo::open_rounds(&state).await.unwrap();
    let mines = state.store.list_mines(None).await.unwrap();
    let by_name = |name: &str| mines.iter().find(|m| m.name == name).unwrap().clone();
    let cancelled = by_name("泗溪镇大岭石灰岩矿");
    assert_eq!(
        state.store.list_rounds(cancelled.id).await.unwrap().len(),
        1,
        "a spot check in the maintenance years"
    );
    assert!(opened >= 6, "{opened}");
    let announced = by_name("野市乡新田页岩矿");
    let notice = state.store.list_case_records(announced.id).await.unwrap();
    let text = notice[0].data["text"].as_str().unwrap();
    assert!(
        text.contains("位于上高县野市乡") && text.ends_with("上高县人民政府\n2024年5月6日"),
        "{text}"
    );
    let later = by_name("锦江镇茶山石灰岩矿");
    assert_eq!(
        later.facts.closure_decision.unwrap().restoration_deadline,
        date("2024-06-30")
    );
    assert!(mines.iter().all(|m| m.facts.county_leader.is_some()));
    let extended = by_name("蒙山镇万石岭石灰岩矿");
    assert!(extended.facts.executive_meeting.is_some());
    assert!(extended.facts.equipment_decision.is_some());
    assert_eq!(extended.facts.documents.len(), 4);
    assert!(cancelled.facts.business_licence_cancellation.is_some());
    let events = state.store.list_mine_events(cancelled.id).await.unwrap();
    assert_eq!(events[0].as_of, "2023-10-20");
    assert_eq!(events[0].recorded_on, "2025-06-01");

    // A record signed by every department, its letter drafted for the three demo experts.
    assert!(yanshou_server::demo::prepare_letter(&state).await.unwrap());
    let awaiting = by_name(yanshou_server::demo::LETTER_MINE);
    let round = state.store.list_rounds(awaiting.id).await.unwrap()[0].id;

    let app = TestApp::from_state(state);
    let office = app.token_for("office.test", Role::CountyOffice).await;
    let (s, record) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{round}/record"),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(record["conclusion"], "passed", "{record}");
    assert_eq!(record["fully_signed"], true, "{record}");
    let (s, letter) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{round}/letter"),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{letter}");
    assert_eq!(letter["status"], "draft");
    assert_eq!(letter["text"]["panel"].as_array().unwrap().len(), 3);
    assert_eq!(letter["text"]["record_hash"], record["content_hash"]);
    let (_, board) = app
        .call(
            Method::GET,
            "/api/v1/dashboard?as_of=2024-04-01",
            Some(&office),
            None,
        )
        .await;
    let overdue = items(&board["overdue"]);
    assert!(
        !overdue.iter().any(|i| i.0 == "锦江镇茶山石灰岩矿"),
        "its decision runs to 2024-06-30: {overdue:?}"
    );
    assert!(
        overdue
            .iter()
            .any(|i| i.0 == "田心镇岗背瓷土矿" && i.1 == "cancel_rectification"),
        "{overdue:?}"
    );
    let (_, board) = app
        .call(
            Method::GET,
            "/api/v1/dashboard?as_of=2024-05-01",
            Some(&office),
            None,
        )
        .await;
    assert!(
        items(&board["overdue"]).contains(&(
            "南港镇石门砖瓦用页岩矿".into(),
            "reinspection".into(),
            "2024-04-30".into()
        )),
        "{board}"
    );
    assert_eq!(
        board["awaiting_disposition"].as_array().unwrap().len(),
        2,
        "{board}"
    );
    let (_, board) = app
        .call(Method::GET, "/api/v1/dashboard", Some(&office), None)
        .await;
    assert_eq!(board["announced"][0]["mine"], "野市乡新田页岩矿", "{board}");
}

both_backends!(
    the_plan_calendar_with_closure_decisions_of_their_own,
    a_decision_issued_today_cannot_be_announced_as_lapsed_today,
    mines_choose_their_campaign_and_are_warned_about_their_area,
    the_bodies_the_plan_names_take_their_steps,
    the_demo_county_shows_the_plan_as_lived,
    csv_export_neutralises_formulas_and_imports_back,
    holders_see_and_act_on_the_mines_bound_to_them,
    a_cancel_mine_from_disposition_to_licence_cancellation,
    a_continue_mine_through_its_extension_and_lapse,
    a_failed_acceptance_then_a_passing_reinspection,
    the_dashboard_lists_overdue_and_due_soon_mines_on_chosen_dates,
    licence_boundaries_in_gauss_kruger_are_converted_and_bad_lists_reported,
    csv_import_reports_every_bad_row_then_imports_and_exports,
    case_records_and_the_generated_announcement,
);

/// What a dashboard of a past day costs against today's, on N mines with a six-step trail each
/// (`YANSHOU_BENCH_MINES`, default 1000). Not part of the suite: run with
/// `cargo test -p yanshou-server --test api_mines dashboard_snapshot_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn dashboard_snapshot_cost() {
    use yanshou_server::{
        model::{AcceptanceVerdict, ClosureDecision, Disposition, Mine, MineEvent, MineFacts},
        rules::{
            campaign::Campaign,
            workflow::{self, Actor, Transition},
        },
    };
    let n: usize = std::env::var("YANSHOU_BENCH_MINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for b in [Backend::Sqlite, Backend::Postgres] {
        let c = county(b).await;
        c.clock.set(date("2024-06-01"));
        let campaign = Campaign::shanggao_2023().unwrap();
        let town = uuid::Uuid::parse_str(&c.township_id).unwrap();
        let mines: Vec<Mine> = (0..n)
            .map(|i| Mine {
                id: uuid::Uuid::now_v7(),
                name: format!("矿{i:05}"),
                licence_no: format!("B-{i:05}"),
                holder: "某公司".into(),
                holder_user_id: None,
                township_id: town,
                mineral: "石灰岩".into(),
                mining_method: "露天开采".into(),
                area_ha: None,
                boundary: None,
                campaign_id: campaign.id.clone(),
                facts: MineFacts::new(town),
                version: 0,
                created_at: 0,
                updated_at: 0,
            })
            .collect();
        c.app
            .store
            .ensure_campaign(
                &campaign.id,
                &campaign.title,
                yanshou_server::rules::campaign::SHANGGAO_2023_TOML,
                0,
            )
            .await
            .unwrap();
        c.app.store.create_mines(&mines).await.unwrap();
        let steps = [
            (
                Transition::Propose {
                    disposition: Disposition::Cancel,
                },
                "2023-11-02",
            ),
            (Transition::Approve, "2023-11-10"),
            (
                Transition::IssueClosureDecision {
                    decision: ClosureDecision {
                        document_no: "上府字〔2023〕88号".into(),
                        responsible_party: "采矿权人".into(),
                        restoration_deadline: date("2024-03-31"),
                        supervisor: "泗溪镇人民政府".into(),
                        cancellation_application_deadline: date("2024-04-30"),
                        maintenance_party: "泗溪镇人民政府".into(),
                    },
                },
                "2023-11-20",
            ),
            (Transition::CompilePlan, "2023-12-20"),
            (Transition::PassPreliminary, "2024-02-01"),
            (
                Transition::RecordAcceptance {
                    verdict: AcceptanceVerdict::Passed {
                        expert_letter_signed: true,
                    },
                },
                "2024-03-01",
            ),
        ];
        let seeding = std::time::Instant::now();
        for mine in &mines {
            let mut facts = mine.facts.clone();
            for (version, (t, on)) in steps.iter().enumerate() {
                let actor = Actor {
                    role: Role::Admin,
                    township: None,
                };
                let next = workflow::apply(&facts, t, actor, date(on), &campaign).unwrap();
                let event = MineEvent {
                    id: uuid::Uuid::now_v7(),
                    mine_id: mine.id,
                    transition: t.name().into(),
                    from_stage: facts.stage.code().into(),
                    to_stage: next.stage.code().into(),
                    actor_id: None,
                    reason: String::new(),
                    data: json!({ "transition": t }),
                    as_of: (*on).into(),
                    recorded_on: (*on).into(),
                    created_at: 0,
                };
                c.app
                    .store
                    .transition_mine(mine.id, version as i64, &next, &event, None)
                    .await
                    .unwrap();
                facts = next;
            }
        }
        let seeded = seeding.elapsed();
        let mut timings = Vec::new();
        for as_of in ["2024-06-01", "2024-01-15"] {
            let mut samples = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let board = c.board(as_of).await;
                samples.push(t.elapsed());
                assert_eq!(board["mines"], n);
            }
            samples.sort();
            timings.push((as_of, samples[2]));
        }
        println!(
            "{b:?}: {n} mines × 6 steps seeded in {seeded:.1?}; dashboard median of 5: \
             today {:.1?}, snapshot of {} {:.1?}",
            timings[0].1, timings[1].0, timings[1].1
        );
    }
}
