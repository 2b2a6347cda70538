//! What a Repository's spec needs to work: a valid retention schedule, a
//! quota the registry can hold, and its Registry.

use crate::crd::Repository;
use crate::render::{Problem, quota_bytes, schedule};

/// What is wrong with the spec by itself, if anything.
pub fn repository_problem(repo: &Repository) -> Option<Problem> {
    if let Some(r) = &repo.spec.retention
        && let Err(e) = schedule::validate(&r.schedule)
    {
        return Some(Problem::new(
            "InvalidSchedule",
            format!("spec.retention.schedule {:?}: {e}", r.schedule),
        ));
    }
    if let Some(q) = &repo.spec.quota
        && let Err(e) = quota_bytes(q)
    {
        return Some(Problem::new("InvalidQuota", format!("spec.quota: {e}")));
    }
    None
}

/// The Registry the spec names does not exist in namespace `ns`.
pub fn registry_missing(repo: &Repository, ns: &str) -> Problem {
    Problem::new(
        "RegistryNotFound",
        format!(
            "spec.registry: there is no Registry {ns}/{}; create it or fix the name",
            repo.spec.registry
        ),
    )
}
