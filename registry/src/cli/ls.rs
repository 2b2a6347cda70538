//! `berth ls [REPOSITORY]`: what a running registry holds, through its API
//! (any OCI registry, in fact), for people who will not read JSON from
//! curl: repositories with their tag counts, or a repository's tags with
//! digest, size and platforms (and, from Berth, what its SIF images are).
//! Logs in like a client (`registry_client`).

use serde_json::Value;

use super::registry_client::{Client, Connection};

#[derive(clap::Args)]
pub struct Args {
    /// A repository: list its tags. Without one: list the repositories.
    repository: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let connection = args.connection.read_password()?;
    super::block_on(async {
        let client = Client::new(&connection)?;
        match &args.repository {
            None => list_repositories(&client).await,
            Some(repo) => list_tags(&client, repo).await,
        }
    })?
}

async fn list_repositories(client: &Client) -> anyhow::Result<()> {
    let repositories = client.paged("/v2/_catalog?n=1000", "repositories").await?;
    let mut out = format!("{:<50} {:>6}", "REPOSITORY", "TAGS");
    for repo in &repositories {
        let tags = client
            .paged(&format!("/v2/{repo}/tags/list?n=1000"), "tags")
            .await?;
        out.push_str(&format!("\n{repo:<50} {:>6}", tags.len()));
    }
    if repositories.is_empty() {
        out.push_str("\n(no repositories you may pull)");
    }
    super::print(out)
}

async fn list_tags(client: &Client, repo: &str) -> anyhow::Result<()> {
    let tags = client
        .paged(&format!("/v2/{repo}/tags/list?n=1000"), "tags")
        .await?;
    let mut out = format!(
        "{:<30} {:<20} {:>10}  {}",
        "TAG", "DIGEST", "SIZE", "CONTENT"
    );
    for tag in &tags {
        let (digest, manifest) = client.manifest(repo, tag).await?;
        let (size, mut what) = describe(&manifest);
        if let Some(sif) = super::sif::fetch_summary(client, repo, tag).await {
            what = format!("{what}; {sif}");
        }
        let short = digest.get(..19).unwrap_or(&digest);
        out.push_str(&format!(
            "\n{tag:<30} {short:<20} {:>10}  {what}",
            size.map(human).unwrap_or_default()
        ));
    }
    super::print(out)
}

/// The bytes an image pulls (config and layers) and what it is: an image
/// (its config's media type when that is not the usual one), or an index
/// with its platforms.
fn describe(manifest: &Value) -> (Option<u64>, String) {
    let size = |d: &Value| d["size"].as_u64().unwrap_or(0);
    if let Some(children) = manifest["manifests"].as_array() {
        let platforms: Vec<String> = children
            .iter()
            .filter_map(|c| {
                let p = &c["platform"];
                Some(format!(
                    "{}/{}",
                    p["os"].as_str()?,
                    p["architecture"].as_str()?
                ))
            })
            .collect();
        let what = if platforms.is_empty() {
            format!("index of {} manifests", children.len())
        } else {
            format!("index: {}", platforms.join(", "))
        };
        return (None, what);
    }
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let total = size(&manifest["config"]) + layers.iter().map(size).sum::<u64>();
    let kind = manifest["artifactType"]
        .as_str()
        .or(manifest["config"]["mediaType"].as_str())
        .unwrap_or("");
    let what = match kind {
        "application/vnd.oci.image.config.v1+json"
        | "application/vnd.docker.container.image.v1+json" => {
            format!("image, {} layers", layers.len())
        }
        other => format!("{other}, {} layers", layers.len()),
    };
    (Some(total), what)
}

pub(super) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
