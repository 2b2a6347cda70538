//! Blobs in an `object_store`: in memory (tests, throw-away registries).
//! Parts are multipart writes; a commit copies (or rewrites, when the digest
//! must be computed) into place.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::{
    BlobStore, BodyStream, ByteStream, Result, StorageError, blob_path, drain, part_path,
    upload_dir,
};
use crate::oci::digest::{Digest, Hasher};

/// Parts of a multipart write in flight at once; with the part size, this
/// bounds the memory one upload holds.
const WRITE_CONCURRENCY: usize = 2;
/// Part size of multipart writes (S3 needs at least 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;

pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
}

impl ObjectBlobs {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Blobs in memory, lost with the process.
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()))
    }

    /// Streams the parts of an upload in order.
    fn parts_stream(&self, upload: &str, parts: &[String]) -> BodyStream {
        let store = self.store.clone();
        let paths: Vec<Path> = parts.iter().map(|p| part_path(upload, p)).collect();
        futures::stream::iter(paths)
            .then(move |path| {
                let store = store.clone();
                async move { store.get(&path).await.map(|r| r.into_stream()) }
            })
            .try_flatten()
            .map_err(std::io::Error::other)
            .boxed()
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.store.head(&blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = blob_path(digest);
        let range = match range {
            // Clamp to the blob, as the trait promises.
            Some(r) => {
                let size = self
                    .size(digest)
                    .await?
                    .ok_or_else(|| StorageError::BlobMissing(digest.clone()))?;
                Some(r.start.min(size)..r.end.min(size))
            }
            None => None,
        };
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::BlobMissing(digest.clone()));
            }
            other => other?,
        };
        Ok(result.into_stream().map_err(StorageError::from).boxed())
    }

    fn whole_body_limit(&self) -> usize {
        PART_SIZE
    }

    async fn put_verified(&self, digest: &Digest, data: Bytes) -> Result<()> {
        self.store
            .put(&blob_path(digest), PutPayload::from(data))
            .await?;
        Ok(())
    }

    async fn write_part(
        &self,
        upload: &str,
        part: &str,
        mut body: BodyStream,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<u64> {
        let multipart = self.store.put_multipart(&part_path(upload, part)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(multipart, PART_SIZE);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Body(e.to_string()));
                }
            };
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&chunk);
            }
            written += chunk.len() as u64;
            if let Err(e) = writer.wait_for_capacity(WRITE_CONCURRENCY).await {
                let _ = writer.abort().await;
                drain(&mut body).await;
                return Err(e.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        Ok(written)
    }

    async fn commit_upload(
        &self,
        upload: &str,
        parts: &[String],
        expected: &Digest,
        hashed: Option<Digest>,
    ) -> Result<u64> {
        let mismatch = |actual: &Digest| StorageError::DigestMismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        };
        if let Some(actual) = hashed.as_ref().filter(|a| *a != expected) {
            return Err(mismatch(actual));
        }
        let target = blob_path(expected);
        if let ([part], Some(_)) = (parts, hashed.as_ref()) {
            let from = part_path(upload, part);
            let size = self.store.head(&from).await?.size;
            self.store.copy(&from, &target).await?;
            return Ok(size);
        }
        let assembled = format!("assembled-{}", uuid::Uuid::new_v4().simple());
        let staging = part_path(upload, &assembled);
        let mut hasher = Hasher::new(expected.algorithm());
        let body = self.parts_stream(upload, parts);
        let size = self
            .write_part(upload, &assembled, body, Some(&mut hasher))
            .await?;
        let actual = hasher.finish();
        if &actual != expected {
            let _ = self.store.delete(&staging).await;
            return Err(mismatch(&actual));
        }
        self.store.copy(&staging, &target).await?;
        Ok(size)
    }

    async fn delete_upload_part(&self, upload: &str, part: &str) -> Result<()> {
        match self.store.delete(&part_path(upload, part)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_upload(&self, upload: &str) -> Result<()> {
        let locations = self
            .store
            .list(Some(&upload_dir(upload)))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn idle_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        let mut newest: HashMap<String, SystemTime> = HashMap::new();
        let mut objects = self.store.list(Some(&Path::from("uploads")));
        while let Some(meta) = objects.next().await.transpose()? {
            if let Some(id) = meta.location.parts().nth(1) {
                let t: SystemTime = meta.last_modified.into();
                let e = newest.entry(id.as_ref().to_string()).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(newest
            .into_iter()
            .filter(|(_, t)| *t < cutoff)
            .map(|(id, _)| id)
            .collect())
    }

    async fn stale_staging(&self, _cutoff: SystemTime) -> Result<Vec<(String, u64)>> {
        // Object stores write whole objects atomically: nothing is staged.
        Ok(Vec::new())
    }

    async fn delete_staging(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
