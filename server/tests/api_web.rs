//! The built phone app served on the API's origin: caching by file, the single-page-app
//! fallback, security headers, the API's JSON 404 kept under `/api/`, and the page shown when
//! the app is not built.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
};
use common::{Backend, TestApp};
use tower::ServiceExt;
use uuid::Uuid;

const INDEX: &str = "<!doctype html><title>验收</title><div id=app></div>";

/// A fake `mobile-web/dist`: index.html, sw.js, the manifest, an icon and a hashed asset.
struct FakeDist(PathBuf);

impl FakeDist {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("yanshou-web-{}", Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::create_dir_all(dir.join("icons")).unwrap();
        std::fs::write(dir.join("index.html"), INDEX).unwrap();
        std::fs::write(
            dir.join("sw.js"),
            "self.addEventListener('install', () => {});",
        )
        .unwrap();
        std::fs::write(dir.join("manifest.webmanifest"), r#"{"name": "验收"}"#).unwrap();
        std::fs::write(dir.join("icons/icon-192.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        std::fs::write(dir.join("assets/app-abc123.js"), "console.log(1)").unwrap();
        std::fs::write(dir.join("assets/app-abc123.css"), "body{margin:0}").unwrap();
        FakeDist(dir)
    }
}

impl Drop for FakeDist {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app_serving(dir: &Path) -> TestApp {
    let dir = dir.to_owned();
    TestApp::with_settings(Backend::Sqlite, move |s| s.web_dir = dir).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, HeaderMap, String) {
    let res = app
        .router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_files_are_revalidated_and_hashed_assets_cached_for_a_year() {
    let dist = FakeDist::new();
    let app = app_serving(&dist.0).await;
    for (path, content_type, cache) in [
        ("/", "text/html", "no-cache"),
        ("/index.html", "text/html", "no-cache"),
        ("/sw.js", "text/javascript", "no-cache"),
        (
            "/manifest.webmanifest",
            "application/manifest+json",
            "no-cache",
        ),
        ("/icons/icon-192.png", "image/png", "no-cache"),
        (
            "/assets/app-abc123.js",
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        (
            "/assets/app-abc123.css",
            "text/css",
            "public, max-age=31536000, immutable",
        ),
    ] {
        let (status, headers, _) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            header(&headers, "content-type").starts_with(content_type),
            "{path}: {headers:?}"
        );
        assert_eq!(header(&headers, "cache-control"), cache, "{path}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_same_origin_content_security_policy() {
    let dist = FakeDist::new();
    let app = app_serving(&dist.0).await;
    let (_, headers, _) = get(&app, "/").await;
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "worker-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-eval"));
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "referrer-policy"), "same-origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_routes_without_a_file_get_index_html_but_missing_files_are_404() {
    let dist = FakeDist::new();
    let app = app_serving(&dist.0).await;
    for path in ["/mines", "/mines/0190a0c2/records/abc", "/settings/"] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, INDEX, "{path}");
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
    }
    // An asset that is gone (an old build) must not come back as HTML the browser would run
    // or a service worker would cache as a script.
    for path in ["/assets/app-old999.js", "/favicon.ico", "/assets/gone"] {
        let (status, headers, body) = get(&app, path).await;
        if path == "/assets/gone" {
            // No extension: the app's fallback, never cached as immutable.
            assert_eq!(header(&headers, "cache-control"), "no-cache");
            continue;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_ne!(body, INDEX, "{path}");
    }
    // No escape from the directory.
    let (status, _, body) = get(&app, "/../Cargo.toml").await;
    assert_ne!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_paths_stay_json_404s() {
    let dist = FakeDist::new();
    let app = app_serving(&dist.0).await;
    for path in [
        "/api/v1/nope",
        "/api/v1/rounds",
        "/api/v2/mines",
        "/api",
        "/api/",
    ] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            header(&headers, "content-type").starts_with("application/json"),
            "{path}"
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], "not_found", "{path}");
    }
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    let (status, _) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_app_directory_answers_a_page_saying_how_to_build_it() {
    let missing = std::env::temp_dir().join(format!("yanshou-no-web-{}", Uuid::new_v4()));
    let app = app_serving(&missing).await;
    for path in ["/", "/mines/1"] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert!(body.contains("手机应用尚未构建"), "{body}");
        assert!(body.contains("The phone app is not built"), "{body}");
        assert!(
            body.contains("cd mobile-web &amp;&amp; npm ci &amp;&amp; npm run build"),
            "{body}"
        );
    }
    let (status, _, _) = get(&app, "/assets/app-abc123.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API is unaffected.
    let (status, body) = app.call(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    // Built later (e.g. by `yanshou demo` while the API already serves): no restart needed.
    let dist = FakeDist(missing);
    std::fs::create_dir_all(dist.0.join("assets")).unwrap();
    std::fs::write(dist.0.join("index.html"), INDEX).unwrap();
    let (status, _, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, INDEX);
}
