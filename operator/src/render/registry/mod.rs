//! A Registry's desired objects (one file per concern: the config file,
//! the pod template, the workloads, the network objects), the rules that
//! keep an existing claim, what the spec needs to work, what its pods'
//! `/readyz` say (readiness.rs), and its status.

mod checks;
mod claim;
mod config;
mod mirrors;
mod network;
mod node_endpoint;
mod pod;
mod readiness;
mod status;
mod troubles;
mod workload;

pub use checks::*;
pub use claim::*;
pub use config::*;
pub use mirrors::*;
pub use network::*;
pub use node_endpoint::*;
pub(crate) use pod::maintenance_cronjob;
pub use readiness::*;
pub use status::*;
pub use troubles::*;
pub use workload::*;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{
    RenderError, config_map_name, labels, meta, owner_ref, sha256_hex, token_key_secret_name,
};
use crate::crd::Registry;

/// Port the registry listens on inside the pod.
pub const CONTAINER_PORT: i32 = LISTEN_PORT as i32;
/// Where the registry serves `/metrics` in its pod (its own listener).
pub const METRICS_PORT: i32 = METRICS_LISTEN_PORT as i32;
const LISTEN_PORT: u16 = 5000;
const METRICS_LISTEN_PORT: u16 = 5001;
/// Mount point of the config ConfigMap.
pub const CONFIG_DIR: &str = "/etc/berth";
/// Mount point of the data volume (`data_dir`).
pub const DATA_DIR: &str = "/var/lib/berth";
/// Mount point of the token signing key Secret.
pub const TOKEN_DIR: &str = "/etc/berth/token";
/// Mount point of the htpasswd Secret.
pub const HTPASSWD_DIR: &str = "/etc/berth/htpasswd";
/// Pod template annotation holding the config hash: a new hash rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "berth.dev/config-hash";
/// UID/GID the registry runs as (no root).
pub const RUN_AS: i64 = 65532;
/// `shutdown_delay_seconds` of the pods: after SIGTERM, /readyz answers 503
/// while requests are still served, for this long, so that the Service (and
/// any load balancer in front of it) stops sending new requests to the pod
/// before its listener closes.
pub const SHUTDOWN_DELAY_SECONDS: u64 = 5;
/// `shutdown_timeout_seconds` of the pods: after the delay, in-flight
/// requests (a large blob, a push) have this long to finish.
pub const SHUTDOWN_TIMEOUT_SECONDS: u64 = 30;
/// `terminationGracePeriodSeconds`: the delay and the timeout, and a margin
/// for the process to close its stores and exit before the kubelet kills it.
pub const TERMINATION_GRACE_SECONDS: i64 =
    (SHUTDOWN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 10) as i64;

/// Whether the pods keep nothing on a disk of their own: blobs in S3 and
/// metadata in PostgreSQL. Then there is no claim (the data directory is an
/// emptyDir), any number of pods serve side by side, and a rollout starts a
/// new pod before it stops an old one. Otherwise a claim holds the embedded
/// database and/or the blobs, and one pod at a time uses it.
pub fn shared_backends(reg: &Registry) -> bool {
    reg.spec.storage.s3.is_some() && reg.spec.database.postgres.is_some()
}

/// Every object a Registry becomes (the token key Secret aside: it is
/// generated once by the controller, see [`token_key_secret`]).
#[derive(Debug, Clone)]
pub struct RegistryObjects {
    pub config_map: ConfigMap,
    /// None with S3 and PostgreSQL ([`shared_backends`]).
    pub data_claim: Option<PersistentVolumeClaim>,
    pub deployment: Deployment,
    pub service: Service,
    pub ingress: Option<Ingress>,
    /// Only when replicas > 1.
    pub pdb: Option<PodDisruptionBudget>,
    pub gc_cronjob: CronJob,
    /// Only when asked for (the controller also checks that the CRD exists).
    pub service_monitor: Option<serde_json::Value>,
    /// SHA-256 of the server config file, also on the pod template.
    pub config_hash: String,
}

/// Renders every object of `reg`; `policy_yaml` is the policy file rendered
/// from its Repositories ([`super::policy_file`]).
pub fn render_registry(reg: &Registry, policy_yaml: &str) -> Result<RegistryObjects, RenderError> {
    let config_yaml = server_config_yaml(reg)?;
    let config_hash = sha256_hex(config_yaml.as_bytes());
    Ok(RegistryObjects {
        config_map: config_map(reg, &config_yaml, policy_yaml)?,
        data_claim: data_claim(reg)?,
        deployment: deployment(reg, &config_hash)?,
        service: service(reg)?,
        ingress: ingress(reg)?,
        pdb: pdb(reg)?,
        gc_cronjob: gc_cronjob(reg)?,
        service_monitor: service_monitor(reg)?,
        config_hash,
    })
}

pub(crate) fn registry_meta(
    reg: &Registry,
    name: String,
    component: &str,
) -> Result<ObjectMeta, RenderError> {
    Ok(meta(
        name,
        reg.namespace(),
        labels(&reg.name_any(), component),
        Some(owner_ref(reg)?),
    ))
}

pub fn config_map(
    reg: &Registry,
    config_yaml: &str,
    policy_yaml: &str,
) -> Result<ConfigMap, RenderError> {
    Ok(ConfigMap {
        metadata: registry_meta(reg, config_map_name(&reg.name_any()), "registry")?,
        data: Some(BTreeMap::from([
            ("config.yaml".into(), config_yaml.into()),
            ("policy.yaml".into(), policy_yaml.into()),
        ])),
        ..Default::default()
    })
}

/// The token signing key Secret around a PEM key the controller generated.
pub fn token_key_secret(reg: &Registry, pem: &str) -> Result<Secret, RenderError> {
    Ok(Secret {
        metadata: registry_meta(reg, token_key_secret_name(&reg.name_any()), "registry")?,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "key.pem".into(),
            ByteString(pem.as_bytes().to_vec()),
        )])),
        ..Default::default()
    })
}
