//! Upload sessions, with the running hash state: any process can continue one.

use async_trait::async_trait;

use super::Result;

/// An upload session.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub repository: String,
    /// Bytes received so far.
    pub size: u64,
    /// sha256 state after `size` bytes, when known.
    pub hash_state: Option<Vec<u8>>,
    /// Part objects in order.
    pub parts: Vec<String>,
}

/// A chunk appended to an upload.
#[derive(Debug, Clone)]
pub struct NewPart<'a> {
    pub name: &'a str,
    pub size: u64,
    pub hash_state: Option<Vec<u8>>,
}

#[async_trait]
pub trait UploadMeta: Send + Sync {
    async fn create_upload(&self, repo: &str, id: &str) -> Result<()>;
    async fn upload(&self, id: &str) -> Result<Option<Upload>>;
    /// Appends a part if the upload still has `offset` bytes (compare and
    /// swap: two writers racing on one upload cannot both win). False if not.
    async fn append_upload_part(&self, id: &str, offset: u64, part: NewPart<'_>) -> Result<bool>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Sessions not touched since `before_ms` (Unix milliseconds).
    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>>;
}
