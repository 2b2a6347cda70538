//! A stored manifest described for people: its config, layers, an index's
//! children with their platforms, annotations, subject, and what kind of
//! thing it is (an image, an index, a signature, an SBOM, a SIF image…).
//! Lenient where `manifest` (validation at push) is strict: whatever was
//! stored is described as far as it can be; nothing here fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};

/// A descriptor as shown: what it points at, its type and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Raw {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// What a manifest holds, as shown. (Its descriptors keep the OCI field
/// names, `mediaType` and all; its own fields are snake_case like the rest
/// of the JSON API.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Described {
    /// The stored media type (as served).
    pub media_type: String,
    /// `artifactType`, or for a manifest without one its config's media
    /// type when that is not a plain image config.
    pub artifact_type: Option<String>,
    pub is_index: bool,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// An index's children.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
    /// Size of the manifest itself.
    pub manifest_size: u64,
}

/// Config media types of ordinary images: they are no artifact type.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Describes `content`, stored with `media_type`. Bytes that are not a
/// manifest's JSON give an empty description of that media type.
pub fn describe(media_type: &str, content: &[u8]) -> Described {
    let raw: Raw = serde_json::from_slice(content).unwrap_or_default();
    let is_index = matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
        || (raw.manifests.is_some() && raw.config.is_none());
    let artifact_type = raw.artifact_type.clone().or_else(|| {
        raw.config
            .as_ref()
            .map(|c| c.media_type.clone())
            .filter(|t| !t.is_empty() && !IMAGE_CONFIGS.contains(&t.as_str()))
    });
    Described {
        media_type: if media_type.is_empty() {
            raw.media_type.unwrap_or_default()
        } else {
            media_type.to_string()
        },
        artifact_type,
        is_index,
        config: raw.config,
        layers: raw.layers,
        manifests: raw.manifests.unwrap_or_default(),
        subject: raw.subject,
        annotations: raw.annotations,
        manifest_size: content.len() as u64,
    }
}

impl Described {
    /// Bytes a pull of this manifest fetches, the manifest included: config
    /// and layers, or for an index the sizes its entries declare (their
    /// manifests only; see `service::browse` for the images behind them).
    pub fn own_size(&self) -> u64 {
        let referenced: u64 = if self.is_index {
            self.manifests.iter().map(|d| d.size).sum()
        } else {
            self.config.iter().chain(&self.layers).map(|d| d.size).sum()
        };
        self.manifest_size.saturating_add(referenced)
    }

    /// An index's platforms, in order, without repeats (`linux/amd64`, …).
    pub fn platforms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.manifests.iter().filter_map(|d| d.platform.as_ref()) {
            let p = p.to_string();
            // Attestation manifests in buildx indexes say unknown/unknown.
            if p != "unknown/unknown" && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Whether it holds a SIF image (Singularity/Apptainer over `oras://`).
    pub fn is_sif(&self) -> bool {
        self.artifact_type
            .as_deref()
            .is_some_and(|t| t.starts_with(SIF_PREFIX))
            || self.layers.iter().any(|l| is_sif_layer(&l.media_type))
    }

    /// What this is, in a word or two.
    pub fn kind(&self) -> Kind {
        if self.is_index {
            return Kind::Index;
        }
        if self.is_sif() {
            return Kind::Sif;
        }
        match self.artifact_type.as_deref() {
            Some(t) => Kind::of_artifact_type(t),
            None => Kind::Image,
        }
    }
}

const SIF_PREFIX: &str = "application/vnd.sylabs.sif";

/// SIF layer media types, the legacy misspelled one included.
pub fn is_sif_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.sylabs.sif.layer")
        || media_type.starts_with("appliciation/vnd.sylabs.sif.layer")
}

/// What a manifest is, as people name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Index,
    Sif,
    Signature,
    Sbom,
    Attestation,
    Artifact,
}

impl Kind {
    /// The kind of an artifact (or referrer) by its artifact type: cosign
    /// and notation signatures, sigstore bundles, SPDX and CycloneDX SBOMs,
    /// in-toto attestations.
    pub fn of_artifact_type(artifact_type: &str) -> Kind {
        let t = artifact_type.to_ascii_lowercase();
        if t.starts_with(SIF_PREFIX) {
            Kind::Sif
        } else if t.contains("cosign.artifact.sig")
            || t.contains("notary.signature")
            || t.contains("sigstore.bundle")
            || t.contains("signature")
        {
            Kind::Signature
        } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
            Kind::Sbom
        } else if t.contains("in-toto") || t.contains("attestation") || t.contains("provenance") {
            Kind::Attestation
        } else {
            Kind::Artifact
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Index => "index",
            Kind::Sif => "SIF image",
            Kind::Signature => "signature",
            Kind::Sbom => "SBOM",
            Kind::Attestation => "attestation",
            Kind::Artifact => "artifact",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
      "manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":500,
         "platform":{"os":"linux","architecture":"amd64"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":400,
         "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":300,
         "platform":{"os":"unknown","architecture":"unknown"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dd","size":500,
         "platform":{"os":"linux","architecture":"amd64"}}]}"#;

    #[test]
    fn an_index_lists_its_platforms() {
        let d = describe(OCI_INDEX, INDEX.as_bytes());
        assert!(d.is_index);
        assert_eq!(d.kind(), Kind::Index);
        assert_eq!(d.platforms(), ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(d.own_size(), INDEX.len() as u64 + 1700);
        assert_eq!(d.manifests.len(), 4);
    }

    #[test]
    fn an_image_sums_config_and_layers() {
        let m = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":10},
          "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l","size":1000,
                     "annotations":{"org.opencontainers.image.title":"x"}}],
          "annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}"#;
        let d = describe("application/vnd.oci.image.manifest.v1+json", m.as_bytes());
        assert_eq!(d.kind(), Kind::Image);
        assert_eq!(d.artifact_type, None);
        assert_eq!(d.own_size(), m.len() as u64 + 1010);
        assert_eq!(
            d.layers[0].annotations["org.opencontainers.image.title"],
            "x"
        );
        assert_eq!(d.annotations.len(), 1);
        assert!(d.platforms().is_empty());
    }

    #[test]
    fn artifacts_are_named_by_their_type() {
        let sif = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.sylabs.sif.config.v1+json","digest":"sha256:c","size":2},
          "layers":[{"mediaType":"application/vnd.sylabs.sif.layer.v1.sif","digest":"sha256:l","size":5}]}"#;
        let d = describe("application/vnd.oci.image.manifest.v1+json", sif.as_bytes());
        assert_eq!(d.kind(), Kind::Sif);
        assert_eq!(
            d.artifact_type.as_deref(),
            Some("application/vnd.sylabs.sif.config.v1+json")
        );
        let legacy = sif
            .replace(
                "application/vnd.sylabs.sif.layer.v1.sif",
                "appliciation/vnd.sylabs.sif.layer.tar",
            )
            .replace(
                "application/vnd.sylabs.sif.config.v1+json",
                "application/vnd.oci.image.config.v1+json",
            );
        assert_eq!(describe("", legacy.as_bytes()).kind(), Kind::Sif);

        for (t, kind) in [
            (
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                Kind::Signature,
            ),
            ("application/vnd.cncf.notary.signature", Kind::Signature),
            (
                "application/vnd.dev.sigstore.bundle.v0.3+json",
                Kind::Signature,
            ),
            ("application/spdx+json", Kind::Sbom),
            ("application/vnd.cyclonedx+json", Kind::Sbom),
            ("application/vnd.in-toto+json", Kind::Attestation),
            ("application/vnd.example.thing", Kind::Artifact),
        ] {
            assert_eq!(Kind::of_artifact_type(t), kind, "{t}");
        }
        let referrer = r#"{"schemaVersion":2,"artifactType":"application/spdx+json",
          "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:e","size":2},
          "layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:s","size":9}}"#;
        let d = describe(
            "application/vnd.oci.image.manifest.v1+json",
            referrer.as_bytes(),
        );
        assert_eq!(d.kind(), Kind::Sbom);
        assert_eq!(d.subject.map(|s| s.digest).as_deref(), Some("sha256:s"));
    }

    #[test]
    fn anything_else_describes_as_empty() {
        let d = describe("application/octet-stream", b"\xff not json");
        assert_eq!(d.kind(), Kind::Image);
        assert!(d.layers.is_empty() && d.config.is_none());
        assert_eq!(d.own_size(), 10);
        assert_eq!(d.media_type, "application/octet-stream");
    }
}
