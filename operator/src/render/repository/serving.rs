//! Whether a Repository is usable: its rules are in the policy file of its
//! Registry's ConfigMap, and every ready registry pod has loaded that file
//! (each reports the SHA-256 of the policy it loaded, `berth_config::ops`).
//! The kubelet updates a pod's ConfigMap volume when it syncs the pod (the
//! Registry reconciler nudges it by annotating the pod), and the registry
//! reloads the file within seconds.

use std::path::Path;

use berth_config::PolicyFile;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::render::{METRICS_PORT, ProbeTarget, sha256_hex};

/// How far a Repository's rules have got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// Every ready registry pod serves a policy holding them.
    Served { pods: usize },
    /// The Registry's ConfigMap does not hold them yet.
    NotRendered,
    /// No registry pod is ready.
    NoPods,
    /// Some ready pods still serve an older policy.
    Loading { serving: usize, pods: usize },
}

/// The pod annotation the Registry reconciler sets to the SHA-256 of the
/// policy file: a change makes the kubelet sync the pod, which updates its
/// ConfigMap volume at once (instead of at its next periodic sync, up to a
/// minute or more later).
pub const POLICY_HASH_ANNOTATION: &str = "berth.dev/policy-sha256";

/// Whether `file` holds everything `mine` (one Repository's part of the
/// policy, [`crate::render::policy_file`] of it alone) does.
pub fn policy_contains(file: &PolicyFile, mine: &PolicyFile) -> bool {
    (!mine.anonymous_pull || file.anonymous_pull)
        && mine.robots.iter().all(|r| file.robots.contains(r))
        && mine.rules.iter().all(|r| file.rules.contains(r))
        && mine
            .repositories
            .iter()
            .all(|r| file.repositories.contains(r))
}

/// A fingerprint of one Repository's part of the policy, kept in its
/// status once every pod served it: while it is the same, pods need not be
/// asked again (a pod that starts later loads the current file).
pub fn rules_hash(mine: &PolicyFile) -> String {
    sha256_hex(serde_json::to_string(mine).unwrap_or_default().as_bytes())
}

/// How far `mine` has got: `policy` is the ConfigMap's policy file (None
/// when there is none yet), `answers` what each ready registry pod said it
/// loaded (None: no answer).
pub fn serving(policy: Option<&str>, mine: &PolicyFile, answers: &[Option<String>]) -> Serving {
    let Some(text) = policy else {
        return Serving::NotRendered;
    };
    match PolicyFile::parse(text, Path::new("policy.yaml")) {
        Ok(file) if policy_contains(&file, mine) => {}
        _ => return Serving::NotRendered,
    }
    if answers.is_empty() {
        return Serving::NoPods;
    }
    let hash = sha256_hex(text.as_bytes());
    let serving = answers
        .iter()
        .filter(|a| a.as_deref() == Some(hash.as_str()))
        .count();
    if serving == answers.len() {
        Serving::Served { pods: serving }
    } else {
        Serving::Loading {
            serving,
            pods: answers.len(),
        }
    }
}

/// The registry pods that serve requests (running, ready, not
/// terminating), with the address of their operations endpoints (the
/// `metrics` port of the `registry` container), sorted by name.
pub fn serving_pods(pods: &[Pod]) -> Vec<ProbeTarget> {
    let mut out: Vec<ProbeTarget> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            if status.phase.as_deref() != Some("Running") {
                return None;
            }
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                return None;
            }
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            let port = p
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .filter(|c| c.name == "registry")
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some("metrics"))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .unwrap_or(METRICS_PORT as u16);
            Some(ProbeTarget {
                pod: p.metadata.name.clone().unwrap_or_default(),
                ip,
                port,
            })
        })
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out
}

/// The registry pods (of `pods`) whose policy annotation is not `hash`:
/// the ones to nudge.
pub fn pods_to_nudge(pods: &[Pod], hash: &str) -> Vec<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.labels()
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("registry")
        })
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(POLICY_HASH_ANNOTATION))
                .map(String::as_str)
                != Some(hash)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}
