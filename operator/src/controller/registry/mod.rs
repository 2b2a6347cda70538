//! The Registry reconciler: the token key, the policy file from its
//! Repositories, the objects [`render_registry`] makes, and status from the
//! Deployment's rollout and, while pods are not ready, from what their
//! `/readyz` say.

mod readiness;
mod secrets;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{debug, info};

use super::api::{apply, apply_noted, apply_or_delete, delete_owned};
use super::events::{publish, publish_changes};
use super::reconcile::{self, Reconcile, degraded, failed_apply, write_status};
use super::{Context, Error, RECHECK, RESYNC};
use crate::crd::{Condition, Registry, RegistryStatus, Repository};
use crate::render::{
    self, Changed, NodeRollout, POLICY_HASH_ANNOTATION, Problem, RegistryObjects, RegistryObserved,
    Rollout, SERVICE_MONITOR_CRD, keep_existing_claim, node_endpoint_daemonset, node_endpoint_name,
    node_endpoint_upstream, node_port_conflict, outage_is_new, pod_trouble, pods_to_nudge,
    policy_file, policy_yaml, registry_conditions, registry_settled, registry_status,
    render_registry, service_monitor_crd_missing, service_monitor_resource, sha256_hex,
    should_probe, with_default_image, workload_name,
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
        .owns(Api::<DaemonSet>::all(client.clone()), wc.clone())
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
    // The image it runs when the spec names none: the operator's own.
    let reg = &with_default_image(reg, &ctx.settings.registry_image);
    if let Some(p) = secrets::check(reg, ctx, ns).await? {
        return degraded(reg, ctx, p).await;
    }
    if reg.spec.node_endpoint.enabled {
        let all = Api::<Registry>::all(ctx.client.clone())
            .list(&Default::default())
            .await?
            .items;
        if let Some(p) = node_port_conflict(reg, &all) {
            return degraded(reg, ctx, p).await;
        }
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
    let applied = match apply_objects(reg, ctx, ns, &objs, &mut changes, &mut notes).await {
        Ok(applied) => applied,
        Err(e) => return failed_apply(reg, ctx, e).await,
    };
    let cluster_ip = applied
        .service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref());
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

    // The Registry's pods (registry and node endpoint): the registry pods
    // are nudged to load a new policy file now rather than at the kubelet's
    // next periodic sync.
    let pods = instance_pods(reg, ctx, ns).await?;
    let registry_pods: Vec<Pod> = pods
        .iter()
        .filter(|p| {
            p.labels()
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("registry")
        })
        .cloned()
        .collect();
    nudge(ctx, ns, &registry_pods, &sha256_hex(policy.as_bytes())).await?;

    // Status from the Deployment and the node endpoint's DaemonSet.
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), ns)
        .get_opt(&objs.deployment.name_any())
        .await?;
    let rollout = Rollout::of(deployment.as_ref());
    let node = applied.node_endpoint.as_ref().map(NodeRollout::of);
    // Pods not ready: ask them which dependency they cannot reach, and see
    // what Kubernetes says of them.
    let outage = if should_probe(reg, rollout, node) {
        match readiness::outage(reg, &registry_pods).await {
            Some(o) => Some(o),
            None => pod_trouble(reg, &pods, applied.claim.as_ref()),
        }
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
        node,
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
    let settled = registry_settled(reg, rollout, node, &notes, outage.as_ref());
    if settled {
        debug!(registry = %reg.name_any(), namespace = %ns, ready = rollout.ready, "reconciled");
    } else {
        info!(registry = %reg.name_any(), namespace = %ns, ready = rollout.ready, want = reg.spec.replicas, "reconciled; rolling out");
    }
    Ok(Action::requeue(if settled { RESYNC } else { RECHECK }))
}

/// The pods of a Registry (its registry pods and its node endpoint's), by
/// its instance label.
async fn instance_pods(reg: &Registry, ctx: &Context, ns: &str) -> Result<Vec<Pod>, Error> {
    let selector = format!(
        "app.kubernetes.io/name=berth,app.kubernetes.io/instance={}",
        reg.name_any()
    );
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    Ok(pods
        .into_iter()
        .filter(|p| {
            matches!(
                p.labels()
                    .get("app.kubernetes.io/component")
                    .map(String::as_str),
                Some("registry" | render::NODE_ENDPOINT_COMPONENT)
            )
        })
        .collect())
}

/// Annotates the registry pods that do not carry the policy's hash yet: an
/// update of the pod makes the kubelet sync it, and so update its
/// ConfigMap volume, within seconds (the registry then reloads the file).
async fn nudge(ctx: &Context, ns: &str, pods: &[Pod], hash: &str) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    for name in pods_to_nudge(pods, hash) {
        let patch =
            serde_json::json!({"metadata": {"annotations": {POLICY_HASH_ANNOTATION: hash}}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => debug!(pod = %name, namespace = %ns, "nudged to load the policy file"),
            // Gone in between: its replacement starts with the new file.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What [`apply_objects`] left on the API server that the status needs.
struct Applied {
    /// Its cluster IP is the endpoint when there is neither node endpoint
    /// nor Ingress, and where the node endpoint forwards to.
    service: Service,
    claim: Option<PersistentVolumeClaim>,
    node_endpoint: Option<DaemonSet>,
}

/// Applies every rendered object (removing the optional ones the spec no
/// longer asks for), then the node endpoint (which forwards to the
/// Service's cluster IP).
async fn apply_objects(
    reg: &Registry,
    ctx: &Context,
    ns: &str,
    objs: &RegistryObjects,
    changes: &mut Vec<Changed>,
    notes: &mut Vec<String>,
) -> Result<Applied, Error> {
    let client = &ctx.client;
    let uid = reg.uid().unwrap_or_default();
    let workload = workload_name(&reg.name_any());
    apply_noted(
        &Api::namespaced(client.clone(), ns),
        &objs.config_map,
        changes,
    )
    .await?;

    let mut claim = None;
    if let Some(pvc) = &objs.data_claim {
        let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
        let mut pvc = pvc.clone();
        if let Some(existing) = api.get_opt(&pvc.name_any()).await?
            && let Some(note) = keep_existing_claim(&mut pvc, &existing)
        {
            notes.push(note);
        }
        claim = Some(apply_noted(&api, &pvc, changes).await?);
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

    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), ns);
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    let desired = match node_endpoint_upstream(reg, cluster_ip) {
        Some(upstream) => node_endpoint_daemonset(reg, &upstream)?,
        None => None,
    };
    let node_name = node_endpoint_name(&reg.name_any());
    let node_endpoint = match &desired {
        Some(ds) => Some(apply_noted(&daemonsets, ds, changes).await?),
        None => {
            apply_or_delete(&daemonsets, None, &node_name, &uid, changes).await?;
            None
        }
    };

    if let Some(note) = service_monitor(reg, ctx, ns, objs.service_monitor.as_ref()).await? {
        notes.push(note);
    }
    Ok(Applied {
        service,
        claim,
        node_endpoint,
    })
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
