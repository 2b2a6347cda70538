//! Every failure a client can see, as the distribution spec's error JSON:
//! `{"errors":[{"code","message","detail"}]}` with the spec's code and status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::meta::MetaError;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// The spec's error codes, plus the few distribution added that clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    TooManyRequests,
    Unsupported,
    PaginationNumberInvalid,
    RangeInvalid,
    /// The registry cannot do it now (a full disk, a store that does not
    /// answer); distribution's code for 503s.
    Unavailable,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unsupported => "UNSUPPORTED",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unknown => "UNKNOWN",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error response. Internal failures are logged in full and reported to
/// the client without detail.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    /// Extra headers, e.g. `Range` on a 416 so the client can resume.
    pub range: Option<String>,
    /// `WWW-Authenticate` on a 401.
    pub challenge: Option<HeaderValue>,
    /// `Retry-After` (seconds) on a 429 or 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            range: None,
            challenge: None,
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A failure the client cannot do anything about: logged with its
    /// whole chain of causes, reported without detail.
    pub fn internal(what: impl Into<anyhow::Error>) -> Self {
        let what = what.into();
        tracing::error!(error = format!("{what:#}"), "internal error");
        Self::new(Code::Unknown, "internal server error; see the registry log")
    }

    /// 503 for a conflict that resolves itself (gc finishing with a digest):
    /// the client should retry shortly.
    fn retry_soon(what: impl std::fmt::Display) -> Self {
        let mut e = Self::new(Code::Unavailable, what.to_string());
        e.retry_after = Some(1);
        e
    }

    /// 503 because `store` (a database, a bucket) did not answer: logged,
    /// counted, and the client told to retry. Nothing was changed that the
    /// client was told about.
    fn store_unavailable(store: &'static str, what: impl Into<anyhow::Error>) -> Self {
        let what = what.into();
        tracing::error!(
            store,
            error = format!("{what:#}"),
            "a store is unavailable: the request was refused"
        );
        crate::metrics::STORE_UNAVAILABLE
            .with_label_values(&[store])
            .inc();
        let mut e = Self::new(
            Code::Unavailable,
            format!("the registry's {store} store is not answering; retry shortly"),
        );
        e.retry_after = Some(5);
        e
    }

    /// A write refused because `store`'s disk is full: 507, and said so to
    /// the client, in the log and in the metrics. Nothing was stored.
    fn storage_full(store: &'static str, what: impl Into<anyhow::Error>) -> Self {
        let what = what.into();
        tracing::error!(
            store,
            error = format!("{what:#}"),
            "storage is full: the write was refused"
        );
        crate::metrics::STORAGE_FULL
            .with_label_values(&[store])
            .inc();
        Self::new(
            Code::Unavailable,
            format!(
                "the registry's {store} storage is full; nothing was stored. Retry once space is freed"
            ),
        )
        .with_status(StatusCode::INSUFFICIENT_STORAGE)
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        if crate::full_disk::is_full(&e) {
            return Self::storage_full("metadata", e);
        }
        if e.is_unavailable() {
            return Self::store_unavailable("metadata", e);
        }
        match e {
            MetaError::BlobUnknown(d) => Self::new(
                Code::ManifestBlobUnknown,
                format!("blob {d} referenced by the manifest is not in this repository"),
            ),
            MetaError::ManifestUnknown(d) => Self::new(
                Code::ManifestBlobUnknown,
                format!("manifest {d} referenced by the index is not in this repository"),
            ),
            e @ MetaError::SizeMismatch(_) => Self::new(Code::ManifestInvalid, e.to_string()),
            e @ (MetaError::QuotaExceeded { .. } | MetaError::TagImmutable { .. }) => {
                Self::new(Code::Denied, e.to_string())
            }
            e @ MetaError::ClaimLost(_) => Self::retry_soon(e),
            other => Self::internal(other),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e {
            ServiceError::Meta(e) => e.into(),
            ServiceError::Storage(e) => e.into(),
            ServiceError::BlobUnknown { .. } => Self::new(Code::BlobUnknown, message),
            ServiceError::ManifestUnknown { .. } => Self::new(Code::ManifestUnknown, message),
            ServiceError::NameUnknown(_) => Self::new(Code::NameUnknown, message),
            ServiceError::UploadUnknown { .. } => Self::new(Code::BlobUploadUnknown, message),
            ServiceError::DigestMismatch { .. } | ServiceError::ManifestDigestMismatch { .. } => {
                Self::new(Code::DigestInvalid, message)
            }
            ServiceError::ChunkOutOfOrder { size, .. }
            | ServiceError::ConcurrentAppend { size } => {
                let mut e = Self::new(Code::RangeInvalid, message);
                e.range = Some(received_range(size));
                e
            }
            ServiceError::ChunkLengthMismatch { .. } | ServiceError::LengthMismatch { .. } => {
                Self::new(Code::SizeInvalid, message)
            }
            ServiceError::BodyUnreadable(_) => Self::new(Code::BlobUploadInvalid, message),
            ServiceError::ManifestInvalid(_) => Self::new(Code::ManifestInvalid, message),
            ServiceError::Busy(_) => Self::retry_soon(message),
            ServiceError::MirrorReadOnly { .. } | ServiceError::MirrorRefused { .. } => {
                Self::new(Code::Denied, message)
            }
            ServiceError::UpstreamUnavailable { .. } => {
                let mut e = Self::new(Code::Unavailable, message);
                e.retry_after = Some(5);
                e
            }
            ServiceError::UpstreamFailed { .. } => {
                Self::new(Code::Unavailable, message).with_status(StatusCode::BAD_GATEWAY)
            }
            ServiceError::LibraryPath(_) => Self::new(Code::NameInvalid, message),
            ServiceError::NoSifImage { .. } => Self::new(Code::ManifestUnknown, message),
        }
    }
}

/// `Range` as upload responses report it: the bytes received so far.
pub fn received_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if crate::full_disk::is_full(&e) {
            return Self::storage_full("blobs", e);
        }
        if e.is_unavailable() {
            return Self::store_unavailable("blobs", e);
        }
        match e {
            StorageError::DigestMismatch { expected, actual } => Self::new(
                Code::DigestInvalid,
                format!("uploaded content has digest {actual}, not {expected}"),
            ),
            StorageError::Body(msg) => Self::new(
                Code::BlobUploadInvalid,
                format!("request body could not be read: {msg}"),
            ),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code.as_str(), "message": self.message, "detail": null}]});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert("www-authenticate", challenge);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        if let Some(range) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            response.headers_mut().insert("range", range);
        }
        response
    }
}
