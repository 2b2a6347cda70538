//! How a Registry is reached: its Service and optional Ingress.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Service type.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster (and by kubelets through the Service IP).
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
        }
    }
}

/// The registry's Service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// ClusterIP (default) or NodePort.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Node port (type NodePort only); allocated by Kubernetes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<i32>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::ClusterIP,
            port: default_service_port(),
            node_port: None,
        }
    }
}

fn default_service_port() -> i32 {
    5000
}

/// An Ingress routing a host name to the registry.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients use.
    #[schemars(length(min = 1))]
    pub host: String,
    /// IngressClass; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// TLS Secret (same namespace) for the host; plain HTTP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// Extra annotations of the Ingress (e.g. body-size limits).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Where kubelets pull from: a port on every node's loopback
/// (`localhost:<port>`) forwarded to the registry's Service by a small
/// DaemonSet on the host network. containerd and Docker speak plain HTTP to
/// `localhost` registries in their default configuration, so Pods pull
/// `localhost:<port>/<repository>:<tag>` with no node setup. The pods need
/// a namespace that allows `hostNetwork` (Pod Security level privileged).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeEndpointSpec {
    /// Run the node endpoint (on by default).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Port on each node's loopback; one per Registry in the cluster.
    #[serde(default = "default_node_endpoint_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
}

impl Default for NodeEndpointSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            port: default_node_endpoint_port(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_node_endpoint_port() -> i32 {
    5000
}
