//! Consent for cross-namespace grants: a Repository in namespace A that
//! grants a ServiceAccount of namespace B makes the operator write a pull
//! Secret into B and edit the account, so B must opt in. B says which
//! namespaces it accepts grants from in an annotation on itself (set by
//! whoever may edit Namespaces: usually the cluster's administrators):
//!
//! ```text
//! kubectl annotate namespace B berth.dev/accept-grants-from=A     # or A,C  or  *
//! ```
//!
//! Grants within a Repository's own namespace need no consent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use crate::crd::{Repository, ServiceAccountRef};
use crate::render::{Problem, granted_service_accounts};

/// The annotation of a namespace listing the namespaces whose Repositories
/// may grant its ServiceAccounts (comma-separated; `*` for any).
pub const ACCEPT_GRANTS_ANNOTATION: &str = "berth.dev/accept-grants-from";

/// The reason of a grant into a namespace that has not consented.
pub const GRANT_NOT_ACCEPTED: &str = "GrantNotAccepted";

/// Whether `target` accepts grants from Repositories in namespace `from`.
pub fn accepts_grants_from(target: &Namespace, from: &str) -> bool {
    target
        .annotations()
        .get(ACCEPT_GRANTS_ANNOTATION)
        .is_some_and(|v| v.split(',').map(str::trim).any(|n| n == from || n == "*"))
}

/// The namespaces other than its own a Repository grants into (where it
/// needs consent), sorted.
pub fn foreign_namespaces(repo: &Repository) -> Vec<String> {
    let own = repo.namespace().unwrap_or_default();
    let mut out: Vec<String> = granted_service_accounts(repo)
        .into_iter()
        .filter_map(|sa| sa.namespace)
        .filter(|ns| *ns != own)
        .collect();
    out.dedup();
    out
}

/// The granted ServiceAccounts whose namespace consents (its own always
/// does), and a note for each namespace that does not. `namespaces` holds
/// what was found of each [`foreign_namespaces`] entry (None: it does not
/// exist).
pub fn consented_grants(
    repo: &Repository,
    namespaces: &BTreeMap<String, Option<Namespace>>,
) -> (Vec<ServiceAccountRef>, Vec<Problem>) {
    let own = repo.namespace().unwrap_or_default();
    let mut refused: BTreeMap<String, Problem> = BTreeMap::new();
    let accepted = granted_service_accounts(repo)
        .into_iter()
        .filter(|sa| {
            let ns = sa.namespace.clone().unwrap_or_else(|| own.clone());
            if ns == own {
                return true;
            }
            let ok = match namespaces.get(&ns) {
                Some(Some(target)) => accepts_grants_from(target, &own),
                _ => false,
            };
            if !ok {
                refused
                    .entry(ns.clone())
                    .or_insert_with(|| grant_not_accepted(&own, &ns, namespaces.get(&ns)));
            }
            ok
        })
        .collect();
    (accepted, refused.into_values().collect())
}

fn grant_not_accepted(from: &str, target: &str, found: Option<&Option<Namespace>>) -> Problem {
    let message = match found {
        Some(Some(_)) => format!(
            "namespace {target} has not accepted grants from namespace {from}: no pull Secret is written there and its ServiceAccounts are left alone until it does: `kubectl annotate namespace {target} {ACCEPT_GRANTS_ANNOTATION}={from}` (a comma-separated list of namespaces, or *)"
        ),
        _ => format!(
            "namespace {target} does not exist; once it does, it must accept grants from namespace {from} (annotation {ACCEPT_GRANTS_ANNOTATION}={from})"
        ),
    };
    Problem::new(GRANT_NOT_ACCEPTED, message)
}
