//! The `berth serve` configuration: one YAML file, `BERTH_*` environment
//! variables and flags, in rising order of precedence. One struct is all
//! three: serde reads the file, clap reads the flags and variables (`berth
//! serve` flattens it), and [`ServerConfig::over`] lays one over the other.
//! Every field is optional; [`ServerConfig::with_defaults`] fills in what is
//! not set, and the result is what `berth check-config` prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FileError, load_yaml, parse_yaml};
use crate::mirror::MirrorConfig;
use crate::repository::RepositorySettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:5001";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";
pub const DEFAULT_UPLOAD_EXPIRY_SECONDS: u64 = 24 * 60 * 60;
pub const DEFAULT_GC_GRACE_SECONDS: u64 = 60 * 60;
pub const DEFAULT_TOKEN_ISSUER: &str = "berth";
pub const DEFAULT_TOKEN_SERVICE: &str = "berth";
pub const DEFAULT_TOKEN_EXPIRY_SECONDS: u64 = 300;
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 30;
pub const DEFAULT_BODY_TIMEOUT_SECONDS: u64 = 60;
pub const DEFAULT_SEND_TIMEOUT_SECONDS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: u64 = 30;
pub const DEFAULT_DATABASE_POOL_SIZE: u32 = 16;
pub const DEFAULT_DATABASE_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Blobs on the local filesystem, under the data directory.
    Filesystem,
    /// Blobs in an S3-compatible bucket (the `s3` settings).
    S3,
    /// Blobs and metadata in memory, lost on exit (tests, demos).
    Memory,
}

/// An S3-compatible bucket for blobs (`storage: s3`). Credentials come from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, or from the files named
/// here (a mounted Secret); they are never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket of the blobs.
    #[arg(long = "s3-bucket", env = "BERTH_S3_BUCKET")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Endpoint URL of the S3 API [default: AWS's for the region].
    #[arg(long = "s3-endpoint", env = "BERTH_S3_ENDPOINT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region [default: us-east-1].
    #[arg(long = "s3-region", env = "BERTH_S3_REGION")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix inside the bucket (several registries in one bucket).
    #[arg(long = "s3-prefix", env = "BERTH_S3_PREFIX")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path-style URLs (endpoint/bucket/key), as most S3-compatible
    /// servers want [default: true with an endpoint, false on AWS].
    #[arg(long = "s3-path-style", env = "BERTH_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// File holding the access key id [default: AWS_ACCESS_KEY_ID].
    #[arg(long = "s3-access-key-id-file", env = "BERTH_S3_ACCESS_KEY_ID_FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key [default: AWS_SECRET_ACCESS_KEY].
    #[arg(
        long = "s3-secret-access-key-file",
        env = "BERTH_S3_SECRET_ACCESS_KEY_FILE"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Answer blob GETs with a 307 to a presigned URL of the bucket,
    /// instead of streaming the bytes through berth [default: false].
    #[arg(long = "s3-redirect", env = "BERTH_S3_REDIRECT", num_args = 0..=1, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<bool>,
    /// Endpoint URL that clients reach the bucket at, for presigned URLs
    /// [default: the endpoint].
    #[arg(long = "s3-public-endpoint", env = "BERTH_S3_PUBLIC_ENDPOINT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_endpoint: Option<String>,
}

impl S3Config {
    pub fn is_empty(&self) -> bool {
        *self == S3Config::default()
    }

    fn over(self, file: S3Config) -> S3Config {
        S3Config {
            bucket: self.bucket.or(file.bucket),
            endpoint: self.endpoint.or(file.endpoint),
            region: self.region.or(file.region),
            prefix: self.prefix.or(file.prefix),
            path_style: self.path_style.or(file.path_style),
            access_key_id_file: self.access_key_id_file.or(file.access_key_id_file),
            secret_access_key_file: self.secret_access_key_file.or(file.secret_access_key_file),
            redirect: self.redirect.or(file.redirect),
            public_endpoint: self.public_endpoint.or(file.public_endpoint),
        }
    }
}

/// The config file as written, and the flags over it. Unknown fields in the
/// file are refused, naming the field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the OCI distribution API [default: 127.0.0.1:5000].
    #[arg(long, env = "BERTH_LISTEN")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Address of /metrics (Prometheus) [default: 127.0.0.1:5001].
    #[arg(long, env = "BERTH_METRICS_LISTEN")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for blobs and metadata [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Where blobs and metadata live [default: filesystem].
    #[arg(long, env = "BERTH_STORAGE", value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageBackend>,
    /// Log line format [default: text].
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// PostgreSQL URL of the metadata database (postgres://user:password@host/db);
    /// without one, metadata is in SQLite under the data directory.
    #[arg(long, env = "BERTH_DATABASE_URL", hide_env_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// File holding the PostgreSQL URL (a mounted Secret), instead of database_url.
    #[arg(long, env = "BERTH_DATABASE_URL_FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url_file: Option<PathBuf>,
    /// Connections to PostgreSQL this process keeps at most [default: 16].
    #[arg(long, env = "BERTH_DATABASE_POOL_SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<u32>,
    /// Seconds a PostgreSQL statement may run, and a connection be waited
    /// for, before it fails [default: 30].
    #[arg(long, env = "BERTH_DATABASE_TIMEOUT_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_timeout_seconds: Option<u64>,
    #[command(flatten)]
    #[serde(default, skip_serializing_if = "S3Config::is_empty")]
    pub s3: S3Config,
    /// Idle upload sessions are removed after this many seconds [default: 86400].
    #[arg(long, env = "BERTH_UPLOAD_EXPIRY_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_expiry_seconds: Option<u64>,

    /// Policy file (groups, robots, rules); turns access control on. Re-read
    /// when it changes.
    #[arg(long, env = "BERTH_POLICY_FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<PathBuf>,
    /// htpasswd file of users (bcrypt entries, `htpasswd -B`).
    #[arg(long, env = "BERTH_HTPASSWD_FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd_file: Option<PathBuf>,
    /// Token signing key, P-256 PEM; generated if missing
    /// [default: <data-dir>/token-key.pem].
    #[arg(long, env = "BERTH_TOKEN_KEY_FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key_file: Option<PathBuf>,
    /// Issuer of tokens [default: berth].
    #[arg(long, env = "BERTH_TOKEN_ISSUER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_issuer: Option<String>,
    /// Service (token audience) clients name [default: berth].
    #[arg(long, env = "BERTH_TOKEN_SERVICE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_service: Option<String>,
    /// Token lifetime in seconds [default: 300].
    #[arg(long, env = "BERTH_TOKEN_EXPIRY_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expiry_seconds: Option<u64>,
    /// URL clients reach the registry at, for the token realm
    /// [default: from the request's Host header].
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,

    /// Run gc inside the server every this many seconds; 0: never [default: 0].
    #[arg(long, env = "BERTH_GC_INTERVAL_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_interval_seconds: Option<u64>,
    /// gc keeps anything younger than this many seconds [default: 3600].
    #[arg(long, env = "BERTH_GC_GRACE_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_grace_seconds: Option<u64>,
    /// gc keeps manifests no tag reaches (`--gc-keep-untagged`, or `=false`).
    #[arg(long, env = "BERTH_GC_KEEP_UNTAGGED", num_args = 0..=1, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_keep_untagged: Option<bool>,

    /// Seconds a request head may take to arrive; idle keep-alive
    /// connections close after it too [default: 30].
    #[arg(long, env = "BERTH_HEADER_TIMEOUT_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a request body may send nothing before the request ends [default: 60].
    #[arg(long, env = "BERTH_BODY_TIMEOUT_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout_seconds: Option<u64>,
    /// Seconds a client may read nothing of a response before it is
    /// disconnected [default: 60].
    #[arg(long, env = "BERTH_SEND_TIMEOUT_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_timeout_seconds: Option<u64>,
    /// Connections served at once [default: 4096].
    #[arg(long, env = "BERTH_MAX_CONNECTIONS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Connections from one address at once; 0: no limit (behind a proxy
    /// every client has the proxy's address) [default: 256].
    #[arg(long, env = "BERTH_MAX_CONNECTIONS_PER_CLIENT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<usize>,
    /// Seconds open requests may take to finish after SIGTERM [default: 30].
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_seconds: Option<u64>,
    /// Seconds between SIGTERM and no longer accepting connections, with
    /// /readyz answering 503 meanwhile: the time a load balancer (a
    /// Kubernetes Service) takes to stop sending new requests [default: 0].
    #[arg(long, env = "BERTH_SHUTDOWN_DELAY_SECONDS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_delay_seconds: Option<u64>,

    /// Per-repository settings (quota, immutable tags, retention) that hold
    /// whether or not access control is on; the policy file may add more.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositorySettings>,

    /// An upstream registry to mirror, NAME=URL (repeatable; the config
    /// file's `mirrors:` takes credentials, TTL, patterns and a size limit).
    #[arg(long = "mirror", env = "BERTH_MIRRORS", value_delimiter = ',', value_parser = MirrorConfig::parse_flag)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorConfig>,
}

/// `a.or(b)` for every field.
macro_rules! over {
    ($over:expr, $under:expr, $($field:ident),* $(,)?) => {
        ServerConfig {
            $($field: $over.$field.or($under.$field),)*
            s3: S3Config::default(),
            repositories: Vec::new(),
            mirrors: Vec::new(),
        }
    };
}

impl ServerConfig {
    /// Reads a config file; an empty file is an empty config.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let config: ServerConfig = load_yaml(path)?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, FileError> {
        let config: ServerConfig = parse_yaml(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// This config (flags and environment) laid over `file`: what is set
    /// here wins. Per-repository settings come from both.
    pub fn over(self, file: ServerConfig) -> ServerConfig {
        let mut merged = over!(
            self,
            file,
            listen,
            metrics_listen,
            data_dir,
            storage,
            log_format,
            database_url,
            database_url_file,
            database_pool_size,
            database_timeout_seconds,
            upload_expiry_seconds,
            policy_file,
            htpasswd_file,
            token_key_file,
            token_issuer,
            token_service,
            token_expiry_seconds,
            public_url,
            gc_interval_seconds,
            gc_grace_seconds,
            gc_keep_untagged,
            header_timeout_seconds,
            body_timeout_seconds,
            send_timeout_seconds,
            max_connections,
            max_connections_per_client,
            shutdown_timeout_seconds,
            shutdown_delay_seconds,
        );
        merged.s3 = self.s3.over(file.s3);
        merged.repositories = file.repositories;
        merged.repositories.extend(self.repositories);
        merged.mirrors = file.mirrors;
        merged.mirrors.extend(self.mirrors);
        merged
    }

    /// Every field set: the defaults where nothing else was. The token
    /// settings are filled only with access control on (a policy file).
    pub fn with_defaults(self) -> ServerConfig {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let auth = self.policy_file.is_some();
        let postgres = self.database_url.is_some() || self.database_url_file.is_some();
        ServerConfig {
            listen: self.listen.or_else(|| DEFAULT_LISTEN.parse().ok()),
            metrics_listen: self
                .metrics_listen
                .or_else(|| DEFAULT_METRICS_LISTEN.parse().ok()),
            token_key_file: self
                .token_key_file
                .or_else(|| auth.then(|| data_dir.join("token-key.pem"))),
            data_dir: Some(data_dir),
            storage: self.storage.or(Some(StorageBackend::Filesystem)),
            database_pool_size: self
                .database_pool_size
                .or(postgres.then_some(DEFAULT_DATABASE_POOL_SIZE)),
            database_timeout_seconds: self
                .database_timeout_seconds
                .or(postgres.then_some(DEFAULT_DATABASE_TIMEOUT_SECONDS)),
            database_url: self.database_url,
            database_url_file: self.database_url_file,
            s3: self.s3,
            log_format: self.log_format.or(Some(LogFormat::Text)),
            upload_expiry_seconds: self
                .upload_expiry_seconds
                .or(Some(DEFAULT_UPLOAD_EXPIRY_SECONDS)),
            policy_file: self.policy_file,
            htpasswd_file: self.htpasswd_file,
            token_issuer: self
                .token_issuer
                .or_else(|| auth.then(|| DEFAULT_TOKEN_ISSUER.to_string())),
            token_service: self
                .token_service
                .or_else(|| auth.then(|| DEFAULT_TOKEN_SERVICE.to_string())),
            token_expiry_seconds: self
                .token_expiry_seconds
                .or_else(|| auth.then_some(DEFAULT_TOKEN_EXPIRY_SECONDS)),
            public_url: self.public_url,
            gc_interval_seconds: self.gc_interval_seconds.or(Some(0)),
            gc_grace_seconds: self.gc_grace_seconds.or(Some(DEFAULT_GC_GRACE_SECONDS)),
            gc_keep_untagged: self.gc_keep_untagged.or(Some(false)),
            header_timeout_seconds: self
                .header_timeout_seconds
                .or(Some(DEFAULT_HEADER_TIMEOUT_SECONDS)),
            body_timeout_seconds: self
                .body_timeout_seconds
                .or(Some(DEFAULT_BODY_TIMEOUT_SECONDS)),
            send_timeout_seconds: self
                .send_timeout_seconds
                .or(Some(DEFAULT_SEND_TIMEOUT_SECONDS)),
            max_connections: self.max_connections.or(Some(DEFAULT_MAX_CONNECTIONS)),
            max_connections_per_client: self
                .max_connections_per_client
                .or(Some(DEFAULT_MAX_CONNECTIONS_PER_CLIENT)),
            shutdown_timeout_seconds: self
                .shutdown_timeout_seconds
                .or(Some(DEFAULT_SHUTDOWN_TIMEOUT_SECONDS)),
            shutdown_delay_seconds: self.shutdown_delay_seconds.or(Some(0)),
            repositories: self.repositories,
            mirrors: self.mirrors,
        }
    }

    /// Checks what serde cannot: values that parse but cannot work.
    pub fn validate(&self, path: &Path) -> Result<(), FileError> {
        let positive = [
            ("upload_expiry_seconds", self.upload_expiry_seconds),
            ("token_expiry_seconds", self.token_expiry_seconds),
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            ("send_timeout_seconds", self.send_timeout_seconds),
            ("max_connections", self.max_connections.map(|n| n as u64)),
        ];
        for (field, value) in positive {
            if value == Some(0) {
                return Err(FileError::invalid(path, field, "must be more than 0"));
            }
        }
        if self.database_url.is_some() && self.database_url_file.is_some() {
            return Err(FileError::invalid(
                path,
                "database_url_file",
                "give database_url or database_url_file, not both",
            ));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            // Never echo the URL: it may hold a password.
            return Err(FileError::invalid(
                path,
                "database_url",
                "is not a postgres:// URL",
            ));
        }
        if self.storage == Some(StorageBackend::S3) && self.s3.bucket.is_none() {
            return Err(FileError::invalid(
                path,
                "s3.bucket",
                "storage: s3 needs a bucket",
            ));
        }
        for (field, url) in [
            ("s3.endpoint", &self.s3.endpoint),
            ("s3.public_endpoint", &self.s3.public_endpoint),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(FileError::invalid(
                    path,
                    field,
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(FileError::invalid(
                path,
                "public_url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        for (i, settings) in self.repositories.iter().enumerate() {
            settings.validate().map_err(|(field, message)| {
                FileError::invalid(path, format!("repositories[{i}].{field}"), message)
            })?;
        }
        for (i, mirror) in self.mirrors.iter().enumerate() {
            mirror.validate().map_err(|(field, message)| {
                FileError::invalid(path, format!("mirrors[{i}].{field}"), message)
            })?;
            if self.mirrors[..i].iter().any(|m| m.name == mirror.name) {
                return Err(FileError::invalid(
                    path,
                    format!("mirrors[{i}].name"),
                    format!("`{}` is mirrored twice", mirror.name),
                ));
            }
        }
        Ok(())
    }

    /// The config as YAML (what `berth check-config` prints, and what the
    /// operator writes into a Registry's ConfigMap).
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_file_and_defaults() {
        let file = ServerConfig::parse(
            "listen: 0.0.0.0:6000\ndata_dir: /tmp/x\nrepositories:\n- name: a/*\n  quota_bytes: 10\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let flags = ServerConfig {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let c = flags.over(file).with_defaults();
        assert_eq!(c.listen.unwrap().port(), 7000);
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/tmp/x")));
        assert_eq!(c.storage, Some(StorageBackend::Filesystem));
        assert_eq!(c.repositories.len(), 1);
        assert_eq!(c.token_key_file, None, "no access control, no token key");
        let yaml = c.to_yaml().unwrap();
        let again = ServerConfig::parse(&yaml, Path::new("again.yaml")).unwrap();
        assert_eq!(again, c, "the effective config reads back as itself");
    }

    #[test]
    fn errors_name_the_field_once() {
        let err = ServerConfig::parse("listen: nope\n", Path::new("c.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml: field `listen`: invalid socket address syntax at line 1 column 9"
        );
        let err = ServerConfig::parse("lisen: 1\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = ServerConfig::parse("storage: disk\n", Path::new("c.yaml")).unwrap_err();
        assert!(!err.to_string().contains("storage: "), "{err}");
        let err = ServerConfig::parse("max_connections: 0\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
    }
}
