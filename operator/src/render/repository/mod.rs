//! A Repository's desired objects, and the policy file its Registry serves.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use berth_config::{Action, PolicyFile, RepositorySettings, RetentionRules, Robot, Rule};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::{
    RenderError, labels, maintenance_cronjob, meta, owner_ref, pull_secret_name, quota_bytes,
    retention_cronjob_name, robot_secret_name, robot_user,
};
use crate::crd::{Registry, RepoAction, Repository, RetentionSpec, ServiceAccountRef, Visibility};

/// Label on cross-namespace pull Secrets naming their Repository
/// (`<namespace>.<name>`): owner references cannot cross namespaces, so
/// cleanup finds them by this label.
pub const REPOSITORY_LABEL: &str = "berth.dev/repository";

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

/// `namespace/name` of a Repository.
pub fn source(repo: &Repository) -> String {
    format!(
        "{}/{}",
        repo.namespace().unwrap_or_default(),
        repo.name_any()
    )
}

/// The value of [`REPOSITORY_LABEL`] for a Repository (label values are at
/// most 63 characters).
pub fn repository_label_value(repo: &Repository) -> String {
    super::bounded(
        &format!(
            "{}.{}",
            repo.namespace().unwrap_or_default(),
            repo.name_any()
        ),
        63,
    )
}

/// The ServiceAccounts a Repository grants, with namespaces filled in.
pub fn granted_service_accounts(repo: &Repository) -> Vec<ServiceAccountRef> {
    let ns = repo.namespace().unwrap_or_default();
    let mut out: Vec<ServiceAccountRef> = repo
        .spec
        .access
        .iter()
        .flat_map(|g| g.service_accounts.iter())
        .map(|sa| ServiceAccountRef {
            namespace: Some(sa.namespace.clone().unwrap_or_else(|| ns.clone())),
            name: sa.name.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
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

/// The retention CronJob of a Repository (in its namespace, owned by it),
/// None without retention rules. It runs `berth retention` with the
/// Registry's image, config and data.
pub fn retention_cronjob(
    reg: &Registry,
    repo: &Repository,
) -> Result<Option<CronJob>, RenderError> {
    let Some(ret) = &repo.spec.retention else {
        return Ok(None);
    };
    let metadata = meta(
        retention_cronjob_name(&repo.name_any()),
        repo.namespace(),
        labels(&reg.name_any(), "retention"),
        Some(owner_ref(repo)?),
    );
    let mut args = vec![
        "retention".to_string(),
        "--config".into(),
        format!("{}/config.yaml", super::CONFIG_DIR),
        "--repository".into(),
        repo.spec.name.clone(),
    ];
    if let Some(n) = ret.keep_last {
        args.extend(["--keep-last".into(), n.to_string()]);
    }
    if let Some(age) = &ret.max_age {
        args.extend(["--max-age".into(), age.clone()]);
    }
    for p in &ret.only_tags {
        args.extend(["--only-tags".into(), p.clone()]);
    }
    for p in &ret.protect_tags {
        args.extend(["--protect-tags".into(), p.clone()]);
    }
    if ret.delete_untagged {
        args.push("--delete-untagged".into());
    }
    Ok(Some(maintenance_cronjob(
        reg,
        metadata,
        &ret.schedule,
        false,
        args,
    )))
}

/// The Secret holding a Repository's robot credential, in its namespace.
pub fn robot_secret(repo: &Repository, password: &str) -> Result<Secret, RenderError> {
    let user = robot_user(&repo.namespace().unwrap_or_default(), &repo.name_any());
    Ok(Secret {
        metadata: meta(
            robot_secret_name(&repo.name_any()),
            repo.namespace(),
            labels(&repo.spec.registry, "robot"),
            Some(owner_ref(repo)?),
        ),
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(BTreeMap::from([
            ("username".into(), ByteString(user.into_bytes())),
            ("password".into(), ByteString(password.as_bytes().to_vec())),
        ])),
        ..Default::default()
    })
}

/// The `.dockerconfigjson` body for one registry endpoint.
pub fn docker_config_json(endpoint: &str, user: &str, password: &str) -> String {
    let auth = B64.encode(format!("{user}:{password}"));
    serde_json::json!({
        "auths": {
            endpoint: {"username": user, "password": password, "auth": auth}
        }
    })
    .to_string()
}

/// The pull Secret a grant puts in a ServiceAccount's namespace. It has no
/// owner reference (it may live in another namespace): the Repository's
/// finalizer removes it, found by [`REPOSITORY_LABEL`].
pub fn pull_secret(
    repo: &Repository,
    namespace: &str,
    endpoint: &str,
    user: &str,
    password: &str,
) -> Secret {
    let repo_ns = repo.namespace().unwrap_or_default();
    let mut l = labels(&repo.spec.registry, "pull-secret");
    l.insert(REPOSITORY_LABEL.into(), repository_label_value(repo));
    Secret {
        metadata: meta(
            pull_secret_name(&repo_ns, &repo.name_any()),
            Some(namespace.into()),
            l,
            None,
        ),
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".into(),
            ByteString(docker_config_json(endpoint, user, password).into_bytes()),
        )])),
        ..Default::default()
    }
}
