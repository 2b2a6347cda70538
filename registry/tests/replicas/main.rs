//! Replicas: three `berth` processes on one PostgreSQL database and one
//! bucket, behind HAProxy, as issue 22 asks — the OCI conformance suite
//! through the load balancer, an upload split across the replicas, kill -9
//! chaos under 200 concurrent pushers and pullers with gc on every
//! replica's schedule, and a rolling restart under pulls. Counts are
//! printed (run with --nocapture, as .ci/run does).
//!
//! Not run by a plain `cargo test` (`test = false` in Cargo.toml: it takes
//! minutes and needs HAProxy): `cargo test -p berth-registry --test
//! replicas -- --nocapture --test-threads 1`, with the servers of
//! `eval "$(tests/backends/up.sh)"`.

#[path = "../common/mod.rs"]
mod common;

mod chaos;
mod client;
mod cluster;
mod rolling;

use std::time::Duration;

use cluster::Cluster;
use reqwest::StatusCode;

use common::sha256;

/// POST on A, PATCH on B, PATCH on C, PUT on A; pulled from each.
#[tokio::test]
async fn an_upload_split_across_three_replicas() {
    let cluster = Cluster::start(3, &[]);
    let [a, b, c] = [0, 1, 2].map(|i| format!("http://{}", cluster.replicas[i].addr()));
    let http = reqwest::Client::new();
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 241) as u8).collect();
    let third = data.len() / 3;
    let r = http
        .post(format!("{a}/v2/split/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut location = r.headers()["location"].to_str().unwrap().to_string();
    for (base, range) in [(&b, 0..third), (&c, third..data.len())] {
        let r = http
            .patch(format!("{base}{location}"))
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(data[range.clone()].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "{}",
            r.text().await.unwrap()
        );
        location = r.headers()["location"].to_str().unwrap().to_string();
    }
    let digest = sha256(&data);
    let r = http
        .put(format!("{a}{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    for base in [&a, &b, &c] {
        let r = http
            .get(format!("{base}/v2/split/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
    }
}

/// The whole OCI conformance suite against the load balancer.
#[test]
fn conformance_through_the_load_balancer() {
    let cluster = Cluster::start(3, &[]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join("tests/conformance/run.sh"))
        .env("CONFORMANCE_REGISTRY", &cluster.lb)
        .env(
            "CONFORMANCE_RESULTS",
            root.join("target/conformance-replicas"),
        )
        .output()
        .expect("run tests/conformance/run.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.contains(" passed, "))
        .unwrap_or_default()
        .to_string();
    eprintln!("replicas: conformance through HAProxy: {summary}");
    assert!(
        out.status.success() && summary.contains(" 0 failed"),
        "{stderr}\n{}",
        cluster.logs()
    );
}

/// Gives a replica killed a moment ago time to be seen as down.
pub const SETTLE: Duration = Duration::from_millis(700);
