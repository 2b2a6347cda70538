//! Berth as a pull-through cache of a real upstream registry (CNCF
//! distribution 3.x on loopback, its access log counting what Berth asks
//! it): misses fetched once and served from the cache after, tags
//! revalidated after their TTL with a HEAD, one upstream fetch for 20
//! concurrent cold pulls across two berth processes, cached content served
//! while the upstream is down or rate limited, eviction under a size
//! limit, an upstream behind credentials, pushes refused.

#[path = "../common/mod.rs"]
mod common;
mod upstream;

mod cache;
mod flight;
mod limits;
mod outages;

use std::path::PathBuf;

use common::{Client, OCI_MANIFEST, Server, sha256};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use upstream::Upstream;

/// The mirror's name in these tests.
const MIRROR: &str = "upstream.test";

/// A config file mirroring `url` as `upstream.test`, with `extra` mirror
/// settings (YAML lines, indented 4).
fn mirror_config(dir: &tempfile::TempDir, url: &str, extra: &str) -> PathBuf {
    let path = dir.path().join("berth.yaml");
    std::fs::write(
        &path,
        format!("mirrors:\n  - name: {MIRROR}\n    url: {url}\n{extra}"),
    )
    .unwrap();
    path
}

/// A berth mirroring `url` (with `extra` settings), and its config file.
fn berth_mirroring(url: &str, extra: &str) -> (Server, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = mirror_config(&dir, url, extra);
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    (server, config, dir)
}

/// GET of `path` (with the OCI manifest type accepted).
async fn get(c: &Client, path: &str) -> reqwest::Response {
    c.req(Method::GET, path)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
}

/// Pulls `repo:tag` through `c` (`ns`: containerd's way, else the prefix
/// way), checks every digest; returns the manifest digest.
async fn pull(c: &Client, repo: &str, tag: &str, ns: bool) -> String {
    let path = |what: &str| {
        if ns {
            format!("/v2/{repo}/{what}?ns={MIRROR}")
        } else {
            format!("/v2/{MIRROR}/{repo}/{what}")
        }
    };
    let r = get(c, &path(&format!("manifests/{tag}"))).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    let blobs = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
    for blob in blobs {
        let d = blob["digest"].as_str().unwrap();
        let r = get(c, &path(&format!("blobs/{d}"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{d}");
        assert_eq!(sha256(&r.bytes().await.unwrap()), d);
    }
    digest
}

/// Deterministic, incompressible content of `len` bytes.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn metric(server: &Server, series: &str) -> f64 {
    server
        .metrics()
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
