//! `/metrics` and the request log of the real server: route templates (never
//! a raw path), body bytes counted as they stream, the in-flight gauge, the
//! figures read from the metadata database, and JSON log lines that carry
//! the request id the response returned.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::Server;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Distinctive enough that finding it anywhere in `/metrics` is a leak.
const REPO: &str = "leakcheck-team/leakcheck-app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

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

#[tokio::test]
async fn requests_are_counted_by_route_template_with_streamed_bytes() {
    let server = Server::start_with(&["--log-format", "json"]);
    let http = Client::new();
    let (layer, config, manifest) = image();

    // Push: two monolithic blob uploads and the manifest.
    push_blob(&http, &server, &layer).await;
    push_blob(&http, &server, &config).await;
    let r = http
        .put(server.url(&format!("/v2/{REPO}/manifests/v1")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Pull: the manifest by tag, the layer, and a manifest that is not there.
    let r = http
        .get(server.url(&format!("/v2/{REPO}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), manifest.len());
    let r = http
        .get(server.url(&format!("/v2/{REPO}/blobs/{}", sha256(&layer))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), layer.len());
    let r = http
        .get(server.url(&format!("/v2/{REPO}/manifests/missing")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .request(Method::GET, server.url("/no/such/leakcheck-path"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An upload left open.
    let r = http
        .post(server.url(&format!("/v2/{REPO}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let manifests = "/v2/{name}/manifests/{reference}";
    let uploads = "/v2/{name}/blobs/uploads/";
    let blobs = "/v2/{name}/blobs/{digest}";
    let s = wait_for(
        &server,
        "berth_http_requests_total",
        &[("method", "POST"), ("route", uploads), ("status", "202")],
        1.0,
    );
    let total = |method: &str, route: &str, status: &str| {
        value(
            &s,
            "berth_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(total("POST", uploads, "201"), Some(2.0));
    assert_eq!(total("PUT", manifests, "201"), Some(1.0));
    assert_eq!(total("GET", manifests, "200"), Some(1.0));
    assert_eq!(total("GET", manifests, "404"), Some(1.0));
    assert_eq!(total("GET", blobs, "200"), Some(1.0));
    assert_eq!(total("GET", "unmatched", "404"), Some(1.0));
    assert_eq!(
        value(
            &s,
            "berth_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", manifests)]
        ),
        Some(2.0)
    );

    // Body bytes, as sent and received.
    let bytes = |name: &str, route: &str| value(&s, name, &[("route", route)]);
    assert_eq!(
        bytes("berth_http_request_bytes_total", uploads),
        Some((layer.len() + config.len()) as f64)
    );
    assert_eq!(
        bytes("berth_http_request_bytes_total", manifests),
        Some(manifest.len() as f64)
    );
    assert_eq!(
        bytes("berth_http_response_bytes_total", blobs),
        Some(layer.len() as f64)
    );
    let manifest_out = bytes("berth_http_response_bytes_total", manifests).unwrap();
    assert!(
        manifest_out > manifest.len() as f64,
        "the manifest and the 404's error body: {manifest_out}"
    );
    assert_eq!(value(&s, "berth_http_requests_in_flight", &[]), Some(0.0));

    // What the metadata database holds.
    let gauge = |name: &str| value(&s, name, &[]);
    assert_eq!(gauge("berth_metadata_up"), Some(1.0));
    assert_eq!(gauge("berth_repositories"), Some(1.0));
    assert_eq!(gauge("berth_manifests"), Some(1.0));
    assert_eq!(gauge("berth_tags"), Some(1.0));
    assert_eq!(gauge("berth_blobs"), Some(2.0));
    assert_eq!(
        gauge("berth_stored_bytes"),
        Some((layer.len() + config.len()) as f64)
    );
    assert_eq!(gauge("berth_uploads_in_progress"), Some(1.0));
    // Maintenance is exported at zero before any run.
    for kind in ["gc", "retention"] {
        for result in ["ok", "error"] {
            assert_eq!(
                value(
                    &s,
                    "berth_maintenance_runs_total",
                    &[("kind", kind), ("result", result)]
                ),
                Some(0.0)
            );
        }
        assert_eq!(
            value(
                &s,
                "berth_maintenance_deleted_objects_total",
                &[("kind", kind), ("object", "blob")]
            ),
            Some(0.0)
        );
    }

    // No raw path, repository name or digest in any series.
    let text = metrics_body(&server);
    for leak in [
        "leakcheck",
        &hex::encode(sha2::Sha256::digest(&layer)),
        "v1\"",
    ] {
        assert!(!text.contains(leak), "`{leak}` in /metrics:\n{text}");
    }
    for sample in s.iter().filter(|s| s.labels.contains_key("route")) {
        let route = &sample.labels["route"];
        assert!(
            route == "unmatched"
                || route.starts_with("/v2/")
                || route.starts_with("/auth/")
                || route.starts_with("/healthz")
                || route.starts_with("/readyz"),
            "{route}"
        );
    }
    // Every metric has HELP and TYPE, counters end in _total.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("berth_"), "{line}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
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

#[tokio::test]
async fn json_log_line_per_request_with_the_returned_request_id() {
    let server = Server::start_with(&["--log-format", "json"]);
    let http = Client::new();
    let blob = vec![1u8; 1234];
    push_blob(&http, &server, &blob).await;

    // A request id the client chose is kept and returned.
    let r = http
        .get(server.url(&format!("/v2/{REPO}/blobs/{}", sha256(&blob))))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-chosen-42");
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
    let line = log_line(&server, "client-chosen-42");
    let f = &line["fields"];
    assert_eq!(line["level"], "INFO");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["route"], "/v2/{name}/blobs/{digest}");
    assert_eq!(
        f["path"],
        format!("/v2/{REPO}/blobs/{}", sha256(&blob)).as_str()
    );
    assert_eq!(f["status"], "200");
    assert_eq!(f["request_bytes"], 0);
    assert_eq!(f["response_bytes"], blob.len() as u64);
    assert!(f["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{f}");

    // Without one, an id is generated, returned and logged.
    let r = http
        .put(server.url(&format!("/v2/{REPO}/manifests/bad")))
        .header("content-type", OCI_MANIFEST)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let error_body = r.bytes().await.unwrap();
    let line = log_line(&server, &id);
    let f = &line["fields"];
    assert_eq!(f["method"], "PUT");
    assert_eq!(f["route"], "/v2/{name}/manifests/{reference}");
    assert_eq!(f["status"], "400");
    assert_eq!(f["request_bytes"], 9);
    assert_eq!(f["response_bytes"], error_body.len() as u64);
}

#[tokio::test]
async fn text_log_is_the_default() {
    let server = Server::start();
    let r = Client::new()
        .get(server.url("/v2/_catalog"))
        .header("x-request-id", "text-format-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The text format may carry ANSI colour codes.
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let line = loop {
        let plain = ansi.replace_all(&server.log(), "").into_owned();
        if let Some(l) = plain
            .lines()
            .find(|l| l.contains("request_id=text-format-7"))
        {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no log line:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(serde_json::from_str::<Value>(&line).is_err(), "{line}");
    for field in [
        "method=GET",
        "route=/v2/_catalog",
        "status=200",
        "response_bytes=",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
}

/// A PATCH whose body is still arriving: in flight, and its bytes counted
/// before it finishes.
#[test]
fn streaming_upload_is_in_flight_and_counted_as_it_arrives() {
    let server = Server::start();
    let r = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-X", "POST"])
        .arg(server.url("/v2/stream/blobs/uploads/"))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&r.stdout).to_string();
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or_else(|| panic!("no Location in {head}"))
        .trim()
        .to_string();

    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        sock,
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n",
        server.addr
    )
    .unwrap();
    sock.write_all(&vec![5u8; 100_000]).unwrap();
    sock.flush().unwrap();

    let route = "/v2/{name}/blobs/uploads/{id}";
    wait_for(
        &server,
        "berth_http_request_bytes_total",
        &[("route", route)],
        100_000.0,
    );
    wait_for(&server, "berth_http_requests_in_flight", &[], 1.0);
    // The client gives up: the request is over, whatever its status.
    drop(sock);
    let s = wait_for(&server, "berth_http_requests_in_flight", &[], 0.0);
    let finished: f64 = s
        .iter()
        .filter(|s| {
            s.name == "berth_http_requests_total"
                && s.labels["route"] == route
                && s.labels["method"] == "PATCH"
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(finished, 1.0);
}
