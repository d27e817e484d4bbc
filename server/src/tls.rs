//! HTTPS for the county's LAN.
//!
//! Phones reach the county server by its LAN address, and the app's service worker, WebCrypto
//! device keys and geolocation need a secure context: so the server speaks HTTPS itself (rustls
//! with the `ring` provider) when `tls_cert_file` and `tls_key_file` are set.
//!
//! Certificates are renewed while the server runs (a county CA's yearly certificate, or a real
//! domain's every 90 days), so [`ReloadingCert`] re-reads the two PEM files when they change: at
//! most every [`CHECK_EVERY`], a handshake looks at their modification times and sizes, and on a
//! change loads them again. A new pair that does not load (half-written, key not matching the
//! certificate, …) is logged once with its reason and the previous certificate stays in use; the
//! check is repeated when the files change again.
//!
//! [`TlsListener`] accepts TCP connections and runs each handshake on its own task (a slow or
//! silent client holds up nobody), handing finished connections to `axum::serve`, so HTTPS keeps
//! the graceful shutdown and the client addresses (`ConnectInfo`) of plain HTTP.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// How often a handshake may look at the certificate files for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// A handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider: ring (builds quickly, no C toolchain beyond what ring needs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Load and check a certificate chain and its private key from PEM files.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        },
        other => TlsError::BadKey {
            path: key.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// What identifies a version of the files without reading them: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct Loaded {
    current: Arc<CertifiedKey>,
    /// The files' stamps when `current` was loaded.
    stamps: (Stamp, Stamp),
    /// Stamps of files that failed to load (logged once, retried when they change).
    refused: Option<(Stamp, Stamp)>,
    checked_at: Instant,
}

/// A certificate resolver that follows the PEM files as they are replaced.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    check_every: Duration,
    state: Mutex<Loaded>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Load the files now (an error here stops the start: there is no previous certificate).
    pub fn new(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
        check_every: Duration,
    ) -> Result<Self, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let current = Arc::new(load_certified_key(cert, key, &provider)?);
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            check_every,
            state: Mutex::new(Loaded {
                current,
                stamps,
                refused: None,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The certificate to present, after reloading the files if they changed since the last look
    /// (at most every `check_every`).
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked_at.elapsed() >= self.check_every {
            state.checked_at = Instant::now();
            self.reload_if_changed(&mut state);
        }
        state.current.clone()
    }

    fn reload_if_changed(&self, state: &mut Loaded) {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps == state.stamps || Some(stamps) == state.refused {
            return;
        }
        match load_certified_key(&self.cert, &self.key, &self.provider) {
            Ok(key) => {
                state.current = Arc::new(key);
                state.stamps = stamps;
                state.refused = None;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                state.refused = Some(stamps);
                tracing::warn!(error = %e,
                    "the changed TLS certificate files do not load; keeping the previous certificate");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server's TLS configuration over a reloading certificate (HTTP/1.1, TLS 1.2 and 1.3).
pub fn server_config(resolver: Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(resolver.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration of `cert`/`key`, reloaded when the files change (checked at most every
/// [`CHECK_EVERY`]).
pub fn config_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    config_from_files_checking_every(cert, key, CHECK_EVERY)
}

/// Like [`config_from_files`] with another check interval (tests use zero).
pub fn config_from_files_checking_every(
    cert: &Path,
    key: &Path,
    check_every: Duration,
) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = ReloadingCert::new(cert, key, provider(), check_every)?;
    server_config(Arc::new(resolver))
}

/// A listener of TLS connections for `axum::serve`: TCP accepts on one task, each handshake on
/// its own.
#[derive(Debug)]
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, incoming) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self {
            incoming,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stop accepting (closes the TCP listener); handshakes under way end on their own.
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // As axum does for plain TCP: per-connection errors are routine; anything else
                // (out of file descriptors) gets a pause instead of a busy loop.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) {
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accept task ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

// ---------------------------------------------------------------------------------------------
// A county CA and server certificates (`yanshou cert`).

/// Longest validity of a server certificate: iOS refuses TLS server certificates valid for more
/// than 825 days, even from a CA the user installed.
pub const SERVER_CERT_DAYS: i64 = 800;
/// Validity of a county CA.
pub const CA_CERT_DAYS: i64 = 10 * 365;

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no name given: list the server's LAN IP addresses and/or DNS names")]
    NoNames,
    #[error(
        "the new certificate does not verify against {ca} ({reason}); was the CA made with \
         another --ca-name?"
    )]
    Verify { ca: PathBuf, reason: String },
}

/// A calendar day relative to today (UTC), as rcgen takes it.
fn day(days_from_today: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days_from_today);
    // Month and day always fit.
    (
        d.year(),
        u8::try_from(d.month()).unwrap_or(1),
        u8::try_from(d.day()).unwrap_or(1),
    )
}

fn validity(params: &mut rcgen::CertificateParams, days: i64) {
    let (y, m, d) = day(-1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(days);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::thread_rng(), &mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(serial.to_vec().into());
}

/// The parameters of a county CA named `name` (the same name gives the same issuer, so a CA
/// kept on disk can sign again).
fn ca_params(name: &str) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Yanshou");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A certificate authority: its certificate (PEM) and what signs with it.
#[derive(Debug)]
pub struct CertificateAuthority {
    /// The CA certificate in PEM, to install on the phones.
    pub cert_pem: String,
    /// The CA's private key in PEM (keep it off the server if you can).
    pub key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl CertificateAuthority {
    /// A new CA (ECDSA P-256), valid for [`CA_CERT_DAYS`].
    pub fn new(name: &str) -> Result<Self, CertError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = ca_params(name)?;
        validity(&mut params, CA_CERT_DAYS);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: rcgen::Issuer::new(ca_params(name)?, key),
        })
    }

    /// A CA kept on disk: its certificate and key in PEM, and the name it was made with.
    pub fn from_pem(name: &str, cert_pem: String, key_pem: String) -> Result<Self, CertError> {
        let key = rcgen::KeyPair::from_pem(&key_pem)?;
        Ok(Self {
            cert_pem,
            key_pem,
            issuer: rcgen::Issuer::new(ca_params(name)?, key),
        })
    }

    /// A server certificate for `names` (IP addresses and DNS names), valid for
    /// [`SERVER_CERT_DAYS`]: returns the chain (server, then CA) and the key, both PEM.
    pub fn issue_server_cert(&self, names: &[String]) -> Result<(String, String), CertError> {
        if names.is_empty() {
            return Err(CertError::NoNames);
        }
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, SERVER_CERT_DAYS);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
        ))
    }
}

/// Check that `chain_pem` verifies for every name against the CA certificate `ca_pem`, as a
/// phone that trusts that CA would check it.
pub fn verify_server_cert(ca_pem: &str, chain_pem: &str, names: &[String]) -> Result<(), String> {
    use rustls::{
        client::{WebPkiServerVerifier, danger::ServerCertVerifier},
        pki_types::{ServerName, UnixTime},
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
    for name in names {
        let server_name = ServerName::try_from(name.as_str()).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// What `yanshou cert` made.
#[derive(Debug)]
pub struct MadeCerts {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Whether the CA was made now (else an existing one signed).
    pub new_ca: bool,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// `yanshou cert`: in `dir`, make a county CA (`ca.crt`, `ca.key`) unless one is there, and a
/// server certificate for `names` signed by it (`server.crt` with the chain, `server.key`). The
/// files are replaced by rename, so a running server reloads a complete pair.
pub fn make_county_certs(
    dir: &Path,
    ca_name: &str,
    names: &[String],
) -> Result<MadeCerts, CertError> {
    let write = |name: &str, text: &str, secret: bool| -> Result<PathBuf, CertError> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let err = |source| CertError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        write_file(&tmp, text.as_bytes(), secret).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(path)
    };
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| CertError::Read { path, source })
    };
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let new_ca = !(ca_cert.exists() && ca_key.exists());
    let ca = if new_ca {
        let ca = CertificateAuthority::new(ca_name)?;
        write("ca.key", &ca.key_pem, true)?;
        write("ca.crt", &ca.cert_pem, false)?;
        ca
    } else {
        CertificateAuthority::from_pem(ca_name, read(ca_cert.clone())?, read(ca_key.clone())?)?
    };
    let (chain, key) = ca.issue_server_cert(names)?;
    verify_server_cert(&ca.cert_pem, &chain, names).map_err(|reason| CertError::Verify {
        ca: ca_cert.clone(),
        reason,
    })?;
    let server_key = write("server.key", &key, true)?;
    let server_cert = write("server.crt", &chain, false)?;
    Ok(MadeCerts {
        ca_cert,
        ca_key,
        new_ca,
        server_cert,
        server_key,
    })
}

/// Write a file; private keys are readable by the owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
