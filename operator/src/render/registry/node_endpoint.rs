//! The node endpoint: a DaemonSet on every node's host network running
//! `berth node-proxy`, which forwards `localhost:<port>` to the registry's
//! Service. containerd's CRI (1.6 and later, and 2.x) and Docker talk plain
//! HTTP to `localhost` registries with their default configuration, so the
//! kubelet pulls `localhost:<port>/<repository>:<tag>` on any node, with no
//! `hosts.toml`, no CA to install, no DNS name. The proxy listens on the
//! node's loopback only: nothing outside the node reaches it, and Pods
//! (each in its own network namespace) never see it.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    TCPSocketAction, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::pod::{container_security_context, image, pod_security_context};
use super::registry_meta;
use crate::crd::Registry;
use crate::render::{Problem, RenderError, bounded, labels};

/// The `component` label of the node endpoint's DaemonSet and pods.
pub const NODE_ENDPOINT_COMPONENT: &str = "node-endpoint";

/// The DaemonSet's name.
pub fn node_endpoint_name(registry: &str) -> String {
    format!("{}-node", bounded(registry, 58))
}

/// `localhost:<port>` when the node endpoint is on.
pub fn node_endpoint_address(reg: &Registry) -> Option<String> {
    let n = &reg.spec.node_endpoint;
    n.enabled.then(|| format!("localhost:{}", n.port))
}

/// Where the node endpoint forwards to: the Service's cluster IP and port
/// (nodes resolve no cluster DNS names; their kube-proxy routes cluster IPs).
/// None while the Service has no cluster IP.
pub fn node_endpoint_upstream(reg: &Registry, cluster_ip: Option<&str>) -> Option<String> {
    let ip = cluster_ip.filter(|ip| !ip.is_empty() && *ip != "None")?;
    let port = reg.spec.service.port;
    Some(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// The node endpoint's selector labels (a subset of its labels).
fn node_selector_labels(instance: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        ("app.kubernetes.io/name".into(), "berth".into()),
        ("app.kubernetes.io/instance".into(), instance.into()),
        (
            "app.kubernetes.io/component".into(),
            NODE_ENDPOINT_COMPONENT.into(),
        ),
    ])
}

/// The node endpoint's DaemonSet; None when it is off. `upstream` is
/// [`node_endpoint_upstream`].
pub fn node_endpoint_daemonset(
    reg: &Registry,
    upstream: &str,
) -> Result<Option<DaemonSet>, RenderError> {
    let spec = &reg.spec.node_endpoint;
    if !spec.enabled {
        return Ok(None);
    }
    let name = reg.name_any();
    let port = spec.port;
    let container = Container {
        name: "node-proxy".into(),
        image: Some(image(reg)),
        args: Some(vec![
            "node-proxy".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--listen".into(),
            format!("[::1]:{port}"),
            "--upstream".into(),
            upstream.into(),
        ]),
        // Declared so that the scheduler keeps two of them (two Registries
        // on one port) off the same node instead of letting one fail.
        ports: Some(vec![ContainerPort {
            name: Some("pull".into()),
            container_port: port,
            host_port: Some(port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                host: Some("127.0.0.1".into()),
                port: IntOrString::Int(port),
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(2),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), Quantity("10m".into())),
                    ("memory".to_string(), Quantity("16Mi".into())),
                ]
                .into(),
            ),
            limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
            ..Default::default()
        }),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    Ok(Some(DaemonSet {
        metadata: registry_meta(reg, node_endpoint_name(&name), NODE_ENDPOINT_COMPONENT)?,
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(node_selector_labels(&name)),
                ..Default::default()
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name, NODE_ENDPOINT_COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // The node's loopback is where the kubelet's runtime pulls.
                    host_network: Some(true),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    // Open pulls get 20 s to finish (`--drain-seconds`).
                    termination_grace_period_seconds: Some(25),
                    // Every node that runs Pods pulls images, tainted or not.
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    containers: vec![container],
                    security_context: Some(pod_security_context()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// What the node endpoint's DaemonSet reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeRollout {
    /// Nodes that should run it.
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The DaemonSet controller has seen its latest spec.
    pub observed: bool,
}

impl NodeRollout {
    pub fn of(ds: &DaemonSet) -> NodeRollout {
        let s = ds.status.clone().unwrap_or_default();
        NodeRollout {
            desired: s.desired_number_scheduled,
            ready: s.number_ready,
            updated: s.updated_number_scheduled.unwrap_or(0),
            observed: s.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0),
        }
    }

    /// Every node that should run it runs the current spec, ready.
    pub fn complete(&self) -> bool {
        self.observed && self.ready >= self.desired && self.updated >= self.desired
    }
}

/// Another Registry of the cluster whose node endpoint already has this
/// port (one forwarder per node port): the older one keeps it (by creation
/// time, then namespace/name); this one cannot work until the port changes.
pub fn node_port_conflict(reg: &Registry, others: &[Registry]) -> Option<Problem> {
    let me = &reg.spec.node_endpoint;
    if !me.enabled {
        return None;
    }
    let key = |r: &Registry| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.namespace().unwrap_or_default(),
            r.name_any(),
        )
    };
    let mine = key(reg);
    let holder = others
        .iter()
        .filter(|o| o.uid() != reg.uid() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| o.spec.node_endpoint.enabled && o.spec.node_endpoint.port == me.port)
        .filter(|o| key(o) < mine)
        .min_by_key(|o| key(o))?;
    Some(Problem::new(
        "NodePortInUse",
        format!(
            "spec.nodeEndpoint.port {} is the node endpoint of Registry {}/{} already: set another port (or spec.nodeEndpoint.enabled: false)",
            me.port,
            holder.namespace().unwrap_or_default(),
            holder.name_any()
        ),
    ))
}
