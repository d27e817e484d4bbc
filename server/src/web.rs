//! Serves the built phone app (`mobile-web/dist`) on the same origin as `/api/v1`.
//!
//! Every path outside `/api/`, `/healthz` and `/readyz` is a file of the app's directory
//! ([`Settings::web_dir`](crate::config::Settings::web_dir)), with the single-page-app fallback:
//! a path without a file extension (`/mines/…`) that names no file gets `index.html`, so a
//! reload or a shared link opens the app at that screen; a missing file *with* an extension is a
//! plain 404 (never `index.html`, which a service worker would otherwise cache as a script).
//! Unknown `/api/…` paths keep the API's JSON 404.
//!
//! Caching follows how the app updates: `index.html`, `sw.js` and `manifest.webmanifest` are
//! revalidated on every load (`no-cache`), so a new build is seen at once and the service worker
//! can offer it; files under `assets/` have content hashes in their names and are cached for a
//! year (`immutable`). Other files (icons) are revalidated too.
//!
//! Nothing is fetched from outside the server at run time, so the content security policy allows
//! only `'self'` (plus `blob:`/`data:` images for photo previews, and inline styles, which Vant
//! sets on elements).
//!
//! The directory is looked at on each request, not once at start: a rebuild needs no restart.
//! `yanshou demo` on a fresh checkout builds the app first ([`build_if_missing`]). When `index.html` is missing,
//! `/` answers a short page (Chinese and English) saying how to build the app.

use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::{AppState, error::AppError};

/// `Cache-Control` of files revalidated on every load.
pub const NO_CACHE: &str = "no-cache";
/// `Cache-Control` of content-hashed files under `assets/`.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The content security policy of the app's pages.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; font-src 'self' data:; \
     connect-src 'self'; worker-src 'self'; manifest-src 'self'; media-src 'self' blob:; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Whether the app is built in `dir` (its `index.html` exists).
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// Log a warning when the app is not built (at start; the server runs without it).
pub fn warn_if_missing(dir: &Path) {
    if !is_built(dir) {
        tracing::warn!(
            web_dir = %dir.display(),
            "the phone app is not built (no index.html); / answers a page saying how to build \
             it: cd mobile-web && npm ci && npm run build"
        );
    }
}

/// The router's fallback: the app's files, or the API's JSON 404 under `/api/`.
pub async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return AppError::NotFound("route").into_response();
    }
    let mut res = serve(&state.settings.web_dir, req).await;
    security_headers(res.headers_mut());
    res
}

async fn serve(dir: &Path, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let last = path.rsplit('/').next().unwrap_or("");
    let has_extension = last.contains('.');
    if !is_built(dir) {
        return if has_extension {
            plain_not_found()
        } else {
            not_built_page(dir)
        };
    }
    // Kept for the single-page-app fallback, which serves index.html to the same request.
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let res = match ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .oneshot(req)
        .await
    {
        Ok(res) => res.map(Body::new),
        Err(never) => match never {},
    };
    if res.status() == StatusCode::NOT_FOUND && !has_extension {
        let res = index_html(dir, method, headers).await;
        return with_caching(res, NO_CACHE, false);
    }
    if res.status() == StatusCode::NOT_FOUND {
        return plain_not_found();
    }
    let cache = if path.starts_with("/assets/") {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    with_caching(res, cache, last.ends_with(".webmanifest"))
}

async fn index_html(dir: &Path, method: Method, headers: HeaderMap) -> Response {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.headers_mut() = headers;
    match ServeFile::new(dir.join("index.html")).oneshot(req).await {
        Ok(res) => res.map(Body::new),
        Err(never) => match never {},
    }
}

/// Sets `Cache-Control` on a served file (and the manifest's content type, which not every MIME
/// table knows).
fn with_caching(mut res: Response, cache: &'static str, manifest: bool) -> Response {
    let status = res.status();
    let headers = res.headers_mut();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    if manifest && status.is_success() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/manifest+json"),
        );
    }
    res
}

fn plain_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, NO_CACHE)],
        "not found\n",
    )
        .into_response()
}

fn not_built_page(dir: &Path) -> Response {
    let dir = html_escape(&dir.display().to_string());
    let page = format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>验收 Yanshou — 手机应用尚未构建 / app not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>手机应用尚未构建</h1>
<p>服务器正在运行（接口在 <a href="/api/v1/openapi.json">/api/v1</a>），但找不到手机应用的文件
（<code>{dir}/index.html</code>）。请在代码目录中构建：</p>
<pre>cd mobile-web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>构建完成后刷新本页即可，无需重启服务器。</p>
<hr>
<h1 lang="en">The phone app is not built</h1>
<p lang="en">The server is running (the API is at <a href="/api/v1/openapi.json">/api/v1</a>),
but the app's files (<code>{dir}/index.html</code>) are missing. Build it in the source
tree:</p>
<pre>cd mobile-web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p lang="en">Then reload this page; the server needs no restart. The directory is the
<code>web_dir</code> setting.</p>
</body>
</html>
"#
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Headers of every page and file of the app.
fn security_headers(headers: &mut HeaderMap) {
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(self), geolocation=(self), microphone=()"),
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    for (name, value) in set {
        headers.insert(name, value);
    }
}

/// What [`build_if_missing`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildOutcome {
    /// `index.html` was already there.
    AlreadyBuilt,
    /// The app was built now.
    Built,
    /// No `mobile-web/package.json` here, or `web_dir` is not its `dist`: nothing to build from.
    NoSources,
    /// npm is missing or a step failed (said on standard error); the API serves anyway.
    Failed,
}

/// For `yanshou demo` on a fresh checkout: when the app in `web_dir` is not built and the
/// working directory holds its sources (`mobile-web/package.json`, with `web_dir` being
/// `mobile-web/dist`), run `npm ci` (or `npm install` without a lock file) and `npm run build`
/// there, saying what it does. npm's output goes to the terminal. A missing npm or a failing
/// step is reported, never fatal: the API serves and `/` says how to build the app.
pub async fn build_if_missing(web_dir: &Path) -> BuildOutcome {
    if is_built(web_dir) {
        return BuildOutcome::AlreadyBuilt;
    }
    let project = Path::new("mobile-web");
    if !project.join("package.json").is_file() || !same_path(web_dir, &project.join("dist")) {
        return BuildOutcome::NoSources;
    }
    let install: &[&str] = if project.join("package-lock.json").is_file() {
        &["ci"]
    } else {
        &["install"]
    };
    println!(
        "The phone app is not built ({} has no index.html): building it with `npm {}` and \
         `npm run build` in mobile-web/ (a minute or two the first time)…",
        web_dir.display(),
        install.join(" ")
    );
    for args in [install, &["run", "build"]] {
        let shown = format!("npm {}", args.join(" "));
        println!("$ cd mobile-web && {shown}");
        let started = std::time::Instant::now();
        let status = tokio::process::Command::new("npm")
            .args(args)
            .current_dir(project)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {
                println!("  {shown}: done in {:.0?}", started.elapsed());
            }
            Ok(s) => {
                eprintln!(
                    "yanshou: `{shown}` in mobile-web/ failed ({s}); the API runs without the \
                     phone app. Fix the error above, then: cd mobile-web && npm ci && npm run build"
                );
                return BuildOutcome::Failed;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "yanshou: npm is not installed, so the phone app cannot be built; the API \
                     runs without it. Install Node.js 20 or later (with npm), then: \
                     cd mobile-web && npm ci && npm run build"
                );
                return BuildOutcome::Failed;
            }
            Err(e) => {
                eprintln!(
                    "yanshou: cannot run `{shown}` in mobile-web/ ({e}); the API runs without \
                     the phone app"
                );
                return BuildOutcome::Failed;
            }
        }
    }
    if is_built(web_dir) {
        BuildOutcome::Built
    } else {
        eprintln!(
            "yanshou: `npm run build` succeeded but {} has no index.html; the API runs without \
             the phone app",
            web_dir.display()
        );
        BuildOutcome::Failed
    }
}

/// Whether two paths name the same place, comparing them made absolute (lexically: the build
/// output may not exist yet).
fn same_path(a: &Path, b: &Path) -> bool {
    fn absolute(p: &Path) -> PathBuf {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
    absolute(a) == absolute(b)
}
