//! The Registry reconciler: the token key, the policy file from its
//! Repositories, the objects [`render_registry`] makes, and status from the
//! Deployment's rollout and, while pods are not ready, from what their
//! `/readyz` say.

mod readiness;
mod secrets;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::api::{apply, apply_noted, apply_or_delete, delete_owned};
use super::events::{publish, publish_changes};
use super::reconcile::{self, Reconcile, degraded, failed_apply, write_status};
use super::{Context, Error, RECHECK, RESYNC};
use crate::crd::{Condition, Registry, RegistryStatus, Repository};
use crate::render::{
    self, Changed, Problem, RegistryObjects, RegistryObserved, Rollout, SERVICE_MONITOR_CRD,
    keep_existing_claim, outage_is_new, policy_file, policy_yaml, registry_conditions,
    registry_settled, registry_status, render_registry, service_monitor_crd_missing,
    service_monitor_resource, should_probe, workload_name,
};

/// The Registry controller: reconciles on changes of Registries, of the
/// objects they own (so hand edits are repaired) and of Repositories (whose
/// rules go into the Registry's policy file).
pub fn registry_controller(ctx: Arc<Context>) -> impl futures::Stream<Item = ()> + Send + 'static {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let controller = Controller::new(Api::<Registry>::all(client.clone()), wc.clone())
        .owns(Api::<Deployment>::all(client.clone()), wc.clone())
        .owns(Api::<Service>::all(client.clone()), wc.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), wc.clone())
        .owns(Api::<CronJob>::all(client.clone()), wc.clone())
        .owns(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            wc.clone(),
        )
        .owns(Api::<Ingress>::all(client.clone()), wc.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), wc.clone())
        .watches(Api::<Repository>::all(client), wc, |repo: Repository| {
            repo.namespace()
                .map(|ns| ObjectRef::<Registry>::new(&repo.spec.registry).within(&ns))
        });
    reconcile::run(controller, ctx)
}

impl Reconcile for Registry {
    const CONTROLLER: &'static str = "registry";
    type Status = RegistryStatus;

    async fn reconcile(self: Arc<Self>, ctx: Arc<Context>, ns: String) -> Result<Action, Error> {
        reconcile_registry(&self, &ctx, &ns).await
    }

    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }

    fn problem_status(&self, problem: &Problem) -> RegistryStatus {
        registry_status(self, problem.conditions(), None)
    }
}

async fn reconcile_registry(reg: &Registry, ctx: &Context, ns: &str) -> Result<Action, Error> {
    if reg.meta().deletion_timestamp.is_some() {
        // Owned objects go with it through the garbage collector.
        return Ok(Action::await_change());
    }
    if let Some(p) = secrets::check(reg, ctx, ns).await? {
        return degraded(reg, ctx, p).await;
    }
    secrets::ensure_token_key(reg, ctx, ns).await?;

    // The policy file from every Repository of this Registry.
    let repos = Api::<Repository>::namespaced(ctx.client.clone(), ns)
        .list(&Default::default())
        .await?
        .items;
    let robots = secrets::robot_hashes(ctx, ns, &repos).await?;
    let policy = policy_yaml(&policy_file(reg, &repos, &robots), reg)?;
    let objs = render_registry(reg, &policy)?;

    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let service = match apply_objects(reg, ctx, ns, &objs, &mut changes, &mut notes).await {
        Ok(service) => service,
        Err(e) => return failed_apply(reg, ctx, e).await,
    };
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    let endpoint = render::endpoint(reg, cluster_ip);
    // The nodes' hosts.toml names the endpoint, known once the Service is.
    let hosts = render::containerd_hosts(reg, &endpoint)?;
    if let Err(e) = apply_or_delete(
        &Api::<ConfigMap>::namespaced(ctx.client.clone(), ns),
        hosts.as_ref(),
        &render::containerd_hosts_name(&reg.name_any()),
        &reg.uid().unwrap_or_default(),
        &mut changes,
    )
    .await
    {
        return failed_apply(reg, ctx, e).await;
    }
    publish_changes(ctx, reg, &changes).await;

    // Status from the Deployment.
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), ns)
        .get_opt(&objs.deployment.name_any())
        .await?;
    let rollout = Rollout::of(deployment.as_ref());
    // Pods not ready: ask them which dependency they cannot reach.
    let outage = if should_probe(reg, rollout) {
        readiness::outage(reg, ctx, ns).await?
    } else {
        None
    };
    if let Some(o) = &outage {
        // The status as written last (the cached object may predate the
        // previous reconcile's write): one Warning per outage.
        let current = Api::<Registry>::namespaced(ctx.client.clone(), ns)
            .get(&reg.name_any())
            .await?;
        if outage_is_new(o, current.conditions()) {
            publish(
                ctx,
                reg,
                EventType::Warning,
                o.reason,
                o.message.clone(),
                None,
            )
            .await;
        }
    }
    let conditions = registry_conditions(
        reg,
        rollout,
        &endpoint,
        &objs.config_hash,
        &notes,
        outage.as_ref(),
    );
    let observed = RegistryObserved {
        ready_replicas: rollout.ready,
        endpoint,
        config_hash: objs.config_hash.clone(),
    };
    write_status(reg, ctx, &registry_status(reg, conditions, Some(observed))).await?;
    info!(registry = %reg.name_any(), namespace = %ns, ready = rollout.ready, want = reg.spec.replicas, "reconciled");
    Ok(Action::requeue(
        if registry_settled(reg, rollout, &notes, outage.as_ref()) {
            RESYNC
        } else {
            RECHECK
        },
    ))
}

/// Applies every rendered object (removing the optional ones the spec no
/// longer asks for); returns the Service as the API server has it (its
/// cluster IP is the endpoint).
async fn apply_objects(
    reg: &Registry,
    ctx: &Context,
    ns: &str,
    objs: &RegistryObjects,
    changes: &mut Vec<Changed>,
    notes: &mut Vec<String>,
) -> Result<Service, Error> {
    let client = &ctx.client;
    let uid = reg.uid().unwrap_or_default();
    let workload = workload_name(&reg.name_any());
    apply_noted(
        &Api::namespaced(client.clone(), ns),
        &objs.config_map,
        changes,
    )
    .await?;

    if let Some(pvc) = &objs.data_claim {
        let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
        let mut pvc = pvc.clone();
        if let Some(existing) = api.get_opt(&pvc.name_any()).await?
            && let Some(note) = keep_existing_claim(&mut pvc, &existing)
        {
            notes.push(note);
        }
        apply_noted(&api, &pvc, changes).await?;
    }

    apply_noted(
        &Api::namespaced(client.clone(), ns),
        &objs.deployment,
        changes,
    )
    .await?;
    let service = apply_noted(&Api::namespaced(client.clone(), ns), &objs.service, changes).await?;
    let ingresses = Api::<Ingress>::namespaced(client.clone(), ns);
    apply_or_delete(&ingresses, objs.ingress.as_ref(), &workload, &uid, changes).await?;
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    apply_or_delete(&pdbs, objs.pdb.as_ref(), &workload, &uid, changes).await?;
    apply_noted(
        &Api::namespaced(client.clone(), ns),
        &objs.gc_cronjob,
        changes,
    )
    .await?;

    if let Some(note) = service_monitor(reg, ctx, ns, objs.service_monitor.as_ref()).await? {
        notes.push(note);
    }
    Ok(service)
}

/// Applies (or removes) the ServiceMonitor when its CRD exists; a note when
/// one is asked for and the CRD is missing.
async fn service_monitor(
    reg: &Registry,
    ctx: &Context,
    ns: &str,
    desired: Option<&serde_json::Value>,
) -> Result<Option<String>, Error> {
    let crds = Api::<CustomResourceDefinition>::all(ctx.client.clone());
    if crds.get_opt(SERVICE_MONITOR_CRD).await?.is_none() {
        return Ok(desired.map(|_| service_monitor_crd_missing()));
    }
    let api =
        Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, &service_monitor_resource());
    match desired {
        Some(obj) => {
            let obj: DynamicObject = serde_json::from_value(obj.clone())
                .map_err(|e| Error::Json("ServiceMonitor", e))?;
            apply(&api, &obj).await?;
        }
        None => {
            let name = workload_name(&reg.name_any());
            delete_owned(&api, &name, &reg.uid().unwrap_or_default()).await?;
        }
    }
    Ok(None)
}
