//! HTTP API tests for identity: login, tokens, refresh rotation, devices, bad input, and the
//! authorization matrix of every endpoint × role. Each runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{Backend, PASSWORD, TestApp, device_jwk};
use serde_json::{Value, json};
use uuid::Uuid;
use yanshou_server::{
    identity::{auth::Claims, tokens::TokenKeys},
    model::Role,
    store::{RefreshToken, SigningKey},
};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn claims_for(app: &TestApp, username: &str) -> Claims {
    let user = app.store.get_user_by_username(username).await.unwrap();
    Claims {
        iss: app.state.settings.token_issuer.clone(),
        aud: app.state.settings.token_audience.clone(),
        sub: user.id,
        iat: now(),
        nbf: now(),
        exp: now() + 600,
        typ: "access".into(),
        role: user.role,
        dept: None,
        town: None,
        spec: None,
        did: None,
    }
}

async fn me_status(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(Method::GET, "/api/v1/me", Some(token), None).await
}

// ---------------------------------------------------------------- login and bad input

async fn login_returns_tokens_that_work(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("li.forest", Role::DepartmentInspector).await;
    let session = app.login("li.forest").await;
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert_eq!(session["refresh_expires_in"], 30 * 86_400);
    assert!(session["user"].get("password_hash").is_none());
    let (status, me) = me_status(&app, session["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "li.forest");
    assert_eq!(me["department"], "forestry");
}

async fn wrong_password_and_unknown_user_look_the_same(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("wang", Role::Expert).await;
    let (s1, b1) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "wang", "password": "not-the-password"})),
        )
        .await;
    let (s2, b2) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "not-the-password"})),
        )
        .await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(b1, b2, "responses must not reveal whether the user exists");
    assert_eq!(code(&b1), "invalid_credentials");
}

async fn malformed_requests_get_field_level_400s(b: Backend) {
    let app = TestApp::new(b).await;
    let raw = |body: &'static str, content_type: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let (s, body) = app
        .send(raw(r#"{"username": "a", "password""#, "application/json"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_request");

    let (s, body) = app
        .send(raw(r#"{"username": "a"}"#, "application/json"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "password");

    let (s, body) = app
        .send(raw(
            r#"{"username": 5, "password": "x"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "username");

    let (s, body) = app
        .send(raw(
            r#"{"username": "a", "password": "x", "device_id": "not-a-uuid"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "device_id");

    let (s, body) = app
        .send(raw(
            "username=a&password=b",
            "application/x-www-form-urlencoded",
        ))
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&body), "unsupported_media_type");
}

async fn oversized_body_is_413(b: Backend) {
    let app = TestApp::with_settings(b, |s| s.max_json_body_bytes = 4096).await;
    let big = "x".repeat(10_000);
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": big, "password": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
}

async fn unknown_route_is_json_404_with_request_id(b: Backend) {
    let app = TestApp::new(b).await;
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri("/api/v1/nope")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let id = res.headers().get("x-request-id").expect("request id");
    assert!(Uuid::parse_str(id.to_str().unwrap()).is_ok());
}

async fn repeated_failures_are_rate_limited_per_account(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("zhao", Role::CountyOffice).await;
    for i in 0..5 {
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "zhao", "password": format!("guess-{i}")})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused until the window ends.
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"username": "zhao", "password": PASSWORD}).to_string(),
            ))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Other accounts are not affected by one account's lock.
    app.user("qian", Role::CountyOffice).await;
    app.login("qian").await;
}

async fn many_accounts_from_one_address_are_rate_limited(b: Backend) {
    let app = TestApp::with_settings(b, |s| {
        s.login_max_failures_per_address = 3;
        s.trust_forwarded_for = true;
    })
    .await;
    app.user("sun", Role::Operator).await;
    let attempt = |user: &str, password: &str, ip: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", ip)
            .body(Body::from(
                json!({"username": user, "password": password}).to_string(),
            ))
            .unwrap()
    };
    for u in ["a1", "a2", "a3"] {
        let (s, _) = app.send(attempt(u, "wrong-password", "10.9.8.7")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, body) = app.send(attempt("sun", PASSWORD, "10.9.8.7")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (s, _) = app.send(attempt("sun", PASSWORD, "10.9.8.8")).await;
    assert_eq!(s, StatusCode::OK, "another address is not blocked");
}

// ---------------------------------------------------------------- access tokens

async fn bad_access_tokens_are_401(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("zhou", Role::Admin).await;
    let keys = &app.state.keys;
    let base = claims_for(&app, "zhou").await;

    let good = keys.sign(&base).unwrap();
    assert_eq!(me_status(&app, &good).await.0, StatusCode::OK);

    let expired = keys
        .sign(&Claims {
            exp: now() - 120,
            iat: now() - 1000,
            nbf: now() - 1000,
            ..base.clone()
        })
        .unwrap();
    let not_yet = keys
        .sign(&Claims {
            nbf: now() + 3600,
            exp: now() + 7200,
            ..base.clone()
        })
        .unwrap();
    let wrong_aud = keys
        .sign(&Claims {
            aud: "someone-else".into(),
            ..base.clone()
        })
        .unwrap();
    let wrong_iss = keys
        .sign(&Claims {
            iss: "evil".into(),
            ..base.clone()
        })
        .unwrap();
    let wrong_typ = keys
        .sign(&Claims {
            typ: "refresh".into(),
            ..base.clone()
        })
        .unwrap();

    // alg=none with the same claims.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base).unwrap());
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    // HS256 keyed with the server's public key (the classic algorithm-confusion attack).
    let signing_key = app
        .store
        .get_or_create_signing_key(&SigningKey {
            kid: "unused".into(),
            private_pkcs8_pem: "unused".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    let public_pem = TokenKeys::public_key_pem(&signing_key).unwrap();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    // A valid token whose payload was changed to claim the admin role for someone else.
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&Claims {
            sub: Uuid::now_v7(),
            ..base.clone()
        })
        .unwrap(),
    );
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);

    for (name, token, message) in [
        ("expired", expired, "access token expired"),
        ("not yet valid", not_yet, "access token not yet valid"),
        ("wrong audience", wrong_aud, "invalid access token"),
        ("wrong issuer", wrong_iss, "invalid access token"),
        ("wrong typ", wrong_typ, "invalid access token"),
        ("alg none", none, "invalid access token"),
        ("HS256 with public key", hs256, "invalid access token"),
        ("tampered", tampered, "invalid access token"),
        ("garbage", "abc.def.ghi".into(), "invalid access token"),
    ] {
        let (s, body) = me_status(&app, &token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(code(&body), "unauthenticated", "{name}");
        assert_eq!(body["error"]["message"], message, "{name}");
    }

    let (s, body) = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "missing Authorization header");
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri("/api/v1/me")
            .header(header::AUTHORIZATION, format!("Basic {good}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

async fn disabled_user_is_locked_out_at_once(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.token_for("admin", Role::Admin).await;
    let victim = app.user("wu", Role::TownshipOfficer).await;
    let session = app.login("wu").await;
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(me_status(&app, token).await.0, StatusCode::OK);

    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/disable", victim.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = me_status(&app, token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "account is disabled");
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": session["refresh_token"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "wu", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // Enabled again, the user can log in.
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/enable", victim.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    app.login("wu").await;
}

async fn admin_cannot_disable_themself(b: Backend) {
    let app = TestApp::new(b).await;
    let admin_user = app.user("root", Role::Admin).await;
    let token = app.login("root").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/disable", admin_user.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(code(&body), "cannot_disable_self");
}

// ---------------------------------------------------------------- refresh tokens

async fn refresh_rotates_and_replay_revokes_the_family(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("he", Role::Expert).await;
    let first = app.login("he").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();

    let (s, second) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "refresh token must rotate");
    assert_eq!(
        me_status(&app, second["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );

    // Replaying the rotated token: refused, and the family (including r2) is revoked.
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "refresh_token_reused");
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "family must be revoked");

    // Another login (another family) is unaffected.
    let other = app.login("he").await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": other["refresh_token"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn expired_and_unknown_refresh_tokens_are_401(b: Backend) {
    let app = TestApp::new(b).await;
    let user = app.user("lu", Role::Operator).await;
    let raw = "week-old-token-from-the-mountains";
    app.store
        .insert_refresh_token(&RefreshToken {
            id: Uuid::now_v7(),
            family_id: Uuid::now_v7(),
            user_id: user.id,
            device_id: None,
            token_hash: yanshou_server::identity::tokens::hash_refresh_token(raw),
            created_at: 0,
            expires_at: app.state.clock.now_ms() - 1,
            used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    for (token, message) in [
        (raw, "refresh token expired"),
        ("never-issued", "invalid refresh token"),
    ] {
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": token})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["message"], message);
    }
}

async fn logout_ends_the_session(b: Backend) {
    let app = TestApp::new(b).await;
    app.user("ma", Role::CountyOffice).await;
    let session = app.login("ma").await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({"refresh_token": session["refresh_token"]})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": session["refresh_token"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Logging out twice (or with an unknown token) is harmless.
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({"refresh_token": "whatever"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

// ---------------------------------------------------------------- devices

async fn device_enrolment_binding_and_revocation(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("li", Role::DepartmentInspector).await;
    let (s, device) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&token),
            Some(json!({"name": "李工的手机", "public_key": device_jwk()})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{device}");
    let device_id = device["id"].as_str().unwrap().to_owned();

    // A session bound to the device.
    let (s, session) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "li", "password": PASSWORD, "device_id": device_id})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let bound = session["access_token"].as_str().unwrap().to_owned();
    let claims = app
        .state
        .keys
        .verify(&bound, app.state.clock.now_ms() / 1000)
        .unwrap();
    assert_eq!(claims.did.map(|d| d.to_string()), Some(device_id.clone()));

    let (s, list) = app
        .call(Method::GET, "/api/v1/devices", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Colleagues see whose device wrote a value (conflicts name writers by device).
    let colleague = app.token_for("wang", Role::DepartmentInspector).await;
    let (s, owner) = app
        .call(
            Method::GET,
            &format!("/api/v1/devices/{device_id}/owner"),
            Some(&colleague),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{owner}");
    assert_eq!(owner["device_id"], device_id.as_str());
    assert_eq!(owner["role"], "department_inspector");
    assert!(owner.get("password_hash").is_none());
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/devices/{}/owner", Uuid::nil()),
            Some(&colleague),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/devices/{device_id}/revoke"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The device's token and refresh token stop working at once; the unbound session goes on.
    let (s, body) = me_status(&app, &bound).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "device is revoked");
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": session["refresh_token"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &token).await.0, StatusCode::OK);
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "li", "password": PASSWORD, "device_id": device_id})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn device_of_another_user_cannot_be_used_or_revoked(b: Backend) {
    let app = TestApp::new(b).await;
    let owner = app.token_for("owner", Role::Expert).await;
    let thief = app.token_for("thief", Role::Expert).await;
    let (_, device) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&owner),
            Some(json!({"name": "phone", "public_key": device_jwk()})),
        )
        .await;
    let id = device["id"].as_str().unwrap();
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/devices/{id}/revoke"),
            Some(&thief),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "thief", "password": PASSWORD, "device_id": id})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "device_id");
}

async fn bad_device_keys_are_400(b: Backend) {
    let app = TestApp::new(b).await;
    let token = app.token_for("gao", Role::Operator).await;
    for key in [
        json!("not a key"),
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        json!(42),
    ] {
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/devices",
                Some(&token),
                Some(json!({"name": "p", "public_key": key})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{key}: {body}");
        assert_eq!(body["error"]["fields"][0]["field"], "public_key", "{key}");
    }
}

// ---------------------------------------------------------------- users and organisation

async fn user_creation_enforces_role_scope(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.token_for("admin", Role::Admin).await;
    let cases = [
        (
            json!({"username": "x1", "display_name": "X", "password": PASSWORD,
                   "role": "department_inspector"}),
            "department",
        ),
        (
            json!({"username": "x2", "display_name": "X", "password": PASSWORD,
                   "role": "department_inspector", "department": "court"}),
            "department",
        ),
        (
            json!({"username": "x3", "display_name": "X", "password": PASSWORD,
                   "role": "expert", "specialty": "astrology"}),
            "specialty",
        ),
        (
            json!({"username": "x4", "display_name": "X", "password": PASSWORD,
                   "role": "admin", "department": "forestry"}),
            "department",
        ),
        (
            json!({"username": "x5", "display_name": "X", "password": PASSWORD,
                   "role": "township_officer", "township_id": Uuid::now_v7()}),
            "township_id",
        ),
        (
            json!({"username": "x6", "display_name": "X", "password": "short",
                   "role": "admin"}),
            "password",
        ),
        (
            json!({"username": "x7", "display_name": "X", "password": PASSWORD,
                   "role": "emperor"}),
            "role",
        ),
        (
            json!({"username": "a b", "display_name": "X", "password": PASSWORD,
                   "role": "admin"}),
            "username",
        ),
    ];
    for (body, field) in cases {
        let (s, res) = app
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {res}");
        assert_eq!(res["error"]["fields"][0]["field"], field, "{body}: {res}");
    }
    let ok = json!({"username": "shui.li", "display_name": "水利 李", "password": PASSWORD,
                    "role": "department_inspector", "department": "water_resources"});
    let (s, created) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(ok.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["department"], "water_resources");
    let (s, dup) = app
        .call(Method::POST, "/api/v1/users", Some(&admin), Some(ok))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(code(&dup), "username_taken");
}

async fn townships_are_validated(b: Backend) {
    let app = TestApp::new(b).await;
    let office = app.token_for("office", Role::CountyOffice).await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/townships",
            Some(&office),
            Some(json!({"name": "翰堂镇", "kind": "town"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/townships",
            Some(&office),
            Some(json!({"name": "翰堂镇", "kind": "town"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(code(&body), "township_exists");
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/townships",
            Some(&office),
            Some(json!({"name": "某地", "kind": "city"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["fields"][0]["field"], "kind");
}

async fn health_and_openapi(b: Backend) {
    let app = TestApp::new(b).await;
    let (s, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body["store"],
        match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    let (s, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/disable",
        "/api/v1/users/{id}/enable",
        "/api/v1/devices",
        "/api/v1/devices/{id}/revoke",
        "/api/v1/devices/{id}/owner",
        "/api/v1/departments",
        "/api/v1/specialties",
        "/api/v1/townships",
        "/api/v1/sync",
        "/api/v1/sync/conflicts",
        "/api/v1/mines",
        "/api/v1/mines/import",
        "/api/v1/mines/export",
        "/api/v1/mines/{id}",
        "/api/v1/mines/{id}/transitions",
        "/api/v1/mines/{id}/holder",
        "/api/v1/mines/{id}/cases",
        "/api/v1/dashboard",
        "/api/v1/mines/{id}/rounds",
        "/api/v1/rounds/{id}",
        "/api/v1/templates",
        "/api/v1/templates/{id}/{version}",
        "/api/v1/uploads",
        "/api/v1/uploads/limits",
        "/api/v1/uploads/{id}",
        "/api/v1/uploads/{id}/finish",
        "/api/v1/photos/{sha256}",
        "/api/v1/photos/{sha256}/thumb/{size}",
        "/api/v1/photos/{sha256}/meta",
        "/api/v1/rounds/{id}/photos",
        "/api/v1/rounds/{id}/record",
        "/api/v1/mines/{id}/evidence",
        "/api/v1/mines/{id}/evidence/{entry}/file",
        "/api/v1/rounds/{id}/record.pdf",
        "/api/v1/rounds/{id}/bundle.zip",
        "/api/v1/server-key",
        "/api/v1/rounds/{id}/letter",
        "/api/v1/strokes/{sha256}",
        "/api/v1/letters/{id}",
        "/api/v1/letters/{id}/issue",
        "/api/v1/letters/{id}/letter.pdf",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from OpenAPI");
    }
    // Error codes are one enum in the document (the phone keys its messages on them), and the
    // sync results' rejection codes too.
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum");
    for code in [
        "invalid_request",
        "method_not_allowed",
        "op_id_reused",
        "stale_version",
        "rate_limited",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "{code} missing from ErrorCode"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    // Response bodies are the API's views, documented under the resources' names; an account
    // shows no password hash.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "User",
        "Session",
        "Device",
        "Mine",
        "MineDetail",
        "AcceptanceRound",
        "Dashboard",
    ] {
        assert!(
            schemas.contains_key(name),
            "{name} missing from the schemas"
        );
    }
    for name in [
        "UserView",
        "SessionView",
        "DeviceView",
        "MineView",
        "MineDetailView",
    ] {
        assert!(
            !schemas.contains_key(name),
            "{name}: a Rust name in the document"
        );
    }
    let user = schemas["User"]["properties"].as_object().unwrap();
    assert!(user.contains_key("username") && !user.contains_key("password_hash"));
    assert_eq!(
        schemas["PublicKey"]["oneOf"].as_array().map(Vec::len),
        Some(2),
        "a device key is a JWK or SPKI text"
    );
    // What the server refuses, the document says: case bodies take no unknown members (each
    // variant is closed), and a transition's round is a UUID, not any string.
    let variants = doc["components"]["schemas"]["NewCase"]["oneOf"]
        .as_array()
        .expect("NewCase is a oneOf");
    assert!(!variants.is_empty());
    for v in variants {
        assert_eq!(v["additionalProperties"], false, "{v}");
    }
    // The request is the step (flattened) plus its own members: `allOf` [step, members].
    let round = doc["components"]["schemas"]["TransitionRequest"]["allOf"]
        .as_array()
        .and_then(|parts| {
            parts
                .iter()
                .find(|p| p["properties"]["round_id"].is_object())
        })
        .map(|p| &p["properties"]["round_id"])
        .expect("TransitionRequest documents round_id");
    assert!(
        round["pattern"]
            .as_str()
            .is_some_and(|p| p.starts_with("^[0-9a-fA-F]{8}-")),
        "{round}"
    );
}

// ---------------------------------------------------------------- authorization matrix

/// Every endpoint × every role (and anonymous): the expected status.
async fn authorization_matrix(b: Backend) {
    let app = TestApp::new(b).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((Some(role), app.token_for(&format!("m.{role}"), role).await));
    }
    let bystander = app.user("bystander", Role::Operator).await;
    let bystander_token = app.login("bystander").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    use StatusCode as S;
    let everyone = |ok: S| move |_: Role| ok;
    let admin_only = |ok: S, denied: S| move |r: Role| if r == Role::Admin { ok } else { denied };
    let not_operator =
        |ok: S, denied: S| move |r: Role| if r == Role::Operator { denied } else { ok };
    let office_or_admin = |ok: S, denied: S| {
        move |r: Role| {
            if matches!(r, Role::Admin | Role::CountyOffice) {
                ok
            } else {
                denied
            }
        }
    };
    let township_id = app.store.list_townships().await.unwrap()[0].id;
    // A second township: its mines are not the township officer's (who is in the first).
    let other_township = app.other_township("翰堂镇").await;
    let holder_id = app
        .store
        .get_user_by_username(&format!("m.{}", Role::Operator))
        .await
        .unwrap()
        .id;
    let elsewhere = |r: Role| match r {
        Role::TownshipOfficer | Role::Operator => S::NOT_FOUND,
        _ => S::OK,
    };
    // A photo of a round of the holder's mine (first township), and one of another township's.
    let office = &tokens
        .iter()
        .find(|(r, _)| *r == Some(Role::CountyOffice))
        .unwrap()
        .1;
    let (photo, photo_round) =
        photo_fixture(&app, office, township_id, Some(holder_id), "PH-1", 1).await;
    let (other_photo, _) = photo_fixture(&app, office, other_township, None, "PH-2", 2).await;
    // The holder's mine with a photo uploaded for it and filed as its evidence.
    let (evidence_mine, evidence_photo, evidence_entry) =
        evidence_fixture(&app, township_id, holder_id).await;
    type Expect = Box<dyn Fn(Role) -> S>;
    let table: Vec<(Method, &str, &str, Expect)> = vec![
        // Photos: whoever sees one of the photo's records; a holder no original; else 404.
        (
            Method::GET,
            "/api/v1/photos/{photo}",
            "",
            Box::new(not_operator(S::OK, S::NOT_FOUND)),
        ),
        (
            Method::GET,
            "/api/v1/photos/{photo}/thumb/small",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/photos/{photo}/meta",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/photos/{other_photo}",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::GET,
            "/api/v1/photos/{other_photo}/thumb/large",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::GET,
            "/api/v1/photos/{other_photo}/meta",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::GET,
            "/api/v1/photos/{random_sha}/meta",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{photo_round}/photos",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{random}/photos",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Holder evidence: whoever sees the mine sees it (a holder their own mine's, originals
        // of its evidence photos included); its holder, the county office and admins file it.
        (
            Method::GET,
            "/api/v1/mines/{evidence_mine}/evidence",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/mines/{other_mine}/evidence",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::GET,
            "/api/v1/mines/{evidence_mine}/evidence/{evidence_entry}/file",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/mines/{evidence_mine}/evidence/{random}/file",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        (
            Method::POST,
            "/api/v1/mines/{evidence_mine}/evidence",
            "evidence",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice | Role::Operator => S::CREATED,
                _ => S::FORBIDDEN,
            }),
        ),
        // Not uploaded for that mine (409), or not the holder's mine (404).
        (
            Method::POST,
            "/api/v1/mines/{other_mine}/evidence",
            "evidence",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice => S::CONFLICT,
                Role::Operator => S::NOT_FOUND,
                _ => S::FORBIDDEN,
            }),
        ),
        (
            Method::GET,
            "/api/v1/photos/{evidence_photo}",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/photos/{evidence_photo}/thumb/large",
            "",
            Box::new(everyone(S::OK)),
        ),
        // The assembled record: whoever sees the mine (a holder their own mine's).
        (
            Method::GET,
            "/api/v1/rounds/{photo_round}/record",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{random}/record",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Its PDF: the same visibility.
        (
            Method::GET,
            "/api/v1/rounds/{photo_round}/record.pdf",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{random}/record.pdf",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Its archive bundle: the same visibility, but not for a holder (it holds the original
        // photos, which a holder never gets).
        (
            Method::GET,
            "/api/v1/rounds/{photo_round}/bundle.zip",
            "",
            Box::new(|r: Role| match r {
                Role::Operator => S::FORBIDDEN,
                _ => S::OK,
            }),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{random}/bundle.zip",
            "",
            Box::new(|r: Role| match r {
                Role::Operator => S::FORBIDDEN,
                _ => S::NOT_FOUND,
            }),
        ),
        // The opinion letter: the county office drafts, edits and issues (a round whose record
        // did not pass gets no letter); reading follows the mine's visibility.
        (
            Method::POST,
            "/api/v1/rounds/{photo_round}/letter",
            "letter",
            Box::new(office_or_admin(S::CONFLICT, S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/rounds/{photo_round}/letter",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        (
            Method::GET,
            "/api/v1/letters/{random}",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Its PDF: the same visibility.
        (
            Method::GET,
            "/api/v1/letters/{random}/letter.pdf",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Strokes by hash: only a strokes blob, to anyone signed in who names it (a photo's hash
        // is not strokes).
        (
            Method::GET,
            "/api/v1/strokes/{evidence_photo}",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        (
            Method::GET,
            "/api/v1/strokes/{random_sha}",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        (
            Method::PUT,
            "/api/v1/letters/{random}",
            "letter",
            Box::new(office_or_admin(S::NOT_FOUND, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/letters/{random}/issue",
            "",
            Box::new(office_or_admin(S::NOT_FOUND, S::FORBIDDEN)),
        ),
        (Method::GET, "/api/v1/me", "", Box::new(everyone(S::OK))),
        (
            Method::GET,
            "/api/v1/users",
            "",
            Box::new(admin_only(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/users",
            "new_user",
            Box::new(admin_only(S::CREATED, S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/users/{bystander}",
            "",
            Box::new(admin_only(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/users/{bystander}/enable",
            "",
            Box::new(admin_only(S::NO_CONTENT, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/users/{bystander}/disable",
            "",
            Box::new(admin_only(S::NO_CONTENT, S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/departments",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/specialties",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/townships",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::POST,
            "/api/v1/townships",
            "new_township",
            Box::new(|r: Role| {
                if matches!(r, Role::Admin | Role::CountyOffice) {
                    S::CREATED
                } else {
                    S::FORBIDDEN
                }
            }),
        ),
        (
            Method::POST,
            "/api/v1/devices",
            "new_device",
            Box::new(everyone(S::CREATED)),
        ),
        (
            Method::GET,
            "/api/v1/devices",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/devices?all=true",
            "",
            Box::new(admin_only(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/devices/{bystander_device}/owner",
            "",
            Box::new(not_operator(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/devices/{bystander_device}/revoke",
            "",
            Box::new(admin_only(S::NO_CONTENT, S::NOT_FOUND)),
        ),
        (
            Method::GET,
            "/api/v1/sync/conflicts",
            "",
            Box::new(everyone(S::OK)),
        ),
        // Sync needs a device-bound session; these sessions have none.
        (
            Method::POST,
            "/api/v1/sync",
            "sync",
            Box::new(everyone(S::FORBIDDEN)),
        ),
        // The limits are for everyone; uploads need a device-bound session, these have none.
        (
            Method::GET,
            "/api/v1/uploads/limits",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::POST,
            "/api/v1/uploads",
            "new_upload",
            Box::new(everyone(S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/uploads/{random}",
            "",
            Box::new(everyone(S::FORBIDDEN)),
        ),
        (
            Method::PATCH,
            "/api/v1/uploads/{random}",
            "",
            Box::new(everyone(S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/uploads/{random}/finish",
            "",
            Box::new(everyone(S::FORBIDDEN)),
        ),
        // Mining-right holders list (and export) the mines bound to them: none here.
        (Method::GET, "/api/v1/mines", "", Box::new(everyone(S::OK))),
        (
            Method::GET,
            "/api/v1/mines/export",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::PUT,
            "/api/v1/mines/{mine}/holder",
            "bind_holder",
            Box::new(office_or_admin(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::GET,
            "/api/v1/mines/{mine}",
            "",
            Box::new(not_operator(S::OK, S::NOT_FOUND)),
        ),
        (
            Method::POST,
            "/api/v1/mines",
            "new_mine",
            Box::new(office_or_admin(S::CREATED, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/mines/import",
            "csv",
            Box::new(office_or_admin(S::OK, S::FORBIDDEN)),
        ),
        (
            Method::POST,
            "/api/v1/mines/{mine}/transitions",
            "propose",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer => S::OK,
                Role::Operator => S::NOT_FOUND,
                _ => S::FORBIDDEN,
            }),
        ),
        (
            Method::POST,
            "/api/v1/mines/{mine}/cases",
            "case",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer => S::CREATED,
                _ => S::FORBIDDEN,
            }),
        ),
        (
            Method::POST,
            "/api/v1/mines/{approved_mine}/rounds",
            "",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer => S::CREATED,
                _ => S::FORBIDDEN,
            }),
        ),
        (
            Method::GET,
            "/api/v1/mines/{approved_mine}/rounds",
            "",
            Box::new(not_operator(S::OK, S::NOT_FOUND)),
        ),
        // Another township's mine: not there for its township officer (nor for a holder).
        (
            Method::GET,
            "/api/v1/mines/{other_mine}",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::GET,
            "/api/v1/mines/{other_mine}/rounds",
            "",
            Box::new(elsewhere),
        ),
        (
            Method::POST,
            "/api/v1/mines/{other_mine}/rounds",
            "",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice => S::CREATED,
                Role::TownshipOfficer => S::NOT_FOUND,
                _ => S::FORBIDDEN,
            }),
        ),
        (
            Method::POST,
            "/api/v1/mines/{other_mine}/transitions",
            "propose",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice => S::CONFLICT,
                Role::TownshipOfficer | Role::Operator => S::NOT_FOUND,
                _ => S::FORBIDDEN,
            }),
        ),
        // The mine bound to the holder: theirs to see.
        (
            Method::GET,
            "/api/v1/mines/{held_mine}",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/mines/{held_mine}/rounds",
            "",
            Box::new(everyone(S::OK)),
        ),
        // Unknown round: the same answer for every signed-in role (nothing leaks).
        (
            Method::GET,
            "/api/v1/rounds/{random}",
            "",
            Box::new(everyone(S::NOT_FOUND)),
        ),
        // Every signed-in role reads the templates the phone renders.
        (
            Method::GET,
            "/api/v1/templates",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/templates/shanggao-2023/2023.1",
            "",
            Box::new(everyone(S::OK)),
        ),
        (
            Method::GET,
            "/api/v1/dashboard",
            "",
            Box::new(|r: Role| match r {
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer => S::OK,
                _ => S::FORBIDDEN,
            }),
        ),
    ];

    let mut n = 0;
    for (method, path_template, body_kind, expect) in &table {
        for (role, token) in tokens
            .iter()
            .map(|(r, t)| (*r, Some(t.as_str())))
            .chain([(None, None)])
        {
            n += 1;
            // Fresh targets per call so each call is independent of the previous ones.
            app.store
                .set_user_disabled(bystander.id, false)
                .await
                .unwrap();
            let (_, device) = app
                .call(
                    Method::POST,
                    "/api/v1/devices",
                    Some(&bystander_token),
                    Some(json!({"name": "b", "public_key": device_jwk()})),
                )
                .await;
            let mine = yanshou_server::model::Mine {
                id: Uuid::now_v7(),
                name: format!("矿{n}"),
                licence_no: format!("M-{n}"),
                holder: "某公司".into(),
                township_id,
                mineral: "石灰岩".into(),
                mining_method: "露天开采".into(),
                area_ha: None,
                boundary: None,
                holder_user_id: None,
                campaign_id: "shanggao-2023".into(),
                facts: yanshou_server::model::MineFacts::new(township_id),
                version: 0,
                created_at: 0,
                updated_at: 0,
            };
            app.store
                .ensure_campaign(
                    "shanggao-2023",
                    "t",
                    yanshou_server::rules::campaign::SHANGGAO_2023_TOML,
                    app.state.clock.now_ms(),
                )
                .await
                .unwrap();
            let mut approved = mine.clone();
            approved.id = Uuid::now_v7();
            approved.licence_no = format!("A-{n}");
            approved.facts.disposition = Some(yanshou_server::model::Disposition::Cancel);
            approved.facts.stage = yanshou_server::model::Stage::DispositionApproved;
            let mut other_mine = approved.clone();
            other_mine.id = Uuid::now_v7();
            other_mine.licence_no = format!("O-{n}");
            other_mine.township_id = other_township;
            other_mine.facts = yanshou_server::model::MineFacts::new(other_township);
            other_mine.facts.disposition = Some(yanshou_server::model::Disposition::Cancel);
            other_mine.facts.stage = yanshou_server::model::Stage::DispositionApproved;
            let mut held_mine = mine.clone();
            held_mine.id = Uuid::now_v7();
            held_mine.licence_no = format!("H-{n}");
            held_mine.holder_user_id = Some(holder_id);
            app.store
                .create_mines(&[
                    mine.clone(),
                    approved.clone(),
                    other_mine.clone(),
                    held_mine.clone(),
                ])
                .await
                .unwrap();
            let path = path_template
                .replace("{bystander}", &bystander.id.to_string())
                .replace("{bystander_device}", device["id"].as_str().unwrap())
                .replace("{mine}", &mine.id.to_string())
                .replace("{approved_mine}", &approved.id.to_string())
                .replace("{other_mine}", &other_mine.id.to_string())
                .replace("{held_mine}", &held_mine.id.to_string())
                .replace("{evidence_mine}", &evidence_mine)
                .replace("{evidence_photo}", &evidence_photo)
                .replace("{evidence_entry}", &evidence_entry)
                .replace("{photo}", &photo)
                .replace("{other_photo}", &other_photo)
                .replace("{photo_round}", &photo_round)
                .replace("{random_sha}", &"0f".repeat(32))
                .replace("{random}", &Uuid::now_v7().to_string());
            let body = match *body_kind {
                "new_user" => Some(
                    json!({"username": format!("u{n}"), "display_name": "新用户",
                                          "password": PASSWORD, "role": "operator"}),
                ),
                "new_township" => Some(json!({"name": format!("乡{n}"), "kind": "township"})),
                "new_device" => Some(json!({"name": "手机", "public_key": device_jwk()})),
                "sync" => Some(json!({"protocol_version": 1, "device": Uuid::now_v7(),
                                      "ops": [], "cursor": 0})),
                "new_mine" => Some(json!({"name": "新矿", "licence_no": format!("N-{n}"),
                    "holder": "某公司", "township_id": township_id, "mineral": "石灰岩",
                    "mining_method": "露天开采"})),
                "propose" => Some(json!({"transition": "propose", "disposition": "cancel"})),
                "bind_holder" => Some(json!({"user_id": bystander.id})),
                "new_upload" => Some(json!({"sha256": "ab".repeat(32), "size": 10,
                    "content_type": "image/jpeg", "record_id": Uuid::now_v7()})),
                "evidence" => Some(json!({"sha256": evidence_photo, "kind": "photo",
                    "description": "覆土复绿后", "items": ["19.1"]})),
                "letter" => Some(json!({"number": "上自然资矿验〔2024〕1号",
                    "basis": ["上府办发〔2023〕35号"], "date": "2024-05-20",
                    "organiser": "上高县自然资源局",
                    "panel": [{"user": Uuid::now_v7(), "title": "高级工程师", "employer": "某院"}],
                    "method": "现场踏勘", "situation": "已停产", "opinions": "边坡稳定",
                    "conclusion": "pass"})),
                "case" => Some(json!({"kind": "referral", "what": "未履行修复义务",
                    "to": "县检察院", "evidence": ["照片1"]})),
                _ => None,
            };
            let (status, res) = if *body_kind == "csv" {
                let township = app.store.list_townships().await.unwrap()[0].name.clone();
                let mut req = Request::builder()
                    .method(method.clone())
                    .uri(&path)
                    .header(header::CONTENT_TYPE, "text/csv");
                if let Some(t) = token {
                    req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
                }
                app.send(
                    req.body(Body::from(format!(
                        "矿山名称,采矿许可证号,采矿权人,所在乡镇,矿种,开采方式\n\
                         导入矿,CSV-{n},某公司,{township},石灰岩,露天开采\n"
                    )))
                    .unwrap(),
                )
                .await
            } else {
                app.call(method.clone(), &path, token, body).await
            };
            let expected = role.map_or(S::UNAUTHORIZED, expect);
            assert_eq!(
                status, expected,
                "{method} {path_template} as {role:?}: {res}"
            );
        }
    }
    assert_eq!(n, table.len() * (Role::ALL.len() + 1));

    // Endpoints that take no token answer every caller alike (a token changes nothing).
    let public: Vec<(Method, &str, Option<Value>, S)> = vec![
        (Method::GET, "/healthz", None, S::OK),
        (Method::GET, "/readyz", None, S::OK),
        (Method::GET, "/api/v1/server-key", None, S::OK),
        (
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": "nobody", "password": "not-the-password"})),
            S::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/api/v1/auth/refresh",
            Some(json!({"refresh_token": "not-a-token"})),
            S::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/api/v1/auth/logout",
            Some(json!({"refresh_token": "not-a-token"})),
            S::NO_CONTENT,
        ),
    ];
    for (method, path, body, expected) in &public {
        for (role, token) in tokens
            .iter()
            .map(|(r, t)| (*r, Some(t.as_str())))
            .chain([(None, None)])
        {
            n += 1;
            // A new name each time: five failures of one name and address are throttled.
            let body = body.clone().map(|mut b| {
                if let Some(u) = b.get_mut("username") {
                    *u = json!(format!("nobody{n}"));
                }
                b
            });
            let (status, res) = app.call(method.clone(), path, token, body).await;
            assert_eq!(status, *expected, "{method} {path} as {role:?}: {res}");
        }
    }

    // Every operation of the OpenAPI document has a row: a new endpoint without one fails here.
    let (_, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let rows: Vec<(String, String)> = table
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), (*p).to_owned()))
        .chain(
            public
                .iter()
                .map(|(m, p, _, _)| (m.to_string(), (*p).to_owned())),
        )
        .collect();
    let covers = |doc_path: &str, row_path: &str| {
        let row_path = row_path.split('?').next().unwrap_or_default();
        let (a, b): (Vec<_>, Vec<_>) =
            (doc_path.split('/').collect(), row_path.split('/').collect());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(d, r)| d == r || (d.starts_with('{') && d.ends_with('}') && !r.is_empty()))
    };
    let mut operations = 0;
    for (doc_path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let method = method.to_ascii_uppercase();
            assert!(
                rows.iter()
                    .any(|(m, p)| *m == method && covers(doc_path, p)),
                "{method} {doc_path} is in the OpenAPI document but has no row in the matrix"
            );
        }
    }
    assert!(operations >= 35, "{operations} operations in the document");
}

/// A photo (ingested and kept as an upload's finish does) of a new round of a new approved
/// mine in `township`; returns the photo's hash and the round's id.
async fn photo_fixture(
    app: &TestApp,
    office: &str,
    township: Uuid,
    holder: Option<Uuid>,
    licence_no: &str,
    seed: u32,
) -> (String, String) {
    app.store
        .ensure_campaign(
            "shanggao-2023",
            "t",
            yanshou_server::rules::campaign::SHANGGAO_2023_TOML,
            app.state.clock.now_ms(),
        )
        .await
        .unwrap();
    let mine = fixture_mine(township, licence_no, true, holder);
    app.store
        .create_mines(std::slice::from_ref(&mine))
        .await
        .unwrap();
    let (s, round) = app
        .call(
            Method::POST,
            &format!("/api/v1/mines/{}/rounds", mine.id),
            Some(office),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let round = round["id"].as_str().unwrap().to_owned();
    let jpeg = yanshou_server::photos::sample::sample_jpeg(40 + seed, 30, None, 80);
    let ingested =
        yanshou_server::photos::ingest(&jpeg, &yanshou_server::photos::sniff::Limits::default())
            .unwrap();
    yanshou_server::photos::evidence::keep(&app.state, &ingested, round.parse().unwrap())
        .await
        .unwrap();
    app.state.blobs.put(jpeg.into()).await.unwrap();
    (ingested.sha256, round)
}

/// A mine of `township` bound to `holder`, with a photo uploaded for it (as an upload's finish
/// keeps it) and filed as its evidence; returns the mine's id, the photo's hash, the entry's id.
async fn evidence_fixture(app: &TestApp, township: Uuid, holder: Uuid) -> (String, String, String) {
    let mine = fixture_mine(township, "EV-1", true, Some(holder));
    app.store
        .create_mines(std::slice::from_ref(&mine))
        .await
        .unwrap();
    let jpeg = yanshou_server::photos::sample::sample_jpeg(50, 40, None, 80);
    let ingested =
        yanshou_server::photos::ingest(&jpeg, &yanshou_server::photos::sniff::Limits::default())
            .unwrap();
    yanshou_server::photos::evidence::keep_unlinked(&app.state, &ingested)
        .await
        .unwrap();
    app.state.blobs.put(jpeg.clone().into()).await.unwrap();
    let device = yanshou_server::model::Device {
        id: Uuid::now_v7(),
        user_id: holder,
        name: "手机".into(),
        public_key_spki: "AAAA".into(),
        created_at: 0,
        revoked_at: None,
    };
    app.store.create_device(&device).await.unwrap();
    let upload = yanshou_server::store::Upload {
        id: Uuid::now_v7(),
        user_id: holder,
        device_id: device.id,
        record_id: None,
        mine_id: Some(mine.id),
        sha256: ingested.sha256.clone(),
        size: jpeg.len() as u64,
        content_type: "image/jpeg".into(),
        received: jpeg.len() as u64,
        created_at: 0,
        updated_at: 0,
        completed_at: Some(0),
    };
    app.store.create_upload(&upload).await.unwrap();
    let entry = yanshou_server::store::MineEvidence {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        kind: "photo".into(),
        sha256: ingested.sha256.clone(),
        content_type: "image/jpeg".into(),
        size: jpeg.len() as u64,
        description: "边坡复绿".into(),
        items: Vec::new(),
        deadline_key: None,
        created_by: holder,
        created_at: 0,
    };
    app.store.add_mine_evidence(&entry).await.unwrap();
    (mine.id.to_string(), ingested.sha256, entry.id.to_string())
}

/// A mine registered directly in the store (approved for cancellation when `approved`).
fn fixture_mine(
    township_id: Uuid,
    licence_no: &str,
    approved: bool,
    holder: Option<Uuid>,
) -> yanshou_server::model::Mine {
    let mut facts = yanshou_server::model::MineFacts::new(township_id);
    if approved {
        facts.disposition = Some(yanshou_server::model::Disposition::Cancel);
        facts.stage = yanshou_server::model::Stage::DispositionApproved;
    }
    yanshou_server::model::Mine {
        id: Uuid::now_v7(),
        name: format!("矿 {licence_no}"),
        licence_no: licence_no.into(),
        holder: "某公司".into(),
        township_id,
        mineral: "石灰岩".into(),
        mining_method: "露天开采".into(),
        area_ha: None,
        boundary: None,
        holder_user_id: holder,
        campaign_id: "shanggao-2023".into(),
        facts,
        version: 0,
        created_at: 0,
        updated_at: 0,
    }
}

/// What each role *sees* with two townships: the mine list, details, the CSV export, the
/// dashboard and the acceptance rounds hold exactly the caller's scope (a township officer their
/// township's mines, a holder their bound mine, the county roles everything).
async fn each_role_sees_only_its_scope(b: Backend) {
    use std::collections::BTreeSet;
    let app = TestApp::new(b).await;
    let admin = app.token_for("root", Role::Admin).await;
    let office = app.token_for("office", Role::CountyOffice).await;
    let inspector = app.token_for("lin", Role::DepartmentInspector).await;
    let expert = app.token_for("zhuan", Role::Expert).await;
    let sixi = app.token_for("sixi", Role::TownshipOfficer).await;
    let holder_user = app.user("holder", Role::Operator).await;
    let holder = app.login("holder").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = app.first_township().await;
    let other = app.other_township("翰堂镇").await;
    app.user_scoped("hantang", Role::TownshipOfficer, None, Some(other))
        .await;
    let hantang = app.login("hantang").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.store
        .ensure_campaign(
            "shanggao-2023",
            "t",
            yanshou_server::rules::campaign::SHANGGAO_2023_TOML,
            app.state.clock.now_ms(),
        )
        .await
        .unwrap();
    let a1 = fixture_mine(a, "A-1", true, Some(holder_user.id));
    let a2 = fixture_mine(a, "A-2", false, None);
    let b1 = fixture_mine(other, "B-1", true, None);
    app.store
        .create_mines(&[a1.clone(), a2.clone(), b1.clone()])
        .await
        .unwrap();
    let mut rounds = std::collections::BTreeMap::new();
    for mine in [&a1, &b1] {
        let (s, round) = app
            .call(
                Method::POST,
                &format!("/api/v1/mines/{}/rounds", mine.id),
                Some(&office),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{round}");
        rounds.insert(mine.id, round["id"].as_str().unwrap().to_owned());
    }

    let all = [&a1, &a2, &b1];
    let ids = |mines: &[&yanshou_server::model::Mine]| -> BTreeSet<Uuid> {
        mines.iter().map(|m| m.id).collect()
    };
    let cases: [(&str, &str, BTreeSet<Uuid>, bool); 7] = [
        ("admin", &admin, ids(&all), true),
        ("county office", &office, ids(&all), true),
        ("inspector", &inspector, ids(&all), false),
        ("expert", &expert, ids(&all), false),
        ("officer of A", &sixi, ids(&[&a1, &a2]), true),
        ("officer of B", &hantang, ids(&[&b1]), true),
        ("holder of A-1", &holder, ids(&[&a1]), false),
    ];
    for (who, token, visible, dashboard) in &cases {
        let (s, list) = app
            .call(Method::GET, "/api/v1/mines", Some(token), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{who}: {list}");
        let listed: BTreeSet<Uuid> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Uuid::parse_str(m["id"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(&listed, visible, "{who}: the mine list");

        let (s, csv) = app
            .call(Method::GET, "/api/v1/mines/export", Some(token), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{who}");
        let csv = csv.as_str().unwrap();
        for mine in all {
            assert_eq!(
                csv.contains(&format!(",{},", mine.licence_no)),
                visible.contains(&mine.id),
                "{who}: {} in the export:\n{csv}",
                mine.licence_no
            );
        }

        for mine in all {
            let seen = visible.contains(&mine.id);
            let expected = if seen {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            let (s, detail) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/mines/{}", mine.id),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(
                s, expected,
                "{who}: detail of {}: {detail}",
                mine.licence_no
            );
            if seen {
                assert_eq!(detail["licence_no"], mine.licence_no.as_str(), "{who}");
            }
            let (s, list) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/mines/{}/rounds", mine.id),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(s, expected, "{who}: rounds of {}: {list}", mine.licence_no);
            if seen {
                let listed: Vec<&str> = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap())
                    .collect();
                let own: Vec<&str> = rounds
                    .get(&mine.id)
                    .map(String::as_str)
                    .into_iter()
                    .collect();
                assert_eq!(listed, own, "{who}: rounds of {}", mine.licence_no);
            }
            if let Some(round) = rounds.get(&mine.id) {
                let (s, view) = app
                    .call(
                        Method::GET,
                        &format!("/api/v1/rounds/{round}"),
                        Some(token),
                        None,
                    )
                    .await;
                assert_eq!(s, expected, "{who}: round of {}: {view}", mine.licence_no);
                if seen {
                    assert_eq!(view["mine_id"], json!(mine.id), "{who}");
                }
            }
        }

        let (s, board) = app
            .call(
                Method::GET,
                "/api/v1/dashboard?as_of=2024-03-10",
                Some(token),
                None,
            )
            .await;
        if !dashboard {
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {board}");
            continue;
        }
        assert_eq!(s, StatusCode::OK, "{who}: {board}");
        assert_eq!(board["mines"], visible.len(), "{who}: {board}");
        let towns: BTreeSet<Uuid> = all
            .iter()
            .filter(|m| visible.contains(&m.id))
            .map(|m| m.township_id)
            .collect();
        let listed: BTreeSet<Uuid> = board["townships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| Uuid::parse_str(t["township_id"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(listed, towns, "{who}: townships on the dashboard");
        let deadlines: BTreeSet<String> = ["overdue", "due_soon"]
            .iter()
            .flat_map(|k| board[*k].as_array().unwrap().clone())
            .map(|d| d["mine_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        for d in &deadlines {
            let id = Uuid::parse_str(d).unwrap();
            assert!(visible.contains(&id), "{who}: a deadline of {id} leaked");
        }
    }
}

both_backends!(
    each_role_sees_only_its_scope,
    login_returns_tokens_that_work,
    wrong_password_and_unknown_user_look_the_same,
    malformed_requests_get_field_level_400s,
    oversized_body_is_413,
    unknown_route_is_json_404_with_request_id,
    repeated_failures_are_rate_limited_per_account,
    many_accounts_from_one_address_are_rate_limited,
    bad_access_tokens_are_401,
    disabled_user_is_locked_out_at_once,
    admin_cannot_disable_themself,
    refresh_rotates_and_replay_revokes_the_family,
    expired_and_unknown_refresh_tokens_are_401,
    logout_ends_the_session,
    device_enrolment_binding_and_revocation,
    device_of_another_user_cannot_be_used_or_revoked,
    bad_device_keys_are_400,
    user_creation_enforces_role_scope,
    townships_are_validated,
    health_and_openapi,
    authorization_matrix,
);
