//! A Registry's desired objects.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use berth_config::{LogFormat, ServerConfig, StorageBackend, env as berth_env};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec as K8sServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{
    RenderError, config_map_name, data_claim_name, default_image, gc_cronjob_name, labels, meta,
    owner_ref, selector_labels, sha256_hex, token_key_secret_name, workload_name,
};
use crate::crd::{self, Registry, ServiceType};

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

/// Every object a Registry becomes (the token key Secret aside: it is
/// generated once by the controller, see [`token_key_secret`]).
#[derive(Debug, Clone)]
pub struct RegistryObjects {
    pub config_map: ConfigMap,
    /// None when blobs live in S3.
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

/// The `berth serve` config file of a Registry's pods, in the registry's
/// own type: every field is named, so that a field added to the contract is
/// a compile error here until the operator decides what to render for it.
pub fn server_config(reg: &Registry) -> ServerConfig {
    let auth = &reg.spec.auth;
    ServerConfig {
        listen: Some(all_addresses(LISTEN_PORT)),
        // `/metrics`, on all addresses: Prometheus scrapes it from outside the pod.
        metrics_listen: Some(all_addresses(METRICS_LISTEN_PORT)),
        data_dir: Some(DATA_DIR.into()),
        // Blobs in S3 are not served by this registry version yet; the pods
        // keep the filesystem backend (on an emptyDir) and get the S3
        // settings as BERTH_S3_* variables for the version that does.
        storage: Some(StorageBackend::Filesystem),
        log_format: Some(match reg.spec.log_format {
            crd::LogFormat::Text => LogFormat::Text,
            crd::LogFormat::Json => LogFormat::Json,
        }),
        upload_expiry_seconds: reg.spec.upload_expiry_seconds,
        // Always set: a Registry run by the operator is access-controlled by
        // the policy rendered from its Repositories.
        policy_file: Some(format!("{CONFIG_DIR}/policy.yaml").into()),
        htpasswd_file: auth
            .htpasswd_secret
            .as_ref()
            .map(|_| format!("{HTPASSWD_DIR}/htpasswd").into()),
        token_key_file: Some(format!("{TOKEN_DIR}/key.pem").into()),
        token_issuer: Some(auth.token.issuer.clone().unwrap_or_else(|| reg.name_any())),
        token_service: None,
        token_expiry_seconds: Some(u64::from(auth.token.expiry_seconds)),
        // Base URL for the token realm: the Ingress host when there is one,
        // else the request's Host header.
        public_url: reg.spec.ingress.as_ref().map(|i| {
            let scheme = if i.tls_secret.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", i.host)
        }),
        // gc runs in its CronJob, not in the server.
        gc_interval_seconds: None,
        // Left to the registry's defaults.
        gc_grace_seconds: None,
        gc_keep_untagged: None,
        header_timeout_seconds: None,
        body_timeout_seconds: None,
        send_timeout_seconds: None,
        max_connections: None,
        max_connections_per_client: None,
        shutdown_timeout_seconds: None,
        // Per-repository settings come from the Repositories, in the policy
        // file (reloaded without a restart).
        repositories: Vec::new(),
    }
}

fn all_addresses(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

pub fn server_config_yaml(reg: &Registry) -> Result<String, RenderError> {
    let body =
        serde_yaml::to_string(&server_config(reg)).map_err(|source| RenderError::Serialise {
            what: "server config",
            source,
        })?;
    Ok(format!(
        "# Rendered by berth-operator from Registry {}/{}; edits are overwritten.\n{body}",
        reg.namespace().unwrap_or_default(),
        reg.name_any()
    ))
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

fn registry_meta(reg: &Registry, name: String, component: &str) -> Result<ObjectMeta, RenderError> {
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

/// The data claim, None when blobs live in S3. Its owner reference is left
/// out when `retainOnDelete` is set, so deleting the Registry keeps it.
pub fn data_claim(reg: &Registry) -> Result<Option<PersistentVolumeClaim>, RenderError> {
    if reg.spec.storage.s3.is_some() {
        return Ok(None);
    }
    let vol = reg.spec.storage.volume.clone().unwrap_or_default();
    let mut metadata = registry_meta(reg, data_claim_name(&reg.name_any()), "registry")?;
    if vol.retain_on_delete {
        metadata.owner_references = None;
    }
    Ok(Some(PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vol.access_modes.clone()),
            storage_class_name: vol.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(vol.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    if m.is_empty() {
        return None;
    }
    Some(
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect(),
    )
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Volumes and mounts shared by the registry pods and the maintenance jobs.
fn volumes_and_mounts(reg: &Registry) -> (Vec<Volume>, Vec<VolumeMount>) {
    let name = reg.name_any();
    let mut volumes = vec![
        Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                ..Default::default()
            }),
            ..volume("config")
        },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("tmp")
        },
        Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some(token_key_secret_name(&name)),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..volume("token-key")
        },
    ];
    if reg.spec.storage.s3.is_some() {
        volumes.push(Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("data")
        });
    } else {
        volumes.push(Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: data_claim_name(&name),
                read_only: None,
            }),
            ..volume("data")
        });
    }
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("tmp", "/tmp", false),
        mount("token-key", TOKEN_DIR, true),
        mount("data", DATA_DIR, false),
    ];
    if let Some(secret) = &reg.spec.auth.htpasswd_secret {
        volumes.push(Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..volume("htpasswd")
        });
        mounts.push(mount("htpasswd", HTPASSWD_DIR, true));
    }
    (volumes, mounts)
}

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Environment of the registry and job containers: the config file path,
/// and the S3 and PostgreSQL settings the config file cannot carry yet
/// (BERTH_S3_*, AWS_*, BERTH_DATABASE_URL; ignored by this registry version).
fn env(reg: &Registry) -> Vec<EnvVar> {
    let mut env = vec![plain_env(
        berth_env::CONFIG,
        format!("{CONFIG_DIR}/config.yaml"),
    )];
    if let Some(s3) = &reg.spec.storage.s3 {
        env.push(plain_env("BERTH_S3_BUCKET", s3.bucket.clone()));
        if let Some(e) = &s3.endpoint {
            env.push(plain_env("BERTH_S3_ENDPOINT", e.clone()));
        }
        if let Some(r) = &s3.region {
            env.push(plain_env("BERTH_S3_REGION", r.clone()));
        }
        env.push(secret_env(
            berth_env::S3_ACCESS_KEY_ID,
            &s3.credentials_secret,
            "accessKeyId",
        ));
        env.push(secret_env(
            berth_env::S3_SECRET_ACCESS_KEY,
            &s3.credentials_secret,
            "secretAccessKey",
        ));
    }
    if let Some(pg) = &reg.spec.database.postgres {
        env.push(secret_env(
            berth_env::DATABASE_URL,
            &pg.url_secret.name,
            &pg.url_secret.key,
        ));
    }
    env
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

fn image(reg: &Registry) -> String {
    reg.spec.image.clone().unwrap_or_else(default_image)
}

pub fn deployment(reg: &Registry, config_hash: &str) -> Result<Deployment, RenderError> {
    let name = reg.name_any();
    let (volumes, mounts) = volumes_and_mounts(reg);
    let container = Container {
        name: "registry".into(),
        image: Some(image(reg)),
        args: Some(vec![
            "serve".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/config.yaml"),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: CONTAINER_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        env: Some(env(reg)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: Some(ResourceRequirements {
            requests: quantities(&reg.spec.resources.requests),
            limits: quantities(&reg.spec.resources.limits),
            ..Default::default()
        }),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    // One writer on a ReadWriteOnce claim: replace pods instead of surging.
    let strategy = if reg.spec.storage.s3.is_some() {
        "RollingUpdate"
    } else {
        "Recreate"
    };
    Ok(Deployment {
        metadata: registry_meta(reg, super::workload_name(&name), "registry")?,
        spec: Some(DeploymentSpec {
            replicas: Some(reg.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some(strategy.into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name, "registry")),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.into(),
                        config_hash.into(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    security_context: Some(pod_security_context()),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn service(reg: &Registry) -> Result<Service, RenderError> {
    let name = reg.name_any();
    let svc = &reg.spec.service;
    Ok(Service {
        metadata: registry_meta(reg, workload_name(&name), "registry")?,
        spec: Some(K8sServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: svc.port,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    node_port: match svc.type_ {
                        ServiceType::NodePort => svc.node_port,
                        ServiceType::ClusterIP => None,
                    },
                    ..Default::default()
                },
                // For Prometheus (the ServiceMonitor); never a NodePort.
                ServicePort {
                    name: Some("metrics".into()),
                    port: METRICS_PORT,
                    target_port: Some(IntOrString::String("metrics".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn ingress(reg: &Registry) -> Result<Option<Ingress>, RenderError> {
    let Some(spec) = &reg.spec.ingress else {
        return Ok(None);
    };
    let name = reg.name_any();
    let mut metadata = registry_meta(reg, workload_name(&name), "registry")?;
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Ok(Some(Ingress {
        metadata,
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: workload_name(&name),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            tls: spec.tls_secret.as_ref().map(|s| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(s.clone()),
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub fn pdb(reg: &Registry) -> Result<Option<PodDisruptionBudget>, RenderError> {
    if reg.spec.replicas <= 1 {
        return Ok(None);
    }
    let name = reg.name_any();
    Ok(Some(PodDisruptionBudget {
        metadata: registry_meta(reg, workload_name(&name), "registry")?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// A CronJob running `berth <args>` with the registry's config and data.
pub(crate) fn maintenance_cronjob(
    reg: &Registry,
    metadata: ObjectMeta,
    schedule: &str,
    suspend: bool,
    args: Vec<String>,
) -> CronJob {
    let (volumes, mounts) = volumes_and_mounts(reg);
    let pod_labels = metadata.labels.clone();
    let container = Container {
        name: "berth".into(),
        image: Some(image(reg)),
        args: Some(args),
        env: Some(env(reg)),
        resources: Some(ResourceRequirements {
            requests: quantities(&reg.spec.resources.requests),
            limits: quantities(&reg.spec.resources.limits),
            ..Default::default()
        }),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    CronJob {
        metadata,
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            suspend: Some(suspend),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: pod_labels.clone(),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: pod_labels,
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("OnFailure".into()),
                            automount_service_account_token: Some(false),
                            containers: vec![container],
                            security_context: Some(pod_security_context()),
                            volumes: Some(volumes),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn gc_cronjob(reg: &Registry) -> Result<CronJob, RenderError> {
    let metadata = registry_meta(reg, gc_cronjob_name(&reg.name_any()), "gc")?;
    Ok(maintenance_cronjob(
        reg,
        metadata,
        &reg.spec.gc.schedule,
        reg.spec.gc.suspend,
        vec![
            "gc".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/config.yaml"),
        ],
    ))
}

/// A Prometheus-operator ServiceMonitor (as JSON: its types are not part of
/// k8s-openapi), None unless asked for.
pub fn service_monitor(reg: &Registry) -> Result<Option<serde_json::Value>, RenderError> {
    if !reg.spec.metrics.service_monitor {
        return Ok(None);
    }
    let name = reg.name_any();
    let metadata = registry_meta(reg, workload_name(&name), "registry")?;
    Ok(Some(serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector_labels(&name)},
            "endpoints": [{"port": "metrics", "path": "/metrics"}],
        },
    })))
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

/// The address pods pull from: the Ingress host when there is one, else
/// the Service's cluster IP (kubelets reach it; cluster DNS names they
/// usually cannot resolve), else its DNS name.
pub fn endpoint(reg: &Registry, cluster_ip: Option<&str>) -> String {
    if let Some(ing) = &reg.spec.ingress {
        return ing.host.clone();
    }
    let port = reg.spec.service.port;
    match cluster_ip {
        Some(ip) if !ip.is_empty() && ip != "None" => format!("{ip}:{port}"),
        _ => format!(
            "{}.{}.svc:{port}",
            workload_name(&reg.name_any()),
            reg.namespace().unwrap_or_else(|| "default".into())
        ),
    }
}
