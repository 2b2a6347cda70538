//! The operator against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager) started by `tests/cluster/up.sh`.
//!
//! Built only with `--features cluster-tests`; run by
//! `tests/cluster/run-operator-tests.sh`, which starts the control plane,
//! exports KUBECONFIG and BERTH_KUBECTL, and runs these with
//! `--test-threads=1` (each test starts its own operator process).
#![cfg(feature = "cluster-tests")]

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_operator::crd::{Registry, Repository};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, Resource, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The operator binary as a child process, killed on drop.
struct Operator(Child);

impl Operator {
    fn start(extra: &[&str]) -> Self {
        let mut args = vec!["run"];
        if !extra.contains(&"--metrics-addr") {
            args.extend(["--metrics-addr", "127.0.0.1:0"]);
        }
        if extra.is_empty() {
            args.extend(["--leader-elect", "false"]);
        }
        args.extend(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_berth-operator"))
            .args(&args)
            .env("KUBECONFIG", operator_kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth-operator");
        Operator(child)
    }

    /// Sends SIGTERM and waits for the process to exit (up to 30 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("berth-operator did not exit within 30 s of SIGTERM");
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The operator runs as the ServiceAccount of operator/deploy/rbac.yaml
/// (impersonated through the admin credentials of the test cluster), so its
/// tests also prove that RBAC is enough.
fn operator_kubeconfig() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        let text = std::fs::read_to_string(&admin).expect("read KUBECONFIG");
        let mut cfg: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig yaml");
        for user in cfg["users"].as_sequence_mut().expect("users").iter_mut() {
            let u = &mut user["user"];
            u["as"] = "system:serviceaccount:berth-system:berth-operator".into();
            u["as-groups"] = serde_yaml::to_value([
                "system:serviceaccounts",
                "system:serviceaccounts:berth-system",
                "system:authenticated",
            ])
            .expect("groups");
        }
        // Beside the admin kubeconfig, in the cluster's state directory.
        let path = std::path::Path::new(&admin).with_file_name("operator.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml"))
            .expect("write kubeconfig");
        path
    })
    .clone()
}

async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run these through tests/cluster/run-operator-tests.sh"
    );
    // The registry (a dev-dependency) brings rustls' aws-lc-rs provider
    // too: with two, rustls picks none by itself (as in the operator's cli).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .expect("connect to the test cluster")
}

/// Polls `f` until it returns Some, or panics with `what` after TIMEOUT.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies the CRDs (server-side) and the operator's RBAC, and waits until
/// the CRDs are served.
async fn ensure_crds(client: &Client) {
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
    let out = Command::new(kubectl())
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&rbac)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f operator/deploy/rbac.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Registry::crd(), Repository::crd()] {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("berth-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        wait_for(&format!("CRD {name} established"), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let c = api.get(&name).await.ok()?;
                c.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

async fn namespace(client: &Client, name: &str) {
    let api = Api::<Namespace>::all(client.clone());
    if let Some(ns) = api.get_opt(name).await.expect("get namespace") {
        if ns.metadata.deletion_timestamp.is_some() {
            wait_for(&format!("namespace {name} gone"), || {
                let api = api.clone();
                async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
            })
            .await;
        } else {
            return;
        }
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

/// Creates a Registry. Its node endpoint is off unless the spec says
/// otherwise: every node port is one Registry's, and the tests' Registries
/// live side by side.
async fn create_registry(client: &Client, ns: &str, name: &str, mut spec: serde_json::Value) {
    if spec.get("nodeEndpoint").is_none() {
        spec["nodeEndpoint"] = json!({"enabled": false});
    }
    let reg: Registry = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("registry");
    Api::<Registry>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &reg)
        .await
        .expect("create Registry");
}

async fn create_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .expect("create Secret");
}

/// Waits for the condition `type_` of a Registry to have `reason`.
async fn registry_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Registry {
    let api = Api::<Registry>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Registry {ns}/{name} {type_} reason {reason}"),
        || {
            let api = api.clone();
            async move {
                let r = api.get(name).await.ok()?;
                let st = r.status.as_ref()?;
                let ok = st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.reason == reason)
                    && st.observed_generation == r.metadata.generation;
                ok.then_some(r)
            }
        },
    )
    .await
}

async fn repository_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Repository {
    let api = Api::<Repository>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Repository {ns}/{name} {type_} reason {reason}"),
        || {
            let api = api.clone();
            async move {
                let r = api.get(name).await.ok()?;
                let st = r.status.as_ref()?;
                let ok = st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.reason == reason)
                    && st.observed_generation == r.metadata.generation;
                ok.then_some(r)
            }
        },
    )
    .await
}

async fn get_when<K>(api: &Api<K>, name: &str) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{} {name}", std::any::type_name::<K>()), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()? }
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(
        &format!("{} {name} deleted", std::any::type_name::<K>()),
        || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        },
    )
    .await
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Registry" && o.controller == Some(true))
}

fn config_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("berth.dev/config-hash").cloned())
        .unwrap_or_default()
}

/// kubectl built with the control plane (up.sh exports BERTH_KUBECTL).
fn kubectl() -> String {
    std::env::var("BERTH_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

#[tokio::test]
async fn kubectl_applies_the_committed_crds() {
    let _ = client().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let out = Command::new(kubectl())
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&dir)
        .output()
        .expect("run kubectl (BERTH_KUBECTL from tests/cluster/up.sh)");
    assert!(
        out.status.success(),
        "kubectl apply -f crds/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(kubectl())
        .args(["wait", "--for=condition=Established", "--timeout=60s"])
        .args(["crd/registries.berth.dev", "crd/repositories.berth.dev"])
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn cel_rules_reject_invalid_registries() {
    let client = client().await;
    ensure_crds(&client).await;
    namespace(&client, "cel").await;
    let api = Api::<Registry>::namespaced(client.clone(), "cel");
    for (spec, want) in [
        (
            json!({"replicas": 2}),
            "more than one replica needs shared storage",
        ),
        // The field's path, not `<nil>: Invalid value: "object"`.
        (json!({"replicas": 2}), "spec.replicas: Invalid value"),
        (
            json!({"storage": {"volume": {"size": "10Zi"}}}),
            "spec.storage.volume.size: Invalid value",
        ),
        (
            json!({"storage": {"volume": {"size": "abc"}}}),
            "must be a quantity of bytes",
        ),
        (
            json!({"gc": {"schedule": "every day at 3"}}),
            "spec.gc.schedule: Invalid value",
        ),
        (
            json!({"gc": {"schedule": "@sometimes"}}),
            "must be a cron schedule",
        ),
        (
            json!({"replicas": 3, "storage": {"s3": {"bucket": "b", "credentialsSecret": "s"}}}),
            "more than one replica needs shared storage",
        ),
        (
            json!({"service": {"nodePort": 30001}}),
            "nodePort needs spec.service.type: NodePort",
        ),
        (
            json!({"storage": {"volume": {"size": "1Gi"}, "s3": {"bucket": "b", "credentialsSecret": "s"}}}),
            "either storage.volume or storage.s3",
        ),
    ] {
        let reg: Registry = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "bad"}, "spec": spec,
        }))
        .expect("registry");
        let err = api
            .create(&PostParams::default(), &reg)
            .await
            .expect_err(&format!("{spec} must be rejected"));
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422, "{s:?}");
                assert!(s.message.contains(want), "{spec}: {}", s.message);
            }
            e => panic!("unexpected error {e}"),
        }
    }
    for (spec, field) in [(json!({"replicas": 2}), "<nil>")] {
        let reg: Registry = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "bad"}, "spec": spec,
        }))
        .expect("registry");
        let err = api
            .create(&PostParams::default(), &reg)
            .await
            .expect_err("rejected");
        assert!(!err.to_string().contains(field), "{err}");
    }
    // A petabyte and a descriptor are fine.
    let big: Registry = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "big"},
        "spec": {"storage": {"volume": {"size": "1Pi"}}, "gc": {"schedule": "@weekly"}},
    }))
    .expect("registry");
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &big,
    )
    .await
    .expect("1Pi and @weekly are accepted");
    // And a good one with two replicas passes.
    let ok: Registry = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "good"},
        "spec": {"replicas": 2, "storage": {"s3": {"bucket": "b", "credentialsSecret": "s"}},
                 "database": {"postgres": {"urlSecret": {"name": "pg"}}}},
    }))
    .expect("registry");
    let created = api
        .create(&PostParams::default(), &ok)
        .await
        .expect("valid");
    // Defaults come from the schema.
    assert_eq!(created.spec.service.port, 5000);
    assert_eq!(created.spec.gc.schedule, "17 3 * * *");
    api.delete("good", &DeleteParams::default())
        .await
        .expect("delete");
    // Repository names are checked too.
    let repo: Repository = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Repository",
        "metadata": {"name": "bad"}, "spec": {"registry": "x", "name": "Bad Name"},
    }))
    .expect("repository");
    let err = Api::<Repository>::namespaced(client.clone(), "cel")
        .create(&PostParams::default(), &repo)
        .await
        .expect_err("bad name rejected");
    assert!(
        err.to_string().contains("name must be a repository name"),
        "{err}"
    );
    for (spec, want) in [
        (
            json!({"registry": "x", "name": "a", "quota": "10Zi"}),
            "spec.quota: Invalid value",
        ),
        (
            json!({"registry": "x", "name": "a", "retention": {"schedule": "every day at 3", "keepLast": 1}}),
            "spec.retention.schedule: Invalid value",
        ),
        (
            json!({"registry": "x", "name": "a", "access": [{"actions": ["pull"]}]}),
            "spec.access[0].serviceAccounts: Invalid value",
        ),
    ] {
        let repo: Repository = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Repository",
            "metadata": {"name": "bad"}, "spec": spec,
        }))
        .expect("repository");
        let err = Api::<Repository>::namespaced(client.clone(), "cel")
            .create(&PostParams::default(), &repo)
            .await
            .expect_err("rejected");
        assert!(err.to_string().contains(want), "{spec}: {err}");
    }
}

#[tokio::test]
async fn registry_lifecycle_objects_status_events_drift_rollout_and_deletion() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "lifecycle";
    namespace(&client, ns).await;
    let _op = Operator::start(&[]);
    create_registry(
        &client,
        ns,
        "hub",
        json!({"storage": {"volume": {"size": "2Gi"}}}),
    )
    .await;
    let regs = Api::<Registry>::namespaced(client.clone(), ns);
    // No nodes run pods here: the Deployment exists, its pods never get
    // ready, and status says so.
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    let uid = reg.uid().expect("uid");
    let status = reg.status.clone().expect("status");
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap_or_else(|| panic!("condition {t}"))
    };
    assert_eq!(cond("Ready").status, "False");
    assert_eq!(cond("Progressing").status, "True");
    assert_eq!(cond("Degraded").status, "False");
    assert_eq!(cond("Ready").observed_generation, reg.metadata.generation);
    assert!(
        cond("Ready")
            .message
            .contains("0 of 1 registry pods are ready")
    );
    assert_eq!(status.ready_replicas, 0);
    let svc = get_when(&Api::<Service>::namespaced(client.clone(), ns), "hub").await;
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("cluster ip");
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("{ip}:5000").as_str())
    );

    // Every object, owned by the Registry.
    let deps = Api::<Deployment>::namespaced(client.clone(), ns);
    let dep = get_when(&deps, "hub").await;
    assert!(owned_by(&dep.metadata, &uid));
    assert_eq!(config_hash(&dep), status.config_hash.clone().expect("hash"));
    let cm = get_when(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        "hub-config",
    )
    .await;
    assert!(owned_by(&cm.metadata, &uid));
    assert!(cm.data.as_ref().expect("data")["config.yaml"].contains("listen: 0.0.0.0:5000"));
    assert!(owned_by(&svc.metadata, &uid));
    let pvc = get_when(
        &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
        "hub-data",
    )
    .await;
    assert!(owned_by(&pvc.metadata, &uid));
    let cj = get_when(&Api::<CronJob>::namespaced(client.clone(), ns), "hub-gc").await;
    assert!(owned_by(&cj.metadata, &uid));
    let key = get_when(
        &Api::<Secret>::namespaced(client.clone(), ns),
        "hub-token-key",
    )
    .await;
    assert!(owned_by(&key.metadata, &uid));
    let pem = key.data.as_ref().expect("data")["key.pem"].0.clone();
    assert!(String::from_utf8_lossy(&pem).contains("BEGIN PRIVATE KEY"));
    assert!(
        Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
            .get_opt("hub")
            .await
            .expect("get pdb")
            .is_none(),
        "no PDB with one replica"
    );
    // Fields managed by server-side apply under one field manager.
    let managers: Vec<String> = dep
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["berth-operator"]);

    // Events about what it created.
    let events = Api::<Event>::namespaced(client.clone(), ns);
    wait_for("Created events", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let notes: Vec<String> = list
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hub"))
                .filter(|e| e.reason.as_deref() == Some("Created"))
                .filter_map(|e| e.note.clone())
                .collect();
            (notes.iter().any(|n| n.contains("Deployment hub"))
                && notes.iter().any(|n| n.contains("token signing key")))
            .then_some(())
        }
    })
    .await;

    // A hand edit of the Deployment is repaired.
    deps.patch(
        "hub",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "registry", "image": "evil:latest"}]}}}})),
    )
    .await
    .expect("hand edit");
    wait_for("Deployment repaired", || {
        let deps = deps.clone();
        async move {
            let d = deps.get("hub").await.ok()?;
            let spec = d.spec?;
            let image = spec.template.spec?.containers[0].image.clone()?;
            (spec.replicas == Some(1) && image != "evil:latest").then_some(())
        }
    })
    .await;

    // A config change rolls the pods (new hash on the template).
    let before = config_hash(&deps.get("hub").await.expect("dep"));
    regs.patch(
        "hub",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"logFormat": "text"}})),
    )
    .await
    .expect("change config");
    let after = wait_for("config hash to change", || {
        let deps = deps.clone();
        let before = before.clone();
        async move {
            let h = config_hash(&deps.get("hub").await.ok()?);
            (h != before && !h.is_empty()).then_some(h)
        }
    })
    .await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    assert_eq!(reg.status.and_then(|s| s.config_hash), Some(after));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("hub-config")
        .await
        .expect("cm");
    assert!(cm.data.expect("data")["config.yaml"].contains("log_format: text"));

    // Shrinking the claim is refused and reported; growing it is applied.
    regs.patch(
        "hub",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"storage": {"volume": {"size": "1Gi"}}}})),
    )
    .await
    .expect("shrink");
    let reg = registry_condition(&client, ns, "hub", "Degraded", "PartiallyApplied").await;
    let msg = reg
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .expect("degraded")
        .message;
    assert!(
        msg.contains("stays at 2Gi") && msg.contains("never shrunk"),
        "{msg}"
    );

    // Deleting the Registry removes its objects (garbage collector).
    // (Background propagation, as `kubectl delete` does.)
    regs.delete("hub", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&regs, "hub").await;
    gone(&deps, "hub").await;
    gone(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        "hub-config",
    )
    .await;
    gone(&Api::<Service>::namespaced(client.clone(), ns), "hub").await;
    gone(&Api::<CronJob>::namespaced(client.clone(), ns), "hub-gc").await;
    gone(
        &Api::<Secret>::namespaced(client.clone(), ns),
        "hub-token-key",
    )
    .await;
    gone(
        &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
        "hub-data",
    )
    .await;
}

#[tokio::test]
async fn replicas_bring_a_pdb_and_take_it_away() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "scale";
    namespace(&client, ns).await;
    create_secret(
        &client,
        ns,
        "s3",
        &[("accessKeyId", "a"), ("secretAccessKey", "b")],
    )
    .await;
    create_secret(&client, ns, "pg", &[("url", "postgres://db/berth")]).await;
    let _op = Operator::start(&[]);
    create_registry(
        &client,
        ns,
        "hub",
        json!({"replicas": 2, "storage": {"s3": {"bucket": "blobs", "credentialsSecret": "s3"}},
               "database": {"postgres": {"urlSecret": {"name": "pg"}}},
               "ingress": {"host": "registry.example.test"}}),
    )
    .await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    assert_eq!(
        reg.status.and_then(|s| s.endpoint).as_deref(),
        Some("registry.example.test")
    );
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    get_when(&pdbs, "hub").await;
    let ing = get_when(
        &Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(client.clone(), ns),
        "hub",
    )
    .await;
    assert_eq!(
        ing.spec.and_then(|s| s.rules).expect("rules")[0]
            .host
            .as_deref(),
        Some("registry.example.test")
    );
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .get_opt("hub-data")
            .await
            .expect("get")
            .is_none(),
        "no claim with S3 storage"
    );
    Api::<Registry>::namespaced(client.clone(), ns)
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1, "ingress": null}})),
        )
        .await
        .expect("scale down");
    gone(&pdbs, "hub").await;
    gone(
        &Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(client.clone(), ns),
        "hub",
    )
    .await;
}

#[tokio::test]
async fn specs_that_cannot_work_go_into_status() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "badspec";
    namespace(&client, ns).await;
    let _op = Operator::start(&[]);
    let events = Api::<Event>::namespaced(client.clone(), ns);

    // A missing Secret: Degraded, a Warning event, nothing deployed; once the
    // Secret exists the registry is deployed.
    create_registry(
        &client,
        ns,
        "hub",
        json!({"auth": {"htpasswdSecret": "users"}}),
    )
    .await;
    let reg = registry_condition(&client, ns, "hub", "Degraded", "SecretNotFound").await;
    let msg = reg
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready")
        .message;
    assert!(msg.contains("Secret badspec/users does not exist"), "{msg}");
    wait_for("SecretNotFound warning event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("SecretNotFound")
                })
                .then_some(())
        }
    })
    .await;
    let deps = Api::<Deployment>::namespaced(client.clone(), ns);
    assert!(deps.get_opt("hub").await.expect("get").is_none());
    create_secret(
        &client,
        ns,
        "users",
        &[("htpasswd", "alice:$2y$05$abcdefghijklmnopqrstuu")],
    )
    .await;
    get_when(&deps, "hub").await;
    registry_condition(&client, ns, "hub", "Degraded", "AsExpected").await;

    // A bad gc schedule.
    Api::<Registry>::namespaced(client.clone(), ns)
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gc": {"schedule": "61 * * * *"}}})),
        )
        .await
        .expect("bad schedule");
    registry_condition(&client, ns, "hub", "Degraded", "InvalidSchedule").await;

    // A Repository of a Registry that does not exist.
    let repo: Repository = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Repository",
        "metadata": {"name": "orphan"}, "spec": {"registry": "nope", "name": "team/app"},
    }))
    .expect("repo");
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repo)
        .await
        .expect("create");
    let r = repository_condition(&client, ns, "orphan", "Degraded", "RegistryNotFound").await;
    let msg = &r.status.expect("status").conditions[0].message;
    assert!(msg.contains("no Registry badspec/nope"), "{msg}");
}

#[tokio::test]
async fn repository_grants_pull_secrets_across_namespaces_and_cleans_up() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "platform";
    namespace(&client, ns).await;
    namespace(&client, "builds").await;
    let _op = Operator::start(&[]);
    create_registry(&client, ns, "hub", json!({})).await;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), "builds");
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": "runner"}, "imagePullSecrets": [{"name": "existing"}]}),
    )
    .expect("sa");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create sa");

    let repos = Api::<Repository>::namespaced(client.clone(), ns);
    let repo: Repository = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Repository",
        "metadata": {"name": "ci"},
        "spec": {"registry": "hub", "name": "ci/*", "visibility": "Public",
                 "access": [{"serviceAccounts": [{"namespace": "builds", "name": "runner"}], "actions": ["pull", "push"]}],
                 "retention": {"schedule": "@daily", "keepLast": 5}},
    }))
    .expect("repo");
    repos
        .create(&PostParams::default(), &repo)
        .await
        .expect("create repo");
    // builds has not accepted grants from platform: nothing is written there.
    let r = repository_condition(&client, ns, "ci", "Degraded", "GrantNotAccepted").await;
    let ready = r
        .status
        .as_ref()
        .expect("status")
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready")
        .clone();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "GrantNotAccepted")
    );
    assert!(
        ready
            .message
            .contains("kubectl annotate namespace builds berth.dev/accept-grants-from=platform"),
        "{}",
        ready.message
    );
    assert!(r.status.as_ref().expect("status").pull_secrets.is_empty());
    let pull_name = "berth-pull-platform-ci";
    let secrets = Api::<Secret>::namespaced(client.clone(), "builds");
    assert!(secrets.get_opt(pull_name).await.expect("get").is_none());
    assert_eq!(
        sas.get("runner")
            .await
            .expect("sa")
            .image_pull_secrets
            .map(|l| l.len()),
        Some(1),
        "the account is left alone"
    );
    // builds consents.
    Api::<Namespace>::all(client.clone())
        .patch(
            "builds",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"berth.dev/accept-grants-from": "ops, platform"}}})),
        )
        .await
        .expect("annotate");
    // No registry pod is ready here (no kubelet): usable it is not.
    let r = repository_condition(&client, ns, "ci", "Ready", "RegistryNotReady").await;
    assert_eq!(r.finalizers(), ["berth.dev/pull-secrets"]);
    assert_eq!(
        r.status.as_ref().expect("status").pull_secrets,
        [format!("builds/{pull_name}")]
    );

    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    let endpoint = reg.status.and_then(|s| s.endpoint).expect("endpoint");
    // The pull Secret names the Registry's endpoint (updated once the
    // Registry's status has it).
    let s = wait_for("pull Secret for the endpoint", || {
        let secrets = secrets.clone();
        let endpoint = endpoint.clone();
        async move {
            let s = secrets.get(pull_name).await.ok()?;
            let cfg: serde_json::Value =
                serde_json::from_slice(&s.data.as_ref()?.get(".dockerconfigjson")?.0).ok()?;
            (cfg["auths"][&endpoint]["username"] == "robot$platform+ci").then_some(s)
        }
    })
    .await;
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    let names = |sa: ServiceAccount| -> Vec<String> {
        sa.image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    wait_for("imagePullSecrets entry", || {
        let sas = sas.clone();
        async move {
            let n = names(sas.get("runner").await.ok()?);
            (n == ["existing", pull_name]).then_some(())
        }
    })
    .await;
    // Retention CronJob, owned by the Repository.
    let cj = get_when(
        &Api::<CronJob>::namespaced(client.clone(), ns),
        "ci-retention",
    )
    .await;
    assert_eq!(cj.spec.expect("spec").schedule, "@daily");
    // The rules are in the Registry's policy file, with the robot.
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns);
    wait_for("policy with the repository", || {
        let cms = cms.clone();
        async move {
            let cm = cms.get("hub-config").await.ok()?;
            let policy = cm.data?.get("policy.yaml")?.clone();
            (policy.contains("ci/*")
                && policy.contains("robot:robot$platform+ci")
                && policy.contains("anonymous"))
            .then_some(())
        }
    })
    .await;

    // Removing the grant removes the Secret and the entry.
    repos
        .patch(
            "ci",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": []}})),
        )
        .await
        .expect("remove grant");
    gone(&secrets, pull_name).await;
    wait_for("imagePullSecrets entry removed", || {
        let sas = sas.clone();
        async move { (names(sas.get("runner").await.ok()?) == ["existing"]).then_some(()) }
    })
    .await;

    // Grant again, then delete the Repository: the finalizer cleans up.
    repos
        .patch(
            "ci",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": [{"serviceAccounts": [{"namespace": "builds", "name": "runner"}], "actions": ["pull"]}]}})),
        )
        .await
        .expect("grant again");
    get_when(&secrets, pull_name).await;
    // Consent withdrawn: the Secret and the entry go.
    Api::<Namespace>::all(client.clone())
        .patch(
            "builds",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"berth.dev/accept-grants-from": "ops"}}}),
            ),
        )
        .await
        .expect("annotate");
    gone(&secrets, pull_name).await;
    wait_for("imagePullSecrets entry removed with the consent", || {
        let sas = sas.clone();
        async move { (names(sas.get("runner").await.ok()?) == ["existing"]).then_some(()) }
    })
    .await;
    repository_condition(&client, ns, "ci", "Degraded", "GrantNotAccepted").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            "builds",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"berth.dev/accept-grants-from": "*"}}}),
            ),
        )
        .await
        .expect("annotate");
    get_when(&secrets, pull_name).await;
    repos
        .delete("ci", &DeleteParams::default())
        .await
        .expect("delete repo");
    gone(&repos, "ci").await;
    gone(&secrets, pull_name).await;
    wait_for("imagePullSecrets entry removed after delete", || {
        let sas = sas.clone();
        async move { (names(sas.get("runner").await.ok()?) == ["existing"]).then_some(()) }
    })
    .await;
    wait_for("policy without the repository", || {
        let cms = cms.clone();
        async move {
            let cm = cms.get("hub-config").await.ok()?;
            (!cm.data?.get("policy.yaml")?.contains("ci/*")).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_fail_over() {
    let client = client().await;
    ensure_crds(&client).await;
    namespace(&client, "berth-system").await;
    let leases = Api::<Lease>::namespaced(client.clone(), "berth-system");
    let args = |id: &'static str| -> Vec<&'static str> {
        vec![
            "--leader-elect",
            "true",
            "--lease-namespace",
            "berth-system",
            "--lease-name",
            "berth-operator-test",
            "--lease-seconds",
            "4",
            "--identity",
            id,
        ]
    };
    let mut a = Operator::start(&args("operator-a"));
    let holder = wait_for("a leader", || {
        let leases = leases.clone();
        async move {
            let l = leases.get("berth-operator-test").await.ok()?;
            l.spec?.holder_identity.filter(|h| !h.is_empty())
        }
    })
    .await;
    assert_eq!(holder, "operator-a");
    let mut b = Operator::start(&args("operator-b"));
    // b waits while a renews.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let l = leases.get("berth-operator-test").await.expect("lease");
    assert_eq!(
        l.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("operator-a")
    );
    // Kill a without a chance to release: b takes over once the lease expires.
    a.kill();
    wait_for("b to take over", || {
        let leases = leases.clone();
        async move {
            let l = leases.get("berth-operator-test").await.ok()?;
            (l.spec?.holder_identity.as_deref() == Some("operator-b")).then_some(())
        }
    })
    .await;
    // And b reconciles: a Registry gets its objects.
    namespace(&client, "failover").await;
    create_registry(&client, "failover", "hub", json!({})).await;
    get_when(
        &Api::<Deployment>::namespaced(client.clone(), "failover"),
        "hub",
    )
    .await;
    b.kill();
    let _ = BTreeMap::<String, String>::new();
}

#[tokio::test]
async fn service_monitor_when_asked_and_its_crd_exists() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "monitoring";
    namespace(&client, ns).await;
    let _op = Operator::start(&[]);
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let _ = crds
        .delete(
            "servicemonitors.monitoring.coreos.com",
            &DeleteParams::default(),
        )
        .await;
    gone(&crds, "servicemonitors.monitoring.coreos.com").await;
    // Asked for without the CRD: said in status, the rest is deployed.
    create_registry(
        &client,
        ns,
        "hub",
        json!({"metrics": {"serviceMonitor": true}}),
    )
    .await;
    let reg = registry_condition(&client, ns, "hub", "Degraded", "PartiallyApplied").await;
    let msg = reg
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .expect("degraded")
        .message;
    assert!(
        msg.contains("servicemonitors.monitoring.coreos.com is not installed"),
        "{msg}"
    );
    get_when(&Api::<Deployment>::namespaced(client.clone(), ns), "hub").await;

    // The Prometheus operator's CRD (a minimal stand-in schema).
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create SM CRD");
    let ar = kube::api::ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        plural: "servicemonitors".into(),
    };
    let sms = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &ar);
    // Picked up on the next check (the spec did not change).
    let sm = get_when(&sms, "hub").await;
    // It scrapes the registry's own metrics listener, not the API port.
    assert_eq!(sm.data["spec"]["endpoints"][0]["port"], "metrics");
    assert!(
        sm.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Registry")
    );
    registry_condition(&client, ns, "hub", "Degraded", "AsExpected").await;
    // Turned off: removed.
    Api::<Registry>::namespaced(client.clone(), ns)
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"metrics": {"serviceMonitor": false}}})),
        )
        .await
        .expect("turn off");
    gone(&sms, "hub").await;
}

/// GET `path` from 127.0.0.1:`port` over plain HTTP/1.1.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    sock.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    sock.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test]
async fn metrics_healthz_and_graceful_shutdown_releases_the_lease() {
    let client = client().await;
    ensure_crds(&client).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut op = Operator::start(&[
        "--leader-elect",
        "true",
        "--lease-namespace",
        "berth-system",
        "--lease-name",
        "berth-operator-shutdown",
        "--identity",
        "operator-s",
        "--metrics-addr",
        &addr,
    ]);
    let leases = Api::<Lease>::namespaced(client.clone(), "berth-system");
    wait_for("leadership", || {
        let leases = leases.clone();
        async move {
            let l = leases.get("berth-operator-shutdown").await.ok()?;
            (l.spec?.holder_identity.as_deref() == Some("operator-s")).then_some(())
        }
    })
    .await;
    let health = wait_for("/healthz", || http_get(port, "/healthz")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    namespace(&client, "metrics").await;
    create_registry(&client, "metrics", "hub", json!({})).await;
    let metrics = wait_for("reconcile metrics", || async move {
        let m = http_get(port, "/metrics").await?;
        m.contains("berth_operator_reconciles_total{controller=\"registry\"}")
            .then_some(m)
    })
    .await;
    assert!(
        metrics.contains("berth_operator_reconcile_duration_seconds_sum"),
        "{metrics}"
    );
    // SIGTERM: the controllers stop, the Lease is released, exit 0.
    let status = op.terminate();
    assert!(status.success(), "exit status {status}");
    let l = leases.get("berth-operator-shutdown").await.expect("lease");
    assert_eq!(l.spec.and_then(|s| s.holder_identity), None);
}

/// The Secrets of a Registry on PostgreSQL and S3 (their content is never
/// used: no pod runs here).
async fn ha_secrets(client: &Client, ns: &str) {
    create_secret(
        client,
        ns,
        "s3",
        &[("accessKeyId", "berth"), ("secretAccessKey", "secret")],
    )
    .await;
    create_secret(
        client,
        ns,
        "pg",
        &[("url", "postgres://berth:secret@postgres.db:5432/berth")],
    )
    .await;
}

fn ha_spec(replicas: i32) -> serde_json::Value {
    json!({"replicas": replicas,
           "storage": {"s3": {"bucket": "blobs", "endpoint": "http://versitygw.storage:7070", "credentialsSecret": "s3"}},
           "database": {"postgres": {"urlSecret": {"name": "pg"}}}})
}

/// Waits until a reconcile has run since now: deletes the (owned, watched)
/// ConfigMap and waits for the operator to make it again.
async fn a_reconcile_later(client: &Client, ns: &str) {
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let before = cms.get("hub-config").await.expect("config map").uid();
    cms.delete("hub-config", &DeleteParams::default())
        .await
        .expect("delete config map");
    wait_for("the ConfigMap made again", || {
        let cms = cms.clone();
        let before = before.clone();
        async move {
            let cm = cms.get_opt("hub-config").await.ok()??;
            (cm.uid() != before).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn replicas_on_postgres_and_s3_one_key_a_budget_and_scaling_without_restarts() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "ha";
    namespace(&client, ns).await;
    ha_secrets(&client, ns).await;
    let _op = Operator::start(&[]);
    create_registry(&client, ns, "hub", ha_spec(3)).await;
    registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;

    // A Deployment of 3 that rolls a new pod in before an old one goes.
    let deps = Api::<Deployment>::namespaced(client.clone(), ns);
    let dep = get_when(&deps, "hub").await;
    let spec = dep.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let strategy = spec.strategy.clone().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    assert_eq!(
        rolling.max_surge,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let pod = spec.template.spec.clone().expect("pod");
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    let data = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .expect("data volume");
    assert!(data.empty_dir.is_some() && data.persistent_volume_claim.is_none());
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .get_opt("hub-data")
            .await
            .expect("get")
            .is_none(),
        "no claim on PostgreSQL and S3"
    );
    let cm = get_when(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        "hub-config",
    )
    .await;
    let config = cm.data.expect("data")["config.yaml"].clone();
    for line in [
        "storage: s3",
        "bucket: blobs",
        "shutdown_delay_seconds: 5",
        "shutdown_timeout_seconds: 30",
        "token_key_file: /etc/berth/token/key.pem",
    ] {
        assert!(config.contains(line), "{line:?} not in {config}");
    }
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    let pdb = get_when(&pdbs, "hub").await;
    assert_eq!(
        pdb.spec.and_then(|s| s.max_unavailable),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );

    // One token key, made once and kept across reconciles.
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let key = get_when(&secrets, "hub-token-key").await;
    let pem = key.data.clone().expect("data")["key.pem"].0.clone();
    assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN PRIVATE KEY-----"));
    for _ in 0..2 {
        a_reconcile_later(&client, ns).await;
    }
    let again = secrets.get("hub-token-key").await.expect("key");
    assert_eq!(again.uid(), key.uid(), "the same Secret");
    assert_eq!(
        again.resource_version(),
        key.resource_version(),
        "never rewritten"
    );
    assert_eq!(again.data.expect("data")["key.pem"].0, pem);

    // Scaling changes spec.replicas only: the same pod template, the same
    // ReplicaSet, no pod replaced.
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns);
    let sets = wait_for("the ReplicaSet", || {
        let replica_sets = replica_sets.clone();
        async move {
            let list = replica_sets.list(&ListParams::default()).await.ok()?;
            (!list.items.is_empty()).then_some(list.items)
        }
    })
    .await;
    assert_eq!(sets.len(), 1);
    let regs = Api::<Registry>::namespaced(client.clone(), ns);
    for (replicas, budget) in [(2, true), (1, false)] {
        regs.patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scale");
        let scaled = wait_for(&format!("Deployment at {replicas}"), || {
            let deps = deps.clone();
            async move {
                let d = deps.get("hub").await.ok()?;
                (d.spec.as_ref()?.replicas == Some(replicas)).then_some(d)
            }
        })
        .await;
        let mut scaled_spec = scaled.spec.expect("spec");
        assert_eq!(
            scaled_spec.template, spec.template,
            "pod template unchanged"
        );
        scaled_spec.replicas = spec.replicas;
        assert_eq!(scaled_spec, spec, "only spec.replicas changed");
        if budget {
            get_when(&pdbs, "hub").await;
        } else {
            gone(&pdbs, "hub").await;
        }
        let now = replica_sets
            .list(&ListParams::default())
            .await
            .expect("replica sets");
        assert_eq!(now.items.len(), 1, "no new ReplicaSet");
        assert_eq!(now.items[0].uid(), sets[0].uid(), "the same ReplicaSet");
        let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
        assert!(
            reg.status
                .expect("status")
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready"
                    && c.message
                        .contains(&format!("0 of {replicas} registry pods"))),
            "status follows the scale"
        );
    }

    // Back to the embedded database on one replica: a claim, one pod at a time.
    regs.patch(
        "hub",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"database": null}})),
    )
    .await
    .expect("drop postgres");
    get_when(
        &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
        "hub-data",
    )
    .await;
    wait_for("Recreate", || {
        let deps = deps.clone();
        async move {
            let d = deps.get("hub").await.ok()?;
            let s = d.spec?.strategy?;
            (s.type_.as_deref() == Some("Recreate") && s.rolling_update.is_none()).then_some(())
        }
    })
    .await;
}

/// A stand-in for a registry pod's `/readyz` on 127.0.0.1: answers every
/// request with the status and body set last.
struct FakeReadyz {
    port: u16,
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeReadyz {
    async fn start(status: u16, body: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answer = std::sync::Arc::new(std::sync::Mutex::new((status, body.to_string())));
        let shared = answer.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (status, body) = shared.lock().expect("answer").clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf).await;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        FakeReadyz { port, answer, task }
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().expect("answer") = (status, body.to_string());
    }
}

impl Drop for FakeReadyz {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// No kubelet runs here: a Pod with the registry's labels is made to look
/// running and unready at 127.0.0.1, where a stand-in answers its /readyz
/// as `berth serve` does; the status names the failing dependency, and a
/// Warning Event says it once.
#[tokio::test]
async fn unready_pods_say_which_dependency_is_down() {
    use k8s_openapi::api::core::v1::Pod;
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "outage";
    namespace(&client, ns).await;
    ha_secrets(&client, ns).await;
    let readyz = FakeReadyz::start(503, "metadata store unreachable").await;
    let _op = Operator::start(&[]);
    create_registry(&client, ns, "hub", ha_spec(2)).await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    let uid = reg.uid().expect("uid");

    // The pod: the Deployment's labels, controlled by the Registry (so that
    // its ReplicaSet does not adopt it), its http port the stand-in's.
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "hub-replica-a",
            "labels": {
                "app.kubernetes.io/name": "berth",
                "app.kubernetes.io/instance": "hub",
                "app.kubernetes.io/component": "registry",
            },
            "ownerReferences": [{
                "apiVersion": "berth.dev/v1alpha1", "kind": "Registry", "name": "hub",
                "uid": uid, "controller": true,
            }],
        },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "registry", "image": "berth:test",
                "ports": [{"name": "http", "containerPort": readyz.port}],
            }],
        },
    }))
    .expect("pod");
    wait_for("the Pod created", || {
        let pods = pods.clone();
        let pod = pod.clone();
        // (Retried until the namespace's default ServiceAccount exists.)
        async move { pods.create(&PostParams::default(), &pod).await.ok() }
    })
    .await;
    pods.patch_status(
        "hub-replica-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "False"}],
        }})),
    )
    .await
    .expect("pod status");
    let regs = Api::<Registry>::namespaced(client.clone(), ns);
    let nudge = |n: u32| {
        let regs = regs.clone();
        async move {
            regs.patch(
                "hub",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"test/nudge": n.to_string()}}})),
            )
            .await
            .expect("annotate");
        }
    };
    nudge(1).await;

    let reg = registry_condition(&client, ns, "hub", "Degraded", "DatabaseUnreachable").await;
    let conditions = reg.status.expect("status").conditions;
    let degraded = conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("degraded");
    assert_eq!(degraded.status, "True");
    assert!(
        degraded.message.starts_with(
            "PostgreSQL (the URL in Secret pg, key url) does not answer pod hub-replica-a"
        ),
        "{}",
        degraded.message
    );
    let ready = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DatabaseUnreachable")
    );
    let events = Api::<Event>::namespaced(client.clone(), ns);
    let warnings = |reason: &'static str| {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            // Repeats of one Event are a series on it (the Recorder).
            let n: i32 = list
                .items
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .sum();
            (n > 0).then_some(n)
        }
    };
    wait_for("a DatabaseUnreachable Warning", || {
        warnings("DatabaseUnreachable")
    })
    .await;

    // The bucket instead.
    readyz.answer(503, "blob store unreachable");
    nudge(2).await;
    let reg = registry_condition(&client, ns, "hub", "Degraded", "StorageUnreachable").await;
    let degraded = reg
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .expect("degraded");
    assert!(
        degraded.message.starts_with(
            "bucket blobs at http://versitygw.storage:7070 does not answer pod hub-replica-a"
        ),
        "{}",
        degraded.message
    );
    wait_for("a StorageUnreachable Warning", || {
        warnings("StorageUnreachable")
    })
    .await;

    // Both back (the pod about to turn ready): nothing blamed.
    readyz.answer(200, "ready");
    nudge(3).await;
    registry_condition(&client, ns, "hub", "Degraded", "AsExpected").await;
    registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    // A pod shutting down blames nothing either.
    readyz.answer(503, "shutting down");
    nudge(4).await;
    a_reconcile_later(&client, ns).await;
    registry_condition(&client, ns, "hub", "Degraded", "AsExpected").await;
    // Still one Warning per outage.
    assert_eq!(
        warnings("DatabaseUnreachable").await.unwrap_or_default(),
        1,
        "one DatabaseUnreachable Warning"
    );
}

/// A stand-in for a registry pod's listeners on 127.0.0.1: answers each
/// path (query left out) with the status and body set last for it; 404
/// otherwise. Serves `/readyz` and the operations endpoints alike.
struct FakePod {
    port: u16,
    answers: std::sync::Arc<std::sync::Mutex<BTreeMap<String, (u16, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePod {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let shared = answers.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .split('?')
                        .next()
                        .unwrap_or("/")
                        .to_string();
                    let (status, body) = shared
                        .lock()
                        .expect("answers")
                        .get(&path)
                        .cloned()
                        .unwrap_or((404, String::new()));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        FakePod {
            port,
            answers,
            task,
        }
    }

    fn answer(&self, path: &str, status: u16, body: impl Into<String>) {
        self.answers
            .lock()
            .expect("answers")
            .insert(path.to_string(), (status, body.into()));
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Pod with the registry's labels, controlled by the Registry (so that
/// no ReplicaSet adopts it), whose `http` and `metrics` ports are the
/// stand-in's; made to look running at 127.0.0.1 with `status` merged in.
async fn fake_registry_pod(
    client: &Client,
    ns: &str,
    registry: &Registry,
    name: &str,
    port: u16,
    status: serde_json::Value,
) {
    use k8s_openapi::api::core::v1::Pod;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "berth",
                "app.kubernetes.io/instance": registry.name_any(),
                "app.kubernetes.io/component": "registry",
            },
            "ownerReferences": [{
                "apiVersion": "berth.dev/v1alpha1", "kind": "Registry", "name": registry.name_any(),
                "uid": registry.uid().expect("uid"), "controller": true,
            }],
        },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "registry", "image": "berth:test",
                "ports": [{"name": "http", "containerPort": port},
                          {"name": "metrics", "containerPort": port}],
            }],
        },
    }))
    .expect("pod");
    wait_for("the Pod created", || {
        let pods = pods.clone();
        let pod = pod.clone();
        // (Retried until the namespace's default ServiceAccount exists.)
        async move { pods.create(&PostParams::default(), &pod).await.ok() }
    })
    .await;
    let mut merged =
        json!({"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]});
    for (k, v) in status.as_object().expect("status object") {
        merged[k] = v.clone();
    }
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": merged })),
    )
    .await
    .expect("pod status");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Ready means usable: a Repository is Ready only once every ready
/// registry pod reports (on its operations port) the SHA-256 of the policy
/// file that holds its rules; the pods are annotated with that hash (which
/// makes the kubelet update their ConfigMap volume at once); its status
/// carries what the registry says the repository holds.
#[tokio::test]
async fn a_repository_is_ready_once_every_registry_pod_serves_its_rules() {
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "serving";
    namespace(&client, ns).await;
    let fake = FakePod::start().await;
    fake.answer(
        "/status",
        200,
        json!({"policy_sha256": "0".repeat(64)}).to_string(),
    );
    fake.answer(
        "/usage",
        200,
        json!({"repositories": 1, "tags": 3, "manifests": 2, "bytes": 4096}).to_string(),
    );
    let _op = Operator::start(&["--leader-elect", "false", "--usage-refresh-seconds", "1"]);
    create_registry(&client, ns, "hub", json!({})).await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "ci"}})).expect("sa");
    sas.create(&PostParams::default(), &sa).await.expect("sa");
    let repos = Api::<Repository>::namespaced(client.clone(), ns);
    let repo: Repository = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Repository",
        "metadata": {"name": "app"},
        "spec": {"registry": "hub", "name": "team/app",
                 "access": [{"serviceAccounts": [{"name": "ci"}], "actions": ["pull", "push"]}]},
    }))
    .expect("repo");
    repos
        .create(&PostParams::default(), &repo)
        .await
        .expect("repo");

    // No registry pod ready: not usable.
    let r = repository_condition(&client, ns, "app", "Ready", "RegistryNotReady").await;
    assert_eq!(r.status.expect("status").tag_count, None);

    // A ready pod still on an older policy: pending; and it is nudged.
    fake_registry_pod(
        &client,
        ns,
        &reg,
        "hub-replica-a",
        fake.port,
        json!({"conditions": [{"type": "Ready", "status": "True"}]}),
    )
    .await;
    let r = repository_condition(&client, ns, "app", "Ready", "PolicyPending").await;
    let msg = r.status.expect("status").conditions[0].message.clone();
    assert!(
        msg.starts_with("0 of 1 ready registry pod(s) of Registry serving/hub serve its rules"),
        "{msg}"
    );
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let policy = wait_for("the policy with the robot", || {
        let cms = cms.clone();
        async move {
            let p = cms
                .get("hub-config")
                .await
                .ok()?
                .data?
                .get("policy.yaml")?
                .clone();
            p.contains("robot$serving+app").then_some(p)
        }
    })
    .await;
    let hash = sha256_hex(policy.as_bytes());
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns);
    wait_for("the pod annotated with the policy's hash", || {
        let pods = pods.clone();
        let hash = hash.clone();
        async move {
            let p = pods.get("hub-replica-a").await.ok()?;
            (p.annotations().get("berth.dev/policy-sha256") == Some(&hash)).then_some(())
        }
    })
    .await;

    // The pod loaded it: Ready, with what the registry holds.
    fake.answer("/status", 200, json!({"policy_sha256": hash}).to_string());
    let r = repository_condition(&client, ns, "app", "Ready", "Configured").await;
    let status = r.status.expect("status");
    assert!(
        status.conditions[0]
            .message
            .starts_with("served by 1 registry pod(s) of Registry serving/hub"),
        "{}",
        status.conditions[0].message
    );
    assert!(status.served_rules.is_some());
    let with_usage = wait_for("tagCount and sizeBytes", || {
        let repos = repos.clone();
        async move {
            let s = repos.get("app").await.ok()?.status?;
            (s.tag_count == Some(3) && s.size_bytes == Some(4096)).then_some(s)
        }
    })
    .await;
    assert_eq!(
        with_usage.pull_secrets,
        [format!("{ns}/berth-pull-{ns}-app")]
    );
    // Usage is read again on its schedule.
    fake.answer(
        "/usage",
        200,
        json!({"repositories": 1, "tags": 4, "manifests": 3, "bytes": 5000}).to_string(),
    );
    wait_for("tagCount 4", || {
        let repos = repos.clone();
        async move { (repos.get("app").await.ok()?.status?.tag_count == Some(4)).then_some(()) }
    })
    .await;
    // `kubectl get repositories` shows them.
    let out = Command::new(kubectl())
        .args(["get", "repositories", "-n", ns])
        .output()
        .expect("kubectl");
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().unwrap_or_default();
    for col in ["REASON", "TAGS", "SIZE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains("Configured") && table.contains("5000"),
        "{table}"
    );
}

/// The node endpoint: a DaemonSet forwarding localhost:<port> to the
/// Service's cluster IP, the endpoint Pods use and the pull Secrets name,
/// one Registry per port; the image of Registries that name none is the
/// operator's `--registry-image`.
#[tokio::test]
async fn the_node_endpoint_and_the_operators_image() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "nodes";
    namespace(&client, ns).await;
    let image = "registry.example/berth/berth:e2e-42";
    let _op = Operator::start(&["--leader-elect", "false", "--registry-image", image]);
    create_registry(&client, ns, "hub", json!({"nodeEndpoint": {"port": 15000}})).await;
    let dss = Api::<DaemonSet>::namespaced(client.clone(), ns);
    let ds = get_when(&dss, "hub-node").await;
    let svc = get_when(&Api::<Service>::namespaced(client.clone(), ns), "hub").await;
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("cluster IP");
    let pod = ds.spec.expect("spec").template.spec.expect("pod");
    assert_eq!(pod.host_network, Some(true));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(image));
    let args = c.args.clone().expect("args");
    assert_eq!(
        args.last().map(String::as_str),
        Some(format!("{ip}:5000").as_str())
    );
    assert!(args.contains(&"127.0.0.1:15000".to_string()), "{args:?}");
    let dep = get_when(&Api::<Deployment>::namespaced(client.clone(), ns), "hub").await;
    assert_eq!(
        dep.spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .image
            .as_deref(),
        Some(image),
        "a Registry that names no image runs the operator's"
    );
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    assert_eq!(
        reg.status.and_then(|s| s.endpoint).as_deref(),
        Some("localhost:15000")
    );

    // Another Registry on that port is refused; on another port it is fine.
    create_registry(
        &client,
        ns,
        "second",
        json!({"nodeEndpoint": {"port": 15000}}),
    )
    .await;
    let r = registry_condition(&client, ns, "second", "Degraded", "NodePortInUse").await;
    let msg = &r.status.expect("status").conditions[0].message;
    assert!(msg.contains("Registry nodes/hub already"), "{msg}");
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt("second")
            .await
            .expect("get")
            .is_none()
    );
    Api::<Registry>::namespaced(client.clone(), ns)
        .patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeEndpoint": {"port": 15001}}})),
        )
        .await
        .expect("another port");
    registry_condition(&client, ns, "second", "Ready", "PodsNotReady").await;
    get_when(&dss, "second-node").await;

    // Off: the DaemonSet goes, Pods pull from the Service's address.
    Api::<Registry>::namespaced(client.clone(), ns)
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeEndpoint": {"enabled": false}}})),
        )
        .await
        .expect("off");
    gone(&dss, "hub-node").await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    assert_eq!(
        reg.status.and_then(|s| s.endpoint),
        Some(format!("{ip}:5000"))
    );
}

/// Why pods do not serve, from what Kubernetes says of them: an image that
/// cannot be pulled, a claim the scheduler cannot bind; each its own
/// reason, a Warning once, and back to PodsNotReady when it is over.
#[tokio::test]
async fn pods_that_do_not_serve_say_why() {
    use k8s_openapi::api::core::v1::Pod;
    let client = client().await;
    ensure_crds(&client).await;
    let ns = "troubles";
    namespace(&client, ns).await;
    let fake = FakePod::start().await;
    let _op = Operator::start(&[]);
    create_registry(
        &client,
        ns,
        "hub",
        json!({"image": "registry.example/nope:1"}),
    )
    .await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
    fake_registry_pod(
        &client,
        ns,
        &reg,
        "hub-replica-a",
        fake.port,
        json!({
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "registry", "image": "registry.example/nope:1", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                                      "message": "Back-off pulling image \"registry.example/nope:1\""}},
            }],
        }),
    )
    .await;
    let regs = Api::<Registry>::namespaced(client.clone(), ns);
    let nudge = |n: u32| {
        let regs = regs.clone();
        async move {
            regs.patch(
                "hub",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"test/nudge": n.to_string()}}})),
            )
            .await
            .expect("annotate");
        }
    };
    nudge(1).await;
    let reg = registry_condition(&client, ns, "hub", "Ready", "ImagePullFailed").await;
    let conditions = reg.status.expect("status").conditions;
    let degraded = conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ImagePullFailed")
    );
    assert!(
        degraded.message.starts_with(
            "pod hub-replica-a cannot pull image registry.example/nope:1: Back-off pulling image"
        ),
        "{}",
        degraded.message
    );
    let events = Api::<Event>::namespaced(client.clone(), ns);
    wait_for("an ImagePullFailed Warning", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("ImagePullFailed")
                })
                .then_some(())
        }
    })
    .await;

    // The image pulled; the scheduler cannot place the pod for its claim
    // (here no PersistentVolume exists and nothing binds claims).
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    pods.patch_status(
        "hub-replica-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "containerStatuses": null,
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}],
        }})),
    )
    .await
    .expect("pod status");
    nudge(2).await;
    let reg = registry_condition(&client, ns, "hub", "Degraded", "ClaimPending").await;
    let msg = &reg.status.expect("status").conditions[2].message;
    assert!(
        msg.starts_with("PersistentVolumeClaim troubles/hub-data is Pending"),
        "{msg}"
    );
    // Gone: nothing blamed.
    pods.delete("hub-replica-a", &DeleteParams::default())
        .await
        .expect("delete pod");
    gone(&pods, "hub-replica-a").await;
    nudge(3).await;
    registry_condition(&client, ns, "hub", "Degraded", "AsExpected").await;
    registry_condition(&client, ns, "hub", "Ready", "PodsNotReady").await;
}
