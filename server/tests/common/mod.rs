//! Test harness shared by the server's integration tests.
//!
//! Every test gets its own database: a new SQLite file in a temporary directory, or a new schema
//! in the PostgreSQL database named by `YANSHOU_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL is required, not optional: a missing
//! server fails the PostgreSQL half of the suite instead of silently skipping it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod letters;
pub mod pdf;

use std::{path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use sync_protocol::{
    DeviceId, EntityId, OpId, OpResult, Replica, SyncRequest, SyncResponse, Value as SyncValue,
};
use tower::ServiceExt;
use uuid::Uuid;
use yanshou_server::{
    AppState, app,
    config::Settings,
    identity::accounts,
    model::{Role, User},
    store::{self, Store},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_base_url() -> String {
    std::env::var("YANSHOU_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, migrated database; dropped (file removed or schema dropped) with the guard.
pub struct TestDb {
    pub backend: Backend,
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    dir: Option<PathBuf>,
    schema: Option<String>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Settings for tests: fast failure on an unreachable database, blobs in a shared temporary
/// directory (not `data/blobs` of the working directory; [`TestDb`] gives each test its own).
pub fn test_settings(database_url: String) -> Settings {
    Settings {
        database_url,
        blob_dir: std::env::temp_dir().join("yanshou-test-blobs"),
        database_acquire_timeout_secs: 2,
        database_max_connections: 4,
        ..Settings::default()
    }
}

/// The URL of a new empty schema in the test PostgreSQL database.
pub async fn new_pg_schema() -> (String, String) {
    let schema = format!("yt_{}", Uuid::new_v4().simple());
    let base = pg_base_url();
    let admin = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for the test suite: {e}"));
    sqlx::query(&format!("create schema {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    )
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("yanshou-test-{}", Uuid::new_v4()));
                std::fs::create_dir_all(&dir).unwrap();
                let mut settings = test_settings(format!("sqlite://{}/y.db", dir.display()));
                settings.blob_dir = dir.join("blobs");
                let store = store::connect(&settings).await.unwrap();
                store.migrate().await.unwrap();
                TestDb {
                    backend,
                    settings,
                    store,
                    dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let (url, schema) = new_pg_schema().await;
                let dir = std::env::temp_dir().join(format!("yanshou-test-{}", Uuid::new_v4()));
                let mut settings = test_settings(url);
                settings.blob_dir = dir.join("blobs");
                let store = store::connect(&settings).await.unwrap();
                store.migrate().await.unwrap();
                TestDb {
                    backend,
                    settings,
                    store,
                    dir: Some(dir),
                    schema: Some(schema),
                }
            }
        }
    }

    pub async fn state(&self) -> AppState {
        AppState::with_store(self.store.clone(), self.settings.clone())
            .await
            .unwrap()
    }

    pub async fn state_with_clock(&self, clock: Arc<dyn yanshou_server::clock::Clock>) -> AppState {
        AppState::with_clock(self.store.clone(), self.settings.clone(), clock)
            .await
            .unwrap()
    }

    pub async fn state_with(&self, f: impl FnOnce(&mut Settings)) -> AppState {
        let mut settings = self.settings.clone();
        f(&mut settings);
        AppState::with_store(self.store.clone(), settings)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.schema.take() {
            // Drop runs inside the test's runtime; clean up on a thread with its own runtime.
            let base = pg_base_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("drop schema {schema} cascade"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Run an async test body once per backend: `both_backends!(name_of_async_fn, …)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A server under test, driven in-process through `tower::ServiceExt::oneshot`.
pub struct TestApp {
    /// Keeps the test database alive (absent when the test brought its own store).
    pub db: Option<TestDb>,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    pub router: Router,
}

pub const PASSWORD: &str = "field-work-2024";

/// A 200 m square licence boundary (CGCS2000 Gauss-Krüger, zone 38) whose south-west corner is
/// at 28.2345 N, 114.8123 E.
pub const SQUARE_BOUNDARY: &str = "1, 3124696.73, 38579727.20\n2, 3124696.73, 38579927.20\n\
                                   3, 3124896.73, 38579927.20\n4, 3124896.73, 38579727.20";

impl TestApp {
    /// A 注销 mine registered by `office`, proposed by `township` and approved: ready for its
    /// acceptance rounds. Returns its id.
    pub async fn approved_cancel_mine(
        &self,
        office: &str,
        township: &str,
        licence_no: &str,
    ) -> String {
        self.approved_cancel_mine_with(office, township, licence_no, json!({}))
            .await
    }

    /// A 注销 mine with the [`SQUARE_BOUNDARY`] registered by the county office (`office`),
    /// approved, and its first round opened by the township (`sixi`): the office's token and
    /// the record.
    pub async fn open_round_on_square_mine(&self, licence_no: &str) -> (String, EntityId) {
        let office = self.token_for("office", Role::CountyOffice).await;
        let township = self.token_for("sixi", Role::TownshipOfficer).await;
        let mine = self
            .approved_cancel_mine_with(
                &office,
                &township,
                licence_no,
                json!({"boundary": {"format": "gauss_kruger", "points": SQUARE_BOUNDARY}}),
            )
            .await;
        let (s, round) = self
            .call(
                Method::POST,
                &format!("/api/v1/mines/{mine}/rounds"),
                Some(&township),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{round}");
        let record = EntityId(Uuid::parse_str(round["id"].as_str().unwrap()).unwrap());
        (office, record)
    }

    /// A fresh acceptance round on a new approved 注销 mine (its own office and township
    /// accounts): somewhere to upload strokes for when a test's records are made by devices
    /// (an upload belongs to a round).
    pub async fn any_round(&self) -> String {
        let tag = Uuid::now_v7().simple().to_string();
        let office = self
            .token_for(&format!("office.{tag}"), Role::CountyOffice)
            .await;
        let township = self
            .token_for(&format!("sixi.{tag}"), Role::TownshipOfficer)
            .await;
        let mine = self
            .approved_cancel_mine_with(&office, &township, &format!("C-{tag}"), json!({}))
            .await;
        let (s, round) = self
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

    /// [`Self::approved_cancel_mine`] with more members of the new mine (e.g. a boundary).
    pub async fn approved_cancel_mine_with(
        &self,
        office: &str,
        township: &str,
        licence_no: &str,
        extra: Value,
    ) -> String {
        let township_id = self.store.list_townships().await.unwrap()[0].id;
        let mut body = json!({"name": "大岭石灰岩矿", "licence_no": licence_no, "holder": "某公司",
                              "township_id": township_id, "mineral": "石灰岩", "mining_method": "露天开采"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (s, mine) = self
            .call(Method::POST, "/api/v1/mines", Some(office), Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{mine}");
        let id = mine["id"].as_str().unwrap().to_owned();
        for (token, t) in [
            (
                township,
                json!({"transition": "propose", "disposition": "cancel"}),
            ),
            (office, json!({"transition": "approve"})),
        ] {
            let (s, body) = self
                .call(
                    Method::POST,
                    &format!("/api/v1/mines/{id}/transitions"),
                    Some(token),
                    Some(t),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{body}");
        }
        id
    }
    pub async fn new(backend: Backend) -> Self {
        Self::with_settings(backend, |_| {}).await
    }

    /// Uploads a whole photo for `record` from the phone of `token`: declare, chunks of the
    /// largest size the server takes, finish; every step must succeed. A photo the server
    /// holds already is not sent.
    pub async fn upload_photo(&self, token: &str, record: &str, bytes: &[u8], content_type: &str) {
        use sha2::Digest;
        let (s, upload) = self
            .call(
                Method::POST,
                "/api/v1/uploads",
                Some(token),
                Some(json!({"sha256": hex::encode(sha2::Sha256::digest(bytes)),
                            "size": bytes.len(), "content_type": content_type,
                            "record_id": record})),
            )
            .await;
        if s == StatusCode::OK {
            assert_eq!(upload["complete"], true, "{upload}");
            return;
        }
        assert_eq!(s, StatusCode::CREATED, "{upload}");
        let id = upload["id"].as_str().unwrap();
        let chunk = usize::try_from(yanshou_server::model::record::LIMITS.chunk_max_bytes).unwrap();
        for (n, part) in bytes.chunks(chunk).enumerate() {
            let patch = Request::builder()
                .method(Method::PATCH)
                .uri(format!("/api/v1/uploads/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                .header("Upload-Offset", (n * chunk).to_string())
                .body(Body::from(part.to_vec()))
                .unwrap();
            let res = self.router.clone().oneshot(patch).await.unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        }
        let finish = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/uploads/{id}/finish"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (s, body) = self.send(finish).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }

    pub async fn with_settings(backend: Backend, f: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new(backend).await;
        let state = db.state_with(f).await;
        let mut this = Self::from_state(state);
        this.db = Some(db);
        this
    }

    /// A harness over an existing state (its store is the caller's business).
    pub fn from_state(state: AppState) -> Self {
        let router = app(state.clone());
        TestApp {
            db: None,
            store: state.store.clone(),
            state,
            router,
        }
    }

    /// Send a request; returns the status and the JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// Create a user directly through the domain layer.
    pub async fn user(&self, username: &str, role: Role) -> User {
        let (department, township_id, specialty) = match role {
            Role::DepartmentInspector => (Some("forestry".to_owned()), None, None),
            Role::TownshipOfficer => (None, Some(self.township().await), None),
            Role::Expert => (None, None, Some("forestry".to_owned())),
            _ => (None, None, None),
        };
        accounts::create_user(
            self.store.as_ref(),
            accounts::NewUserInput {
                username: username.into(),
                display_name: format!("{username} 测试"),
                password: PASSWORD.into(),
                role,
                department,
                township_id,
                specialty,
            },
            self.state.clock.now_ms(),
        )
        .await
        .unwrap()
    }

    /// Create a user with an explicit scope (a second department or township).
    pub async fn user_scoped(
        &self,
        username: &str,
        role: Role,
        department: Option<&str>,
        township_id: Option<Uuid>,
    ) -> User {
        accounts::create_user(
            self.store.as_ref(),
            accounts::NewUserInput {
                username: username.into(),
                display_name: format!("{username} 测试"),
                password: PASSWORD.into(),
                role,
                department: department.map(str::to_owned),
                township_id,
                specialty: (role == Role::Expert).then(|| "forestry".to_owned()),
            },
            self.state.clock.now_ms(),
        )
        .await
        .unwrap()
    }

    /// The first township (created on first use), where [`TestApp::user`] puts township
    /// officers.
    pub async fn first_township(&self) -> Uuid {
        self.township().await
    }

    /// A second township, for isolation checks.
    pub async fn other_township(&self, name: &str) -> Uuid {
        let t = yanshou_server::model::Township {
            id: Uuid::now_v7(),
            name: name.into(),
            kind: "town".into(),
            created_at: 0,
        };
        self.store.create_township(&t).await.unwrap();
        t.id
    }

    async fn township(&self) -> Uuid {
        if let Some(t) = self.store.list_townships().await.unwrap().first() {
            return t.id;
        }
        let t = yanshou_server::model::Township {
            id: Uuid::now_v7(),
            name: "泗溪镇".into(),
            kind: "town".into(),
            created_at: 0,
        };
        self.store.create_township(&t).await.unwrap();
        t.id
    }

    /// Log in; returns the whole session JSON.
    pub async fn login(&self, username: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body
    }

    /// Create a user of `role` and return an access token for them.
    pub async fn token_for(&self, username: &str, role: Role) -> String {
        self.user(username, role).await;
        self.login(username).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The `strokes` member of a test signature: `{sha256, size}` of a stand-in strokes blob.
pub fn strokes() -> SyncValue {
    SyncValue::Map(
        [
            ("sha256".to_owned(), SyncValue::from("5".repeat(64))),
            ("size".to_owned(), SyncValue::Int(640)),
        ]
        .into_iter()
        .collect(),
    )
}

/// A handwritten signature's strokes blob (PROTOCOL.md §14): a wave whose shape depends on
/// `seed`, so that two signers' blobs differ.
pub fn strokes_blob(seed: &str) -> Vec<u8> {
    let bump = seed
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 40;
    let points: Vec<String> = (0..60u32)
        .map(|i| {
            let x = 20 + i * 9;
            let y = 120 + ((i * 7 + bump) % 60) - 30;
            format!("[{x},{y},{}]", i * 16)
        })
        .collect();
    format!(
        r#"{{"format":"yanshou-strokes/1","width":600,"height":240,"strokes":[{{"points":[{}]}},{{"points":[[100,200,1000],[300,205,1100]]}}]}}"#,
        points.join(",")
    )
    .into_bytes()
}

/// A fresh P-256 public key as a JWK (what WebCrypto exports).
pub fn device_jwk() -> Value {
    device_key().1
}

/// A fresh P-256 device key and its public JWK.
pub fn device_key() -> (p256::ecdsa::SigningKey, Value) {
    let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let jwk = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
    (p256::ecdsa::SigningKey::from(secret), jwk)
}

/// A phone: an enrolled device, a device-bound session and the protocol client.
pub struct Phone {
    pub replica: Replica,
    pub token: String,
    pub refresh: String,
    pub now: u64,
    /// The enrolled device key (signs sections and photo attestations).
    pub key: p256::ecdsa::SigningKey,
    /// The signer a section signature names: `{user, name, role, department, specialty}`.
    pub signer: SyncValue,
    /// The `strokes` member of this phone's signatures: a stand-in the server does not hold
    /// until [`Phone::upload_strokes`] uploads real ones.
    pub strokes: SyncValue,
}

impl Phone {
    pub async fn enroll(app: &TestApp, username: &str) -> Phone {
        let login = app.login(username).await;
        let token = login["access_token"].as_str().unwrap();
        let (key, jwk) = device_key();
        let (s, device) = app
            .call(
                Method::POST,
                "/api/v1/devices",
                Some(token),
                Some(json!({"name": format!("{username} 的手机"), "public_key": jwk})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let device_id = Uuid::parse_str(device["id"].as_str().unwrap()).unwrap();
        let (s, session) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD, "device_id": device_id})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let user = &session["user"];
        let text = |k: &str| user[k].as_str().map_or(SyncValue::Null, SyncValue::from);
        let signer = SyncValue::Map(
            [
                ("user", text("id")),
                ("name", text("display_name")),
                ("role", text("role")),
                ("department", text("department")),
                ("specialty", text("specialty")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        Phone {
            replica: Replica::new(DeviceId(device_id)),
            token: session["access_token"].as_str().unwrap().to_owned(),
            refresh: session["refresh_token"].as_str().unwrap().to_owned(),
            now: 1_700_000_000_000,
            key,
            signer,
            strokes: strokes(),
        }
    }

    /// Draws a signature (PROTOCOL.md §14), uploads its strokes for `record` and names them in
    /// this phone's signatures from now on; returns the blob.
    pub async fn upload_strokes(&mut self, app: &TestApp, record: &str) -> Vec<u8> {
        use sha2::Digest;
        let bytes = strokes_blob(&self.replica.device().0.to_string());
        app.upload_photo(
            &self.token,
            record,
            &bytes,
            "application/vnd.yanshou.strokes+json",
        )
        .await;
        self.strokes = SyncValue::Map(
            [
                (
                    "sha256".to_owned(),
                    SyncValue::from(hex::encode(sha2::Sha256::digest(&bytes))),
                ),
                ("size".to_owned(), SyncValue::Int(bytes.len() as i64)),
            ]
            .into_iter()
            .collect(),
        );
        bytes
    }

    /// Signs `section` of `entity` as the phone shows it, with this device's key and the
    /// session's user as the signer (PROTOCOL.md §12).
    pub fn sign(&mut self, entity: EntityId, section: &str) -> OpId {
        let id = OpId(Uuid::now_v7());
        let now = self.tick();
        let (device, key, signer) = (self.replica.device(), self.key.clone(), self.signer.clone());
        let strokes = self.strokes.clone();
        self.replica
            .sign_with(id, now, entity, section, |hash| {
                let statement = sync_protocol::signature::section_statement(
                    device,
                    entity,
                    section,
                    hash,
                    signer,
                    i64::try_from(now).unwrap(),
                    strokes,
                );
                sync_protocol::signature::sign(&key, statement).to_value()
            })
            .unwrap();
        id
    }

    /// The capture attestation of `bytes` (a photo taken now at `position`), signed by this
    /// device (PROTOCOL.md §12).
    pub fn attest(&self, bytes: &[u8], content_type: &str, position: SyncValue) -> SyncValue {
        use sha2::Digest;
        let statement = sync_protocol::signature::photo_statement(
            self.replica.device(),
            &hex::encode(sha2::Sha256::digest(bytes)),
            i64::try_from(bytes.len()).unwrap(),
            content_type,
            i64::try_from(self.now).unwrap(),
            position,
        );
        sync_protocol::signature::sign(&self.key, statement).to_value()
    }

    /// Answers every field of `department`'s section a 注销 record of the default template
    /// asks for (达标, 100 and its design value, a text), so the section can be signed.
    pub fn answer_section(&mut self, entity: EntityId, department: &str) {
        use yanshou_server::{
            model::Disposition,
            rules::template::{AnswerKind, FieldRole, Template},
        };
        let template = Template::default_2023().unwrap();
        for field in template.fields(Disposition::Cancel) {
            if field.section.department.code() != department {
                continue;
            }
            let value = match (&field.part.kind, field.role) {
                (_, FieldRole::DesignValue) | (AnswerKind::Number { .. }, _) => "100",
                (AnswerKind::PassFail { .. }, _) => "pass",
                (AnswerKind::Text, _) => "已按方案完成",
            };
            self.set(entity, &field.key(), value);
        }
    }

    /// The user id a section signature by this phone names.
    pub fn signer_user(&self) -> String {
        match &self.signer {
            SyncValue::Map(m) => m["user"].as_str().unwrap().to_owned(),
            _ => unreachable!("the signer is a map"),
        }
    }

    /// Adds `element` to the set field `field` (through the replica's own checks).
    pub fn add(&mut self, entity: EntityId, field: &str, element: SyncValue) -> OpId {
        let id = OpId(Uuid::now_v7());
        let now = self.tick();
        self.replica.add(id, now, entity, field, element).unwrap();
        id
    }

    pub fn tick(&mut self) -> u64 {
        self.now += 1000;
        self.now
    }

    pub async fn post(&self, app: &TestApp, body: &SyncRequest) -> (StatusCode, Value) {
        app.call(
            Method::POST,
            "/api/v1/sync",
            Some(&self.token),
            Some(serde_json::to_value(body).unwrap()),
        )
        .await
    }

    /// Push one hand-made `set` op (around the replica's own checks, as a forged or buggy client
    /// would) and return the response body after checking it is a 200 with exactly one result.
    pub async fn push_forged_set(
        &self,
        app: &TestApp,
        seq: u64,
        entity: EntityId,
        field: &str,
        value: &str,
        base_rev: u64,
    ) -> Value {
        let device = self.replica.device();
        let forged = json!({"protocol_version": 1, "device": device, "cursor": 0,
            "ops": [{"id": Uuid::now_v7(), "device": device, "seq": seq,
                     "hlc": {"wall_ms": 1_700_000_100_000u64, "counter": 0}, "entity": entity,
                     "kind": "set", "field": field, "value": value, "base_rev": base_rev}]});
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/sync",
                Some(&self.token),
                Some(forged),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");
        body
    }

    /// One round trip: push the outbox, pull a page, apply.
    pub async fn sync_once(&mut self, app: &TestApp) -> SyncResponse {
        let request = self.replica.build_request(None);
        let (s, body) = self.post(app, &request).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let response: SyncResponse = serde_json::from_value(body).unwrap();
        let now = self.tick();
        self.replica.handle_response(&response, now).unwrap();
        response
    }

    /// Sync until nothing is pending and no page is left (bounded).
    pub async fn sync(&mut self, app: &TestApp) -> Vec<OpResult> {
        let mut results = Vec::new();
        for _ in 0..20 {
            let response = self.sync_once(app).await;
            results.extend(response.results.clone());
            if !response.has_more && self.replica.outbox().is_empty() {
                return results;
            }
        }
        panic!("sync did not become quiet in 20 rounds");
    }

    pub fn set(&mut self, entity: EntityId, field: &str, value: &str) -> OpId {
        let id = OpId(Uuid::now_v7());
        let now = self.tick();
        self.replica
            .set(id, now, entity, field, SyncValue::from(value))
            .unwrap();
        id
    }
}
