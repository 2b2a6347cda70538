//! Why a Registry's pods do not serve, from what Kubernetes says of them:
//! an image the node cannot pull, a container that keeps exiting, a claim
//! nothing binds. Each gets its own reason and a message naming the fix
//! (the cause is otherwise only in the pods' events).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;

use super::Outage;
use crate::crd::Registry;

pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
pub const PODS_CRASHING: &str = "PodsCrashing";
pub const CLAIM_PENDING: &str = "ClaimPending";
pub const PODS_UNSCHEDULABLE: &str = "PodsUnschedulable";

/// Waiting reasons of a container whose image the node cannot get.
const PULL_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// The longest excerpt of a pod's own message kept in a condition.
const MAX_EXCERPT: usize = 300;

/// What keeps the pods (`pods`: the Registry's, of the registry and of the
/// node endpoint) from serving, as far as their status and the data claim
/// tell: an image that cannot be pulled first, then a container that keeps
/// exiting, then a pod the scheduler cannot place: because of the claim
/// (it is Pending and the scheduler says so: a claim that binds when its
/// pod is scheduled is not blamed while it waits), or for another reason.
pub fn pod_trouble(
    reg: &Registry,
    pods: &[Pod],
    claim: Option<&PersistentVolumeClaim>,
) -> Option<Outage> {
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by_key(|p| p.name_any());
    let waiting = |p: &&Pod| -> Vec<(String, String, String, Option<String>)> {
        p.status
            .iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .filter_map(|c| {
                let w = c.state.as_ref()?.waiting.as_ref()?;
                let last = c
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(|t| {
                        t.message
                            .clone()
                            .filter(|m| !m.trim().is_empty())
                            .unwrap_or_else(|| {
                                format!(
                                    "exit code {}{}",
                                    t.exit_code,
                                    t.reason
                                        .as_deref()
                                        .map(|r| format!(" ({r})"))
                                        .unwrap_or_default()
                                )
                            })
                    });
                Some((
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default(),
                    c.image.clone(),
                    last,
                ))
            })
            .collect()
    };
    for p in &pods {
        if let Some((_, message, image, _)) = waiting(p)
            .into_iter()
            .find(|(reason, ..)| PULL_REASONS.contains(&reason.as_str()))
        {
            return Some(Outage {
                reason: IMAGE_PULL_FAILED,
                message: format!(
                    "pod {} cannot pull image {image}: {}; set spec.image to an image its nodes can pull (without it the Registry runs the operator's own image, set by its --registry-image)",
                    p.name_any(),
                    excerpt(&message)
                ),
            });
        }
    }
    for p in &pods {
        if let Some((_, _, _, last)) = waiting(p)
            .into_iter()
            .find(|(reason, ..)| reason == "CrashLoopBackOff")
        {
            let restarts: i32 = p
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .map(|c| c.restart_count)
                .sum();
            return Some(Outage {
                reason: PODS_CRASHING,
                message: format!(
                    "pod {} keeps exiting (restarted {restarts} times); it said: {}",
                    p.name_any(),
                    excerpt(last.as_deref().unwrap_or("nothing"))
                ),
            });
        }
    }
    let unschedulable = pods.iter().find_map(|p| {
        let c = p
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        Some((p.name_any(), c.message.clone().unwrap_or_default()))
    });
    let (pod, said) = unschedulable?;
    let about_claims = {
        let m = said.to_ascii_lowercase();
        m.contains("persistentvolumeclaim") || m.contains("persistent volume")
    };
    let pending =
        claim.filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"));
    if let (Some(claim), true) = (pending, about_claims) {
        let ns = reg.namespace().unwrap_or_default();
        let class = match claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
        {
            Some("") => "storageClassName \"\": only a PersistentVolume without a class binds it"
                .to_string(),
            Some(c) => format!("StorageClass {c}"),
            None => "no storageClassName: the cluster's default StorageClass, if it has one".into(),
        };
        return Some(Outage {
            reason: CLAIM_PENDING,
            message: format!(
                "PersistentVolumeClaim {ns}/{} is Pending: no PersistentVolume is bound to it ({class}); create a PersistentVolume that matches it, set spec.storage.volume.storageClassName to a class with a provisioner, or keep nothing on a volume (spec.storage.s3 with spec.database.postgres). The scheduler says: {}",
                claim.name_any(),
                excerpt(&said)
            ),
        });
    }
    Some(Outage {
        reason: PODS_UNSCHEDULABLE,
        message: format!("pod {pod} cannot be scheduled: {}", excerpt(&said)),
    })
}

/// The first [`MAX_EXCERPT`] characters, on one line.
fn excerpt(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_EXCERPT) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
