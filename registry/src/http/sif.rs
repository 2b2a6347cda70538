//! `GET /v2/<name>/sif/<reference>` (Berth's own, not the distribution
//! spec's): the SIF images a tag or digest holds, with what their headers
//! say. Pull access to the repository is what it takes.
//!
//! ```json
//! {"repository": "hpc/tools/gromacs", "reference": "2024.1",
//!  "digest": "sha256:…", "media_type": "application/vnd.oci.image.manifest.v1+json",
//!  "images": [{
//!    "manifest": "sha256:…", "platform": {"os": "linux", "architecture": "amd64"},
//!    "layer": {"digest": "sha256:…", "size": 29814784,
//!              "media_type": "application/vnd.sylabs.sif.layer.v1.sif", "title": "gromacs.sif"},
//!    "sif": {"id": "…", "architecture": "amd64", "created": 1700000000, …,
//!            "signed": true, "encrypted": false, "fingerprints": ["433F…"],
//!            "objects": [{"id": 3, "type": "partition", "partition": {…}, …}, …]},
//!    "error": null}]}
//! ```

use axum::Json;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiResult, Code};
use crate::oci::names::{ReferenceError, TagOrDigest};
use crate::service::sif::SifLayer;

pub async fn get(state: &AppState, name: &str, reference: &str) -> ApiResult {
    let parsed: TagOrDigest = reference.parse().map_err(|e: ReferenceError| match e {
        ReferenceError::Digest(d) => ApiError::new(Code::DigestInvalid, d.to_string()),
        tag @ ReferenceError::Tag(_) => ApiError::new(Code::ManifestInvalid, tag.to_string()),
    })?;
    let images = state.registry.repository(name).sif_images(&parsed).await?;
    let body = json!({
        "repository": name,
        "reference": reference,
        "digest": images.digest,
        "media_type": images.media_type,
        "images": images.layers.iter().map(image).collect::<Vec<_>>(),
    });
    Ok(Json(body).into_response())
}

/// One SIF layer as JSON: the description, with what is derived from it
/// (`signed`, `encrypted`, `fingerprints`), or null and the reason.
pub fn image(layer: &SifLayer) -> Value {
    let (sif, error) = match &layer.description {
        Ok(image) => {
            let mut v = serde_json::to_value(image).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("signed".into(), image.signed().into());
                o.insert("encrypted".into(), image.encrypted().into());
                o.insert("fingerprints".into(), image.fingerprints().into());
            }
            (v, Value::Null)
        }
        Err(why) => (Value::Null, Value::from(why.as_str())),
    };
    json!({
        "manifest": layer.manifest,
        "platform": layer.platform.as_ref().map(|p| json!({
            "os": p.os,
            "architecture": p.architecture,
            "variant": p.variant,
        })),
        "layer": {
            "digest": layer.layer.digest.to_string(),
            "size": layer.layer.size,
            "media_type": layer.layer.media_type,
            "title": layer.layer.annotations.get("org.opencontainers.image.title"),
        },
        "sif": sif,
        "error": error,
    })
}
