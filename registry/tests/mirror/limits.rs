//! A mirror's cache size limit (gc evicts what was pulled least recently),
//! and an upstream behind credentials.

use super::*;

#[tokio::test]
async fn gc_evicts_the_least_recently_pulled_when_the_cache_is_full() {
    let up = Upstream::start();
    for (i, name) in ["one", "two", "three"].iter().enumerate() {
        up.push(
            &format!("team/{name}"),
            "v1",
            &[content(40 + i as u64, 600_000)],
        )
        .await;
    }
    // Room for two of the three.
    let (berth, config, _dir) = berth_mirroring(&up.url(), "    max_bytes: 1500000\n");
    let c = Client::new(&berth);
    // Pulled twice, in order: the second pull of a blob waits until the
    // first has stored it, so the cache is full before gc runs.
    for _ in 0..2 {
        for name in ["one", "two", "three"] {
            pull(&c, &format!("team/{name}"), "v1", true).await;
        }
    }
    let out = berth.stores().berth(&[
        "gc",
        "--grace-seconds",
        "0",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.contains("least recently pulled first): 1 manifests"),
        "{out}"
    );
    // "one" was pulled first: gone from the cache, fetched again; the
    // others are still cached.
    let before = up.requests("GET", "/v2/");
    pull(&c, "team/three", "v1", true).await;
    pull(&c, "team/two", "v1", true).await;
    assert_eq!(
        up.requests("GET", "/v2/"),
        before,
        "a recently pulled image was evicted"
    );
    pull(&c, "team/one", "v1", true).await;
    assert!(
        up.requests("GET", "/v2/team/one/") > 2,
        "the evicted image came from the cache"
    );
}

#[tokio::test]
async fn an_upstream_behind_credentials() {
    let up = Upstream::start_with_auth("mirror-bot", "s3cret-pw");
    let (digest, _) = up.push("team/private", "v1", &[content(50, 10_000)]).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    let extra = format!(
        "    username: mirror-bot\n    password_file: {}\n",
        password.display()
    );
    let (berth, _config, _cfg_dir) = berth_mirroring(&up.url(), &extra);
    assert_eq!(
        pull(&Client::new(&berth), "team/private", "v1", true).await,
        digest
    );

    // Wrong credentials: the upstream's refusal, named.
    std::fs::write(&password, "wrong\n").unwrap();
    let (berth, _config, _cfg_dir) = berth_mirroring(&up.url(), &extra);
    let r = get(
        &Client::new(&berth),
        &format!("/v2/{MIRROR}/team/private/manifests/v1"),
    )
    .await;
    let body = common::assert_error(r, StatusCode::BAD_GATEWAY, "UNAVAILABLE").await;
    assert!(body.to_string().contains("401"), "{body}");
}
