//! A manifest: what it is, its config and layers or an index's children,
//! annotations, the manifest it refers to, its referrers as a tree, SIF
//! metadata where the server has it, and the JSON itself.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::{
    Chrome, Section, commands, copy_button, digest, format, kind_badge, layout, manifest_href,
    pull_commands, repository_href, when,
};
use crate::oci::describe::Descriptor;
use crate::service::browse::{ManifestView, ReferrerNode, SifLayer};

/// The annotation a layer's file name is in (oras, Apptainer).
const TITLE: &str = "org.opencontainers.image.title";

pub fn manifest(chrome: &Chrome, view: &ManifestView, reference: &str) -> Markup {
    let name = &view.repository;
    let d = &view.described;
    let shown = if reference.contains(':') {
        format!("{name}@{}", format::short_digest(reference))
    } else {
        format!("{name}:{reference}")
    };
    let body = html! {
        nav.crumbs {
            a href="/ui/" { "Repositories" } " / "
            a href=(repository_href(name)) { (name) } " / "
            span { (if reference.contains(':') { format::short_digest(reference) } else { reference }) }
        }
        div.page-head {
            h1 #manifest-title { (shown) }
            (kind_badge(view.kind))
        }
        section.card {
            dl.facts-grid {
                dt { "Digest" } dd #manifest-digest { code.wrap { (view.digest) } " " (copy_button(&view.digest, "Copy the digest")) }
                dt { "Media type" } dd { code { (d.media_type) } }
                @if let Some(t) = &d.artifact_type { dt { "Artifact type" } dd #artifact-type { code { (t) } } }
                dt { "Tags" } dd #manifest-tags {
                    @if view.tags.is_empty() { span.muted { "none" } }
                    @for t in &view.tags { a.tag href=(manifest_href(name, t)) { (t) } " " }
                }
                dt { "Pushed" } dd { (when(chrome, view.pushed_at)) }
                dt { "Size" } dd { (format::bytes(view.total_size)) span.muted { " to pull (manifest " (format::bytes(d.manifest_size)) ")" } }
                @if d.is_index { dt { "Platforms" } dd #platforms { @for p in d.platforms() { span.platform { (p) } " " } } }
            }
        }
        section.card {
            h2 { "Pull" }
            // By the tag it was reached by, else by digest.
            (commands(&pull_commands(chrome, name, reference, view.kind)))
        }
        @if let Some(subject) = &d.subject {
            section.card #subject {
                h2 { "Refers to" }
                p { a.plain href=(manifest_href(name, &subject.digest)) { (digest(&subject.digest)) } " " code { (subject.media_type) } }
            }
        }
        @if d.is_index {
            section.card {
                h2 { "Manifests (" (d.manifests.len()) ")" }
                table.list #children {
                    thead { tr { th { "Platform" } th { "Digest" } th { "Media type" } th.num { "Size" } } }
                    tbody { @for c in &d.manifests {
                        tr {
                            td { @match &c.platform { Some(p) => span.platform { (p.to_string()) }, None => span.muted { "—" } } }
                            td { a.plain href=(manifest_href(name, &c.digest)) { (digest(&c.digest)) } }
                            td { code { (c.media_type) } }
                            td.num { (format::bytes(c.size)) }
                        }
                    } }
                }
            }
        } @else {
            @if let Some(config) = &d.config {
                section.card #config {
                    h2 { "Config" }
                    p { (digest(&config.digest)) " " code { (config.media_type) } " · " (format::bytes(config.size)) }
                }
            }
            section.card {
                h2 { "Layers (" (d.layers.len()) ")" }
                @if d.layers.is_empty() { p.muted { "No layers." } } @else {
                    table.list #layers {
                        thead { tr { th.num { "#" } th { "Media type" } th { "Digest" } th { "File" } th.num { "Size" } } }
                        tbody { @for (i, l) in d.layers.iter().enumerate() { (layer_row(i, l)) } }
                    }
                }
            }
        }
        @if !view.sif.is_empty() { (sif(&view.sif)) }
        @if !d.annotations.is_empty() {
            section.card #annotations {
                h2 { "Annotations" }
                (annotations(&d.annotations))
            }
        }
        section.card #referrers {
            h2 { "Referrers" }
            @if view.referrers.is_empty() {
                p.muted { "No signatures, SBOMs or attestations refer to this manifest." }
            } @else {
                ul.tree { @for r in &view.referrers { (referrer(name, r)) } }
                @if view.referrers_truncated { p.muted { "More referrers exist than are shown; the referrers API lists them all." } }
            }
        }
        details.card.raw {
            summary { "Manifest JSON" }
            pre { code { (view.content) } }
        }
    };
    layout(chrome, Section::Repositories, &shown, body)
}

fn layer_row(i: usize, l: &Descriptor) -> Markup {
    html! {
        tr {
            td.num { (i + 1) }
            td { code { (l.media_type) } }
            td { (digest(&l.digest)) }
            td { @match l.annotations.get(TITLE) { Some(t) => (t), None => span.muted { "—" } } }
            td.num { (format::bytes(l.size)) }
        }
    }
}

fn annotations(a: &BTreeMap<String, String>) -> Markup {
    html! {
        table.kv { tbody { @for (k, v) in a { tr { th { code { (k) } } td { (v) } } } } }
    }
}

fn referrer(name: &str, r: &ReferrerNode) -> Markup {
    let mut annotations: Vec<(&String, &String)> = r.annotations.iter().collect();
    annotations.sort();
    html! {
        li.referrer data-kind=(r.kind.label()) {
            div.node {
                (kind_badge(r.kind))
                " "
                a.plain href=(manifest_href(name, &r.digest)) { (digest(&r.digest)) }
                " "
                @if let Some(t) = &r.artifact_type { code.artifact-type { (t) } }
                span.muted { " · " (format::bytes(r.size)) }
                @if let Some((_, created)) = annotations.iter().find(|(k, _)| k.as_str() == "org.opencontainers.image.created") {
                    span.muted { " · " (created) }
                }
            }
            @if !r.referrers.is_empty() {
                ul { @for child in &r.referrers { (referrer(name, child)) } }
            }
        }
    }
}

/// SIF metadata (architecture, partitions, signatures), as recorded at push.
fn sif(layers: &[SifLayer]) -> Markup {
    html! {
        section.card #sif {
            h2 { "SIF" }
            @for l in layers {
                h3 { "Layer " (digest(&l.digest)) }
                (json_table(&l.metadata))
            }
        }
    }
}

/// A JSON value as nested key/value tables.
fn json_table(v: &serde_json::Value) -> Markup {
    use serde_json::Value;
    match v {
        Value::Object(map) => html! {
            table.kv { tbody { @for (k, v) in map { tr { th { (k) } td { (json_table(v)) } } } } }
        },
        Value::Array(items) if items.iter().all(|i| i.is_object()) && !items.is_empty() => html! {
            @for item in items { div.nested { (json_table(item)) } }
        },
        Value::Array(items) => html! {
            @for (i, item) in items.iter().enumerate() { @if i > 0 { ", " } (json_table(item)) }
        },
        Value::String(s) => html! { (s) },
        Value::Null => html! { span.muted { "—" } },
        other => html! { (other.to_string()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::describe::{Kind, describe};
    use crate::ui::render::tests::chrome;

    fn view(content: &str, media_type: &str) -> ManifestView {
        let described = describe(media_type, content.as_bytes());
        ManifestView {
            repository: "team/app".into(),
            digest: format!("sha256:{}", "d".repeat(64)),
            kind: described.kind(),
            pushed_at: 1_800_000_000_000 - 60_000,
            tags: vec!["v1".into()],
            total_size: 4096,
            described,
            referrers: vec![],
            referrers_truncated: false,
            sif: vec![],
            content: content.into(),
        }
    }

    #[test]
    fn an_index_with_children_and_a_signature_tree() {
        let index = r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111","size":10,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222","size":10,"platform":{"os":"linux","architecture":"arm64"}}]}"#;
        let mut v = view(index, "application/vnd.oci.image.index.v1+json");
        v.referrers = vec![ReferrerNode {
            digest: "sha256:5151515151515151".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: Some("application/vnd.dev.sigstore.bundle.v0.3+json".into()),
            kind: Kind::Signature,
            size: 700,
            annotations: [(
                "org.opencontainers.image.created".to_string(),
                "2026-01-02T03:04:05Z".to_string(),
            )]
            .into(),
            referrers: vec![ReferrerNode {
                digest: "sha256:6161616161616161".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                artifact_type: Some("application/spdx+json".into()),
                kind: Kind::Sbom,
                size: 10,
                annotations: Default::default(),
                referrers: vec![],
            }],
        }];
        let html = manifest(&chrome(), &v, "v1").into_string();
        assert!(html.contains(">team/app:v1<"), "{html}");
        assert!(html.contains("<span class=\"platform\">linux/amd64</span>"));
        assert!(html.contains("href=\"/ui/r/team/app/-/manifests/sha256:2222222222222222\""));
        assert!(html.contains("data-kind=\"signature\""));
        assert!(html.contains("application/vnd.dev.sigstore.bundle.v0.3+json"));
        assert!(html.contains("2026-01-02T03:04:05Z"));
        // The SBOM is nested under the signature.
        let sig = html.find("data-kind=\"signature\"").unwrap();
        let sbom = html.find("data-kind=\"SBOM\"").unwrap();
        assert!(sbom > sig && html[sig..sbom].contains("<ul>"), "{html}");
        assert!(!html.contains("id=\"layers\""));
        assert!(
            html.contains("docker pull registry.example:5000/team/app:v1"),
            "by the tag it was reached by"
        );
    }

    #[test]
    fn an_image_with_layers_annotations_and_sif_metadata() {
        let image = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.sylabs.sif.config.v1+json","digest":"sha256:c0c0c0c0c0c0c0c0","size":2},
          "layers":[{"mediaType":"application/vnd.sylabs.sif.layer.v1.sif","digest":"sha256:1a1a1a1a1a1a1a1a","size":2048,"annotations":{"org.opencontainers.image.title":"tools.sif"}}],
          "annotations":{"org.opencontainers.image.source":"https://example.org/<x>"}}"#;
        let mut v = view(image, "application/vnd.oci.image.manifest.v1+json");
        v.sif = vec![SifLayer {
            digest: "sha256:1a1a1a1a1a1a1a1a".into(),
            metadata: serde_json::json!({"arch": "amd64", "partitions": [{"type": "system", "fs": "squashfs"}], "signed": false}),
        }];
        let html = manifest(&chrome(), &v, &v.digest.clone()).into_string();
        assert!(
            html.contains("tools.sif") && html.contains("2.0 KiB"),
            "{html}"
        );
        assert!(
            html.contains("id=\"config\"")
                && html.contains("application/vnd.sylabs.sif.config.v1+json")
        );
        assert!(html.contains("https://example.org/&lt;x&gt;"));
        assert!(
            html.contains("id=\"sif\"") && html.contains("squashfs") && html.contains(">amd64<")
        );
        assert!(html.contains(&format!(
            "apptainer pull oras://registry.example:5000/team/app@sha256:{}",
            "d".repeat(64)
        )));
        assert!(html.contains("No signatures, SBOMs or attestations"));
        assert!(html.contains("team/app@sha256:dddddddddddd"));
    }
}
