//! The repository list: search, a page of repositories, quota bars.

use maud::{Markup, html};

use super::{Chrome, Section, format, layout, pager, quota, repository_href, when};
use crate::service::browse::RepositoryList;

/// `/ui/?q=…&page=…`
pub fn list_href(query: &str, page: u32) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    if !query.is_empty() {
        s.append_pair("q", query);
    }
    if page > 1 {
        s.append_pair("page", &page.to_string());
    }
    let q = s.finish();
    if q.is_empty() {
        "/ui/".into()
    } else {
        format!("/ui/?{q}")
    }
}

pub fn repositories(chrome: &Chrome, list: &RepositoryList) -> Markup {
    let body = html! {
        div.page-head {
            h1 { "Repositories" }
            span.count #repository-count { (format::count(list.total)) @if list.total == 1 { " repository" } @else { " repositories" } }
        }
        form.search role="search" method="get" action="/ui/" {
            input #search type="search" name="q" value=(list.query) placeholder="Search repositories" aria-label="Search repositories" autocomplete="off";
            button type="submit" { "Search" }
            @if !list.query.is_empty() { a.clear href="/ui/" { "Clear" } }
        }
        @if list.repositories.is_empty() {
            section.card.empty {
                @if !list.query.is_empty() {
                    p { "No repository matches " strong { (list.query) } "." }
                } @else if list.total == 0 {
                    p { "Nothing to show yet." }
                    p.hint { "Push something: " code { "oras push" @if chrome.plain_http { " --plain-http" } " " (chrome.host) "/demo/hello:v1 hello.txt" } }
                }
                @if chrome.access_control && chrome.user.is_none() {
                    p.hint { "You see what anonymous users may pull. " a href=(super::login_href(&chrome.here)) { "Log in" } " to see more." }
                }
            }
        } @else {
            table.list #repositories {
                thead { tr {
                    th { "Name" } th.num { "Tags" } th.num { "Size" } th { "Last push" } th { "Quota" }
                } }
                tbody {
                    @for r in &list.repositories {
                        tr data-repository=(r.name) {
                            td.name { a href=(repository_href(&r.name)) { (r.name) } }
                            td.num { (format::count(r.tags)) }
                            td.num { (format::bytes(r.bytes)) }
                            td { @match r.last_push { Some(t) => (when(chrome, t)), None => span.muted { "—" } } }
                            td { @for q in &r.quotas { (quota(q)) } }
                        }
                    }
                }
            }
            (pager(list.page, list.pages(), |p| list_href(&list.query, p)))
            @if chrome.access_control && chrome.user.is_none() {
                p.hint { "You see what anonymous users may pull. " a href=(super::login_href(&chrome.here)) { "Log in" } " to see more." }
            }
        }
    };
    layout(chrome, Section::Repositories, "Repositories", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::browse::{QuotaUse, RepositoryItem};
    use crate::ui::render::tests::chrome;

    fn list(names: &[&str], total: u64, page: u32) -> RepositoryList {
        RepositoryList {
            query: String::new(),
            total,
            page,
            per_page: 2,
            repositories: names
                .iter()
                .map(|n| RepositoryItem {
                    name: n.to_string(),
                    tags: 3,
                    manifests: 4,
                    bytes: 2048,
                    last_push: Some(1_800_000_000_000 - 120_000),
                    quotas: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn rows_link_to_repositories() {
        let mut l = list(&["team/app", "<script>"], 5, 2);
        l.repositories[0].quotas.push(QuotaUse {
            pattern: "team/*".into(),
            limit_bytes: 4096,
            used_bytes: 2048,
        });
        let html = repositories(&chrome(), &l).into_string();
        assert!(html.contains("href=\"/ui/r/team/app\""), "{html}");
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "escaped"
        );
        assert!(html.contains("2.0 KiB") && html.contains("2 minutes ago"));
        assert!(html.contains("value=\"2048\"") && html.contains("(50%)"));
        assert!(html.contains("Page 2 of 3"));
        assert!(html.contains(">5 repositories<"));
        assert!(html.contains("Log in</a> to see more"));
    }

    #[test]
    fn empty_and_searched() {
        let mut l = list(&[], 0, 1);
        let html = repositories(&chrome(), &l).into_string();
        assert!(
            html.contains("Nothing to show yet")
                && html.contains("oras push --plain-http registry.example:5000/demo/hello:v1"),
            "{html}"
        );
        l.query = "zz top".into();
        let html = repositories(&chrome(), &l).into_string();
        assert!(
            html.contains("No repository matches <strong>zz top</strong>"),
            "{html}"
        );
        assert_eq!(list_href("zz top", 3), "/ui/?q=zz+top&page=3");
        assert_eq!(list_href("", 1), "/ui/");
    }
}
