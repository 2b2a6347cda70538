//! A rolling restart (SIGTERM, start again, next replica), as a Deployment
//! rollout does, while clients pull in a loop: not one pull fails, with no
//! retries by the client. Readiness goes false first (shutdown delay), the
//! load balancer stops sending, in-flight requests finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::client::{self, Counts};
use super::cluster::Cluster;
use super::common::{OCI_MANIFEST, sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_fails_no_pull() {
    let cluster = Cluster::start(3, &["--shutdown-delay-seconds", "2"]);
    let base = cluster.lb_url("");
    let http = reqwest::Client::new();
    let counts = Counts::default();
    let mut images = Vec::new();
    for i in 0..5 {
        let layer: Vec<u8> = (0..(200_000 + i * 1000)).map(|j| (j % 251) as u8).collect();
        images.push(
            client::push(
                &http,
                &base,
                "rolling/app",
                &format!("v{i}"),
                &layer,
                1 << 20,
                &counts,
            )
            .await
            .unwrap(),
        );
    }
    let images = Arc::new(images);

    let stop = Arc::new(AtomicBool::new(false));
    let (pulls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut pullers = Vec::new();
    for p in 0..4 {
        let (http, base, images, stop, pulls, failures) = (
            http.clone(),
            base.clone(),
            images.clone(),
            stop.clone(),
            pulls.clone(),
            failures.clone(),
        );
        pullers.push(tokio::spawn(async move {
            let mut i = p;
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let image = &images[i % images.len()];
                i += 1;
                // One try each: a failure is a failure.
                let ok = async {
                    let r = http
                        .get(format!("{base}/v2/{}/manifests/{}", image.repo, image.tag))
                        .header("accept", OCI_MANIFEST)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if r.status() != reqwest::StatusCode::OK {
                        return Err(format!("manifest: {}", r.status()));
                    }
                    for blob in &image.blobs {
                        let r = http
                            .get(format!("{base}/v2/{}/blobs/{blob}", image.repo))
                            .send()
                            .await
                            .map_err(|e| e.to_string())?;
                        if r.status() != reqwest::StatusCode::OK {
                            return Err(format!("blob: {}", r.status()));
                        }
                        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
                        if sha256(&bytes) != *blob {
                            return Err("wrong bytes".into());
                        }
                    }
                    Ok::<_, String>(())
                }
                .await;
                pulls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                    errors.push(e);
                }
            }
            errors
        }));
    }

    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        for i in 0..cluster.replicas.len() {
            std::thread::sleep(std::time::Duration::from_secs(1));
            cluster.replicas[i].stop();
            cluster.replicas[i].start();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        cluster
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for p in pullers {
        errors.extend(p.await.unwrap());
    }
    eprintln!(
        "replicas: rolling restart of 3 under 4 pulling clients: pulls {}, failed {}",
        pulls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed)
    );
    assert!(
        errors.is_empty(),
        "failed pulls: {errors:?}\n{}",
        cluster.logs()
    );
    assert!(pulls.load(Ordering::Relaxed) > 50);
}
