//! The registry's workloads: its data claim, Deployment, disruption budget
//! and gc CronJob.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, ResourceRequirements, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::pod::{
    container_security_context, http_probe, image, maintenance_cronjob, pod_security_context,
    quantities, volumes_and_mounts,
};
use super::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, CONTAINER_PORT, METRICS_PORT, TERMINATION_GRACE_SECONDS,
    env, registry_meta, shared_backends,
};
use crate::crd::Registry;
use crate::render::{
    RenderError, data_claim_name, gc_cronjob_name, labels, selector_labels, workload_name,
};

/// The data claim: None with S3 and PostgreSQL ([`shared_backends`]); with
/// S3 alone it holds the embedded database (the default volume settings).
/// Its owner reference is left out when `retainOnDelete` is set, so
/// deleting the Registry keeps it.
pub fn data_claim(reg: &Registry) -> Result<Option<PersistentVolumeClaim>, RenderError> {
    if shared_backends(reg) {
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

/// The registry's Deployment. Its pod template depends on the spec but
/// never on `replicas`: scaling changes `spec.replicas` only, and no running
/// pod restarts.
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
        // A pod that exits (e.g. it started while PostgreSQL or the bucket
        // did not answer) shows the end of its log in its status.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let strategy = if shared_backends(reg) {
        // Nothing local: a new pod starts and gets ready before an old one
        // stops, so a rollout never has fewer ready pods than replicas.
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        }
    } else {
        // One writer on a ReadWriteOnce claim (and one process on SQLite):
        // replace pods instead of surging.
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        }
    };
    Ok(Deployment {
        metadata: registry_meta(reg, workload_name(&name), "registry")?,
        spec: Some(DeploymentSpec {
            replicas: Some(reg.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            },
            strategy: Some(strategy),
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
                    // SIGTERM, shutdown_delay_seconds out of the Service,
                    // shutdown_timeout_seconds for open requests, exit.
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
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
