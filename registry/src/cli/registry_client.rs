//! The registry client of the commands that ask a running registry
//! (`berth ls`, `berth sif`): the connection flags, and a [`Remote`] that
//! logs in like a client (basic credentials, or the token flow when the
//! registry answers with a Bearer challenge) and says what to do when the
//! registry refuses.

use reqwest::header::LINK;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::oci::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::remote::{Remote, error_message};

/// Where the registry is and whom to log in as.
#[derive(clap::Args, Clone)]
pub struct Connection {
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

impl Connection {
    /// The connection with `--password-stdin` read, and TLS ready.
    pub fn read_password(mut self) -> anyhow::Result<Self> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            self.password = Some(line.trim_end_matches(['\n', '\r']).to_string());
            self.password_stdin = false;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(self)
    }
}

/// The registry a command asks: a [`Remote`] that says what to do when it
/// refuses.
pub struct Client {
    remote: Remote,
}

impl Client {
    pub fn new(args: &Connection) -> anyhow::Result<Self> {
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
    pub async fn get(&self, path: &str, accept: &str) -> anyhow::Result<Response> {
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
    pub async fn paged(&self, first: &str, field: &str) -> anyhow::Result<Vec<String>> {
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
    pub async fn manifest(&self, repo: &str, tag: &str) -> anyhow::Result<(String, Value)> {
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
pub async fn checked(response: Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{path}: {status}: {}", error_message(response).await);
    }
    Ok(response.json().await?)
}
