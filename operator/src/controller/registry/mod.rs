//! The Registry reconciler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Change, Context, Error, Problem, RECHECK, RESYNC, apply, backoff, condition, delete_owned,
    is_invalid, merge_conditions, publish, publish_changes,
};
use crate::crd::{Registry, RegistryStatus, Repository};
use crate::render::{
    self, MANAGER, parse_bytes, policy_file, policy_yaml, render_registry, robot_secret_name,
    schedule, sha256_hex, source, token_key_secret_name, workload_name,
};

const CONTROLLER: &str = "registry";
const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";

/// A spec that cannot work as it is, for status and an Event.
/// The Registry controller: reconciles on changes of Registries, of the
/// objects they own (so hand edits are repaired) and of Repositories (whose
/// rules go into the Registry's policy file).
pub fn registry_controller(ctx: Arc<Context>) -> impl futures::Stream<Item = ()> + Send + 'static {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    Controller::new(Api::<Registry>::all(client.clone()), wc.clone())
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
        })
        .shutdown_on_signal()
        .run(reconcile_registry, error_policy, ctx)
        .filter_map(|res| async move {
            match res {
                // A watched object pointing at one that does not exist (a
                // Repository of a missing Registry): its own status says so.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(controller = CONTROLLER, %obj, "no such object");
                }
                Err(e) => warn!(controller = CONTROLLER, error = %e, "reconcile failed"),
                Ok(_) => {}
            }
            None::<()>
        })
}

fn error_policy(reg: Arc<Registry>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.metrics.failed(CONTROLLER, error.metric_label());
    warn!(registry = %reg.name_any(), error = %error, failures, "reconcile failed; retrying");
    backoff(failures)
}

pub async fn reconcile_registry(reg: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    match reconcile(&reg, &ctx).await {
        Ok(action) => {
            ctx.metrics.reconciled(CONTROLLER, start.elapsed());
            Ok(action)
        }
        Err(e) => {
            // Every error is also an Event on the Registry (retried with
            // backoff by the error policy).
            publish(
                &ctx,
                &*reg,
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

async fn reconcile(reg: &Registry, ctx: &Context) -> Result<Action, Error> {
    let ns = reg.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "Registry",
        name: reg.name_any(),
    })?;
    if reg.meta().deletion_timestamp.is_some() {
        // Owned objects go with it through the garbage collector.
        return Ok(Action::await_change());
    }
    let client = &ctx.client;

    if let Some(p) = check(reg, ctx, &ns).await? {
        return degraded(reg, ctx, p).await;
    }

    ensure_token_key(reg, ctx, &ns).await?;

    // The policy file from every Repository of this Registry.
    let repos = Api::<Repository>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await?
        .items;
    let robots = robot_hashes(ctx, &ns, &repos).await?;
    let policy = policy_file(reg, &repos, &robots);
    let policy = policy_yaml(&policy, reg)?;
    let mut objs = render_registry(reg, &policy)?;

    let mut notes: Vec<String> = Vec::new();
    let mut changes: Vec<(String, Change)> = Vec::new();
    let uid = reg.uid().unwrap_or_default();

    let result = async {
        let (_, c) = apply(&Api::namespaced(client.clone(), &ns), &objs.config_map).await?;
        changes.push((format!("ConfigMap {}", objs.config_map.name_any()), c));

        if let Some(pvc) = objs.data_claim.as_mut() {
            let pvc_api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
            if let Some(note) = keep_existing_claim(pvc, &pvc_api).await? {
                notes.push(note);
            }
            let (_, c) = apply(&pvc_api, pvc).await?;
            changes.push((format!("PersistentVolumeClaim {}", pvc.name_any()), c));
        }

        let (_, c) = apply(&Api::namespaced(client.clone(), &ns), &objs.deployment).await?;
        changes.push((format!("Deployment {}", objs.deployment.name_any()), c));

        let (svc, c) = apply(&Api::namespaced(client.clone(), &ns), &objs.service).await?;
        changes.push((format!("Service {}", objs.service.name_any()), c));
        objs.service = svc;

        let ing_api = Api::<Ingress>::namespaced(client.clone(), &ns);
        match &objs.ingress {
            Some(ing) => {
                let (_, c) = apply(&ing_api, ing).await?;
                changes.push((format!("Ingress {}", ing.name_any()), c));
            }
            None => {
                if delete_owned(&ing_api, &workload_name(&reg.name_any()), &uid).await? {
                    changes.push((
                        format!("Ingress {}", workload_name(&reg.name_any())),
                        Change::Deleted,
                    ));
                }
            }
        }

        let pdb_api = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns);
        match &objs.pdb {
            Some(pdb) => {
                let (_, c) = apply(&pdb_api, pdb).await?;
                changes.push((format!("PodDisruptionBudget {}", pdb.name_any()), c));
            }
            None => {
                if delete_owned(&pdb_api, &workload_name(&reg.name_any()), &uid).await? {
                    changes.push((
                        format!("PodDisruptionBudget {}", workload_name(&reg.name_any())),
                        Change::Deleted,
                    ));
                }
            }
        }

        let (_, c) = apply(&Api::namespaced(client.clone(), &ns), &objs.gc_cronjob).await?;
        changes.push((format!("CronJob {}", objs.gc_cronjob.name_any()), c));

        if let Some(note) = service_monitor(reg, ctx, &ns, objs.service_monitor.as_ref()).await? {
            notes.push(note);
        }
        Ok::<(), Error>(())
    }
    .await;

    if let Err(e) = result {
        if let Some(message) = is_invalid(&e) {
            return degraded(
                reg,
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

    publish_changes(ctx, reg, &ns, &changes).await;

    // Status from the Deployment.
    let deploy = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get_opt(&objs.deployment.name_any())
        .await?;
    let want = reg.spec.replicas;
    let (ready, updated, observed) = deploy
        .as_ref()
        .map(|d| {
            let s = d.status.clone().unwrap_or_default();
            (
                s.ready_replicas.unwrap_or(0),
                s.updated_replicas.unwrap_or(0),
                s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0),
            )
        })
        .unwrap_or((0, 0, false));
    let cluster_ip = objs
        .service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone());
    let endpoint = render::endpoint(reg, cluster_ip.as_deref());
    let deploy_name = format!("{ns}/{}", objs.deployment.name_any());
    let rolled_out = observed && updated >= want && ready >= want;
    let (ready_c, progressing_c) = if want == 0 {
        (
            condition(
                "Ready",
                true,
                "ScaledToZero",
                "spec.replicas is 0: no registry pods run",
            ),
            condition(
                "Progressing",
                false,
                "RolloutComplete",
                "nothing to roll out",
            ),
        )
    } else if rolled_out {
        (
            condition(
                "Ready",
                true,
                "Available",
                format!("{ready} of {want} registry pods are ready; pull from {endpoint}"),
            ),
            condition(
                "Progressing",
                false,
                "RolloutComplete",
                format!(
                    "Deployment {deploy_name} runs config {}",
                    &objs.config_hash[..12]
                ),
            ),
        )
    } else {
        (
            condition(
                "Ready",
                false,
                "PodsNotReady",
                format!(
                    "{ready} of {want} registry pods are ready (Deployment {deploy_name}); see `kubectl -n {ns} describe deployment {}`",
                    objs.deployment.name_any()
                ),
            ),
            condition(
                "Progressing",
                true,
                "RollingOut",
                format!(
                    "{updated} of {want} pods run the current config {}",
                    &objs.config_hash[..12]
                ),
            ),
        )
    };
    let degraded_c = if notes.is_empty() {
        condition(
            "Degraded",
            false,
            "AsExpected",
            "every object is as the spec says",
        )
    } else {
        condition("Degraded", true, "PartiallyApplied", notes.join("; "))
    };
    write_status(
        reg,
        ctx,
        vec![ready_c, progressing_c, degraded_c],
        Some(ready),
        Some(endpoint),
        Some(objs.config_hash.clone()),
    )
    .await?;
    info!(registry = %reg.name_any(), namespace = %ns, ready, want, "reconciled");
    Ok(Action::requeue(if rolled_out && notes.is_empty() {
        RESYNC
    } else {
        RECHECK
    }))
}

/// What the spec refers to and must exist or parse: Secrets, the schedule.
async fn check(reg: &Registry, ctx: &Context, ns: &str) -> Result<Option<Problem>, Error> {
    if let Err(e) = schedule::validate(&reg.spec.gc.schedule) {
        return Ok(Some(Problem {
            reason: "InvalidSchedule",
            message: format!("spec.gc.schedule {:?}: {e}", reg.spec.gc.schedule),
        }));
    }
    if let Some(v) = &reg.spec.storage.volume
        && let Err(e) = parse_bytes(&v.size)
    {
        return Ok(Some(Problem {
            reason: "InvalidStorageSize",
            message: format!("spec.storage.volume.size: {e}"),
        }));
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let mut wanted: Vec<(&str, String, Option<&str>)> = Vec::new();
    if let Some(s) = &reg.spec.auth.htpasswd_secret {
        wanted.push(("spec.auth.htpasswdSecret", s.clone(), Some("htpasswd")));
    }
    if let Some(s3) = &reg.spec.storage.s3 {
        wanted.push((
            "spec.storage.s3.credentialsSecret",
            s3.credentials_secret.clone(),
            Some("accessKeyId"),
        ));
        wanted.push((
            "spec.storage.s3.credentialsSecret",
            s3.credentials_secret.clone(),
            Some("secretAccessKey"),
        ));
    }
    if let Some(pg) = &reg.spec.database.postgres {
        wanted.push((
            "spec.database.postgres.urlSecret",
            pg.url_secret.name.clone(),
            Some(pg.url_secret.key.as_str()),
        ));
    }
    if let Some(tls) = reg.spec.ingress.as_ref().and_then(|i| i.tls_secret.clone()) {
        wanted.push(("spec.ingress.tlsSecret", tls, None));
    }
    for (field, name, key) in wanted {
        match secrets.get_opt(&name).await? {
            None => {
                return Ok(Some(Problem {
                    reason: "SecretNotFound",
                    message: format!(
                        "{field}: Secret {ns}/{name} does not exist; create it and the registry will be deployed"
                    ),
                }));
            }
            Some(s) => {
                if let Some(key) = key {
                    let has = s.data.as_ref().is_some_and(|d| d.contains_key(key))
                        || s.string_data.as_ref().is_some_and(|d| d.contains_key(key));
                    if !has {
                        return Ok(Some(Problem {
                            reason: "SecretKeyMissing",
                            message: format!("{field}: Secret {ns}/{name} has no key {key:?}"),
                        }));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// Status and a Warning Event for a spec that cannot work; re-checked later
/// (what it lacks may appear), not retried as an error.
async fn degraded(reg: &Registry, ctx: &Context, p: Problem) -> Result<Action, Error> {
    warn!(registry = %reg.name_any(), reason = p.reason, message = %p.message, "spec cannot work");
    let conditions = reg
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !p.already_reported(conditions) {
        publish(
            ctx,
            reg,
            EventType::Warning,
            p.reason,
            p.message.clone(),
            None,
        )
        .await;
    }
    write_status(reg, ctx, p.conditions(), None, None, None).await?;
    Ok(Action::requeue(RECHECK))
}

async fn write_status(
    reg: &Registry,
    ctx: &Context,
    conditions: Vec<crate::crd::Condition>,
    ready_replicas: Option<i32>,
    endpoint: Option<String>,
    config_hash: Option<String>,
) -> Result<(), Error> {
    let old = reg.status.clone().unwrap_or_default();
    let generation = reg.meta().generation;
    let status = RegistryStatus {
        conditions: merge_conditions(&old.conditions, conditions, generation),
        observed_generation: generation,
        ready_replicas: ready_replicas.unwrap_or(old.ready_replicas),
        endpoint: endpoint.or(old.endpoint),
        config_hash: config_hash.or(old.config_hash),
    };
    let patch = json!({
        "apiVersion": Registry::api_version(&()),
        "kind": Registry::kind(&()),
        "status": status,
    });
    let ns = reg.namespace().unwrap_or_default();
    Api::<Registry>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &reg.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

/// Creates the token signing key Secret once; an existing one is never
/// replaced (tokens signed with it stay valid across reconciles).
async fn ensure_token_key(reg: &Registry, ctx: &Context, ns: &str) -> Result<(), Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let name = token_key_secret_name(&reg.name_any());
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let pem = generate_signing_key()?;
    let secret = render::token_key_secret(reg, &pem)?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            let what = format!("Secret {name} (token signing key)");
            publish_changes(ctx, reg, ns, &[(what, Change::Created)]).await;
            Ok(())
        }
        // Another reconcile (or operator replica) was first: keep its key.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A new ECDSA P-256 private key, PKCS#8 PEM.
pub fn generate_signing_key() -> Result<String, Error> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let b64 = B64.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// SHA-256 of each Repository's robot secret, by `namespace/name`.
async fn robot_hashes(
    ctx: &Context,
    ns: &str,
    repos: &[Repository],
) -> Result<BTreeMap<String, String>, Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let mut out = BTreeMap::new();
    for repo in repos {
        if repo
            .spec
            .access
            .iter()
            .all(|g| g.service_accounts.is_empty())
        {
            continue;
        }
        let Some(secret) = api.get_opt(&robot_secret_name(&repo.name_any())).await? else {
            continue;
        };
        if let Some(pw) = secret.data.as_ref().and_then(|d| d.get("password")) {
            out.insert(source(repo), sha256_hex(&pw.0));
        }
    }
    Ok(out)
}

/// Claims only grow, and their class and access modes are immutable: keeps
/// the existing claim's values where the spec differs, and says so.
async fn keep_existing_claim(
    pvc: &mut PersistentVolumeClaim,
    api: &Api<PersistentVolumeClaim>,
) -> Result<Option<String>, Error> {
    let name = pvc.name_any();
    let Some(existing) = api.get_opt(&name).await? else {
        return Ok(None);
    };
    let (Some(cur), Some(want)) = (existing.spec.as_ref(), pvc.spec.as_mut()) else {
        return Ok(None);
    };
    let mut notes = Vec::new();
    let size_of = |s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
        s.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
    };
    if let (Some(cur_size), Some(want_size)) = (size_of(cur), size_of(&*want))
        && let (Ok(c), Ok(w)) = (parse_bytes(&cur_size), parse_bytes(&want_size))
        && w < c
    {
        notes.push(format!(
            "PersistentVolumeClaim {name} stays at {cur_size}: the spec asks for {want_size}, and claims are never shrunk (data would be lost)"
        ));
        if let Some(req) = want.resources.as_mut().and_then(|r| r.requests.as_mut()) {
            req.insert("storage".into(), Quantity(cur_size));
        }
    }
    if cur.storage_class_name.is_some() && cur.storage_class_name != want.storage_class_name {
        if want.storage_class_name.is_some() {
            notes.push(format!(
                "PersistentVolumeClaim {name} keeps storage class {:?}: a claim's class cannot change",
                cur.storage_class_name.clone().unwrap_or_default()
            ));
        }
        want.storage_class_name = cur.storage_class_name.clone();
    }
    if cur.access_modes != want.access_modes {
        notes.push(format!(
            "PersistentVolumeClaim {name} keeps access modes {:?}: they cannot change",
            cur.access_modes.clone().unwrap_or_default()
        ));
        want.access_modes = cur.access_modes.clone();
    }
    Ok((!notes.is_empty()).then(|| notes.join("; ")))
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
    let present = crds.get_opt(SERVICE_MONITOR_CRD).await?.is_some();
    if !present {
        return Ok(desired.map(|_| {
            format!("spec.metrics.serviceMonitor is on but the CRD {SERVICE_MONITOR_CRD} is not installed (install the Prometheus operator)")
        }));
    }
    let ar = ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        plural: "servicemonitors".into(),
    };
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, &ar);
    let name = workload_name(&reg.name_any());
    match desired {
        Some(obj) => {
            let obj: DynamicObject = serde_json::from_value(obj.clone())
                .map_err(|e| Error::Json("ServiceMonitor", e))?;
            apply(&api, &obj).await?;
        }
        None => {
            delete_owned(&api, &name, &reg.uid().unwrap_or_default()).await?;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn signing_key_is_pem() {
        let pem = super::generate_signing_key().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert_ne!(pem, super::generate_signing_key().unwrap());
    }
}
