//! The operations endpoints of `berth serve`, on its metrics listener
//! (`metrics_listen`, beside `/metrics`), which the operator reads: the
//! policy file a process has loaded, and what a repository holds. JSON
//! bodies of these types; both binaries use them.

use serde::{Deserialize, Serialize};

/// `GET /status`: a [`Status`].
pub const STATUS_PATH: &str = "/status";
/// `GET /usage?repository=PATTERN`: a [`Usage`] of the repositories PATTERN
/// matches (a name, or a pattern of the policy file: `team/*`).
pub const USAGE_PATH: &str = "/usage";
/// The query parameter of [`USAGE_PATH`].
pub const USAGE_REPOSITORY: &str = "repository";

/// What a serving process runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Lowercase hex SHA-256 of the policy file's bytes as last loaded;
    /// None when access control is off.
    pub policy_sha256: Option<String>,
}

/// What the repositories a pattern matches hold, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub repositories: u64,
    pub tags: u64,
    pub manifests: u64,
    /// Each repository's blob bytes (a blob once per repository) and
    /// manifest bytes, summed over the repositories.
    pub bytes: u64,
}
