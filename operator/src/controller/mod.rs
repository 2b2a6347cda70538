//! Controllers: fetch, render, apply (server-side, one field manager), and
//! write status. One reconciler per kind ([`registry`], [`repository`]),
//! both run by one wrapper ([`reconcile`]: metrics, errors with backoff,
//! the degraded path, status); every decision is in [`crate::render`].

pub mod api;
pub mod credentials;
pub mod events;
pub mod leader;
pub mod metrics;
mod pods;
pub mod reconcile;
mod registry;
mod repository;

pub use registry::registry_controller;
pub use repository::{FINALIZER, repository_controller};

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};

use crate::render::{MANAGER, RenderError};
use metrics::Metrics;

/// Everything a reconciler needs.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
}

/// What the operator's flags set for every reconcile.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The image of a Registry whose spec names none (`--registry-image`).
    pub registry_image: String,
    /// How often a Repository's usage (tags, bytes) is read again.
    pub usage_refresh: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            registry_image: crate::render::default_image(),
            usage_refresh: Duration::from_secs(60),
        }
    }
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: Settings) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
        })
    }
}

/// Why a reconcile failed; retried with backoff by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("render: {0}")]
    Render(#[from] RenderError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{kind} {name} has no namespace")]
    NoNamespace { kind: String, name: String },
    #[error("cannot generate a key: {0}")]
    Crypto(String),
    #[error("cannot serialise {0}: {1}")]
    Json(&'static str, serde_json::Error),
}

impl Error {
    /// Every [`Error::metric_label`], for the metrics to export at zero.
    pub const METRIC_LABELS: [&'static str; 6] = [
        "kube",
        "render",
        "finalizer",
        "no_namespace",
        "crypto",
        "json",
    ];

    /// A 404 from the API server, also inside a finalizer's error: what a
    /// reconcile meets when its object (or one it writes) was just deleted.
    pub fn is_not_found(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(s)) => s.is_not_found(),
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.is_not_found(),
                F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)) => {
                    s.is_not_found()
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The `error` label of the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Render(_) => "render",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace { .. } => "no_namespace",
            Error::Crypto(_) => "crypto",
            Error::Json(..) => "json",
        }
    }
}

/// Requeue after an error, backing off with the number of consecutive
/// failures the metrics saw for this controller (5 s doubling to 5 min).
pub fn backoff(failures: u32) -> Action {
    let secs = 5u64.saturating_mul(1u64 << failures.min(6));
    Action::requeue(Duration::from_secs(secs.min(300)))
}

/// Reconciles per second are bounded by the Controller; this is the pause
/// after a spec that cannot work (re-checked in case what it lacks appears).
pub const RECHECK: Duration = Duration::from_secs(30);
/// Periodic resync of a healthy object.
pub const RESYNC: Duration = Duration::from_secs(300);
/// The pause while a Repository's rules are on their way to the registry
/// pods (they load a new policy file within seconds of the kubelet's update).
pub const POLICY_POLL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let after = |secs| Action::requeue(Duration::from_secs(secs));
        assert_eq!(backoff(0), after(5));
        assert_eq!(backoff(1), after(10));
        assert_eq!(backoff(5), after(160));
        assert_eq!(backoff(6), after(300));
        assert_eq!(backoff(u32::MAX), after(300));
    }

    #[test]
    fn metric_labels_are_listed() {
        let errors = [
            Error::Render(RenderError::MissingMetadata {
                kind: "Registry",
                field: "metadata.uid",
            }),
            Error::NoNamespace {
                kind: "Registry".into(),
                name: "hub".into(),
            },
            Error::Crypto("x".into()),
        ];
        for e in errors {
            assert!(Error::METRIC_LABELS.contains(&e.metric_label()), "{e}");
        }
    }

    fn api_error(code: u16) -> kube::Error {
        let reason = if code == 404 { "NotFound" } else { "Conflict" };
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", reason).with_code(code),
        ))
    }

    #[test]
    fn a_404_is_seen_also_inside_a_finalizer_error() {
        use kube::runtime::finalizer::Error as F;
        assert!(Error::Kube(api_error(404)).is_not_found());
        assert!(!Error::Kube(api_error(409)).is_not_found());
        let wrapped = |e| Error::Finalizer(Box::new(e));
        assert!(wrapped(F::ApplyFailed(Error::Kube(api_error(404)))).is_not_found());
        assert!(wrapped(F::RemoveFinalizer(api_error(404))).is_not_found());
        assert!(!wrapped(F::CleanupFailed(Error::Crypto("x".into()))).is_not_found());
        assert!(!Error::Crypto("x".into()).is_not_found());
    }
}
