//! The `plugboard` command line: `serve`, `migrate`, `projects create`, `vault reencrypt`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{App, AppState};
use crate::clock::{Clock, SystemClock};
use crate::config::{ServeArgs, Settings, StoreArgs};
use crate::http;
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

/// A failure that ends a command, with the message the operator sees and
/// whether it is bad configuration (exit 78, `EX_CONFIG`) or anything else (exit 1).
struct Fatal(String, bool);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string(), false)
    }
}

impl Fatal {
    fn config(e: impl std::fmt::Display) -> Fatal {
        Fatal(e.to_string(), true)
    }
}

/// The exit code for bad configuration (sysexits.h `EX_CONFIG`).
const EX_CONFIG: u8 = 78;

/// Resolves the key ring for the database behind `store` and checks that it
/// opens what is sealed there; a key that does not is bad configuration.
async fn key_ring_for(args: &StoreArgs, store: &Store) -> Result<crate::vault::KeyRing, Fatal> {
    let ring = match args.given_key_ring().map_err(Fatal::config)? {
        Some(ring) => ring,
        None => args
            .key_ring(&store.sealed_key_ids().await?)
            .map_err(Fatal::config)?,
    };
    let now = SystemClock.now().unix_timestamp();
    match store.check_vault_keys(&ring, now).await {
        Ok(()) => Ok(ring),
        Err(crate::store::StoreError::Vault(e)) => Err(Fatal::config(e)),
        Err(e) => Err(e.into()),
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
    // One-shot commands need no more than one thread.
    let threads = match &cli.command {
        Command::Serve(args) => args.worker_threads.map(usize::from),
        _ => Some(1),
    };
    let runtime = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message, config)) => {
            tracing::error!("{message}");
            eprintln!("plugboard: {message}");
            if config {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The async runtime with `threads` threads; by default as many as the cores
/// this process may use (its CPU affinity and cgroup quota). One thread is the
/// current-thread scheduler, everything on the calling thread: on a single
/// core tokio's work-stealing scheduler only adds wake-ups between threads,
/// and served proxy calls 8–10% slower in the bench's interleaved runs.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

async fn open_store(args: &StoreArgs) -> Result<Store, Fatal> {
    args.prepare_data_dir().map_err(Fatal::config)?;
    let store = Store::connect(&args.database_url())
        .await
        .map_err(|e| Fatal(format!("cannot open the database: {e}"), false))?;
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
            let name = crate::projects::check_name(&name)
                .map_err(|e| Fatal::config(format!("--name {}", e.message)))?;
            // Resolving the key ring here too means the embedded default's
            // key exists from the first command, not only from the first `serve`.
            let args = store;
            args.given_key_ring().map_err(Fatal::config)?;
            let store = open_store(&args).await?;
            key_ring_for(&args, &store).await?;
            let now = SystemClock.now().unix_timestamp();
            let (project, _, minted) = store.create_project(&name, now).await?;
            println!("project_id={}", project.id);
            println!("secret_key={}", minted.token);
            Ok(())
        }
        Command::Vault {
            command: VaultCommand::Reencrypt(args),
        } => {
            args.given_key_ring().map_err(Fatal::config)?;
            let store = open_store(&args).await?;
            let ring = key_ring_for(&args, &store).await?;
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
    let settings = Settings::from_args(&args).map_err(Fatal::config)?;
    args.store.given_key_ring().map_err(Fatal::config)?;
    let store = open_store(&args.store).await?;
    let vault = key_ring_for(&args.store, &store).await?;
    let outbound = Outbound::new(settings.allow_hosts.clone(), Limits::default())?;
    let state = AppState(Arc::new(App::new(
        store.clone(),
        vault,
        Arc::new(SystemClock),
        settings.clone(),
        outbound,
    )));
    // Expired connect sessions and spent attempts are purged in the background.
    let jobs = crate::jobs::spawn(state.0.clone());
    let open_files = crate::http::serve::raise_open_file_limit();
    let serve_limits = crate::http::serve::ServeLimits {
        header_timeout: settings.limits.header_timeout,
        max_connections: crate::http::serve::effective_max_connections(
            settings.limits.max_connections,
            open_files,
        ),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Fatal(format!("cannot listen on {}: {e}", args.listen), false))?;
    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        public_url = %settings.public_url,
        engine = ?store.engine(),
        admin_api = settings.operator_token.is_some(),
        "plugboard is serving"
    );
    crate::http::serve::serve(
        listener,
        http::application(state),
        serve_limits,
        shutdown_signal(),
    )
    .await;
    jobs.abort();
    store.close().await;
    Ok(())
}

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
