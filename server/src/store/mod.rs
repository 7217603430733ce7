//! The store: every table behind one type that runs on SQLite or PostgreSQL.
//!
//! Queries are written once, in SQL both engines accept (`$1` placeholders,
//! times as seconds since the epoch, JSON as text), and run with sqlx's
//! runtime `query`/`query_as` on whichever pool is open. The `on_pool!` macro
//! expands one body for each engine, so each is type-checked against its own
//! driver. The compile-time `query!` macros are not used: they can check only
//! one engine.

/// Seals `value` for (`table`, row `id`, `field`) and inserts it, inside a
/// transaction. `table` and `owner` (the row-id column) are the store's own
/// constants, never input.
macro_rules! insert_sealed {
    ($tx:expr, $vault:expr, $table:expr, $owner:expr, $id:expr, $field:expr, $value:expr) => {{
        let sealed = $vault.seal(
            $crate::vault::Binding {
                table: $table,
                row: $id,
                field: $field,
            },
            $value.as_bytes(),
        );
        sqlx::query(&format!(
            "INSERT INTO {} ({}, field, ciphertext) VALUES ($1, $2, $3)",
            $table, $owner
        ))
        .bind($id)
        .bind($field)
        .bind(sealed)
        .execute(&mut *$tx)
        .await?;
    }};
}

mod attempts;
mod connections;
mod events;
mod functions;
mod integrations;
mod listen;
mod projects;
mod sessions;
mod tokens;
mod vault_rows;

pub use attempts::{AttemptOutcome, AttemptRow, AttemptStatus, NewAttempt};
pub use connections::{
    AccountDecision, AccountFacts, ConnectionCursor, ConnectionRow, NamedConnection, NewConnection,
    SaveOutcome, SavedConnection, SavedCredentials,
};
pub use events::{EventKind, EventRow, NewEvent};
pub use functions::FunctionRow;
pub use integrations::{
    ClientRecord, DeleteIntegration, IntegrationRow, IntegrationUpdate, ProjectConnection,
    RetiredClient, UpdateOutcome,
};
pub use projects::{DeleteKey, ProjectRow, SecretKeyRow};
pub use sessions::{NewSession, Purged, SessionLookup, SessionRow};
pub use tokens::{RefreshFailure, Refreshed, ReplacedTokens, TokenState};
pub use vault_rows::Reencrypted;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::cache::{Cache, Changes, Topic};
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported DATABASE_URL `{0}`: use sqlite:… or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(e)
            if e.as_database_error().is_some_and(|d| d.is_unique_violation()))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of_url(url: &str) -> Result<Engine, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            // Echo only the scheme: the rest may carry a password.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(format!("{scheme}:…")))
        }
    }
}

#[derive(Clone)]
pub(crate) enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever engine it is.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::DbPool::Sqlite($pool) => $body,
            $crate::store::DbPool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Tells other replicas, inside the transaction `$tx`, that `$topic` changed
/// (`listen`); the writer tells its own process with `Store::changed` after
/// the commit.
macro_rules! announce {
    ($tx:expr, $topic:expr) => {
        $crate::store::listen::Announce::announce(&mut $tx, &$topic).await?
    };
}
pub(crate) use announce;

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: DbPool,
    changes: Arc<Changes>,
    /// Secret keys that authenticated, by their lookup prefix.
    keys: Arc<Cache<Arc<projects::KnownKey>>>,
    /// PostgreSQL: the task that hears other replicas' writes.
    _listening: Option<Arc<listen::Listening>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine())
            .finish()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens a pool for `url` (`sqlite:…` or `postgres://…`), creating a SQLite file if needed.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let pool = match Engine::of_url(url)? {
            Engine::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?;
                create_private_file(options.get_filename())?;
                let options = options
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10));
                DbPool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(8)
                        .connect_with(options)
                        .await?,
                )
            }
            Engine::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                DbPool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_with(options)
                        .await?,
                )
            }
        };
        // SQLite has one process: every write is this one's. PostgreSQL
        // may have replicas: caches wait until their writes can be heard.
        let changes = Changes::new(matches!(pool, DbPool::Sqlite(_)));
        let listening = match &pool {
            DbPool::Postgres(pg) => Some(Arc::new(listen::start(pg.clone(), changes.clone()))),
            DbPool::Sqlite(_) => None,
        };
        Ok(Store {
            pool,
            keys: Cache::new(&changes),
            changes,
            _listening: listening,
        })
    }

    /// Where this store announces its writes, for caches of what it reads.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    /// Tells this process's caches that `topic` changed (after a commit).
    pub(crate) fn changed(&self, topic: &Topic) {
        self.changes.changed(topic);
    }

    /// The default SQLite URL for a data directory.
    pub fn default_sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("plugboard.db").display()
        )
    }

    pub fn engine(&self) -> Engine {
        match self.pool {
            DbPool::Sqlite(_) => Engine::Sqlite,
            DbPool::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies every embedded migration not yet applied.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            DbPool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            DbPool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Creates a new SQLite database file readable by this user only; SQLite
/// gives its `-wal` and `-shm` files the same mode. An existing file is left as it is.
fn create_private_file(path: &Path) -> StoreResult<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

/// Decodes a JSON text column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}
