//! Pure functions: a spec in, the desired Kubernetes objects out, and every
//! decision a controller makes about them: what a spec needs to work
//! (`Problem`s), how an existing claim is kept, which conditions the status
//! shows, what an Event says.
//!
//! Nothing here talks to a cluster: the controllers fetch what the render
//! needs (the Registry, its Repositories, robot credentials, existing
//! objects), call these functions and apply the result with server-side
//! apply. Every object carries the common labels and an owner reference to
//! its custom resource.
//!
//! - [`registry`]: a Registry's objects, config file, checks and status;
//! - [`repository`]: a Repository's objects, the policy file, checks and status;
//! - [`conditions`], [`changes`]: status conditions and Events of both kinds;
//! - [`names`], [`quantity`], [`schedule`]: names, sizes and cron schedules.

pub mod changes;
pub mod conditions;
pub mod names;
pub mod quantity;
pub mod registry;
pub mod repository;
pub mod schedule;

pub use changes::*;
pub use conditions::*;
pub use names::*;
pub use quantity::*;
pub use registry::*;
pub use repository::*;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

use crate::crd::Registry;

/// The field manager of every server-side apply and the `managed-by` label.
pub const MANAGER: &str = "berth-operator";

/// The default of the operator's `--registry-image`: the Berth image of
/// its own version. The chart passes its own image instead.
pub fn default_image() -> String {
    format!("ghcr.io/berth-dev/berth:{}", env!("CARGO_PKG_VERSION"))
}

/// The Registry as the operator runs it: with `image` (the operator's
/// `--registry-image`) when the spec names none.
pub fn with_default_image(reg: &Registry, image: &str) -> Registry {
    let mut reg = reg.clone();
    if reg.spec.image.as_deref().is_none_or(str::is_empty) {
        reg.spec.image = Some(image.to_string());
    }
    reg
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{kind} has no {field} (it must come from the API server)")]
    MissingMetadata {
        kind: &'static str,
        field: &'static str,
    },
    #[error("cannot serialise {what}: {source}")]
    Serialise {
        what: &'static str,
        source: serde_yaml::Error,
    },
}

/// An owner reference (controller, blocking deletion) to a custom resource.
pub fn owner_ref<K>(obj: &K) -> Result<OwnerReference, RenderError>
where
    K: Resource<DynamicType = ()>,
{
    let meta = obj.meta();
    let name = meta.name.clone().ok_or(RenderError::MissingMetadata {
        kind: leak_kind::<K>(),
        field: "metadata.name",
    })?;
    let uid = meta.uid.clone().ok_or(RenderError::MissingMetadata {
        kind: leak_kind::<K>(),
        field: "metadata.uid",
    })?;
    Ok(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

fn leak_kind<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Registry" => "Registry",
        "Repository" => "Repository",
        _ => "object",
    }
}

/// Labels every object of one Registry carries; `component` tells the
/// parts apart (registry, gc, retention, pull-secret).
pub fn labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "berth".into()),
        ("app.kubernetes.io/instance".into(), instance.into()),
        ("app.kubernetes.io/component".into(), component.into()),
        ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
    ])
}

/// The labels a registry Deployment selects its pods by (a subset of
/// `labels(instance, "registry")`, never changed once created).
pub fn selector_labels(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "berth".into()),
        ("app.kubernetes.io/instance".into(), instance.into()),
        ("app.kubernetes.io/component".into(), "registry".into()),
    ])
}

pub(crate) fn meta(
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    }
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
