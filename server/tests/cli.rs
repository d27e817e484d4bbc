//! The `yanshou` binary as a user runs it: a real process, a real SQLite file, real HTTP.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_yanshou");

/// A working directory removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("yanshou-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A command with no `YANSHOU_*` variable from the outside, run in `dir`.
fn yanshou(dir: &PathBuf) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("YANSHOU_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir).kill_on_drop(true);
    cmd
}

struct Running {
    child: Child,
    base: String,
}

/// Start `serve` and wait (without sleeping) for the line announcing the address.
async fn serve(dir: &PathBuf, extra_env: &[(&str, &str)]) -> Running {
    start(dir, "serve", extra_env).await.0
}

/// Start a server subcommand; returns it and every stdout line before the address line.
async fn start(
    dir: &PathBuf,
    subcommand: &str,
    extra_env: &[(&str, &str)],
) -> (Running, Vec<String>) {
    let mut cmd = yanshou(dir);
    cmd.arg(subcommand)
        .env("YANSHOU_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut before = Vec::new();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("yanshou listening on ") {
                return url.to_owned();
            }
            before.push(line);
        }
        panic!("server exited before announcing its address");
    })
    .await
    .expect("server did not start within 30 s");
    (Running { child, base }, before)
}

async fn run(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = yanshou(dir);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_with_no_configuration_answers_healthz_and_stops_on_sigterm() {
    let dir = temp_dir();
    let mut server = serve(&dir, &[]).await;
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        dir.join("data/yanshou.db").exists(),
        "default SQLite file under ./data"
    );

    let pid = server.child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(25), server.child.wait())
        .await
        .expect("graceful shutdown took too long")
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn default_config_prints_annotated_toml_of_the_defaults() {
    let dir = temp_dir();
    let (code, out, _) = run(&dir, &["default-config"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("# Database:"), "annotated: {out}");
    let parsed = yanshou_server::config::Settings::from_toml(&out).unwrap();
    assert_eq!(parsed, yanshou_server::config::Settings::default());
}

/// A misspelt `YANSHOU_*` variable is not ignored silently: the start names it and the setting
/// it probably meant.
#[tokio::test]
async fn a_misspelt_environment_variable_is_named_with_the_nearest_setting() {
    let dir = temp_dir();
    let (code, _, err) = run(
        &dir,
        &["migrate"],
        &[
            ("YANSHOU_DATABSE_URL", "postgres://elsewhere/db"),
            ("YANSHOU_QWERTYUIOPASDF", "1"),
            ("YANSHOU_LOG", "warn"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("YANSHOU_DATABSE_URL is not a setting")
            && err.contains("did you mean YANSHOU_DATABASE_URL?"),
        "{err}"
    );
    assert!(
        err.contains("YANSHOU_QWERTYUIOPASDF is not a setting"),
        "{err}"
    );
    assert!(!err.contains("YANSHOU_LOG is"), "{err}");
}

#[tokio::test]
async fn invalid_environment_is_reported_with_exit_code_2() {
    let dir = temp_dir();
    let (code, _, err) = run(
        &dir,
        &["serve"],
        &[("YANSHOU_ACCESS_TOKEN_TTL_SECS", "fifteen minutes")],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("YANSHOU_ACCESS_TOKEN_TTL_SECS"), "{err}");
}

#[tokio::test]
async fn bootstrap_admin_from_the_shell_then_log_in_over_http() {
    let dir = temp_dir();
    let (code, out, err) = run(
        &dir,
        &["user", "add", "admin", "--display-name", "管理员"],
        &[("YANSHOU_NEW_PASSWORD", "change-me-now")],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("created admin (admin)"), "{out}");
    let (code, out, _) = run(&dir, &["user", "list"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("admin\tadmin\t\tactive\t管理员"), "{out}");

    let (code, _, err) = run(
        &dir,
        &["user", "add", "weak", "--role", "expert"],
        &[("YANSHOU_NEW_PASSWORD", "short")],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("specialty") || err.contains("password"),
        "{err}"
    );

    let server = serve(&dir, &[]).await;
    let client = reqwest::Client::new();
    let login = |password: &'static str| {
        client
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
    };
    let res = login("change-me-now").await.unwrap();
    assert_eq!(res.status(), 200);
    let session: serde_json::Value = res.json().await.unwrap();
    let me: serde_json::Value = client
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    let (code, _, _) = run(&dir, &["user", "disable", "admin"], &[]).await;
    assert_eq!(code, 0);
    assert_eq!(login("change-me-now").await.unwrap().status(), 403);
}

#[tokio::test]
async fn demo_starts_a_county_whose_printed_password_logs_in() {
    let dir = temp_dir();
    let (server, lines) = start(&dir, "demo", &[]).await;
    let password = lines[0]
        .split("password: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        lines.iter().any(|l| l.contains("insp.water_resources")),
        "{lines:?}"
    );
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"username": "insp.forestry", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session: serde_json::Value = res.json().await.unwrap();
    assert_eq!(session["user"]["department"], "forestry");
    let townships: serde_json::Value = client
        .get(format!("{}/api/v1/townships", server.base))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(townships.as_array().unwrap().len() >= 15);
    assert!(dir.join("data/demo/yanshou.db").exists());

    // A dozen mines in various stages; on 2024-03-10 some deadlines are overdue.
    let office: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"username": "office", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let board: serde_json::Value = client
        .get(format!("{}/api/v1/dashboard?as_of=2024-03-10", server.base))
        .bearer_auth(office["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(board["mines"], 14, "{board}");
    assert!(board["by_stage"].as_object().unwrap().len() >= 8, "{board}");
    assert!(!board["overdue"].as_array().unwrap().is_empty(), "{board}");

    // The holder's mine carries their evidence: a photo and the restoration plan (a PDF).
    let holder: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"username": "holder", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = holder["access_token"].as_str().unwrap();
    let get = |path: String| {
        client
            .get(format!("{}{path}", server.base))
            .bearer_auth(token)
    };
    let mines: serde_json::Value = get("/api/v1/mines".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = mines[0]["id"].as_str().unwrap();
    let evidence: serde_json::Value = get(format!("/api/v1/mines/{mine}/evidence"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = evidence
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["document", "photo"], "{evidence}");
    let pdf = get(evidence[0]["href"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let thumb = get(evidence[1]["thumbnails"]["small"]["href"]
        .as_str()
        .unwrap()
        .to_owned())
    .send()
    .await
    .unwrap();
    assert_eq!(thumb.status(), 200);
}

#[tokio::test]
async fn templates_and_campaigns_are_checked_and_imported_as_data() {
    let dir = temp_dir();
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/default-2023.toml");
    let (code, out, _) = run(&dir, &["template", "check", default], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("shanggao-2023@2023.1"), "{out}");

    let v2 = std::fs::read_to_string(default)
        .unwrap()
        .replace("version = \"2023.1\"", "version = \"2024.1\"");
    std::fs::write(dir.join("v2.toml"), &v2).unwrap();
    let (code, out, err) = run(&dir, &["template", "import", "v2.toml"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported shanggao-2023@2024.1"), "{out}");
    // The same version with other content is refused: versions never change.
    std::fs::write(dir.join("v2b.toml"), v2.replace("上高县", "某县")).unwrap();
    let (code, _, err) = run(&dir, &["template", "import", "v2b.toml"], &[]).await;
    assert_ne!(code, 0);
    assert!(err.contains("new id or version"), "{err}");

    std::fs::write(
        dir.join("bad.toml"),
        "[template]\nid = \"x\"\nversion = 1\n[[sections]]\ndepartment = \"nowhere\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&dir, &["template", "check", "bad.toml"], &[]).await;
    assert_ne!(code, 0);
    assert!(err.contains("line 5: sections[0].department"), "{err}");
    assert!(err.contains("line 3: template.version"), "{err}");

    let campaign = concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns/shanggao-2023.toml");
    let (code, out, _) = run(&dir, &["campaign", "import", campaign], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("imported shanggao-2023"), "{out}");
}

/// A fake `mobile-web/` whose `npm run build` runs `build` (JavaScript for `node -e`).
fn fake_mobile_web(dir: &std::path::Path, build: &str) {
    let web = dir.join("mobile-web");
    std::fs::create_dir_all(&web).unwrap();
    let package = serde_json::json!({
        "name": "fake-mobile-web", "version": "0.0.0", "private": true,
        "scripts": {"build": format!("node -e {}", shell_quote(build))},
    });
    std::fs::write(web.join("package.json"), package.to_string()).unwrap();
    let lock = serde_json::json!({
        "name": "fake-mobile-web", "version": "0.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {"": {"name": "fake-mobile-web", "version": "0.0.0"}},
    });
    std::fs::write(web.join("package-lock.json"), lock.to_string()).unwrap();
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// npm stays offline and quiet in these tests (no audit, funding or update checks).
const NPM_OFFLINE: [(&str, &str); 4] = [
    ("npm_config_audit", "false"),
    ("npm_config_fund", "false"),
    ("npm_config_update_notifier", "false"),
    ("npm_config_offline", "true"),
];

#[tokio::test]
async fn demo_builds_the_phone_app_of_a_fresh_checkout_and_serves_it() {
    let dir = temp_dir();
    fake_mobile_web(
        &dir,
        "const fs = require('fs'); fs.mkdirSync('dist/assets', {recursive: true}); \
         fs.writeFileSync('dist/index.html', '<!doctype html><title>fake app</title>'); \
         fs.writeFileSync('dist/assets/app-1a2b.js', 'console.log(1)');",
    );
    let (server, lines) = start(&dir, "demo", &NPM_OFFLINE).await;
    assert!(
        lines.iter().any(|l| l == "$ cd mobile-web && npm ci"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "$ cd mobile-web && npm run build"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("The phone app is at http://")),
        "{lines:?}"
    );
    let page = reqwest::get(format!("{}/mines", server.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page.text().await.unwrap().contains("fake app"));
    let asset = reqwest::get(format!("{}/assets/app-1a2b.js", server.base))
        .await
        .unwrap();
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn demo_serves_the_api_and_a_how_to_build_page_when_the_app_build_fails() {
    let dir = temp_dir();
    fake_mobile_web(&dir, "console.error('vite: broken'); process.exit(3)");
    let (server, lines) = start(&dir, "demo", &NPM_OFFLINE).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("The phone app is not built")),
        "{lines:?}"
    );
    let page = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(page.status(), 503);
    let text = page.text().await.unwrap();
    assert!(text.contains("npm ci &amp;&amp; npm run build"), "{text}");
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn cert_then_serve_speaks_https_that_a_phone_trusting_the_county_ca_accepts() {
    let dir = temp_dir();
    let (code, out, err) = run(
        &dir,
        &["cert", "--dir", "tls", "127.0.0.1", "localhost"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("made a new county CA"), "{out}");
    assert!(out.contains("tls_cert_file"), "{out}");

    // One of the pair alone is a configuration error.
    let (code, _, err) = run(
        &dir,
        &["serve"],
        &[("YANSHOU_TLS_CERT_FILE", "tls/server.crt")],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("tls_cert_file/tls_key_file"), "{err}");

    let (server, lines) = start(
        &dir,
        "serve",
        &[
            ("YANSHOU_TLS_CERT_FILE", "tls/server.crt"),
            ("YANSHOU_TLS_KEY_FILE", "tls/server.key"),
        ],
    )
    .await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("The phone app is not built: https://")),
        "{lines:?}"
    );
    let ca = std::fs::read(dir.join("tls/ca.crt")).unwrap();
    let phone = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let health = phone
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let plain = server.base.replace("https://", "http://");
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "plain HTTP is not served on the HTTPS port"
    );
}
