//! `yanshou`: the server binary. A thin command-line layer over the `yanshou_server` library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;
use yanshou_server::{
    AppState, app,
    clock::{Clock, SystemClock},
    config::{Settings, annotated_default_config},
    identity::accounts,
    init_tracing,
    model::Role,
    serve, serve_tls, shutdown_signal, store,
};

/// mimalloc returns freed memory to the system: with glibc's allocator every argon2id login
/// (19 MiB) left ~10 MiB of RSS behind, so a few hundred logins grew the server past 1 GiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "yanshou",
    version,
    about = "Yanshou (验收): field acceptance server"
)]
struct Cli {
    /// Config file (TOML). Environment variables YANSHOU_* override it.
    #[arg(long, short, global = true, env = "YANSHOU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default when no command is given is not assumed: say `serve`).
    Serve,
    /// Start a demo county on a fresh SQLite database (deleted and re-created each time):
    /// Shanggao's townships and one user per role, passwords printed at start.
    Demo {
        /// Directory for the demo database and blobs (wiped at start).
        #[arg(long, default_value = "data/demo")]
        dir: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print an annotated example configuration.
    DefaultConfig,
    /// Manage user accounts from the shell (e.g. to create the first administrator).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Acceptance templates (format: server/templates/README.md).
    Template {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Campaigns: deadlines of an action plan (format: server/campaigns/README.md).
    Campaign {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Make a county CA (once; kept in DIR) and an HTTPS certificate it signs for the names
    /// phones use to reach this server. Install ca.crt on the phones; point tls_cert_file and
    /// tls_key_file at server.crt and server.key. Run again to renew (a running server picks the
    /// new files up).
    Cert {
        /// The server's LAN IP addresses and DNS names, e.g. 192.168.1.20 yanshou.lan
        #[arg(required = true)]
        names: Vec<String>,
        /// Directory of ca.crt, ca.key, server.crt and server.key.
        #[arg(long, default_value = "tls")]
        dir: PathBuf,
        /// Name of the CA, shown on the phones that install it (keep it when renewing).
        #[arg(long, default_value = "Yanshou county CA")]
        ca_name: String,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Validate a file and report every error with its location.
    Check { file: PathBuf },
    /// Validate a file and store it (a version once stored never changes).
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from YANSHOU_NEW_PASSWORD or from standard input.
    Add {
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// admin, county_office, department_inspector, township_officer, expert, operator
        #[arg(long, default_value = "admin")]
        role: String,
        /// Department code (department_inspector), e.g. forestry.
        #[arg(long)]
        department: Option<String>,
        /// Township id (township_officer).
        #[arg(long)]
        township: Option<Uuid>,
        /// Specialty code (expert).
        #[arg(long)]
        specialty: Option<String>,
    },
    /// List users.
    List,
    /// Disable a user; their tokens stop working at once.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::DefaultConfig = cli.command {
        print!("{}", annotated_default_config());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("yanshou: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    for warning in Settings::ignored_env_vars(std::env::vars()) {
        tracing::warn!("{}", warning.escape_debug());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("yanshou: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yanshou: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::DefaultConfig => Ok(()),
        Command::Serve => {
            let listener = bind(&settings).await?;
            let state = AppState::from_settings(settings)
                .await
                .context("cannot open the store")?;
            serve_command(listener, state).await
        }
        Command::Demo { dir } => demo_command(settings, dir).await,
        Command::Migrate => {
            let store = store::connect(&settings).await?;
            store.migrate().await?;
            println!(
                "migrations applied to {} ({})",
                settings.database_url_redacted(),
                store.backend()
            );
            Ok(())
        }
        Command::User { command } => user_command(command, settings).await,
        Command::Template { command } => data_command(command, settings, true).await,
        Command::Campaign { command } => data_command(command, settings, false).await,
        Command::Cert {
            names,
            dir,
            ca_name,
        } => cert_command(&names, &dir, &ca_name),
    }
}

/// `cert`: a county CA and a server certificate for the LAN (see README, HTTPS).
fn cert_command(names: &[String], dir: &std::path::Path, ca_name: &str) -> anyhow::Result<()> {
    let made = yanshou_server::tls::make_county_certs(dir, ca_name, names)?;
    if made.new_ca {
        println!(
            "made a new county CA \"{ca_name}\": {} (install it on the phones) and {} (keep it \
             secret; it signs renewals)",
            made.ca_cert.display(),
            made.ca_key.display()
        );
    } else {
        println!("signed with the existing CA {}", made.ca_cert.display());
    }
    println!(
        "made {} and {} for {} (valid {} days)",
        made.server_cert.display(),
        made.server_key.display(),
        names.join(", "),
        yanshou_server::tls::SERVER_CERT_DAYS
    );
    println!(
        "In yanshou.toml:\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\nthen on each \
         phone install and trust {}, and open https://{}:<port>/",
        made.server_cert.display(),
        made.server_key.display(),
        made.ca_cert.display(),
        names[0]
    );
    Ok(())
}

/// `template` / `campaign` `check` and `import`.
async fn data_command(
    command: DataCommand,
    settings: Settings,
    template: bool,
) -> anyhow::Result<()> {
    use yanshou_server::rules::{campaign::Campaign, template::Template};
    let (file, import) = match &command {
        DataCommand::Check { file } => (file, false),
        DataCommand::Import { file } => (file, true),
    };
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (id, title) = if template {
        match Template::parse(&source) {
            Ok(t) => (t.reference(), t.title.clone()),
            Err(errors) => {
                eprintln!("{}:\n{errors}", file.display());
                anyhow::bail!("the template has errors; nothing was imported");
            }
        }
    } else {
        match Campaign::parse(&source) {
            Ok(c) => (c.id.clone(), c.title.clone()),
            Err(errors) => {
                eprintln!("{}:\n{errors}", file.display());
                anyhow::bail!("the campaign has errors; nothing was imported");
            }
        }
    };
    if !import {
        println!("{} is valid: {id} ({title})", file.display());
        return Ok(());
    }
    let store = store::connect(&settings).await?;
    store.migrate().await?;
    let stored = if template {
        store
            .ensure_template(&id, &source, SystemClock.now_ms())
            .await?
    } else {
        store
            .ensure_campaign(&id, &title, &source, SystemClock.now_ms())
            .await?
            .1
    };
    if stored == source {
        println!("imported {id} ({title})");
        Ok(())
    } else {
        anyhow::bail!(
            "{id} is already stored with different content; a changed file needs a new \
             id or version"
        )
    }
}

async fn bind(settings: &Settings) -> anyhow::Result<tokio::net::TcpListener> {
    tracing::info!(?settings, "starting");
    tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))
}

async fn demo_command(mut settings: Settings, dir: PathBuf) -> anyhow::Result<()> {
    // A fresh checkout has no built phone app: build it first, so the printed address opens it.
    yanshou_server::web::build_if_missing(&settings.web_dir).await;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot reset the demo directory {}", dir.display()))?;
    }
    settings.database_url = format!("sqlite://{}/yanshou.db", dir.display());
    settings.blob_dir = dir.join("blobs");
    settings.migrate_on_start = true;
    let listener = bind(&settings).await?;
    let state = AppState::from_settings(settings)
        .await
        .context("cannot open the demo store")?;
    let (users, password) = yanshou_server::demo::seed(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot seed the demo county: {e}"))?;
    let rounds = yanshou_server::demo::open_rounds(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the demo acceptance rounds: {e}"))?;
    yanshou_server::demo::prepare_letter(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot prepare the demo opinion letter: {e}"))?;
    println!(
        "Demo county (上高县) — every account's password: {password} ({rounds} acceptance rounds open)"
    );
    for u in &users {
        println!(
            "  {:<48} {:<22} {}",
            u.username,
            u.role.as_str(),
            u.display_name
        );
    }
    println!(
        "On the phone app, inspectors log in as insp.<department> (e.g. insp.forestry), the \
         township as sixi, the county office as office; experts (expert.<specialty>) find the \
         opinion letter of {} waiting for their signature.",
        yanshou_server::demo::LETTER_MINE
    );
    serve_command(listener, state).await
}

async fn serve_command(listener: tokio::net::TcpListener, state: AppState) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let tls = match (&state.settings.tls_cert_file, &state.settings.tls_key_file) {
        (Some(cert), Some(key)) => Some(
            yanshou_server::tls::config_from_files(cert, key)
                .context("cannot serve HTTPS with tls_cert_file and tls_key_file")?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    yanshou_server::web::warn_if_missing(&state.settings.web_dir);
    // Install the signal handlers before announcing readiness.
    let shutdown = shutdown_signal();
    if yanshou_server::web::is_built(&state.settings.web_dir) {
        println!("The phone app is at {scheme}://{addr}/ (the API under /api/v1).");
    } else {
        println!(
            "The phone app is not built: {scheme}://{addr}/ says how to build it (the API is \
             under /api/v1)."
        );
    }
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("yanshou listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "ready");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async {
        let _ = rx.await;
    };
    let server = match tls {
        Some(tls) => tokio::spawn(serve_tls(listener, app(state), tls, stop)),
        None => tokio::spawn(serve(listener, app(state), stop)),
    };
    shutdown.await;
    let _ = tx.send(());
    match tokio::time::timeout(yanshou_server::SHUTDOWN_GRACE, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("in-flight requests did not finish in time; exiting"),
    }
    Ok(())
}

async fn user_command(command: UserCommand, settings: Settings) -> anyhow::Result<()> {
    let store = store::connect(&settings).await?;
    store.migrate().await?;
    match command {
        UserCommand::Add {
            username,
            display_name,
            role,
            department,
            township,
            specialty,
        } => {
            let role = Role::parse(&role).with_context(|| format!("unknown role {role:?}"))?;
            let password = match std::env::var("YANSHOU_NEW_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprint!("password for {username}: ");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let user = accounts::create_user(
                store.as_ref(),
                accounts::NewUserInput {
                    display_name: display_name.unwrap_or_else(|| username.clone()),
                    username,
                    password,
                    role,
                    department,
                    township_id: township,
                    specialty,
                },
                SystemClock.now_ms(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {} ({}) id {}", user.username, user.role, user.id);
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let scope = u
                    .department
                    .clone()
                    .or(u.specialty.clone())
                    .or(u.township_id.map(|t| t.to_string()))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.username,
                    u.role,
                    scope,
                    if u.disabled { "disabled" } else { "active" },
                    u.display_name
                );
            }
        }
        UserCommand::Disable { username } => {
            let user = store.get_user_by_username(&username).await?;
            store.set_user_disabled(user.id, true).await?;
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            let user = store.get_user_by_username(&username).await?;
            store.set_user_disabled(user.id, false).await?;
            println!("enabled {username}");
        }
    }
    Ok(())
}
