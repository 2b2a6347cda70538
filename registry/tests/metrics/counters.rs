//! Counters by route template, with streamed bytes, and the in-flight gauge.

use super::*;

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
                || route.starts_with("/readyz")
                // The library API of library:// clients (http/library.rs).
                || route.starts_with("/library/v2/")
                || route.starts_with("/v1/")
                || route == "/version"
                || route == "/assets/config/config.prod.json"
                || route == "/"
                || route.starts_with("/ui/")
                || route.starts_with("/api/v1/"),
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
