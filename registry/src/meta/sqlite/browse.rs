//! Browsing: repository summaries, tag pages, manifest facts, quota usage
//! and recent maintenance runs (see `meta::browse`).

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteMeta, quotas, repository_id};
use crate::meta::{
    BrowseMeta, MaintenanceRun, ManifestFacts, RepositorySummary, Result, TagPage, TagRow,
};
use crate::oci::digest::Digest;

#[async_trait]
impl BrowseMeta for SqliteMeta {
    async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT r.name,
               (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id),
               (SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id),
               COALESCE((SELECT SUM(b.size) FROM repository_blobs rb
                         JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id), 0)
                 + COALESCE((SELECT SUM(length(m.content)) FROM manifests m
                             WHERE m.repository_id = r.id), 0),
               MAX(COALESCE((SELECT MAX(t.updated_at) FROM tags t WHERE t.repository_id = r.id), 0),
                   COALESCE((SELECT MAX(m.created_at) FROM manifests m WHERE m.repository_id = r.id), 0))
             FROM json_each($1) w JOIN repositories r ON r.name = w.value
             ORDER BY w.key",
        )
        .bind(wanted)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let n = |i: usize| r.get::<i64, _>(i).max(0) as u64;
                let last: i64 = r.get(4);
                RepositorySummary {
                    name: r.get(0),
                    tags: n(1),
                    manifests: n(2),
                    bytes: n(3),
                    last_push_ms: (last > 0).then_some(last),
                }
            })
            .collect())
    }

    async fn tag_page(&self, repo: &str, offset: u64, limit: u32) -> Result<Option<TagPage>> {
        let Some(repo_id) = repository_id(&self.read, repo).await? else {
            return Ok(None);
        };
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tags WHERE repository_id = $1")
            .bind(repo_id)
            .fetch_one(&self.read)
            .await?;
        let rows = sqlx::query(
            "SELECT t.name, t.manifest_digest, m.media_type, m.content, t.updated_at
             FROM tags t JOIN manifests m
               ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
             WHERE t.repository_id = $1
             ORDER BY t.updated_at DESC, t.name LIMIT $2 OFFSET $3",
        )
        .bind(repo_id)
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        Ok(Some(TagPage {
            total: total.max(0) as u64,
            rows: rows
                .into_iter()
                .map(|r| TagRow {
                    name: r.get(0),
                    digest: r.get(1),
                    media_type: r.get(2),
                    content: bytes::Bytes::from(r.get::<Vec<u8>, _>(3)),
                    updated_at: r.get(4),
                })
                .collect(),
        }))
    }

    async fn manifest_facts(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestFacts>> {
        let Some(repo_id) = repository_id(&self.read, repo).await? else {
            return Ok(None);
        };
        let created: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        let Some(created_at) = created else {
            return Ok(None);
        };
        let tags = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2 ORDER BY name",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_all(&self.read)
        .await?;
        Ok(Some(ManifestFacts { created_at, tags }))
    }

    async fn pattern_usage(&self, pattern: &str) -> Result<u64> {
        let mut conn = self.read.acquire().await?;
        quotas::usage_matching(&mut conn, pattern).await
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<MaintenanceRun>> {
        let rows = sqlx::query(
            "SELECT kind, started_at, finished_at, dry_run, ok, deleted_blobs,
                    deleted_manifests, deleted_tags, deleted_bytes
             FROM maintenance_runs ORDER BY started_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let n = |i: usize| r.get::<i64, _>(i).max(0) as u64;
                MaintenanceRun {
                    kind: crate::meta::run_kind(r.get(0)),
                    started_ms: r.get(1),
                    finished_ms: r.get(2),
                    dry_run: r.get(3),
                    ok: r.get(4),
                    deleted_blobs: n(5),
                    deleted_manifests: n(6),
                    deleted_tags: n(7),
                    deleted_bytes: n(8),
                    // What was deleted names repositories and tags: not for
                    // pages whose reader may not pull them.
                    detail: None,
                }
            })
            .collect())
    }
}
