//! Every error of the API has the JSON shape with a `code`, whatever rejects the request: the
//! router (wrong method), an extractor (a malformed path id or query value) or a handler; and a
//! body that is not valid UTF-8 is refused wherever it goes, unknown members included.
#![allow(clippy::unwrap_used)]

mod common;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::{Backend, PASSWORD, TestApp};
use serde_json::Value;
use yanshou_server::model::Role;

fn request(
    method: Method,
    uri: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn every_rejection_has_the_json_error_shape(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("office", Role::CountyOffice).await;
    let get = |uri: &str| request(Method::GET, uri, &token, "application/json", Vec::new());

    let (s, body) = app.send(get("/api/v1/mines/not-a-uuid")).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, body) = app.send(get("/api/v1/dashboard?as_of=2024-13-45")).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_request");

    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        request(
            Method::DELETE,
            "/api/v1/mines",
            &token,
            "application/json",
            Vec::new(),
        ),
    )
    .await
    .unwrap();
    assert!(res.headers().contains_key(header::ALLOW), "405 keeps Allow");
    let (s, body) = app
        .send(request(
            Method::DELETE,
            "/api/v1/mines",
            &token,
            "application/json",
            Vec::new(),
        ))
        .await;
    assert_error(
        s,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // The CSV import names the type it reads.
    let (s, body) = app
        .send(request(
            Method::POST,
            "/api/v1/mines/import",
            &token,
            "application/json",
            b"{}".to_vec(),
        ))
        .await;
    assert_error(
        s,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("text/csv"), "{message}");
}

async fn a_body_that_is_not_utf8_is_refused_even_in_an_unknown_member(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("admin", Role::Admin).await;
    let mut login = br#"{"username":"admin","password":""#.to_vec();
    login.extend_from_slice(PASSWORD.as_bytes());
    login.extend_from_slice(b"\",\"x\":\"\xff\"}");
    let (s, body) = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(login))
                .unwrap(),
        )
        .await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(body.get("access_token").is_none());
    for (uri, content_type) in [
        ("/api/v1/townships", "application/json"),
        ("/api/v1/sync", "application/json"),
        ("/api/v1/mines/import", "text/csv"),
    ] {
        let (s, body) = app
            .send(request(
                Method::POST,
                uri,
                &token,
                content_type,
                b"{\"name\":\"\xfe\xff\"}".to_vec(),
            ))
            .await;
        assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
}

/// Found by schemathesis: serde reads a struct from an array of its fields and an internal tag
/// from a variant's index, so `["token"]` logged out and `"transition": 0` proposed. Bodies are
/// objects, and steps are named.
async fn bodies_are_objects_and_steps_are_named(b: Backend) {
    let app = TestApp::new(b).await;
    let session = app.token_for("office", Role::CountyOffice).await;
    let (s, body) = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(serde_json::json!(["not-a-token"])),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    let township = app.store.list_townships().await.unwrap();
    let township_id = match township.first() {
        Some(t) => t.id,
        None => app.first_township().await,
    };
    let (s, mine) = app
        .call(
            axum::http::Method::POST,
            "/api/v1/mines",
            Some(&session),
            Some(
                serde_json::json!({"name": "黄家山采石场", "licence_no": "C-1",
                "holder": "某公司", "township_id": township_id, "mineral": "石灰岩",
                "mining_method": "露天开采"}),
            ),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{mine}");
    let (s, body) = app
        .call(
            axum::http::Method::POST,
            &format!("/api/v1/mines/{}/transitions", mine["id"].as_str().unwrap()),
            Some(&session),
            Some(serde_json::json!({"transition": 0, "disposition": "cancel"})),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "transition", "{body}");
}

both_backends!(
    bodies_are_objects_and_steps_are_named,
    every_rejection_has_the_json_error_shape,
    a_body_that_is_not_utf8_is_refused_even_in_an_unknown_member,
);
