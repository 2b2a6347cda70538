//! Parsing and validation of pushed manifests: OCI image manifests and
//! indexes, Docker schema2 manifests and manifest lists, and artifacts.
//! The pushed bytes are never rewritten; this only reads what they refer to.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::oci::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The config of SIF images (Apptainer's `oras://` and `library://` pushes).
pub const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";
/// A layer that is a whole SIF file.
pub const SIF_LAYER: &str = "application/vnd.sylabs.sif.layer.v1.sif";
/// The same, as Singularity before 3.7 (misspelled, unversioned) pushed it.
pub const SIF_LAYER_PROTO: &str = "appliciation/vnd.sylabs.sif.layer.tar";

/// Whether a layer of this media type is a SIF file.
pub fn is_sif_layer(media_type: &str) -> bool {
    media_type == SIF_LAYER || media_type == SIF_LAYER_PROTO
}

/// The largest manifest accepted (4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("schemaVersion must be 2")]
    SchemaVersion,
    #[error("Docker schema1 manifests are not supported; push a schema2 or OCI manifest")]
    Schema1,
    #[error("mediaType `{body}` in the manifest does not match Content-Type `{header}`")]
    MediaTypeMismatch { body: String, header: String },
    #[error("{field}: {reason}")]
    Descriptor { field: String, reason: String },
    #[error("manifest has neither `layers` nor `manifests`; cannot tell what it is")]
    UnknownShape,
}

/// What Berth needs to know about a manifest to store and index it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The media type it is stored and served with.
    pub media_type: String,
    /// `artifactType`, or for an image manifest without one, its config's media type
    /// (as the referrers API reports it).
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Blobs (config and layers) that must exist in the repository, with
    /// the size each descriptor claims.
    pub blobs: Vec<Descriptor>,
    /// Child manifests (of an index) that must exist in the repository.
    pub manifests: Vec<Descriptor>,
    /// The layers that are SIF files (by media type), among `blobs`.
    pub sif_layers: Vec<Descriptor>,
}

/// What a manifest says of content it refers to. The size must be the size
/// of the stored content: clients trust it when they pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub size: u64,
}

/// A descriptor whose size is not the stored content's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "descriptor of {digest} says {declared} bytes, but the registry holds {stored} bytes for that digest"
)]
pub struct SizeMismatch {
    pub digest: Digest,
    pub declared: u64,
    pub stored: u64,
}

impl Descriptor {
    /// SizeMismatch unless `stored` (the stored content's size) is the size
    /// this descriptor claims.
    pub fn check_size(&self, stored: u64) -> Result<(), SizeMismatch> {
        if self.size == stored {
            return Ok(());
        }
        Err(SizeMismatch {
            digest: self.digest.clone(),
            declared: self.size,
            stored,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    /// Where a non-distributable (foreign) layer is fetched from instead.
    urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

fn descriptor(field: &str, d: &RawDescriptor) -> Result<Descriptor, ManifestError> {
    let err = |reason: String| ManifestError::Descriptor {
        field: field.to_string(),
        reason,
    };
    if d.media_type.as_deref().is_none_or(str::is_empty) {
        return Err(err("mediaType is missing".into()));
    }
    let size = match d.size {
        Some(s) if s >= 0 => s as u64,
        _ => return Err(err("size is missing or negative".into())),
    };
    let digest = d
        .digest
        .as_deref()
        .ok_or_else(|| err("digest is missing".into()))?
        .parse()
        .map_err(|e| err(format!("{e}")))?;
    Ok(Descriptor { digest, size })
}

/// Strips parameters (`; charset=utf-8`) from a Content-Type value.
fn bare_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parses `body` pushed with `content_type` (the request header, if any).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ManifestError> {
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = content_type
        .map(bare_media_type)
        .filter(|t| !t.is_empty() && *t != "application/json");

    if let Some(t) = header.or(raw.media_type.as_deref())
        && DOCKER_SCHEMA1.contains(&t)
    {
        return Err(ManifestError::Schema1);
    }
    if raw.schema_version != Some(2) {
        return Err(ManifestError::SchemaVersion);
    }
    if let (Some(body_type), Some(header)) = (raw.media_type.as_deref(), header)
        && body_type != header
    {
        return Err(ManifestError::MediaTypeMismatch {
            body: body_type.to_string(),
            header: header.to_string(),
        });
    }

    let is_index = match header.or(raw.media_type.as_deref()) {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ if raw.manifests.is_some() => true,
        _ if raw.layers.is_some() || raw.config.is_some() => false,
        _ => return Err(ManifestError::UnknownShape),
    };
    let media_type = header
        .or(raw.media_type.as_deref())
        .unwrap_or(if is_index { OCI_INDEX } else { OCI_MANIFEST })
        .to_string();

    let subject = raw
        .subject
        .as_ref()
        .map(|s| descriptor("subject", s).map(|d| d.digest))
        .transpose()?;

    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut sif_layers = Vec::new();
    let mut artifact_type = raw.artifact_type.clone();
    if is_index {
        let list = raw.manifests.as_ref().ok_or(ManifestError::Descriptor {
            field: "manifests".into(),
            reason: "an index must list its manifests".into(),
        })?;
        for (i, d) in list.iter().enumerate() {
            manifests.push(descriptor(&format!("manifests[{i}]"), d)?);
        }
    } else {
        // The image spec requires a config. No client sends an image
        // manifest without one: old Singularity `oras://` pushes send a
        // descriptor of zero bytes (sha256:e3b0…, size 0), which is accepted
        // like any other config.
        let config = raw.config.as_ref().ok_or(ManifestError::Descriptor {
            field: "config".into(),
            reason: "an image manifest must have a config descriptor".into(),
        })?;
        blobs.push(descriptor("config", config)?);
        if artifact_type.is_none() {
            artifact_type = config.media_type.clone();
        }
        for (i, d) in raw.layers.iter().flatten().enumerate() {
            let layer = descriptor(&format!("layers[{i}]"), d)?;
            // Non-distributable layers name URLs to fetch them from; clients
            // never upload them, so they are not required to be here.
            if d.urls.as_ref().is_none_or(Vec::is_empty) {
                if d.media_type.as_deref().is_some_and(is_sif_layer) {
                    sif_layers.push(layer.clone());
                }
                blobs.push(layer);
            }
        }
    }

    Ok(ParsedManifest {
        media_type,
        artifact_type,
        subject,
        annotations: raw.annotations,
        blobs,
        manifests,
        sif_layers,
    })
}

/// A descriptor as a manifest lists it, for reading what a stored
/// manifest holds (its SIF layers, an index's platforms).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    pub variant: Option<String>,
}

/// What a stored manifest lists (it was validated when pushed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outline {
    pub config: Option<Entry>,
    #[serde(default)]
    pub layers: Vec<Entry>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
}

/// Reads what a stored manifest lists.
pub fn outline(body: &[u8]) -> Result<Outline, ManifestError> {
    serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))
}

/// Whether a manifest of this media type is an index (OCI or Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn image_manifest_with_sif_layer() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.sylabs.sif.config.v1+json","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"application/vnd.sylabs.sif.layer.v1.sif","digest":"{D1}","size":2}}]}}"#
        );
        let m = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.sylabs.sif.config.v1+json")
        );
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.sif_layers, m.blobs[1..]);
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{D1}","size":2,
                        "urls":["https://example.com/layer"]}}]}}"#
        );
        assert_eq!(parse(body.as_bytes(), None).unwrap().blobs.len(), 1);
    }

    #[test]
    fn rejects_mismatch_and_garbage() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(
            parse(body.as_bytes(), Some(OCI_MANIFEST)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(parse(body.as_bytes(), Some(OCI_INDEX)).is_ok());
        assert!(matches!(parse(b"{", None), Err(ManifestError::Json(_))));
        assert_eq!(
            parse(br#"{"schemaVersion":1}"#, None),
            Err(ManifestError::SchemaVersion)
        );
        for no_config in [
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":null,"layers":[]}}"#
            ),
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","layers":[]}}"#),
        ] {
            assert!(
                matches!(
                    parse(no_config.as_bytes(), None),
                    Err(ManifestError::Descriptor { ref field, .. }) if field == "config"
                ),
                "{no_config}"
            );
        }
        let bad = r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:x","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(bad.as_bytes(), None),
            Err(ManifestError::Descriptor { .. })
        ));
    }
}
