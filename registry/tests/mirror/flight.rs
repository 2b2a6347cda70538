//! 20 concurrent pulls of an uncached 100 MiB image, spread over two berth
//! processes on one PostgreSQL database and bucket: one upstream GET per
//! manifest and per blob.

use super::*;
use common::postgres_s3_args;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_pulls_fetch_once_across_processes() {
    let up = Upstream::start();
    let layers = [content(10, 50 << 20), content(11, 50 << 20)];
    let (digest, blobs) = up.push("team/big", "v1", &layers).await;
    let dir = tempfile::tempdir().unwrap();
    let config = mirror_config(&dir, &up.url(), "");
    let backend = postgres_s3_args();
    let args = ["--config", config.to_str().unwrap()];
    let a = Server::start_on_backend(backend.clone(), &args);
    let b = Server::start_on_backend(backend, &args);

    let pulls: Vec<_> = (0..20)
        .map(|i| {
            let c = Client::new(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { pull(&c, "team/big", "v1", i % 4 < 2).await })
        })
        .collect();
    for p in pulls {
        assert_eq!(p.await.unwrap(), digest);
    }
    let manifest_gets = up.requests("GET", "/v2/team/big/manifests/");
    let blob_gets = up.requests("GET", "/v2/team/big/blobs/");
    eprintln!(
        "mirror: 20 concurrent cold pulls over 2 processes: upstream manifest GETs {manifest_gets}, blob GETs {blob_gets} ({} blobs)",
        blobs.len()
    );
    assert_eq!(manifest_gets, 1, "{}", up.log());
    assert_eq!(blob_gets, blobs.len(), "{}", up.log());
}
