//! Asks a Registry's unready pods why: `GET /readyz` on each pod's address,
//! all at once. What the answers mean is decided in [`crate::render`]
//! (`probe_targets`, `readiness_of`, `dependency_outage`).

use k8s_openapi::api::core::v1::Pod;

use crate::controller::pods;
use crate::crd::Registry;
use crate::render::{
    Outage, PodReadiness, ProbeTarget, dependency_outage, probe_targets, readiness_of,
};

/// The dependency the Registry's unready pods (of `pods`) cannot reach, if any.
pub(super) async fn outage(reg: &Registry, pods: &[Pod]) -> Option<Outage> {
    let targets = probe_targets(pods);
    let answers = futures::future::join_all(targets.iter().map(|t| async move {
        let readiness = probe(t).await;
        tracing::debug!(pod = %t.pod, url = %t.url(), ?readiness, "asked /readyz");
        (t.pod.clone(), readiness)
    }))
    .await;
    dependency_outage(reg, &answers)
}

/// What the pod's `/readyz` says; `Unknown` when it does not answer in time.
async fn probe(target: &ProbeTarget) -> PodReadiness {
    match pods::get(target, "/readyz").await {
        Ok((status, body)) => readiness_of(status, &body),
        Err(e) => PodReadiness::Unknown(format!("no answer: {e}")),
    }
}
