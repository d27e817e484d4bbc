//! Login: what a failed attempt leaves in the log, and the throttle.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use serde_json::json;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A username with a line break cannot forge a log line: user input is logged escaped.
#[tokio::test]
async fn a_failed_login_logs_the_username_escaped() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new(Backend::Sqlite).await;
    let forged = "ghost\n2026-01-01T00:00:00Z  INFO login: admin logged in from 10.0.0.1";
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": forged, "password": "wrong-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let out = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("failed login"), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged line: {out}"
    );
    assert!(out.contains(r"ghost\n2026"), "{out}");
}
