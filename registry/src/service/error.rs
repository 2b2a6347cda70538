//! What a service refuses, or fails with. `http::errors` maps each to the
//! spec's code and status, in one place.

use crate::meta::MetaError;
use crate::oci::digest::Digest;
use crate::service::publish::PublishError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("blob {digest} is not in repository `{repo}`")]
    BlobUnknown { repo: String, digest: Digest },
    #[error("manifest `{reference}` is not in repository `{repo}`")]
    ManifestUnknown { repo: String, reference: String },
    #[error("repository `{0}` is not known")]
    NameUnknown(String),
    #[error("upload `{id}` is not in progress for repository `{repo}`")]
    UploadUnknown { repo: String, id: String },
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest has digest {actual}, not {expected}")]
    ManifestDigestMismatch { expected: Digest, actual: Digest },
    /// A chunk that does not start where the upload ends; `size` is what the
    /// upload holds.
    #[error("chunk starts at {start} but the upload has {size} bytes")]
    ChunkOutOfOrder { start: u64, size: u64 },
    #[error("another request appended to this upload first")]
    ConcurrentAppend { size: u64 },
    #[error("Content-Range announced {announced} bytes, body had {got}")]
    ChunkLengthMismatch { announced: u64, got: u64 },
    #[error("Content-Length announced {announced} bytes, body had {got}")]
    LengthMismatch { announced: u64, got: u64 },
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The manifest (or a tag or reference pushed with it) is not valid.
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("blob {0} is being garbage-collected right now; retry the upload")]
    Busy(Digest),
    /// A push into a mirror's repositories (they hold what the upstream
    /// serves).
    #[error("`{repo}` mirrors {mirror}: pushes are refused (allow_push is off)")]
    MirrorReadOnly { repo: String, mirror: String },
    /// An upstream repository the mirror's patterns do not allow.
    #[error("mirror {mirror} does not serve `{repo}` (not in its repositories)")]
    MirrorRefused { mirror: String, repo: String },
    /// The upstream could not be asked now, and nothing is cached.
    #[error("upstream {mirror} ({url}) is unavailable: {cause}")]
    UpstreamUnavailable {
        mirror: String,
        url: String,
        cause: String,
    },
    /// The upstream refused, or answered what the mirror cannot use.
    #[error("upstream {mirror} ({url}) failed: {cause}")]
    UpstreamFailed {
        mirror: String,
        url: String,
        cause: String,
    },
    /// A `library://` path that names no repository.
    #[error(
        "`{0}` is not a library path (entity/collection/container, lower case, \
         [a-z0-9] separated by . _ -)"
    )]
    LibraryPath(String),
    /// A library client asked for a SIF image the reference does not hold.
    #[error("no SIF image at `{reference}` in `{repo}`: {detail}")]
    NoSifImage {
        repo: String,
        reference: String,
        detail: String,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<PublishError> for ServiceError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Meta(e) => e.into(),
            PublishError::Storage(StorageError::DigestMismatch { expected, actual }) => {
                ServiceError::DigestMismatch { expected, actual }
            }
            PublishError::Storage(e) => e.into(),
            PublishError::Busy(digest) => ServiceError::Busy(digest),
        }
    }
}
