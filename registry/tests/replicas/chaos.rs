//! kill -9 of a replica every few seconds while 200 clients push (chunked)
//! and pull through the load balancer, and every replica runs gc on its
//! schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::client::{self, Counts, Pushed};
use super::cluster::Cluster;

const CLIENTS: usize = 200;
const LOAD: Duration = Duration::from_secs(30);
const KILL_EVERY: Duration = Duration::from_secs(4);
/// gc every 2 s on every replica, keeping anything younger than this.
const GRACE_SECONDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_push() {
    let cluster = Cluster::start(
        3,
        &[
            "--gc-interval-seconds",
            "2",
            "--gc-grace-seconds",
            &GRACE_SECONDS.to_string(),
            "--max-connections-per-client",
            "0",
        ],
    );
    let base = cluster.lb_url("");
    let http = reqwest::Client::new();
    let counts = Arc::new(Counts::default());

    // Garbage for gc: images whose manifests are deleted; their blobs are
    // collectable once the grace period has passed, during the load.
    let mut garbage = Vec::new();
    for i in 0..20 {
        let layer = format!("garbage layer {i}").into_bytes();
        let pushed = client::push(
            &http,
            &base,
            "chaos/garbage",
            &format!("g{i}"),
            &layer,
            1 << 20,
            &counts,
        )
        .await
        .unwrap();
        let r = http
            .delete(format!(
                "{base}/v2/chaos/garbage/manifests/{}",
                pushed.manifest
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
        garbage.push(pushed);
    }

    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let killer = {
        let (cluster, done, kills) = (cluster.clone(), done.clone(), kills.clone());
        tokio::task::spawn_blocking(move || {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(KILL_EVERY);
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let mut c = cluster.lock().unwrap();
                let n = c.replicas.len();
                let replica = &mut c.replicas[i % n];
                replica.kill9();
                kills.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(super::SETTLE);
                replica.start();
                i += 1;
            }
        })
    };

    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (http, base, counts) = (http.clone(), base.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = XorShift(w as u64 * 2654435761 + 1);
            let mut acknowledged: Vec<Pushed> = Vec::new();
            let mut pulled = 0u64;
            let mut n = 0;
            while started.elapsed() < LOAD {
                n += 1;
                let size = 64 * 1024 + rng.below(448 * 1024);
                let layer: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
                let repo = format!("chaos/w{w}");
                let Ok(pushed) = client::push(
                    &http,
                    &base,
                    &repo,
                    &format!("t{n}"),
                    &layer,
                    96 * 1024,
                    &counts,
                )
                .await
                else {
                    continue;
                };
                acknowledged.push(pushed);
                // Pull one of this client's images back.
                let which = rng.below(acknowledged.len());
                if client::pull(&http, &base, &acknowledged[which], &counts)
                    .await
                    .is_ok()
                {
                    pulled += 1;
                }
            }
            (acknowledged, pulled)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut pulls = 0;
    for w in workers {
        let (pushed, pulled) = w.await.unwrap();
        acknowledged.extend(pushed);
        pulls += pulled;
    }
    done.store(true, Ordering::Relaxed);
    killer.await.unwrap();

    // Afterwards, with every replica up: every acknowledged push is there.
    let verify = Counts::default();
    let mut lost = Vec::new();
    for p in &acknowledged {
        if let Err(e) = client::pull(&http, &base, p, &verify).await {
            lost.push(format!("{}:{}: {e}", p.repo, p.tag));
        }
    }
    let retried = counts.retried.load(Ordering::Relaxed);
    let fatal = counts.fatal.lock().unwrap().clone();
    let cluster = match Arc::try_unwrap(cluster) {
        Ok(cluster) => cluster.into_inner().unwrap(),
        Err(_) => panic!("the killer still holds the cluster"),
    };

    // gc: ran on the replicas' schedules, one at a time, and did its work.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = cluster.sql(
        "SELECT started_at, finished_at, deleted_blobs FROM maintenance_runs WHERE kind = 'gc' AND ok ORDER BY started_at",
    );
    let runs: Vec<(i64, i64, i64)> = runs
        .lines()
        .map(|l| {
            let f: Vec<i64> = l.split('|').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[2])
        })
        .collect();
    let skipped: usize = cluster
        .replicas
        .iter()
        .map(|r| r.log().matches("another gc is running; skipped").count())
        .sum();
    let collected: i64 = runs.iter().map(|r| r.2).sum();
    eprintln!(
        "replicas: chaos: {} clients for {} s through HAProxy, {} kill -9; acknowledged pushes {}, lost {}, \
         pulls {}, retried requests {}, non-retryable failures {}; gc runs {} (one at a time), skipped {}, blobs collected {}",
        CLIENTS,
        LOAD.as_secs(),
        kills.load(Ordering::Relaxed),
        acknowledged.len(),
        lost.len(),
        pulls,
        retried,
        fatal.len(),
        runs.len(),
        skipped,
        collected
    );
    assert!(
        lost.is_empty(),
        "acknowledged pushes lost: {lost:?}\n{}",
        cluster.logs()
    );
    assert!(
        fatal.is_empty(),
        "non-retryable failures: {fatal:?}\n{}",
        cluster.logs()
    );
    assert!(acknowledged.len() >= CLIENTS, "too little load got through");
    assert!(kills.load(Ordering::Relaxed) >= 3);
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two gc runs overlapped: {pair:?}");
    }
    // Each garbage image had its own config and layer.
    assert!(
        collected >= 2 * garbage.len() as i64,
        "gc collected {collected} blobs, expected the {} of the deleted images",
        2 * garbage.len()
    );
    for g in &garbage {
        let r = http
            .head(format!("{base}/v2/chaos/garbage/blobs/{}", g.blobs[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    }
}

/// Content and choices, different per client, without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
