//! A 1 GiB blob pushed and pulled as streams: the server's memory stays
//! flat whatever the blob size (peak RSS, not time, is what is asserted).

mod common;

use common::{Backend, Server};
use futures::StreamExt;
use reqwest::{Client, StatusCode};
use sha2::Digest as _;

const SIZE: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;
/// How much the server's peak RSS may grow while moving 1 GiB.
const MAX_GROWTH_KIB: u64 = 16 * 1024;
/// On S3 an upload holds one part (8 MiB) in memory before it sends it:
/// S3 needs each part's length up front, and a part sent from memory can
/// be retried. That is a bound per upload, not per blob size.
const S3_PART_KIB: u64 = 8 * 1024;

/// Deterministic, incompressible-enough content generated on the fly.
fn chunk(i: u64) -> bytes::Bytes {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = Vec::with_capacity(CHUNK);
    while buf.len() < CHUNK {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        buf.extend_from_slice(&state.to_le_bytes());
    }
    buf.into()
}

fn expected_digest() -> String {
    let mut h = sha2::Sha256::new();
    for i in 0..SIZE / CHUNK as u64 {
        h.update(chunk(i));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[tokio::test]
async fn one_gib_push_and_pull_keep_memory_flat() {
    let server = Server::start();
    let http = Client::new();
    let digest = tokio::task::spawn_blocking(expected_digest).await.unwrap();
    let baseline = server.peak_rss_kib();

    // Push: POST, one streamed PATCH, PUT ?digest= (what docker and skopeo do).
    let r = http
        .post(server.url("/v2/big/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body =
        futures::stream::iter(0..SIZE / CHUNK as u64).map(|i| Ok::<_, std::io::Error>(chunk(i)));
    let r = http
        .patch(server.url(&location))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .put(server.url(&format!("{location}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let after_push = server.peak_rss_kib();

    // Pull, hashing as it streams.
    let r = http
        .get(server.url(&format!("/v2/big/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.content_length(), Some(SIZE));
    let mut stream = r.bytes_stream();
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        n += c.len() as u64;
        h.update(&c);
    }
    assert_eq!(n, SIZE);
    assert_eq!(format!("sha256:{}", hex::encode(h.finalize())), digest);
    let after_pull = server.peak_rss_kib();

    // Ranges that start off page boundaries and cross the server's 4 MiB
    // send windows come back exact.
    for (header, start, end) in [
        ("bytes=4000000-9000000", 4_000_000, 9_000_001),
        ("bytes=-300000", SIZE - 300_000, SIZE),
        ("bytes=1073000000-", 1_073_000_000, SIZE),
    ] {
        let r = http
            .get(server.url(&format!("/v2/big/blobs/{digest}")))
            .header("range", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{header}");
        let got = r.bytes().await.unwrap();
        assert_eq!(got.len() as u64, end - start, "{header}");
        let mut expected = Vec::new();
        for i in start / CHUNK as u64..end.div_ceil(CHUNK as u64) {
            expected.extend_from_slice(&chunk(i));
        }
        let from = (start % CHUNK as u64) as usize;
        assert!(
            got[..] == expected[from..from + got.len()],
            "{header}: bytes differ"
        );
    }

    eprintln!(
        "server peak RSS: start {baseline} KiB, after 1 GiB push {after_push} KiB, after pull {after_pull} KiB"
    );
    let limit = match Backend::current() {
        Backend::PostgresS3 => MAX_GROWTH_KIB + S3_PART_KIB,
        _ => MAX_GROWTH_KIB,
    };
    assert!(
        after_pull - baseline < limit,
        "peak RSS grew by {} KiB moving 1 GiB",
        after_pull - baseline
    );
}
