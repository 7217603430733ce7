//! Configuration: every variable of the contract, each also a flag, and the
//! rules for finding the vault's master key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use url::Url;

use crate::outbound::AllowList;
use crate::store::Engine;
use crate::vault::KeyRing;

/// Where the data lives and how it is sealed; shared by every command.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Where the embedded default keeps its files.
    #[arg(long, env = "PLUGBOARD_DATA_DIR", default_value = "./plugboard-data")]
    pub data_dir: PathBuf,

    /// `sqlite:…` or `postgres://…` (default: a SQLite file in the data directory).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The vault key: base64 of 32 bytes, or a key ring `id1:base64,id2:base64` whose first key encrypts.
    #[arg(long, env = "PLUGBOARD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// A file holding the vault key, in the same form.
    #[arg(long, env = "PLUGBOARD_MASTER_KEY_FILE", conflicts_with = "master_key")]
    pub master_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "[set]"))
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field("master_key_file", &self.master_key_file)
            .finish()
    }
}

/// The server's own settings, on top of [`StoreArgs`].
#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// The address to bind.
    #[arg(long, env = "PLUGBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The base URL browsers and providers reach the server at (default: http:// + the listen address).
    #[arg(long, env = "PLUGBOARD_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Authorizes /v1/admin/*; unset, those routes are off.
    #[arg(long, env = "PLUGBOARD_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// Comma-separated hosts, IPs or CIDRs that outbound calls may reach although internal.
    #[arg(long, env = "PLUGBOARD_ALLOW_HOSTS", default_value = "")]
    pub allow_hosts: String,

    /// Call no host but those in PLUGBOARD_ALLOW_HOSTS, public ones included
    /// (names not listed are refused before DNS): for closed networks and fuzzing.
    #[arg(long, env = "PLUGBOARD_OUTBOUND_ONLY_ALLOWED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub outbound_only_allowed: bool,

    /// Trust X-Forwarded-* headers from a reverse proxy.
    #[arg(long, env = "PLUGBOARD_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trust_proxy: bool,

    /// Threads that serve requests (default: the cores this process may use). With one,
    /// the whole server runs on a single thread.
    #[arg(long, env = "PLUGBOARD_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The limits that keep slow clients and floods from wearing the server down
/// (SECURITY 37 and 38). Each is a variable and a flag.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive connection is kept.
    #[arg(long, env = "PLUGBOARD_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,

    /// Seconds a client has to send a request's body, once its headers arrived.
    #[arg(long, env = "PLUGBOARD_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,

    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "PLUGBOARD_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Failed authentications allowed per minute from one client address, and against one key.
    #[arg(long, env = "PLUGBOARD_AUTH_FAILURES_PER_MINUTE", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_minute: u32,

    /// Connect sessions a project may create per minute.
    #[arg(long, env = "PLUGBOARD_SESSIONS_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions_per_minute: u32,

    /// Connect attempts a project's end users may start per minute.
    #[arg(long, env = "PLUGBOARD_ATTEMPTS_PER_MINUTE", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts_per_minute: u32,
}

/// The limits, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub max_connections: usize,
    pub auth_failures_per_minute: u32,
    pub sessions_per_minute: u32,
    pub attempts_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            max_connections: 10_000,
            auth_failures_per_minute: 30,
            sessions_per_minute: 600,
            attempts_per_minute: 300,
        }
    }
}

impl LimitArgs {
    pub fn resolve(&self) -> Limits {
        Limits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            auth_failures_per_minute: self.auth_failures_per_minute,
            sessions_per_minute: self.sessions_per_minute,
            attempts_per_minute: self.attempts_per_minute,
        }
    }
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("store", &self.store)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_hosts", &self.allow_hosts)
            .field("trust_proxy", &self.trust_proxy)
            .field("worker_threads", &self.worker_threads)
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("could not use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The settings the HTTP layer needs, resolved.
#[derive(Clone)]
pub struct Settings {
    pub public_url: Url,
    pub operator_token: Option<String>,
    pub allow_hosts: AllowList,
    pub trust_proxy: bool,
    pub limits: Limits,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("public_url", &self.public_url.as_str())
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_hosts", &self.allow_hosts)
            .field("trust_proxy", &self.trust_proxy)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let public_url = match &args.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{}/", args.listen)).map_err(|e| {
                ConfigError::Invalid(format!("PLUGBOARD_LISTEN gives no usable URL: {e}"))
            })?,
        };
        if !matches!(public_url.scheme(), "http" | "https") || public_url.host().is_none() {
            return Err(ConfigError::Invalid(
                "PLUGBOARD_PUBLIC_URL must be an http(s) URL".into(),
            ));
        }
        let operator_token = args.operator_token.clone().filter(|t| !t.is_empty());
        if operator_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "PLUGBOARD_OPERATOR_TOKEN must be at least 16 characters".into(),
            ));
        }
        let mut allow_hosts = AllowList::parse(&args.allow_hosts)
            .map_err(|e| ConfigError::Invalid(format!("PLUGBOARD_ALLOW_HOSTS: {e}")))?;
        if args.outbound_only_allowed {
            allow_hosts = allow_hosts.only_listed();
        }
        Ok(Settings {
            public_url,
            operator_token,
            allow_hosts,
            trust_proxy: args.trust_proxy,
            limits: args.limits.resolve(),
        })
    }

    /// The public URL of a path on this server, e.g. `/oauth/callback/int_…`.
    pub fn public_url_for(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

impl StoreArgs {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => crate::store::Store::default_sqlite_url(&self.data_dir),
        }
    }

    pub fn engine(&self) -> Result<Engine, ConfigError> {
        Engine::of_url(&self.database_url()).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Creates the data directory when the embedded default uses it.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        if self.engine()? == Engine::Sqlite {
            create_private_dir(&self.data_dir)?;
        }
        Ok(())
    }

    /// The vault's key ring, by the contract's rules: the key given in the
    /// environment or a file; else, on the embedded SQLite default only, the
    /// key in the data directory, generated there on first start. PostgreSQL
    /// never gets a key invented by one replica.
    ///
    /// `in_use` names the key ids the database's sealed values use: a key is
    /// never generated over a database that already holds sealed values.
    pub fn key_ring(&self, in_use: &BTreeSet<String>) -> Result<KeyRing, ConfigError> {
        match self.given_key_ring()? {
            Some(ring) => Ok(ring),
            None => self.embedded_key_ring(in_use),
        }
    }

    /// The key ring given in the environment or a file; an error where one
    /// is required (PostgreSQL) or given wrongly; `None` on the embedded
    /// default without one. Needs no database.
    pub fn given_key_ring(&self) -> Result<Option<KeyRing>, ConfigError> {
        let invalid = |source: &str, e: crate::vault::VaultError| {
            ConfigError::Invalid(format!("{source}: {e}"))
        };
        // Set but empty is a mistake (a variable left blank), not "no key":
        // falling back to another key would seal new values under it.
        let empty_variable = std::env::var_os("PLUGBOARD_MASTER_KEY")
            .is_some_and(|v| v.to_string_lossy().trim().is_empty());
        if empty_variable
            || self
                .master_key
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ConfigError::Invalid(
                "PLUGBOARD_MASTER_KEY is set but empty: give the key (base64 of 32 bytes), or unset the variable"
                    .into(),
            ));
        }
        if let Some(spec) = self.master_key.as_deref() {
            return KeyRing::parse(spec)
                .map(Some)
                .map_err(|e| invalid("PLUGBOARD_MASTER_KEY", e));
        }
        if let Some(path) = &self.master_key_file {
            let spec = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            return KeyRing::parse(&spec)
                .map(Some)
                .map_err(|e| invalid("PLUGBOARD_MASTER_KEY_FILE", e));
        }
        if self.engine()? == Engine::Postgres {
            return Err(ConfigError::Invalid(
                "PostgreSQL needs a vault key: set PLUGBOARD_MASTER_KEY or PLUGBOARD_MASTER_KEY_FILE \
                 (base64 of 32 random bytes, e.g. `openssl rand -base64 32`), the same on every replica"
                    .into(),
            ));
        }
        Ok(None)
    }

    /// The embedded default's key, in the data directory: read, or generated
    /// there when the database holds nothing sealed yet.
    fn embedded_key_ring(&self, in_use: &BTreeSet<String>) -> Result<KeyRing, ConfigError> {
        let invalid = |source: &str, e: crate::vault::VaultError| {
            ConfigError::Invalid(format!("{source}: {e}"))
        };
        let path = self.data_dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(spec) => KeyRing::parse(&spec).map_err(|e| invalid(&path.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !in_use.is_empty() => {
                let ids: Vec<String> = in_use.iter().map(|id| format!("`{id}`")).collect();
                Err(ConfigError::Invalid(format!(
                    "no vault key was given and {} does not exist, but the database holds values sealed \
                     with vault key id {}: restore that file from a backup, or pass the key in \
                     PLUGBOARD_MASTER_KEY. A new key would not open them, so none is generated",
                    path.display(),
                    ids.join(", ")
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(&self.data_dir)?;
                let spec = KeyRing::generate_spec();
                write_private_file(&path, &spec)?;
                let banner = "=".repeat(78);
                tracing::warn!(
                    "\n{banner}\nNo PLUGBOARD_MASTER_KEY was given: a new vault key was generated into\n  {}\n\
                     Everything Plugboard stores encrypted depends on this file. Back it up, keep it\n\
                     secret, and for production pass the key in PLUGBOARD_MASTER_KEY instead.\n{banner}",
                    path.display()
                );
                KeyRing::parse(&spec).map_err(|e| invalid("generated key", e))
            }
            Err(source) => Err(ConfigError::Io { path, source }),
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn write_private_file(path: &Path, contents: &str) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    Ok(())
}
