//! `berth ls [REPOSITORY]`: what a running registry holds, through its API
//! (any OCI registry, in fact), for people who will not read JSON from
//! curl: repositories with their tag counts, or a repository's tags with
//! digest, size and platforms. Logs in like a client: basic credentials, or
//! the token flow when the registry answers with a Bearer challenge.

use reqwest::header::LINK;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::oci::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::remote::{Remote, error_message};

#[derive(clap::Args)]
pub struct Args {
    /// A repository: list its tags. Without one: list the repositories.
    repository: Option<String>,
    /// The registry's URL.
    #[arg(long, env = "BERTH_URL", default_value = "http://127.0.0.1:5000")]
    url: String,
    /// User or robot name to log in as.
    #[arg(long, short = 'u', env = "BERTH_USERNAME")]
    username: Option<String>,
    /// Its password or secret (better: BERTH_PASSWORD, or --password-stdin).
    #[arg(long, short = 'p', env = "BERTH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        args.password = Some(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    super::block_on(async {
        let client = Client::new(&args)?;
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
        let (size, what) = describe(&manifest);
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

fn human(bytes: u64) -> String {
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

/// The registry `berth ls` lists: a [`Remote`] that says what to do when
/// it refuses.
struct Client {
    remote: Remote,
}

impl Client {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let credentials = match (&args.username, &args.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(_), None) => {
                anyhow::bail!("--username needs a password (BERTH_PASSWORD or --password-stdin)")
            }
            _ => None,
        };
        let remote = Remote::new(&args.url, credentials, reqwest::Client::builder().build()?)
            .map_err(|e| anyhow::anyhow!("--url: {e}"))?;
        Ok(Self { remote })
    }

    /// GET `path`, logging in when challenged.
    async fn get(&self, path: &str, accept: &str) -> anyhow::Result<Response> {
        let response = self
            .remote
            .send(Method::GET, path, Some(accept), None)
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "{}{path}: 401 Unauthorized{}",
                self.remote.base(),
                if self.remote.has_credentials() {
                    " (wrong user name or password?)"
                } else {
                    "; log in with --username and BERTH_PASSWORD"
                }
            );
        }
        Ok(response)
    }

    /// Every item of `field` across the pages of a listing (`Link` headers).
    async fn paged(&self, first: &str, field: &str) -> anyhow::Result<Vec<String>> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            let response = self.get(&path, "application/json").await?;
            next = response
                .headers()
                .get(LINK)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(link, _)| link.to_string());
            let body = checked(response, &path).await?;
            items.extend(
                body[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        }
        Ok(items)
    }

    /// The digest and content of manifest `repo:tag`.
    async fn manifest(&self, repo: &str, tag: &str) -> anyhow::Result<(String, Value)> {
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let path = format!("/v2/{repo}/manifests/{tag}");
        let response = self.get(&path, &accept).await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((digest, checked(response, &path).await?))
    }
}

/// The JSON body of a successful response; else an error with the
/// registry's message.
async fn checked(response: Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{path}: {status}: {}", error_message(response).await);
    }
    Ok(response.json().await?)
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
