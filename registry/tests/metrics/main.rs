//! `/metrics` and the request log of the real server: route templates (never
//! a raw path), body bytes counted as they stream, the in-flight gauge, the
//! figures read from the metadata database, and JSON log lines that carry
//! the request id the response returned.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{Server, sha256};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Distinctive enough that finding it anywhere in `/metrics` is a leak.
const REPO: &str = "leakcheck-team/leakcheck-app";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (enough of it for what Berth writes:
/// label values without escaped quotes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value.parse().expect("sample value is a number");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the series `name{labels}` (labels must match exactly).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// Scrapes until `name{labels}` equals `want`: a request is counted when its
/// response body is finished, which may be just after the client saw it.
fn wait_for(server: &Server, name: &str, labels: &[(&str, &str)], want: f64) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = parse(&metrics_body(server));
        let got = value(&samples, name, labels);
        if got == Some(want) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}{labels:?} = {want}; last value {got:?}; metrics:\n{}",
            metrics_body(server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/metrics` without the HTTP head.
fn metrics_body(server: &Server) -> String {
    let raw = server.metrics();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = vec![7u8; 3000];
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    (layer, config, manifest)
}

async fn push_blob(http: &Client, server: &Server, data: &[u8]) {
    let r = http
        .post(server.url(&format!(
            "/v2/{REPO}/blobs/uploads/?digest={}",
            sha256(data)
        )))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// The JSON log line of the request with this id, once written.
fn log_line(server: &Server, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "request" && v["fields"]["request_id"] == request_id
            });
        if let Some(v) = found {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the log line of request {request_id}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

mod counters;
mod logs;
