//! How the registry is reached: its Service, optional Ingress, the
//! ServiceMonitor Prometheus scrapes it by, and the endpoint pods pull from.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec as K8sServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ApiResource;

use super::{METRICS_PORT, registry_meta};
use crate::crd::{Registry, ServiceType};
use crate::render::{RenderError, selector_labels, workload_name};

/// The CustomResourceDefinition of the Prometheus operator's ServiceMonitor.
pub const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";

/// The ServiceMonitor's API (not part of k8s-openapi: applied as a dynamic
/// object).
pub fn service_monitor_resource() -> ApiResource {
    ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        plural: "servicemonitors".into(),
    }
}

/// The note when a ServiceMonitor is asked for and its CRD is missing.
pub fn service_monitor_crd_missing() -> String {
    format!(
        "spec.metrics.serviceMonitor is on but the CRD {SERVICE_MONITOR_CRD} is not installed (install the Prometheus operator)"
    )
}

pub fn service(reg: &Registry) -> Result<Service, RenderError> {
    let name = reg.name_any();
    let svc = &reg.spec.service;
    Ok(Service {
        metadata: registry_meta(reg, workload_name(&name), "registry")?,
        spec: Some(K8sServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: svc.port,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    node_port: match svc.type_ {
                        ServiceType::NodePort => svc.node_port,
                        ServiceType::ClusterIP => None,
                    },
                    ..Default::default()
                },
                // For Prometheus (the ServiceMonitor); never a NodePort.
                ServicePort {
                    name: Some("metrics".into()),
                    port: METRICS_PORT,
                    target_port: Some(IntOrString::String("metrics".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn ingress(reg: &Registry) -> Result<Option<Ingress>, RenderError> {
    let Some(spec) = &reg.spec.ingress else {
        return Ok(None);
    };
    let name = reg.name_any();
    let mut metadata = registry_meta(reg, workload_name(&name), "registry")?;
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Ok(Some(Ingress {
        metadata,
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: workload_name(&name),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            tls: spec.tls_secret.as_ref().map(|s| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(s.clone()),
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// A Prometheus-operator ServiceMonitor (as JSON: its types are not part of
/// k8s-openapi), None unless asked for.
pub fn service_monitor(reg: &Registry) -> Result<Option<serde_json::Value>, RenderError> {
    if !reg.spec.metrics.service_monitor {
        return Ok(None);
    }
    let name = reg.name_any();
    let metadata = registry_meta(reg, workload_name(&name), "registry")?;
    Ok(Some(serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector_labels(&name)},
            "endpoints": [{"port": "metrics", "path": "/metrics"}],
        },
    })))
}

/// The address Pods put in image references: the node endpoint
/// (`localhost:<port>`, plain HTTP that every container runtime accepts for
/// localhost) when it is on; else the Ingress host; else the Service's
/// cluster IP (kubelets reach it, but their runtime wants HTTPS there
/// unless the node is configured for it), else its DNS name.
pub fn endpoint(reg: &Registry, cluster_ip: Option<&str>) -> String {
    if let Some(address) = super::node_endpoint_address(reg) {
        return address;
    }
    if let Some(ing) = &reg.spec.ingress {
        return ing.host.clone();
    }
    let port = reg.spec.service.port;
    match cluster_ip {
        Some(ip) if !ip.is_empty() && ip != "None" => format!("{ip}:{port}"),
        _ => format!(
            "{}.{}.svc:{port}",
            workload_name(&reg.name_any()),
            reg.namespace().unwrap_or_else(|| "default".into())
        ),
    }
}
