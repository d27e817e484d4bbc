//! Typed settings.
//!
//! Precedence: built-in defaults < config file (TOML) < `YANSHOU_*` environment variables. Loading
//! has no side effects (no directories are created here; the store does that when it opens).
//! Secrets (database passwords inside URLs) are redacted in `Debug`.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// `id@version` of the built-in acceptance template (`server/templates/default-2023.toml`).
pub const DEFAULT_TEMPLATE_REF: &str = "shanggao-2023@2023.1";

/// All server settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port the HTTP server listens on. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded, default) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// Largest number of pooled database connections.
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it fails with 503.
    /// Short, so a database that went away gives quick, clean errors instead of hung requests.
    pub database_acquire_timeout_secs: u64,
    /// Apply pending migrations when `serve` starts (otherwise run `yanshou migrate`).
    pub migrate_on_start: bool,
    /// Directory for content-addressed blobs (photos, signature images, PDFs), unless
    /// `s3_bucket` is set.
    pub blob_dir: PathBuf,
    /// Keep blobs in this bucket of an S3-compatible object store instead of `blob_dir` (several
    /// server replicas need a shared store). Empty: the local directory.
    pub s3_bucket: String,
    /// The S3 endpoint, e.g. `http://minio.county.lan:9000`; empty for AWS itself.
    pub s3_endpoint: String,
    /// The bucket's region (S3-compatible servers usually accept any).
    pub s3_region: String,
    /// Access key id and secret of the bucket's account (better given as environment variables:
    /// `YANSHOU_S3_ACCESS_KEY_ID`, `YANSHOU_S3_SECRET_ACCESS_KEY`).
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    /// `iss` claim of access tokens; also checked on every request.
    pub token_issuer: String,
    /// `aud` claim of access tokens; also checked on every request.
    pub token_audience: String,
    /// Lifetime of an access token. Short, because an access token cannot be revoked by itself
    /// (a disabled user or revoked device is still refused at once: every request checks them).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token. Long, because an inspector may be offline in the mountains for
    /// weeks; every use rotates it and restarts the lifetime.
    pub refresh_token_ttl_days: u64,
    /// Failed logins allowed per account *from one client address* within `login_window_secs`
    /// before that address gets 429 for the account; twice as many within eight windows before
    /// it waits for the longer window (a delay growing from one window to eight).
    pub login_max_failures_per_account_address: u32,
    /// Failed logins allowed per account from all addresses within `login_window_secs`; past it
    /// the account is under attack and only its enrolled devices (login with `device_id`) may
    /// still try, so strangers cannot lock an inspector out.
    pub login_max_failures_per_account: u32,
    /// Failed logins allowed per client address within `login_window_secs`.
    pub login_max_failures_per_address: u32,
    /// Window of the login failure counters.
    pub login_window_secs: u64,
    /// Take the client address from the last `X-Forwarded-For` entry, the one the proxy appended
    /// (only behind a trusted reverse proxy; otherwise anyone could spoof the address and dodge
    /// the rate limit).
    pub trust_forwarded_for: bool,
    /// Largest accepted JSON request body in bytes (larger bodies get 413).
    pub max_json_body_bytes: usize,
    /// The acceptance template (`id@version`) new rounds are filled against: the built-in
    /// default, or one imported with `yanshou template import FILE`. Existing records keep the
    /// version they were opened with.
    pub acceptance_template: String,
    /// Directory of the built phone app (`mobile-web/dist`, made by `npm run build` in
    /// `mobile-web/`), served on the same origin as the API: every path outside `/api/`,
    /// `/healthz` and `/readyz`. A relative path is taken from the working directory. When it
    /// does not exist, `/` answers a page saying how to build the app.
    pub web_dir: PathBuf,
    /// Font file with Simplified Chinese glyphs for the PDF exports (`.ttf`, `.otf`, or a
    /// `.ttc` collection, whose SC face is taken). Unset: the usual Debian paths are searched,
    /// Debian's `fonts-noto-cjk` first (`NotoSansCJK-Regular.ttc`); with no font found the
    /// exports answer 503 naming the font and package, never a PDF of empty boxes.
    pub pdf_font_file: Option<PathBuf>,
    /// PEM file of the server's certificate chain (leaf first). With `tls_key_file`, the server
    /// speaks HTTPS: phones on the LAN need it (service workers and WebCrypto require a secure
    /// context). Re-read when the file changes, without a restart.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1); set both or neither.
    pub tls_key_file: Option<PathBuf>,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax, e.g. `info,yanshou_server=debug`.
    pub log: String,
    /// Log as JSON lines (for log shippers) instead of human-readable text.
    pub log_json: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/yanshou.db".into(),
            database_max_connections: 8,
            database_acquire_timeout_secs: 3,
            migrate_on_start: true,
            blob_dir: PathBuf::from("data/blobs"),
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            token_issuer: "yanshou".into(),
            token_audience: "yanshou-api".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            login_max_failures_per_account_address: 5,
            login_max_failures_per_account: 20,
            login_max_failures_per_address: 30,
            login_window_secs: 15 * 60,
            trust_forwarded_for: false,
            max_json_body_bytes: 1024 * 1024,
            acceptance_template: DEFAULT_TEMPLATE_REF.into(),
            web_dir: PathBuf::from("mobile-web/dist"),
            pdf_font_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            log: "info".into(),
            log_json: false,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        name: String,
        value: String,
        reason: String,
    },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Settings {
    /// Load settings: defaults, then the file (if given), then the process environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, env)
    }

    /// Like [`Settings::load`] with an explicit environment (for tests; no global state).
    pub fn load_from(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|source| SettingsError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => Self::default(),
        };
        for (name, value) in env {
            if let Some(key) = name.strip_prefix("YANSHOU_") {
                settings.apply_env(&name, &key.to_ascii_lowercase(), &value)?;
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Parse a TOML document; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Apply one `YANSHOU_*` variable; `Ok(false)` when `key` is not a setting.
    fn apply_env(&mut self, name: &str, key: &str, value: &str) -> Result<bool, SettingsError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, SettingsError>
        where
            T::Err: fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| SettingsError::Env {
                    name: name.into(),
                    value: value.into(),
                    reason: e.to_string(),
                })
        }
        match key {
            "listen" => self.listen = parse(name, value)?,
            "database_url" => self.database_url = value.into(),
            "database_max_connections" => self.database_max_connections = parse(name, value)?,
            "database_acquire_timeout_secs" => {
                self.database_acquire_timeout_secs = parse(name, value)?
            }
            "migrate_on_start" => self.migrate_on_start = parse(name, value)?,
            "blob_dir" => self.blob_dir = value.into(),
            "s3_bucket" => self.s3_bucket = value.into(),
            "s3_endpoint" => self.s3_endpoint = value.into(),
            "s3_region" => self.s3_region = value.into(),
            "s3_access_key_id" => self.s3_access_key_id = value.into(),
            "s3_secret_access_key" => self.s3_secret_access_key = value.into(),
            "token_issuer" => self.token_issuer = value.into(),
            "token_audience" => self.token_audience = value.into(),
            "access_token_ttl_secs" => self.access_token_ttl_secs = parse(name, value)?,
            "refresh_token_ttl_days" => self.refresh_token_ttl_days = parse(name, value)?,
            "login_max_failures_per_account_address" => {
                self.login_max_failures_per_account_address = parse(name, value)?
            }
            "login_max_failures_per_account" => {
                self.login_max_failures_per_account = parse(name, value)?
            }
            "login_max_failures_per_address" => {
                self.login_max_failures_per_address = parse(name, value)?
            }
            "login_window_secs" => self.login_window_secs = parse(name, value)?,
            "trust_forwarded_for" => self.trust_forwarded_for = parse(name, value)?,
            "max_json_body_bytes" => self.max_json_body_bytes = parse(name, value)?,
            "acceptance_template" => self.acceptance_template = value.into(),
            "web_dir" => self.web_dir = value.into(),
            "pdf_font_file" => {
                self.pdf_font_file = Some(value).filter(|v| !v.is_empty()).map(Into::into)
            }
            "tls_cert_file" => {
                self.tls_cert_file = Some(value).filter(|v| !v.is_empty()).map(Into::into)
            }
            "tls_key_file" => {
                self.tls_key_file = Some(value).filter(|v| !v.is_empty()).map(Into::into)
            }
            "log" => self.log = value.into(),
            "log_json" => self.log_json = parse(name, value)?,
            // Not a setting: see `ignored_env_vars`.
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A warning for each `YANSHOU_*` variable that is neither a setting nor one the CLI or the
    /// test harness reads, naming the nearest setting: a misspelt variable is otherwise ignored
    /// without a word. Pure; the binary prints these at start.
    pub fn ignored_env_vars(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        /// Variables read elsewhere: the CLI (`YANSHOU_CONFIG`, `YANSHOU_NEW_PASSWORD`) and the
        /// end-to-end tests (`YANSHOU_BIN`, `YANSHOU_WEB_DIST`, `YANSHOU_E2E_*`, `YANSHOU_TEST_*`).
        const OTHERS: &[&str] = &["config", "new_password", "bin", "web_dist"];
        let keys: Vec<String> = annotated_default_config()
            .lines()
            .filter_map(|l| {
                let (key, _) = l.trim_start_matches("# ").split_once(" = ")?;
                key.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
                    .then(|| key.to_owned())
            })
            .collect();
        let mut warnings = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("YANSHOU_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if OTHERS.contains(&key.as_str())
                || key.starts_with("e2e_")
                || key.starts_with("test_")
                || !matches!(
                    Settings::default().apply_env(&name, &key, &value),
                    Ok(false)
                )
            {
                continue;
            }
            let nearest = keys
                .iter()
                .map(|k| (edit_distance(k, &key), k))
                .min()
                .filter(|(d, k)| *d <= 3.max(k.len() / 4));
            warnings.push(match nearest {
                Some((_, k)) => format!(
                    "{name} is not a setting and is ignored; did you mean YANSHOU_{}?",
                    k.to_ascii_uppercase()
                ),
                None => format!(
                    "{name} is not a setting and is ignored (yanshou default-config lists them)"
                ),
            });
        }
        warnings.sort();
        warnings
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(SettingsError::Invalid {
                name: "database_url",
                reason: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        if self.database_max_connections == 0 {
            return Err(SettingsError::Invalid {
                name: "database_max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_days == 0 {
            return Err(SettingsError::Invalid {
                name: "access_token_ttl_secs/refresh_token_ttl_days",
                reason: "token lifetimes must be positive".into(),
            });
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(SettingsError::Invalid {
                name: "tls_cert_file/tls_key_file",
                reason: "set both (the PEM certificate chain and its private key) for HTTPS, or \
                         neither for plain HTTP"
                    .into(),
            });
        }
        if self.login_window_secs == 0 {
            return Err(SettingsError::Invalid {
                name: "login_window_secs",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.database_acquire_timeout_secs)
    }

    /// The database URL with any password replaced by `***`, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }
}

/// Replace the password part of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url_redacted())
            .field("database_max_connections", &self.database_max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("blob_dir", &self.blob_dir)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("web_dir", &self.web_dir)
            .field("pdf_font_file", &self.pdf_font_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_days", &self.refresh_token_ttl_days)
            .finish_non_exhaustive()
    }
}

/// The annotated example configuration printed by `yanshou default-config`.
/// Levenshtein distance, for suggesting the setting a misspelt variable meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(ca != *cb));
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

pub fn annotated_default_config() -> String {
    let d = Settings::default();
    format!(
        r#"# Yanshou server configuration (TOML).
# Precedence: defaults < this file (yanshou --config FILE, or YANSHOU_CONFIG) < YANSHOU_* environment
# variables, e.g. YANSHOU_DATABASE_URL=postgres://yanshou@db:5432/yanshou overrides database_url.

# Address and port to listen on. Port 0 picks a free port.
listen = "{listen}"

# Database: "sqlite://PATH" (embedded, one file, WAL) or "postgres://USER:PASSWORD@HOST:PORT/DB".
database_url = "{database_url}"
# Largest number of pooled database connections.
database_max_connections = {database_max_connections}
# Seconds a request waits for a database connection before failing with 503.
database_acquire_timeout_secs = {database_acquire_timeout_secs}
# Apply pending migrations when `serve` starts (otherwise run `yanshou migrate`).
migrate_on_start = {migrate_on_start}

# Directory for content-addressed blobs (photos, signature images, generated PDFs).
blob_dir = "{blob_dir}"
# Or an S3-compatible object store (needed when several server replicas share the blobs): set the
# bucket; the endpoint stays empty for AWS itself. Give the keys as environment variables
# (YANSHOU_S3_ACCESS_KEY_ID, YANSHOU_S3_SECRET_ACCESS_KEY) rather than in this file.
s3_bucket = "{s3_bucket}"
s3_endpoint = "{s3_endpoint}"
s3_region = "{s3_region}"
# s3_access_key_id = ""
# s3_secret_access_key = ""

# Access tokens (JWT, ES256): issuer and audience claims, lifetime in seconds.
token_issuer = "{token_issuer}"
token_audience = "{token_audience}"
access_token_ttl_secs = {access_token_ttl_secs}
# Refresh tokens rotate on every use; each new one lives this many days. Inspectors may be offline
# for weeks, so keep this longer than the longest field trip.
refresh_token_ttl_days = {refresh_token_ttl_days}

# Login rate limiting, counted before the password is checked (parallel guesses count too).
# Per account from one address: past the limit that address waits for the window to end; past
# twice the limit within eight windows, for that longer window.
login_max_failures_per_account_address = {login_max_failures_per_account_address}
# Per account from all addresses: past it only the account's enrolled devices (login with their
# device_id) may still try, so nobody can lock an inspector out by guessing from elsewhere.
login_max_failures_per_account = {login_max_failures_per_account}
# Per client address, over all accounts.
login_max_failures_per_address = {login_max_failures_per_address}
login_window_secs = {login_window_secs}
# Take the client address from X-Forwarded-For (only behind a trusted reverse proxy).
trust_forwarded_for = {trust_forwarded_for}

# Largest accepted JSON request body in bytes (larger: 413).
max_json_body_bytes = {max_json_body_bytes}

# Acceptance template (id@version) for new rounds: the built-in default or one imported with
# `yanshou template import FILE`. Records keep the version they were opened with.
acceptance_template = "{acceptance_template}"

# Directory of the built phone app (cd mobile-web && npm ci && npm run build), served on the same
# origin as the API at every path outside /api/, /healthz and /readyz. Relative to the working
# directory. When it is missing, / answers a page saying how to build the app.
web_dir = "{web_dir}"

# Font with Simplified Chinese glyphs for the PDF exports (.ttf, .otf, or a .ttc collection whose
# SC face is taken). Unset: the usual Debian paths are searched, fonts-noto-cjk first
# (apt-get install fonts-noto-cjk); without one the exports answer 503 saying so.
# pdf_font_file = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

# HTTPS: PEM files of the server's certificate chain (leaf first) and its private key; set both
# or neither. Phones on the LAN need HTTPS (service workers and WebCrypto require a secure
# context): a certificate for the server's LAN address from a county CA installed on the phones
# (`yanshou cert` makes both), or a real domain's. Replaced files are picked up within seconds,
# without a restart (a pair that does not load is logged and the previous one kept).
# tls_cert_file = "/etc/yanshou/server.crt"
# tls_key_file = "/etc/yanshou/server.key"

# Log filter (tracing EnvFilter syntax) and format.
log = "{log}"
log_json = {log_json}
"#,
        listen = d.listen,
        database_url = d.database_url,
        database_max_connections = d.database_max_connections,
        database_acquire_timeout_secs = d.database_acquire_timeout_secs,
        migrate_on_start = d.migrate_on_start,
        blob_dir = d.blob_dir.display(),
        s3_bucket = d.s3_bucket,
        s3_endpoint = d.s3_endpoint,
        s3_region = d.s3_region,
        token_issuer = d.token_issuer,
        token_audience = d.token_audience,
        access_token_ttl_secs = d.access_token_ttl_secs,
        refresh_token_ttl_days = d.refresh_token_ttl_days,
        login_max_failures_per_account_address = d.login_max_failures_per_account_address,
        login_max_failures_per_account = d.login_max_failures_per_account,
        login_max_failures_per_address = d.login_max_failures_per_address,
        login_window_secs = d.login_window_secs,
        trust_forwarded_for = d.trust_forwarded_for,
        max_json_body_bytes = d.max_json_body_bytes,
        acceptance_template = d.acceptance_template,
        web_dir = d.web_dir.display(),
        log = d.log,
        log_json = d.log_json,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn annotated_default_config_parses_back_to_the_defaults() {
        let parsed = Settings::from_toml(&annotated_default_config()).expect("valid toml");
        assert_eq!(parsed, Settings::default());
    }

    #[test]
    fn environment_wins_over_file_which_wins_over_defaults() {
        let dir = std::env::temp_dir().join(format!("yanshou-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("y.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nrefresh_token_ttl_days = 60\n",
        )
        .expect("write");
        let s = Settings::load_from(
            Some(&file),
            env(&[("YANSHOU_LISTEN", "127.0.0.1:9100"), ("PATH", "/bin")]),
        )
        .expect("load");
        assert_eq!(s.listen.port(), 9100, "env wins over file");
        assert_eq!(s.refresh_token_ttl_days, 60, "file wins over default");
        assert_eq!(s.access_token_ttl_secs, 900, "default kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        let err = Settings::load_from(None, env(&[("YANSHOU_LOGIN_WINDOW_SECS", "soon")]))
            .expect_err("must fail");
        assert!(
            err.to_string().contains("YANSHOU_LOGIN_WINDOW_SECS"),
            "{err}"
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let err = Settings::load_from(None, env(&[("YANSHOU_TLS_CERT_FILE", "/etc/y/server.crt")]))
            .expect_err("a certificate without its key");
        assert!(
            err.to_string().contains("tls_cert_file/tls_key_file"),
            "{err}"
        );
        let s = Settings::load_from(
            None,
            env(&[
                ("YANSHOU_TLS_CERT_FILE", "/etc/y/server.crt"),
                ("YANSHOU_TLS_KEY_FILE", "/etc/y/server.key"),
            ]),
        )
        .expect("both");
        assert_eq!(
            s.tls_key_file.as_deref(),
            Some(std::path::Path::new("/etc/y/server.key"))
        );
        let s = Settings::from_toml("tls_cert_file = \"a.pem\"\ntls_key_file = \"b.pem\"\n")
            .expect("toml");
        assert_eq!(
            s.tls_cert_file.as_deref(),
            Some(std::path::Path::new("a.pem"))
        );
        let s = Settings::load_from(None, env(&[("YANSHOU_TLS_CERT_FILE", "")])).expect("empty");
        assert_eq!(s.tls_cert_file, None);
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        assert!(Settings::from_toml("listne = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn unsupported_database_scheme_is_refused() {
        let err = Settings::load_from(None, env(&[("YANSHOU_DATABASE_URL", "mysql://x")]))
            .expect_err("must fail");
        assert!(err.to_string().contains("database_url"));
    }

    #[test]
    fn debug_output_redacts_database_password() {
        let s = Settings {
            database_url: "postgres://app:s3cret@db:5432/y".into(),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db"), "{shown}");
    }
}
