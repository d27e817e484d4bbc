//! Photo upload benchmark against the real (release) `yanshou` binary (issue #10, "Benchmark":
//! upload throughput over loopback in 1 MiB chunks, and server RSS while 20 uploads run at once).
//!
//! ```text
//! cargo build --release -p yanshou-server --bin yanshou
//! cargo run --release -p yanshou-tests --bin uploadbench -- --backend sqlite [--concurrency 20]
//! ```
//!
//! Starts `yanshou serve` on a fresh database, creates a county office, a township officer and
//! forestry inspectors through its CLI, lets them create a mine to cancel (propose, approve) and
//! open its acceptance round, and enrolls one device per uploader over HTTP (each uploader its
//! own device-bound session). The photo is a real 12-megapixel JPEG with camera EXIF made in
//! code (`sample_jpeg`, textured like a photo, so its size is a camera's); every upload sends
//! distinct bytes (its own trailer after the JPEG end marker, as phones append motion-photo
//! data), so each is a new blob and goes through the whole ingest.
//!
//! An upload is the API's three steps: `POST /uploads` (declare hash and size), `PATCH
//! /uploads/{id}` per chunk with `Upload-Offset`, `POST /uploads/{id}/finish` (the server joins
//! the parts, checks size and SHA-256, sniffs, reads EXIF, makes both thumbnails, stores the
//! blob). Measured: single uploads one after another (wall time of each step and MB/s), then
//! N uploads started at once (total MB/s, per-upload p50/p99, finish p50/p99, the server's RSS
//! before, the largest sample while they run (polled every `--rss-poll-ms`) and after).
//! Prints markdown tables.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use tokio::{sync::Barrier, task::JoinSet};
use uuid::Uuid;
use yanshou_server::{
    blobs::BlobHash,
    photos::{exif::build::ExifSpec, sample::sample_jpeg},
};
use yanshou_tests::{
    Backend, Server, ServerOptions,
    device::{enroll_device, http_client, login, open_cancel_round},
};

const MIB: usize = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Yanshou photo upload benchmark")]
struct Args {
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Uploads started at once in the concurrent phase; a list runs one phase per value.
    #[arg(long, value_delimiter = ',', default_value = "20")]
    concurrency: Vec<usize>,
    /// Single uploads one after another (the first is on a cold server).
    #[arg(long, default_value_t = 5)]
    single: usize,
    /// Chunk size in bytes (the server accepts at most 1 MiB).
    #[arg(long, default_value_t = MIB)]
    chunk: usize,
    /// Photo width in pixels.
    #[arg(long, default_value_t = 4000)]
    width: u32,
    /// Photo height in pixels.
    #[arg(long, default_value_t = 3000)]
    height: u32,
    /// JPEG quality of the photo (92 is a phone camera's; the size is printed).
    #[arg(long, default_value_t = 92)]
    quality: u8,
    /// Inspector accounts the uploaders' devices are spread over.
    #[arg(long, default_value_t = 4)]
    users: usize,
    /// How often the server's RSS is sampled during the concurrent phase, ms.
    #[arg(long, default_value_t = 20)]
    rss_poll_ms: u64,
    /// The server binary (default: `yanshou` next to this one, or YANSHOU_BIN).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Extra environment for the server process, `NAME=VALUE` (repeatable), e.g.
    /// `MALLOC_ARENA_MAX=2`.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
}

/// An uploader: one enrolled device and its bound session.
#[derive(Debug, Clone)]
struct Uploader {
    label: String,
    access: String,
}

/// Wall times of one upload's steps.
#[derive(Debug, Clone, Copy)]
struct Timing {
    bytes: usize,
    create: Duration,
    chunks: Duration,
    finish: Duration,
}

impl Timing {
    fn total(&self) -> Duration {
        self.create + self.chunks + self.finish
    }
}

/// Megabytes (10^6 bytes) per second.
fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib_of_kb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn json_or_error(res: reqwest::Response, what: &str) -> anyhow::Result<(StatusCode, Json)> {
    let status = res.status();
    let text = res.text().await.with_context(|| format!("{what}: body"))?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    if text.is_empty() {
        return Ok((status, Json::Null));
    }
    let body = serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))?;
    Ok((status, body))
}

fn access_token(session: &Json) -> anyhow::Result<String> {
    Ok(session["access_token"]
        .as_str()
        .with_context(|| format!("session without an access token: {session}"))?
        .to_owned())
}

/// The photo every upload starts from: 12 megapixels with a phone's EXIF.
fn base_photo(width: u32, height: u32, quality: u8) -> Vec<u8> {
    let exif = ExifSpec {
        lat: Some(28.234_567),
        lon: Some(114.876_543),
        altitude_m: Some(85.5),
        accuracy_m: Some(4.2),
        date_time_original: Some("2026:12:06 10:20:30".into()),
        offset_time_original: Some("+08:00".into()),
        make: Some("Xiaomi".into()),
        model: Some("Redmi Note 13".into()),
        orientation: Some(1),
    };
    sample_jpeg(width, height, Some(&exif), quality)
}

/// `base` with a trailer after its end marker that makes upload `n` distinct bytes.
fn variant(base: &[u8], n: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(base.len() + 64);
    bytes.extend_from_slice(base);
    bytes.extend_from_slice(format!("uploadbench trailer {n:020} {}", Uuid::new_v4()).as_bytes());
    Bytes::from(bytes)
}

/// One upload through the API: create, chunks, finish. Checks every answer.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    who: &Uploader,
    record: Uuid,
    photo: Bytes,
    chunk: usize,
) -> anyhow::Result<Timing> {
    let sha256 = BlobHash::of(&photo).hex();
    let size = photo.len();
    let started = Instant::now();
    let res = http
        .post(format!("{base}/api/v1/uploads"))
        .bearer_auth(&who.access)
        .json(
            &json!({"sha256": sha256, "size": size, "content_type": "image/jpeg",
                      "record_id": record}),
        )
        .send()
        .await?;
    let (status, created) = json_or_error(res, &format!("{}: create upload", who.label)).await?;
    ensure!(
        status == StatusCode::CREATED,
        "{}: create upload answered {status}, not 201: {created}",
        who.label
    );
    let id = created["id"].as_str().context("upload id")?.to_owned();
    let create = started.elapsed();

    let started = Instant::now();
    let mut offset = 0;
    while offset < size {
        let end = (offset + chunk).min(size);
        let res = http
            .patch(format!("{base}/api/v1/uploads/{id}"))
            .bearer_auth(&who.access)
            .header("Upload-Offset", offset.to_string())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/offset+octet-stream",
            )
            .body(photo.slice(offset..end))
            .send()
            .await?;
        let status = res.status();
        let next = res
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if status != StatusCode::NO_CONTENT || next != Some(end) {
            let text = res.text().await.unwrap_or_default();
            bail!(
                "{}: chunk at {offset}: HTTP {status}, Upload-Offset {next:?} (expected {end}): \
                 {text}",
                who.label
            );
        }
        offset = end;
    }
    let chunks = started.elapsed();

    let started = Instant::now();
    let res = http
        .post(format!("{base}/api/v1/uploads/{id}/finish"))
        .bearer_auth(&who.access)
        .send()
        .await?;
    let (status, stored) = json_or_error(res, &format!("{}: finish upload", who.label)).await?;
    let finish = started.elapsed();
    ensure!(
        status == StatusCode::OK && stored["sha256"] == sha256.as_str(),
        "{}: finish answered {status}: {stored}",
        who.label
    );
    Ok(Timing {
        bytes: size,
        create,
        chunks,
        finish,
    })
}

/// Samples the server's VmRSS every `every` until `stop`; returns the largest sample (kB).
fn watch_rss(
    server_pid: u32,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{server_pid}/status"))
                && let Some(kb) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            {
                max = max.max(kb);
            }
            if stop.load(Ordering::Relaxed) {
                return max;
            }
            tick.tick().await;
        }
    })
}

/// The record to upload to: a 注销 (cancel) mine's first acceptance round.
async fn open_record(server: &Server, http: &reqwest::Client, base: &str) -> anyhow::Result<Uuid> {
    server.add_user("office", "county_office", None).await?;
    let office = access_token(&login(http, base, "office", None).await?)?;
    open_cancel_round(server, http, base, &office).await
}

/// `n` uploaders spread over `users` forestry inspectors, each its own enrolled device.
async fn uploaders(
    server: &Server,
    http: &reqwest::Client,
    base: &str,
    users: usize,
    n: usize,
) -> anyhow::Result<Vec<Uploader>> {
    let users = users.clamp(1, n.max(1));
    let mut tokens = Vec::new();
    for u in 0..users {
        let name = format!("insp{u}.forestry");
        server
            .add_user(&name, "department_inspector", Some("forestry"))
            .await?;
        let token = access_token(&login(http, base, &name, None).await?)?;
        tokens.push((name, token));
    }
    let mut set = JoinSet::new();
    for i in 0..n {
        let (name, token) = tokens[i % users].clone();
        let (http, base) = (http.clone(), base.to_owned());
        set.spawn(async move {
            let label = format!("{name}/phone{i}");
            let device = enroll_device(&http, &base, &token, &label).await?;
            let session = login(&http, &base, &name, Some(device)).await?;
            anyhow::Ok((
                i,
                Uploader {
                    label,
                    access: access_token(&session)?,
                },
            ))
        });
    }
    let mut out = Vec::new();
    while let Some(u) = set.join_next().await {
        out.push(u??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, u)| u).collect())
}

struct ConcurrentRow {
    uploads: usize,
    bytes: usize,
    wall: Duration,
    totals: Vec<Duration>,
    finishes: Vec<Duration>,
    chunk_rates: Vec<f64>,
    rss_before: u64,
    rss_max: u64,
    rss_after: u64,
    rss_settled: u64,
    cpu: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MIB).contains(&args.chunk),
        "--chunk must be in 1..={MIB}"
    );
    ensure!(
        args.concurrency.iter().all(|&c| c >= 1),
        "--concurrency values must be ≥ 1"
    );
    let mut env = vec![];
    for kv in &args.server_env {
        let (k, v) = kv.split_once('=').context("--server-env NAME=VALUE")?;
        env.push((k.to_owned(), v.to_owned()));
    }

    let started = Instant::now();
    let photo = base_photo(args.width, args.height, args.quality);
    eprintln!(
        "photo: {}×{} JPEG, quality {}, {} bytes ({:.2} MB), made in {:.1} s",
        args.width,
        args.height,
        args.quality,
        photo.len(),
        photo.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

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
    let rss_idle = server.rss_kb().map_or(0, |r| r.0);
    let setup = Instant::now();
    let record = open_record(&server, &http, &base).await?;
    let max_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let devices = uploaders(&server, &http, &base, args.users, max_concurrency.max(1)).await?;
    eprintln!(
        "setup: record {record}, {} devices in {:.1} s",
        devices.len(),
        setup.elapsed().as_secs_f64()
    );
    let rss_ready = server.rss_kb().map_or(0, |r| r.0);
    let mut serial = 0u64;

    // (1) One upload alone, several times in a row.
    let mut singles = Vec::new();
    for _ in 0..args.single {
        serial += 1;
        let bytes = variant(&photo, serial);
        let cpu0 = server.cpu_seconds().unwrap_or(0.0);
        let t = upload(&http, &base, &devices[0], record, bytes, args.chunk).await?;
        let cpu = server.cpu_seconds().unwrap_or(0.0) - cpu0;
        singles.push((t, cpu));
    }
    let rss_after_singles = server.rss_kb().map_or(0, |r| r.0);

    // (2) N uploads at once, each from its own device.
    let mut rows = Vec::new();
    for &n in &args.concurrency {
        let photos: Vec<Bytes> = (0..n)
            .map(|_| {
                serial += 1;
                variant(&photo, serial)
            })
            .collect();
        let rss_before = server.rss_kb().map_or(0, |r| r.0);
        let cpu0 = server.cpu_seconds().unwrap_or(0.0);
        let stop = Arc::new(AtomicBool::new(false));
        let watch = watch_rss(
            server.pid(),
            Duration::from_millis(args.rss_poll_ms.max(1)),
            stop.clone(),
        );
        let barrier = Arc::new(Barrier::new(n + 1));
        let mut set = JoinSet::new();
        for (i, bytes) in photos.into_iter().enumerate() {
            let (http, base, barrier) = (http.clone(), base.clone(), barrier.clone());
            let who = devices[i].clone();
            let chunk = args.chunk;
            set.spawn(async move {
                barrier.wait().await;
                upload(&http, &base, &who, record, bytes, chunk).await
            });
        }
        barrier.wait().await;
        let t0 = Instant::now();
        let mut timings = Vec::new();
        while let Some(t) = set.join_next().await {
            timings.push(t??);
        }
        let wall = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        let rss_max = watch.await?;
        let cpu = server.cpu_seconds().unwrap_or(0.0) - cpu0;
        let rss_after = server.rss_kb().map_or(0, |r| r.0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_settled = server.rss_kb().map_or(0, |r| r.0);
        let mut totals: Vec<Duration> = timings.iter().map(Timing::total).collect();
        let mut finishes: Vec<Duration> = timings.iter().map(|t| t.finish).collect();
        totals.sort();
        finishes.sort();
        rows.push(ConcurrentRow {
            uploads: n,
            bytes: timings.iter().map(|t| t.bytes).sum(),
            wall,
            totals,
            finishes,
            chunk_rates: timings
                .iter()
                .map(|t| mb_per_s(t.bytes, t.chunks))
                .collect(),
            rss_before,
            rss_max: rss_max.max(rss_after),
            rss_after,
            rss_settled,
            cpu,
        });
        eprintln!("{n} at once: {:.1} s", wall.as_secs_f64());
    }
    let hwm = server.rss_kb().map_or(0, |r| r.1);

    // The photos are in the record: every upload linked to the round.
    let check = access_token(&login(&http, &base, "insp0.forestry", None).await?)?;
    let res = http
        .get(format!("{base}/api/v1/rounds/{record}/photos"))
        .bearer_auth(&check)
        .send()
        .await?;
    let (_, listed) = json_or_error(res, "round photos").await?;
    let listed = listed
        .as_array()
        .or_else(|| listed["photos"].as_array())
        .map(Vec::len);

    let backend = match args.backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    println!(
        "\n### Photo uploads over loopback ({backend}): {}×{} JPEG, {:.2} MB, {} KiB chunks\n",
        args.width,
        args.height,
        photo.len() as f64 / 1e6,
        args.chunk / 1024
    );
    println!("One upload at a time (run 1 is the first on a fresh server):\n");
    println!(
        "| run | create ms | chunks ms | chunks MB/s | finish (ingest) ms | total ms | total MB/s | server CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (t, cpu)) in singles.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |",
            i + 1,
            ms(t.create),
            ms(t.chunks),
            mb_per_s(t.bytes, t.chunks),
            ms(t.finish),
            ms(t.total()),
            mb_per_s(t.bytes, t.total()),
            cpu
        );
    }
    if singles.len() > 2 {
        // Without the cold first run.
        let warm = &singles[1..];
        let median = |f: &dyn Fn(&Timing) -> Duration| {
            let mut v: Vec<Duration> = warm.iter().map(|(t, _)| f(t)).collect();
            v.sort();
            percentile(&v, 0.5)
        };
        let (create, chunks, finish, total) = (
            median(&|t| t.create),
            median(&|t| t.chunks),
            median(&|t| t.finish),
            median(&|t| t.total()),
        );
        let bytes = photo.len();
        println!(
            "| median of runs 2–{} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | |",
            singles.len(),
            ms(create),
            ms(chunks),
            mb_per_s(bytes, chunks),
            ms(finish),
            ms(total),
            mb_per_s(bytes, total)
        );
    }

    println!("\nUploads started at once, one device each:\n");
    println!(
        "| uploads | MB | wall s | total MB/s | per upload p50 / p99 s | chunks MB/s per upload (median) | finish p50 / p99 ms | server CPU s | RSS before → max → after (+2 s) MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let mut rates = r.chunk_rates.clone();
        rates.sort_by(f64::total_cmp);
        let median_rate = rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "| {} | {:.1} | {:.2} | {:.1} | {:.2} / {:.2} | {:.0} | {:.0} / {:.0} | {:.1} | {:.0} → {:.0} → {:.0} ({:.0}) |",
            r.uploads,
            r.bytes as f64 / 1e6,
            r.wall.as_secs_f64(),
            mb_per_s(r.bytes, r.wall),
            percentile(&r.totals, 0.5).as_secs_f64(),
            percentile(&r.totals, 0.99).as_secs_f64(),
            median_rate,
            ms(percentile(&r.finishes, 0.5)),
            ms(percentile(&r.finishes, 0.99)),
            r.cpu,
            mib_of_kb(r.rss_before),
            mib_of_kb(r.rss_max),
            mib_of_kb(r.rss_after),
            mib_of_kb(r.rss_settled),
        );
    }
    println!(
        "\nserver RSS: idle {:.0} MiB, after setup {:.0} MiB, after the single uploads {:.0} MiB, \
         peak (VmHWM) {:.0} MiB; photos in the record: {}",
        mib_of_kb(rss_idle),
        mib_of_kb(rss_ready),
        mib_of_kb(rss_after_singles),
        mib_of_kb(hwm),
        listed.map_or("?".to_owned(), |n| n.to_string()),
    );
    let expected = args.single + args.concurrency.iter().sum::<usize>();
    if let Some(n) = listed
        && n != expected
    {
        bail!("the record lists {n} photos, {expected} were uploaded");
    }
    Ok(())
}
