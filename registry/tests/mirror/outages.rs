//! The upstream stopped, or rate limiting: cached content is still served,
//! uncached content fails with an error naming the upstream and the cause.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use upstream::Throttle;

#[tokio::test]
async fn a_stopped_upstream_serves_the_cache_and_names_itself_for_the_rest() {
    let mut up = Upstream::start();
    let (cached, _) = up.push("team/app", "v1", &[content(20, 100_000)]).await;
    up.push("team/app", "v2", &[content(21, 100_000)]).await;
    let (berth, _config, _dir) = berth_mirroring(&up.url(), "    tag_ttl_seconds: 1\n");
    let c = Client::new(&berth);
    assert_eq!(pull(&c, "team/app", "v1", true).await, cached);

    up.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Past its TTL, the tag cannot be checked: served stale, blobs too.
    assert_eq!(pull(&c, "team/app", "v1", true).await, cached);
    assert!(
        metric(
            &berth,
            &format!("berth_mirror_pulls_total{{mirror=\"{MIRROR}\",result=\"stale\"}}")
        ) >= 1.0
    );
    assert!(
        berth.log().contains("serving the cached tag"),
        "{}",
        berth.log()
    );
    // Not cached: the spec's error, naming the upstream and why.
    let r = get(&c, &format!("/v2/team/app/manifests/v2?ns={MIRROR}")).await;
    assert!(r.headers().contains_key("retry-after"));
    let body = common::assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(MIRROR) && message.contains(&up.url()),
        "{message}"
    );

    // Back: the rest comes.
    up.restart();
    pull(&c, "team/app", "v2", true).await;
}

#[tokio::test]
async fn a_rate_limited_upstream_serves_the_cache() {
    let up = Upstream::start();
    let throttle = Throttle::to(&up.addr);
    let (cached, _) = up.push("team/app", "v1", &[content(30, 100_000)]).await;
    up.push("team/app", "v2", &[content(31, 100_000)]).await;
    let (berth, _config, _dir) = berth_mirroring(&throttle.url(), "    tag_ttl_seconds: 1\n");
    let c = Client::new(&berth);
    assert_eq!(pull(&c, "team/app", "v1", true).await, cached);

    throttle.throttled.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(pull(&c, "team/app", "v1", false).await, cached);
    let r = get(&c, &format!("/v2/{MIRROR}/team/app/manifests/v2")).await;
    let body = common::assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE").await;
    assert!(body.to_string().contains("429"), "{body}");

    throttle.throttled.store(false, Ordering::SeqCst);
    pull(&c, "team/app", "v2", false).await;
}
