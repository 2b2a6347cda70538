//! The rules for an existing data claim: claims only grow, and their class
//! and access modes are immutable.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use crate::render::parse_bytes;

/// Keeps `existing`'s values in the claim to apply (`want`) where the spec
/// asks for what a claim cannot do: a smaller size, another class, other
/// access modes. Returns a note saying what was kept, None when nothing was.
pub fn keep_existing_claim(
    want: &mut PersistentVolumeClaim,
    existing: &PersistentVolumeClaim,
) -> Option<String> {
    let name = want.name_any();
    let (Some(cur), Some(want)) = (existing.spec.as_ref(), want.spec.as_mut()) else {
        return None;
    };
    let mut notes = Vec::new();
    if let (Some(cur_size), Some(want_size)) = (size_of(cur), size_of(want))
        && let (Ok(c), Ok(w)) = (parse_bytes(&cur_size), parse_bytes(&want_size))
        && w < c
    {
        notes.push(format!(
            "PersistentVolumeClaim {name} stays at {cur_size}: the spec asks for {want_size}, and claims are never shrunk (data would be lost)"
        ));
        if let Some(req) = want.resources.as_mut().and_then(|r| r.requests.as_mut()) {
            req.insert("storage".into(), Quantity(cur_size));
        }
    }
    if cur.storage_class_name.is_some() && cur.storage_class_name != want.storage_class_name {
        if want.storage_class_name.is_some() {
            notes.push(format!(
                "PersistentVolumeClaim {name} keeps storage class {:?}: a claim's class cannot change",
                cur.storage_class_name.clone().unwrap_or_default()
            ));
        }
        want.storage_class_name = cur.storage_class_name.clone();
    }
    if cur.access_modes != want.access_modes {
        notes.push(format!(
            "PersistentVolumeClaim {name} keeps access modes {:?}: they cannot change",
            cur.access_modes.clone().unwrap_or_default()
        ));
        want.access_modes = cur.access_modes.clone();
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn size_of(spec: &PersistentVolumeClaimSpec) -> Option<String> {
    spec.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
}
