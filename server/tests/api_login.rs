//! Login: what a failed attempt leaves in the log, and the throttle.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::{Backend, PASSWORD, Phone, TestApp};
use serde_json::json;
use uuid::Uuid;
use yanshou_server::model::Role;

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

fn attempt(username: &str, password: &str, ip: &str, device_id: Option<Uuid>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            json!({"username": username, "password": password, "device_id": device_id}).to_string(),
        ))
        .unwrap()
}

/// Guesses sent in parallel cannot all pass the throttle (each attempt is reserved before the
/// password is checked), and guesses from elsewhere do not lock the inspector out of the phone
/// enrolled to the account.
async fn parallel_guesses_are_limited_and_an_enrolled_device_still_logs_in(b: Backend) {
    let app = TestApp::with_settings(b, |s| s.trust_forwarded_for = true).await;
    app.user("insp", Role::DepartmentInspector).await;
    let device = Phone::enroll(&app, "insp").await.replica.device().0;

    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let router = app.router.clone();
            let req = attempt("insp", &format!("guess-{i}"), "10.0.0.1", None);
            tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await.unwrap() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, throttled), (5, 19), "{statuses:?}");
    // That address is held for this account even with the right password.
    let (s, _) = app.send(attempt("insp", PASSWORD, "10.0.0.1", None)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);

    // More guesses from other addresses put the account under attack (20 failures in all).
    for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        for i in 0..5 {
            let (s, _) = app.send(attempt("insp", &format!("g{i}"), ip, None)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{ip}");
        }
    }
    // A stranger's address, or the inspector without the phone: refused while under attack.
    let (s, body) = app.send(attempt("insp", PASSWORD, "10.0.0.9", None)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // The inspector on the enrolled phone logs in, from any address.
    let (s, body) = app
        .send(attempt("insp", PASSWORD, "10.0.0.9", Some(device)))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A wrong password on the phone is still a failure, counted for its address.
    let (s, _) = app
        .send(attempt("insp", "wrong", "10.0.0.9", Some(device)))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Behind a trusted proxy the client address is the entry the proxy appended (the rightmost):
/// entries a client writes itself cannot dodge the per-address limit.
async fn the_proxys_forwarded_for_entry_is_the_client_address(b: Backend) {
    let app = TestApp::with_settings(b, |s| {
        s.trust_forwarded_for = true;
        s.login_max_failures_per_address = 3;
    })
    .await;
    for i in 0..4 {
        let req = attempt(
            &format!("user{i}"),
            "wrong",
            &format!("203.0.113.{i}, 10.0.0.7"),
            None,
        );
        let (s, _) = app.send(req).await;
        let want = if i < 3 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(s, want, "attempt {i}");
    }
    let (s, _) = app
        .send(attempt("user9", "wrong", "10.0.0.7, 10.0.0.8", None))
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "another client behind the proxy"
    );
}

both_backends!(
    parallel_guesses_are_limited_and_an_enrolled_device_still_logs_in,
    the_proxys_forwarded_for_entry_is_the_client_address,
);
