//! The pages, as pure functions from what the service returned (and the
//! [`Chrome`]: who is looking, the time, how to reach the registry) to
//! HTML. maud escapes every value; nothing here does I/O.

pub mod format;
mod login;
mod manifest;
mod operations;
mod repositories;
mod repository;

pub use login::login;
pub use manifest::manifest;
pub use operations::operations;
pub use repositories::repositories;
pub use repository::{Notice, repository};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets;
use crate::oci::describe::Kind;

/// Which part of the site a page belongs to (highlighted in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Repositories,
    Operations,
    Login,
}

/// What every page needs besides its own data.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The user or robot logged in (None: anonymous).
    pub user: Option<String>,
    /// Access control is on: there is something to log in to.
    pub access_control: bool,
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    /// Now, Unix ms (times are shown relative to it).
    pub now_ms: i64,
    /// The registry as clients name it in pull commands (`host:port`).
    pub host: String,
    /// Clients must be told the registry speaks plain HTTP.
    pub plain_http: bool,
    /// The page's own path and query, to come back to after logging in.
    pub here: String,
}

/// A whole page: header, navigation, `body`.
pub fn layout(chrome: &Chrome, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Berth" }
                link rel="icon" type="image/svg+xml" href=(assets::url("logo.svg"));
                link rel="stylesheet" href=(assets::url("style.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" {
                        img src=(assets::url("logo.svg")) alt="" width="28" height="28";
                        span { "Berth" }
                    }
                    nav {
                        a href="/ui/" aria-current=[(section == Section::Repositories).then_some("page")] { "Repositories" }
                        a href="/ui/operations" aria-current=[(section == Section::Operations).then_some("page")] { "Operations" }
                    }
                    div.who {
                        @match &chrome.user {
                            Some(user) => {
                                span.user #current-user { (user) }
                                form.inline method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(chrome.csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            }
                            None if chrome.access_control => {
                                span.user.anonymous { "anonymous" }
                                a.button.small href=(login_href(&chrome.here)) { "Log in" }
                            }
                            None => span.user.anonymous title="access control is off: anyone may pull, push and delete" { "open registry" }
                        }
                    }
                }
                main { (body) }
                footer {
                    "Berth · OCI distribution v1.1 · "
                    a href="/v2/" { "/v2/" }
                }
            }
        }
    }
}

/// The login page's link, coming back to `here`.
pub fn login_href(here: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", here)
        .finish();
    format!("/ui/login?{query}")
}

/// An error page (not found, forbidden, a store that does not answer).
pub fn error(chrome: &Chrome, title: &str, message: &str) -> Markup {
    layout(
        chrome,
        Section::Repositories,
        title,
        html! {
            section.card.error-page {
                h1 { (title) }
                p.message { (message) }
                @if chrome.access_control && chrome.user.is_none() {
                    p { "Some repositories are only visible once you " a href=(login_href(&chrome.here)) { "log in" } "." }
                }
                p { a href="/ui/" { "← All repositories" } }
            }
        },
    )
}

/// `/ui/r/NAME`
pub fn repository_href(name: &str) -> String {
    format!("/ui/r/{name}")
}

/// `/ui/r/NAME/-/manifests/REFERENCE`
pub fn manifest_href(name: &str, reference: &str) -> String {
    format!("/ui/r/{name}/-/manifests/{reference}")
}

/// A coloured label for a kind of manifest.
pub fn kind_badge(kind: Kind) -> Markup {
    let class = match kind {
        Kind::Image => "badge image",
        Kind::Index => "badge index",
        Kind::Sif => "badge sif",
        Kind::Signature => "badge signature",
        Kind::Sbom => "badge sbom",
        Kind::Attestation => "badge attestation",
        Kind::Artifact => "badge artifact",
    };
    html! { span class=(class) { (kind.label()) } }
}

/// A digest, shortened, with the whole of it on hover and a copy button.
pub fn digest(d: &str) -> Markup {
    html! {
        code.digest title=(d) { (format::short_digest(d)) }
        " "
        (copy_button(d, "Copy the digest"))
    }
}

/// Two overlapping sheets, drawn inline (no font has to have the glyph,
/// and no image has to be fetched).
const COPY_ICON: &str = r#"<svg class="icon" viewBox="0 0 16 16" width="13" height="13" aria-hidden="true"><rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>"#;

/// A button that copies `text` (app.js), labelled `label` for screen readers.
pub fn copy_button(text: &str, label: &str) -> Markup {
    html! {
        button.copy type="button" data-copy=(text) title=(label) aria-label=(label) { (PreEscaped(COPY_ICON)) }
    }
}

/// A time, relative to now, the exact time on hover.
pub fn when(chrome: &Chrome, ms: i64) -> Markup {
    html! { time datetime=(format::utc(ms)) title=(format::utc(ms)) { (format::ago(chrome.now_ms, ms)) } }
}

/// A quota's usage as a meter (no inline style: the pages' CSP has none)
/// and numbers.
pub fn quota(q: &crate::service::browse::QuotaUse) -> Markup {
    let percent = q
        .used_bytes
        .saturating_mul(100)
        .checked_div(q.limit_bytes)
        .map_or(100, |p| p.min(100));
    let limit = q.limit_bytes.max(1);
    html! {
        div.quota title=(format!("quota on `{}`", q.pattern)) {
            meter min="0" max=(limit) low=(limit / 4 * 3) high=(limit / 10 * 9) optimum="0" value=(q.used_bytes.min(limit)) {
                (percent) "%"
            }
            span.quota-text { (format::bytes(q.used_bytes)) " of " (format::bytes(q.limit_bytes)) " (" (percent) "%)" }
        }
    }
}

/// The commands that pull `name` at `reference` (`:tag` or `@digest`).
pub fn pull_commands(
    chrome: &Chrome,
    name: &str,
    reference: &str,
    kind: Kind,
) -> Vec<(&'static str, String)> {
    // Tags have no colon; digests do.
    let at = if reference.contains(':') {
        format!("@{reference}")
    } else {
        format!(":{reference}")
    };
    let image = format!("{}/{name}{at}", chrome.host);
    let plain = if chrome.plain_http {
        " --plain-http"
    } else {
        ""
    };
    let mut out = Vec::new();
    if kind == Kind::Sif {
        out.push(("apptainer", format!("apptainer pull oras://{image}")));
        out.push(("oras", format!("oras pull{plain} {image}")));
        return out;
    }
    if matches!(kind, Kind::Image | Kind::Index) {
        out.push(("docker", format!("docker pull {image}")));
        let tls = if chrome.plain_http {
            " --tls-verify=false"
        } else {
            ""
        };
        out.push(("podman", format!("podman pull{tls} {image}")));
    }
    out.push(("oras", format!("oras pull{plain} {image}")));
    out
}

/// A box of copy-paste commands.
pub fn commands(list: &[(&'static str, String)]) -> Markup {
    html! {
        div.commands {
            @for (client, command) in list {
                div.command {
                    span.client { (client) }
                    code { (command) }
                    (copy_button(command, &format!("Copy the {client} command")))
                }
            }
        }
    }
}

/// Previous/next links for page `page` of `pages`; `href` builds a page's link.
pub fn pager(page: u32, pages: u64, href: impl Fn(u32) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 {
                    a.button.small rel="prev" href=(href(page - 1)) { "← Previous" }
                } @else {
                    span.button.small.disabled { "← Previous" }
                }
                span.page-of { "Page " (page) " of " (format::count(pages)) }
                @if u64::from(page) < pages {
                    a.button.small rel="next" href=(href(page + 1)) { "Next →" }
                } @else {
                    span.button.small.disabled { "Next →" }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn chrome() -> Chrome {
        Chrome {
            user: None,
            access_control: true,
            csrf: "c".repeat(32),
            now_ms: 1_800_000_000_000,
            host: "registry.example:5000".into(),
            plain_http: true,
            here: "/ui/".into(),
        }
    }

    #[test]
    fn pull_commands_fit_the_kind() {
        let c = chrome();
        let image = pull_commands(&c, "team/app", "v1", Kind::Image);
        assert_eq!(image[0].1, "docker pull registry.example:5000/team/app:v1");
        assert_eq!(
            image[1].1,
            "podman pull --tls-verify=false registry.example:5000/team/app:v1"
        );
        assert_eq!(
            image[2].1,
            "oras pull --plain-http registry.example:5000/team/app:v1"
        );
        let sif = pull_commands(&c, "hpc/tools", "sha256:abc", Kind::Sif);
        assert_eq!(
            sif[0].1,
            "apptainer pull oras://registry.example:5000/hpc/tools@sha256:abc"
        );
        assert_eq!(sif.len(), 2);
        let sbom = pull_commands(
            &Chrome {
                plain_http: false,
                ..c
            },
            "a",
            "v",
            Kind::Sbom,
        );
        assert_eq!(
            sbom,
            [("oras", "oras pull registry.example:5000/a:v".to_string())]
        );
    }

    #[test]
    fn the_layout_shows_who_is_looking() {
        let mut c = chrome();
        c.here = "/ui/r/a?page=2".into();
        let page = layout(&c, Section::Repositories, "T<", html! { p { "body" } }).into_string();
        assert!(page.contains("<title>T&lt; · Berth</title>"), "{page}");
        assert!(
            page.contains("href=\"/ui/login?next=%2Fui%2Fr%2Fa%3Fpage%3D2\""),
            "{page}"
        );
        assert!(!page.contains("Log out"));
        c.user = Some("alice".into());
        let page = layout(&c, Section::Operations, "T", html! {}).into_string();
        assert!(page.contains("id=\"current-user\">alice<"), "{page}");
        assert!(page.contains("Log out"));
        assert!(page.contains(&format!("name=\"csrf\" value=\"{}\"", "c".repeat(32))));
        c.user = None;
        c.access_control = false;
        let page = layout(&c, Section::Operations, "T", html! {}).into_string();
        assert!(
            page.contains("open registry") && !page.contains("Log in"),
            "{page}"
        );
    }

    #[test]
    fn quotas_show_as_bars() {
        let q = crate::service::browse::QuotaUse {
            pattern: "team/*".into(),
            limit_bytes: 1000,
            used_bytes: 950,
        };
        let html = quota(&q).into_string();
        assert!(
            html.contains(r#"max="1000" low="750" high="900" optimum="0" value="950""#),
            "{html}"
        );
        assert!(!html.contains("style="), "the CSP allows no inline style");
        assert!(html.contains("950 B of 1000 B (95%)"), "{html}");
    }

    #[test]
    fn pager_links_both_ways() {
        let html = pager(2, 3, |p| format!("/x?page={p}")).into_string();
        assert!(html.contains("href=\"/x?page=1\"") && html.contains("href=\"/x?page=3\""));
        assert!(html.contains("Page 2 of 3"));
        assert!(pager(1, 1, |p| p.to_string()).into_string().is_empty());
        let last = pager(3, 3, |p| format!("/x?page={p}")).into_string();
        assert!(!last.contains("page=4") && last.contains("disabled"));
    }
}
