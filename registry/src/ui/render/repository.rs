//! A repository: its tags (digest, kind, platforms, size, push time),
//! commands to pull the newest, and delete buttons for those who may.

use maud::{Markup, html};

use super::{
    Chrome, Section, commands, digest, format, kind_badge, layout, manifest_href, pager,
    pull_commands, quota, repository_href, when,
};
use crate::service::browse::RepositoryView;

/// A message shown above the tags (after a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Deleted(String),
}

pub fn repository(
    chrome: &Chrome,
    view: &RepositoryView,
    can_delete: bool,
    notice: Option<&Notice>,
) -> Markup {
    let name = &view.name;
    let body = html! {
        nav.crumbs { a href="/ui/" { "Repositories" } " / " span { (name) } }
        div.page-head {
            h1 #repository-name { (name) }
            span.count { (format::count(view.total_tags)) @if view.total_tags == 1 { " tag" } @else { " tags" } }
        }
        @if let Some(Notice::Deleted(tag)) = notice {
            p.notice #notice role="status" { "Tag " strong { (tag) } " was deleted." }
        }
        div.facts {
            @for q in &view.quotas { div.fact { span.label { "Quota (" code { (q.pattern) } ")" } (quota(q)) } }
            @if !view.immutable_tags.is_empty() {
                div.fact { span.label { "Immutable tags" }
                    span { @for (i, p) in view.immutable_tags.iter().enumerate() { @if i > 0 { ", " } code { (p) } } } }
            }
        }
        @if let Some(newest) = view.tags.first().filter(|_| view.page == 1) {
            section.card {
                h2 { "Pull " code { (newest.name) } }
                (commands(&pull_commands(chrome, name, &newest.name, newest.kind)))
            }
        }
        @if view.tags.is_empty() {
            section.card.empty { p { "No tags. Manifests pushed by digest only are listed by the API, not here." } }
        } @else {
            table.list #tags {
                thead { tr {
                    th { "Tag" } th { "Digest" } th { "Kind" } th.num { "Size" } th { "Pushed" } th.actions { span.sr-only { "Actions" } }
                } }
                tbody {
                    @for t in &view.tags {
                        @let pull = pull_commands(chrome, name, &t.name, t.kind);
                        tr data-tag=(t.name) {
                            td.name { a href=(manifest_href(name, &t.name)) { (t.name) } }
                            td { a.plain href=(manifest_href(name, &t.digest)) { (digest(&t.digest)) } }
                            td {
                                (kind_badge(t.kind))
                                @for p in &t.platforms { " " span.platform { (p) } }
                                @for k in &t.referrers { " " span.referred title=(format!("a {} refers to it", k.label())) { "+ " (k.label()) } }
                            }
                            td.num { (format::bytes(t.size)) }
                            td { (when(chrome, t.pushed_at)) }
                            td.actions {
                                @if let Some((client, command)) = pull.first() {
                                    button.copy.small type="button" data-copy=(command) title=(command) { "Copy " (client) " pull" }
                                }
                                @if can_delete {
                                    form.inline.delete method="post" action=(format!("{}/-/tags/{}/delete", repository_href(name), t.name))
                                        data-confirm=(format!("Delete tag {} of {}? The manifest stays until gc if other tags or digests use it.", t.name, name)) {
                                        input type="hidden" name="csrf" value=(chrome.csrf);
                                        button.danger.small type="submit" aria-label=(format!("Delete tag {}", t.name)) { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(view.page, view.pages(), |p| format!("{}?page={p}", repository_href(name))))
        }
    };
    layout(chrome, Section::Repositories, name, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::describe::Kind;
    use crate::service::browse::TagItem;
    use crate::ui::render::tests::chrome;

    fn view() -> RepositoryView {
        RepositoryView {
            name: "team/app".into(),
            total_tags: 2,
            page: 1,
            per_page: 50,
            tags: vec![
                TagItem {
                    name: "multi".into(),
                    digest: format!("sha256:{}", "a".repeat(64)),
                    media_type: "application/vnd.oci.image.index.v1+json".into(),
                    kind: Kind::Index,
                    artifact_type: None,
                    size: 3 * 1024 * 1024,
                    platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                    referrers: vec![Kind::Signature, Kind::Sbom],
                    pushed_at: 1_800_000_000_000 - 7_200_000,
                },
                TagItem {
                    name: "sif".into(),
                    digest: format!("sha256:{}", "b".repeat(64)),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    kind: Kind::Sif,
                    artifact_type: Some("application/vnd.sylabs.sif.config.v1+json".into()),
                    size: 10,
                    platforms: vec![],
                    referrers: vec![],
                    pushed_at: 1_800_000_000_000 - 86_400_000,
                },
            ],
            quotas: vec![],
            immutable_tags: vec!["v*".into()],
        }
    }

    #[test]
    fn tags_with_platforms_and_pull_commands() {
        let html = repository(&chrome(), &view(), false, None).into_string();
        assert!(
            html.contains("href=\"/ui/r/team/app/-/manifests/multi\""),
            "{html}"
        );
        assert!(html.contains(&format!(
            "href=\"/ui/r/team/app/-/manifests/sha256:{}\"",
            "a".repeat(64)
        )));
        assert!(html.contains("sha256:aaaaaaaaaaaa<"), "short digest shown");
        assert!(html.contains("<span class=\"platform\">linux/arm64</span>"));
        assert!(
            html.contains(">+ signature</span>") && html.contains(">+ SBOM</span>"),
            "{html}"
        );
        assert!(
            html.contains("3.0 MiB") && html.contains("2 hours ago") && html.contains("1 day ago")
        );
        assert!(html.contains("docker pull registry.example:5000/team/app:multi"));
        assert!(html.contains("apptainer pull oras://registry.example:5000/team/app:sif"));
        assert!(html.contains("<code>v*</code>"));
        assert!(!html.contains("Delete"), "no delete without the right");
    }

    #[test]
    fn delete_buttons_for_those_who_may() {
        let html = repository(
            &chrome(),
            &view(),
            true,
            Some(&Notice::Deleted("old".into())),
        )
        .into_string();
        assert!(
            html.contains("action=\"/ui/r/team/app/-/tags/multi/delete\""),
            "{html}"
        );
        assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", "c".repeat(32))));
        assert!(html.contains("Tag <strong>old</strong> was deleted."));
        assert_eq!(html.matches(">Delete</button>").count(), 2);
    }
}
