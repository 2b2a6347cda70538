//! A Repository's desired objects (retention CronJob, robot credential,
//! pull Secrets), what its spec needs, its status, and the policy file its
//! Registry serves.

mod checks;
mod consent;
mod policy;
mod service_accounts;
mod serving;
mod status;

pub use checks::*;
pub use consent::*;
pub use policy::*;
pub use service_accounts::*;
pub use serving::*;
pub use status::*;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::{Registry, Repository, ServiceAccountRef};
use crate::render::{
    CONFIG_DIR, RenderError, bounded, labels, maintenance_cronjob, meta, owner_ref,
    pull_secret_name, retention_cronjob_name, robot_secret_name, robot_user,
};

/// Label on cross-namespace pull Secrets naming their Repository
/// (`<namespace>.<name>`): owner references cannot cross namespaces, so
/// cleanup finds them by this label.
pub const REPOSITORY_LABEL: &str = "berth.dev/repository";

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
    bounded(
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
        format!("{CONFIG_DIR}/config.yaml"),
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

/// The `.dockerconfigjson` body: the same credential for each address.
pub fn docker_config_json(addresses: &[String], user: &str, password: &str) -> String {
    let auth = B64.encode(format!("{user}:{password}"));
    let auths: serde_json::Map<String, serde_json::Value> = addresses
        .iter()
        .map(|a| {
            (
                a.clone(),
                serde_json::json!({"username": user, "password": password, "auth": auth}),
            )
        })
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}

/// The pull Secret a grant puts in a ServiceAccount's namespace. It has no
/// owner reference (it may live in another namespace): the Repository's
/// finalizer removes it, found by [`REPOSITORY_LABEL`].
pub fn pull_secret(
    repo: &Repository,
    namespace: &str,
    addresses: &[String],
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
            ByteString(docker_config_json(addresses, user, password).into_bytes()),
        )])),
        ..Default::default()
    }
}

/// The registry addresses a pull Secret has the credential for: the
/// endpoint the Registry's status reports (what Pods put in image
/// references: the node endpoint `localhost:<port>`, else the Ingress host,
/// else the Service's cluster IP), else what it will report, and the
/// Ingress host too when there is one.
pub fn pull_addresses(reg: &Registry) -> Vec<String> {
    let mut addresses = vec![
        reg.status
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .unwrap_or_else(|| crate::render::endpoint(reg, None)),
    ];
    if let Some(a) = crate::render::node_endpoint_address(reg) {
        addresses.push(a);
    }
    if let Some(ing) = &reg.spec.ingress {
        addresses.push(ing.host.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    addresses.retain(|a| seen.insert(a.clone()));
    addresses
}
