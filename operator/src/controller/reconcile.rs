//! The reconcile wrapper both controllers share (the shape of kube-rs's
//! controller-rs): a kind implements [`Reconcile`] (its own fetch, render
//! and apply); this module times and counts every reconcile, publishes
//! every error as an Event and retries it with backoff, reports a spec that
//! cannot work in status ([`degraded`]) and writes status by server-side
//! apply ([`write_status`]).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, warn};

use super::api::rejection;
use super::events::publish;
use super::{Context, Error, RECHECK, backoff};
use crate::crd::Condition;
use crate::render::{MANAGER, Problem};

/// A kind the operator reconciles.
pub trait Reconcile:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The `controller` label of the metrics, and of log lines.
    const CONTROLLER: &'static str;
    /// The status subresource.
    type Status: Serialize + Send + Sync;

    /// Fetches what the render needs, renders, applies and writes status;
    /// `ns` is the object's namespace.
    fn reconcile(
        self: Arc<Self>,
        ctx: Arc<Context>,
        ns: String,
    ) -> impl Future<Output = Result<Action, Error>> + Send;

    /// The conditions the status shows now.
    fn conditions(&self) -> &[Condition];

    /// The status reporting `problem` (the rest of the status kept).
    fn problem_status(&self, problem: &Problem) -> Self::Status;
}

/// Runs a kind's Controller with the shared reconciler and error policy,
/// until SIGTERM or Ctrl-C.
pub fn run<K: Reconcile>(
    controller: Controller<K>,
    ctx: Arc<Context>,
) -> impl Stream<Item = ()> + Send + 'static {
    controller
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .filter_map(|res| async move {
            match res {
                // A watched object pointing at one that does not exist (a
                // Repository of a missing Registry): its own status says so.
                Err(ControllerError::ObjectNotFound(obj)) => {
                    debug!(controller = K::CONTROLLER, %obj, "no such object");
                }
                Err(e) => warn!(controller = K::CONTROLLER, error = %e, "reconcile failed"),
                Ok(_) => {}
            }
            None::<()>
        })
}

/// The reconciler of every kind: the kind's own, timed and counted; every
/// error is also a Warning Event on the object (and retried with backoff
/// by [`error_policy`]).
pub async fn reconcile<K: Reconcile>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = match obj.namespace() {
        Some(ns) => obj.clone().reconcile(ctx.clone(), ns).await,
        None => Err(Error::NoNamespace {
            kind: K::kind(&()).into_owned(),
            name: obj.name_any(),
        }),
    };
    // Deleted while it was reconciled (its status write, or a finalizer
    // patch, got a 404): nothing failed and nothing is left to do.
    let result = match result {
        Err(e) if e.is_not_found() && gone(&*obj, &ctx).await => {
            debug!(
                controller = K::CONTROLLER,
                name = %obj.name_any(),
                error = %e,
                "deleted while reconciled"
            );
            Ok(Action::await_change())
        }
        other => other,
    };
    match &result {
        Ok(_) => ctx.metrics.reconciled(K::CONTROLLER, start.elapsed()),
        Err(e) => {
            publish(
                &ctx,
                &*obj,
                EventType::Warning,
                "ReconcileFailed",
                e.to_string(),
                None,
            )
            .await
        }
    }
    result
}

/// Whether `obj` no longer exists (a failed lookup counts as existing).
async fn gone<K: Reconcile>(obj: &K, ctx: &Context) -> bool {
    let Some(ns) = obj.namespace() else {
        return false;
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    matches!(api.get_opt(&obj.name_any()).await, Ok(None))
}

/// Counts the error and requeues with backoff.
pub fn error_policy<K: Reconcile>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.metrics.failed(K::CONTROLLER, error.metric_label());
    warn!(
        controller = K::CONTROLLER,
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %error,
        failures,
        "reconcile failed; retrying"
    );
    backoff(failures)
}

/// A spec that cannot work: status and (once) a Warning Event; re-checked
/// later (what it lacks may appear), not retried as an error.
pub async fn degraded<K: Reconcile>(
    obj: &K,
    ctx: &Context,
    problem: Problem,
) -> Result<Action, Error> {
    // Once per problem, as the Event: the status write below wakes the
    // controller again, and the re-check every RECHECK finds it again. The
    // status as written last (the cached object may predate the previous
    // reconcile's write).
    let ns = obj.namespace().unwrap_or_default();
    let current = Api::<K>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&obj.name_any())
        .await?;
    let conditions = current
        .as_ref()
        .map_or(obj.conditions(), |c| c.conditions());
    let new = !problem.already_reported(conditions);
    if new {
        warn!(
            controller = K::CONTROLLER,
            namespace = obj.namespace().unwrap_or_default(),
            name = %obj.name_any(),
            reason = problem.reason,
            message = %problem.message,
            "spec cannot work"
        );
    } else {
        debug!(
            controller = K::CONTROLLER,
            namespace = obj.namespace().unwrap_or_default(),
            name = %obj.name_any(),
            reason = problem.reason,
            "spec still cannot work"
        );
    }
    if new {
        publish(
            ctx,
            obj,
            EventType::Warning,
            problem.reason,
            problem.message.clone(),
            None,
        )
        .await;
    }
    write_status(obj, ctx, &obj.problem_status(&problem)).await?;
    Ok(Action::requeue(RECHECK))
}

/// After an error while applying: an object the API server refuses as
/// invalid is a spec that cannot work ([`degraded`]); anything else is
/// returned to be retried.
pub async fn failed_apply<K: Reconcile>(
    obj: &K,
    ctx: &Context,
    error: Error,
) -> Result<Action, Error> {
    match rejection(&error) {
        Some(message) => degraded(obj, ctx, Problem::apply_rejected(&message)).await,
        None => Err(error),
    }
}

/// Writes the status subresource by server-side apply (the operator's
/// field manager owns it).
pub async fn write_status<K: Reconcile>(
    obj: &K,
    ctx: &Context,
    status: &K::Status,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let ns = obj.namespace().unwrap_or_default();
    Api::<K>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}
