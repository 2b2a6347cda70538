//! `berth sif REPOSITORY[:TAG|@DIGEST]`: what a running Berth read from the
//! headers of the SIF images a tag holds (its `/v2/<name>/sif/<reference>`
//! API): architecture, creation time, signing keys, and the data objects
//! as `siftool list` shows them. `--json` prints the API's answer.

use serde_json::Value;

use super::registry_client::{Client, Connection, checked};

#[derive(clap::Args)]
pub struct Args {
    /// `REPOSITORY:TAG`, `REPOSITORY@DIGEST`, or `REPOSITORY` (tag `latest`).
    image: String,
    /// Print the registry's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let connection = args.connection.clone().read_password()?;
    let (repo, reference) = split_reference(&args.image);
    super::block_on(async {
        let client = Client::new(&connection)?;
        let path = format!("/v2/{repo}/sif/{reference}");
        let response = client.get(&path, "application/json").await?;
        let body = checked(response, &path).await?;
        if args.json {
            return super::print(serde_json::to_string_pretty(&body)?);
        }
        super::print(render(&format!("{repo}:{reference}"), &body))
    })?
}

/// `name:tag`, `name@digest` or `name` (`latest`).
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// The API's answer, for people.
fn render(what: &str, body: &Value) -> String {
    let images = body["images"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{what}  {} ({})",
        body["digest"].as_str().unwrap_or("?"),
        body["media_type"].as_str().unwrap_or("?")
    );
    if images.is_empty() {
        out.push_str("\n  no SIF layers");
    }
    for image in &images {
        let layer = &image["layer"];
        let platform = match image["platform"].as_object() {
            Some(p) => format!(
                "{}/{}  ",
                p.get("os").and_then(Value::as_str).unwrap_or("?"),
                p.get("architecture").and_then(Value::as_str).unwrap_or("?")
            ),
            None => String::new(),
        };
        out.push_str(&format!(
            "\n\n  {platform}{}  {}  {}",
            layer["title"].as_str().unwrap_or("(untitled)"),
            layer["digest"].as_str().unwrap_or("?"),
            super::ls::human(layer["size"].as_u64().unwrap_or(0)),
        ));
        let sif = &image["sif"];
        if sif.is_null() {
            out.push_str(&format!(
                "\n    not described: {}",
                image["error"].as_str().unwrap_or("unknown")
            ));
            continue;
        }
        out.push_str(&format!(
            "\n    ID: {}  Architecture: {}  Created: {}",
            sif["id"].as_str().unwrap_or("?"),
            sif["architecture"].as_str().unwrap_or("?"),
            time(&sif["created"]),
        ));
        let fingerprints: Vec<&str> = sif["fingerprints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&match fingerprints.as_slice() {
            [] if sif["signed"].as_bool() == Some(true) => {
                "\n    Signed (no key fingerprint)".to_string()
            }
            [] => "\n    Not signed".to_string(),
            keys => format!("\n    Signed by: {}", keys.join(", ")),
        });
        if sif["encrypted"].as_bool() == Some(true) {
            out.push_str("\n    Encrypted");
        }
        out.push_str(&format!(
            "\n    {:<5}|{:<8}|{:<8}|{:<26}|TYPE",
            "ID", "GROUP", "LINK", "SIF POSITION (start-end)"
        ));
        for o in sif["objects"].as_array().into_iter().flatten() {
            out.push_str(&format!("\n    {}", object_row(o)));
        }
    }
    out
}

/// One row of `siftool list`: `3    |1       |NONE    |32768-98304               |FS (Squashfs/*System/amd64)`.
fn object_row(o: &Value) -> String {
    let object: Option<crate::sif::SifObject> = serde_json::from_value(o.clone()).ok();
    let Some(o) = object else {
        return "(unreadable object)".to_string();
    };
    let group = o.group.map_or("NONE".to_string(), |g| g.to_string());
    let link = match (o.link, o.link_is_group) {
        (None, _) => "NONE".to_string(),
        (Some(id), true) => format!("{id:<4}(G)"),
        (Some(id), false) => id.to_string(),
    };
    let position = format!("{}-{}", o.offset, o.offset.saturating_add(o.size));
    format!(
        "{:<5}|{group:<8}|{link:<8}|{position:<26}|{}",
        o.id,
        crate::sif::display::object_type(&o)
    )
}

fn time(v: &Value) -> String {
    match v.as_i64() {
        Some(secs) if secs >= 0 => crate::rfc3339::format(secs as u64),
        _ => "?".to_string(),
    }
}

/// A short note for `berth ls`: `SIF amd64, signed` (per image of an
/// index), or None when the answer holds no described SIF.
pub(super) fn summary(body: &Value) -> Option<String> {
    let parts: Vec<String> = body["images"]
        .as_array()?
        .iter()
        .filter_map(|i| {
            let sif = i["sif"].as_object()?;
            let arch = sif.get("architecture")?.as_str()?;
            let signed = sif.get("signed").and_then(Value::as_bool) == Some(true);
            Some(format!("{arch}{}", if signed { " signed" } else { "" }))
        })
        .collect();
    (!parts.is_empty()).then(|| format!("SIF {}", parts.join(", ")))
}

/// What [`summary`] reads, from a registry that may not be Berth: None for
/// anything but a readable answer.
pub(super) async fn fetch_summary(client: &Client, repo: &str, reference: &str) -> Option<String> {
    let path = format!("/v2/{repo}/sif/{reference}");
    let response = client.get(&path, "application/json").await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    summary(&response.json().await.ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_siftool_rows() {
        let image = crate::sif::parse(&crate::sif::tests::signed_amd64()).unwrap();
        let rows: Vec<String> = image
            .objects
            .iter()
            .map(|o| object_row(&serde_json::to_value(o).unwrap()))
            .collect();
        assert_eq!(
            rows,
            [
                "1    |1       |NONE    |32176-32194               |Def.FILE",
                "2    |1       |NONE    |32768-102768              |FS (Squashfs/*System/amd64)",
                "3    |NONE    |1   (G) |102768-103412             |Signature (SHA-256)",
            ]
        );
        assert_eq!(split_reference("a/b:v1"), ("a/b", "v1"));
        assert_eq!(split_reference("a/b@sha256:00"), ("a/b", "sha256:00"));
        assert_eq!(split_reference("a/b"), ("a/b", "latest"));
        assert_eq!(split_reference("host:5000/a"), ("host:5000/a", "latest"));
        let body = serde_json::json!({"images": [
            {"sif": {"architecture": "amd64", "signed": true}},
            {"sif": null, "error": "no SIF magic"},
        ]});
        assert_eq!(summary(&body).as_deref(), Some("SIF amd64 signed"));
    }
}
