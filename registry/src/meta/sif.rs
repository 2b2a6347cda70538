//! What was read from the header of SIF blobs: one record per blob, kept
//! while the blob is stored (deleting the blob deletes it). A blob's bytes
//! never change, so a record, once written, is never rewritten.

use async_trait::async_trait;
use bytes::Bytes;

use super::Result;
use crate::oci::digest::Digest;
use crate::sif::SifImage;

/// A SIF blob, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifRecord {
    pub digest: Digest,
    /// The header and descriptors; Err: why the blob is not a readable SIF.
    pub description: std::result::Result<SifImage, String>,
    /// The image config a `library://` client requires for this blob
    /// (derived from the description), with its digest.
    pub library_config: Option<(Digest, Bytes)>,
}

#[async_trait]
pub trait SifMeta: Send + Sync {
    /// The record of blob `digest`, if it was described.
    async fn sif_record(&self, digest: &Digest) -> Result<Option<SifRecord>>;

    /// Records a description. A record already there stays; a blob that is
    /// not stored (gc took it meanwhile) gets none. True if it was written.
    async fn put_sif_record(&self, record: &SifRecord) -> Result<bool>;

    /// The library config whose digest is `config`, derived from a SIF blob
    /// that `repo` links.
    async fn library_config(&self, repo: &str, config: &Digest) -> Result<Option<Bytes>>;
}

/// The columns of a record: description JSON, error.
pub(crate) fn description_columns(record: &SifRecord) -> Result<(Option<String>, Option<String>)> {
    Ok(match &record.description {
        Ok(image) => (
            Some(
                serde_json::to_string(image)
                    .map_err(|e| super::MetaError::Database(sqlx::Error::Encode(Box::new(e))))?,
            ),
            None,
        ),
        Err(why) => (None, Some(why.clone())),
    })
}

/// A record from its columns: digest, description JSON, error, library
/// config digest and bytes.
pub(crate) fn record_from_columns(
    digest: &Digest,
    description: Option<String>,
    error: Option<String>,
    config_digest: Option<String>,
    config: Option<Vec<u8>>,
) -> Result<SifRecord> {
    let description = match (description, error) {
        (Some(json), _) => Ok(serde_json::from_str(&json)
            .map_err(|e| super::MetaError::Database(sqlx::Error::Decode(Box::new(e))))?),
        (None, why) => Err(why.unwrap_or_default()),
    };
    let library_config = match (config_digest, config) {
        (Some(d), Some(bytes)) => Some((
            d.parse()
                .map_err(|e| super::MetaError::Database(sqlx::Error::Decode(Box::new(e))))?,
            Bytes::from(bytes),
        )),
        _ => None,
    };
    Ok(SifRecord {
        digest: digest.clone(),
        description,
        library_config,
    })
}
