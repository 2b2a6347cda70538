//! Browsing the registry: what the web UI shows and its JSON API returns —
//! the repository list (searched, paged, with sizes, last push and quota
//! usage), a repository's tags (digest, size, platforms, push time), a
//! manifest (config, layers, an index's children, annotations, its
//! referrers as a tree) and the operations summary. Read-only. Who may see
//! what is the caller's business: the list takes a visibility filter, and
//! the other views are asked for only after a pull check.

use std::collections::HashMap;

use serde::Serialize;

use super::{Registry, Repository, Result, ServiceError};
use crate::meta::{MaintenanceRun, MaintenanceTotals, Reference};
use crate::oci::describe::{self, Described, Kind};
use crate::oci::digest::Digest;
use crate::oci::names::TagOrDigest;

/// The largest page any view returns.
pub const MAX_PER_PAGE: u32 = 200;
/// Referrers shown in one tree, all levels together.
const MAX_REFERRERS: usize = 200;
/// How deep a referrers tree goes (a signature of an SBOM of an image is 2).
const MAX_REFERRER_DEPTH: usize = 4;
/// An index's children looked at to size it.
const MAX_CHILDREN_SIZED: usize = 64;

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    /// `page` and `per_page` as given, clamped to what makes sense.
    pub fn new(page: Option<u32>, per_page: Option<u32>, default_per_page: u32) -> Self {
        PageRequest {
            page: page.unwrap_or(1).max(1),
            per_page: per_page.unwrap_or(default_per_page).clamp(1, MAX_PER_PAGE),
        }
    }

    fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

/// A quota that applies to a repository, and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaUse {
    /// The repository name or pattern the quota is set on.
    pub pattern: String,
    pub limit_bytes: u64,
    /// What the repositories matching the pattern hold together.
    pub used_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryItem {
    pub name: String,
    pub tags: u64,
    pub manifests: u64,
    /// Blob bytes (each blob once) plus manifest bytes.
    pub bytes: u64,
    /// Unix ms of the last tag or manifest push (None: none yet).
    pub last_push: Option<i64>,
    pub quotas: Vec<QuotaUse>,
}

/// One page of the repositories the caller may pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryList {
    /// The search (a substring of the name), if any.
    pub query: String,
    /// Repositories matching it that the caller may pull (all pages).
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub repositories: Vec<RepositoryItem>,
}

impl RepositoryList {
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.per_page)).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagItem {
    pub name: String,
    pub digest: String,
    pub media_type: String,
    pub kind: Kind,
    pub artifact_type: Option<String>,
    /// What a pull of it fetches: manifest, config and layers; for an
    /// index, every platform's image.
    pub size: u64,
    /// An index's platforms (`linux/amd64`, …).
    pub platforms: Vec<String>,
    /// What refers to it (signatures, SBOMs, …), each kind once.
    pub referrers: Vec<Kind>,
    /// Unix ms when the tag was last pointed here.
    pub pushed_at: i64,
}

/// A repository's tags, one page, newest push first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryView {
    pub name: String,
    pub total_tags: u64,
    pub page: u32,
    pub per_page: u32,
    pub tags: Vec<TagItem>,
    pub quotas: Vec<QuotaUse>,
    /// Tag patterns that cannot be moved or deleted.
    pub immutable_tags: Vec<String>,
}

impl RepositoryView {
    pub fn pages(&self) -> u64 {
        self.total_tags.div_ceil(u64::from(self.per_page)).max(1)
    }
}

/// A referrer of a manifest, with its own referrers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferrerNode {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub kind: Kind,
    pub size: u64,
    pub annotations: HashMap<String, String>,
    pub referrers: Vec<ReferrerNode>,
}

/// SIF metadata of one layer, as the server recorded it at push (a JSON
/// object; empty until the server records SIF metadata).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SifLayer {
    pub digest: String,
    pub metadata: serde_json::Value,
}

/// One manifest, described.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestView {
    pub repository: String,
    pub digest: String,
    pub kind: Kind,
    /// Unix ms when it was pushed.
    pub pushed_at: i64,
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub described: Described,
    /// What a pull fetches (see [`TagItem::size`]).
    pub total_size: u64,
    pub referrers: Vec<ReferrerNode>,
    /// More referrers exist than the tree shows.
    pub referrers_truncated: bool,
    pub sif: Vec<SifLayer>,
    /// The manifest as stored, pretty-printed when it is JSON.
    pub content: String,
}

/// A recorded gc or retention run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunItem {
    pub kind: &'static str,
    pub started_at: i64,
    pub duration_ms: i64,
    pub dry_run: bool,
    pub ok: bool,
    pub deleted_blobs: u64,
    pub deleted_manifests: u64,
    pub deleted_tags: u64,
    pub deleted_bytes: u64,
}

impl From<MaintenanceRun> for RunItem {
    fn from(r: MaintenanceRun) -> Self {
        RunItem {
            kind: r.kind,
            started_at: r.started_ms,
            duration_ms: (r.finished_ms - r.started_ms).max(0),
            dry_run: r.dry_run,
            ok: r.ok,
            deleted_blobs: r.deleted_blobs,
            deleted_manifests: r.deleted_manifests,
            deleted_tags: r.deleted_tags,
            deleted_bytes: r.deleted_bytes,
        }
    }
}

/// Totals of one kind of maintenance (the numbers `/metrics` exports).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceItem {
    pub kind: String,
    pub runs: u64,
    pub failed_runs: u64,
    pub deleted_blobs: u64,
    pub deleted_manifests: u64,
    pub deleted_tags: u64,
    pub deleted_bytes: u64,
    /// Unix ms of the last run's start (None: never ran).
    pub last_run: Option<i64>,
    pub last_duration_ms: u64,
}

impl From<MaintenanceTotals> for MaintenanceItem {
    fn from(t: MaintenanceTotals) -> Self {
        MaintenanceItem {
            kind: t.kind,
            runs: t.runs,
            failed_runs: t.failed_runs,
            deleted_blobs: t.deleted_blobs,
            deleted_manifests: t.deleted_manifests,
            deleted_tags: t.deleted_tags,
            deleted_bytes: t.deleted_bytes,
            last_run: (t.last_run_unix > 0.0).then_some((t.last_run_unix * 1000.0) as i64),
            last_duration_ms: (t.last_duration_seconds * 1000.0) as u64,
        }
    }
}

/// What the registry holds and what maintenance did: the data `/metrics`
/// reads, plus the latest runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operations {
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub blobs: u64,
    /// Bytes of the stored blobs (each once).
    pub stored_bytes: u64,
    pub uploads_in_progress: u64,
    pub maintenance: Vec<MaintenanceItem>,
    pub recent_runs: Vec<RunItem>,
}

/// Whether `name` matches a search: every word of it is a substring of the
/// name, ignoring case.
pub fn matches_query(name: &str, query: &str) -> bool {
    let name = name.to_ascii_lowercase();
    query
        .split_whitespace()
        .all(|word| name.contains(&word.to_ascii_lowercase()))
}

impl Registry {
    /// One page of the repositories `visible` lets the caller see whose
    /// names match `query`, sorted by name.
    pub async fn repository_list(
        &self,
        query: &str,
        page: PageRequest,
        visible: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<RepositoryList> {
        // Names only (one indexed scan), filtered here; summaries are
        // computed for the page alone. 10,000 names take milliseconds.
        let names: Vec<String> = self
            .meta
            .list_repositories(None, None)
            .await?
            .into_iter()
            .filter(|n| matches_query(n, query) && visible(n))
            .collect();
        let total = names.len() as u64;
        let start = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let wanted: Vec<String> = names
            .into_iter()
            .skip(start)
            .take(page.per_page as usize)
            .collect();
        let mut usage = QuotaUsage::default();
        let mut repositories = Vec::with_capacity(wanted.len());
        for s in self.meta.repository_summaries(&wanted).await? {
            let quotas = usage.of(self, &s.name).await?;
            repositories.push(RepositoryItem {
                name: s.name,
                tags: s.tags,
                manifests: s.manifests,
                bytes: s.bytes,
                last_push: s.last_push_ms,
                quotas,
            });
        }
        Ok(RepositoryList {
            query: query.to_string(),
            total,
            page: page.page,
            per_page: page.per_page,
            repositories,
        })
    }

    /// The operations summary.
    pub async fn operations(&self, runs: u32) -> Result<Operations> {
        let stats = self.meta.stats().await?;
        let recent = self.meta.recent_runs(runs).await?;
        Ok(Operations {
            repositories: stats.repositories,
            manifests: stats.manifests,
            tags: stats.tags,
            blobs: stats.blobs,
            stored_bytes: stats.blob_bytes,
            uploads_in_progress: stats.uploads_in_progress,
            maintenance: stats.maintenance.into_iter().map(Into::into).collect(),
            recent_runs: recent.into_iter().map(Into::into).collect(),
        })
    }
}

/// Quota usage, computed once per pattern for a page.
#[derive(Default)]
struct QuotaUsage(HashMap<String, u64>);

impl QuotaUsage {
    async fn of(&mut self, registry: &Registry, repo: &str) -> Result<Vec<QuotaUse>> {
        let mut out = Vec::new();
        for q in registry.settings.for_repository(repo).quotas {
            let used = match self.0.get(&q.pattern) {
                Some(used) => *used,
                None => {
                    let used = registry.meta.pattern_usage(&q.pattern).await?;
                    self.0.insert(q.pattern.clone(), used);
                    used
                }
            };
            out.push(QuotaUse {
                pattern: q.pattern,
                limit_bytes: q.limit_bytes,
                used_bytes: used,
            });
        }
        Ok(out)
    }
}

impl Repository<'_> {
    /// One page of the tags, newest push first.
    pub async fn view(&self, page: PageRequest) -> Result<RepositoryView> {
        let tags = self
            .meta()
            .tag_page(self.name, page.offset(), page.per_page)
            .await?
            .ok_or_else(|| ServiceError::NameUnknown(self.name.to_string()))?;
        let mut items = Vec::with_capacity(tags.rows.len());
        for row in tags.rows {
            let described = describe::describe(&row.media_type, &row.content);
            let referrers = match row.digest.parse::<Digest>() {
                Ok(d) => self.referrer_kinds(&d).await?,
                Err(_) => Vec::new(),
            };
            items.push(TagItem {
                referrers,
                size: self.total_size(&described).await?,
                kind: described.kind(),
                platforms: described.platforms(),
                artifact_type: described.artifact_type,
                name: row.name,
                digest: row.digest,
                media_type: row.media_type,
                pushed_at: row.updated_at,
            });
        }
        Ok(RepositoryView {
            name: self.name.to_string(),
            total_tags: tags.total,
            page: page.page,
            per_page: page.per_page,
            tags: items,
            quotas: QuotaUsage::default().of(self.registry, self.name).await?,
            immutable_tags: self.settings.immutable_tags.clone(),
        })
    }

    /// The manifest `reference` names, described, with its referrers.
    pub async fn manifest_view(&self, reference: &TagOrDigest) -> Result<ManifestView> {
        let record = self.manifest(reference).await?;
        let digest: Digest = record.digest.parse().map_err(|_| self.unknown(reference))?;
        let facts = self
            .meta()
            .manifest_facts(self.name, &digest)
            .await?
            .ok_or_else(|| self.unknown(reference))?;
        let described = describe::describe(&record.media_type, &record.content);
        let mut budget = MAX_REFERRERS;
        let referrers = self.referrer_tree(&digest, 1, &mut budget).await?;
        let content = serde_json::from_slice::<serde_json::Value>(&record.content)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&record.content).into_owned());
        Ok(ManifestView {
            repository: self.name.to_string(),
            digest: record.digest,
            kind: described.kind(),
            pushed_at: facts.created_at,
            tags: facts.tags,
            total_size: self.total_size(&described).await?,
            sif: self.sif_layers(&described).await?,
            described,
            referrers,
            referrers_truncated: budget == 0,
            content,
        })
    }

    /// The kinds of the direct referrers of `subject`, each once, in order.
    async fn referrer_kinds(&self, subject: &Digest) -> Result<Vec<Kind>> {
        let mut kinds = Vec::new();
        for r in self.meta().referrers(self.name, subject, None).await? {
            let kind = r
                .artifact_type
                .as_deref()
                .map_or(Kind::Artifact, Kind::of_artifact_type);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }

    /// The referrers of `subject` as a tree, and whether it was cut short.
    pub async fn referrers_tree(&self, subject: &Digest) -> Result<(Vec<ReferrerNode>, bool)> {
        let mut budget = MAX_REFERRERS;
        let tree = self.referrer_tree(subject, 1, &mut budget).await?;
        Ok((tree, budget == 0))
    }

    fn unknown(&self, reference: &TagOrDigest) -> ServiceError {
        ServiceError::ManifestUnknown {
            repo: self.name.to_string(),
            reference: reference.to_string(),
        }
    }

    /// What a pull fetches: for an index, every child image it holds
    /// (children looked up here; a missing one counts as its descriptor).
    async fn total_size(&self, described: &Described) -> Result<u64> {
        if !described.is_index {
            return Ok(described.own_size());
        }
        let mut total = described.manifest_size;
        for (i, child) in described.manifests.iter().enumerate() {
            let stored = match child.digest.parse::<Digest>() {
                Ok(d) if i < MAX_CHILDREN_SIZED => {
                    self.meta()
                        .manifest(self.name, Reference::Digest(&d))
                        .await?
                }
                _ => None,
            };
            total = total.saturating_add(match stored {
                Some(m) => describe::describe(&m.media_type, &m.content).own_size(),
                None => child.size,
            });
        }
        Ok(total)
    }

    /// Referrers of `subject`, and theirs, depth first, within `budget`.
    async fn referrer_tree(
        &self,
        subject: &Digest,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Vec<ReferrerNode>> {
        let mut nodes = Vec::new();
        for r in self.meta().referrers(self.name, subject, None).await? {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            let kind = match &r.artifact_type {
                Some(t) => Kind::of_artifact_type(t),
                None => Kind::Artifact,
            };
            let children = match r.digest.parse::<Digest>() {
                Ok(d) if depth < MAX_REFERRER_DEPTH => {
                    Box::pin(self.referrer_tree(&d, depth + 1, budget)).await?
                }
                _ => Vec::new(),
            };
            nodes.push(ReferrerNode {
                annotations: r
                    .annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_default(),
                digest: r.digest,
                media_type: r.media_type,
                artifact_type: r.artifact_type,
                kind,
                size: r.size,
                referrers: children,
            });
        }
        Ok(nodes)
    }

    /// SIF metadata of the manifest's SIF layers: what was read from each
    /// layer's header and descriptors when it was pushed (read now, once,
    /// for a layer pushed before Berth described SIFs — as the SIF API
    /// does), or why the layer is no readable SIF. A layer whose bytes
    /// cannot be read (a mirror's blob not fetched yet) is left out.
    async fn sif_layers(&self, described: &Described) -> Result<Vec<SifLayer>> {
        let mut out = Vec::new();
        for layer in &described.layers {
            if !crate::oci::manifest::is_sif_layer(&layer.media_type) {
                continue;
            }
            let Ok(digest) = layer.digest.parse::<crate::oci::digest::Digest>() else {
                continue;
            };
            let record = match self.sif_record(&digest, layer.size).await {
                Ok(record) => record,
                Err(e) => {
                    tracing::debug!(%digest, error = %e, "a SIF layer not described for the web UI");
                    continue;
                }
            };
            let metadata = match record.description {
                Ok(image) => serde_json::to_value(&image)
                    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() })),
                Err(why) => serde_json::json!({ "readable": false, "why": why }),
            };
            out.push(SifLayer {
                digest: layer.digest.clone(),
                metadata,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_clamped() {
        assert_eq!(
            PageRequest::new(None, None, 50),
            PageRequest {
                page: 1,
                per_page: 50
            }
        );
        let p = PageRequest::new(Some(0), Some(100_000), 50);
        assert_eq!((p.page, p.per_page), (1, MAX_PER_PAGE));
        assert_eq!(PageRequest::new(Some(3), Some(20), 50).offset(), 40);
        assert_eq!(
            PageRequest::new(Some(u32::MAX), Some(MAX_PER_PAGE), 50).offset(),
            (u64::from(u32::MAX) - 1) * 200
        );
    }

    #[test]
    fn search_words_are_substrings() {
        assert!(matches_query("team-a/app", ""));
        assert!(matches_query("team-a/app", "APP"));
        assert!(matches_query("team-a/app", "team app"));
        assert!(!matches_query("team-a/app", "team b"));
    }
}
