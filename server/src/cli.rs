//! The `plugboard` command line: `serve`, `migrate`, `projects create`, `vault reencrypt`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::api::{self, App, AppState};
use crate::clock::SystemClock;
use crate::config::{ServeArgs, Settings, StoreArgs};
use crate::outbound::{Limits, Outbound};
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Connect your users' accounts at third-party providers, and act on them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(StoreArgs),
    /// Manage projects (tenants).
    Projects {
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Manage the credential vault.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project and print its id and first secret key.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Re-encrypt every stored secret under the first key of the ring.
    Reencrypt(StoreArgs),
}

/// A failure that ends a command, with the message the operator sees.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            tracing::error!("{message}");
            eprintln!("plugboard: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn open_store(args: &StoreArgs) -> Result<Store, Fatal> {
    args.prepare_data_dir()?;
    let store = Store::connect(&args.database_url())
        .await
        .map_err(|e| Fatal(format!("cannot open the database: {e}")))?;
    store.migrate().await?;
    Ok(store)
}

async fn dispatch(command: Command) -> Result<(), Fatal> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let store = open_store(&args).await?;
            println!("migrations applied ({:?})", store.engine());
            Ok(())
        }
        Command::Projects {
            command: ProjectsCommand::Create { name, store },
        } => {
            let name = crate::api::check_project_name(&name)
                .map_err(|e| Fatal(format!("--name {}", e.message)))?;
            // Resolving the key ring here too means the embedded default's
            // key exists from the first command, not only from the first `serve`.
            let ring = store.key_ring()?;
            let store = open_store(&store).await?;
            store.check_vault_keys(&ring).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let (project, _, minted) = store.create_project(&name, now).await?;
            println!("project_id={}", project.id);
            println!("secret_key={}", minted.token);
            Ok(())
        }
        Command::Vault {
            command: VaultCommand::Reencrypt(args),
        } => {
            let ring = args.key_ring()?;
            let store = open_store(&args).await?;
            let done = store.reencrypt_vault(&ring).await?;
            println!(
                "re-encrypted {} value(s) under key `{}`; {} already used it",
                done.moved,
                ring.active_key_id(),
                done.unchanged
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Fatal> {
    let settings = Settings::from_args(&args)?;
    let vault = args.store.key_ring()?;
    let store = open_store(&args.store).await?;
    store.check_vault_keys(&vault).await?;
    let outbound = Outbound::new(settings.allow_hosts.clone(), Limits::default())?;
    let state = AppState(Arc::new(App {
        store: store.clone(),
        vault: Arc::new(vault),
        clock: Arc::new(SystemClock),
        settings: settings.clone(),
        outbound,
    }));
    // Expired connect sessions and spent attempts are purged in the background.
    let purging = store.clone();
    let purge = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match purging.purge_expired(now, PURGE_AFTER_SECONDS).await {
                Ok(purged) => tracing::debug!(?purged, "purged expired connect sessions"),
                Err(e) => tracing::warn!(error = %e, "purging expired connect sessions failed"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Fatal(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        public_url = %settings.public_url,
        engine = ?store.engine(),
        admin_api = settings.operator_token.is_some(),
        "plugboard is serving"
    );
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    purge.abort();
    store.close().await;
    Ok(())
}

/// How long an expired connect session (and its attempts' statuses) is kept.
const PURGE_AFTER_SECONDS: i64 = 86_400;

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
