//! Upstream registries a Registry mirrors (a pull-through cache), and the
//! credentials it uses for them.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One upstream registry served through this Registry: pulls of
/// `<name>/<repository>` (or any pull a node's containerd sends with
/// `?ns=<name>`) are fetched from `url` once, then served from the cache.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MirrorSpec {
    /// The registry as images name it (`docker.io`, `ghcr.io`,
    /// `registry.k8s.io`): the first component of cached repositories, and
    /// the directory of the node's containerd `hosts.toml`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Base URL of the upstream's API, e.g. `https://registry-1.docker.io`.
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"))]
    pub url: String,
    /// Credentials for the upstream; anonymous when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<MirrorCredentials>,
    /// Seconds a tag is served from the cache before the upstream is asked
    /// whether it moved; the registry's default (300) when absent. Digests
    /// are never asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tag_ttl_seconds: Option<u64>,
    /// Upstream repositories that may be pulled through (patterns such as
    /// `library/*`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// How much the cache of this upstream may hold (a Kubernetes quantity,
    /// e.g. `50Gi`); gc removes what was pulled least recently beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<String>,
    /// Whether anyone may pull the mirrored repositories without
    /// credentials (as a node's containerd does). Defaults to true for an
    /// anonymous upstream and to false for one behind credentials, whose
    /// content may be private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_pull: Option<bool>,
}

impl MirrorSpec {
    /// Whether anonymous pulls of the mirrored repositories are allowed.
    pub fn anonymous_pull(&self) -> bool {
        self.anonymous_pull.unwrap_or(self.credentials.is_none())
    }
}

/// A user name, and the password from a Secret in the Registry's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorCredentials {
    /// User name at the upstream.
    pub username: String,
    /// The Secret holding the password (or token).
    pub password_secret: String,
    /// The key of the password in that Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_password_key() -> String {
    "password".into()
}
