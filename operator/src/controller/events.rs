//! Events on the reconciled objects (events.k8s.io/v1, through the
//! Recorder): what changed, and what users must fix.

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use crate::render::Changed;
use k8s_openapi::api::core::v1::ObjectReference;

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

/// One Normal Event per object a reconcile created, updated or deleted,
/// naming it as the related object.
pub async fn publish_changes<K>(ctx: &Context, obj: &K, changes: &[Changed])
where
    K: Resource<DynamicType = ()>,
{
    let ns = obj.namespace().unwrap_or_default();
    for changed in changes {
        if let Some((reason, note)) = changed.event() {
            let related = changed.related(&ns);
            publish(ctx, obj, EventType::Normal, reason, note, Some(related)).await;
        }
    }
}
