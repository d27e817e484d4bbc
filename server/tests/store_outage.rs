//! A PostgreSQL that goes away: `/readyz` says 503, requests get clean 503 errors (no panics, no
//! hung requests), and the server recovers by itself when the database comes back.
//!
//! The outage is real at the network level: the store connects through a TCP relay on loopback
//! that this test stops (closing every relayed connection) and starts again on the same port.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, time::Duration};

use axum::http::{Method, StatusCode};
use common::{PASSWORD, TestApp, new_pg_schema, test_settings};
use serde_json::json;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use yanshou_server::{AppState, store};

/// Relays loopback TCP connections to PostgreSQL until stopped.
struct Relay {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(addr: SocketAddr, upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let mut stopped_accept = stopped.clone();
                let (mut inbound, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
                    _ = stopped_accept.changed() => return,
                };
                let mut stopped_conn = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stopped_conn.changed() => {}
                    }
                });
            }
        });
        Relay { addr, stop, task }
    }

    async fn stop(self) -> SocketAddr {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.addr
    }
}

fn pg_upstream() -> SocketAddr {
    let url = common::pg_base_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    host_port.parse().unwrap_or_else(|_| {
        std::net::ToSocketAddrs::to_socket_addrs(host_port)
            .unwrap()
            .next()
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_503_and_recovers() {
    let (direct_url, schema) = new_pg_schema().await;
    let relay = Relay::start("127.0.0.1:0".parse().unwrap(), pg_upstream()).await;
    let host = format!("127.0.0.1:{}", relay.addr.port());
    let relayed_url = direct_url.replacen(&pg_upstream().to_string(), &host, 1);
    let relayed_url = if relayed_url == direct_url {
        // The base URL names the host differently (e.g. localhost); rewrite the authority.
        let (scheme_user, rest) = direct_url.split_once('@').unwrap();
        let path = rest.split_once('/').map(|x| x.1).unwrap_or("");
        format!("{scheme_user}@{host}/{path}")
    } else {
        relayed_url
    };
    let settings = test_settings(relayed_url);
    let s = store::connect(&settings).await.unwrap();
    s.migrate().await.unwrap();
    let state = AppState::with_store(s, settings.clone()).await.unwrap();
    let harness = TestApp::from_state(state);
    harness
        .user("inspector", yanshou_server::model::Role::Expert)
        .await;
    harness.login("inspector").await;
    assert_eq!(
        harness.call(Method::GET, "/readyz", None, None).await.0,
        StatusCode::OK
    );

    // The database goes away.
    let addr = relay.stop().await;
    let (status, body) = harness.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    let (status, body) = harness
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "inspector", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        !body.to_string().contains("5432") && !body.to_string().contains("refused"),
        "no internal detail may leak: {body}"
    );
    // The process is still alive.
    assert_eq!(
        harness.call(Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );

    // It comes back on the same address; the pool reconnects by itself.
    let relay = Relay::start(addr, pg_upstream()).await;
    let mut ready = false;
    for _ in 0..50 {
        if harness.call(Method::GET, "/readyz", None, None).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server did not recover after the database came back");
    harness.login("inspector").await;
    relay.stop().await;
    let admin = sqlx::PgPool::connect(&common::pg_base_url()).await.unwrap();
    sqlx::query(&format!("drop schema {schema} cascade"))
        .execute(&admin)
        .await
        .unwrap();
}
