//! What is stored, and what maintenance did: for metrics and `berth usage`.
//! (PostgreSQL's SUM of BIGINT is NUMERIC: every sum is cast back.)

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use super::PostgresMeta;
use crate::meta::{MaintenanceTotals, RepoUsage, Result, StatsMeta, StoreStats};

#[async_trait]
impl StatsMeta for PostgresMeta {
    async fn stats(&self) -> Result<StoreStats> {
        stats(&self.pool).await
    }
    async fn usage(&self) -> Result<Vec<RepoUsage>> {
        usage(&self.pool).await
    }
}

async fn stats(pool: &PgPool) -> Result<StoreStats> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM repositories),
                (SELECT COUNT(*) FROM manifests),
                (SELECT COUNT(*) FROM tags),
                (SELECT COUNT(*) FROM blobs),
                (SELECT COALESCE(SUM(size), 0)::BIGINT FROM blobs),
                (SELECT COUNT(*) FROM uploads)",
    )
    .fetch_one(pool)
    .await?;
    let count = |i: usize| row.get::<i64, _>(i).max(0) as u64;
    let mut stats = StoreStats {
        repositories: count(0),
        manifests: count(1),
        tags: count(2),
        blobs: count(3),
        blob_bytes: count(4),
        uploads_in_progress: count(5),
        maintenance: Vec::new(),
    };
    for kind in ["gc", "retention"] {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT ok),
                    COALESCE(SUM(deleted_blobs), 0)::BIGINT,
                    COALESCE(SUM(deleted_manifests), 0)::BIGINT,
                    COALESCE(SUM(deleted_tags), 0)::BIGINT,
                    COALESCE(SUM(deleted_bytes), 0)::BIGINT,
                    COALESCE(MAX(started_at), 0),
                    COALESCE((SELECT finished_at - started_at FROM maintenance_runs
                              WHERE kind = $1 AND NOT dry_run ORDER BY id DESC LIMIT 1), 0)
             FROM maintenance_runs WHERE kind = $1 AND NOT dry_run",
        )
        .bind(kind)
        .fetch_one(pool)
        .await?;
        let n = |i: usize| row.get::<i64, _>(i).max(0) as u64;
        stats.maintenance.push(MaintenanceTotals {
            kind: kind.into(),
            runs: n(0),
            failed_runs: n(1),
            deleted_blobs: n(2),
            deleted_manifests: n(3),
            deleted_tags: n(4),
            deleted_bytes: n(5),
            last_run_unix: n(6) as f64 / 1000.0,
            last_duration_seconds: n(7) as f64 / 1000.0,
        });
    }
    Ok(stats)
}

async fn usage(pool: &PgPool) -> Result<Vec<RepoUsage>> {
    let rows = sqlx::query(
        "SELECT r.name,
           (COALESCE((SELECT SUM(b.size) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                      WHERE rb.repository_id = r.id), 0)
             + COALESCE((SELECT SUM(octet_length(m.content)) FROM manifests m
                         WHERE m.repository_id = r.id), 0))::BIGINT,
           (SELECT COUNT(*) FROM repository_blobs rb WHERE rb.repository_id = r.id),
           (SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id),
           (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id)
         FROM repositories r ORDER BY r.name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = |i: usize| r.get::<i64, _>(i).max(0) as u64;
            RepoUsage {
                name: r.get(0),
                bytes: n(1),
                blobs: n(2),
                manifests: n(3),
                tags: n(4),
            }
        })
        .collect())
}
