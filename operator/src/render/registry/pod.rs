//! What the registry's pods and its maintenance jobs share: volumes,
//! mounts, environment, security contexts, probes, image; and the
//! maintenance CronJob (`berth gc`, `berth retention`).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, HTTPGetAction,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{CONFIG_DIR, DATA_DIR, HTPASSWD_DIR, RUN_AS, TOKEN_DIR, env, shared_backends};
use crate::crd::Registry;
use crate::render::{config_map_name, data_claim_name, default_image, token_key_secret_name};

pub(super) fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
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
pub(super) fn volumes_and_mounts(reg: &Registry) -> (Vec<Volume>, Vec<VolumeMount>) {
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
    if shared_backends(reg) {
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
    for (v, m) in super::password_volumes(reg) {
        volumes.push(v);
        mounts.push(m);
    }
    (volumes, mounts)
}

pub(super) fn pod_security_context() -> PodSecurityContext {
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

pub(super) fn container_security_context() -> SecurityContext {
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

pub(super) fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
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

pub(super) fn image(reg: &Registry) -> String {
    reg.spec.image.clone().unwrap_or_else(default_image)
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
