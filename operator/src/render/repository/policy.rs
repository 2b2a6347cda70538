//! The policy file a Registry serves, folded from its Repositories (the
//! registry's own type from berth-config): rules, robots and per-repository
//! settings.

use std::collections::BTreeMap;

use berth_config::{Action, PolicyFile, RepositorySettings, RetentionRules, Robot, Rule};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::source;
use crate::crd::{Registry, RepoAction, Repository, RetentionSpec, Visibility};
use crate::render::{RenderError, quota_bytes, robot_user, sha256_hex};

/// Whether a Repository needs a robot credential: it grants ServiceAccounts.
pub fn needs_robot(repo: &Repository) -> bool {
    repo.spec
        .access
        .iter()
        .any(|g| !g.service_accounts.is_empty())
}

/// The SHA-256 the policy file holds for a robot, from its Secret; None
/// while the Secret has no password.
pub fn robot_hash(secret: &Secret) -> Option<String> {
    let password = secret.data.as_ref()?.get("password")?;
    Some(sha256_hex(&password.0))
}

/// The retention rules of the policy file from a Repository's spec (its
/// schedule goes to the CronJob).
pub fn retention_rules(r: &RetentionSpec) -> RetentionRules {
    RetentionRules {
        keep_last: r.keep_last,
        max_age: r.max_age.clone(),
        only_tags: r.only_tags.clone(),
        protect_tags: r.protect_tags.clone(),
        delete_untagged: r.delete_untagged,
    }
}

/// The policy file's action for a granted action.
pub fn action(a: RepoAction) -> Action {
    match a {
        RepoAction::Pull => Action::Pull,
        RepoAction::Push => Action::Push,
        RepoAction::Delete => Action::Delete,
    }
}

/// The policy file of a Registry from its Repositories. `robots` maps a
/// Repository's `namespace/name` to the SHA-256 of its robot secret; a
/// Repository with ServiceAccount grants but no robot yet gets no robot rule
/// until its controller has made one. A Repository whose quota is not a
/// quantity of bytes the registry can hold (a u64) is left out (its own
/// status says why).
pub fn policy_file(
    reg: &Registry,
    repos: &[Repository],
    robots: &BTreeMap<String, String>,
) -> PolicyFile {
    let mut repos: Vec<&Repository> = repos
        .iter()
        .filter(|r| r.spec.registry == reg.name_any() && r.namespace() == reg.namespace())
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    repos.sort_by_key(|r| (r.spec.name.clone(), r.name_any()));
    let mut file = PolicyFile {
        anonymous_pull: reg.spec.auth.anonymous_pull,
        // Groups are not part of the Registry spec yet.
        groups: BTreeMap::new(),
        robots: Vec::new(),
        rules: Vec::new(),
        repositories: Vec::new(),
    };
    // What nodes pull through the mirrors, unless a mirror's upstream is
    // private (MirrorSpec::anonymous_pull).
    let mirrored = crate::render::anonymous_mirror_repositories(reg);
    if !mirrored.is_empty() {
        file.rules.push(Rule {
            source: Some(format!("Registry {} spec.mirrors", reg.name_any())),
            repositories: mirrored,
            subjects: vec!["anonymous".into()],
            actions: vec![Action::Pull],
        });
    }
    for repo in repos {
        let src = source(repo);
        let quota_bytes = match repo.spec.quota.as_deref().map(quota_bytes) {
            Some(Err(_)) => continue,
            Some(Ok(b)) => Some(b),
            None => None,
        };
        if repo.spec.visibility == Visibility::Public {
            file.rules.push(Rule {
                source: Some(src.clone()),
                repositories: vec![repo.spec.name.clone()],
                subjects: vec!["anonymous".into()],
                actions: vec![Action::Pull],
            });
        }
        let robot_name = robot_user(&repo.namespace().unwrap_or_default(), &repo.name_any());
        let robot = robots.get(&src);
        if let Some(hash) = robot {
            file.robots.push(Robot {
                name: robot_name.clone(),
                password_sha256: hash.clone(),
            });
        }
        for grant in &repo.spec.access {
            let mut subjects: Vec<String> = grant
                .users
                .iter()
                .map(|u| format!("user:{u}"))
                .chain(grant.groups.iter().map(|g| format!("group:{g}")))
                .collect();
            if !grant.service_accounts.is_empty() && robot.is_some() {
                subjects.push(format!("robot:{robot_name}"));
            }
            if subjects.is_empty() {
                continue;
            }
            let mut actions: Vec<Action> = grant.actions.iter().copied().map(action).collect();
            actions.sort();
            actions.dedup();
            file.rules.push(Rule {
                source: Some(src.clone()),
                repositories: vec![repo.spec.name.clone()],
                subjects,
                actions,
            });
        }
        file.repositories.push(RepositorySettings {
            name: repo.spec.name.clone(),
            source: Some(src),
            quota_bytes,
            immutable_tags: repo.spec.immutable_tags.clone(),
            retention: repo.spec.retention.as_ref().map(retention_rules),
        });
    }
    file
}

pub fn policy_yaml(file: &PolicyFile, reg: &Registry) -> Result<String, RenderError> {
    let body = serde_yaml::to_string(file).map_err(|source| RenderError::Serialise {
        what: "policy file",
        source,
    })?;
    Ok(format!(
        "# Rendered by berth-operator from the Repositories of Registry {}/{}; edits are overwritten.\n{body}",
        reg.namespace().unwrap_or_default(),
        reg.name_any()
    ))
}
