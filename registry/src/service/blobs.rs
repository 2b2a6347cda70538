//! Blobs of a repository: their size, their bytes (or a range of them),
//! and unlinking one from the repository (the bytes stay until gc).

use std::ops::Range;

use super::{Repository, Result, ServiceError};
use crate::oci::digest::Digest;
use crate::storage::{ByteStream, StorageError};

/// How long a redirect to the blob store is good for.
const REDIRECT_EXPIRY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Repository<'_> {
    /// The size of blob `digest`, if this repository may serve it.
    pub async fn blob_size(&self, digest: &Digest) -> Result<u64> {
        self.meta()
            .repository_blob(self.name, digest)
            .await?
            .ok_or_else(|| self.blob_unknown(digest))
    }

    /// The bytes of blob `digest` (a size from [`Repository::blob_size`]),
    /// or `range` of them.
    pub async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream> {
        match self.blobs().get(digest, range).await {
            Ok(stream) => Ok(stream),
            Err(StorageError::BlobMissing(_)) => {
                tracing::error!(%digest, "metadata lists a blob that storage does not have");
                Err(self.blob_unknown(digest))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A URL the client may fetch blob `digest` from itself, when the blob
    /// store serves that way (S3 with `redirect`).
    pub async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        Ok(self.blobs().presigned_get(digest, REDIRECT_EXPIRY).await?)
    }

    /// Stops this repository serving blob `digest`.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.refuse_if_mirrored()?;
        if self.meta().unlink_blob(self.name, digest).await? {
            Ok(())
        } else {
            Err(self.blob_unknown(digest))
        }
    }

    pub(super) fn blob_unknown(&self, digest: &Digest) -> ServiceError {
        ServiceError::BlobUnknown {
            repo: self.name.to_string(),
            digest: digest.clone(),
        }
    }
}
