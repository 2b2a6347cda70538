//! The effective configuration of a `berth` process: the shared
//! [`ServerConfig`] (file, `BERTH_*` environment, flags; see `berth_config`)
//! with its defaults applied, in the shapes the registry uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use berth_config::{LogFormat, RepositorySettings, ServerConfig, StorageBackend};

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

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: StorageBackend,
    pub log_format: LogFormat,
    /// Upload sessions untouched for this long are removed with their data.
    pub upload_expiry: Duration,
    /// None: no access control (anyone may do anything), as on a laptop.
    pub auth: Option<AuthConfig>,
    pub gc: GcConfig,
    pub limits: Limits,
    /// Per-repository settings of the config file (the policy file, if
    /// any, adds its own).
    pub repositories: Vec<RepositorySettings>,
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
        Config {
            listen: c.listen.unwrap_or_else(|| ([127, 0, 0, 1], 5000).into()),
            metrics_listen: c
                .metrics_listen
                .unwrap_or_else(|| ([127, 0, 0, 1], 5001).into()),
            data_dir,
            storage: c.storage.unwrap_or(StorageBackend::Filesystem),
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
            repositories: c.repositories,
        }
    }
}
