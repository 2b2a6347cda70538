//! SIGTERM, as a Kubernetes rollout or a scale-down sends it: readiness
//! goes false first while requests are still served (the load balancer
//! takes the replica out), then the listener closes, what is in flight
//! finishes, and the process exits 0.

use super::*;
use futures::StreamExt;

#[tokio::test]
async fn sigterm_leaves_the_load_balancer_first_and_finishes_what_is_in_flight() {
    let mut server = Server::start_with(&["--shutdown-delay-seconds", "2"]);
    let c = Client::new(&server);
    let r = c
        .req(Method::POST, "/v2/stopping/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();

    // An upload whose body takes 4 s to arrive: in flight across the stop.
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; 64 * 1024]).collect();
    let whole = chunks.concat();
    let body = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .patch(server.url(&location))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let addr = server.addr.clone();
    let stopped = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Within the delay: not ready, yet still serving, on new connections too.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let r = fresh()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text().await.unwrap(), "shutting down");
    let r = fresh()
        .get(format!("http://{addr}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // After it: no new connections.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        TcpStream::connect(&addr).is_err(),
        "still accepting after the shutdown delay"
    );
    // The upload in flight was finished and acknowledged, and the process
    // exited cleanly.
    let r = in_flight.await.unwrap().expect("the in-flight PATCH");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.headers()["range"].to_str().unwrap(),
        format!("0-{}", whole.len() - 1)
    );
    let status = stopped.await.unwrap().expect("exited within 20 s");
    assert!(status.success(), "{status}");
}
