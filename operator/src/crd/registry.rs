//! The Registry resource: its spec (storage in storage.rs, Service and
//! Ingress in network.rs) and status.

// kube's `printcolumn(...)` entries repeat keys by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Condition, DatabaseSpec, IngressSpec, MirrorSpec, NodeEndpointSpec, ServiceSpec, StorageSpec,
};

/// A Berth registry: the operator runs it as a Deployment with its config,
/// storage, Service, optional Ingress, disruption budget and gc CronJob.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Registry",
    plural = "registries",
    shortname = "reg",
    namespaced,
    doc = "A Berth container registry run by the operator: a Deployment with its config, storage, Service, optional Ingress, disruption budget and gc CronJob.",
    status = "RegistryStatus",
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        description = "Where pods pull from",
        json_path = ".status.endpoint"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        description = "Desired replicas",
        json_path = ".spec.replicas"
    ),
    printcolumn(
        name = "Ready Replicas",
        type_ = "integer",
        description = "Replicas ready to serve",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "The Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why Ready is what it is: Available, PodsNotReady, ImagePullFailed, ClaimPending, DatabaseUnreachable, StorageUnreachable, NodeEndpointNotReady or a spec problem",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("self.spec.replicas <= 1 || (has(self.spec.storage.s3) && has(self.spec.database.postgres))").message("more than one replica needs shared storage and metadata: set spec.storage.s3 and spec.database.postgres, or use replicas: 1").field_path(".spec.replicas"),
    validation = Rule::new("!has(self.spec.service.nodePort) || self.spec.service.type == 'NodePort'").message("spec.service.nodePort needs spec.service.type: NodePort").field_path(".spec.service.nodePort")
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Number of registry pods. More than one needs S3 storage and
    /// PostgreSQL; with both, pods keep nothing of their own, roll one new
    /// pod at a time before an old one stops, and scaling restarts none.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Container image of the registry. Defaults to the Berth image of the
    /// operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Where blobs live: a PersistentVolumeClaim (default) or an
    /// S3-compatible bucket.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Where metadata lives: embedded SQLite (default) or PostgreSQL.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// Authentication: anonymous pull, htpasswd users, tokens.
    #[serde(default)]
    pub auth: AuthSpec,

    /// The Service in front of the registry pods.
    #[serde(default)]
    pub service: ServiceSpec,

    /// The node-local endpoint kubelets pull from (`localhost:<port>` on
    /// every node, forwarded to the Service); on by default.
    #[serde(default)]
    pub node_endpoint: NodeEndpointSpec,

    /// An Ingress for the registry; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Compute resources of the registry container.
    #[serde(default)]
    pub resources: ResourcesSpec,

    /// The garbage-collection CronJob (`berth gc`).
    #[serde(default)]
    pub gc: GcSpec,

    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSpec,

    /// Log format of the registry: text or json.
    #[serde(default)]
    pub log_format: LogFormat,

    /// Upload sessions untouched for this many seconds are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub upload_expiry_seconds: Option<u64>,

    /// Upstream registries this one caches (a pull-through mirror for the
    /// cluster's nodes); the operator writes the containerd `hosts.toml`
    /// each needs into the ConfigMap `<name>-containerd-hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub mirrors: Vec<MirrorSpec>,
}

fn default_replicas() -> i32 {
    1
}

/// Log line format.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    #[default]
    Json,
}

/// Authentication.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Let anyone pull every repository without credentials (repositories
    /// can also be made public one by one).
    #[serde(default)]
    pub anonymous_pull: bool,
    /// Secret (same namespace) with an `htpasswd` key (bcrypt entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd_secret: Option<String>,
    /// Bearer-token settings.
    #[serde(default)]
    pub token: TokenSpec,
}

/// Bearer tokens issued by the registry's token endpoint.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSpec {
    /// Token lifetime in seconds.
    #[serde(default = "default_token_expiry")]
    #[schemars(range(min = 30, max = 86400))]
    pub expiry_seconds: u32,
    /// Issuer (`iss`) of the tokens; the Registry's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        Self {
            expiry_seconds: default_token_expiry(),
            issuer: None,
        }
    }
}

fn default_token_expiry() -> u32 {
    300
}

/// Compute resources (Kubernetes quantities by resource name).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ResourcesSpec {
    /// Requests, e.g. `cpu: 100m`, `memory: 128Mi`.
    #[serde(default = "default_requests")]
    pub requests: BTreeMap<String, String>,
    /// Limits, e.g. `memory: 1Gi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        Self {
            requests: default_requests(),
            limits: BTreeMap::new(),
        }
    }
}

fn default_requests() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cpu".to_string(), "100m".to_string()),
        ("memory".to_string(), "128Mi".to_string()),
    ])
}

/// Garbage collection (`berth gc`) on a schedule.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GcSpec {
    /// Cron schedule (5 fields, or @hourly/@daily/@weekly/@monthly/@yearly).
    #[serde(default = "default_gc_schedule")]
    #[x_kube(validation = super::schedule_rule())]
    pub schedule: String,
    /// Suspend the CronJob.
    #[serde(default)]
    pub suspend: bool,
}

impl Default for GcSpec {
    fn default() -> Self {
        Self {
            schedule: default_gc_schedule(),
            suspend: false,
        }
    }
}

fn default_gc_schedule() -> String {
    "17 3 * * *".into()
}

/// Prometheus metrics.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Create a ServiceMonitor (when the Prometheus operator's CRD exists).
    #[serde(default)]
    pub service_monitor: bool,
}

/// What the operator observed of a Registry.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// Ready, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Registry pods ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The address Pods put in image references (`host:port`, no scheme):
    /// `localhost:<port>` with the node endpoint, else the Ingress host,
    /// else the Service's cluster IP and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Hash of the rendered config the pods run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}
