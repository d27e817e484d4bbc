//! The real `yanshou` binary as a child process, on a fresh SQLite file or PostgreSQL schema.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use uuid::Uuid;

/// Where the server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory (removed at the end; set `YANSHOU_E2E_KEEP`
    /// to keep it for a look).
    Sqlite,
    /// A fresh schema in the test PostgreSQL database.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "pg" | "postgresql" => Ok(Backend::Postgres),
            other => bail!("unknown backend {other:?}: sqlite or postgres"),
        }
    }
}

/// The password every simulated user gets.
pub const PASSWORD: &str = "field-work-2024";

/// The PostgreSQL server the suites use: `YANSHOU_TEST_PG_URL`, else the local test database.
pub fn pg_base_url() -> String {
    std::env::var("YANSHOU_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The `yanshou` binary: `YANSHOU_BIN`, else next to the running executable (a test in
/// `target/<profile>/deps/` or a bin in `target/<profile>/`).
///
/// # Panics
/// When there is none, with the command that builds it.
pub fn yanshou_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("YANSHOU_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "YANSHOU_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the path of the running executable");
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("yanshou"));
        if let Some(profile) = dir.parent() {
            candidates.push(profile.join("yanshou"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the yanshou server binary is not built (looked for {}). Build it first: \
                 `cargo build -p yanshou-server --bin yanshou` (add --release for the load \
                 generator), or point YANSHOU_BIN at it",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Options for [`Server::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `YANSHOU_*` variables (e.g. `YANSHOU_DATABASE_MAX_CONNECTIONS`).
    pub env: Vec<(String, String)>,
    /// The binary (default: [`yanshou_bin`]).
    pub bin: Option<PathBuf>,
}

/// A running `yanshou serve`; killed (and its database removed) on drop.
#[derive(Debug)]
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The backend it runs on.
    pub backend: Backend,
    /// Its `YANSHOU_DATABASE_URL`.
    pub database_url: String,
    bin: PathBuf,
    dir: PathBuf,
    schema: Option<String>,
    child: Child,
    extra_env: Vec<(String, String)>,
}

impl Server {
    /// Start on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> anyhow::Result<Server> {
        Self::start_with(backend, ServerOptions::default()).await
    }

    /// Start with options.
    pub async fn start_with(backend: Backend, options: ServerOptions) -> anyhow::Result<Server> {
        let bin = options.bin.clone().unwrap_or_else(yanshou_bin);
        let dir = std::env::temp_dir().join(format!("yanshou-e2e-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (database_url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/yanshou.db", dir.display()), None),
            Backend::Postgres => {
                let (url, schema) = new_pg_schema().await?;
                (url, Some(schema))
            }
        };
        let mut cmd = yanshou_command(&bin, &dir, &database_url, &options.env);
        let log = std::fs::File::create(dir.join("server.log"))?;
        cmd.arg("serve")
            .env("YANSHOU_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        // Read stdout on a thread: the address line arrives through a channel (no polling, no
        // sleeping); the thread then drains stdout until the process exits.
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("yanshou listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = Server {
            base: String::new(),
            backend,
            database_url,
            bin,
            dir,
            schema,
            child,
            extra_env: options.env,
        };
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(base)) => {
                server.base = base;
                Ok(server)
            }
            Ok(Err(_)) => bail!(
                "yanshou serve exited before announcing its address; its log:\n{}",
                server.log_tail()
            ),
            Err(_) => bail!(
                "yanshou serve did not announce its address within 60 s; its log:\n{}",
                server.log_tail()
            ),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory the server runs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of the server's log (stderr).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Resident memory of the server process now and at its peak (kB), from `/proc`.
    pub fn rss_kb(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time (user + system) the server process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // Linux reports clock ticks; USER_HZ is 100 on every Linux this runs on.
        Some((utime + stime) / 100.0)
    }

    /// `yanshou user add NAME --role ROLE [--department CODE]` with [`PASSWORD`], through the
    /// binary's command line (the way an operator bootstraps accounts).
    pub async fn add_user(
        &self,
        username: &str,
        role: &str,
        department: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut args = vec!["user", "add", username, "--role", role];
        if let Some(d) = department {
            args.extend(["--department", d]);
        }
        self.user_add(&args).await
    }

    /// `yanshou user add NAME --role township_officer --township ID` with [`PASSWORD`].
    pub async fn add_township_officer(&self, username: &str, township: Uuid) -> anyhow::Result<()> {
        let township = township.to_string();
        self.user_add(&[
            "user",
            "add",
            username,
            "--role",
            "township_officer",
            "--township",
            &township,
        ])
        .await
    }

    /// Runs `yanshou ARGS…` (a `user add`) with [`PASSWORD`] as the new password.
    async fn user_add(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = tokio::process::Command::from(yanshou_command(
            &self.bin,
            &self.dir,
            &self.database_url,
            &self.extra_env,
        ));
        cmd.args(args)
            .env("YANSHOU_NEW_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = cmd.output().await.context("run yanshou user add")?;
        if !out.status.success() {
            bail!(
                "yanshou {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(schema) = self.schema.take() {
            drop_pg_schema(schema);
        }
        if std::env::var_os("YANSHOU_E2E_KEEP").is_some() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A command for the binary with no `YANSHOU_*` variable from the outside, run in `dir`.
fn yanshou_command(
    bin: &Path,
    dir: &Path,
    database_url: &str,
    env: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("YANSHOU_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("YANSHOU_DATABASE_URL", database_url)
        .env("YANSHOU_BLOB_DIR", dir.join("blobs"))
        .env("YANSHOU_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Creates a new empty schema; returns the URL that selects it and its name.
pub async fn new_pg_schema() -> anyhow::Result<(String, String)> {
    let schema = format!("ye2e_{}", Uuid::new_v4().simple());
    let base = pg_base_url();
    let admin = sqlx::PgPool::connect(&base).await.with_context(|| {
        format!("PostgreSQL at {base} is required (start it with tests/ensure-postgres.sh)")
    })?;
    sqlx::query(&format!("create schema {schema}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

/// Drops a schema made by [`new_pg_schema`], on a thread with its own runtime (callable from
/// `Drop` inside an async test).
pub fn drop_pg_schema(schema: String) {
    let base = pg_base_url();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                let _ = sqlx::query(&format!("drop schema if exists {schema} cascade"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    })
    .join();
}
