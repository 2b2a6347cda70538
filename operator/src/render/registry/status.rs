//! A Registry's status: Ready and Progressing from its Deployment's rollout,
//! Degraded from a dependency its pods cannot reach, or from what could not
//! be applied as the spec says.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Resource, ResourceExt};

use super::{NodeRollout, Outage, node_endpoint_address, node_endpoint_name};
use crate::crd::{Condition, Registry, RegistryStatus};
use crate::render::{condition, degraded_unless_empty, merge_conditions, workload_name};

/// What the registry's Deployment reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    pub ready: i32,
    pub updated: i32,
    /// The Deployment controller has seen its latest spec.
    pub observed: bool,
}

impl Rollout {
    /// From the Deployment; nothing ready when there is none yet.
    pub fn of(deployment: Option<&Deployment>) -> Rollout {
        let Some(d) = deployment else {
            return Rollout::default();
        };
        let s = d.status.clone().unwrap_or_default();
        Rollout {
            ready: s.ready_replicas.unwrap_or(0),
            updated: s.updated_replicas.unwrap_or(0),
            observed: s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0),
        }
    }

    /// Every wanted pod runs the current spec and is ready.
    pub fn complete(&self, want: i32) -> bool {
        self.observed && self.updated >= want && self.ready >= want
    }
}

/// Ready, Progressing and Degraded after everything was applied: from the
/// rollout of the pods and of the node endpoint (None when it is off), the
/// endpoint pods pull from, the config hash the pods should run, the notes
/// of what was kept against the spec, and what keeps the pods from serving,
/// if known ([`super::dependency_outage`], [`super::pod_trouble`]).
pub fn registry_conditions(
    reg: &Registry,
    rollout: Rollout,
    node: Option<NodeRollout>,
    endpoint: &str,
    config_hash: &str,
    notes: &[String],
    outage: Option<&Outage>,
) -> Vec<Condition> {
    let ns = reg.namespace().unwrap_or_default();
    let deployment = workload_name(&reg.name_any());
    let hash = config_hash.get(..12).unwrap_or(config_hash);
    let want = reg.spec.replicas;
    let Rollout { ready, updated, .. } = rollout;
    let node_done = node.is_none_or(|n| n.complete());
    let (ready_c, progressing_c) = if want == 0 {
        (
            condition(
                "Ready",
                true,
                "ScaledToZero",
                "spec.replicas is 0: no registry pods run",
            ),
            condition(
                "Progressing",
                false,
                "RolloutComplete",
                "nothing to roll out",
            ),
        )
    } else if rollout.complete(want) && node_done {
        let everywhere = if node_endpoint_address(reg).as_deref() == Some(endpoint) {
            " (on every node)"
        } else {
            ""
        };
        (
            condition(
                "Ready",
                true,
                "Available",
                format!(
                    "{ready} of {want} registry pods are ready; pull from {endpoint}{everywhere}"
                ),
            ),
            condition(
                "Progressing",
                false,
                "RolloutComplete",
                format!("Deployment {ns}/{deployment} runs config {hash}"),
            ),
        )
    } else if let Some(outage) = outage {
        (
            condition(
                "Ready",
                false,
                outage.reason,
                format!(
                    "{ready} of {want} registry pods are ready: {}",
                    outage.message
                ),
            ),
            condition(
                "Progressing",
                true,
                "RollingOut",
                format!("{updated} of {want} pods run the current config {hash}"),
            ),
        )
    } else if let (true, Some(n)) = (rollout.complete(want), node) {
        let daemonset = node_endpoint_name(&reg.name_any());
        (
            condition(
                "Ready",
                false,
                "NodeEndpointNotReady",
                format!(
                    "{} of {} nodes serve {} (DaemonSet {ns}/{daemonset}; its pods need a namespace that allows hostNetwork); see `kubectl -n {ns} describe daemonset {daemonset}`",
                    n.ready,
                    n.desired,
                    node_endpoint_address(reg).unwrap_or_default()
                ),
            ),
            condition(
                "Progressing",
                true,
                "RollingOut",
                format!(
                    "{} of {} nodes run the current node endpoint",
                    n.updated, n.desired
                ),
            ),
        )
    } else {
        (
            condition(
                "Ready",
                false,
                "PodsNotReady",
                format!(
                    "{ready} of {want} registry pods are ready (Deployment {ns}/{deployment}); see `kubectl -n {ns} describe deployment {deployment}`"
                ),
            ),
            condition(
                "Progressing",
                true,
                "RollingOut",
                format!("{updated} of {want} pods run the current config {hash}"),
            ),
        )
    };
    let degraded_c = match outage {
        // What keeps the pods from serving first; what was kept against the spec after.
        Some(outage) => {
            let message = std::iter::once(outage.message.as_str())
                .chain(notes.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("; ");
            condition("Degraded", true, outage.reason, message)
        }
        None => degraded_unless_empty(notes, "PartiallyApplied"),
    };
    vec![ready_c, progressing_c, degraded_c]
}

/// Whether the Registry needs no look before the periodic resync: rolled
/// out (pods and node endpoint), with nothing kept against the spec and
/// nothing keeping the pods from serving.
pub fn registry_settled(
    reg: &Registry,
    rollout: Rollout,
    node: Option<NodeRollout>,
    notes: &[String],
    outage: Option<&Outage>,
) -> bool {
    rollout.complete(reg.spec.replicas)
        && node.is_none_or(|n| n.complete())
        && notes.is_empty()
        && outage.is_none()
}

/// Whether `outage` is new: the conditions do not report its reason yet
/// (so a Warning Event is due; not again while it lasts, whichever pods
/// say so).
pub fn outage_is_new(outage: &Outage, conditions: &[Condition]) -> bool {
    !conditions
        .iter()
        .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == outage.reason)
}

/// What a reconcile that applied everything observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryObserved {
    pub ready_replicas: i32,
    pub endpoint: String,
    pub config_hash: String,
}

/// The status to write: `conditions` merged into the old ones, the rest
/// from `observed`, or kept from the old status when the reconcile stopped
/// at a problem.
pub fn registry_status(
    reg: &Registry,
    conditions: Vec<Condition>,
    observed: Option<RegistryObserved>,
) -> RegistryStatus {
    let old = reg.status.clone().unwrap_or_default();
    let generation = reg.meta().generation;
    let conditions = merge_conditions(&old.conditions, conditions, generation);
    match observed {
        Some(o) => RegistryStatus {
            conditions,
            observed_generation: generation,
            ready_replicas: o.ready_replicas,
            endpoint: Some(o.endpoint),
            config_hash: Some(o.config_hash),
        },
        None => RegistryStatus {
            conditions,
            observed_generation: generation,
            ..old
        },
    }
}
