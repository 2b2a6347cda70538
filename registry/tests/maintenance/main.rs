//! Maintenance from the outside: `berth gc` and `berth retention` run as
//! separate processes against a serving registry (as the operator's
//! CronJobs do), quotas and immutable tags refused at push time with DENIED,
//! `berth usage`, and the storage on disk matching the metadata after gc.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, Stores, sha256};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A client of one registry.
#[derive(Clone)]
struct Reg {
    base: String,
    http: Client,
}

/// An image as pushed: its manifest and every blob it references.
#[derive(Clone, Debug)]
struct Image {
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

impl Reg {
    fn new(server: &Server) -> Reg {
        Reg {
            base: server.base.clone(),
            http: Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    async fn status(&self, method: Method, path: &str) -> StatusCode {
        self.req(method, path).send().await.unwrap().status()
    }

    /// Uploads a blob unless the repository has it (as real clients do:
    /// HEAD first). Err carries the registry's answer.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let digest = sha256(data);
        let head = self
            .status(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
            .await;
        if head == StatusCode::OK {
            return Ok(digest);
        }
        let r = self.post_blob(repo, data).await;
        if r.status() != StatusCode::CREATED {
            return Err(format!(
                "{} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        Ok(digest)
    }

    /// A single-POST monolithic upload, whatever the answer.
    async fn post_blob(&self, repo: &str, data: &[u8]) -> reqwest::Response {
        self.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<(), (StatusCode, String)> {
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if r.status() != StatusCode::CREATED {
            return Err((r.status(), r.text().await.unwrap_or_default()));
        }
        Ok(())
    }

    /// Pushes config + layers and an image manifest under `reference`.
    async fn push_image(
        &self,
        repo: &str,
        reference: &str,
        layers: &[&[u8]],
        subject: Option<&str>,
    ) -> Result<Image, String> {
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"layers\":{}}}",
            layers.len()
        );
        let mut blobs = vec![(
            self.push_blob(repo, config.as_bytes()).await?,
            config.clone().into_bytes(),
        )];
        for layer in layers {
            blobs.push((self.push_blob(repo, layer).await?, layer.to_vec()));
        }
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0].0, "size": config.len()},
            "layers": blobs[1..].iter().map(|(d, b)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": b.len()
            })).collect::<Vec<_>>(),
        });
        if let Some(subject) = subject {
            manifest["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": 1});
            manifest["artifactType"] = json!("application/vnd.example.sbom");
        }
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let digest = sha256(&manifest);
        self.put_manifest(repo, reference, OCI_MANIFEST, &manifest)
            .await
            .map_err(|(s, m)| format!("{s} {m}"))?;
        Ok(Image {
            manifest,
            digest,
            blobs,
        })
    }

    /// Pulls `reference` and every blob of it, checking bytes and digests.
    async fn pull_verified(&self, repo: &str, reference: &str, image: &Image) {
        let r = self
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{repo}:{reference}");
        let body = r.bytes().await.unwrap();
        assert!(
            body[..] == image.manifest[..],
            "{repo}:{reference} manifest bytes differ"
        );
        for (digest, data) in &image.blobs {
            let r = self
                .req(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "{repo}:{reference} blob {digest}"
            );
            let got = r.bytes().await.unwrap();
            assert_eq!(
                sha256(&got),
                *digest,
                "{repo}:{reference} blob {digest} corrupt"
            );
            assert_eq!(got.len(), data.len());
        }
    }
}

/// Runs a `berth` maintenance subcommand on a server's stores; returns stdout.
fn berth(stores: &Stores, args: &[&str]) -> String {
    stores.berth(args)
}

fn usage(stores: &Stores, extra: &[&str]) -> Value {
    let mut args = vec!["usage", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&berth(stores, &args)).expect("usage JSON")
}

/// Every blob in the blob store: `alg:hex` -> size.
fn blobs_on_disk(stores: &Stores) -> BTreeMap<String, u64> {
    stores
        .objects()
        .into_iter()
        .filter_map(|(key, size)| {
            let mut parts = key.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("blobs"), Some(alg), Some(_), Some(hex)) => {
                    Some((format!("{alg}:{hex}"), size))
                }
                _ => None,
            }
        })
        .collect()
}

/// The metadata's count and bytes of stored blobs equal what is on disk.
fn assert_storage_matches_metadata(stores: &Stores) -> BTreeMap<String, u64> {
    let disk = blobs_on_disk(stores);
    let u = usage(stores, &[]);
    assert_eq!(
        u["stored_blobs"].as_u64().unwrap(),
        disk.len() as u64,
        "{u}\n{disk:?}"
    );
    assert_eq!(
        u["stored_bytes"].as_u64().unwrap(),
        disk.values().sum::<u64>(),
        "{u}"
    );
    disk
}

fn layer(name: &str, size: usize) -> Vec<u8> {
    let mut data = name.as_bytes().to_vec();
    data.resize(size, b'.');
    data
}

/// Pushes an image manifest by its own digest.
async fn push_by_digest(reg: &Reg, repo: &str, layers: &[&[u8]], subject: Option<&str>) -> Image {
    // Push under a throwaway tag first to learn the bytes, then by digest
    // and drop the tag: the manifest is left reachable only by digest.
    let image = reg
        .push_image(repo, "tmp-by-digest", layers, subject)
        .await
        .unwrap();
    reg.put_manifest(repo, &image.digest, OCI_MANIFEST, &image.manifest)
        .await
        .unwrap();
    assert_eq!(
        reg.status(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/tmp-by-digest")
        )
        .await,
        StatusCode::ACCEPTED
    );
    image
}

fn write_policy(dir: &Path, repositories: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "rules:\n  - repositories: [\"**\"]\n    subjects: [anonymous]\n    actions: [pull, push, delete]\n{repositories}"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn list_tags(reg: &Reg, repo: &str) -> Vec<String> {
    let v: Value = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

mod gc;
mod quotas;
mod retention;
