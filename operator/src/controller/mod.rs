//! Controllers: fetch, render, apply (server-side, one field manager), and
//! write status. One reconciler per kind.

pub mod leader;
pub mod metrics;
mod registry;
mod repository;
mod status;

pub use registry::{reconcile_registry, registry_controller};
pub use repository::{FINALIZER, reconcile_repository, repository_controller};
pub use status::{Problem, condition, merge_conditions};

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::render::{MANAGER, RenderError};
use metrics::Metrics;

/// Everything a reconciler needs.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("render: {0}")]
    Render(#[from] RenderError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{kind} {name} has no namespace")]
    NoNamespace { kind: &'static str, name: String },
    #[error("cannot generate a key: {0}")]
    Crypto(String),
    #[error("cannot serialise {0}: {1}")]
    Json(&'static str, serde_json::Error),
}

impl Error {
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

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Deleted,
    Unchanged,
}

/// Server-side apply of `obj` (which carries its name) with the operator's
/// field manager, forcing ownership of the fields it sets: a hand edit of a
/// field the operator manages is undone.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(K, Change), Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let before = api
        .get_opt(&name)
        .await?
        .and_then(|o| o.meta().resource_version.clone());
    let after = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    let change = match before {
        None => Change::Created,
        Some(rv) if Some(&rv) == after.meta().resource_version.as_ref() => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok((after, change))
}

/// Deletes `name` if it exists and is controlled by the object with `uid`
/// (never someone else's object of the same name). True if it deleted.
pub async fn delete_owned<K>(api: &Api<K>, name: &str, uid: &str) -> Result<bool, Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let owned = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true));
    if !owned {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Publishes an Event about `obj`; a failure to publish is logged, never
/// fails the reconcile.
pub async fn publish<K>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: if type_ == EventType::Warning {
            "Reconcile".into()
        } else {
            "Apply".into()
        },
        // The Recorder folds events with the same reason, action and
        // related object into one series: name the object changed.
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(error = %e, reason, "cannot publish event");
    }
}

/// Events for what a reconcile changed. Each `what` is `Kind name` or
/// `Kind namespace/name` (with optional words after), which also names the
/// Event's related object.
pub async fn publish_changes<K>(ctx: &Context, obj: &K, ns: &str, changes: &[(String, Change)])
where
    K: Resource<DynamicType = ()>,
{
    for (what, change) in changes {
        let (reason, verb) = match change {
            Change::Created => ("Created", "created"),
            Change::Updated => ("Updated", "updated"),
            Change::Deleted => ("Deleted", "deleted"),
            Change::Unchanged => continue,
        };
        let mut words = what.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let target = words.next().unwrap_or_default();
        let (namespace, name) = target.split_once('/').unwrap_or((ns, target));
        let related = ObjectReference {
            kind: Some(kind.to_string()),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            ..Default::default()
        };
        publish(
            ctx,
            obj,
            EventType::Normal,
            reason,
            format!("{verb} {what}"),
            Some(related),
        )
        .await;
    }
}

/// True for API errors that retrying cannot fix (the spec is at fault):
/// they go into status instead of a retry loop.
pub fn is_invalid(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            Some(s.message.clone())
        }
        _ => None,
    }
}

/// Reconciles per second are bounded by the Controller; this is the pause
/// after a spec that cannot work (re-checked in case what it lacks appears).
pub const RECHECK: Duration = Duration::from_secs(30);
/// Periodic resync of a healthy object.
pub const RESYNC: Duration = Duration::from_secs(300);
