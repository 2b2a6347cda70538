//! The Helm chart `charts/berth`, rendered by the real Helm CLI
//! (`helm template`): every object parses as its Kubernetes type, labels and
//! selectors fit together, the RBAC is exactly what the operator's code calls
//! and the same as operator/deploy/rbac.yaml, the CRDs are the generated ones,
//! and the values switch what they say.
//!
//! Helm comes from BERTH_HELM_BIN (set by `tests/tools/install.sh --paths`,
//! which .ci/run evaluates) or PATH; without it these tests fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_operator::crd::{Registry, Repository};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "berth-system";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/berth")
}

fn helm() -> String {
    std::env::var("BERTH_HELM_BIN").unwrap_or_else(|_| "helm".into())
}

/// Runs helm with `args`; returns (success, stdout, stderr).
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (built by tests/tools/install.sh; set BERTH_HELM_BIN): {e}",
                helm()
            )
        });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn template_args<'a>(chart: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "template",
        "berth",
        chart,
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    args
}

/// `helm template` with `extra` arguments: every document, as JSON.
fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir().display().to_string();
    let (ok, stdout, stderr) = run_helm(&template_args(&chart, extra));
    assert!(ok, "helm template {extra:?} failed:\n{stderr}");
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&stdout) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e| panic!("helm template printed invalid YAML: {e}\n{stdout}"));
        if v.is_null() {
            continue;
        }
        docs.push(serde_json::to_value(v).expect("YAML to JSON"));
    }
    docs
}

/// `helm template` with `extra` must fail; returns its error output.
fn render_fails(extra: &[&str]) -> String {
    let chart = chart_dir().display().to_string();
    let (ok, stdout, stderr) = run_helm(&template_args(&chart, extra));
    assert!(!ok, "helm template {extra:?} succeeded:\n{stdout}");
    stderr
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn all_of<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = all_of(docs, k);
    assert_eq!(found.len(), 1, "expected one {k}, found {}", found.len());
    found[0]
}

/// Parses `doc` as `T` and checks nothing was lost: serialising the typed
/// object gives the document back, so a misspelt or misplaced field (which
/// serde would skip) fails here.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{} {} does not parse as {}: {e}",
            kind(doc),
            name(doc),
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&obj).expect("serialise");
    assert_eq!(
        &back,
        doc,
        "{} {} has fields its type does not know (typed round trip differs)",
        kind(doc),
        name(doc)
    );
    obj
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// Every namespaced object is in the release namespace; cluster-scoped ones
/// carry none.
fn check_namespaces(docs: &[Value]) {
    for d in docs {
        let ns = d["metadata"]["namespace"].as_str();
        match kind(d) {
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition" => {
                assert_eq!(ns, None, "{} {} has a namespace", kind(d), name(d))
            }
            _ => assert_eq!(
                ns,
                Some(NAMESPACE),
                "{} {} is not in the release namespace",
                kind(d),
                name(d)
            ),
        }
    }
}

#[test]
fn default_values_render_the_operator() {
    let docs = render(&[]);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
        "objects of the default install"
    );
    check_namespaces(&docs);

    let sa: ServiceAccount = typed(one(&docs, "ServiceAccount"));
    let sa_name = sa.metadata.name.clone().expect("sa name");
    assert_eq!(sa_name, "berth-operator");

    // The Deployment: its selector picks its pods, which run as the
    // ServiceAccount, non-root, with a read-only root and /healthz probes on
    // the metrics port the operator is told to listen on.
    let deploy: Deployment = typed(one(&docs, "Deployment"));
    let spec = deploy.spec.as_ref().expect("deployment spec");
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    let selector = spec.selector.match_labels.clone().expect("matchLabels");
    assert!(!selector.is_empty(), "empty selector");
    assert!(
        is_subset(&selector, &pod_labels),
        "Deployment selector {selector:?} does not select its pods {pod_labels:?}"
    );
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(sa_name.as_str()));
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("ghcr.io/berth-dev/berth:0.1.0"),
        "image defaults to the chart's appVersion"
    );
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/berth-operator".to_string()][..])
    );
    let args = c.args.clone().expect("args");
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--metrics-addr=0.0.0.0:8080".to_string()));
    assert!(args.contains(&"--leader-elect=true".to_string()));
    assert!(
        args.contains(&"--registry-image=ghcr.io/berth-dev/berth:0.1.0".to_string()),
        "Registries that name no image run the chart's: {args:?}"
    );
    assert!(args.contains(&"--usage-refresh-seconds=60".to_string()));
    let csc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_eq!(csc.run_as_non_root, Some(true));
    let drop = csc
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.clone())
        .unwrap_or_default();
    assert_eq!(drop, ["ALL"]);
    let ports = c.ports.clone().expect("container ports");
    let metrics_port = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("a container port named metrics");
    assert_eq!(metrics_port.container_port, 8080);
    for (what, probe) in [
        ("liveness", c.liveness_probe.as_ref()),
        ("readiness", c.readiness_probe.as_ref()),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no {what} httpGet probe"));
        assert_eq!(get.path.as_deref(), Some("/healthz"), "{what} probe path");
        assert_eq!(
            serde_json::to_value(&get.port).expect("port"),
            "metrics",
            "{what} probe port"
        );
    }
    let env: BTreeMap<String, Value> = c
        .env
        .iter()
        .flatten()
        .map(|e| {
            (
                e.name.clone(),
                serde_json::to_value(&e.value_from).expect("env"),
            )
        })
        .collect();
    assert_eq!(
        env["POD_NAMESPACE"]["fieldRef"]["fieldPath"], "metadata.namespace",
        "the Lease namespace comes from the pod"
    );
    assert_eq!(env["POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name");
    let res = c.resources.as_ref().expect("resources");
    assert!(
        res.requests
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    assert!(
        res.limits
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );

    // The metrics Service selects the operator's pods and targets a port the
    // container has.
    let svc: Service = typed(one(&docs, "Service"));
    let svc_spec = svc.spec.as_ref().expect("service spec");
    let svc_selector = svc_spec.selector.clone().expect("service selector");
    assert!(!svc_selector.is_empty());
    assert!(
        is_subset(&svc_selector, &pod_labels),
        "Service selector {svc_selector:?} does not match the pods {pod_labels:?}"
    );
    let svc_ports = svc_spec.ports.clone().expect("service ports");
    for p in &svc_ports {
        let target = serde_json::to_value(&p.target_port).expect("targetPort");
        assert!(
            ports
                .iter()
                .any(|cp| Some(target.as_str().unwrap_or_default()) == cp.name.as_deref()),
            "Service port {:?} targets {target}, which the container does not name",
            p.name
        );
    }

    // RBAC objects are bound to the ServiceAccount in the release namespace.
    let cr: ClusterRole = typed(one(&docs, "ClusterRole"));
    let crb: ClusterRoleBinding = typed(one(&docs, "ClusterRoleBinding"));
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&crb.role_ref.name), cr.metadata.name.as_ref());
    let role: Role = typed(one(&docs, "Role"));
    let rb: RoleBinding = typed(one(&docs, "RoleBinding"));
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(Some(&rb.role_ref.name), role.metadata.name.as_ref());
    for subjects in [crb.subjects.clone(), rb.subjects.clone()] {
        let subjects = subjects.expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, sa_name);
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }

    // The CRDs are the generated ones.
    let crds = all_of(&docs, "CustomResourceDefinition");
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for d in crds {
        let crd: CustomResourceDefinition = typed(d);
        by_name.insert(crd.metadata.name.clone().expect("crd name"), d.clone());
    }
    for want in [Registry::crd(), Repository::crd()] {
        let want_name = want.metadata.name.clone().expect("name");
        assert_eq!(
            by_name.get(&want_name),
            Some(&serde_json::to_value(&want).expect("crd json")),
            "the chart's CRD {want_name} differs from the generated one"
        );
    }
    assert_eq!(by_name.len(), 2);

    // Grafana dashboards: every file under dashboards/, labelled for the sidecar.
    let cm: ConfigMap = typed(one(&docs, "ConfigMap"));
    assert_eq!(
        cm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("grafana_dashboard"))
            .map(String::as_str),
        Some("1")
    );
    let data = cm.data.clone().expect("dashboard data");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(chart_dir().join("dashboards")).expect("dashboards dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&p).expect("read dashboard"));
        }
    }
    assert!(
        !files.is_empty(),
        "no dashboards under charts/berth/dashboards"
    );
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (file, text) in &files {
        let shipped: Value = serde_json::from_str(&data[file])
            .unwrap_or_else(|e| panic!("dashboard {file} in the ConfigMap is not JSON: {e}"));
        let source: Value = serde_json::from_str(text).expect("dashboard json");
        assert_eq!(shipped, source, "dashboard {file} changed on the way");
        assert!(shipped["panels"].as_array().is_some_and(|p| !p.is_empty()));
    }
}

#[test]
fn registry_and_service_monitor_render_when_enabled() {
    let docs = render(&[
        "--set",
        "registry.enabled=true",
        "--set",
        "registry.name=images",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "image.repository=registry.example/berth",
        "--set",
        "image.tag=1.2.3",
    ]);
    check_namespaces(&docs);

    // The Registry parses as the operator's own type and runs the chart's image.
    let doc = one(&docs, "Registry");
    assert_eq!(doc["apiVersion"], "berth.dev/v1alpha1");
    let reg: Registry = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("the chart's Registry does not parse: {e}"));
    assert_eq!(reg.metadata.name.as_deref(), Some("images"));
    assert_eq!(
        reg.spec.image.as_deref(),
        Some("registry.example/berth:1.2.3")
    );
    assert_eq!(reg.spec.replicas, 1);
    assert_eq!(
        reg.spec.storage.volume.as_ref().map(|v| v.size.as_str()),
        Some("10Gi")
    );
    assert_eq!(reg.spec.service.port, 5000);
    let deploy: Deployment = typed(one(&docs, "Deployment"));
    let image = deploy.spec.as_ref().and_then(|s| {
        s.template
            .spec
            .as_ref()
            .and_then(|p| p.containers[0].image.clone())
    });
    assert_eq!(image.as_deref(), Some("registry.example/berth:1.2.3"));

    // The ServiceMonitor (no k8s-openapi type: checked as JSON) selects the
    // metrics Service in this namespace and names one of its ports.
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc: Service = typed(one(&docs, "Service"));
    let svc_labels = svc.metadata.labels.clone().expect("service labels");
    let sel = labels_of(&sm["spec"]["selector"]["matchLabels"]);
    assert!(!sel.is_empty(), "ServiceMonitor selects everything");
    assert!(
        is_subset(&sel, &svc_labels),
        "ServiceMonitor selector {sel:?} does not select the Service {svc_labels:?}"
    );
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!([NAMESPACE])
    );
    let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty());
    let svc_ports: BTreeSet<String> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .into_iter()
        .flatten()
        .filter_map(|p| p.name)
        .collect();
    for e in endpoints {
        let port = e["port"].as_str().expect("endpoint port name");
        assert!(
            svc_ports.contains(port),
            "ServiceMonitor scrapes port {port}; the Service has {svc_ports:?}"
        );
        assert_eq!(e["path"], "/metrics");
    }
}

#[test]
fn values_switch_what_they_say() {
    // Leader election off with one replica: no Lease role, and the flag says so.
    let docs = render(&["--set", "operator.leaderElection.enabled=false"]);
    assert!(all_of(&docs, "Role").is_empty());
    assert!(all_of(&docs, "RoleBinding").is_empty());
    let d = one(&docs, "Deployment");
    let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--leader-elect=false"), "{args}");

    // More than one replica forces it on.
    let docs = render(&[
        "--set",
        "operator.leaderElection.enabled=false",
        "--set",
        "operator.replicas=2",
    ]);
    assert_eq!(all_of(&docs, "Role").len(), 1);
    let d = one(&docs, "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--leader-elect=true"), "{args}");

    // Dashboards, the metrics Service and RBAC can be left out.
    let docs = render(&[
        "--set",
        "grafanaDashboards.enabled=false",
        "--set",
        "metrics.service.enabled=false",
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=existing",
    ]);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["CustomResourceDefinition", "Deployment"])
    );
    let d = one(&docs, "Deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "existing"
    );

    // Another metrics port moves the flag, the container port and the Service.
    let docs = render(&["--set", "metrics.port=9100"]);
    let d = one(&docs, "Deployment");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c["args"]
            .to_string()
            .contains("--metrics-addr=0.0.0.0:9100")
    );
    assert_eq!(c["ports"][0]["containerPort"], 9100);
}

#[test]
fn values_schema_rejects_what_it_does_not_know() {
    let err = render_fails(&["--set", "replicas=2"]);
    assert!(err.contains("replicas"), "{err}");
    let err = render_fails(&["--set", "operator.replica=2"]);
    assert!(err.contains("replica"), "{err}");
    let err = render_fails(&["--set", "image.pullPolicy=Sometimes"]);
    assert!(err.contains("pullPolicy"), "{err}");
    let err = render_fails(&["--set", "metrics.port=70000"]);
    assert!(err.contains("port"), "{err}");
    let err = render_fails(&["--set", "registry.name=Not_A_Name"]);
    assert!(err.contains("name"), "{err}");
    let err = render_fails(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.service.enabled=false",
    ]);
    assert!(err.contains("metrics.service.enabled"), "{err}");
}

/// (apiGroup, resource, verb) the operator's code needs, with where it
/// calls it. A new API call in operator/src/controller/ belongs here, and in
/// the chart's and operator/deploy/rbac.yaml's rules.
fn needed_rbac() -> BTreeSet<(String, String, String)> {
    // Controller::new/owns/watches: a reflector lists and watches.
    let watched = [
        ("berth.dev", "registries"), // controller/registry, controller/repository watch
        ("berth.dev", "repositories"), // controller/repository, controller/registry watch
        ("apps", "deployments"),     // controller/registry owns
        ("", "services"),            // controller/registry owns
        ("", "configmaps"),          // controller/registry owns
        ("batch", "cronjobs"),       // controller/registry, controller/repository own
        ("", "persistentvolumeclaims"), // controller/registry owns
        ("networking.k8s.io", "ingresses"), // controller/registry owns
        ("policy", "poddisruptionbudgets"), // controller/registry owns
        ("", "secrets"),             // controller/repository owns; pull Secrets listed by label
        ("apps", "daemonsets"),      // controller/registry owns (the node endpoint)
        ("", "namespaces"),          // controller/repository watches (consent)
    ];
    // controller::api::apply: get_opt, then a server-side apply patch (which needs
    // create when it creates the object).
    let applied = [
        ("", "configmaps"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("", "services"),
        ("networking.k8s.io", "ingresses"),
        ("policy", "poddisruptionbudgets"),
        ("batch", "cronjobs"),
        ("monitoring.coreos.com", "servicemonitors"),
        ("", "secrets"), // pull Secrets (controller/repository)
        ("apps", "daemonsets"),
    ];
    // controller::api::delete_owned (get_opt + delete) and direct deletes.
    let deleted = [
        ("networking.k8s.io", "ingresses"),
        ("policy", "poddisruptionbudgets"),
        ("monitoring.coreos.com", "servicemonitors"),
        ("batch", "cronjobs"),  // retention CronJob
        ("", "secrets"),        // robot and pull Secrets
        ("", "configmaps"),     // containerd hosts.toml, when the mirrors go
        ("apps", "daemonsets"), // the node endpoint, when turned off
    ];
    let mut set = BTreeSet::new();
    let mut add = |g: &str, r: &str, v: &str| {
        set.insert((g.to_string(), r.to_string(), v.to_string()));
    };
    for (g, r) in watched {
        add(g, r, "list");
        add(g, r, "watch");
    }
    for (g, r) in applied {
        add(g, r, "get");
        add(g, r, "create");
        add(g, r, "patch");
    }
    for (g, r) in deleted {
        add(g, r, "get");
        add(g, r, "delete");
    }
    // Api::<Registry>::get_opt (controller/repository: the Repository's Registry),
    // Api::<Registry>::get (controller/registry: its status as last written);
    // reconcile::degraded reads either kind's status as last written.
    add("berth.dev", "registries", "get");
    add("berth.dev", "repositories", "get");
    // kube::runtime::finalizer adds/removes the finalizer with a JSON patch.
    add("berth.dev", "repositories", "patch");
    // patch_status (server-side apply) of both kinds.
    add("berth.dev", "registries/status", "patch");
    add("berth.dev", "repositories/status", "patch");
    // Owner references with blockOwnerDeletion: the API server's
    // OwnerReferencesPermissionEnforcement wants update on the owner's finalizers.
    add("berth.dev", "registries/finalizers", "update");
    add("berth.dev", "repositories/finalizers", "update");
    // Signing-key and robot Secrets: get_opt, create (PostParams), get.
    add("", "secrets", "get");
    add("", "secrets", "create");
    // controller/registry, controller/repository: the Registry's pods,
    // listed by label; annotated with the policy's hash (a merge patch).
    add("", "pods", "list");
    add("", "pods", "patch");
    // controller/repository: Api::<Namespace>::get_opt (consent).
    add("", "namespaces", "get");
    // controller/repository/pull_secrets.rs: get_opt, list, replace.
    add("", "serviceaccounts", "get");
    add("", "serviceaccounts", "list");
    add("", "serviceaccounts", "update");
    // Api::<CustomResourceDefinition>::get_opt(servicemonitors.monitoring.coreos.com).
    add("apiextensions.k8s.io", "customresourcedefinitions", "get");
    // kube::runtime::events::Recorder (events.k8s.io/v1): create, then patch
    // to count repeats.
    add("events.k8s.io", "events", "create");
    add("events.k8s.io", "events", "patch");
    set
}

/// leader.rs: get_opt, create, replace of the Lease.
fn needed_leader_rbac() -> BTreeSet<(String, String, String)> {
    ["get", "create", "update"]
        .iter()
        .map(|v| ("coordination.k8s.io".into(), "leases".into(), v.to_string()))
        .collect()
}

fn expand(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    assert!(g != "*" && res != "*" && v != "*", "wildcard in rule {r:?}");
                    set.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    set
}

fn rbac_yaml_docs() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("read operator/deploy/rbac.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("rbac.yaml");
            serde_json::to_value(v).expect("json")
        })
        .collect()
}

#[test]
fn rbac_is_exactly_what_the_operator_calls_and_matches_deploy_rbac_yaml() {
    let docs = render(&[]);
    let cr: ClusterRole = typed(one(&docs, "ClusterRole"));
    let role: Role = typed(one(&docs, "Role"));
    let cr_rules = cr.rules.clone().unwrap_or_default();
    let role_rules = role.rules.clone().unwrap_or_default();

    let granted = expand(&cr_rules);
    let needed = needed_rbac();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the ClusterRole lacks what the operator calls: {missing:?}"
    );
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        extra.is_empty(),
        "the ClusterRole grants what the operator never calls (least privilege): {extra:?}"
    );
    // The CRD lookup is for one CRD only.
    let crd_rule = cr_rules
        .iter()
        .find(|r| {
            r.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|g| g == "apiextensions.k8s.io"))
        })
        .expect("CRD rule");
    assert_eq!(
        crd_rule.resource_names.as_deref(),
        Some(&["servicemonitors.monitoring.coreos.com".to_string()][..])
    );
    for r in &cr_rules {
        if r.resource_names.is_some() {
            assert!(
                std::ptr::eq(r, crd_rule),
                "unexpected resourceNames in {r:?}"
            );
        }
    }
    assert_eq!(expand(&role_rules), needed_leader_rbac());

    // operator/deploy/rbac.yaml (what the cluster tests run the operator
    // with) has the very same rules.
    let deploy = rbac_yaml_docs();
    let deploy_cr: ClusterRole = typed(one(&deploy, "ClusterRole"));
    let deploy_role: Role = typed(one(&deploy, "Role"));
    assert_eq!(
        deploy_cr.rules.unwrap_or_default(),
        cr_rules,
        "charts/berth/templates/rbac.yaml and operator/deploy/rbac.yaml differ (ClusterRole)"
    );
    assert_eq!(
        deploy_role.rules.unwrap_or_default(),
        role_rules,
        "charts/berth/templates/rbac.yaml and operator/deploy/rbac.yaml differ (leader Role)"
    );
}

#[test]
fn helm_lint_strict_passes() {
    let chart = chart_dir().display().to_string();
    for extra in [
        &[][..],
        &[
            "--set",
            "registry.enabled=true",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ][..],
    ] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = run_helm(&args);
        assert!(
            ok,
            "helm lint --strict {extra:?} failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    }
}
