//! Yanshou server library.
//!
//! The `yanshou` binary (`main.rs`) is a thin command-line layer over this crate. Tests launch the
//! server in-process with [`app`] and [`serve`] on a listener bound to port 0.
//!
//! Module map, from the bottom up: each module uses only those above it in this list
//! (`server/tests/module_layers.rs` fails on a dependency pointing up, and on a cycle between
//! the files of one folder). The crate root (this file: [`AppState`], the router) wires them.
//! - [`model`]: the shared vocabulary (roles, users, devices, mines and their stages, rounds,
//!   the acceptance record's section and field names); no I/O;
//! - [`clock`]: the one clock of services and store;
//! - [`rules`]: pure domain rules: templates and verdicts, campaigns and their deadlines,
//!   coordinates and boundaries, decimals, the disposition workflow;
//! - [`config`]: typed settings (defaults < file < `YANSHOU_*` environment);
//! - [`store`]: the `Store` traits and their SQLite and PostgreSQL implementation;
//! - [`blobs`]: content-addressed blobs in a local directory or an S3-compatible bucket;
//! - [`error`]: the one error type, its JSON shape and its codes;
//! - [`identity`]: accounts, login throttle, tokens, devices, the caller of a request;
//! - [`sync`]: the sync endpoint: rights, group-commit writer, conflicts, template checks;
//! - [`photos`]: photo evidence: resumable uploads (limits, rights, chunks, verification),
//!   ingest (type by magic bytes, caps, EXIF, thumbnails), geofence and time verdicts;
//! - [`rounds`]: acceptance rounds (one visit, one record);
//! - [`records`]: the assembled acceptance record of a visit (one document with its content
//!   hash, signatures and photos checked again), what reviews and exports show;
//! - [`letters`]: the experts' opinion letter (验收合格意见书) of a 注销 round: drafted and
//!   issued by the county office, signed by the experts through sync;
//! - [`mines`]: the mine registry, import/export, transitions, dashboard, case log;
//! - [`exports`]: documents made from the assembled record: its PDF (a Chinese government
//!   form with photo pages, `krilla`);
//! - [`api`]: the HTTP routes, their request and response views, the OpenAPI document;
//! - [`web`]: the built phone app, served at every path outside `/api/`;
//! - [`tls`]: HTTPS with certificates reloaded when their files change ([`serve_tls`]);
//! - [`demo`]: the demo county.
//!
//! Where new code goes: photo upload (offsets, sessions) beside [`photos`]; device signatures
//! are verified on arrival in `sync::signatures`; the assembled record is [`records`]; exports
//! (`exports/`: PDF, bundle, announcement, CSV) above `mines`; each with a file in `api/`.

pub mod api;
pub mod blobs;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod exports;
pub mod identity;
pub mod letters;
pub mod mines;
pub mod model;
pub mod photos;
pub mod records;
pub mod rounds;
pub mod rules;
pub mod store;
pub mod sync;
pub mod tls;
pub mod web;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, header},
    response::IntoResponse,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{config::Settings, error::AppError, identity::tokens::TokenKeys, store::Store};

/// Shared application state: cheap to clone, holds nothing another replica would need.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: Arc<TokenKeys>,
    pub settings: Arc<Settings>,
    /// The server's clock (dates of workflow transitions and deadlines).
    pub clock: Arc<dyn clock::Clock>,
    /// Codes of the inspecting departments (seeded by migration, fixed while running): each
    /// owns the acceptance-record section of the same name.
    pub inspecting_departments: Arc<Vec<String>>,
    /// The group-commit writer of sync pushes.
    pub sync_writer: sync::writer::SyncWriter,
    /// Parsed campaigns by id (a stored campaign never changes).
    pub campaigns: mines::CampaignCache,
    /// Photos and other blobs, with the parts of uploads in progress.
    pub blobs: blobs::BlobStore,
}

impl AppState {
    /// Connect the store, migrate if configured, and load (or create) the token signing key.
    pub async fn from_settings(settings: Settings) -> anyhow::Result<Self> {
        let store = store::connect(&settings).await?;
        if settings.migrate_on_start {
            store.migrate().await?;
        }
        Self::with_store(store, settings).await
    }

    /// Build the state over an already-open, migrated store, on the system clock.
    pub async fn with_store(store: Arc<dyn Store>, settings: Settings) -> anyhow::Result<Self> {
        Self::with_clock(store, settings, Arc::new(clock::SystemClock)).await
    }

    /// Build the state over an already-open, migrated store and the given clock (tests and
    /// drills walk a campaign's calendar with a [`clock::ManualClock`]).
    pub async fn with_clock(
        store: Arc<dyn Store>,
        settings: Settings,
        clock: Arc<dyn clock::Clock>,
    ) -> anyhow::Result<Self> {
        let keys = TokenKeys::load_or_create(store.as_ref(), &settings, clock.now_ms()).await?;
        let inspecting_departments: Vec<String> = store
            .list_departments()
            .await?
            .into_iter()
            .filter(|d| !d.observer)
            .map(|d| d.code)
            .collect();
        let inspecting_departments = Arc::new(inspecting_departments);
        sync::templates::warm_cache(store.as_ref()).await?;
        let blobs = blobs::BlobStore::from_settings(&settings)?;
        Ok(Self {
            blobs,
            sync_writer: sync::writer::SyncWriter::start(
                store.clone(),
                inspecting_departments.clone(),
                clock.clone(),
            ),
            inspecting_departments,
            store,
            keys: Arc::new(keys),
            settings: Arc::new(settings),
            clock,
            campaigns: mines::CampaignCache::default(),
        })
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.settings.max_json_body_bytes;
    let (routes, _openapi) = api::routes();
    routes
        .fallback(web::fallback)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                AppError::Internal("handler panicked".into()).into_response()
            },
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = ?req.uri().path(),
                    request_id = ?request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

/// Serve `app` on `listener` until `shutdown` completes, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Like [`serve`], over HTTPS: `tls` is usually [`tls::config_from_files`], whose certificate
/// follows its files as they are replaced.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` makes the client address available as `ConnectInfo<SocketAddr>` (axum provides
    // that for plain TCP listeners and for tapped ones).
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called (not when the
/// future is first polled), so a signal that arrives right after start-up is not lost to the
/// default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for shutdown signals");
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

/// Install the global tracing subscriber (binary only; tests don't call this).
pub fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// How long graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
