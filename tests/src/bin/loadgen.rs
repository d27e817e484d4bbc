//! Sync load generator and benchmark against the real (release) `yanshou` binary.
//!
//! ```text
//! cargo build --release -p yanshou-server --bin yanshou
//! cargo run --release -p yanshou-tests --bin loadgen -- \
//!     --backend sqlite --devices 100 --batches 20 --ops-per-batch 100 [--pull]
//! ```
//!
//! Starts `yanshou serve` on a fresh database, creates users through its CLI (inspectors of the
//! ten inspecting departments, devices spread over them: many devices per user are enrolled over
//! HTTP), lets the county office create one record per device plus one shared record per
//! department, then runs N concurrent device tasks over loopback HTTP, each pushing B batches of
//! K field edits in its own department's section: mostly distinct fields of its own record,
//! every `--shared-every`th edit one of a few fields of its department's shared record (those
//! become conflicts). With `--pull` every device also pulls the whole feed after each batch.
//! Then it grows the history and measures a pull of the last 100 changes at each size.
//! Prints markdown tables.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::{
    DeviceId, EntityId, Hlc, Op, OpBody, OpId, OpResult, SyncRequest, SyncResponse, Value,
};
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;
use yanshou_tests::{
    Backend, Server, ServerOptions,
    device::{enroll_device, http_client, login},
};

/// The inspecting departments (each owns the section of its code).
const DEPARTMENTS: [&str; 10] = [
    "natural_resources",
    "emergency_management",
    "ecology_environment",
    "water_resources",
    "forestry",
    "agriculture_rural",
    "industry_it",
    "transport",
    "power_supply",
    "public_security",
];

#[derive(Debug, Parser)]
#[command(about = "Yanshou sync load generator")]
struct Args {
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Concurrent devices.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Batches (sync requests with ops) per device.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Field edits per batch (at most 500).
    #[arg(long, default_value_t = 100)]
    ops_per_batch: usize,
    /// Devices also pull every change after each batch (the feed fans out to every device).
    #[arg(long)]
    pull: bool,
    /// Inspector accounts the devices are spread over (default: min(devices, 10)).
    #[arg(long)]
    users: Option<usize>,
    /// Distinct fields each device cycles through on its own record.
    #[arg(long, default_value_t = 20)]
    fields: u64,
    /// Every n-th edit goes to a shared field of the department's shared record (0: never).
    #[arg(long, default_value_t = 10)]
    shared_every: u64,
    /// History sizes (total changes) at which to measure the pull of the last 100 changes;
    /// `0` skips the measurement.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    history: Vec<u64>,
    /// The server binary (default: `yanshou` next to this one, or YANSHOU_BIN).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// YANSHOU_DATABASE_MAX_CONNECTIONS for the server (default: the server's).
    #[arg(long)]
    db_connections: Option<u32>,
    /// Extra environment for the server process, `NAME=VALUE` (repeatable), e.g.
    /// `MALLOC_ARENA_MAX=2`.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
}

/// A device as the load generator drives it: no replica, ops built directly.
///
/// Edits carry `base_rev` 0: on a field the device alone writes, the streak rule applies them
/// (it never needs to pull to know the revision); on a shared field they are concurrent values
/// (conflicts), as they would be for offline phones.
#[derive(Debug)]
struct LoadDevice {
    username: String,
    id: DeviceId,
    access: String,
    refresh: String,
    seq: u64,
    hlc: Hlc,
    cursor: u64,
    dept: &'static str,
    own: EntityId,
    shared: EntityId,
    edits: u64,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    applied: u64,
    conflict: u64,
    duplicate: u64,
    rejected: u64,
    gap: u64,
    http_errors: u64,
    first_error: Option<String>,
    first_rejection: Option<String>,
    pulled_changes: u64,
    latencies: Vec<Duration>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.applied += other.applied;
        self.conflict += other.conflict;
        self.duplicate += other.duplicate;
        self.rejected += other.rejected;
        self.gap += other.gap;
        self.http_errors += other.http_errors;
        self.pulled_changes += other.pulled_changes;
        self.first_error = self.first_error.take().or(other.first_error);
        self.first_rejection = self.first_rejection.take().or(other.first_rejection);
        self.latencies.extend(other.latencies);
    }

    fn count(&mut self, results: &[OpResult]) {
        for r in results {
            match r {
                OpResult::Applied { .. } => self.applied += 1,
                OpResult::Conflict { .. } => self.conflict += 1,
                OpResult::Duplicate { .. } => self.duplicate += 1,
                OpResult::Rejected { code, message, .. } => {
                    self.rejected += 1;
                    if self.first_rejection.is_none() {
                        self.first_rejection = Some(format!("{code:?}: {message}"));
                    }
                }
                OpResult::Gap { .. } => self.gap += 1,
            }
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0)
}

impl LoadDevice {
    fn next_op(&mut self, entity: EntityId, body: OpBody) -> Op {
        let now = now_ms();
        self.hlc = if now > self.hlc.wall_ms {
            Hlc::new(now, 0)
        } else {
            self.hlc.successor()
        };
        let op = Op {
            id: OpId(Uuid::now_v7()),
            device: self.id,
            seq: self.seq,
            hlc: self.hlc,
            entity,
            body,
        };
        self.seq += 1;
        op
    }

    /// `k` field edits: distinct fields of the own record, every `shared_every`th a shared one.
    fn edits(&mut self, k: usize, fields: u64, shared_every: u64) -> Vec<Op> {
        (0..k)
            .map(|_| {
                self.edits += 1;
                let n = self.edits;
                let (entity, field) = if shared_every > 0 && n.is_multiple_of(shared_every) {
                    (self.shared, format!("{}/shared.{}", self.dept, n % 4))
                } else {
                    (self.own, format!("{}/item{}.result", self.dept, n % fields))
                };
                let body = OpBody::Set {
                    field,
                    value: Value::from(format!("measured {n}")),
                    base_rev: 0,
                };
                self.next_op(entity, body)
            })
            .collect()
    }

    /// One sync request: refreshes on 401, retries server errors (a retry is safe: the same
    /// ops under the same sequence numbers are duplicates). Returns the response and latency.
    async fn sync(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        request: &SyncRequest,
        tally: &mut Tally,
    ) -> anyhow::Result<SyncResponse> {
        let body = serde_json::to_vec(request)?;
        self.send(http, base, body, tally).await
    }

    /// Send an encoded sync request (see [`LoadDevice::sync`]).
    async fn send(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        body: Vec<u8>,
        tally: &mut Tally,
    ) -> anyhow::Result<SyncResponse> {
        for _attempt in 0..20 {
            let started = Instant::now();
            let res = http
                .post(format!("{base}/api/v1/sync"))
                .bearer_auth(&self.access)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    tally.http_errors += 1;
                    tally.first_error.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            let status = res.status();
            let bytes = res.bytes().await?;
            if status == StatusCode::OK {
                tally.latencies.push(started.elapsed());
                return Ok(sync_protocol::decode_response(&bytes)?);
            }
            if status == StatusCode::UNAUTHORIZED {
                let res = http
                    .post(format!("{base}/api/v1/auth/refresh"))
                    .json(&json!({"refresh_token": self.refresh}))
                    .send()
                    .await?;
                let session: serde_json::Value = res.json().await?;
                self.access = session["access_token"]
                    .as_str()
                    .context("refresh")?
                    .to_owned();
                self.refresh = session["refresh_token"]
                    .as_str()
                    .context("refresh")?
                    .to_owned();
                continue;
            }
            tally.http_errors += 1;
            tally.first_error.get_or_insert_with(|| {
                format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))
            });
            if status.is_client_error() {
                bail!(
                    "{}: sync HTTP {status}: {}",
                    self.username,
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        bail!("{}: sync failed 20 times", self.username)
    }

    /// Push `ops` (and pull a page, or one change when not pulling).
    async fn push(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        ops: Vec<Op>,
        pull: bool,
        tally: &mut Tally,
    ) -> anyhow::Result<SyncResponse> {
        let request = SyncRequest {
            protocol_version: sync_protocol::PROTOCOL_VERSION,
            device: self.id,
            ops,
            cursor: self.cursor,
            pull_limit: Some(if pull { 500 } else { 1 }),
        };
        let response = self.sync(http, base, &request, tally).await?;
        tally.count(&response.results);
        if pull {
            tally.pulled_changes += response.changes.len() as u64;
            self.cursor = response.cursor;
        } else {
            // Not following the feed: stay at the device's own last commit.
            for r in &response.results {
                if let OpResult::Applied { commit_seq, .. }
                | OpResult::Conflict { commit_seq, .. } = r
                {
                    self.cursor = self.cursor.max(*commit_seq);
                }
            }
        }
        Ok(response)
    }

    /// Pull until the feed is exhausted.
    async fn pull_all(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        for _ in 0..1_000_000 {
            let response = self.push(http, base, Vec::new(), true, tally).await?;
            if !response.has_more {
                return Ok(());
            }
        }
        bail!("the feed did not end")
    }
}

/// Logs in bound to a fresh device of `username`.
async fn new_device(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    user_token: &str,
    dept: &'static str,
    n: usize,
) -> anyhow::Result<LoadDevice> {
    let id = enroll_device(http, base, user_token, &format!("{username} device {n}")).await?;
    let session = login(http, base, username, Some(id)).await?;
    Ok(LoadDevice {
        username: username.to_owned(),
        id: DeviceId(id),
        access: session["access_token"]
            .as_str()
            .context("access token")?
            .to_owned(),
        refresh: session["refresh_token"]
            .as_str()
            .context("refresh token")?
            .to_owned(),
        seq: 1,
        hlc: Hlc::ZERO,
        cursor: 0,
        dept,
        own: EntityId(Uuid::now_v7()),
        shared: EntityId(Uuid::nil()),
        edits: 0,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Samples the server's VmRSS until `stop`; returns the largest sample.
fn watch_rss(server_pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{server_pid}/status"))
                && let Some(kb) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            {
                max = max.max(kb);
            }
        }
        max
    })
}

struct HistoryRow {
    changes: u64,
    fill_secs: f64,
    fill_ops: u64,
    pull_p50: f64,
    pull_p99: f64,
    push_p50: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.ops_per_batch == 0 || args.ops_per_batch > 500 || args.devices == 0 {
        bail!("--devices must be ≥ 1 and --ops-per-batch in 1..=500");
    }
    let mut env = vec![];
    if let Some(n) = args.db_connections {
        env.push(("YANSHOU_DATABASE_MAX_CONNECTIONS".to_owned(), n.to_string()));
    }
    for kv in &args.server_env {
        let (k, v) = kv.split_once('=').context("--server-env NAME=VALUE")?;
        env.push((k.to_owned(), v.to_owned()));
    }
    let server = Server::start_with(
        args.backend,
        ServerOptions {
            env,
            bin: args.bin.clone(),
        },
    )
    .await?;
    let base = server.base.clone();
    let http = http_client();
    let setup_started = Instant::now();
    let rss_idle = server.rss_kb().map_or(0, |r| r.0);

    // Users through the CLI (the slow part: one process and one argon2 hash each).
    let n_users = args.users.unwrap_or(args.devices.min(10)).max(1);
    let users: Vec<(String, &'static str)> = (0..n_users)
        .map(|i| {
            let dept = DEPARTMENTS[i % DEPARTMENTS.len()];
            (format!("insp{i}.{dept}"), dept)
        })
        .collect();
    server.add_user("office", "county_office", None).await?;
    for (name, dept) in &users {
        server
            .add_user(name, "department_inspector", Some(dept))
            .await?;
    }

    // Devices: many per user, enrolled over HTTP; one bound login (argon2) each.
    let gate = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    let mut user_tokens = Vec::new();
    for (name, _) in &users {
        let session = login(&http, &base, name, None).await?;
        user_tokens.push(
            session["access_token"]
                .as_str()
                .context("token")?
                .to_owned(),
        );
    }
    for n in 0..args.devices {
        let u = n % users.len();
        let (name, dept) = users[u].clone();
        let token = user_tokens[u].clone();
        let (http, base, gate) = (http.clone(), base.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire().await?;
            new_device(&http, &base, &name, &token, dept, n).await
        });
    }
    let mut devices = Vec::new();
    while let Some(d) = set.join_next().await {
        devices.push(d??);
    }
    let office_session = login(&http, &base, "office", None).await?;
    let mut office = new_device(
        &http,
        &base,
        "office",
        office_session["access_token"].as_str().context("token")?,
        "",
        0,
    )
    .await?;

    // Records: one per device, one shared per department.
    let shared: Vec<(&str, EntityId)> = DEPARTMENTS
        .iter()
        .map(|d| (*d, EntityId(Uuid::now_v7())))
        .collect();
    for d in &mut devices {
        d.shared = shared
            .iter()
            .find(|(dept, _)| *dept == d.dept)
            .map(|(_, e)| *e)
            .context("shared record")?;
    }
    let creates: Vec<(EntityId, String)> = devices
        .iter()
        .map(|d| (d.own, format!("mine of {}", d.username)))
        .chain(shared.iter().map(|(d, e)| (*e, format!("shared {d}"))))
        .collect();
    let mut setup_tally = Tally::default();
    for chunk in creates.chunks(500) {
        let ops = chunk
            .iter()
            .map(|(entity, mine)| {
                office.next_op(
                    *entity,
                    OpBody::Create {
                        entity_type: "acceptance_record".into(),
                        fields: [("mine".to_owned(), Value::from(mine.as_str()))]
                            .into_iter()
                            .collect(),
                    },
                )
            })
            .collect();
        office
            .push(&http, &base, ops, false, &mut setup_tally)
            .await?;
    }
    if setup_tally.applied != creates.len() as u64 {
        bail!("record creation failed: {setup_tally:?}");
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let rss_ready = server.rss_kb().map_or(0, |r| r.0);
    eprintln!(
        "setup: {} users, {} devices, {} records in {setup_secs:.1} s",
        n_users + 1,
        devices.len(),
        creates.len()
    );

    // The load: every device pushes B batches of K edits, concurrently.
    let stop = Arc::new(AtomicBool::new(false));
    let rss_watch = watch_rss(server.pid(), stop.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(devices.len() + 1));
    let mut set = JoinSet::new();
    for mut d in devices {
        let (http, base, barrier) = (http.clone(), base.clone(), barrier.clone());
        let (b, k, fields, shared_every, pull) = (
            args.batches,
            args.ops_per_batch,
            args.fields,
            args.shared_every,
            args.pull,
        );
        set.spawn(async move {
            let mut tally = Tally::default();
            // Build the edits before the clock starts: the timed phase measures syncing. Without
            // `--pull` the request bodies are encoded beforehand too (a phone encodes on its own
            // CPU; here the generator shares the server's two cores).
            let prebuilt: Vec<Vec<Op>> = (0..b).map(|_| d.edits(k, fields, shared_every)).collect();
            if pull {
                barrier.wait().await;
                for ops in prebuilt {
                    let response = d.push(&http, &base, ops, pull, &mut tally).await?;
                    if response.has_more {
                        d.pull_all(&http, &base, &mut tally).await?;
                    }
                }
            } else {
                let bodies = prebuilt
                    .into_iter()
                    .map(|ops| {
                        serde_json::to_vec(&SyncRequest {
                            protocol_version: sync_protocol::PROTOCOL_VERSION,
                            device: d.id,
                            ops,
                            cursor: d.cursor,
                            pull_limit: Some(1),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                barrier.wait().await;
                for body in bodies {
                    let response = d.send(&http, &base, body, &mut tally).await?;
                    tally.count(&response.results);
                }
            }
            anyhow::Ok((d, tally))
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let cpu_before = server.cpu_seconds().unwrap_or(0.0);
    let mut tally = Tally::default();
    let mut devices = Vec::new();
    while let Some(r) = set.join_next().await {
        let (d, t) = r??;
        devices.push(d);
        tally.absorb(t);
    }
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu_seconds().unwrap_or(0.0) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let rss_load_max = rss_watch.await.unwrap_or(0);
    let (rss_after, rss_hwm) = server.rss_kb().unwrap_or((0, 0));
    tally.latencies.sort();
    let accepted = tally.applied + tally.conflict;

    println!(
        "\n### Sync load on {}: {} devices × {} batches × {} edits{}\n",
        args.backend.name(),
        args.devices,
        args.batches,
        args.ops_per_batch,
        if args.pull { ", pulling" } else { "" }
    );
    println!(
        "| backend | devices | batches × ops | accepted field ops | conflicts | rejected | http errors | wall s | **field ops/s** | sync p50 ms | sync p99 ms | requests | pulled changes | RSS idle MB | RSS ready MB | RSS max during load MB | RSS after MB | VmHWM MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} × {} | {} | {} | {} | {} | {:.2} | **{:.0}** | {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        args.backend.name(),
        args.devices,
        args.batches,
        args.ops_per_batch,
        accepted,
        tally.conflict,
        tally.rejected,
        tally.http_errors,
        wall,
        accepted as f64 / wall,
        percentile(&tally.latencies, 0.5),
        percentile(&tally.latencies, 0.99),
        tally.latencies.len(),
        tally.pulled_changes,
        mb(rss_idle),
        mb(rss_ready),
        mb(rss_load_max),
        mb(rss_after),
        mb(rss_hwm),
    );
    if accepted > 0 && server_cpu > 0.0 {
        let per_op_us = server_cpu * 1e6 / accepted as f64;
        println!(
            "\nserver CPU during the load: {server_cpu:.2} s ({:.0}% of 2 cores; the load \
             generator shares the machine) = {per_op_us:.1} µs per accepted field op → the \
             server alone on 2 cores: ~{:.0} field ops/s",
            server_cpu / wall / 2.0 * 100.0,
            2e6 / per_op_us
        );
    }
    if let Some(e) = &tally.first_error {
        println!(
            "\n{} failed requests were retried ({} ops answered `duplicate` on a retry); first: {e}",
            tally.http_errors, tally.duplicate
        );
    }
    if let Some(r) = &tally.first_rejection {
        println!("\nfirst rejection: {r}");
    }

    // History: grow the feed and time a pull of the last 100 changes at each size.
    let levels: Vec<u64> = args.history.iter().copied().filter(|l| *l > 0).collect();
    if !levels.is_empty() {
        let mut rows = Vec::new();
        let head = Arc::new(AtomicU64::new(
            devices.iter().map(|d| d.cursor).max().unwrap_or(0),
        ));
        // Fillers: two devices (one per core) pushing 500-edit batches on their own records.
        let mut fillers: Vec<LoadDevice> = devices.drain(..devices.len().min(2)).collect();
        for level in levels {
            let fill_started = Instant::now();
            let mut set = JoinSet::new();
            let before = head.load(Ordering::Relaxed);
            for mut f in fillers.drain(..) {
                let (http, base, head) = (http.clone(), base.clone(), head.clone());
                let fields = args.fields.max(50);
                set.spawn(async move {
                    let mut tally = Tally::default();
                    while head.load(Ordering::Relaxed) < level {
                        let ops = f.edits(500, fields, 0);
                        let response = f.push(&http, &base, ops, false, &mut tally).await?;
                        for r in &response.results {
                            if let OpResult::Applied { commit_seq, .. } = r {
                                head.fetch_max(*commit_seq, Ordering::Relaxed);
                            }
                        }
                    }
                    anyhow::Ok((f, tally))
                });
            }
            let mut fill = Tally::default();
            while let Some(r) = set.join_next().await {
                let (f, t) = r??;
                fillers.push(f);
                fill.absorb(t);
            }
            let fill_secs = fill_started.elapsed().as_secs_f64();
            let top = head.load(Ordering::Relaxed);
            if fill.rejected > 0 {
                bail!("fill rejected ops: {:?}", fill.first_rejection);
            }

            // The pull of the last 100 changes, 30 times.
            let probe = &mut fillers[0];
            let mut pulls = Tally::default();
            for _ in 0..30 {
                let request = SyncRequest {
                    protocol_version: sync_protocol::PROTOCOL_VERSION,
                    device: probe.id,
                    ops: Vec::new(),
                    cursor: top - 100,
                    pull_limit: Some(100),
                };
                let response = probe.sync(&http, &base, &request, &mut pulls).await?;
                if response.changes.len() != 100 {
                    bail!(
                        "pull after {} returned {} changes",
                        top - 100,
                        response.changes.len()
                    );
                }
            }
            pulls.latencies.sort();
            // A push of 50 edits at this history size, 20 times.
            let mut pushes = Tally::default();
            for _ in 0..20 {
                let ops = probe.edits(50, 50, 0);
                probe.push(&http, &base, ops, false, &mut pushes).await?;
            }
            head.fetch_max(probe.cursor, Ordering::Relaxed);
            pushes.latencies.sort();
            rows.push(HistoryRow {
                changes: top,
                fill_secs,
                fill_ops: top - before,
                pull_p50: percentile(&pulls.latencies, 0.5),
                pull_p99: percentile(&pulls.latencies, 0.99),
                push_p50: percentile(&pushes.latencies, 0.5),
            });
            eprintln!("history {top}: filled in {fill_secs:.1} s");
        }
        let (_, hwm) = server.rss_kb().unwrap_or((0, 0));
        println!(
            "\n### Pull cost vs history ({}): pull of the last 100 changes (cursor = head − 100)\n",
            args.backend.name()
        );
        println!(
            "| changes in feed | pull last 100: p50 ms | p99 ms | push 50 edits: p50 ms | fill rate (500-edit batches, 2 devices) ops/s |"
        );
        println!("|---|---|---|---|---|");
        for r in rows {
            let fill = if r.fill_ops == 0 {
                "— (reached by the load phase)".to_owned()
            } else {
                format!("{:.0}", r.fill_ops as f64 / r.fill_secs)
            };
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {fill} |",
                r.changes, r.pull_p50, r.pull_p99, r.push_p50,
            );
        }
        println!("\nserver VmHWM after history: {:.0} MB", mb(hwm));
    }
    Ok(())
}
