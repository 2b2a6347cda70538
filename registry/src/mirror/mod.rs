//! The pull-through cache: Berth as a mirror of upstream registries. What
//! an upstream serves is fetched on the first pull and kept in ordinary
//! repositories under the mirror's name (`docker.io/library/alpine`), so
//! every store, policy, metric and gc rule of Berth applies to it.
//!
//! - [`addressing`]: which local repository a request means (containerd's
//!   `?ns=`, or the mirror's name as the first path component);
//! - [`upstream`]: the upstream's API, with its credentials;
//! - [`flight`]: one fetch at a time per tag or digest in this process (the
//!   metadata store's claims make it one across processes).
//!
//! The rules (tag TTL, revalidation, stale serving, single flight, storing
//! while streaming) are in `service::mirrored`.

pub mod addressing;
pub mod flight;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use berth_config::MirrorConfig;
use berth_config::mirror::DEFAULT_TAG_TTL_SECONDS;

pub use flight::{Flights, Turn};
pub use upstream::{Upstream, UpstreamError, UpstreamManifest};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror {name}: cannot read the password from {path}")]
    Password {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mirror {name}")]
    Client {
        name: String,
        #[source]
        source: crate::remote::RemoteError,
    },
    #[error("mirror {name}: building its HTTP client")]
    Http {
        name: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Who this process is, in the fetch claims other processes see.
pub static PROCESS: LazyLock<String> =
    LazyLock::new(|| format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));

/// Every upstream mirrored.
#[derive(Default)]
pub struct Mirrors {
    list: Vec<Arc<Mirror>>,
}

/// One upstream and what this process knows of it.
pub struct Mirror {
    pub config: MirrorConfig,
    pub tag_ttl: Duration,
    pub upstream: Upstream,
    pub flights: Flights,
    /// When this process last recorded a pull of each manifest (eviction
    /// order needs minutes, not every request).
    pub recent_pulls: Mutex<HashMap<String, Instant>>,
}

impl Mirrors {
    /// The mirrors `configs` describe (reading their password files).
    pub fn open(configs: &[MirrorConfig]) -> Result<Self, MirrorError> {
        let mut list = Vec::new();
        for config in configs {
            let name = config.name.clone();
            let credentials = match (&config.username, &config.password_file) {
                (Some(user), Some(path)) => {
                    let password = std::fs::read_to_string(path)
                        .map_err(|source| MirrorError::Password {
                            name: name.clone(),
                            path: path.display().to_string(),
                            source,
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    Some((user.clone(), password))
                }
                (Some(user), None) => Some((user.clone(), String::new())),
                _ => None,
            };
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(30))
                .build()
                .map_err(|source| MirrorError::Http {
                    name: name.clone(),
                    source,
                })?;
            let remote =
                crate::remote::Remote::new(&config.url, credentials, http).map_err(|source| {
                    MirrorError::Client {
                        name: name.clone(),
                        source,
                    }
                })?;
            list.push(Arc::new(Mirror {
                tag_ttl: Duration::from_secs(
                    config.tag_ttl_seconds.unwrap_or(DEFAULT_TAG_TTL_SECONDS),
                ),
                upstream: Upstream::new(name, remote),
                flights: Flights::default(),
                recent_pulls: Mutex::default(),
                config: config.clone(),
            }));
        }
        Ok(Self { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Mirror>> {
        self.list.iter()
    }

    /// The mirror named `name`.
    pub fn named(&self, name: &str) -> Option<&Arc<Mirror>> {
        self.list.iter().find(|m| m.config.name == name)
    }

    /// The mirror containerd's `?ns=` names: its name, or its URL's host.
    pub fn by_ns(&self, ns: &str) -> Option<&Arc<Mirror>> {
        self.named(ns)
            .or_else(|| self.list.iter().find(|m| m.config.authority() == ns))
    }

    /// The mirror local repository `repo` belongs to, and the repository's
    /// name upstream.
    pub fn of_repository<'r>(&self, repo: &'r str) -> Option<(Arc<Mirror>, &'r str)> {
        let (first, rest) = repo.split_once('/')?;
        self.named(first).map(|m| (m.clone(), rest))
    }
}

impl Mirror {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Docker Hub, whose one-component names mean `library/<name>`.
    pub fn is_docker_hub(&self) -> bool {
        self.config.name == "docker.io"
            || matches!(
                self.config.authority(),
                "registry-1.docker.io" | "index.docker.io" | "docker.io"
            )
    }

    /// Whether upstream repository `repo` may be pulled through.
    pub fn allows(&self, repo: &str) -> bool {
        self.config.repositories.is_empty()
            || self
                .config
                .repositories
                .iter()
                .any(|p| crate::pattern::matches(p, repo))
    }

    pub fn allows_push(&self) -> bool {
        self.config.allow_push.unwrap_or(false)
    }
}
