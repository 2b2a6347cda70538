//! The API calls every reconciler makes: server-side apply with the
//! operator's field manager, and deleting what it owns.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::render::{Change, Changed, MANAGER};

/// Server-side apply of `obj` (which carries its name) with the operator's
/// field manager, forcing ownership of the fields it sets: a hand edit of a
/// field the operator manages is undone.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(K, Change), Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let before = api.get_opt(&name).await?;
    let after = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    let change = match before {
        None => Change::Created,
        Some(b) if b.meta().resource_version == after.meta().resource_version => Change::Unchanged,
        // Someone else changed it in between (a controller binding a claim,
        // setting a default): the operator's own entry tells whether its
        // apply changed anything (its time moves when a field it owns is
        // added, changed or removed).
        Some(b) if own_entry(b.meta()) == own_entry(after.meta()) => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok((after, change))
}

/// The managed-fields entry of the operator's applies.
fn own_entry(
    meta: &kube::api::ObjectMeta,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> {
    meta.managed_fields.iter().flatten().find(|e| {
        e.manager.as_deref() == Some(MANAGER)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.is_none()
    })
}

/// [`apply`], noting the change in `changes` (the object in the reconciled
/// object's namespace).
pub async fn apply_noted<K>(api: &Api<K>, obj: &K, changes: &mut Vec<Changed>) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let (after, change) = apply(api, obj).await?;
    changes.push(Changed::of(obj, change));
    Ok(after)
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

/// Applies `desired`, or deletes what it would be (`name`, owned by `uid`)
/// when there is none; notes either in `changes`.
pub async fn apply_or_delete<K>(
    api: &Api<K>,
    desired: Option<&K>,
    name: &str,
    uid: &str,
    changes: &mut Vec<Changed>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    match desired {
        Some(obj) => {
            apply_noted(api, obj, changes).await?;
        }
        None => {
            if delete_owned(api, name, uid).await? {
                changes.push(Changed::named::<K>(name, Change::Deleted));
            }
        }
    }
    Ok(())
}

/// The API server's message when it refused what was sent as invalid (400,
/// 422): retrying cannot fix it, the spec must change.
pub fn rejection(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            Some(s.message.clone())
        }
        _ => None,
    }
}
