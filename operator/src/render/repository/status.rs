//! A Repository's status: its rules are in the Registry's policy file; it
//! is Ready once its objects are applied and every granted ServiceAccount
//! has its pull Secret.

use kube::{Resource, ResourceExt};

use crate::crd::{Condition, Repository, RepositoryStatus};
use crate::render::{condition, degraded_unless_empty, merge_conditions, retention_cronjob_name};

/// Ready, Progressing and Degraded after everything was applied; `notes`
/// say which granted ServiceAccounts do not exist yet.
pub fn repository_conditions(
    repo: &Repository,
    pull_secrets: usize,
    notes: &[String],
) -> Vec<Condition> {
    let ns = repo.namespace().unwrap_or_default();
    let retention = if repo.spec.retention.is_some() {
        format!(
            "; retention CronJob {}",
            retention_cronjob_name(&repo.name_any())
        )
    } else {
        String::new()
    };
    let message = format!(
        "rules are in the policy file of Registry {ns}/{}; {pull_secrets} pull Secret(s){retention}",
        repo.spec.registry,
    );
    let waiting = !notes.is_empty();
    vec![
        condition(
            "Ready",
            !waiting,
            if waiting {
                "ServiceAccountNotFound"
            } else {
                "Configured"
            },
            message,
        ),
        condition(
            "Progressing",
            false,
            "Configured",
            "every object is applied",
        ),
        degraded_unless_empty(notes, "ServiceAccountNotFound"),
    ]
}

/// What a reconcile that applied everything observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryObserved {
    /// `namespace/name`, sorted.
    pub pull_secrets: Vec<String>,
    /// When the retention CronJob last ran (RFC 3339); None keeps the old
    /// value.
    pub last_retention_run: Option<String>,
}

/// The status to write: `conditions` merged into the old ones, the rest
/// from `observed`, or kept from the old status when the reconcile stopped
/// at a problem. Tag count and size are kept (the registry will report them).
pub fn repository_status(
    repo: &Repository,
    conditions: Vec<Condition>,
    observed: Option<RepositoryObserved>,
) -> RepositoryStatus {
    let old = repo.status.clone().unwrap_or_default();
    let generation = repo.meta().generation;
    let conditions = merge_conditions(&old.conditions, conditions, generation);
    let (pull_secrets, last_retention_run) = match observed {
        Some(o) => (
            o.pull_secrets,
            o.last_retention_run.or(old.last_retention_run),
        ),
        None => (old.pull_secrets, old.last_retention_run),
    };
    RepositoryStatus {
        conditions,
        observed_generation: generation,
        tag_count: old.tag_count,
        size_bytes: old.size_bytes,
        last_retention_run,
        pull_secrets,
    }
}
