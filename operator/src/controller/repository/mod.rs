//! The Repository reconciler: retention CronJob, robot credential, pull
//! Secrets and `imagePullSecrets` in granted ServiceAccounts' namespaces
//! (cleaned up by a finalizer: they cross namespaces), status. Its policy
//! rules are folded into the Registry's ConfigMap by the Registry reconciler.

mod pull_secrets;

use std::sync::Arc;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tracing::info;

use super::api::apply_or_delete;
use super::events::publish_changes;
use super::reconcile::{self, Reconcile, degraded, failed_apply, write_status};
use super::{Context, Error, RECHECK, RESYNC};
use crate::crd::{Condition, Registry, Repository, RepositoryStatus};
use crate::render::{
    self, Changed, Problem, RepositoryObserved, registry_missing, repository_conditions,
    repository_problem, repository_status, retention_cronjob_name,
};

/// Held while a Repository has pull Secrets in other namespaces.
pub const FINALIZER: &str = "berth.dev/pull-secrets";

/// The Repository controller: reconciles on changes of Repositories, of
/// the objects they own, and of their Registry (its endpoint goes into the
/// pull Secrets).
pub fn repository_controller(
    ctx: Arc<Context>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let controller = Controller::new(Api::<Repository>::all(client.clone()), wc.clone())
        .owns(Api::<CronJob>::all(client.clone()), wc.clone())
        .owns(Api::<Secret>::all(client.clone()), wc.clone());
    // A Registry that appears or changes (endpoint) concerns its Repositories.
    let store = controller.store();
    let controller = controller.watches(Api::<Registry>::all(client), wc, move |reg: Registry| {
        let ns = reg.namespace();
        let name = reg.name_any();
        store
            .state()
            .into_iter()
            .filter(|r| r.spec.registry == name && r.namespace() == ns)
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    });
    reconcile::run(controller, ctx)
}

impl Reconcile for Repository {
    const CONTROLLER: &'static str = "repository";
    type Status = RepositoryStatus;

    async fn reconcile(self: Arc<Self>, ctx: Arc<Context>, ns: String) -> Result<Action, Error> {
        let api = Api::<Repository>::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, self, |event| async {
            match event {
                Finalizer::Apply(repo) => reconcile_repository(&repo, &ctx, &ns).await,
                Finalizer::Cleanup(repo) => pull_secrets::cleanup(&repo, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }

    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }

    fn problem_status(&self, problem: &Problem) -> RepositoryStatus {
        repository_status(self, problem.conditions(), None)
    }
}

async fn reconcile_repository(repo: &Repository, ctx: &Context, ns: &str) -> Result<Action, Error> {
    if let Some(p) = repository_problem(repo) {
        return degraded(repo, ctx, p).await;
    }
    let Some(reg) = Api::<Registry>::namespaced(ctx.client.clone(), ns)
        .get_opt(&repo.spec.registry)
        .await?
    else {
        return degraded(repo, ctx, registry_missing(repo, ns)).await;
    };

    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let pull_secrets = match apply_objects(repo, &reg, ctx, ns, &mut changes, &mut notes).await {
        Ok(p) => p,
        Err(e) => return failed_apply(repo, ctx, e).await,
    };
    publish_changes(ctx, repo, &changes).await;

    let last_retention_run = match &repo.spec.retention {
        Some(_) => Api::<CronJob>::namespaced(ctx.client.clone(), ns)
            .get_opt(&retention_cronjob_name(&repo.name_any()))
            .await?
            .and_then(|cj| cj.status)
            .and_then(|s| s.last_schedule_time)
            .map(|t| t.0.to_string()),
        None => None,
    };
    let conditions = repository_conditions(repo, pull_secrets.len(), &notes);
    let observed = RepositoryObserved {
        pull_secrets,
        last_retention_run,
    };
    write_status(
        repo,
        ctx,
        &repository_status(repo, conditions, Some(observed)),
    )
    .await?;
    info!(repository = %repo.name_any(), namespace = %ns, "reconciled");
    Ok(Action::requeue(if notes.is_empty() {
        RESYNC
    } else {
        RECHECK
    }))
}

/// Applies the retention CronJob (or removes it), the robot credential and
/// the pull Secrets; returns the pull Secrets (`namespace/name`, sorted).
async fn apply_objects(
    repo: &Repository,
    reg: &Registry,
    ctx: &Context,
    ns: &str,
    changes: &mut Vec<Changed>,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, Error> {
    let cronjobs = Api::<CronJob>::namespaced(ctx.client.clone(), ns);
    let retention = render::retention_cronjob(reg, repo)?;
    let name = retention_cronjob_name(&repo.name_any());
    let uid = repo.uid().unwrap_or_default();
    apply_or_delete(&cronjobs, retention.as_ref(), &name, &uid, changes).await?;
    pull_secrets::apply_secrets(repo, reg, ctx, ns, changes, notes).await
}
