//! One log line per request, text or JSON, with its request id.

use super::*;

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
