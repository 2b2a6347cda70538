//! The registry's workloads: its data claim, Deployment, disruption budget
//! and gc CronJob.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
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
use super::{CONFIG_DIR, CONFIG_HASH_ANNOTATION, CONTAINER_PORT, METRICS_PORT, env, registry_meta};
use crate::crd::Registry;
use crate::render::{
    RenderError, data_claim_name, gc_cronjob_name, labels, selector_labels, workload_name,
};

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
        metadata: registry_meta(reg, workload_name(&name), "registry")?,
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
