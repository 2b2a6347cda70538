//! Manifests: pushed (validated, then stored with their tags, checked
//! against immutable tags and quotas), pulled by tag or digest, deleted.
//! The exact bytes pushed are the bytes served; the digest is theirs.

use bytes::Bytes;

use super::publish::{Publication, publish};
use super::{Repository, Result, ServiceError};
use crate::meta::{ManifestRecord, MetaError, NewManifest, Reference};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::manifest::{self, Descriptor};
use crate::oci::names::{TagOrDigest, is_valid_tag};

/// Contents some clients reference without uploading them: the empty JSON
/// object (the config of artifacts) and zero bytes (old SIF pushes).
const WELL_KNOWN: [&[u8]; 2] = [b"{}", b""];

/// A manifest stored.
#[derive(Debug)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The tags now pointing at it.
    pub tags: Vec<String>,
    /// Its `subject`, if it refers to another manifest (referrers API).
    pub subject: Option<Digest>,
}

impl Repository<'_> {
    /// The manifest `reference` names.
    pub async fn manifest(&self, reference: &TagOrDigest) -> Result<ManifestRecord> {
        if let Some(record) = self.mirrored_manifest(reference).await? {
            return Ok(record);
        }
        let found = match reference {
            TagOrDigest::Tag(tag) => self.meta().manifest(self.name, Reference::Tag(tag)).await?,
            TagOrDigest::Digest(d) => {
                self.meta()
                    .manifest(self.name, Reference::Digest(d))
                    .await?
            }
        };
        found.ok_or_else(|| self.manifest_unknown(reference))
    }

    /// Stores `body`, pushed as `reference` with `content_type`, and tags it
    /// with the reference (if a tag) and `extra_tags` (`?tag=`).
    pub async fn push_manifest(
        &self,
        reference: TagOrDigest,
        extra_tags: Vec<String>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest> {
        self.refuse_if_mirrored()?;
        let parsed = manifest::parse(&body, content_type)
            .map_err(|e| ServiceError::ManifestInvalid(e.to_string()))?;
        let (digest, mut tags) = match reference {
            TagOrDigest::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if actual != expected {
                    return Err(ServiceError::ManifestDigestMismatch { expected, actual });
                }
                (expected, Vec::new())
            }
            TagOrDigest::Tag(tag) => (Digest::of(Algorithm::Sha256, &body), vec![tag]),
        };
        for tag in extra_tags {
            if !is_valid_tag(&tag) {
                return Err(ServiceError::ManifestInvalid(format!(
                    "`{tag}` is not a valid tag"
                )));
            }
            tags.push(tag);
        }
        for tag in &tags {
            // Refused early with a clear message; checked again, atomically,
            // in the write below.
            if let Some(pattern) = self.settings.immutable_pattern(tag)
                && let Some(current) = self.meta().manifest(self.name, Reference::Tag(tag)).await?
                && current.digest != digest.to_string()
            {
                return Err(MetaError::TagImmutable {
                    tag: tag.clone(),
                    pattern: pattern.to_string(),
                }
                .into());
            }
        }
        self.publish_well_known(&parsed.blobs).await?;

        let annotations = parsed
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default());
        self.meta()
            .put_manifest(
                self.name,
                NewManifest {
                    digest: &digest,
                    media_type: &parsed.media_type,
                    artifact_type: parsed.artifact_type.as_deref(),
                    subject: parsed.subject.as_ref(),
                    annotations,
                    content: &body,
                    blobs: &parsed.blobs,
                    manifests: &parsed.manifests,
                    tags: &tags,
                    quotas: &self.settings.quotas,
                    immutable_tags: &self.settings.immutable_tags,
                    check_children: true,
                },
            )
            .await?;
        self.describe_sif_layers(&parsed.sif_layers).await;
        Ok(PushedManifest {
            digest,
            tags,
            subject: parsed.subject,
        })
    }

    /// Deletes a tag, or a manifest by digest with every tag pointing at
    /// it; immutable tags refuse both.
    pub async fn delete_manifest(&self, reference: &TagOrDigest) -> Result<()> {
        self.refuse_if_mirrored()?;
        let deleted = match reference {
            TagOrDigest::Tag(tag) => match self.settings.immutable_pattern(tag) {
                Some(pattern) => {
                    return Err(MetaError::TagImmutable {
                        tag: tag.clone(),
                        pattern: pattern.to_string(),
                    }
                    .into());
                }
                None => self.meta().delete_tag(self.name, tag).await?,
            },
            TagOrDigest::Digest(d) => {
                self.meta()
                    .delete_manifest(self.name, d, &self.settings.immutable_tags)
                    .await?
            }
        };
        if deleted {
            Ok(())
        } else {
            Err(self.manifest_unknown(reference))
        }
    }

    pub(super) fn manifest_unknown(&self, reference: &TagOrDigest) -> ServiceError {
        ServiceError::ManifestUnknown {
            repo: self.name.to_string(),
            reference: reference.to_string(),
        }
    }

    /// Stores and links the well-known blobs the manifest references without
    /// their having been uploaded. Only once everything else the manifest
    /// refers to is known to be right, so that a refused manifest leaves no
    /// link behind (the metadata store checks it all again, atomically).
    async fn publish_well_known(&self, blobs: &[Descriptor]) -> Result<()> {
        let mut missing = Vec::new();
        for blob in blobs {
            let Some(content) = WELL_KNOWN
                .into_iter()
                .find(|c| Digest::of(blob.digest.algorithm(), c) == blob.digest)
            else {
                continue;
            };
            blob.check_size(content.len() as u64)
                .map_err(MetaError::from)?;
            if self
                .meta()
                .repository_blob(self.name, &blob.digest)
                .await?
                .is_none()
            {
                missing.push((blob, content));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        for blob in blobs
            .iter()
            .filter(|b| !missing.iter().any(|(m, _)| m.digest == b.digest))
        {
            let stored = self
                .meta()
                .repository_blob(self.name, &blob.digest)
                .await?
                .ok_or_else(|| MetaError::BlobUnknown(blob.digest.to_string()))?;
            blob.check_size(stored).map_err(MetaError::from)?;
        }
        for (blob, content) in missing {
            let publication = Publication {
                repo: self.name,
                digest: &blob.digest,
                size: content.len() as u64,
                verified: true,
                quotas: &self.settings.quotas,
                upload: None,
            };
            publish(self.meta(), publication, || async {
                self.blobs()
                    .put_verified(&blob.digest, Bytes::from_static(content))
                    .await?;
                Ok(content.len() as u64)
            })
            .await?;
        }
        Ok(())
    }
}
