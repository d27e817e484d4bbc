//! HTTPS: the server presents the certificate of its PEM files, follows them when they are
//! replaced (no restart), keeps the previous certificate when new files do not load, and
//! `yanshou cert`'s county CA signs certificates a phone trusting that CA accepts.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use common::{Backend, TestDb};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use uuid::Uuid;
use yanshou_server::{
    app, serve_tls,
    tls::{self, CertificateAuthority, TlsError},
};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("yanshou-tls-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write a PEM pair and move the files' modification time forward, as a renewal would.
fn install(dir: &Path, chain: &str, key: &str, age: u64) {
    for (name, text) in [("server.crt", chain), ("server.key", key)] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(age))
            .unwrap();
    }
}

fn leaf_der(chain_pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// A fresh HTTPS client trusting `ca_pem` (a new client: no pooled connection, a new handshake).
fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

/// GET over HTTPS; returns the status, the body and the DER of the certificate the server showed.
async fn get(ca_pem: &str, url: &str) -> (u16, String, Vec<u8>) {
    let res = client(ca_pem).get(url).send().await.unwrap();
    let der = res
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec();
    (res.status().as_u16(), res.text().await.unwrap(), der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_files_certificate_and_follows_its_replacement() {
    let dir = TempDir::new();
    let ca = CertificateAuthority::new("Test county CA").unwrap();
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let (chain1, key1) = ca.issue_server_cert(&names).unwrap();
    install(&dir.0, &chain1, &key1, 0);

    let db = TestDb::new(Backend::Sqlite).await;
    let state = db.state().await;
    // Check the files on every handshake, so the test needs no waiting.
    let config = tls::config_from_files_checking_every(
        &dir.0.join("server.crt"),
        &dir.0.join("server.key"),
        Duration::ZERO,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tls(listener, app(state), config, async {
        let _ = stopped.await;
    }));

    let (status, body, der) = get(&ca.cert_pem, &format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    assert_eq!(der, leaf_der(&chain1));
    // The API answers over HTTPS too, client address included (login throttling uses it).
    let res = client(&ca.cert_pem)
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "nobody", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Renewed: the next connection gets the new certificate, without a restart.
    let (chain2, key2) = ca.issue_server_cert(&names).unwrap();
    install(&dir.0, &chain2, &key2, 10);
    let (status, _, der) = get(&ca.cert_pem, &format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(der, leaf_der(&chain2), "the replaced certificate is served");

    // A broken replacement (a key of another certificate, then garbage) keeps the last good one.
    let (_, other_key) = ca.issue_server_cert(&names).unwrap();
    install(&dir.0, &chain1, &other_key, 20);
    let (status, _, der) = get(&ca.cert_pem, &format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(der, leaf_der(&chain2));
    install(&dir.0, "not a certificate", "nor a key", 30);
    let (status, _, der) = get(&ca.cert_pem, &format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(der, leaf_der(&chain2));
    // Fixed files are picked up again.
    install(&dir.0, &chain1, &key1, 40);
    let (_, _, der) = get(&ca.cert_pem, &format!("{base}/healthz")).await;
    assert_eq!(der, leaf_der(&chain1));

    // A client that does not trust the county CA is refused.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn unusable_files_are_refused_at_start_with_the_reason() {
    let dir = TempDir::new();
    let ca = CertificateAuthority::new("Test county CA").unwrap();
    let names = vec!["192.168.1.20".to_owned()];
    let (chain, _) = ca.issue_server_cert(&names).unwrap();
    let (_, other_key) = ca.issue_server_cert(&names).unwrap();
    let (cert, key) = (dir.0.join("server.crt"), dir.0.join("server.key"));
    std::fs::write(&cert, &chain).unwrap();
    std::fs::write(&key, &other_key).unwrap();
    let err = tls::config_from_files(&cert, &key).unwrap_err();
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    std::fs::write(&cert, "hello").unwrap();
    let err = tls::config_from_files(&cert, &key).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    let err = tls::config_from_files(&dir.0.join("missing.crt"), &key).unwrap_err();
    assert!(err.to_string().contains("missing.crt"), "{err}");
}

#[test]
fn county_certs_are_made_once_and_renewals_keep_the_ca() {
    let dir = TempDir::new();
    let names = vec!["192.168.1.20".to_owned(), "yanshou.lan".to_owned()];
    let made = tls::make_county_certs(&dir.0, "上高县验收 CA", &names).unwrap();
    assert!(made.new_ca);
    let ca_pem = std::fs::read_to_string(&made.ca_cert).unwrap();
    let chain = std::fs::read_to_string(&made.server_cert).unwrap();
    tls::verify_server_cert(&ca_pem, &chain, &names).unwrap();
    assert!(tls::verify_server_cert(&ca_pem, &chain, &["10.0.0.1".to_owned()]).is_err());
    tls::config_from_files(&made.server_cert, &made.server_key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [&made.ca_key, &made.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is private", key.display());
        }
    }

    // Renewal: the same CA signs a new certificate the phones already trust.
    let renewed = tls::make_county_certs(&dir.0, "上高县验收 CA", &names[..1]).unwrap();
    assert!(!renewed.new_ca);
    assert_eq!(std::fs::read_to_string(&renewed.ca_cert).unwrap(), ca_pem);
    let chain2 = std::fs::read_to_string(&renewed.server_cert).unwrap();
    assert_ne!(chain2, chain);
    tls::verify_server_cert(&ca_pem, &chain2, &names[..1]).unwrap();
    // Another CA name cannot sign for this CA's phones: refused before any file is replaced.
    let err = tls::make_county_certs(&dir.0, "another name", &names).unwrap_err();
    assert!(err.to_string().contains("--ca-name"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&renewed.server_cert).unwrap(),
        chain2
    );
}
