// kube's `printcolumn(...)` entries repeat keys by design.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A repository (or a prefix of repositories) of a Berth Registry in the
/// same namespace: who may pull and push, pull Secrets for ServiceAccounts,
/// retention, quota and immutable tags.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Repository",
    plural = "repositories",
    shortname = "repo",
    namespaced,
    doc = "A repository (or prefix) of a Berth Registry in the same namespace: access grants, pull Secrets for ServiceAccounts, retention, quota and immutable tags.",
    status = "RepositoryStatus",
    printcolumn(name = "Registry", type_ = "string", json_path = ".spec.registry"),
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.name"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why Ready is what it is",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Tags",
        type_ = "integer",
        description = "Tags stored (from the registry)",
        json_path = ".status.tagCount"
    ),
    printcolumn(
        name = "Size",
        type_ = "integer",
        description = "Bytes stored (from the registry)",
        json_path = ".status.sizeBytes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    /// Name of the Registry (same namespace) that serves this repository.
    #[schemars(length(min = 1, max = 253))]
    pub registry: String,

    /// Repository name (`team/app`) or prefix (`team/*`, `team/**`).
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(/\\\\*\\\\*?)?$') || self == '**'").message("name must be a repository name (lowercase path segments), optionally ending in /* or /**"))]
    pub name: String,

    /// Public repositories can be pulled anonymously.
    #[serde(default)]
    pub visibility: Visibility,

    /// Who may do what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessGrant>,

    /// Retention rules and their schedule (`berth retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,

    /// Storage quota (a Kubernetes quantity, e.g. `20Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::bytes_rule())]
    pub quota: Option<String>,

    /// Tags matching these patterns cannot be overwritten or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub immutable_tags: Vec<String>,
}

/// Visibility of a repository.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Visibility {
    /// Only granted subjects may pull.
    #[default]
    Private,
    /// Anyone may pull; pushing still needs a grant.
    Public,
}

/// An action on a repository.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RepoAction {
    Pull,
    Push,
    Delete,
}

impl RepoAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoAction::Pull => "pull",
            RepoAction::Push => "push",
            RepoAction::Delete => "delete",
        }
    }
}

/// A grant of actions to users, groups and ServiceAccounts.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("size(self.users) + size(self.groups) + size(self.serviceAccounts) > 0").message("a grant needs at least one user, group or ServiceAccount").field_path(".serviceAccounts")
)]
pub struct AccessGrant {
    /// Registry users (htpasswd names).
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups of users.
    #[serde(default)]
    pub groups: Vec<String>,
    /// ServiceAccounts that get a pull Secret in their namespace and an
    /// `imagePullSecrets` entry.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountRef>,
    /// Actions granted.
    #[schemars(length(min = 1))]
    pub actions: Vec<RepoAction>,
}

/// A ServiceAccount in any namespace.
#[derive(
    Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub struct ServiceAccountRef {
    /// Namespace of the ServiceAccount; the Repository's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the ServiceAccount.
    pub name: String,
}

/// Retention: which tags `berth retention` deletes, and when it runs.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Cron schedule of the retention CronJob.
    #[serde(default = "default_retention_schedule")]
    #[x_kube(validation = super::schedule_rule())]
    pub schedule: String,
    /// Keep the last N tags by push time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Delete tags older than this (e.g. `720h`, `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d|w)$"))]
    pub max_age: Option<String>,
    /// Only tags matching these patterns are candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_tags: Vec<String>,
    /// Tags matching these patterns are never deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protect_tags: Vec<String>,
    /// Also delete untagged manifests.
    #[serde(default)]
    pub delete_untagged: bool,
}

fn default_retention_schedule() -> String {
    "47 4 * * *".into()
}

/// What the operator observed of a Repository.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    /// Ready, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Tags in the repositories this one covers (reported by the registry,
    /// refreshed on a schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_count: Option<i64>,
    /// Bytes they hold: each repository's blobs (once per repository) and
    /// manifests, summed (reported by the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// When the retention CronJob last ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retention_run: Option<String>,
    /// Pull Secrets the operator maintains, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
    /// Fingerprint of this Repository's rules as every ready registry pod
    /// was last seen serving them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_rules: Option<String>,
}
