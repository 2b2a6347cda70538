//! `library://` over OCI storage: what clients of the Sylabs library API
//! (Apptainer and SingularityCE, through container-library-client) need
//! beyond the OCI API itself.
//!
//! - Library paths are repository names (`entity/collection/container`;
//!   a bare `container` is `library/default/container`, as on the Sylabs
//!   library).
//! - [`Repository::library_image`]: the record `GET /v1/images/…` returns,
//!   which Apptainer reads before it pulls (hash, size, architecture,
//!   signatures), from an image pushed by either protocol.
//! - [`Repository::library_manifest`]: the manifest a library client is
//!   shown. The client insists on an OCI image manifest whose config is a
//!   SIF config naming the architecture and the SIF's digest; an image
//!   pushed over `oras://` has `{}` (or nothing) as config. For those,
//!   library clients are shown the same layer under a config derived from
//!   the SIF header ([`library_config`]: the bytes a library push of the
//!   same file, without a description, would have stored), served by
//!   [`Repository::library_config_blob`]. What `/v2` serves never changes:
//!   this view exists only under the library clients' prefix.
//! - [`Repository::push_library_manifest`]: a library push tags its image
//!   with an index holding that one architecture, whose descriptor has no
//!   size; Berth stores it with the size filled in (else no OCI client
//!   could follow it). The library keeps one image per architecture under
//!   a tag, and so does Berth: such an index pushed to a tag that holds an
//!   index is merged into it.

use bytes::Bytes;
use serde::Serialize;

use super::manifests::PushedManifest;
use super::{Repository, Result, ServiceError};
use crate::meta::{ManifestRecord, Reference};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::manifest::{self, DOCKER_MANIFEST, Entry, OCI_INDEX, OCI_MANIFEST, SIF_CONFIG};
use crate::oci::names::{TagOrDigest, is_valid_name};
use crate::sif::SifImage;

/// The entity and collection of a bare container name.
const DEFAULT_PREFIX: &str = "library/default";
/// Configs larger than this are not read to see whether they name an
/// architecture (library configs are about 150 bytes).
const MAX_CONFIG_READ: u64 = 64 * 1024;

/// The repository a library path names: `entity/collection/container`
/// as is; `container` alone under `library/default/`; `collection/container`
/// as is (two segments are a valid repository name too).
pub fn repository_name(path: &str) -> Result<String> {
    let path = path.trim_matches('/');
    let name = if path.contains('/') {
        path.to_string()
    } else {
        format!("{DEFAULT_PREFIX}/{path}")
    };
    if path.is_empty() || path.split('/').count() > 3 || !is_valid_name(&name) {
        return Err(ServiceError::LibraryPath(path.to_string()));
    }
    Ok(name)
}

/// The config a library client requires, as container-library-client
/// writes it for a push: architecture, OS, the SIF's digest as `rootfs`,
/// and whether it is signed and encrypted (the primary partition an
/// encrypted squashfs). None when the SIF names no architecture.
pub(super) fn library_config(layer: &Digest, image: &SifImage) -> Option<(Digest, Bytes)> {
    #[derive(Serialize)]
    struct ImageConfig<'a> {
        architecture: &'a str,
        os: &'a str,
        rootfs: String,
        signed: bool,
        encrypted: bool,
    }
    if image.architecture == "unknown" || layer.algorithm() != Algorithm::Sha256 {
        return None;
    }
    let encrypted = image
        .partitions()
        .any(|(_, p)| p.kind == "primary-system" && p.filesystem == "encrypted-squashfs");
    let config = ImageConfig {
        architecture: &image.architecture,
        os: "linux",
        rootfs: layer.to_string(),
        signed: image.signed(),
        encrypted,
    };
    let bytes = Bytes::from(serde_json::to_vec(&config).ok()?);
    Some((Digest::of(Algorithm::Sha256, &bytes), bytes))
}

/// An image as `GET /v1/images/…` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryImage {
    /// The image manifest holding the SIF.
    pub manifest: String,
    /// The SIF's digest and size.
    pub layer: Digest,
    pub size: u64,
    pub architecture: String,
    pub description: String,
    pub signed: bool,
    pub encrypted: bool,
    pub fingerprints: Vec<String>,
    /// The SIF's creation time (Unix seconds; 0 when not described).
    pub created: i64,
}

/// What a library config says, when it is one.
#[derive(serde::Deserialize, Default)]
struct ConfigFields {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    rootfs: String,
    #[serde(default)]
    description: String,
}

impl Repository<'_> {
    /// The manifest `reference` names, as a library client is shown it
    /// (see the module's docs).
    pub async fn library_manifest(&self, reference: &TagOrDigest) -> Result<ManifestRecord> {
        let record = self.manifest(reference).await?;
        Ok(self.library_view(&record).await?.unwrap_or(record))
    }

    /// An image manifest with one SIF layer whose config a library client
    /// would refuse, shown with the derived config; None for anything else.
    async fn library_view(&self, record: &ManifestRecord) -> Result<Option<ManifestRecord>> {
        if record.media_type != OCI_MANIFEST && record.media_type != DOCKER_MANIFEST {
            return Ok(None);
        }
        let Ok(raw) = serde_json::from_slice::<serde_json::Value>(&record.content) else {
            return Ok(None);
        };
        let Ok(outline) = manifest::outline(&record.content) else {
            return Ok(None);
        };
        let [layer] = outline.layers.as_slice() else {
            return Ok(None);
        };
        if !manifest::is_sif_layer(&layer.media_type) {
            return Ok(None);
        }
        if record.media_type == OCI_MANIFEST
            && let Some(config) = &outline.config
            && self.is_library_config(config).await?
        {
            return Ok(None);
        }
        let sif = self.sif_record(&layer.digest, layer.size).await?;
        let Some((config_digest, config)) = sif.library_config else {
            return Ok(None);
        };
        let view = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": SIF_CONFIG,
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            // The layer descriptor exactly as pushed.
            "layers": [raw["layers"][0].clone()],
        });
        let content = Bytes::from(
            serde_json::to_vec(&view).map_err(|e| ServiceError::ManifestInvalid(e.to_string()))?,
        );
        Ok(Some(ManifestRecord {
            digest: Digest::of(Algorithm::Sha256, &content).to_string(),
            media_type: OCI_MANIFEST.to_string(),
            content,
        }))
    }

    /// Whether `config` is a SIF config naming an architecture and a
    /// rootfs, as a library client requires.
    async fn is_library_config(&self, config: &Entry) -> Result<bool> {
        Ok(self
            .config_fields(config)
            .await?
            .is_some_and(|c| !c.architecture.is_empty() && c.rootfs.parse::<Digest>().is_ok()))
    }

    /// The fields of a (small) SIF config blob; None for another kind.
    async fn config_fields(&self, config: &Entry) -> Result<Option<ConfigFields>> {
        if config.media_type != SIF_CONFIG || config.size > MAX_CONFIG_READ || config.size < 2 {
            return Ok(None);
        }
        if self
            .meta()
            .repository_blob(self.name, &config.digest)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let bytes = self.read_range(&config.digest, 0, config.size).await?;
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// A manifest pushed by a library client. Its index descriptors carry
    /// no size (container-library-client leaves it out), which no OCI
    /// client could use: the sizes of the manifests they name, stored in
    /// this repository, are filled in. An index of one platform pushed to
    /// a tag holding an OCI index then replaces that platform's entry
    /// there and keeps the others (two pushes racing to one tag may lose
    /// one entry: the last write wins, as for any tag). Anything else is
    /// stored as pushed.
    pub async fn push_library_manifest(
        &self,
        reference: TagOrDigest,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest> {
        let is_index =
            content_type.map(|c| c.split(';').next().unwrap_or("").trim()) == Some(OCI_INDEX);
        let body = match (&reference, is_index) {
            (TagOrDigest::Tag(tag), true) => {
                let completed = self.complete_index(&body).await?.unwrap_or(body);
                self.merged_index(tag, &completed)
                    .await?
                    .unwrap_or(completed)
            }
            (TagOrDigest::Digest(_), true) => self.complete_index(&body).await?.unwrap_or(body),
            _ => body,
        };
        self.push_manifest(reference, Vec::new(), content_type, body)
            .await
    }

    /// `pushed` (an index) with the size of each manifest it names but
    /// gives no size for, as stored here; None when none lacks one.
    async fn complete_index(&self, pushed: &[u8]) -> Result<Option<Bytes>> {
        let Ok(mut index) = serde_json::from_slice::<serde_json::Value>(pushed) else {
            return Ok(None);
        };
        let Some(entries) = index["manifests"].as_array_mut() else {
            return Ok(None);
        };
        let mut changed = false;
        for entry in entries.iter_mut() {
            if entry["size"].as_u64().is_some_and(|s| s > 0) {
                continue;
            }
            let Some(digest) = entry["digest"]
                .as_str()
                .and_then(|d| d.parse::<Digest>().ok())
            else {
                continue;
            };
            if let Some(child) = self
                .meta()
                .manifest(self.name, Reference::Digest(&digest))
                .await?
            {
                entry["size"] = child.content.len().into();
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        Ok(Some(Bytes::from(serde_json::to_vec(&index).map_err(
            |e| ServiceError::ManifestInvalid(e.to_string()),
        )?)))
    }

    /// `pushed` (an index of one platform) merged into the index `tag`
    /// holds; None when there is nothing to merge.
    async fn merged_index(&self, tag: &str, pushed: &[u8]) -> Result<Option<Bytes>> {
        let Ok(mut new) = serde_json::from_slice::<serde_json::Value>(pushed) else {
            return Ok(None);
        };
        let entries = new["manifests"].as_array().cloned().unwrap_or_default();
        let [entry] = entries.as_slice() else {
            return Ok(None);
        };
        let platform = |e: &serde_json::Value| {
            let p = &e["platform"];
            (
                p["os"].clone(),
                p["architecture"].clone(),
                p["variant"].clone(),
            )
        };
        if entry["platform"].is_null() {
            return Ok(None);
        }
        let Some(current) = self.meta().manifest(self.name, Reference::Tag(tag)).await? else {
            return Ok(None);
        };
        if current.media_type != OCI_INDEX {
            return Ok(None);
        }
        let Ok(current) = serde_json::from_slice::<serde_json::Value>(&current.content) else {
            return Ok(None);
        };
        let mut merged: Vec<serde_json::Value> = current["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| platform(e) != platform(entry))
            .cloned()
            .collect();
        if merged.is_empty() {
            return Ok(None);
        }
        merged.push(entry.clone());
        new["manifests"] = serde_json::Value::Array(merged);
        Ok(Some(Bytes::from(serde_json::to_vec(&new).map_err(
            |e| ServiceError::ManifestInvalid(e.to_string()),
        )?)))
    }

    /// The bytes of a config [`Repository::library_manifest`] derived, by
    /// digest: BlobUnknown unless a SIF this repository links has it.
    pub async fn library_config_blob(&self, digest: &Digest) -> Result<Bytes> {
        self.meta()
            .library_config(self.name, digest)
            .await?
            .ok_or_else(|| ServiceError::BlobUnknown {
                repo: self.name.to_string(),
                digest: digest.clone(),
            })
    }

    /// The SIF image `tag` names for `arch` (an index is resolved by
    /// platform; a single image must be of `arch`, when given).
    pub async fn library_image(&self, tag: &str, arch: Option<&str>) -> Result<LibraryImage> {
        let not_found = |detail: String| ServiceError::NoSifImage {
            repo: self.name.to_string(),
            reference: tag.to_string(),
            detail,
        };
        let reference: TagOrDigest = tag
            .parse()
            .map_err(|e: crate::oci::names::ReferenceError| not_found(e.to_string()))?;
        let mut record = self.manifest(&reference).await?;
        let mut platform_arch = None;
        if manifest::is_index(&record.media_type) {
            let outline = manifest::outline(&record.content)
                .map_err(|e| ServiceError::ManifestInvalid(e.to_string()))?;
            let images: Vec<&Entry> = outline
                .manifests
                .iter()
                .filter(|m| m.media_type == OCI_MANIFEST || m.media_type == DOCKER_MANIFEST)
                .collect();
            let chosen = match arch {
                Some(arch) => images.into_iter().find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        p.architecture == arch && (p.os.is_empty() || p.os == "linux")
                    })
                }),
                None if images.len() == 1 => images.first().copied(),
                None => None,
            }
            .ok_or_else(|| {
                not_found(match arch {
                    Some(a) => format!("no image for architecture {a} in the index"),
                    None => "the index holds several images; name an architecture".into(),
                })
            })?;
            platform_arch = chosen.platform.as_ref().map(|p| p.architecture.clone());
            record = self
                .manifest(&TagOrDigest::Digest(chosen.digest.clone()))
                .await?;
        }
        let outline = manifest::outline(&record.content)
            .map_err(|e| ServiceError::ManifestInvalid(e.to_string()))?;
        let layer = match outline.layers.as_slice() {
            [layer] if manifest::is_sif_layer(&layer.media_type) => layer,
            _ => return Err(not_found("not a SIF image (one SIF layer)".into())),
        };
        let sif = self.sif_record(&layer.digest, layer.size).await?;
        let config = match &outline.config {
            Some(c) => self.config_fields(c).await?.unwrap_or_default(),
            None => ConfigFields::default(),
        };
        let described = sif.description.as_ref().ok();
        let architecture = platform_arch
            .filter(|a| !a.is_empty())
            .or_else(|| (!config.architecture.is_empty()).then(|| config.architecture.clone()))
            .or_else(|| described.map(|d| d.architecture.clone()))
            .unwrap_or_else(|| "unknown".into());
        if let Some(want) = arch
            && want != architecture
        {
            return Err(not_found(format!(
                "the image is for {architecture}, not {want}"
            )));
        }
        Ok(LibraryImage {
            manifest: record.digest.clone(),
            layer: layer.digest.clone(),
            size: layer.size,
            architecture,
            description: config.description,
            signed: described.is_some_and(SifImage::signed),
            encrypted: described.is_some_and(SifImage::encrypted),
            fingerprints: described.map(SifImage::fingerprints).unwrap_or_default(),
            created: described.map_or(0, |d| d.created),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_paths_are_repository_names() {
        assert_eq!(repository_name("alpine").unwrap(), "library/default/alpine");
        assert_eq!(
            repository_name("/hpc/tools/gromacs").unwrap(),
            "hpc/tools/gromacs"
        );
        assert_eq!(repository_name("tools/gromacs").unwrap(), "tools/gromacs");
        for bad in ["", "a/b/c/d", "Upper/case/x", "a//b", "../x/y"] {
            assert!(repository_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_config_is_what_a_library_push_stores() {
        let image = crate::sif::parse(&crate::sif::tests::signed_amd64()).unwrap();
        let layer = Digest::of(Algorithm::Sha256, b"the sif");
        let (digest, bytes) = library_config(&layer, &image).unwrap();
        // container-library-client's imageConfig, marshalled by Go with
        // an empty description.
        let go = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":"{layer}","signed":true,"encrypted":false}}"#
        );
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), go);
        assert_eq!(digest, Digest::of(Algorithm::Sha256, go.as_bytes()));
        let mut unknown = image;
        unknown.architecture = "unknown".into();
        assert!(library_config(&layer, &unknown).is_none());
    }
}
