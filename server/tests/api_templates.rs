//! Acceptance templates over the API (what the phone renders), cached as immutable per
//! `id@version`.
#![allow(clippy::unwrap_used)]

mod common;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::{Backend, TestApp};
use serde_json::Value;
use tower::ServiceExt;
use yanshou_server::model::Role;

const DEFAULT: &str = "/api/v1/templates/shanggao-2023/2023.1";

async fn get(
    app: &TestApp,
    path: &str,
    token: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

async fn the_phone_gets_the_template_with_field_keys_and_rules(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("lin", Role::DepartmentInspector).await;
    let (s, headers, t) = get(&app, DEFAULT, &token, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "private, max-age=31536000, immutable"
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(t["reference"], "shanggao-2023@2023.1");
    let sections = t["sections"].as_array().unwrap();
    assert!(sections.len() >= 5);
    let items: Vec<&Value> = sections
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap())
        .collect();
    assert_eq!(items.len(), 28);

    // Item 14 (water resources): a measured length in 米 and a pass/fail.
    let water = sections
        .iter()
        .find(|s| s["department"] == "water_resources")
        .unwrap();
    assert_eq!(water["department_name"], "水利局");
    let forestry = sections
        .iter()
        .find(|s| s["department"] == "forestry")
        .unwrap();
    let cover = forestry["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["parts"].as_array().unwrap())
        .find(|p| p["kind"] == "number" && p["rule"].is_object())
        .unwrap();
    assert!(cover["field"].as_str().unwrap().starts_with("forestry/"));
    assert!(cover["unit"].is_string());
    assert!(cover["rule"]["op"].is_string(), "{cover}");
    assert!(cover["rule_symbol"].is_string());
    for item in &items {
        let number = item["number"].as_u64().unwrap();
        let field = item["parts"][0]["field"].as_str().unwrap();
        let section = field.split('/').next().unwrap();
        assert_eq!(item["remark_field"], format!("{section}/{number}.remark"));
        assert_eq!(
            item["rectification_field"],
            format!("{section}/{number}.rectification")
        );
        assert!(!item["methods"].as_array().unwrap().is_empty());
        assert!(item["methods"][0]["name"].is_string());
        assert!(item["photo"].is_string());
        assert!(!item["applies_to"].as_array().unwrap().is_empty());
    }
    // A design-value rule names the field where the design value is entered.
    let design = items
        .iter()
        .flat_map(|i| i["parts"].as_array().unwrap())
        .find(|p| p["design_field"].is_string())
        .unwrap();
    assert_eq!(
        design["design_field"].as_str().unwrap(),
        format!("{}.design", design["field"].as_str().unwrap())
    );

    // Conditional request: same ETag → 304 with the caching headers, no body.
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let (s, headers, body) = get(&app, DEFAULT, &token, Some(&etag)).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[header::ETAG], etag.as_str());
    assert_eq!(body, Value::Null);
    let (s, _, _) = get(&app, DEFAULT, &token, Some("\"other\"")).await;
    assert_eq!(s, StatusCode::OK);
}

async fn unknown_templates_are_json_404s_and_anonymous_callers_401(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("holder", Role::Operator).await;
    for path in [
        "/api/v1/templates/shanggao-2023/1999.9",
        "/api/v1/templates/nope/1",
    ] {
        let (s, headers, body) = get(&app, path, &token, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found");
        assert!(headers.get(header::CACHE_CONTROL).is_none());
    }
    let (s, body) = app.call(Method::GET, DEFAULT, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
}

async fn imported_templates_are_listed_and_served(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("office", Role::CountyOffice).await;
    let source = yanshou_server::rules::template::DEFAULT_2023_TOML
        .replace("version = \"2023.1\"", "version = \"2024.1\"");
    assert_ne!(source, yanshou_server::rules::template::DEFAULT_2023_TOML);
    app.store
        .ensure_template("shanggao-2023@2024.1", &source, app.state.clock.now_ms())
        .await
        .unwrap();
    let (s, list) = app
        .call(Method::GET, "/api/v1/templates", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let refs: Vec<(&str, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["reference"].as_str().unwrap(),
                t["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refs,
        [
            ("shanggao-2023@2023.1", true),
            ("shanggao-2023@2024.1", false)
        ]
    );
    let (s, _, t) = get(&app, "/api/v1/templates/shanggao-2023/2024.1", &token, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["version"], "2024.1");
}

both_backends!(
    the_phone_gets_the_template_with_field_keys_and_rules,
    unknown_templates_are_json_404s_and_anonymous_callers_401,
    imported_templates_are_listed_and_served,
);
