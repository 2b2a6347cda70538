//! Quotas: what the repositories matching a pattern hold, checked inside
//! the (serialised) transaction that would add to it.

use sqlx::PgConnection;

use crate::meta::{MetaError, Result};
use crate::pattern;
use crate::settings::Quota;

/// Bytes held by the repositories matching `pattern`: each blob once per
/// repository, plus manifests.
pub(super) async fn usage_matching(conn: &mut PgConnection, pattern: &str) -> Result<u64> {
    let like = pattern::to_sql_like(pattern);
    let bytes: i64 = sqlx::query_scalar(
        "SELECT (
           COALESCE((SELECT SUM(b.size) FROM repository_blobs rb
                     JOIN repositories r ON r.id = rb.repository_id
                     JOIN blobs b ON b.digest = rb.digest
                     WHERE r.name LIKE $1 ESCAPE '\\'), 0)
         + COALESCE((SELECT SUM(octet_length(m.content)) FROM manifests m
                     JOIN repositories r ON r.id = m.repository_id
                     WHERE r.name LIKE $1 ESCAPE '\\'), 0))::BIGINT",
    )
    .bind(like)
    .fetch_one(&mut *conn)
    .await?;
    Ok(bytes.max(0) as u64)
}

/// QuotaExceeded if adding `adding` bytes would pass one of the limits.
pub(super) async fn check_quotas(
    conn: &mut PgConnection,
    quotas: &[Quota],
    adding: u64,
) -> Result<()> {
    if adding == 0 {
        return Ok(());
    }
    for q in quotas {
        let usage = usage_matching(conn, &q.pattern).await?;
        if usage.saturating_add(adding) > q.limit_bytes {
            return Err(MetaError::QuotaExceeded {
                pattern: q.pattern.clone(),
                limit: q.limit_bytes,
                usage,
                adding,
            });
        }
    }
    Ok(())
}
