//! `s3.redirect`: blob GETs answered with a 307 to a presigned URL of the
//! bucket (the versitygw of tests/backends/up.sh checks the signature), so
//! the bytes do not pass through berth; with `public_endpoint`, the URL
//! names the host clients reach the bucket at.

mod common;

use common::{Client, Server, postgres_s3_args, sha256};
use reqwest::{Method, StatusCode};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn blob_gets_redirect_to_a_presigned_url_that_serves_the_blob() {
    let server = Server::start_on_backend(postgres_s3_args(), &["--s3-redirect"]);
    let c = Client::new(&server);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = c.push_blob("redirect/app", &data).await;

    let http = no_redirects();
    let r = http
        .get(server.url(&format!("/v2/redirect/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").unwrap();
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");

    // The presigned URL serves the blob, and a Range, without credentials.
    let r = http.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
    let r = http
        .get(&location)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), &data[1000..2000]);
    // A tampered URL is refused by the store.
    let tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let r = http.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A client that follows redirects just gets the blob; HEAD is answered
    // by berth itself; a blob that is not there is still the spec's 404.
    let r = c
        .req(Method::GET, &format!("/v2/redirect/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
    let r = http
        .head(server.url(&format!("/v2/redirect/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"],
        data.len().to_string().as_str()
    );
    let missing = sha256(b"not pushed");
    let r = http
        .get(server.url(&format!("/v2/redirect/app/blobs/{missing}")))
        .send()
        .await
        .unwrap();
    common::assert_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn presigned_urls_name_the_public_endpoint() {
    // Clients reach the bucket as "localhost"; berth reaches it as 127.0.0.1.
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").unwrap();
    let public = endpoint.replace("127.0.0.1", "localhost");
    let server = Server::start_on_backend(
        postgres_s3_args(),
        &["--s3-redirect", "--s3-public-endpoint", &public],
    );
    let c = Client::new(&server);
    let digest = c
        .push_blob("redirect/public", b"through the public name")
        .await;
    let r = no_redirects()
        .get(server.url(&format!("/v2/redirect/public/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&public), "{location}");
    let r = reqwest::get(&location).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), &b"through the public name"[..]);
}
