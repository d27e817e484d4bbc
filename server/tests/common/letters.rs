//! A 注销 round whose record passed, its opinion letter and the experts' words on it
//! (PROTOCOL.md §15): the setup of the letter suites (`api_letters.rs`, `api_letter_pdf.rs`).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sync_protocol::{EntityId, OpResult, Value as SyncValue};
use uuid::Uuid;
use yanshou_server::{
    identity::accounts,
    model::{Disposition, Role},
    rules::template::Template,
};

use super::{Backend, Phone, TestApp};

/// A 注销 mine whose first round's record passed with every required section signed.
pub struct Passed {
    pub app: TestApp,
    pub office: String,
    pub mine: String,
    pub round: EntityId,
}

/// The specialties of the organisation, as `(code, expert username)`.
pub const EXPERTS: &[(&str, &str)] = &[
    ("hydro_engineering_environmental_geology", "zhuanjia.shui"),
    ("environmental_protection", "zhuanjia.huan"),
    ("forestry", "zhuanjia.lin"),
];

pub async fn expert(app: &TestApp, username: &str, specialty: &str) -> Uuid {
    accounts::create_user(
        app.store.as_ref(),
        accounts::NewUserInput {
            username: username.into(),
            display_name: format!("{username} 专家"),
            password: super::PASSWORD.into(),
            role: Role::Expert,
            department: None,
            township_id: None,
            specialty: Some(specialty.into()),
        },
        app.state.clock.now_ms(),
    )
    .await
    .unwrap()
    .id
}

/// Every required section of the 注销 template answered and signed by its own inspector, each
/// with uploaded strokes.
pub async fn passed(b: Backend) -> Passed {
    let app = TestApp::new(b).await;
    let (office, round) = app.open_round_on_square_mine("C-LETTER-1").await;
    let mine = app
        .store
        .get_round(round.0)
        .await
        .unwrap()
        .mine_id
        .to_string();
    let template = Template::default_2023().unwrap();
    let departments: Vec<String> = template
        .sections
        .iter()
        .filter(|s| s.required && s.applies_to.contains(&Disposition::Cancel))
        .map(|s| s.department.code().to_owned())
        .collect();
    assert!(departments.len() >= 3, "{departments:?}");
    for dept in &departments {
        // The township's 初验 section is the township officer's; the others an inspector's.
        let user = if dept == "township" {
            "sixi".to_owned()
        } else {
            let user = format!("insp.{dept}");
            app.user_scoped(&user, Role::DepartmentInspector, Some(dept), None)
                .await;
            user
        };
        let mut phone = Phone::enroll(&app, &user).await;
        phone.sync(&app).await;
        phone.answer_section(round, dept);
        phone.upload_strokes(&app, &round.0.to_string()).await;
        phone.sign(round, dept);
        let results = phone.sync(&app).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, OpResult::Applied { .. })),
            "{dept}: {results:?}"
        );
    }
    let (s, record) = app
        .call(
            Method::GET,
            &format!("/api/v1/rounds/{}/record", round.0),
            Some(&office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(record["conclusion"], "passed", "{record}");
    assert_eq!(record["fully_signed"], true);
    Passed {
        app,
        office,
        mine,
        round,
    }
}

pub fn text(panel: &[Uuid]) -> Value {
    json!({
        "number": "上自然资矿验〔2024〕12号",
        "basis": ["《上高县非煤矿山生态修复整治行动方案》（上府办发〔2023〕35号）",
                  "经批准的矿山地质环境保护与土地复垦方案"],
        "date": "2024-05-20",
        "organiser": "上高县自然资源局",
        "panel": panel.iter().map(|u| json!({"user": u, "title": "高级工程师", "employer": "宜春市地质调查院"})).collect::<Vec<_>>(),
        "method": "听取汇报、查阅资料、现场踏勘",
        "situation": "矿区位于泗溪镇，露天开采石灰岩，已停产。",
        "opinions": "边坡稳定，无地质灾害隐患；复绿面积 3.2 公顷，植被覆盖率 85%。",
        "problems": "加强后期管护。",
        "conclusion": "pass"
    })
}

impl Passed {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.app.call(method, path, Some(&self.office), body).await
    }

    pub async fn panel(&self) -> Vec<Uuid> {
        let mut out = Vec::new();
        for (specialty, user) in EXPERTS {
            out.push(expert(&self.app, user, specialty).await);
        }
        out
    }

    pub async fn draft(&self, panel: &[Uuid]) -> Value {
        let (s, letter) = self
            .call(
                Method::POST,
                &format!("/api/v1/rounds/{}/letter", self.round.0),
                Some(text(panel)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{letter}");
        letter
    }

    pub async fn letter(&self, id: &str) -> Value {
        let (s, letter) = self
            .call(Method::GET, &format!("/api/v1/letters/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{letter}");
        letter
    }

    /// An expert's phone holding the letter, with uploaded strokes.
    pub async fn expert_phone(&self, username: &str) -> Phone {
        let mut phone = Phone::enroll(&self.app, username).await;
        phone.sync(&self.app).await;
        phone
            .upload_strokes(&self.app, &self.round.0.to_string())
            .await;
        phone
    }
}

/// The expert's word on `letter` as the phone shows it (its hash), signed by the phone.
pub fn word(phone: &mut Phone, letter: EntityId, decision: &str, reason: &str) -> SyncValue {
    let view = phone.replica.view();
    let hash = sync_protocol::section_hash(
        view.get(&letter).expect("the phone holds the letter"),
        "letter",
    )
    .unwrap();
    word_on(phone, letter, &hash, decision, reason)
}

pub fn word_on(
    phone: &mut Phone,
    letter: EntityId,
    hash: &str,
    decision: &str,
    reason: &str,
) -> SyncValue {
    let now = i64::try_from(phone.tick()).unwrap();
    let strokes = if decision == "sign" {
        phone.strokes.clone()
    } else {
        SyncValue::Null
    };
    let statement = sync_protocol::signature::letter_statement(
        phone.replica.device(),
        letter,
        hash,
        decision,
        reason,
        phone.signer.clone(),
        now,
        strokes,
    );
    sync_protocol::signature::sign(&phone.key, statement).to_value()
}

/// Pushes the phone's outbox; the one result.
pub async fn push_one(phone: &mut Phone, app: &TestApp) -> OpResult {
    let results = phone.sync(app).await;
    assert_eq!(results.len(), 1, "{results:?}");
    results.into_iter().next().unwrap()
}
