//! SIF images, understood: when a manifest with SIF layers is stored, each
//! layer's header and descriptor table (a prefix of the blob, at most
//! [`sif::MAX_PREFIX`] bytes, usually one 32 KiB read) are read and
//! recorded, once per blob. A layer that is not a readable SIF never fails
//! the push (the bytes are the user's): it is recorded with the reason. A
//! layer pushed before Berth described SIFs, or whose read failed, is
//! described when first asked about.
//!
//! [`Repository::sif_images`] is what the API shows for a tag or digest:
//! every SIF layer it reaches (an index's children too), with its platform
//! and description.

use futures::StreamExt;

use super::{Repository, Result, ServiceError};
use crate::meta::SifRecord;
use crate::oci::digest::Digest;
use crate::oci::manifest::{self, Descriptor, Entry, Platform};
use crate::oci::names::TagOrDigest;
use crate::sif::{self, SifImage};

/// The first read of a SIF blob: header and (as Apptainer lays them out)
/// the whole descriptor table.
const FIRST_READ: u64 = 32 * 1024;

/// A SIF layer reached from a manifest, with what is known of it.
#[derive(Debug, Clone)]
pub struct SifLayer {
    /// The image manifest that lists the layer.
    pub manifest: String,
    /// Its platform, when reached through an index that gives one.
    pub platform: Option<Platform>,
    /// The layer's descriptor (media type, digest, size, annotations).
    pub layer: Entry,
    /// The description; Err: why there is none.
    pub description: std::result::Result<SifImage, String>,
}

/// What a tag or digest holds, SIF-wise.
#[derive(Debug, Clone)]
pub struct SifImages {
    pub digest: String,
    pub media_type: String,
    pub layers: Vec<SifLayer>,
}

impl Repository<'_> {
    /// Describes the SIF layers of a manifest just stored. Never fails:
    /// what cannot be read now is described when first asked about.
    pub(super) async fn describe_sif_layers(&self, layers: &[Descriptor]) {
        for layer in layers {
            if let Err(e) = self.sif_record(&layer.digest, layer.size).await {
                tracing::warn!(
                    digest = %layer.digest,
                    error = crate::report::chain(&e),
                    "could not describe a SIF layer; it will be described when asked about"
                );
            }
        }
    }

    /// The record of SIF blob `digest` (of `size` bytes), describing it
    /// first if it was not.
    pub(super) async fn sif_record(&self, digest: &Digest, size: u64) -> Result<SifRecord> {
        if let Some(record) = self.meta().sif_record(digest).await? {
            return Ok(record);
        }
        let prefix = self.sif_prefix(digest, size).await?;
        let description = sif::parse(&prefix).map_err(|e| e.to_string());
        let library_config = description
            .as_ref()
            .ok()
            .and_then(|image| super::library::library_config(digest, image));
        let record = SifRecord {
            digest: digest.clone(),
            description,
            library_config,
        };
        if let Err(why) = &record.description {
            tracing::info!(%digest, why, "a SIF layer that is not a readable SIF: not described");
        }
        self.meta().put_sif_record(&record).await?;
        Ok(record)
    }

    /// The first bytes of a blob, as far as its descriptor table reaches
    /// (when it looks like a SIF), never more than [`sif::MAX_PREFIX`].
    async fn sif_prefix(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let mut prefix = self.read_range(digest, 0, size.min(FIRST_READ)).await?;
        if let Ok(end) = sif::table_end(&prefix)
            && end > prefix.len()
            && end as u64 <= size
        {
            let rest = self
                .read_range(digest, prefix.len() as u64, end as u64)
                .await?;
            prefix.extend_from_slice(&rest);
        }
        Ok(prefix)
    }

    /// Bytes `start..end` of a blob, read into memory (small ranges only).
    pub(super) async fn read_range(
        &self,
        digest: &Digest,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>> {
        let want = end.saturating_sub(start) as usize;
        let mut out = Vec::with_capacity(want);
        if want == 0 {
            return Ok(out);
        }
        let mut stream = self.read_blob(digest, Some(start..end)).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let room = want - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() == want {
                break;
            }
        }
        Ok(out)
    }

    /// The SIF layers `reference` reaches: an image manifest's, or those of
    /// an index's children (with their platforms).
    pub async fn sif_images(&self, reference: &TagOrDigest) -> Result<SifImages> {
        let record = self.manifest(reference).await?;
        let mut images = SifImages {
            digest: record.digest.clone(),
            media_type: record.media_type.clone(),
            layers: Vec::new(),
        };
        let outline = manifest::outline(&record.content)
            .map_err(|e| ServiceError::ManifestInvalid(e.to_string()))?;
        if manifest::is_index(&record.media_type) || !outline.manifests.is_empty() {
            for child in &outline.manifests {
                let Ok(child_record) = self
                    .manifest(&TagOrDigest::Digest(child.digest.clone()))
                    .await
                else {
                    continue;
                };
                self.collect_sif_layers(
                    &child_record.digest,
                    &child_record.content,
                    child.platform.clone(),
                    &mut images.layers,
                )
                .await?;
            }
        } else {
            self.collect_sif_layers(&record.digest, &record.content, None, &mut images.layers)
                .await?;
        }
        Ok(images)
    }

    async fn collect_sif_layers(
        &self,
        manifest_digest: &str,
        content: &[u8],
        platform: Option<Platform>,
        out: &mut Vec<SifLayer>,
    ) -> Result<()> {
        let Ok(outline) = manifest::outline(content) else {
            return Ok(());
        };
        for layer in outline
            .layers
            .into_iter()
            .filter(|l| manifest::is_sif_layer(&l.media_type))
        {
            let record = self.sif_record(&layer.digest, layer.size).await?;
            out.push(SifLayer {
                manifest: manifest_digest.to_string(),
                platform: platform.clone(),
                layer,
                description: record.description,
            });
        }
        Ok(())
    }
}
