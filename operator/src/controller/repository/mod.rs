//! The Repository reconciler: retention CronJob, robot credential, pull
//! Secrets and `imagePullSecrets` in granted ServiceAccounts' namespaces
//! (cleaned up by a finalizer: they cross namespaces), status. Its policy
//! rules are folded into the Registry's ConfigMap by the Registry reconciler.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Change, Context, Error, Problem, RECHECK, RESYNC, apply, backoff, condition, delete_owned,
    is_invalid, merge_conditions, publish, publish_changes,
};
use crate::crd::{Registry, Repository, RepositoryStatus};
use crate::render::{
    self, MANAGER, REPOSITORY_LABEL, granted_service_accounts, pull_secret, quota_bytes,
    repository_label_value, retention_cronjob_name, robot_secret, robot_secret_name, robot_user,
    schedule,
};

const CONTROLLER: &str = "repository";
/// Held while a Repository has pull Secrets in other namespaces.
pub const FINALIZER: &str = "berth.dev/pull-secrets";

pub fn repository_controller(
    ctx: Arc<Context>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let ctl = Controller::new(Api::<Repository>::all(client.clone()), wc.clone())
        .owns(Api::<CronJob>::all(client.clone()), wc.clone())
        .owns(Api::<Secret>::all(client.clone()), wc.clone());
    // A Registry that appears or changes (endpoint) concerns its Repositories.
    let store = ctl.store();
    ctl.watches(Api::<Registry>::all(client), wc, move |reg: Registry| {
        let ns = reg.namespace();
        let name = reg.name_any();
        store
            .state()
            .into_iter()
            .filter(|r| r.spec.registry == name && r.namespace() == ns)
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    })
    .shutdown_on_signal()
    .run(reconcile_repository, error_policy, ctx)
    .filter_map(|res| async move {
        if let Err(e) = res {
            warn!(controller = CONTROLLER, error = %e, "reconcile failed");
        }
        None::<()>
    })
}

fn error_policy(repo: Arc<Repository>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.metrics.failed(CONTROLLER, error.metric_label());
    warn!(repository = %repo.name_any(), error = %error, failures, "reconcile failed; retrying");
    backoff(failures)
}

pub async fn reconcile_repository(
    repo: Arc<Repository>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let ns = repo.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "Repository",
        name: repo.name_any(),
    })?;
    let api = Api::<Repository>::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, repo.clone(), |event| async {
        match event {
            Finalizer::Apply(repo) => apply_repository(&repo, &ctx, &ns).await,
            Finalizer::Cleanup(repo) => cleanup(&repo, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    match result {
        Ok(action) => {
            ctx.metrics.reconciled(CONTROLLER, start.elapsed());
            Ok(action)
        }
        Err(e) => {
            // Every error is also an Event on the Repository (retried with
            // backoff by the error policy).
            publish(
                &ctx,
                &*repo,
                EventType::Warning,
                "ReconcileFailed",
                e.to_string(),
                None,
            )
            .await;
            Err(e)
        }
    }
}

async fn apply_repository(repo: &Repository, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let client = &ctx.client;
    if let Some(p) = check(repo).await {
        return degraded(repo, ctx, p).await;
    }
    let Some(reg) = Api::<Registry>::namespaced(client.clone(), ns)
        .get_opt(&repo.spec.registry)
        .await?
    else {
        return degraded(
            repo,
            ctx,
            Problem {
                reason: "RegistryNotFound",
                message: format!(
                    "spec.registry: there is no Registry {ns}/{}; create it or fix the name",
                    repo.spec.registry
                ),
            },
        )
        .await;
    };

    let mut changes: Vec<(String, Change)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let uid = repo.uid().unwrap_or_default();
    let result = async {
        // Retention CronJob.
        let cj_api = Api::<CronJob>::namespaced(client.clone(), ns);
        match render::retention_cronjob(&reg, repo)? {
            Some(cj) => {
                let (_, c) = apply(&cj_api, &cj).await?;
                changes.push((format!("CronJob {}", cj.name_any()), c));
            }
            None => {
                let name = retention_cronjob_name(&repo.name_any());
                if delete_owned(&cj_api, &name, &uid).await? {
                    changes.push((format!("CronJob {name}"), Change::Deleted));
                }
            }
        }
        // Robot credential and pull Secrets.
        let grants = granted_service_accounts(repo);
        let mut pull_secrets = Vec::new();
        if grants.is_empty() {
            let secrets = Api::<Secret>::namespaced(client.clone(), ns);
            let name = robot_secret_name(&repo.name_any());
            if delete_owned(&secrets, &name, &uid).await? {
                changes.push((format!("Secret {name}"), Change::Deleted));
            }
        } else {
            let password = ensure_robot(repo, ctx, ns, &mut changes).await?;
            let endpoint = reg
                .status
                .as_ref()
                .and_then(|s| s.endpoint.clone())
                .unwrap_or_else(|| render::endpoint(&reg, None));
            let user = robot_user(ns, &repo.name_any());
            for sa in &grants {
                let sa_ns = sa.namespace.clone().unwrap_or_else(|| ns.to_string());
                let secret = pull_secret(repo, &sa_ns, &endpoint, &user, &password);
                let secret_name = secret.name_any();
                let (_, c) = apply(&Api::namespaced(client.clone(), &sa_ns), &secret).await?;
                changes.push((format!("Secret {sa_ns}/{secret_name}"), c));
                pull_secrets.push(format!("{sa_ns}/{secret_name}"));
                match add_pull_secret(client, &sa_ns, &sa.name, &secret_name).await? {
                    Some(true) => changes.push((
                        format!("ServiceAccount {sa_ns}/{} imagePullSecrets", sa.name),
                        Change::Updated,
                    )),
                    Some(false) => {}
                    None => notes.push(format!(
                        "ServiceAccount {sa_ns}/{} does not exist yet: its pull Secret {secret_name} is ready and will be added when it appears",
                        sa.name
                    )),
                }
            }
        }
        pull_secrets.sort();
        pull_secrets.dedup();
        // Pull Secrets of grants that went away.
        let keep: BTreeSet<String> = pull_secrets.iter().cloned().collect();
        for removed in remove_pull_secrets(repo, ctx, &keep).await? {
            changes.push((format!("Secret {removed}"), Change::Deleted));
        }
        Ok::<Vec<String>, Error>(pull_secrets)
    }
    .await;

    let pull_secrets = match result {
        Ok(p) => p,
        Err(e) => {
            if let Some(message) = is_invalid(&e) {
                return degraded(
                    repo,
                    ctx,
                    Problem {
                        reason: "ApplyRejected",
                        message: format!(
                            "the API server rejected an object rendered from this spec: {message}"
                        ),
                    },
                )
                .await;
            }
            return Err(e);
        }
    };

    publish_changes(ctx, repo, ns, &changes).await;

    let last_run = match &repo.spec.retention {
        Some(_) => Api::<CronJob>::namespaced(client.clone(), ns)
            .get_opt(&retention_cronjob_name(&repo.name_any()))
            .await?
            .and_then(|cj| cj.status)
            .and_then(|s| s.last_schedule_time)
            .map(|t| t.0.to_string()),
        None => None,
    };
    let message = format!(
        "rules are in the policy file of Registry {ns}/{}; {} pull Secret(s){}",
        repo.spec.registry,
        pull_secrets.len(),
        if repo.spec.retention.is_some() {
            format!(
                "; retention CronJob {}",
                retention_cronjob_name(&repo.name_any())
            )
        } else {
            String::new()
        }
    );
    let waiting = !notes.is_empty();
    let conds = vec![
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
        if waiting {
            condition("Degraded", true, "ServiceAccountNotFound", notes.join("; "))
        } else {
            condition(
                "Degraded",
                false,
                "AsExpected",
                "every object is as the spec says",
            )
        },
    ];
    write_status(repo, ctx, conds, Some(pull_secrets), last_run).await?;
    info!(repository = %repo.name_any(), namespace = %ns, "reconciled");
    Ok(Action::requeue(if waiting { RECHECK } else { RESYNC }))
}

async fn check(repo: &Repository) -> Option<Problem> {
    if let Some(r) = &repo.spec.retention
        && let Err(e) = schedule::validate(&r.schedule)
    {
        return Some(Problem {
            reason: "InvalidSchedule",
            message: format!("spec.retention.schedule {:?}: {e}", r.schedule),
        });
    }
    if let Some(q) = &repo.spec.quota
        && let Err(e) = quota_bytes(q)
    {
        return Some(Problem {
            reason: "InvalidQuota",
            message: format!("spec.quota: {e}"),
        });
    }
    None
}

async fn degraded(repo: &Repository, ctx: &Context, p: Problem) -> Result<Action, Error> {
    warn!(repository = %repo.name_any(), reason = p.reason, message = %p.message, "spec cannot work");
    let conditions = repo
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !p.already_reported(conditions) {
        publish(
            ctx,
            repo,
            EventType::Warning,
            p.reason,
            p.message.clone(),
            None,
        )
        .await;
    }
    write_status(repo, ctx, p.conditions(), None, None).await?;
    Ok(Action::requeue(RECHECK))
}

async fn write_status(
    repo: &Repository,
    ctx: &Context,
    conditions: Vec<crate::crd::Condition>,
    pull_secrets: Option<Vec<String>>,
    last_retention_run: Option<String>,
) -> Result<(), Error> {
    let old = repo.status.clone().unwrap_or_default();
    let generation = repo.meta().generation;
    let status = RepositoryStatus {
        conditions: merge_conditions(&old.conditions, conditions, generation),
        observed_generation: generation,
        tag_count: old.tag_count,
        size_bytes: old.size_bytes,
        last_retention_run: last_retention_run.or(old.last_retention_run),
        pull_secrets: pull_secrets.unwrap_or(old.pull_secrets),
    };
    let patch = json!({
        "apiVersion": Repository::api_version(&()),
        "kind": Repository::kind(&()),
        "status": status,
    });
    Api::<Repository>::namespaced(ctx.client.clone(), &repo.namespace().unwrap_or_default())
        .patch_status(
            &repo.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

/// The robot's password: from its Secret, or a new random one in a new
/// Secret (created once, never rotated by a reconcile).
async fn ensure_robot(
    repo: &Repository,
    ctx: &Context,
    ns: &str,
    changes: &mut Vec<(String, Change)>,
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
            changes.push((format!("Secret {name} (robot credential)"), Change::Created));
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

/// 32 random bytes, hex.
pub fn random_secret() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Adds `secret` to a ServiceAccount's imagePullSecrets. Some(true) when it
/// changed the account, Some(false) when it was there, None when the
/// account does not exist.
async fn add_pull_secret(
    client: &kube::Client,
    ns: &str,
    sa: &str,
    secret: &str,
) -> Result<Option<bool>, Error> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    for _ in 0..5 {
        let Some(mut acc) = api.get_opt(sa).await? else {
            return Ok(None);
        };
        let list = acc.image_pull_secrets.get_or_insert_with(Vec::new);
        if list.iter().any(|r| r.name == secret) {
            return Ok(Some(false));
        }
        list.push(LocalObjectReference {
            name: secret.into(),
        });
        match api.replace(sa, &PostParams::default(), &acc).await {
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
    client: &kube::Client,
    ns: &str,
    secret: &str,
) -> Result<(), Error> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    for acc in api.list(&ListParams::default()).await?.items {
        let name = acc.name_any();
        for _ in 0..5 {
            let Some(mut cur) = api.get_opt(&name).await? else {
                break;
            };
            let Some(list) = cur.image_pull_secrets.as_mut() else {
                break;
            };
            let before = list.len();
            list.retain(|r| r.name != secret);
            if list.len() == before {
                break;
            }
            match api.replace(&name, &PostParams::default(), &cur).await {
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
/// imagePullSecrets entries. Returns what it removed.
async fn remove_pull_secrets(
    repo: &Repository,
    ctx: &Context,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, Error> {
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
        let key = format!("{ns}/{name}");
        if keep.contains(&key) {
            continue;
        }
        remove_from_service_accounts(&ctx.client, &ns, &name).await?;
        match Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => removed.push(key),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

/// Finalizer: removes pull Secrets in every namespace (the retention
/// CronJob and robot Secret go with their owner reference).
async fn cleanup(repo: &Repository, ctx: &Context) -> Result<Action, Error> {
    let removed = remove_pull_secrets(repo, ctx, &BTreeSet::new()).await?;
    if !removed.is_empty() {
        publish(
            ctx,
            repo,
            EventType::Normal,
            "Deleted",
            format!("deleted pull Secrets {}", removed.join(", ")),
            None,
        )
        .await;
    }
    Ok(Action::await_change())
}
