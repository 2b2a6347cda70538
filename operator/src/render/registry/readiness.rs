//! Which dependency of a Registry is failing, from what its pods' `/readyz`
//! say: the pods to ask (running, not ready), what an answer means (the
//! bodies are berth-config's [`readyz`] contract), and the outage the status
//! reports (`DatabaseUnreachable`, `StorageUnreachable`). The controller
//! only sends the requests.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use berth_config::readyz;

use super::{CONTAINER_PORT, NodeRollout, Rollout};
use crate::crd::Registry;

/// Whether to look at the pods at all: some wanted pod (of the registry or
/// of the node endpoint) is not ready, or does not run the current spec yet.
/// A rolled-out Registry costs no request.
pub fn should_probe(reg: &Registry, rollout: Rollout, node: Option<NodeRollout>) -> bool {
    reg.spec.replicas > 0
        && !(rollout.complete(reg.spec.replicas) && node.is_none_or(|n| n.complete()))
}

/// A pod to ask: its name and where its `/readyz` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub pod: String,
    pub ip: String,
    pub port: u16,
}

impl ProbeTarget {
    /// `http://ip:port/readyz` (IPv6 addresses in brackets).
    pub fn url(&self) -> String {
        self.url_of("/readyz")
    }

    /// `http://ip:port<path>`.
    pub fn url_of(&self, path: &str) -> String {
        if self.ip.contains(':') {
            format!("http://[{}]:{}{path}", self.ip, self.port)
        } else {
            format!("http://{}:{}{path}", self.ip, self.port)
        }
    }
}

/// At most this many pods are asked per reconcile: enough to tell a
/// dependency outage, and bounded however many replicas there are.
pub const MAX_PROBES: usize = 10;

/// The registry pods worth asking why they are not ready: running, with an
/// address, not terminating (a pod shutting down says so and means
/// nothing), and not ready (a ready pod's probe just passed). Sorted by
/// name, at most [`MAX_PROBES`]. The port is the container's `http` port as
/// the pod runs it.
pub fn probe_targets(pods: &[Pod]) -> Vec<ProbeTarget> {
    let mut targets: Vec<ProbeTarget> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            if status.phase.as_deref() != Some("Running") {
                return None;
            }
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return None;
            }
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            Some(ProbeTarget {
                pod: p.name_any(),
                ip,
                port: http_port(p),
            })
        })
        .collect();
    targets.sort_by(|a, b| a.pod.cmp(&b.pod));
    targets.truncate(MAX_PROBES);
    targets
}

/// The `http` port of the pod's `registry` container (the default port if
/// it names none).
fn http_port(pod: &Pod) -> u16 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| c.name == "registry")
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("http"))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(CONTAINER_PORT as u16)
}

/// What one pod's `/readyz` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReadiness {
    /// 200: both stores answer (it was not ready a moment ago, or is
    /// about to be).
    Ready,
    /// 503 after SIGTERM.
    ShuttingDown,
    /// 503 naming the stores that do not answer it.
    StoresDown { metadata: bool, blobs: bool },
    /// Anything else: another status or body (an older registry, something
    /// else on the port), or no answer at all (starting, stuck, or out of
    /// the operator's reach): says nothing about the dependencies.
    Unknown(String),
}

/// What a `/readyz` answer with this status and body means.
pub fn readiness_of(status: u16, body: &str) -> PodReadiness {
    let body = body.trim();
    match status {
        200 if body == readyz::READY => PodReadiness::Ready,
        503 if body == readyz::SHUTTING_DOWN => PodReadiness::ShuttingDown,
        503 => {
            let parts: Vec<&str> = body.split(readyz::SEPARATOR).map(str::trim).collect();
            let metadata = parts.contains(&readyz::METADATA_UNREACHABLE);
            let blobs = parts.contains(&readyz::BLOBS_UNREACHABLE);
            let known = parts
                .iter()
                .all(|p| *p == readyz::METADATA_UNREACHABLE || *p == readyz::BLOBS_UNREACHABLE);
            if (metadata || blobs) && known {
                PodReadiness::StoresDown { metadata, blobs }
            } else {
                PodReadiness::Unknown(format!("503 {body:?}"))
            }
        }
        _ => PodReadiness::Unknown(format!("{status} {:?}", truncate(body, 80))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What keeps the Registry's pods from serving (a dependency they cannot
/// reach, an image that cannot be pulled, …): the reason of the Degraded
/// (and Ready) condition and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// `DatabaseUnreachable` or `StorageUnreachable`.
    pub reason: &'static str,
    pub message: String,
}

pub const DATABASE_UNREACHABLE: &str = "DatabaseUnreachable";
pub const STORAGE_UNREACHABLE: &str = "StorageUnreachable";

/// The outage the pods' answers show, if any: `DatabaseUnreachable` when a
/// pod cannot reach the metadata database, else `StorageUnreachable` when
/// one cannot reach the blob store; the message names both when both are
/// down, which pods said so, and the dependency as the spec gives it.
pub fn dependency_outage(reg: &Registry, answers: &[(String, PodReadiness)]) -> Option<Outage> {
    let pods_where = |want: fn(bool, bool) -> bool| -> Vec<&str> {
        answers
            .iter()
            .filter(|(_, r)| matches!(r, PodReadiness::StoresDown { metadata, blobs } if want(*metadata, *blobs)))
            .map(|(pod, _)| pod.as_str())
            .collect()
    };
    let database = pods_where(|metadata, _| metadata);
    let storage = pods_where(|_, blobs| blobs);
    let mut parts = Vec::new();
    if !database.is_empty() {
        parts.push(format!(
            "{} does not answer {}",
            database_name(reg),
            pods_named(&database)
        ));
    }
    if !storage.is_empty() {
        parts.push(format!(
            "{} does not answer {}",
            storage_name(reg),
            pods_named(&storage)
        ));
    }
    let reason = if !database.is_empty() {
        DATABASE_UNREACHABLE
    } else if !storage.is_empty() {
        STORAGE_UNREACHABLE
    } else {
        return None;
    };
    Some(Outage {
        reason,
        message: format!(
            "{}; those pods are out of the Service (their /readyz answers 503) until it does",
            parts.join("; ")
        ),
    })
}

/// The metadata database as the spec names it.
fn database_name(reg: &Registry) -> String {
    match &reg.spec.database.postgres {
        Some(pg) => format!(
            "PostgreSQL (the URL in Secret {}, key {})",
            pg.url_secret.name, pg.url_secret.key
        ),
        None => "the embedded database (on the data volume)".into(),
    }
}

/// The blob store as the spec names it.
fn storage_name(reg: &Registry) -> String {
    match &reg.spec.storage.s3 {
        Some(s3) => format!(
            "bucket {} at {}",
            s3.bucket,
            s3.endpoint.as_deref().unwrap_or("AWS S3")
        ),
        None => "the data volume".into(),
    }
}

/// `pod a`, `pods a, b`.
fn pods_named(pods: &[&str]) -> String {
    match pods {
        [one] => format!("pod {one}"),
        many => format!("pods {}", many.join(", ")),
    }
}
