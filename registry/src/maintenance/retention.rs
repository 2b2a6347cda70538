//! Retention: per-repository rules that delete old tags (and optionally the
//! manifests left untagged), from the policy file the operator renders from
//! `Repository.spec.retention`, or from flags. Which tags go is decided by
//! [`doomed_tags`], a pure function; the deletion is one transaction per
//! repository that skips any tag pushed again since it was listed.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::meta::{MaintenanceRun, MetaError, MetaStore, TagInfo, now_ms};
use crate::pattern;
use crate::settings::{RepositorySettings, RetentionRules, Settings};

#[derive(Debug, Clone)]
pub struct RetentionOptions {
    /// Repository names or patterns (`team/*`).
    pub repositories: Vec<String>,
    /// Rules for every selected repository; None: each repository's rules
    /// from the policy file.
    pub rules: Option<RetentionRules>,
    /// The policy file's per-repository settings (rules and immutable tags).
    pub settings: Vec<RepositorySettings>,
    /// Untagged manifests younger than this are kept (pushes in progress).
    pub grace: Duration,
    pub dry_run: bool,
}

/// One deleted tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

#[derive(Debug, Clone, Default)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub repositories: u64,
    pub tags: Vec<DeletedTag>,
    /// (repository, digest) of untagged manifests deleted.
    pub manifests: Vec<(String, String)>,
    pub duration: Duration,
}

/// The tags `rules` delete, from a repository's tags (any order). Candidates
/// match `only_tags` (if any), no `protect_tags` and no immutable pattern;
/// a candidate goes if it is not among the `keep_last` newest candidates
/// (when set) and was pushed more than `max_age` before `now_ms` (when set).
pub fn doomed_tags(
    tags: &[TagInfo],
    rules: &RetentionRules,
    immutable: &[String],
    now_ms: i64,
) -> Vec<TagInfo> {
    if rules.keep_last.is_none() && rules.max_age.is_none() {
        return Vec::new();
    }
    let matches_any =
        |patterns: &[String], tag: &str| patterns.iter().any(|p| pattern::matches(p, tag));
    let mut candidates: Vec<&TagInfo> = tags
        .iter()
        .filter(|t| rules.only_tags.is_empty() || matches_any(&rules.only_tags, &t.name))
        .filter(|t| !matches_any(&rules.protect_tags, &t.name))
        .filter(|t| !matches_any(immutable, &t.name))
        .collect();
    // Newest first; ties by name so the result does not depend on input order.
    candidates.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.name.cmp(&b.name)));
    let keep = rules.keep_last.map_or(0, |n| n as usize);
    let older_than = rules.max_age().map(|age| now_ms - age.as_millis() as i64);
    candidates
        .into_iter()
        .skip(keep)
        .filter(|t| older_than.is_none_or(|limit| t.updated_at < limit))
        .cloned()
        .collect()
}

/// Applies retention to the selected repositories and records the run.
pub async fn run(
    meta: &dyn MetaStore,
    opts: &RetentionOptions,
) -> Result<RetentionReport, MetaError> {
    let started_ms = now_ms();
    let started = Instant::now();
    let mut report = RetentionReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let result = apply(meta, opts, started_ms, &mut report).await;
    report.duration = started.elapsed();
    let detail = match &result {
        Ok(()) => json!({
            "tags": report.tags.iter().map(|t| json!({
                "repository": t.repository, "tag": t.tag, "digest": t.digest,
            })).collect::<Vec<_>>(),
            "manifests": report.manifests.iter().map(|(r, d)| json!({
                "repository": r, "digest": d,
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let record = MaintenanceRun {
        kind: "retention",
        started_ms,
        finished_ms: now_ms(),
        dry_run: opts.dry_run,
        ok: result.is_ok(),
        deleted_blobs: 0,
        deleted_manifests: report.manifests.len() as u64,
        deleted_tags: report.tags.len() as u64,
        deleted_bytes: 0,
        detail: Some(detail.to_string()),
    };
    // A dry run writes nothing, not even its record.
    if !opts.dry_run
        && let Err(e) = meta.record_run(&record).await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not record the retention run"
        );
    }
    result?;
    tracing::info!(
        dry_run = report.dry_run,
        repositories = report.repositories,
        tags = report.tags.len(),
        manifests = report.manifests.len(),
        duration_ms = report.duration.as_millis() as u64,
        "retention finished"
    );
    Ok(report)
}

async fn apply(
    meta: &dyn MetaStore,
    opts: &RetentionOptions,
    started_ms: i64,
    report: &mut RetentionReport,
) -> Result<(), MetaError> {
    let repos: Vec<String> = meta
        .list_repositories(None, None)
        .await?
        .into_iter()
        .filter(|r| opts.repositories.iter().any(|p| pattern::matches(p, r)))
        .collect();
    for repo in repos {
        let settings = Settings::for_repository(&opts.settings, &repo);
        let Some(rules) = opts.rules.clone().or(settings.retention) else {
            continue;
        };
        let Some(tags) = meta.tag_history(&repo).await? else {
            continue;
        };
        report.repositories += 1;
        let doomed = doomed_tags(&tags, &rules, &settings.immutable_tags, started_ms);
        let untagged_cutoff = rules
            .delete_untagged
            .then(|| started_ms - opts.grace.as_millis() as i64);
        if doomed.is_empty() && untagged_cutoff.is_none() {
            continue;
        }
        let (tags, manifests) = meta
            .apply_retention(&repo, &doomed, untagged_cutoff, opts.dry_run)
            .await?;
        for t in tags {
            tracing::info!(repository = %repo, tag = %t.name, digest = %t.digest, dry_run = opts.dry_run, "retention: tag");
            report.tags.push(DeletedTag {
                repository: repo.clone(),
                tag: t.name,
                digest: t.digest,
            });
        }
        for digest in manifests {
            tracing::info!(repository = %repo, %digest, dry_run = opts.dry_run, "retention: untagged manifest");
            report.manifests.push((repo.clone(), digest));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn tags(n: i64) -> Vec<TagInfo> {
        // tag-0 is the oldest, pushed n days ago; tag-(n-1) yesterday.
        (0..n)
            .map(|i| TagInfo {
                name: format!("tag-{i}"),
                digest: format!("sha256:{i:064}"),
                updated_at: (i - n) * DAY,
            })
            .collect()
    }

    fn names(t: &[TagInfo]) -> Vec<&str> {
        let mut v: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let rules = RetentionRules {
            keep_last: Some(3),
            ..Default::default()
        };
        let doomed = doomed_tags(&tags(5), &rules, &[], 0);
        assert_eq!(names(&doomed), ["tag-0", "tag-1"]);
    }

    #[test]
    fn max_age_and_keep_last_must_both_agree() {
        let rules = RetentionRules {
            keep_last: Some(1),
            max_age: Some("3d".into()),
            ..Default::default()
        };
        // Ages 5,4,3,2,1 days: older than 3 days are tag-0, tag-1.
        let doomed = doomed_tags(&tags(5), &rules, &[], 0);
        assert_eq!(names(&doomed), ["tag-0", "tag-1"]);
        let only_age = RetentionRules {
            max_age: Some("36h".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&doomed_tags(&tags(5), &only_age, &[], 0)),
            ["tag-0", "tag-1", "tag-2", "tag-3"]
        );
    }

    #[test]
    fn patterns_select_and_protect() {
        let mut t = tags(6);
        t[0].name = "release-1".into();
        t[1].name = "v1.0".into();
        t[2].name = "latest".into();
        let rules = RetentionRules {
            keep_last: Some(1),
            only_tags: vec!["tag-*".into(), "release-*".into(), "v*".into()],
            protect_tags: vec!["release-*".into()],
            ..Default::default()
        };
        // Candidates: tag-3, tag-4, tag-5 (v1.0 immutable, latest not selected).
        let doomed = doomed_tags(&t, &rules, &["v*".to_string()], 0);
        assert_eq!(names(&doomed), ["tag-3", "tag-4"]);
    }

    #[test]
    fn no_tag_rules_delete_no_tags() {
        let rules = RetentionRules {
            delete_untagged: true,
            ..Default::default()
        };
        assert!(doomed_tags(&tags(5), &rules, &[], 0).is_empty());
    }
}
