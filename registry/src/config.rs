//! Configuration: one YAML file, `BERTH_*` environment variables and flags,
//! in rising order of precedence (clap resolves flag over env; this module
//! lays the result over the file and the defaults).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:5001";
const DEFAULT_UPLOAD_EXPIRY_SECONDS: u64 = 24 * 60 * 60;
pub const DEFAULT_GC_GRACE_SECONDS: u64 = 60 * 60;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Blobs on the local filesystem under the data directory.
    Filesystem,
    /// Blobs and metadata in memory, lost on exit (tests, demos).
    Memory,
}

/// The config file as written: every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    /// Where `/metrics` is served (Prometheus text format).
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub storage: Option<StorageBackend>,
    pub log_format: Option<LogFormat>,
    pub upload_expiry_seconds: Option<u64>,
    /// Access control: the policy file turns it on (see the README).
    pub policy_file: Option<PathBuf>,
    /// htpasswd file with bcrypt entries for users.
    pub htpasswd_file: Option<PathBuf>,
    /// Token signing key (P-256 PEM); generated there if missing
    /// [default: <data_dir>/token-key.pem].
    pub token_key_file: Option<PathBuf>,
    pub token_issuer: Option<String>,
    /// The `service` (token audience) clients name [default: berth].
    pub token_service: Option<String>,
    pub token_expiry_seconds: Option<u64>,
    /// Base URL clients reach the registry at, for the token realm
    /// [default: from the request's Host header].
    pub public_url: Option<String>,
    /// Run gc inside the server this often (0 or absent: never; the
    /// operator runs `berth gc` from a CronJob instead).
    pub gc_interval_seconds: Option<u64>,
    /// gc keeps anything younger than this [default: 3600].
    pub gc_grace_seconds: Option<u64>,
    /// gc keeps manifests no tag reaches [default: false].
    pub gc_keep_untagged: Option<bool>,
    /// A request head must arrive within this long of the connection
    /// waiting for it; idle keep-alive connections close after it too
    /// [default: 30].
    pub header_timeout_seconds: Option<u64>,
    /// A request body sending nothing for this long ends the request
    /// [default: 60].
    pub body_timeout_seconds: Option<u64>,
    /// A client reading nothing of a response for this long is disconnected
    /// [default: 60].
    pub send_timeout_seconds: Option<u64>,
    /// Connections served at once [default: 4096].
    pub max_connections: Option<usize>,
    /// Connections from one address at once; 0 for no limit (behind a proxy
    /// every client has its address) [default: 256].
    pub max_connections_per_client: Option<usize>,
    /// On SIGTERM, how long open requests may take to finish [default: 30].
    pub shutdown_timeout_seconds: Option<u64>,
}

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
    pub limits: crate::http_server::Limits,
}

/// Garbage collection settings.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// None: gc does not run inside the server.
    pub interval: Option<Duration>,
    pub grace: Duration,
    pub keep_untagged: bool,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ConfigError::Invalid {
                path: path.to_path_buf(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Lays `over` (flags and environment) over this file and the defaults.
    pub fn resolve(self, over: FileConfig) -> Config {
        let data_dir: PathBuf = over
            .data_dir
            .clone()
            .or(self.data_dir.clone())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let auth = over
            .policy_file
            .clone()
            .or(self.policy_file.clone())
            .map(|policy_file| AuthConfig {
                policy_file,
                htpasswd_file: over.htpasswd_file.clone().or(self.htpasswd_file.clone()),
                token_key_file: over
                    .token_key_file
                    .clone()
                    .or(self.token_key_file.clone())
                    .unwrap_or_else(|| data_dir.join("token-key.pem")),
                token_issuer: over
                    .token_issuer
                    .clone()
                    .or(self.token_issuer.clone())
                    .unwrap_or_else(|| "berth".into()),
                token_service: over
                    .token_service
                    .clone()
                    .or(self.token_service.clone())
                    .unwrap_or_else(|| "berth".into()),
                token_expiry: Duration::from_secs(
                    over.token_expiry_seconds
                        .or(self.token_expiry_seconds)
                        .unwrap_or(300),
                ),
                public_url: over.public_url.clone().or(self.public_url.clone()),
            });
        let gc = GcConfig {
            interval: over
                .gc_interval_seconds
                .or(self.gc_interval_seconds)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            grace: Duration::from_secs(
                over.gc_grace_seconds
                    .or(self.gc_grace_seconds)
                    .unwrap_or(DEFAULT_GC_GRACE_SECONDS),
            ),
            keep_untagged: over
                .gc_keep_untagged
                .or(self.gc_keep_untagged)
                .unwrap_or(false),
        };
        let seconds = |over: Option<u64>, file: Option<u64>, default: u64| {
            Duration::from_secs(over.or(file).unwrap_or(default))
        };
        let limits = crate::http_server::Limits {
            header_timeout: seconds(over.header_timeout_seconds, self.header_timeout_seconds, 30),
            body_timeout: seconds(over.body_timeout_seconds, self.body_timeout_seconds, 60),
            send_timeout: seconds(over.send_timeout_seconds, self.send_timeout_seconds, 60),
            max_connections: over
                .max_connections
                .or(self.max_connections)
                .unwrap_or(4096),
            max_connections_per_client: over
                .max_connections_per_client
                .or(self.max_connections_per_client)
                .unwrap_or(256),
            shutdown_timeout: seconds(
                over.shutdown_timeout_seconds,
                self.shutdown_timeout_seconds,
                30,
            ),
        };
        Config {
            auth,
            gc,
            limits,
            listen: over
                .listen
                .or(self.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            metrics_listen: over
                .metrics_listen
                .or(self.metrics_listen)
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("valid default")),
            data_dir,
            storage: over
                .storage
                .or(self.storage)
                .unwrap_or(StorageBackend::Filesystem),
            log_format: over
                .log_format
                .or(self.log_format)
                .unwrap_or(LogFormat::Text),
            upload_expiry: Duration::from_secs(
                over.upload_expiry_seconds
                    .or(self.upload_expiry_seconds)
                    .unwrap_or(DEFAULT_UPLOAD_EXPIRY_SECONDS),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_errors() {
        let file = FileConfig::parse(
            "listen: 0.0.0.0:6000\ndata_dir: /tmp/x\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let over = FileConfig {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let c = file.resolve(over);
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.storage, StorageBackend::Filesystem);

        let err = FileConfig::parse("listen: nope\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("field `listen`"), "{err}");
        let err = FileConfig::parse("lisen: 1\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
