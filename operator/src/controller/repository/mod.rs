//! The Repository reconciler: retention CronJob, robot credential, pull
//! Secrets and `imagePullSecrets` in granted ServiceAccounts' namespaces
//! (cleaned up by a finalizer: they cross namespaces), status. Its policy
//! rules are folded into the Registry's ConfigMap by the Registry reconciler.

mod pull_secrets;

use std::sync::Arc;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tracing::{debug, info};

use super::api::apply_or_delete;
use super::events::publish_changes;
use super::pods;
use super::reconcile::{self, Reconcile, degraded, failed_apply, write_status};
use super::{Context, Error, POLICY_POLL, RECHECK};
use crate::crd::{Condition, Registry, Repository, RepositoryStatus};
use crate::render::{
    self, Changed, Problem, RepositoryObserved, Serving, config_map_name, consented_grants,
    foreign_namespaces, policy_file, registry_missing, repository_conditions, repository_problem,
    repository_status, retention_cronjob_name, rules_hash, selector_labels, serving, serving_pods,
    sha256_hex, source, with_default_image,
};

/// Held while a Repository has pull Secrets in other namespaces.
pub const FINALIZER: &str = "berth.dev/pull-secrets";

/// The Repository controller: reconciles on changes of Repositories, of
/// the objects they own, of their Registry (its endpoint goes into the
/// pull Secrets) and of the namespaces they grant into (consent).
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
    let by_registry = store.clone();
    let controller = controller.watches(
        Api::<Registry>::all(client.clone()),
        wc.clone(),
        move |reg: Registry| {
            let ns = reg.namespace();
            let name = reg.name_any();
            by_registry
                .state()
                .into_iter()
                .filter(|r| r.spec.registry == name && r.namespace() == ns)
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        },
    );
    // A namespace that accepts (or stops accepting) grants concerns the
    // Repositories granting into it.
    let controller = controller.watches(Api::<Namespace>::all(client), wc, move |ns: Namespace| {
        let name = ns.name_any();
        store
            .state()
            .into_iter()
            .filter(|r| foreign_namespaces(r).contains(&name))
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
    let reg = with_default_image(&reg, &ctx.settings.registry_image);

    // Grants into other namespaces need their consent.
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    let mut found = BTreeMap::new();
    for name in foreign_namespaces(repo) {
        let ns_obj = namespaces.get_opt(&name).await?;
        found.insert(name, ns_obj);
    }
    let (grants, mut notes) = consented_grants(repo, &found);

    let mut changes = Vec::new();
    let applied = match apply_objects(repo, &reg, &grants, ctx, ns, &mut changes, &mut notes).await
    {
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

    // Are its rules served? Its part of the policy file, as the Registry
    // reconciler renders it.
    let robots = applied
        .robot_password
        .as_ref()
        .map(|pw| BTreeMap::from([(source(repo), sha256_hex(pw.as_bytes()))]))
        .unwrap_or_default();
    let mine = policy_file(&reg, std::slice::from_ref(repo), &robots);
    let fingerprint = rules_hash(&mine);
    let policy = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(&config_map_name(&reg.name_any()))
        .await?
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove("policy.yaml"));
    let selector = selector_labels(&reg.name_any())
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let targets = serving_pods(&pods);
    let already_served =
        repo.status.as_ref().and_then(|s| s.served_rules.as_deref()) == Some(fingerprint.as_str());
    let state = if already_served && !targets.is_empty() {
        // Seen served before; a pod started since loaded the current file,
        // which still holds them (checked by `serving` with every answer
        // taken as the current hash).
        let current = policy.as_deref().map(|p| sha256_hex(p.as_bytes()));
        serving(policy.as_deref(), &mine, &vec![current; targets.len()])
    } else {
        let answers = futures::future::join_all(targets.iter().map(|t| async move {
            pods::get_json::<berth_config::ops::Status>(t, berth_config::ops::STATUS_PATH)
                .await
                .and_then(|s| s.policy_sha256)
        }))
        .await;
        serving(policy.as_deref(), &mine, &answers)
    };
    let served = matches!(state, Serving::Served { .. });

    // What the registry says its repositories hold, from a pod that serves.
    let usage = match targets.first() {
        Some(t) => {
            let path = format!(
                "{}?{}",
                berth_config::ops::USAGE_PATH,
                url_query(berth_config::ops::USAGE_REPOSITORY, &repo.spec.name)
            );
            pods::get_json::<berth_config::ops::Usage>(t, &path).await
        }
        None => None,
    };

    let conditions = repository_conditions(repo, applied.pull_secrets.len(), &notes, &state);
    let observed = RepositoryObserved {
        pull_secrets: applied.pull_secrets,
        last_retention_run,
        usage,
        served_rules: served.then_some(fingerprint),
    };
    write_status(
        repo,
        ctx,
        &repository_status(repo, conditions, Some(observed)),
    )
    .await?;
    let next = if !notes.is_empty() {
        RECHECK
    } else if !served {
        POLICY_POLL
    } else {
        ctx.settings.usage_refresh
    };
    if served && notes.is_empty() {
        debug!(repository = %repo.name_any(), namespace = %ns, "reconciled");
    } else {
        info!(repository = %repo.name_any(), namespace = %ns, ?state, waiting = notes.len(), "reconciled; not ready yet");
    }
    Ok(Action::requeue(next))
}

/// `key=value`, the value percent-encoded.
fn url_query(key: &str, value: &str) -> String {
    let mut out = format!("{key}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies the retention CronJob (or removes it), the robot credential and
/// the pull Secrets of the consented `grants`.
async fn apply_objects(
    repo: &Repository,
    reg: &Registry,
    grants: &[crate::crd::ServiceAccountRef],
    ctx: &Context,
    ns: &str,
    changes: &mut Vec<Changed>,
    notes: &mut Vec<Problem>,
) -> Result<pull_secrets::Applied, Error> {
    let cronjobs = Api::<CronJob>::namespaced(ctx.client.clone(), ns);
    let retention = render::retention_cronjob(reg, repo)?;
    let name = retention_cronjob_name(&repo.name_any());
    let uid = repo.uid().unwrap_or_default();
    apply_or_delete(&cronjobs, retention.as_ref(), &name, &uid, changes).await?;
    pull_secrets::apply_secrets(repo, reg, grants, ctx, ns, changes, notes).await
}
