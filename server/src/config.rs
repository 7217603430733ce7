//! Configuration: every variable of the contract, each also a flag, and the
//! rules for finding the vault's master key.

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

    /// Trust X-Forwarded-* headers from a reverse proxy.
    #[arg(long, env = "PLUGBOARD_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trust_proxy: bool,
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
        let allow_hosts = AllowList::parse(&args.allow_hosts)
            .map_err(|e| ConfigError::Invalid(format!("PLUGBOARD_ALLOW_HOSTS: {e}")))?;
        Ok(Settings {
            public_url,
            operator_token,
            allow_hosts,
            trust_proxy: args.trust_proxy,
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
    pub fn key_ring(&self) -> Result<KeyRing, ConfigError> {
        let invalid = |source: &str, e: crate::vault::VaultError| {
            ConfigError::Invalid(format!("{source}: {e}"))
        };
        if let Some(spec) = self.master_key.as_deref().filter(|s| !s.trim().is_empty()) {
            return KeyRing::parse(spec).map_err(|e| invalid("PLUGBOARD_MASTER_KEY", e));
        }
        if let Some(path) = &self.master_key_file {
            let spec = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            return KeyRing::parse(&spec).map_err(|e| invalid("PLUGBOARD_MASTER_KEY_FILE", e));
        }
        if self.engine()? == Engine::Postgres {
            return Err(ConfigError::Invalid(
                "PostgreSQL needs a vault key: set PLUGBOARD_MASTER_KEY or PLUGBOARD_MASTER_KEY_FILE \
                 (base64 of 32 random bytes, e.g. `openssl rand -base64 32`), the same on every replica"
                    .into(),
            ));
        }
        let path = self.data_dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(spec) => KeyRing::parse(&spec).map_err(|e| invalid(&path.display().to_string(), e)),
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
