//! What makes a Registry usable from a stock node and a Repository usable
//! the moment it says Ready, decided without a cluster: the node endpoint
//! (its DaemonSet, address and rollout, one Registry per port), why pods do
//! not serve (an image, a crash, a claim), consent to cross-namespace
//! grants, and whether every registry pod serves a Repository's rules.

use std::collections::BTreeMap;

use berth_config::PolicyFile;
use berth_operator::crd::*;
use berth_operator::render::*;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

mod support;
use support::{registry, repository};

fn condition_of<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

// ---- the node endpoint ----

#[test]
fn the_node_endpoint_forwards_localhost_to_the_service() {
    let reg = with_default_image(&registry("nodeEndpoint: {port: 5050}\n"), "berth:e2e");
    assert_eq!(
        node_endpoint_address(&reg).as_deref(),
        Some("localhost:5050")
    );
    assert_eq!(
        node_endpoint_upstream(&reg, Some("10.96.0.12")).as_deref(),
        Some("10.96.0.12:5000")
    );
    assert_eq!(
        node_endpoint_upstream(&reg, Some("fd00::12")).as_deref(),
        Some("[fd00::12]:5000")
    );
    assert_eq!(node_endpoint_upstream(&reg, Some("None")), None);
    assert_eq!(node_endpoint_upstream(&reg, None), None);

    let ds = node_endpoint_daemonset(&reg, "10.96.0.12:5000")
        .expect("renders")
        .expect("on by default");
    assert_eq!(ds.name_any(), "hub-node");
    assert_eq!(
        ds.labels()["app.kubernetes.io/component"],
        NODE_ENDPOINT_COMPONENT
    );
    let owner = &ds.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Registry", "hub")
    );
    let spec = ds.spec.expect("spec");
    let selector = spec.selector.match_labels.expect("selector");
    let pod_labels = spec
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    for (k, v) in &selector {
        assert_eq!(pod_labels.get(k), Some(v), "the selector selects its pods");
    }
    assert_ne!(
        selector.get("app.kubernetes.io/component"),
        Some(&"registry".to_string()),
        "the Service never selects the node endpoint"
    );
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.host_network, Some(true), "on the node's loopback");
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        pod.tolerations.as_ref().expect("tolerations")[0]
            .operator
            .as_deref(),
        Some("Exists"),
        "on every node, tainted or not"
    );
    let sc = pod.security_context.expect("pod security");
    assert_eq!(sc.run_as_non_root, Some(true));
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("berth:e2e"),
        "the Registry's image"
    );
    assert_eq!(
        c.args.clone().expect("args"),
        [
            "node-proxy",
            "--listen",
            "127.0.0.1:5050",
            "--listen",
            "[::1]:5050",
            "--upstream",
            "10.96.0.12:5000"
        ]
    );
    let port = &c.ports.as_ref().expect("ports")[0];
    assert_eq!((port.container_port, port.host_port), (5050, Some(5050)));
    let csc = c.security_context.as_ref().expect("container security");
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    let probe = c
        .readiness_probe
        .as_ref()
        .expect("probe")
        .tcp_socket
        .clone()
        .expect("tcp");
    assert_eq!(probe.host.as_deref(), Some("127.0.0.1"));

    // Off: no DaemonSet, and Pods pull from the Service (or the Ingress).
    let off = registry("nodeEndpoint: {enabled: false}\n");
    assert!(
        node_endpoint_daemonset(&off, "10.96.0.12:5000")
            .expect("renders")
            .is_none()
    );
    assert_eq!(node_endpoint_address(&off), None);
}

fn daemonset(generation: i64, observed: i64, desired: i32, ready: i32, updated: i32) -> DaemonSet {
    let mut ds = DaemonSet::default();
    ds.metadata.generation = Some(generation);
    ds.status = Some(DaemonSetStatus {
        observed_generation: Some(observed),
        desired_number_scheduled: desired,
        number_ready: ready,
        updated_number_scheduled: Some(updated),
        ..Default::default()
    });
    ds
}

#[test]
fn ready_waits_for_the_node_endpoint_on_every_node() {
    let reg = registry("nodeEndpoint: {port: 5050}\n");
    let hash = "0123456789abcdef";
    let pods = Rollout {
        ready: 1,
        updated: 1,
        observed: true,
    };
    let node = NodeRollout::of(&daemonset(2, 2, 3, 2, 3));
    assert!(!node.complete());
    assert!(
        !NodeRollout::of(&daemonset(2, 1, 3, 3, 3)).complete(),
        "an old generation"
    );
    assert!(
        NodeRollout::of(&daemonset(1, 1, 0, 0, 0)).complete(),
        "no node yet"
    );
    let c = registry_conditions(&reg, pods, Some(node), "localhost:5050", hash, &[], None);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NodeEndpointNotReady")
    );
    assert!(
        ready
            .message
            .starts_with("2 of 3 nodes serve localhost:5050 (DaemonSet team-a/hub-node;"),
        "{}",
        ready.message
    );
    assert_eq!(condition_of(&c, "Progressing").reason, "RollingOut");
    assert!(!registry_settled(&reg, pods, Some(node), &[], None));
    assert!(should_probe(&reg, pods, Some(node)));

    let done = NodeRollout::of(&daemonset(2, 2, 3, 3, 3));
    let c = registry_conditions(&reg, pods, Some(done), "localhost:5050", hash, &[], None);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Available")
    );
    assert_eq!(
        ready.message,
        "1 of 1 registry pods are ready; pull from localhost:5050 (on every node)"
    );
    assert!(registry_settled(&reg, pods, Some(done), &[], None));
}

#[test]
fn one_registry_per_node_port() {
    let at = |reg: &mut Registry, ns: &str, name: &str, uid: &str, secs: i64| {
        reg.metadata.namespace = Some(ns.into());
        reg.metadata.name = Some(name.into());
        reg.metadata.uid = Some(uid.into());
        reg.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(secs).expect("time"),
        ));
    };
    let mut first = registry("nodeEndpoint: {port: 5050}\n");
    at(&mut first, "a", "one", "u1", 100);
    let mut second = registry("nodeEndpoint: {port: 5050}\n");
    at(&mut second, "b", "two", "u2", 200);
    let mut other_port = registry("nodeEndpoint: {port: 5051}\n");
    at(&mut other_port, "c", "three", "u3", 50);
    let mut disabled = registry("nodeEndpoint: {enabled: false, port: 5050}\n");
    at(&mut disabled, "d", "four", "u4", 10);
    let all = [
        first.clone(),
        second.clone(),
        other_port.clone(),
        disabled.clone(),
    ];
    assert_eq!(
        node_port_conflict(&first, &all),
        None,
        "the older one keeps it"
    );
    let p = node_port_conflict(&second, &all).expect("conflict");
    assert_eq!(p.reason, "NodePortInUse");
    assert_eq!(
        p.message,
        "spec.nodeEndpoint.port 5050 is the node endpoint of Registry a/one already: set another port (or spec.nodeEndpoint.enabled: false)"
    );
    assert_eq!(node_port_conflict(&other_port, &all), None);
    assert_eq!(node_port_conflict(&disabled, &all), None);
}

// ---- why pods do not serve ----

fn pod_waiting(name: &str, reason: &str, message: &str, last: Option<&str>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.status = Some(PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "registry".into(),
            image: "ghcr.io/berth-dev/berth:9.9.9".into(),
            restart_count: 4,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                }),
                ..Default::default()
            }),
            last_state: last.map(|m| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    message: Some(m.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

fn unscheduled(name: &str, message: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.status = Some(PodStatus {
        phase: Some("Pending".into()),
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

fn claim(phase: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut c = PersistentVolumeClaim::default();
    c.metadata.name = Some("hub-data".into());
    c.spec = Some(PersistentVolumeClaimSpec {
        storage_class_name: class.map(str::to_string),
        ..Default::default()
    });
    c.status = Some(PersistentVolumeClaimStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    c
}

#[test]
fn pods_that_do_not_serve_say_why() {
    let reg = registry("{}");
    let pull = pod_waiting(
        "hub-b",
        "ImagePullBackOff",
        "Back-off pulling image \"ghcr.io/berth-dev/berth:9.9.9\"",
        None,
    );
    let crash = pod_waiting(
        "hub-a",
        "CrashLoopBackOff",
        "back-off 40s",
        Some("berth: cannot connect to PostgreSQL at db:5432: connection refused"),
    );
    let pending = claim("Pending", None);
    // An image that cannot be pulled first, whatever else is wrong.
    let o = pod_trouble(&reg, &[crash.clone(), pull.clone()], Some(&pending)).expect("trouble");
    assert_eq!(o.reason, "ImagePullFailed");
    assert!(
        o.message.starts_with(
            "pod hub-b cannot pull image ghcr.io/berth-dev/berth:9.9.9: Back-off pulling image"
        ) && o.message.contains("set spec.image"),
        "{}",
        o.message
    );
    let o = pod_trouble(&reg, &[crash], Some(&pending)).expect("trouble");
    assert_eq!(o.reason, "PodsCrashing");
    assert_eq!(
        o.message,
        "pod hub-a keeps exiting (restarted 4 times); it said: berth: cannot connect to PostgreSQL at db:5432: connection refused"
    );
    // A Pending claim is blamed only when the scheduler says it is why (a
    // claim that binds once its pod is scheduled is not, while it waits).
    assert_eq!(pod_trouble(&reg, &[], Some(&pending)), None);
    let unbound = unscheduled(
        "hub-c",
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available",
    );
    let o = pod_trouble(&reg, std::slice::from_ref(&unbound), Some(&pending)).expect("trouble");
    assert_eq!(o.reason, "ClaimPending");
    assert!(
        o.message.starts_with("PersistentVolumeClaim team-a/hub-data is Pending: no PersistentVolume is bound to it (no storageClassName: the cluster's default StorageClass, if it has one); create a PersistentVolume")
            && o.message.ends_with("The scheduler says: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available"),
        "{}",
        o.message
    );
    let o = pod_trouble(
        &reg,
        std::slice::from_ref(&unbound),
        Some(&claim("Pending", Some("fast"))),
    )
    .expect("trouble");
    assert!(o.message.contains("(StorageClass fast)"), "{}", o.message);
    // Bound (or no claim): the scheduler's reason as it is.
    let o = pod_trouble(
        &reg,
        std::slice::from_ref(&unbound),
        Some(&claim("Bound", None)),
    )
    .expect("trouble");
    assert_eq!(o.reason, "PodsUnschedulable");
    let ports = unscheduled(
        "hub-node-x",
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.",
    );
    let o = pod_trouble(&reg, &[ports], None).expect("trouble");
    assert_eq!(
        o.message,
        "pod hub-node-x cannot be scheduled: 0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
    assert_eq!(pod_trouble(&reg, &[], Some(&claim("Bound", None))), None);
    assert_eq!(pod_trouble(&reg, &[], None), None);
    // A pod being deleted says nothing.
    let mut going = pull;
    going.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    assert_eq!(pod_trouble(&reg, &[going], None), None);

    // In status: Ready false and Degraded true with the reason, once.
    let o = pod_trouble(&reg, &[unbound], Some(&pending)).expect("trouble");
    let c = registry_conditions(
        &reg,
        Rollout {
            ready: 0,
            updated: 1,
            observed: true,
        },
        None,
        "localhost:5000",
        "0123456789ab",
        &[],
        Some(&o),
    );
    assert_eq!(condition_of(&c, "Ready").reason, "ClaimPending");
    let degraded = condition_of(&c, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ClaimPending")
    );
    assert!(!outage_is_new(&o, &c));
}

// ---- consent ----

fn namespace(name: &str, accepts: Option<&str>) -> Namespace {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    if let Some(a) = accepts {
        ns.metadata.annotations = Some(BTreeMap::from([(
            ACCEPT_GRANTS_ANNOTATION.to_string(),
            a.to_string(),
        )]));
    }
    ns
}

#[test]
fn grants_into_other_namespaces_need_their_consent() {
    let repo = repository(
        "app",
        "registry: hub\nname: app\naccess:\n- serviceAccounts: [{name: builder}, {namespace: team-b, name: default}, {namespace: team-c, name: default}, {namespace: team-d, name: runner}]\n  actions: [pull]\n",
    );
    assert_eq!(foreign_namespaces(&repo), ["team-b", "team-c", "team-d"]);
    assert!(accepts_grants_from(
        &namespace("x", Some("team-a")),
        "team-a"
    ));
    assert!(accepts_grants_from(
        &namespace("x", Some("ops, team-a")),
        "team-a"
    ));
    assert!(accepts_grants_from(&namespace("x", Some("*")), "team-a"));
    assert!(!accepts_grants_from(
        &namespace("x", Some("team-ab")),
        "team-a"
    ));
    assert!(!accepts_grants_from(&namespace("x", None), "team-a"));

    let found = BTreeMap::from([
        (
            "team-b".to_string(),
            Some(namespace("team-b", Some("team-a"))),
        ),
        ("team-c".to_string(), Some(namespace("team-c", None))),
        ("team-d".to_string(), None),
    ]);
    let (accepted, refused) = consented_grants(&repo, &found);
    let accepted: Vec<String> = accepted
        .iter()
        .map(|sa| format!("{}/{}", sa.namespace.as_deref().unwrap_or(""), sa.name))
        .collect();
    assert_eq!(
        accepted,
        ["team-a/builder", "team-b/default"],
        "its own namespace needs no consent"
    );
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|p| p.reason == GRANT_NOT_ACCEPTED));
    assert_eq!(
        refused[0].message,
        "namespace team-c has not accepted grants from namespace team-a: no pull Secret is written there and its ServiceAccounts are left alone until it does: `kubectl annotate namespace team-c berth.dev/accept-grants-from=team-a` (a comma-separated list of namespaces, or *)"
    );
    assert!(
        refused[1]
            .message
            .starts_with("namespace team-d does not exist"),
        "{}",
        refused[1].message
    );

    // In status: not Ready, and Degraded says what team-c must do.
    let c = repository_conditions(&repo, 2, &refused, &Serving::Served { pods: 1 });
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "GrantNotAccepted")
    );
    assert!(
        ready.message.contains("kubectl annotate namespace team-c"),
        "{}",
        ready.message
    );
    assert_eq!(condition_of(&c, "Degraded").reason, "GrantNotAccepted");
}

// ---- a Repository's rules served by every pod ----

fn serving_pod(name: &str, ready: bool, ip: &str, metrics_port: Option<i32>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/component".to_string(),
        "registry".to_string(),
    )]));
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: "registry".into(),
            ports: metrics_port.map(|port| {
                vec![ContainerPort {
                    name: Some("metrics".into()),
                    container_port: port,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

#[test]
fn a_repository_is_served_when_every_ready_pod_loaded_its_rules() {
    let reg = registry("{}");
    let ci = repository(
        "ci",
        "registry: hub\nname: ci/*\naccess: [{serviceAccounts: [{name: runner}], actions: [pull, push]}]\n",
    );
    let other = repository("web", "registry: hub\nname: web\nvisibility: Public\n");
    let robots = BTreeMap::from([("team-a/ci".to_string(), "a".repeat(64))]);
    let mine = policy_file(&reg, std::slice::from_ref(&ci), &robots);
    let whole = policy_yaml(
        &policy_file(&reg, &[ci.clone(), other.clone()], &robots),
        &reg,
    )
    .expect("yaml");
    let hash = sha256_hex(whole.as_bytes());
    let parsed = PolicyFile::parse(&whole, std::path::Path::new("p")).expect("parses");
    assert!(policy_contains(&parsed, &mine));

    // Without its robot yet, or without it at all: not rendered.
    let before = policy_yaml(
        &policy_file(&reg, &[ci.clone(), other], &BTreeMap::new()),
        &reg,
    )
    .expect("yaml");
    assert_eq!(serving(Some(&before), &mine, &[]), Serving::NotRendered);
    assert_eq!(serving(None, &mine, &[]), Serving::NotRendered);
    // Rendered, no pod ready.
    assert_eq!(serving(Some(&whole), &mine, &[]), Serving::NoPods);
    // Pods on an older file, or that did not answer, are still loading.
    let answers = [Some(hash.clone()), Some("old".to_string()), None];
    assert_eq!(
        serving(Some(&whole), &mine, &answers),
        Serving::Loading {
            serving: 1,
            pods: 3
        }
    );
    let answers = [Some(hash.clone()), Some(hash.clone())];
    assert_eq!(
        serving(Some(&whole), &mine, &answers),
        Serving::Served { pods: 2 }
    );

    // The fingerprint follows its own rules only.
    let again = policy_file(&reg, std::slice::from_ref(&ci), &robots);
    assert_eq!(rules_hash(&mine), rules_hash(&again));
    let new_robot = BTreeMap::from([("team-a/ci".to_string(), "b".repeat(64))]);
    assert_ne!(
        rules_hash(&mine),
        rules_hash(&policy_file(&reg, &[ci], &new_robot))
    );

    // Which pods are asked: running, ready, not terminating; their metrics port.
    let mut terminating = serving_pod("hub-d", true, "10.0.0.4", None);
    terminating.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let pods = [
        serving_pod("hub-c", true, "10.0.0.3", Some(9000)),
        serving_pod("hub-a", true, "10.0.0.1", None),
        serving_pod("hub-b", false, "10.0.0.2", None),
        terminating,
    ];
    let targets = serving_pods(&pods);
    let got: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.pod.clone(), t.url_of(berth_config::ops::STATUS_PATH)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "hub-a".to_string(),
                "http://10.0.0.1:5001/status".to_string()
            ),
            (
                "hub-c".to_string(),
                "http://10.0.0.3:9000/status".to_string()
            ),
        ]
    );
    // Which pods are nudged: those without the policy's hash yet.
    let mut nudged = serving_pod("hub-a", true, "10.0.0.1", None);
    nudged.metadata.annotations = Some(BTreeMap::from([(
        POLICY_HASH_ANNOTATION.to_string(),
        hash.clone(),
    )]));
    let mut node = serving_pod("hub-node-x", true, "192.168.1.1", None);
    node.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/component".to_string(),
        NODE_ENDPOINT_COMPONENT.to_string(),
    )]));
    let pods = [nudged, serving_pod("hub-b", false, "10.0.0.2", None), node];
    assert_eq!(pods_to_nudge(&pods, &hash), ["hub-b"]);
    assert_eq!(pods_to_nudge(&pods, "another"), ["hub-a", "hub-b"]);
}
