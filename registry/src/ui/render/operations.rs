//! Operations: what is stored, uploads in progress, and what gc and
//! retention did (the numbers `/metrics` exports, and the latest runs).

use maud::{Markup, html};

use super::{Chrome, Section, format, layout, when};
use crate::service::browse::Operations;

pub fn operations(chrome: &Chrome, ops: &Operations) -> Markup {
    let body = html! {
        div.page-head { h1 { "Operations" } }
        section.stats #stats {
            (stat("Storage used", &format::bytes(ops.stored_bytes), "stored-bytes"))
            (stat("Blobs", &format::count(ops.blobs), "blobs"))
            (stat("Repositories", &format::count(ops.repositories), "repositories"))
            (stat("Manifests", &format::count(ops.manifests), "manifests"))
            (stat("Tags", &format::count(ops.tags), "tags"))
            (stat("Uploads in progress", &format::count(ops.uploads_in_progress), "uploads"))
        }
        section.card {
            h2 { "Maintenance" }
            table.list #maintenance {
                thead { tr {
                    th { "Kind" } th.num { "Runs" } th.num { "Failed" } th { "Last run" } th { "Took" }
                    th.num { "Deleted tags" } th.num { "Manifests" } th.num { "Blobs" } th.num { "Bytes" }
                } }
                tbody { @for m in &ops.maintenance {
                    tr {
                        td { (m.kind) }
                        td.num { (format::count(m.runs)) }
                        td.num { (format::count(m.failed_runs)) }
                        td { @match m.last_run { Some(t) => (when(chrome, t)), None => span.muted { "never" } } }
                        td { @if m.last_run.is_some() { (format::duration_ms(m.last_duration_ms)) } }
                        td.num { (format::count(m.deleted_tags)) }
                        td.num { (format::count(m.deleted_manifests)) }
                        td.num { (format::count(m.deleted_blobs)) }
                        td.num { (format::bytes(m.deleted_bytes)) }
                    }
                } }
            }
            p.hint { "Totals of the runs that were not dry runs, as " code { "/metrics" } " reports them. "
                "Run " code { "berth gc" } " and " code { "berth retention" } " (or set " code { "gc_interval_seconds" } ")." }
        }
        section.card {
            h2 { "Recent runs" }
            @if ops.recent_runs.is_empty() { p.muted { "No gc or retention run has been recorded." } } @else {
                table.list #runs {
                    thead { tr { th { "Kind" } th { "Started" } th { "Took" } th { "Result" }
                        th.num { "Deleted tags" } th.num { "Manifests" } th.num { "Blobs" } th.num { "Bytes" } } }
                    tbody { @for r in &ops.recent_runs {
                        tr {
                            td { (r.kind) @if r.dry_run { " " span.badge.artifact { "dry run" } } }
                            td { (when(chrome, r.started_at)) }
                            td { (format::duration_ms(r.duration_ms.max(0) as u64)) }
                            td { @if r.ok { span.ok { "ok" } } @else { span.failed { "failed" } } }
                            td.num { (format::count(r.deleted_tags)) }
                            td.num { (format::count(r.deleted_manifests)) }
                            td.num { (format::count(r.deleted_blobs)) }
                            td.num { (format::bytes(r.deleted_bytes)) }
                        }
                    } }
                }
            }
        }
    };
    layout(chrome, Section::Operations, "Operations", body)
}

fn stat(label: &str, value: &str, id: &str) -> Markup {
    html! { div.stat id=(format!("stat-{id}")) { span.value { (value) } span.label { (label) } } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::browse::{MaintenanceItem, RunItem};
    use crate::ui::render::tests::chrome;

    #[test]
    fn totals_and_runs() {
        let ops = Operations {
            repositories: 10_000,
            manifests: 3,
            tags: 2,
            blobs: 7,
            stored_bytes: 5 * 1024 * 1024 * 1024,
            uploads_in_progress: 1,
            maintenance: vec![
                MaintenanceItem {
                    kind: "gc".into(),
                    runs: 2,
                    failed_runs: 1,
                    deleted_blobs: 4,
                    deleted_manifests: 5,
                    deleted_tags: 0,
                    deleted_bytes: 2048,
                    last_run: Some(1_800_000_000_000 - 3_600_000),
                    last_duration_ms: 1_500,
                },
                MaintenanceItem {
                    kind: "retention".into(),
                    runs: 0,
                    failed_runs: 0,
                    deleted_blobs: 0,
                    deleted_manifests: 0,
                    deleted_tags: 0,
                    deleted_bytes: 0,
                    last_run: None,
                    last_duration_ms: 0,
                },
            ],
            recent_runs: vec![RunItem {
                kind: "gc",
                started_at: 1_800_000_000_000 - 3_600_000,
                duration_ms: 1_500,
                dry_run: true,
                ok: false,
                deleted_blobs: 4,
                deleted_manifests: 5,
                deleted_tags: 0,
                deleted_bytes: 2048,
            }],
        };
        let html = operations(&chrome(), &ops).into_string();
        assert!(
            html.contains("5.0 GiB") && html.contains(">10,000<"),
            "{html}"
        );
        assert!(html.contains("1 hour ago") && html.contains("1.5 s") && html.contains("never"));
        assert!(html.contains("dry run") && html.contains("failed"));
    }
}
