//! The effective configuration of a `berth` process: the shared
//! [`ServerConfig`] (file, `BERTH_*` environment, flags; see `berth_config`)
//! with its defaults applied, in the shapes the registry uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use berth_config::{LogFormat, RepositorySettings, S3Config, ServerConfig, StorageBackend};

use crate::http::server::Limits;

/// Access-control settings, present when a policy file is configured.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub policy_file: PathBuf,
    pub htpasswd_file: Option<PathBuf>,
    pub token_key_file: PathBuf,
    pub token_issuer: String,
    pub token_service: String,
    pub token_expiry: Duration,
    pub public_url: Option<String>,
}

/// Garbage collection settings.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// None: gc does not run inside the server.
    pub interval: Option<Duration>,
    pub grace: Duration,
    pub keep_untagged: bool,
}

/// Where the metadata lives.
#[derive(Clone)]
pub enum Metadata {
    /// SQLite, this file (the embedded default).
    Sqlite(PathBuf),
    /// PostgreSQL: the URL (never logged), or the file that holds it.
    Postgres {
        url: Secret,
        pool_size: u32,
        timeout: Duration,
    },
    /// An in-memory SQLite database, lost on exit.
    Memory,
}

/// A URL with a password, or the file holding it; Debug hides it.
#[derive(Clone)]
pub enum Secret {
    Value(String),
    File(PathBuf),
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metadata::Sqlite(path) => write!(f, "SQLite at {}", path.display()),
            Metadata::Postgres { pool_size, .. } => write!(f, "PostgreSQL (pool of {pool_size})"),
            Metadata::Memory => f.write_str("in memory"),
        }
    }
}

/// Where the blob bytes live.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// A directory on the local disk.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Config),
    Memory,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub metadata: Metadata,
    pub blobs: Blobs,
    pub log_format: LogFormat,
    /// Upload sessions untouched for this long are removed with their data.
    pub upload_expiry: Duration,
    /// None: no access control (anyone may do anything), as on a laptop.
    pub auth: Option<AuthConfig>,
    pub gc: GcConfig,
    pub limits: Limits,
    /// Between SIGTERM and closing the listener, /readyz says 503 while
    /// requests are still served.
    pub shutdown_delay: Duration,
    /// Per-repository settings of the config file (the policy file, if
    /// any, adds its own).
    pub repositories: Vec<RepositorySettings>,
    /// Upstream registries mirrored (pull-through cache).
    pub mirrors: Vec<berth_config::MirrorConfig>,
}

impl Config {
    /// `config` with its defaults applied.
    pub fn new(config: ServerConfig) -> Config {
        let c = config.with_defaults();
        let seconds = |s: Option<u64>| Duration::from_secs(s.unwrap_or_default());
        let data_dir = c.data_dir.unwrap_or_default();
        let auth = c.policy_file.map(|policy_file| AuthConfig {
            policy_file,
            htpasswd_file: c.htpasswd_file,
            token_key_file: c
                .token_key_file
                .unwrap_or_else(|| data_dir.join("token-key.pem")),
            token_issuer: c.token_issuer.unwrap_or_default(),
            token_service: c.token_service.unwrap_or_default(),
            token_expiry: seconds(c.token_expiry_seconds),
            public_url: c.public_url,
        });
        let storage = c.storage.unwrap_or(StorageBackend::Filesystem);
        let postgres = c
            .database_url
            .map(Secret::Value)
            .or(c.database_url_file.map(Secret::File));
        let metadata = match (storage, postgres) {
            (StorageBackend::Memory, _) => Metadata::Memory,
            (_, Some(url)) => Metadata::Postgres {
                url,
                pool_size: c.database_pool_size.unwrap_or(16),
                timeout: seconds(c.database_timeout_seconds),
            },
            (_, None) => Metadata::Sqlite(data_dir.join("metadata.db")),
        };
        let blobs = match storage {
            StorageBackend::Filesystem => Blobs::Local(data_dir.join("storage")),
            StorageBackend::S3 => Blobs::S3(c.s3),
            StorageBackend::Memory => Blobs::Memory,
        };
        Config {
            listen: c.listen.unwrap_or_else(|| ([127, 0, 0, 1], 5000).into()),
            metrics_listen: c
                .metrics_listen
                .unwrap_or_else(|| ([127, 0, 0, 1], 5001).into()),
            data_dir,
            metadata,
            blobs,
            log_format: c.log_format.unwrap_or(LogFormat::Text),
            upload_expiry: seconds(c.upload_expiry_seconds),
            auth,
            gc: GcConfig {
                interval: c
                    .gc_interval_seconds
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs),
                grace: seconds(c.gc_grace_seconds),
                keep_untagged: c.gc_keep_untagged.unwrap_or(false),
            },
            limits: Limits {
                header_timeout: seconds(c.header_timeout_seconds),
                body_timeout: seconds(c.body_timeout_seconds),
                send_timeout: seconds(c.send_timeout_seconds),
                max_connections: c.max_connections.unwrap_or(1),
                max_connections_per_client: c.max_connections_per_client.unwrap_or(0),
                shutdown_timeout: seconds(c.shutdown_timeout_seconds),
            },
            shutdown_delay: seconds(c.shutdown_delay_seconds),
            repositories: c.repositories,
            mirrors: c.mirrors,
        }
    }
}
