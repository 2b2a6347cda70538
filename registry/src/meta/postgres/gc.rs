//! Garbage collection: the mark and sweep of one repository, and the
//! tombstones of blobs whose bytes are being deleted. Each function runs
//! inside the caller's (serialised) transaction, so a sweep sees a
//! consistent repository and a concurrent push is either fully before it or
//! fully after it. Leadership: a session advisory lock on a connection of
//! its own.

use async_trait::async_trait;
use sqlx::{Connection, PgConnection, Row};

use super::{GC_LOCK, LOCK_CLASS, Mode, PostgresMeta, repository_id};
use crate::meta::{
    DoomedBlob, GcLock, GcMeta, GcPlan, MaintenanceRun, RepoSweep, Result, SweepRules, now_ms,
};

/// The gc leader's connection: the session holds the advisory lock until
/// it ends, which dropping this does (or the process dying: the server
/// ends the session and releases the lock).
struct HeldGcLock(Option<PgConnection>);

impl Drop for HeldGcLock {
    fn drop(&mut self) {
        let Some(conn) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // Closing ends the session, which releases the lock.
                    let _ = conn.close().await;
                });
            }
            // No runtime to close it politely: dropping the socket ends the
            // session all the same.
            Err(_) => drop(conn),
        }
    }
}

#[async_trait]
impl GcMeta for PostgresMeta {
    async fn gc_lock(&self) -> Result<Option<GcLock>> {
        let mut conn = self.dedicated_connection().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(GC_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !held {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(GcLock::holding(HeldGcLock(Some(conn)))))
    }
    async fn sweep_repository(&self, repo: &str, rules: SweepRules) -> Result<RepoSweep> {
        let sweep = transaction!(self, Mode::WRITE, |tx| {
            let Some(repo_id) = repository_id(&mut *tx, repo).await? else {
                return Ok(RepoSweep::default());
            };
            sweep_repo(tx, repo_id, rules).await
        })?;
        Ok(sweep)
    }
    async fn tombstone_unlinked_blobs(
        &self,
        rules: SweepRules,
        limit: u32,
    ) -> Result<Vec<DoomedBlob>> {
        transaction!(self, Mode::WRITE, |tx| tombstone_blobs(
            tx,
            rules,
            Some(limit)
        )
        .await)
    }
    async fn clear_tombstones(&self, digests: &[String]) -> Result<()> {
        transaction!(self, Mode::WRITE, |tx| {
            sqlx::query("DELETE FROM blob_tombstones WHERE digest = ANY($1)")
                .bind(digests)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
    async fn stale_tombstones(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT digest FROM blob_tombstones WHERE since < $1")
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await?,
        )
    }
    async fn plan_gc(&self, rules: SweepRules) -> Result<GcPlan> {
        // A plan only: Mode::PLAN rolls everything back.
        transaction!(self, Mode::PLAN, |tx| {
            let repos: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, name FROM repositories ORDER BY name")
                    .fetch_all(&mut *tx)
                    .await?;
            let mut plan = GcPlan::default();
            for (id, name) in repos {
                let sweep = sweep_repo(tx, id, rules).await?;
                plan.repositories.push((name, sweep));
            }
            plan.blobs = tombstone_blobs(tx, rules, None).await?;
            Ok(plan)
        })
    }
    async fn record_run(&self, run: &MaintenanceRun) -> Result<()> {
        transaction!(self, Mode::WRITE, |tx| {
            sqlx::query(
                "INSERT INTO maintenance_runs (kind, started_at, finished_at, dry_run, ok,
                   deleted_blobs, deleted_manifests, deleted_tags, deleted_bytes, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(run.kind)
            .bind(run.started_ms)
            .bind(run.finished_ms)
            .bind(run.dry_run)
            .bind(run.ok)
            .bind(run.deleted_blobs as i64)
            .bind(run.deleted_manifests as i64)
            .bind(run.deleted_tags as i64)
            .bind(run.deleted_bytes as i64)
            .bind(&run.detail)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }
}

/// The mark and sweep of one repository (see `GcMeta::sweep_repository`).
pub(super) async fn sweep_repo(
    conn: &mut PgConnection,
    repo_id: i64,
    rules: SweepRules,
) -> Result<RepoSweep> {
    let mut sweep = RepoSweep::default();
    if rules.delete_untagged {
        // Roots: tagged manifests and young ones. Reachable: their children
        // (index entries) and referrers of anything reachable, transitively.
        // Tags and references of the deleted go with them (ON DELETE
        // CASCADE). PostgreSQL allows one reference to the recursive table,
        // so both steps are one LATERAL union; each looks its rows up by
        // index (manifest_references' key, manifests_subject).
        sweep.manifests = sqlx::query_scalar(
            "WITH RECURSIVE reachable(digest) AS (
                 SELECT manifest_digest FROM tags WHERE repository_id = $1
                 UNION SELECT digest FROM manifests WHERE repository_id = $1 AND created_at >= $2
                 UNION SELECT next.digest FROM reachable r CROSS JOIN LATERAL (
                       SELECT mr.child_digest FROM manifest_references mr
                        WHERE mr.repository_id = $1 AND mr.manifest_digest = r.digest
                          AND mr.is_manifest
                       UNION ALL
                       SELECT m.digest FROM manifests m
                        WHERE m.repository_id = $1 AND m.subject = r.digest
                 ) AS next(digest)
             )
             DELETE FROM manifests
             WHERE repository_id = $1
               AND NOT EXISTS (SELECT 1 FROM reachable r WHERE r.digest = manifests.digest)
             RETURNING digest",
        )
        .bind(repo_id)
        .bind(rules.cutoff_ms)
        .fetch_all(&mut *conn)
        .await?;
        sweep.manifests.sort();
    }
    if rules.sweep_links {
        let done = sqlx::query(
            "DELETE FROM repository_blobs
             WHERE repository_id = $1 AND created_at < $2
               AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                               WHERE mr.repository_id = $1
                                 AND mr.child_digest = repository_blobs.digest)",
        )
        .bind(repo_id)
        .bind(rules.cutoff_ms)
        .execute(&mut *conn)
        .await?;
        sweep.links = done.rows_affected();
        let done = sqlx::query(
            "DELETE FROM repositories
             WHERE id = $1 AND created_at < $2
               AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1)
               AND NOT EXISTS (SELECT 1 FROM repository_blobs WHERE repository_id = $1)
               AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.repository = repositories.name)",
        )
        .bind(repo_id)
        .bind(rules.cutoff_ms)
        .execute(&mut *conn)
        .await?;
        sweep.repository_removed = done.rows_affected() > 0;
    }
    Ok(sweep)
}

/// Removes the rows of blobs no repository links (older than the cutoff,
/// with no live claim) and of dead claims, and tombstones them.
pub(super) async fn tombstone_blobs(
    conn: &mut PgConnection,
    rules: SweepRules,
    limit: Option<u32>,
) -> Result<Vec<DoomedBlob>> {
    let SweepRules {
        cutoff_ms,
        claim_cutoff_ms,
        ..
    } = rules;
    // NULL: no limit.
    let limit = limit.map(i64::from);
    let rows = sqlx::query(
        "SELECT b.digest, b.size FROM blobs b
         WHERE b.created_at < $1
           AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
           AND NOT EXISTS (SELECT 1 FROM blob_claims c
                           WHERE c.digest = b.digest AND c.claimed_at >= $2)
         ORDER BY b.digest LIMIT $3",
    )
    .bind(cutoff_ms)
    .bind(claim_cutoff_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut doomed: Vec<DoomedBlob> = rows
        .into_iter()
        .map(|r| DoomedBlob {
            digest: r.get(0),
            size: r.get::<i64, _>(1) as u64,
        })
        .collect();
    // A claim older than its cutoff: its publisher died between publishing
    // the bytes and linking them. Without a blob row, the bytes (if any)
    // belong to nobody.
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT c.digest FROM blob_claims c
         WHERE c.claimed_at < $1 AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = c.digest)
         ORDER BY c.digest LIMIT $2",
    )
    .bind(claim_cutoff_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    doomed.extend(
        orphans
            .into_iter()
            .map(|digest| DoomedBlob { digest, size: 0 }),
    );
    // Set-based, one statement each: a batch is thousands of digests.
    let digests: Vec<&str> = doomed.iter().map(|b| b.digest.as_str()).collect();
    sqlx::query("DELETE FROM blob_claims WHERE digest = ANY($1) AND claimed_at < $2")
        .bind(&digests)
        .bind(claim_cutoff_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM blobs WHERE digest = ANY($1)")
        .bind(&digests)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO blob_tombstones (digest, since)
         SELECT DISTINCT d, $2::BIGINT FROM unnest($1::TEXT[]) AS d
         ON CONFLICT (digest) DO UPDATE SET since = excluded.since",
    )
    .bind(&digests)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(doomed)
}
