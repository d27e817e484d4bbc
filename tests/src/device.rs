//! A simulated phone: the protocol client ([`Replica`]) over real HTTP, with a bad network.
//!
//! The device keeps what a real phone keeps (the replica, its refresh token) plus the harness's
//! own record of the truth: every op it made, every result the server gave it. Faults are
//! injected between the replica and the server:
//! - **drop the request**: the request never reaches the server;
//! - **drop the response**: the server processed the request, the answer is lost;
//! - **duplicate**: the same request is sent twice at once; both answers are handled, in a
//!   random order;
//! - **offline** for N rounds: sync attempts do nothing;
//! - **restart**: the replica is restored from its persisted JSON, the access token is lost (the
//!   next request gets 401 and refreshes);
//! - **invalidate the access token**: the next request gets 401 and refreshes.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail, ensure};
use rand::{Rng, SeedableRng, rngs::StdRng};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use sync_protocol::{
    Change, ClientError, DeviceId, EntityId, Op, OpId, OpResult, RejectCode, Replica, SyncRequest,
    SyncResponse, Value,
};
use uuid::Uuid;

use crate::server::PASSWORD;

/// One injected network fault for a sync round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A healthy round trip.
    None,
    /// The request is lost before it reaches the server.
    DropRequest,
    /// The server processes the request; the response is lost.
    DropResponse,
    /// The request is sent twice concurrently; both responses are handled.
    Duplicate,
}

/// Probabilities of faults for [`SimDevice::sync_once`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPlan {
    /// Probability that a request is lost.
    pub drop_request: f64,
    /// Probability that a response is lost.
    pub drop_response: f64,
    /// Probability that a request is duplicated.
    pub duplicate: f64,
}

/// What one sync round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// The device was offline; nothing was sent.
    Offline,
    /// The request was lost.
    RequestDropped,
    /// The request was processed; the response was lost.
    ResponseDropped,
    /// A response was handled.
    Synced {
        /// The server has more changes.
        has_more: bool,
        /// Results of the pushed ops.
        results: Vec<OpResult>,
    },
}

/// Counters of what happened to a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// HTTP sync requests that reached the server (including duplicates and retries after 401).
    pub requests: u64,
    /// Requests dropped before sending.
    pub dropped_requests: u64,
    /// Responses dropped after the server processed the request.
    pub dropped_responses: u64,
    /// Requests sent twice.
    pub duplicated: u64,
    /// Rounds spent offline.
    pub offline_rounds: u64,
    /// Access tokens refreshed after a 401.
    pub refreshes: u64,
    /// Restarts from the persisted replica.
    pub restarts: u64,
    /// Ops refused locally by the replica (never sent).
    pub refused_locally: u64,
}

/// A simulated phone. See the [module docs](self).
#[derive(Debug)]
pub struct SimDevice {
    /// A label for messages, e.g. `lin.a/phone`.
    pub label: String,
    /// The user the device belongs to.
    pub username: String,
    replica: Replica,
    persisted: String,
    base: String,
    http: reqwest::Client,
    access_token: String,
    refresh_token: String,
    now_ms: u64,
    offline_rounds: u32,
    plan: FaultPlan,
    rng: StdRng,
    /// Every op this device made, in order.
    pub made: Vec<Op>,
    /// The first acknowledgement (applied, conflict or duplicate) the device received per op.
    pub acked: BTreeMap<OpId, OpResult>,
    /// Rejections the device received, per op.
    pub rejected: BTreeMap<OpId, RejectCode>,
    /// Protocol violations observed (e.g. an op acknowledged and later rejected).
    pub anomalies: Vec<String>,
    /// Counters.
    pub stats: DeviceStats,
    /// The device key (enrolled; signs sections).
    key: p256::ecdsa::SigningKey,
    /// The signer as a section signature names it (`{user, name, role, department,
    /// specialty}`, from the session).
    signer: Value,
    /// The `strokes` member of this device's signatures (`{sha256, size}`): a stand-in the
    /// server does not hold until [`SimDevice::upload_strokes`] uploads real ones.
    strokes: Value,
}

/// A reqwest client for simulated devices (no proxy, loopback only).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client")
}

/// A fresh P-256 public key as a JWK (what WebCrypto exports).
pub fn device_jwk() -> Json {
    device_key().1
}

/// A fresh P-256 device key and its public JWK.
pub fn device_key() -> (p256::ecdsa::SigningKey, Json) {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let jwk = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("a JWK");
    (p256::ecdsa::SigningKey::from(secret), jwk)
}

async fn json_or_error(res: reqwest::Response, what: &str) -> anyhow::Result<Json> {
    let status = res.status();
    let text = res.text().await.with_context(|| format!("{what}: body"))?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    if text.is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
}

/// `POST /api/v1/auth/login`, optionally binding the session to a device; the session JSON.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    device: Option<Uuid>,
) -> anyhow::Result<Json> {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(d) = device {
        body["device_id"] = json!(d);
    }
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await?;
    json_or_error(res, &format!("login {username}")).await
}

/// `POST /api/v1/devices` with a fresh key, as the holder of `token`; the device id.
pub async fn enroll_device(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<Uuid> {
    Ok(enroll_device_key(http, base, token, name).await?.0)
}

/// Like [`enroll_device`], keeping the device key (to sign with).
pub async fn enroll_device_key(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<(Uuid, p256::ecdsa::SigningKey)> {
    let (key, jwk) = device_key();
    let res = http
        .post(format!("{base}/api/v1/devices"))
        .bearer_auth(token)
        .json(&json!({"name": name, "public_key": jwk}))
        .send()
        .await?;
    let device = json_or_error(res, "enroll device").await?;
    let id = device["id"].as_str().context("device id")?;
    Ok((Uuid::parse_str(id)?, key))
}

/// A 注销 (cancel) mine proposed by a new township officer `sixi` and approved by the county
/// office (`office`: its access token), and the acceptance round the township opens for it:
/// its id (the record's).
pub async fn open_cancel_round(
    server: &crate::Server,
    http: &reqwest::Client,
    base: &str,
    office: &str,
) -> anyhow::Result<Uuid> {
    let office = office.to_owned();
    let res = http
        .get(format!("{base}/api/v1/townships"))
        .bearer_auth(&office)
        .send()
        .await?;
    let townships = json_or_error(res, "townships").await?;
    let township_id = match townships.as_array().and_then(|t| t.first()) {
        Some(t) => t["id"].as_str().context("township id")?.to_owned(),
        None => {
            let res = http
                .post(format!("{base}/api/v1/townships"))
                .bearer_auth(&office)
                .json(&json!({"name": "泗溪镇", "kind": "town"}))
                .send()
                .await?;
            let t = json_or_error(res, "create township").await?;
            t["id"].as_str().context("township id")?.to_owned()
        }
    };
    server
        .add_township_officer("sixi", Uuid::parse_str(&township_id)?)
        .await?;
    let township = token_of(&login(http, base, "sixi", None).await?, "access_token")?;

    let res = http
        .post(format!("{base}/api/v1/mines"))
        .bearer_auth(&office)
        .json(
            &json!({"name": "大岭石灰岩矿", "licence_no": "C-OPEN-ROUND-1", "holder": "某公司",
                      "township_id": township_id, "mineral": "石灰岩",
                      "mining_method": "露天开采"}),
        )
        .send()
        .await?;
    let mine = json_or_error(res, "create mine").await?;
    let mine = mine["id"].as_str().context("mine id")?.to_owned();
    for (token, transition) in [
        (
            &township,
            json!({"transition": "propose", "disposition": "cancel"}),
        ),
        (&office, json!({"transition": "approve"})),
    ] {
        let res = http
            .post(format!("{base}/api/v1/mines/{mine}/transitions"))
            .bearer_auth(token)
            .json(&transition)
            .send()
            .await?;
        json_or_error(res, &format!("mine transition {transition}")).await?;
    }
    let res = http
        .post(format!("{base}/api/v1/mines/{mine}/rounds"))
        .bearer_auth(&township)
        .send()
        .await?;
    let round = json_or_error(res, "open round").await?;
    Ok(Uuid::parse_str(round["id"].as_str().context("round id")?)?)
}

fn token_of(session: &Json, key: &str) -> anyhow::Result<String> {
    Ok(session[key]
        .as_str()
        .with_context(|| format!("session without {key}: {session}"))?
        .to_owned())
}

impl SimDevice {
    /// Enrolls a new device for `username` and logs in bound to it. `seed` makes its ids,
    /// clock steps and faults reproducible.
    pub async fn enroll(
        base: &str,
        username: &str,
        label: &str,
        seed: u64,
    ) -> anyhow::Result<SimDevice> {
        let http = http_client();
        let session = login(&http, base, username, None).await?;
        let (device, key) =
            enroll_device_key(&http, base, &token_of(&session, "access_token")?, label).await?;
        let session = login(&http, base, username, Some(device)).await?;
        let user = &session["user"];
        let text = |k: &str| user[k].as_str().map_or(Value::Null, Value::from);
        let signer = Value::Map(BTreeMap::from([
            ("user".to_owned(), text("id")),
            ("name".to_owned(), text("display_name")),
            ("role".to_owned(), text("role")),
            ("department".to_owned(), text("department")),
            ("specialty".to_owned(), text("specialty")),
        ]));
        let replica = Replica::new(DeviceId(device));
        let persisted = serde_json::to_string(&replica)?;
        Ok(SimDevice {
            label: label.to_owned(),
            username: username.to_owned(),
            replica,
            persisted,
            base: base.to_owned(),
            http,
            access_token: token_of(&session, "access_token")?,
            refresh_token: token_of(&session, "refresh_token")?,
            now_ms: 1_750_000_000_000,
            offline_rounds: 0,
            plan: FaultPlan::default(),
            rng: StdRng::seed_from_u64(seed),
            made: Vec::new(),
            acked: BTreeMap::new(),
            rejected: BTreeMap::new(),
            anomalies: Vec::new(),
            stats: DeviceStats::default(),
            key,
            signer,
            strokes: Value::Map(BTreeMap::from([
                ("sha256".to_owned(), Value::from("0".repeat(64))),
                ("size".to_owned(), Value::Int(1)),
            ])),
        })
    }

    /// The protocol client.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The device id.
    pub fn device(&self) -> DeviceId {
        self.replica.device()
    }

    /// The current access token.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// Sets the fault probabilities for [`sync_once`](Self::sync_once).
    pub fn set_fault_plan(&mut self, plan: FaultPlan) {
        self.plan = plan;
    }

    /// The device's random source (seeded), for callers deciding what it does next.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The next `sync_once` calls (`rounds` of them) find no network.
    pub fn go_offline(&mut self, rounds: u32) {
        self.offline_rounds = self.offline_rounds.saturating_add(rounds);
    }

    /// The network is back: the remaining offline rounds are cancelled.
    pub fn go_online(&mut self) {
        self.offline_rounds = 0;
    }

    /// Whether the device is offline now.
    pub fn is_offline(&self) -> bool {
        self.offline_rounds > 0
    }

    /// The device's wall clock advances a little (10–500 ms) and is returned.
    fn tick(&mut self) -> u64 {
        self.now_ms += self.rng.gen_range(10..500);
        self.now_ms
    }

    fn new_uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.r#gen()).into_uuid()
    }

    fn persist(&mut self) {
        self.persisted = serde_json::to_string(&self.replica).expect("a replica serialises");
    }

    /// The phone restarts: the replica comes back from its persisted JSON, the in-memory access
    /// token and HTTP connections are gone.
    pub fn restart(&mut self) {
        let restored: Replica =
            serde_json::from_str(&self.persisted).expect("the persisted replica deserialises");
        assert_eq!(
            restored, self.replica,
            "{}: the persisted replica differs from the live one",
            self.label
        );
        self.replica = restored;
        self.access_token.clear();
        self.http = http_client();
        self.stats.restarts += 1;
    }

    /// The access token stops working (as if it expired while offline): the next request gets
    /// 401 and the device refreshes.
    pub fn invalidate_access_token(&mut self) {
        // A well-formed JWT whose signature no longer matches.
        if let Some(pos) = self.access_token.rfind('.') {
            self.access_token.truncate(pos + 1);
            self.access_token
                .push_str("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        }
    }

    fn made_op(&mut self, result: Result<Op, ClientError>) -> Result<OpId, ClientError> {
        match result {
            Ok(op) => {
                let id = op.id;
                self.made.push(op);
                self.persist();
                Ok(id)
            }
            Err(e) => {
                self.stats.refused_locally += 1;
                Err(e)
            }
        }
    }

    /// Creates an entity.
    pub fn create(
        &mut self,
        entity_type: &str,
        fields: BTreeMap<String, Value>,
    ) -> Result<EntityId, ClientError> {
        let (id, now, entity) = (
            OpId(self.new_uuid()),
            self.tick(),
            EntityId(self.new_uuid()),
        );
        let r = self
            .replica
            .create(id, now, entity, entity_type, fields)
            .cloned();
        self.made_op(r).map(|_| entity)
    }

    /// Sets a scalar field.
    pub fn set(
        &mut self,
        entity: EntityId,
        field: &str,
        value: impl Into<Value>,
    ) -> Result<OpId, ClientError> {
        let (id, now) = (OpId(self.new_uuid()), self.tick());
        let r = self
            .replica
            .set(id, now, entity, field, value.into())
            .cloned();
        self.made_op(r)
    }

    /// Adds an element to a set field.
    pub fn add(
        &mut self,
        entity: EntityId,
        field: &str,
        element: impl Into<Value>,
    ) -> Result<OpId, ClientError> {
        let (id, now) = (OpId(self.new_uuid()), self.tick());
        let r = self
            .replica
            .add(id, now, entity, field, element.into())
            .cloned();
        self.made_op(r)
    }

    /// Removes the element's adds this device has seen.
    pub fn remove(
        &mut self,
        entity: EntityId,
        field: &str,
        element: impl Into<Value>,
    ) -> Result<OpId, ClientError> {
        let (id, now) = (OpId(self.new_uuid()), self.tick());
        let r = self
            .replica
            .remove(id, now, entity, field, element.into())
            .cloned();
        self.made_op(r)
    }

    /// Signs a section as the device shows it.
    pub fn sign(&mut self, entity: EntityId, section: &str) -> Result<OpId, ClientError> {
        let (id, now) = (OpId(self.new_uuid()), self.tick());
        let (device, key, signer) = (self.device(), &self.key, self.signer.clone());
        let strokes = self.strokes.clone();
        let r = self
            .replica
            .sign_with(id, now, entity, section, |hash| {
                let statement = sync_protocol::signature::section_statement(
                    device,
                    entity,
                    section,
                    hash,
                    signer,
                    i64::try_from(now).unwrap_or(0),
                    strokes,
                );
                sync_protocol::signature::sign(key, statement).to_value()
            })
            .cloned();
        self.made_op(r)
    }

    /// Draws a signature (PROTOCOL.md §14: a wave shaped by the device's label), uploads its
    /// strokes for the acceptance record `record` (a round's id) in one chunk, and names them
    /// in this device's signatures from now on. Not subject to the fault plan.
    pub async fn upload_strokes(&mut self, record: Uuid) -> anyhow::Result<()> {
        let bump = self.label.bytes().map(u32::from).sum::<u32>() % 40;
        let points: Vec<String> = (0..40u32)
            .map(|i| format!("[{},{},{}]", 20 + i * 12, 90 + (i * 5 + bump) % 60, i * 20))
            .collect();
        let bytes = format!(
            r#"{{"format":"yanshou-strokes/1","width":600,"height":240,"strokes":[{{"points":[{}]}}]}}"#,
            points.join(",")
        )
        .into_bytes();
        let sha256 = sync_protocol::canonical::sha256_hex(&bytes);
        let res = self
            .http
            .post(format!("{}/api/v1/uploads", self.base))
            .bearer_auth(&self.access_token)
            .json(
                &json!({"sha256": sha256, "size": bytes.len(), "record_id": record,
                          "content_type": "application/vnd.yanshou.strokes+json"}),
            )
            .send()
            .await?;
        let upload = json_or_error(res, &format!("{}: declare strokes", self.label)).await?;
        if upload["complete"] != Json::Bool(true) {
            let id = upload["id"].as_str().context("upload id")?.to_owned();
            let res = self
                .http
                .patch(format!("{}/api/v1/uploads/{id}", self.base))
                .bearer_auth(&self.access_token)
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", "0")
                .body(bytes.clone())
                .send()
                .await?;
            ensure!(
                res.status().is_success(),
                "{}: strokes chunk: {}",
                self.label,
                res.status()
            );
            let res = self
                .http
                .post(format!("{}/api/v1/uploads/{id}/finish", self.base))
                .bearer_auth(&self.access_token)
                .send()
                .await?;
            json_or_error(res, &format!("{}: finish strokes", self.label)).await?;
        }
        self.strokes = Value::Map(BTreeMap::from([
            ("sha256".to_owned(), Value::from(sha256)),
            ("size".to_owned(), Value::Int(i64::try_from(bytes.len())?)),
        ]));
        Ok(())
    }

    /// Resolves a conflicted field.
    pub fn resolve(
        &mut self,
        entity: EntityId,
        field: &str,
        value: impl Into<Value>,
        chosen_op: Option<OpId>,
        reason: &str,
    ) -> Result<OpId, ClientError> {
        let (id, now) = (OpId(self.new_uuid()), self.tick());
        let r = self
            .replica
            .resolve(id, now, entity, field, value.into(), chosen_op, reason)
            .cloned();
        self.made_op(r)
    }

    /// Refreshes the session with the refresh token (rotating it).
    pub async fn refresh(&mut self) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/refresh", self.base))
            .json(&json!({"refresh_token": self.refresh_token}))
            .send()
            .await?;
        let session = json_or_error(res, &format!("{}: refresh", self.label)).await?;
        self.access_token = token_of(&session, "access_token")?;
        self.refresh_token = token_of(&session, "refresh_token")?;
        self.stats.refreshes += 1;
        Ok(())
    }

    /// Sends one sync request as is; `None` on 401.
    async fn send(&self, request: &SyncRequest) -> anyhow::Result<Option<SyncResponse>> {
        let res = self
            .http
            .post(format!("{}/api/v1/sync", self.base))
            .bearer_auth(&self.access_token)
            .json(request)
            .send()
            .await
            .with_context(|| format!("{}: POST /api/v1/sync", self.label))?;
        let status = res.status();
        if status == StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        let bytes = res.bytes().await?;
        if status != StatusCode::OK {
            bail!(
                "{}: sync answered HTTP {status}: {}",
                self.label,
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(Some(sync_protocol::decode_response(&bytes).with_context(
            || format!("{}: sync response", self.label),
        )?))
    }

    /// Sends a sync request, refreshing the session once on 401.
    pub async fn post_sync(&mut self, request: &SyncRequest) -> anyhow::Result<SyncResponse> {
        self.stats.requests += 1;
        if let Some(response) = self.send(request).await? {
            return Ok(response);
        }
        self.refresh().await?;
        self.stats.requests += 1;
        match self.send(request).await? {
            Some(response) => Ok(response),
            None => bail!("{}: 401 right after a refresh", self.label),
        }
    }

    /// Sends a request twice at once (both reach the server concurrently).
    async fn post_twice(
        &mut self,
        request: &SyncRequest,
    ) -> anyhow::Result<(SyncResponse, SyncResponse)> {
        self.stats.requests += 2;
        let (a, b) = tokio::join!(self.send(request), self.send(request));
        let (a, b) = (a?, b?);
        let a = match a {
            Some(a) => a,
            None => {
                self.refresh().await?;
                self.post_sync(request).await?
            }
        };
        let b = match b {
            Some(b) => b,
            None => self.post_sync(request).await?,
        };
        Ok((a, b))
    }

    /// Records the server's verdicts (the harness's truth) and hands the response to the
    /// replica.
    fn absorb(&mut self, response: &SyncResponse) -> anyhow::Result<()> {
        for result in &response.results {
            let op = result.op();
            match result {
                OpResult::Applied { .. }
                | OpResult::Conflict { .. }
                | OpResult::Duplicate { .. } => {
                    if let Some(code) = self.rejected.get(&op) {
                        self.anomalies.push(format!(
                            "op {op} was rejected ({code:?}) and later {result:?}"
                        ));
                    }
                    self.acked.entry(op).or_insert_with(|| result.clone());
                }
                OpResult::Rejected { code, .. } => {
                    if let Some(ack) = self.acked.get(&op) {
                        self.anomalies.push(format!(
                            "op {op} was acknowledged ({ack:?}) and later {result:?}"
                        ));
                    }
                    if let Some(prior) = self.rejected.insert(op, *code)
                        && prior != *code
                    {
                        self.anomalies
                            .push(format!("op {op} rejected as {prior:?}, then as {code:?}"));
                    }
                }
                OpResult::Gap { .. } => {}
            }
        }
        let now = self.tick();
        self.replica
            .handle_response(response, now)
            .with_context(|| format!("{}: handle_response", self.label))?;
        self.persist();
        Ok(())
    }

    /// One sync round with the fault plan's faults (or offline).
    pub async fn sync_once(&mut self) -> anyhow::Result<Round> {
        let r: f64 = self.rng.r#gen();
        let plan = self.plan;
        let fault = if r < plan.drop_request {
            Fault::DropRequest
        } else if r < plan.drop_request + plan.drop_response {
            Fault::DropResponse
        } else if r < plan.drop_request + plan.drop_response + plan.duplicate {
            Fault::Duplicate
        } else {
            Fault::None
        };
        self.sync_once_with(fault).await
    }

    /// One sync round with the given fault (offline wins over it).
    pub async fn sync_once_with(&mut self, fault: Fault) -> anyhow::Result<Round> {
        if self.offline_rounds > 0 {
            self.offline_rounds -= 1;
            self.stats.offline_rounds += 1;
            return Ok(Round::Offline);
        }
        let request = self.replica.build_request(None);
        match fault {
            Fault::DropRequest => {
                self.stats.dropped_requests += 1;
                Ok(Round::RequestDropped)
            }
            Fault::DropResponse => {
                self.post_sync(&request).await?;
                self.stats.dropped_responses += 1;
                Ok(Round::ResponseDropped)
            }
            Fault::None => {
                let response = self.post_sync(&request).await?;
                self.absorb(&response)?;
                Ok(Round::Synced {
                    has_more: response.has_more,
                    results: response.results,
                })
            }
            Fault::Duplicate => {
                self.stats.duplicated += 1;
                let (a, b) = self.post_twice(&request).await?;
                let (first, second) = if self.rng.gen_bool(0.5) {
                    (a, b)
                } else {
                    (b, a)
                };
                self.check_twin_results(&request, &first, &second);
                self.absorb(&first)?;
                self.absorb(&second)?;
                let mut results = first.results;
                results.extend(second.results);
                Ok(Round::Synced {
                    has_more: first.has_more || second.has_more,
                    results,
                })
            }
        }
    }

    /// Two concurrent copies of one request: each op is applied (or rejected) by at most one of
    /// them; the other copy sees a duplicate (or the same rejection).
    fn check_twin_results(&mut self, request: &SyncRequest, a: &SyncResponse, b: &SyncResponse) {
        for (i, op) in request.ops.iter().enumerate() {
            let (Some(x), Some(y)) = (a.results.get(i), b.results.get(i)) else {
                self.anomalies
                    .push(format!("a response lacks the result of op {}", op.id));
                continue;
            };
            let committed =
                |r: &OpResult| matches!(r, OpResult::Applied { .. } | OpResult::Conflict { .. });
            if committed(x) && committed(y) {
                self.anomalies.push(format!(
                    "op {} committed twice by a duplicated request: {x:?} / {y:?}",
                    op.id
                ));
            }
        }
    }

    /// Syncs (with the fault plan) until nothing is pending and no page is left; errors after
    /// `max_rounds` rounds. Returns the number of rounds.
    pub async fn sync_until_quiet(&mut self, max_rounds: usize) -> anyhow::Result<usize> {
        for round in 1..=max_rounds {
            if let Round::Synced { has_more, .. } = self.sync_once().await?
                && !has_more
                && self.replica.is_quiet()
            {
                return Ok(round);
            }
        }
        bail!(
            "{}: not quiet after {max_rounds} rounds (outbox {}, offline {})",
            self.label,
            self.replica.outbox().len(),
            self.offline_rounds
        )
    }

    /// Every change in the feed from `cursor` on (paginated), without touching the replica.
    pub async fn pull_changes(&mut self, cursor: u64) -> anyhow::Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut cursor = cursor;
        for _ in 0..100_000 {
            let request = SyncRequest {
                protocol_version: sync_protocol::PROTOCOL_VERSION,
                device: self.device(),
                ops: Vec::new(),
                cursor,
                pull_limit: Some(5_000),
            };
            let response = self.post_sync(&request).await?;
            out.extend(response.changes);
            cursor = response.cursor;
            if !response.has_more {
                return Ok(out);
            }
        }
        bail!("{}: the feed did not end", self.label)
    }

    /// An authenticated GET returning JSON (refreshing once on 401).
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<Json> {
        for _ in 0..2 {
            let res = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.access_token)
                .send()
                .await?;
            if res.status() == StatusCode::UNAUTHORIZED {
                self.refresh().await?;
                continue;
            }
            return json_or_error(res, &format!("GET {path}")).await;
        }
        bail!("{}: GET {path}: 401 after a refresh", self.label)
    }

    /// Checks the harness's record against the replica: every op made is either acknowledged
    /// or rejected (never both, never neither, once the outbox is empty), and every rejection
    /// the server gave is in the replica's rejections with its code.
    pub fn check_accounted(&self) -> Result<(), String> {
        let mut problems = self.anomalies.clone();
        if !self.replica.is_quiet() {
            problems.push(format!("outbox not empty: {:?}", self.replica.outbox()));
        }
        let shown: BTreeMap<OpId, RejectCode> = self
            .replica
            .rejections()
            .iter()
            .map(|r| (r.op.id, r.code))
            .collect();
        for op in &self.made {
            match (self.acked.get(&op.id), self.rejected.get(&op.id)) {
                (Some(_), None) => {}
                (None, Some(code)) => {
                    if shown.get(&op.id) != Some(code) {
                        problems.push(format!(
                            "op {} rejected ({code:?}) but not shown on the device",
                            op.id
                        ));
                    }
                }
                (Some(a), Some(r)) => {
                    problems.push(format!(
                        "op {} both acknowledged ({a:?}) and rejected ({r:?})",
                        op.id
                    ));
                }
                (None, None) => {
                    problems.push(format!("op {} neither acknowledged nor rejected", op.id))
                }
            }
        }
        let made: BTreeSet<OpId> = self.made.iter().map(|o| o.id).collect();
        for id in shown.keys() {
            if !made.contains(id) {
                problems.push(format!("rejection of an op this device never made: {id}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.label, problems.join("\n  ")))
        }
    }
}
