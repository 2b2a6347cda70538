//! A Repository's robot credential and the pull Secrets of its granted
//! ServiceAccounts (in their namespaces, found again by label), with their
//! `imagePullSecrets` entries; the finalizer's cleanup.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};

use crate::controller::api::{apply, delete_owned};
use crate::controller::credentials::random_secret;
use crate::controller::events::publish;
use crate::controller::{Context, Error};
use crate::crd::{Registry, Repository, ServiceAccountRef};
use crate::render::{
    Change, Changed, Problem, REPOSITORY_LABEL, add_image_pull_secret, needs_robot, pull_addresses,
    pull_secret, remove_image_pull_secret, repository_label_value, robot_secret, robot_secret_name,
    robot_user, service_account_missing,
};

/// Tries of a read-edit-replace of a ServiceAccount that someone else
/// changes in between.
const REPLACE_TRIES: usize = 5;

/// What [`apply_secrets`] made.
pub(super) struct Applied {
    /// The pull Secrets, `namespace/name`, sorted.
    pub pull_secrets: Vec<String>,
    /// The robot's password, when the Repository grants ServiceAccounts.
    pub robot_password: Option<String>,
}

/// The robot credential (when the Repository grants ServiceAccounts) and a
/// pull Secret per granted ServiceAccount whose namespace accepted the grant
/// (`grants`); removes the pull Secrets of grants that went away (or lost
/// their namespace's consent).
pub(super) async fn apply_secrets(
    repo: &Repository,
    reg: &Registry,
    grants: &[ServiceAccountRef],
    ctx: &Context,
    ns: &str,
    changes: &mut Vec<Changed>,
    notes: &mut Vec<Problem>,
) -> Result<Applied, Error> {
    let mut pull_secrets = Vec::new();
    let mut robot_password = None;
    if !needs_robot(repo) {
        let secrets = Api::<Secret>::namespaced(ctx.client.clone(), ns);
        let name = robot_secret_name(&repo.name_any());
        if delete_owned(&secrets, &name, &repo.uid().unwrap_or_default()).await? {
            changes.push(Changed::named::<Secret>(name, Change::Deleted));
        }
    } else {
        let password = ensure_robot(repo, ctx, ns, changes).await?;
        let addresses = pull_addresses(reg);
        let user = robot_user(ns, &repo.name_any());
        for sa in grants {
            let sa_ns = sa.namespace.clone().unwrap_or_else(|| ns.to_string());
            let secret = pull_secret(repo, &sa_ns, &addresses, &user, &password);
            let secret_name = secret.name_any();
            let (_, c) = apply(&Api::namespaced(ctx.client.clone(), &sa_ns), &secret).await?;
            changes.push(Changed::of(&secret, c).in_namespace(&sa_ns));
            pull_secrets.push(format!("{sa_ns}/{secret_name}"));
            match add_to_service_account(&ctx.client, &sa_ns, &sa.name, &secret_name).await? {
                Some(true) => changes.push(
                    Changed::named::<ServiceAccount>(&sa.name, Change::Updated)
                        .in_namespace(&sa_ns)
                        .detail("imagePullSecrets"),
                ),
                Some(false) => {}
                None => notes.push(service_account_missing(&sa_ns, &sa.name, &secret_name)),
            }
        }
        robot_password = Some(password);
    }
    pull_secrets.sort();
    pull_secrets.dedup();
    // Pull Secrets of grants that went away.
    let keep: BTreeSet<String> = pull_secrets.iter().cloned().collect();
    for (namespace, name) in remove_pull_secrets(repo, ctx, &keep).await? {
        changes.push(Changed::named::<Secret>(name, Change::Deleted).in_namespace(namespace));
    }
    Ok(Applied {
        pull_secrets,
        robot_password,
    })
}

/// The robot's password: from its Secret, or a new random one in a new
/// Secret (created once, never rotated by a reconcile).
async fn ensure_robot(
    repo: &Repository,
    ctx: &Context,
    ns: &str,
    changes: &mut Vec<Changed>,
) -> Result<String, Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let name = robot_secret_name(&repo.name_any());
    if let Some(s) = api.get_opt(&name).await?
        && let Some(pw) = s.data.as_ref().and_then(|d| d.get("password"))
    {
        return Ok(String::from_utf8_lossy(&pw.0).into_owned());
    }
    let password = random_secret()?;
    let secret = robot_secret(repo, &password)?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            changes
                .push(Changed::named::<Secret>(name, Change::Created).detail("(robot credential)"));
            Ok(password)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Created concurrently (or it existed without a password: replace).
            let existing = api.get(&name).await?;
            match existing.data.as_ref().and_then(|d| d.get("password")) {
                Some(pw) => Ok(String::from_utf8_lossy(&pw.0).into_owned()),
                None => {
                    apply(&api, &secret).await?;
                    Ok(password)
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds `secret` to a ServiceAccount's imagePullSecrets. Some(true) when it
/// changed the account, Some(false) when it was there, None when the
/// account does not exist.
async fn add_to_service_account(
    client: &Client,
    ns: &str,
    sa: &str,
    secret: &str,
) -> Result<Option<bool>, Error> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    for _ in 0..REPLACE_TRIES {
        let Some(mut account) = api.get_opt(sa).await? else {
            return Ok(None);
        };
        if !add_image_pull_secret(&mut account, secret) {
            return Ok(Some(false));
        }
        match api.replace(sa, &PostParams::default(), &account).await {
            Ok(_) => return Ok(Some(true)),
            // Someone else changed it in between: read it again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(false))
}

/// Removes `secret` from every ServiceAccount of `ns` that lists it.
async fn remove_from_service_accounts(
    client: &Client,
    ns: &str,
    secret: &str,
) -> Result<(), Error> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    for account in api.list(&ListParams::default()).await?.items {
        let name = account.name_any();
        for _ in 0..REPLACE_TRIES {
            let Some(mut current) = api.get_opt(&name).await? else {
                break;
            };
            if !remove_image_pull_secret(&mut current, secret) {
                break;
            }
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Deletes this Repository's pull Secrets (found by label, in any
/// namespace) that are not in `keep` (`namespace/name`), and their
/// imagePullSecrets entries. Returns what it removed, (namespace, name).
async fn remove_pull_secrets(
    repo: &Repository,
    ctx: &Context,
    keep: &BTreeSet<String>,
) -> Result<Vec<(String, String)>, Error> {
    let lp = ListParams::default().labels(&format!(
        "{REPOSITORY_LABEL}={}",
        repository_label_value(repo)
    ));
    let mut removed = Vec::new();
    for s in Api::<Secret>::all(ctx.client.clone())
        .list(&lp)
        .await?
        .items
    {
        let (Some(ns), name) = (s.namespace(), s.name_any()) else {
            continue;
        };
        if keep.contains(&format!("{ns}/{name}")) {
            continue;
        }
        remove_from_service_accounts(&ctx.client, &ns, &name).await?;
        match Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => removed.push((ns, name)),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

/// Finalizer: removes pull Secrets in every namespace (the retention
/// CronJob and robot Secret go with their owner reference).
pub(super) async fn cleanup(repo: &Repository, ctx: &Context) -> Result<Action, Error> {
    let removed = remove_pull_secrets(repo, ctx, &BTreeSet::new()).await?;
    if !removed.is_empty() {
        let names: Vec<String> = removed.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
        publish(
            ctx,
            repo,
            EventType::Normal,
            "Deleted",
            format!("deleted pull Secrets {}", names.join(", ")),
            None,
        )
        .await;
    }
    Ok(Action::await_change())
}
