//! A client that pushes and pulls through the load balancer and retries
//! what a load balancer in front of dying replicas makes fail: connection
//! errors and 502/503/504. Anything else is not retryable and is recorded
//! as a failure of the registry. A chunked upload resumes where the
//! registry says it stands (GET on the session), as docker does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};

use super::common::{OCI_MANIFEST, sha256};

#[derive(Default)]
pub struct Counts {
    /// Requests sent again after a retryable failure.
    pub retried: AtomicU64,
    /// Answers no retry can fix: the registry's failures.
    pub fatal: Mutex<Vec<String>>,
}

impl Counts {
    fn fatal(&self, what: String) -> String {
        self.fatal.lock().unwrap().push(what.clone());
        what
    }
}

/// Sends until the answer is not a retryable failure (at most 60 tries).
async fn send(
    counts: &Counts,
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Response, String> {
    for attempt in 0..60 {
        if attempt > 0 {
            counts.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50 * attempt.min(10))).await;
        }
        match request().send().await {
            Ok(r) if matches!(r.status().as_u16(), 502..=504) => continue,
            Ok(r) => return Ok(r),
            Err(_) => continue,
        }
    }
    Err(counts.fatal(format!("{what}: still failing after 60 tries")))
}

fn expect(counts: &Counts, what: &str, r: &Response, want: StatusCode) -> Result<(), String> {
    if r.status() == want {
        Ok(())
    } else {
        Err(counts.fatal(format!("{what}: {} (expected {want})", r.status())))
    }
}

pub struct Pushed {
    pub repo: String,
    pub tag: String,
    pub manifest: String,
    pub blobs: Vec<String>,
}

/// Pushes a config (monolithic) and `layer` (chunked, `chunk` bytes per
/// PATCH), then a manifest tagged `tag`. Ok once the manifest PUT is
/// acknowledged.
pub async fn push(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
    chunk: usize,
    counts: &Counts,
) -> Result<Pushed, String> {
    let url = |path: &str| format!("{base}{path}");
    let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#).into_bytes();
    let config_digest = sha256(&config);
    let r = send(counts, "config POST", || {
        http.post(url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={config_digest}"
        )))
        .body(config.clone())
    })
    .await?;
    expect(counts, "config POST", &r, StatusCode::CREATED)?;

    let layer_digest = sha256(layer);
    upload_chunked(http, base, repo, layer, chunk, counts).await?;

    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let r = send(counts, "manifest PUT", || {
        http.put(url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
    })
    .await?;
    expect(counts, "manifest PUT", &r, StatusCode::CREATED)?;
    Ok(Pushed {
        repo: repo.to_string(),
        tag: tag.to_string(),
        manifest: sha256(&manifest),
        blobs: vec![config_digest, layer_digest],
    })
}

/// POST, PATCH per chunk (resuming from what the session says after a
/// failure), PUT ?digest=.
async fn upload_chunked(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    data: &[u8],
    chunk: usize,
    counts: &Counts,
) -> Result<(), String> {
    let digest = sha256(data);
    let absolute = |location: &str| {
        if location.starts_with("http") {
            location.to_string()
        } else {
            format!("{base}{location}")
        }
    };
    let r = send(counts, "upload POST", || {
        http.post(format!("{base}/v2/{repo}/blobs/uploads/"))
    })
    .await?;
    expect(counts, "upload POST", &r, StatusCode::ACCEPTED)?;
    let mut location = absolute(r.headers()["location"].to_str().unwrap());
    let mut offset = 0usize;
    let mut tries = 0;
    let mut last = String::new();
    while offset < data.len() {
        tries += 1;
        if tries > 200 {
            return Err(counts.fatal(format!(
                "upload {location}: no progress after 200 PATCHes (at {offset} of {}; last: {last})",
                data.len()
            )));
        }
        let end = (offset + chunk).min(data.len());
        let sent = http
            .request(Method::PATCH, &location)
            .header("content-range", format!("{offset}-{}", end - 1))
            .header("content-type", "application/octet-stream")
            .body(data[offset..end].to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                location = absolute(r.headers()["location"].to_str().unwrap());
                offset = end;
                continue;
            }
            // Out of order (the previous PATCH was stored but its answer
            // lost): ask where the session stands. Retryable failures too.
            Ok(r) if matches!(r.status().as_u16(), 416 | 502..=504) => {
                last = format!("{} {:?}", r.status(), r.text().await);
            }
            Err(e) => last = format!("{e:?}"),
            Ok(r) => return Err(counts.fatal(format!("upload PATCH: {}", r.status()))),
        }
        counts.retried.fetch_add(1, Ordering::Relaxed);
        let r = send(counts, "upload status", || http.get(&location)).await?;
        expect(counts, "upload status", &r, StatusCode::NO_CONTENT)?;
        let range = r.headers()["range"].to_str().unwrap().to_string();
        // "0-0" is also what an empty session says; chunks here are never
        // one byte, so it means nothing was stored yet.
        offset = match range.as_str() {
            "0-0" => 0,
            _ => range
                .rsplit('-')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(0, |last| last + 1),
        };
    }
    let put = format!(
        "{location}{}digest={digest}",
        if location.contains('?') { "&" } else { "?" }
    );
    for _ in 0..60 {
        match http.put(&put).send().await {
            Ok(r) if r.status() == StatusCode::CREATED => return Ok(()),
            // The PUT was done but its answer lost: the session is gone and
            // the blob is there.
            Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                let r = send(counts, "blob HEAD", || {
                    http.head(format!("{base}/v2/{repo}/blobs/{digest}"))
                })
                .await?;
                expect(
                    counts,
                    "blob HEAD after a lost PUT answer",
                    &r,
                    StatusCode::OK,
                )?;
                return Ok(());
            }
            Ok(r) if matches!(r.status().as_u16(), 502..=504) => {}
            Err(_) => {}
            Ok(r) => return Err(counts.fatal(format!("upload PUT: {}", r.status()))),
        }
        counts.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(counts.fatal("upload PUT: still failing after 60 tries".into()))
}

/// Pulls the manifest by tag and every blob, and checks every digest.
pub async fn pull(
    http: &reqwest::Client,
    base: &str,
    pushed: &Pushed,
    counts: &Counts,
) -> Result<(), String> {
    let r = send(counts, "manifest GET", || {
        http.get(format!(
            "{base}/v2/{}/manifests/{}",
            pushed.repo, pushed.tag
        ))
        .header("accept", OCI_MANIFEST)
    })
    .await?;
    expect(counts, "manifest GET", &r, StatusCode::OK)?;
    let body = r
        .bytes()
        .await
        .map_err(|e| counts.fatal(format!("manifest body: {e}")))?;
    if sha256(&body) != pushed.manifest {
        return Err(counts.fatal(format!("{}:{}: wrong manifest", pushed.repo, pushed.tag)));
    }
    for blob in &pushed.blobs {
        let mut tries = 0;
        loop {
            tries += 1;
            let r = send(counts, "blob GET", || {
                http.get(format!("{base}/v2/{}/blobs/{blob}", pushed.repo))
            })
            .await?;
            expect(counts, "blob GET", &r, StatusCode::OK)?;
            match r.bytes().await {
                Ok(bytes) if sha256(&bytes) == *blob => break,
                Ok(_) => return Err(counts.fatal(format!("blob {blob}: wrong bytes"))),
                // The replica died mid-body.
                Err(_) if tries < 60 => {
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(counts.fatal(format!("blob {blob}: {e}"))),
            }
        }
    }
    Ok(())
}
