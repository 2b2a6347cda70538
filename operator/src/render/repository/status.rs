//! A Repository's status: it is Ready once its objects are applied, every
//! granted ServiceAccount has its pull Secret (in namespaces that accepted
//! the grant) and every ready registry pod serves its rules; with what the
//! registry says its repositories hold.

use kube::{Resource, ResourceExt};

use super::Serving;
use crate::crd::{Condition, Repository, RepositoryStatus};
use crate::render::{
    Problem, condition, degraded_unless_empty, merge_conditions, retention_cronjob_name,
};

/// Ready, Progressing and Degraded after everything was applied. `notes`
/// say what the spec waits for (a granted ServiceAccount that does not
/// exist, a namespace that has not accepted the grant); `serving` how far
/// its rules have got ([`super::serving`]). Ready means usable: the rules
/// are served by every ready registry pod and nothing is waited for.
pub fn repository_conditions(
    repo: &Repository,
    pull_secrets: usize,
    notes: &[Problem],
    serving: &Serving,
) -> Vec<Condition> {
    let ns = repo.namespace().unwrap_or_default();
    let registry = format!("{ns}/{}", repo.spec.registry);
    let retention = if repo.spec.retention.is_some() {
        format!(
            "; retention CronJob {}",
            retention_cronjob_name(&repo.name_any())
        )
    } else {
        String::new()
    };
    let (ready, progressing) = match serving {
        Serving::Served { pods } => (
            condition(
                "Ready",
                true,
                "Configured",
                format!(
                    "served by {pods} registry pod(s) of Registry {registry}; {pull_secrets} pull Secret(s){retention}"
                ),
            ),
            condition(
                "Progressing",
                false,
                "Configured",
                "every object is applied and its rules are served",
            ),
        ),
        Serving::NotRendered => (
            condition(
                "Ready",
                false,
                POLICY_PENDING,
                format!("its rules are not in the policy file of Registry {registry} yet"),
            ),
            condition(
                "Progressing",
                true,
                POLICY_PENDING,
                "waiting for the Registry to render its rules",
            ),
        ),
        Serving::Loading { serving, pods } => (
            condition(
                "Ready",
                false,
                POLICY_PENDING,
                format!(
                    "{serving} of {pods} ready registry pod(s) of Registry {registry} serve its rules; the others load the new policy file within seconds"
                ),
            ),
            condition(
                "Progressing",
                true,
                POLICY_PENDING,
                "waiting for the registry pods to load the policy file",
            ),
        ),
        Serving::NoPods => (
            condition(
                "Ready",
                false,
                "RegistryNotReady",
                format!(
                    "no pod of Registry {registry} is ready to serve its rules; see `kubectl -n {ns} get registry {}`",
                    repo.spec.registry
                ),
            ),
            condition(
                "Progressing",
                true,
                "RegistryNotReady",
                "waiting for a registry pod",
            ),
        ),
    };
    let ready = match notes.first() {
        // What the spec waits for comes first: it will not go away by itself.
        Some(first) => condition(
            "Ready",
            false,
            first.reason,
            notes
                .iter()
                .map(|n| n.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => ready,
    };
    let degraded = match notes.first() {
        Some(first) => condition(
            "Degraded",
            true,
            first.reason,
            notes
                .iter()
                .map(|n| n.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => degraded_unless_empty(&[], "AsExpected"),
    };
    vec![ready, progressing, degraded]
}

/// The reason while a Repository's rules are on their way to the pods.
pub const POLICY_PENDING: &str = "PolicyPending";

/// What a reconcile that applied everything observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryObserved {
    /// `namespace/name`, sorted.
    pub pull_secrets: Vec<String>,
    /// When the retention CronJob last ran (RFC 3339); None keeps the old
    /// value.
    pub last_retention_run: Option<String>,
    /// What the registry reported the repositories hold; None keeps the
    /// old figures (no pod answered).
    pub usage: Option<berth_config::ops::Usage>,
    /// [`super::rules_hash`] of its rules once every ready pod serves them;
    /// None keeps the old one.
    pub served_rules: Option<String>,
}

/// The status to write: `conditions` merged into the old ones, the rest
/// from `observed`, or kept from the old status when the reconcile stopped
/// at a problem.
pub fn repository_status(
    repo: &Repository,
    conditions: Vec<Condition>,
    observed: Option<RepositoryObserved>,
) -> RepositoryStatus {
    let old = repo.status.clone().unwrap_or_default();
    let generation = repo.meta().generation;
    let conditions = merge_conditions(&old.conditions, conditions, generation);
    let Some(o) = observed else {
        return RepositoryStatus {
            conditions,
            observed_generation: generation,
            ..old
        };
    };
    let figure = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    RepositoryStatus {
        conditions,
        observed_generation: generation,
        tag_count: o.usage.as_ref().map(|u| figure(u.tags)).or(old.tag_count),
        size_bytes: o.usage.as_ref().map(|u| figure(u.bytes)).or(old.size_bytes),
        last_retention_run: o.last_retention_run.or(old.last_retention_run),
        pull_secrets: o.pull_secrets,
        served_rules: o.served_rules.or(old.served_rules),
    }
}
