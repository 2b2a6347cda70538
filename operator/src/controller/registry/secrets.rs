//! The Secrets a Registry reconcile reads or makes: those its spec names
//! (checked before anything is applied), its token signing key (made once),
//! and the robot credentials of its Repositories (hashed into the policy).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::controller::credentials::generate_signing_key;
use crate::controller::events::publish_changes;
use crate::controller::{Context, Error};
use crate::crd::{Registry, Repository};
use crate::render::{
    self, Change, Changed, Problem, needs_robot, registry_problem, required_secrets, robot_hash,
    robot_secret_name, secret_problem, source, token_key_secret_name,
};

/// What the spec refers to and must exist or parse: the schedule, the
/// volume size, the Secrets (the first problem found).
pub(super) async fn check(
    reg: &Registry,
    ctx: &Context,
    ns: &str,
) -> Result<Option<Problem>, Error> {
    if let Some(p) = registry_problem(reg) {
        return Ok(Some(p));
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    for required in required_secrets(reg) {
        let found = secrets.get_opt(&required.name).await?;
        if let Some(p) = secret_problem(ns, &required, found.as_ref()) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Creates the token signing key Secret once; an existing one is never
/// replaced (tokens signed with it stay valid across reconciles).
pub(super) async fn ensure_token_key(reg: &Registry, ctx: &Context, ns: &str) -> Result<(), Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let name = token_key_secret_name(&reg.name_any());
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let pem = generate_signing_key()?;
    let secret = render::token_key_secret(reg, &pem)?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            let created =
                Changed::named::<Secret>(name, Change::Created).detail("(token signing key)");
            publish_changes(ctx, reg, &[created]).await;
            Ok(())
        }
        // Another reconcile (or operator replica) was first: keep its key.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// SHA-256 of each Repository's robot secret, by `namespace/name`.
pub(super) async fn robot_hashes(
    ctx: &Context,
    ns: &str,
    repos: &[Repository],
) -> Result<BTreeMap<String, String>, Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let mut out = BTreeMap::new();
    for repo in repos.iter().filter(|r| needs_robot(r)) {
        let Some(secret) = api.get_opt(&robot_secret_name(&repo.name_any())).await? else {
            continue;
        };
        if let Some(hash) = robot_hash(&secret) {
            out.insert(source(repo), hash);
        }
    }
    Ok(out)
}
