//! Identity benchmark: cold start, idle memory, login and token-verification throughput.
//!
//! `cargo bench -p yanshou-server --bench identity` (release build). Runs the real `yanshou`
//! binary on loopback, on SQLite and (when reachable) PostgreSQL. Prints a table; asserts nothing.
//! Environment: `BENCH_PG_URL` (default postgres://postgres@127.0.0.1:5432/test).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_yanshou");
const PASSWORD: &str = "bench-password-1";

struct Server {
    child: Child,
    base: String,
}

async fn start(dir: &PathBuf, database_url: &str) -> (Server, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env("YANSHOU_LISTEN", "127.0.0.1:0")
        .env("YANSHOU_DATABASE_URL", database_url)
        .env("YANSHOU_LOG", "warn")
        .env("YANSHOU_DATABASE_MAX_CONNECTIONS", "8")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next_line().await.unwrap().expect("server exited");
        if let Some(url) = line.strip_prefix("yanshou listening on ") {
            break url.to_owned();
        }
    };
    // Cold start ends when the first request through the store succeeds.
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    let elapsed = t0.elapsed();
    (Server { child, base }, elapsed)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Run `total` requests with `concurrency` workers; returns (requests/s, p50, p99).
async fn load<F, Fut>(total: usize, concurrency: usize, make: F) -> (f64, Duration, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let t0 = Instant::now();
    let per = total / concurrency;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let s = Instant::now();
                assert!(make(w * per + i).await, "request failed");
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

async fn bench_backend(name: &str, database_url: String, dir: PathBuf) {
    // Cold start: median of 5 starts on an existing (migrated) database, plus the very first.
    let mut starts = Vec::new();
    let mut first = None;
    for _ in 0..5 {
        let (mut s, t) = start(&dir, &database_url).await;
        first.get_or_insert(t);
        starts.push(t);
        s.child.kill().await.unwrap();
    }
    starts.sort();

    // Bootstrap users through the CLI.
    for i in 0..8 {
        let out = Command::new(BIN)
            .args([
                "user",
                "add",
                &format!("bench{i}"),
                "--role",
                "county_office",
            ])
            .current_dir(&dir)
            .env("YANSHOU_DATABASE_URL", &database_url)
            .env("YANSHOU_NEW_PASSWORD", PASSWORD)
            .env("YANSHOU_LOG", "warn")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (server, _) = start(&dir, &database_url).await;
    let pid = server.child.id().unwrap();
    let idle_rss = rss_kib(pid);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    let base = server.base.clone();
    let c = client.clone();
    let (login_rps, login_p50, login_p99) = load(64, 4, move |i| {
        let c = c.clone();
        let base = base.clone();
        async move {
            c.post(format!("{base}/api/v1/auth/login"))
                .json(&serde_json::json!({"username": format!("bench{}", i % 8), "password": PASSWORD}))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }
    })
    .await;

    let session: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"username": "bench0", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let base = server.base.clone();
    let c = client.clone();
    let (me_rps, me_p50, me_p99) = load(8000, 16, move |_| {
        let c = c.clone();
        let base = base.clone();
        let token = token.clone();
        async move {
            c.get(format!("{base}/api/v1/departments"))
                .bearer_auth(&token)
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }
    })
    .await;
    let loaded_rss = rss_kib(pid);

    println!("## {name}");
    println!(
        "cold start (spawn → /readyz 200): first {:.0} ms, median {:.0} ms",
        first.unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&starts, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "RSS: idle {:.1} MiB, after load {:.1} MiB",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
    println!(
        "login (argon2id, 4 clients): {login_rps:.1}/s, p50 {:.1} ms, p99 {:.1} ms",
        login_p50.as_secs_f64() * 1e3,
        login_p99.as_secs_f64() * 1e3
    );
    println!(
        "authenticated GET (JWT verify + principal check + query, 16 clients): {me_rps:.0}/s, \
         p50 {:.2} ms, p99 {:.2} ms",
        me_p50.as_secs_f64() * 1e3,
        me_p99.as_secs_f64() * 1e3
    );
}

fn bench_verify_in_process() {
    use yanshou_server::{
        config::Settings,
        identity::tokens::{TokenKeys, generate_signing_key},
        model::{Role, User},
    };
    let keys = TokenKeys::from_signing_key(&generate_signing_key(0).unwrap(), &Settings::default())
        .unwrap();
    let user = User {
        id: uuid::Uuid::now_v7(),
        username: "u".into(),
        display_name: "u".into(),
        role: Role::DepartmentInspector,
        department: Some("forestry".into()),
        township_id: None,
        specialty: None,
        disabled: false,
        created_at: 0,
        password_hash: String::new(),
    };
    // Distinct tokens, so the first verification of each checks the signature (not the cache).
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<String> = (0..2_000)
        .map(|_| {
            let other = User {
                id: uuid::Uuid::now_v7(),
                ..user.clone()
            };
            keys.issue(&other, None, now).unwrap()
        })
        .collect();
    let t0 = Instant::now();
    for t in &tokens {
        std::hint::black_box(keys.verify(std::hint::black_box(t), now).unwrap());
    }
    let verify = tokens.len() as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..10 {
        for t in &tokens {
            std::hint::black_box(keys.verify(std::hint::black_box(t), now).unwrap());
        }
    }
    let cached = (tokens.len() * 10) as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..2_000 {
        std::hint::black_box(keys.issue(&user, None, 0).unwrap());
    }
    let issue = 2_000.0 / t0.elapsed().as_secs_f64();
    println!("## in-process, one core");
    println!(
        "ES256 verify (signature checked): {verify:.0}/s; already-verified token: {cached:.0}/s; \
         ES256 issue: {issue:.0}/s"
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench_verify_in_process();
    let dir = std::env::temp_dir().join(format!("yanshou-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    bench_backend(
        "SQLite",
        format!("sqlite://{}/bench.db", dir.display()),
        dir.clone(),
    )
    .await;

    let pg = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match sqlx::PgPool::connect(&pg).await {
        Ok(admin) => {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("create schema {schema}"))
                .execute(&admin)
                .await
                .unwrap();
            let url = format!("{pg}?options=-c%20search_path%3D{schema}");
            bench_backend("PostgreSQL", url, dir.clone()).await;
            sqlx::query(&format!("drop schema {schema} cascade"))
                .execute(&admin)
                .await
                .unwrap();
        }
        Err(e) => println!("## PostgreSQL skipped: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
