//! The suite every metadata backend passes: each test below runs against
//! SQLite (in memory) and against PostgreSQL (a fresh database per test),
//! and the PostgreSQL store has its own tests of two processes sharing a
//! database (`two_processes`).
//!
//! PostgreSQL comes from `BERTH_TEST_DATABASE_URL`, an admin URL (e.g.
//! `postgres://berth@127.0.0.1:PORT/postgres`) that may create databases:
//! `eval "$(tests/backends/up.sh)"` from the repository root starts a server
//! and prints it. Without it the PostgreSQL tests fail, saying so.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use sqlx::Connection;

use super::*;
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::manifest::Descriptor;
use crate::settings::Quota;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

// ---------------------------------------------------------------- helpers

fn digest(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

/// Publishes `data` as a blob of `repo` (claim, then link).
async fn push_blob(meta: &dyn MetaStore, repo: &str, data: &[u8]) -> Descriptor {
    let d = digest(data);
    let size = data.len() as u64;
    assert_eq!(
        meta.claim_blob(repo, &d, size, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    meta.link_blob(repo, &d, size, &[], None).await.unwrap();
    Descriptor { digest: d, size }
}

/// A manifest to put: `content` and nothing else (fill in the rest).
fn manifest<'a>(digest: &'a Digest, content: &'a [u8]) -> NewManifest<'a> {
    NewManifest {
        digest,
        media_type: OCI_MANIFEST,
        artifact_type: None,
        subject: None,
        annotations: None,
        content,
        blobs: &[],
        manifests: &[],
        tags: &[],
        quotas: &[],
        immutable_tags: &[],
        check_children: true,
    }
}

/// Puts a manifest whose content is `name` made unique, with `blobs` and
/// `tags`; returns its descriptor.
async fn put(
    meta: &dyn MetaStore,
    repo: &str,
    name: &str,
    blobs: &[Descriptor],
    tags: &[&str],
) -> Descriptor {
    let content = format!("{{\"name\":\"{name}\"}}").into_bytes();
    let d = digest(&content);
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    meta.put_manifest(
        repo,
        NewManifest {
            blobs,
            tags: &tags,
            ..manifest(&d, &content)
        },
    )
    .await
    .unwrap();
    Descriptor {
        digest: d,
        size: content.len() as u64,
    }
}

async fn tag_target(meta: &dyn MetaStore, repo: &str, tag: &str) -> Option<String> {
    meta.manifest(repo, Reference::Tag(tag))
        .await
        .unwrap()
        .map(|m| m.digest)
}

async fn has_manifest(meta: &dyn MetaStore, repo: &str, d: &Descriptor) -> bool {
    meta.manifest(repo, Reference::Digest(&d.digest))
        .await
        .unwrap()
        .is_some()
}

/// Rules whose cutoffs are now, between two short sleeps.
async fn tick() -> SweepRules {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    SweepRules {
        cutoff_ms: t,
        delete_untagged: true,
        sweep_links: true,
        claim_cutoff_ms: t,
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    // str's order is bytewise: the spec's lexical order.
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- the suite

/// Repository names sort bytewise (not by a locale: the test databases use
/// ICU's en-US collation by default, which orders these differently), in
/// one page or many.
async fn repositories_and_catalog(meta: &dyn MetaStore) {
    meta.ping().await.unwrap();
    assert!(meta.list_repositories(None, None).await.unwrap().is_empty());
    let names = [
        "b", "a/b", "a-b", "a.b", "a_b", "ab", "a0", "Z", "a", "zz/é", "zz/e",
    ];
    let d = push_blob(meta, names[0], b"shared").await;
    for n in &names[1..] {
        assert!(meta.mount_blob(n, &d.digest, &[]).await.unwrap());
    }
    let all = sorted(&names);
    assert_eq!(meta.list_repositories(None, None).await.unwrap(), all);
    let mut paged = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = meta
            .list_repositories(last.as_deref(), Some(3))
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(end) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        last = Some(end);
    }
    assert_eq!(paged, all);
    let after = all.iter().position(|n| n == "a/b").unwrap() + 1;
    assert_eq!(
        meta.list_repositories(Some("a/b"), Some(2)).await.unwrap(),
        all[after..after + 2]
    );
    // `last` need not be a repository.
    assert_eq!(
        meta.list_repositories(Some("a/"), None).await.unwrap(),
        all.iter()
            .filter(|n| n.as_str() > "a/")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(
        meta.list_repositories(None, Some(0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        meta.blob_repositories(&d.digest, 4).await.unwrap(),
        all[..4]
    );
}

/// Claims, links, mounts and unlinks.
async fn blobs_claims_and_links(meta: &dyn MetaStore) {
    let data = b"blob bytes";
    let d = digest(data);
    let size = data.len() as u64;
    assert_eq!(meta.blob(&d).await.unwrap(), None);
    assert_eq!(meta.repository_blob("r", &d).await.unwrap(), None);
    assert!(meta.blob_repositories(&d, 10).await.unwrap().is_empty());

    // A released claim: a late link is refused and records nothing.
    assert_eq!(
        meta.claim_blob("r", &d, size, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    meta.release_claim(&d).await.unwrap();
    assert!(matches!(
        meta.link_blob("r", &d, size, &[], None).await,
        Err(MetaError::ClaimLost(_))
    ));
    assert_eq!(meta.blob(&d).await.unwrap(), None);
    assert!(meta.list_repositories(None, None).await.unwrap().is_empty());

    // Claim and link: the repository is created and serves the blob.
    assert_eq!(
        meta.claim_blob("r", &d, size, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    meta.link_blob("r", &d, size, &[], None).await.unwrap();
    assert_eq!(meta.blob(&d).await.unwrap(), Some(size));
    assert_eq!(meta.repository_blob("r", &d).await.unwrap(), Some(size));
    assert_eq!(meta.repository_blob("s", &d).await.unwrap(), None);
    assert_eq!(meta.list_repositories(None, None).await.unwrap(), ["r"]);

    // A verified re-upload of a stored blob links without publishing.
    assert_eq!(
        meta.claim_blob("s", &d, size, true, &[]).await.unwrap(),
        Claim::Linked(size)
    );
    assert_eq!(meta.repository_blob("s", &d).await.unwrap(), Some(size));
    // Unverified, it publishes; two publishers of one digest both succeed
    // (the second finds the blob row, not its claim).
    for _ in 0..2 {
        assert_eq!(
            meta.claim_blob("t", &d, size, false, &[]).await.unwrap(),
            Claim::Claimed
        );
    }
    meta.link_blob("t", &d, size, &[], None).await.unwrap();
    meta.link_blob("t", &d, size, &[], None).await.unwrap();
    assert_eq!(
        meta.blob_repositories(&d, 10).await.unwrap(),
        ["r", "s", "t"]
    );
    assert_eq!(meta.blob_repositories(&d, 2).await.unwrap(), ["r", "s"]);

    // Mounts: known blobs only; a failed mount creates no repository.
    assert!(meta.mount_blob("m", &d, &[]).await.unwrap());
    assert!(meta.mount_blob("m", &d, &[]).await.unwrap());
    assert_eq!(meta.repository_blob("m", &d).await.unwrap(), Some(size));
    let unknown = digest(b"never pushed");
    assert!(!meta.mount_blob("n", &unknown, &[]).await.unwrap());
    assert!(
        !meta
            .list_repositories(None, None)
            .await
            .unwrap()
            .contains(&"n".to_string())
    );

    // Unlinks.
    assert!(meta.unlink_blob("m", &d).await.unwrap());
    assert!(!meta.unlink_blob("m", &d).await.unwrap());
    assert!(!meta.unlink_blob("nowhere", &d).await.unwrap());
    assert_eq!(meta.repository_blob("m", &d).await.unwrap(), None);
    assert_eq!(meta.blob(&d).await.unwrap(), Some(size), "still stored");
    assert!(
        !meta
            .break_stale_tombstone(&d, now_ms() + 1000)
            .await
            .unwrap()
    );
}

/// Quotas are checked where bytes are added: claims, links, mounts,
/// manifests; what a repository already holds adds nothing.
async fn quotas(meta: &dyn MetaStore) {
    let q = [Quota {
        pattern: "team/*".into(),
        limit_bytes: 10,
    }];
    let six = b"sixsix";
    let a = digest(six);
    assert_eq!(
        meta.claim_blob("team/a", &a, 6, false, &q).await.unwrap(),
        Claim::Claimed
    );
    meta.link_blob("team/a", &a, 6, &q, None).await.unwrap();

    // Another 6 bytes would make 12.
    let b = digest(b"other6");
    match meta.claim_blob("team/b", &b, 6, false, &q).await {
        Err(MetaError::QuotaExceeded {
            pattern,
            limit,
            usage,
            adding,
        }) => assert_eq!(
            (pattern.as_str(), limit, usage, adding),
            ("team/*", 10, 6, 6)
        ),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // A blob the repository holds adds nothing.
    assert_eq!(
        meta.claim_blob("team/a", &a, 6, false, &q).await.unwrap(),
        Claim::Claimed
    );
    meta.link_blob("team/a", &a, 6, &q, None).await.unwrap();
    // `_` is literal in a pattern, not LIKE's wildcard.
    let literal = [Quota {
        pattern: "tea_/*".into(),
        limit_bytes: 1,
    }];
    assert_eq!(
        meta.claim_blob("tea_/x", &b, 1, false, &literal)
            .await
            .unwrap(),
        Claim::Claimed
    );
    meta.release_claim(&b).await.unwrap();

    // Refused at link time: the bytes are recorded (for gc), not linked.
    assert_eq!(
        meta.claim_blob("team/b", &b, 6, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        meta.link_blob("team/b", &b, 6, &q, Some("no-such-upload"))
            .await,
        Err(MetaError::QuotaExceeded { .. })
    ));
    assert_eq!(meta.blob(&b).await.unwrap(), Some(6));
    assert_eq!(meta.repository_blob("team/b", &b).await.unwrap(), None);

    // Mounts and verified re-uploads count too.
    assert!(matches!(
        meta.mount_blob("team/c", &b, &q).await,
        Err(MetaError::QuotaExceeded { .. })
    ));
    assert!(matches!(
        meta.claim_blob("team/c", &b, 6, true, &q).await,
        Err(MetaError::QuotaExceeded { .. })
    ));
    assert_eq!(meta.repository_blob("team/c", &b).await.unwrap(), None);
    // Outside the pattern, the quota's usage is not this repository's.
    assert!(meta.mount_blob("other/c", &b, &[]).await.unwrap());

    // Manifests count by their content's length: 6 + 5 > 10, 6 + 4 fits.
    let five = b"12345";
    let d5 = digest(five);
    assert!(matches!(
        meta.put_manifest(
            "team/a",
            NewManifest {
                quotas: &q,
                ..manifest(&d5, five)
            }
        )
        .await,
        Err(MetaError::QuotaExceeded { adding: 5, .. })
    ));
    let four = b"1234";
    let d4 = digest(four);
    meta.put_manifest(
        "team/a",
        NewManifest {
            quotas: &q,
            ..manifest(&d4, four)
        },
    )
    .await
    .unwrap();
    // Full now; putting the same manifest again adds nothing.
    meta.put_manifest(
        "team/a",
        NewManifest {
            quotas: &q,
            ..manifest(&d4, four)
        },
    )
    .await
    .unwrap();
    let usage = meta.usage().await.unwrap();
    let team_a = usage.iter().find(|u| u.name == "team/a").unwrap();
    assert_eq!(team_a.bytes, 10);
}

/// The publish protocol against gc's blob sweep, step by step (as in
/// `maintenance::gc`'s tests).
async fn publishers_and_gc_exclude_each_other(meta: &dyn MetaStore) {
    let blobs = crate::storage::ObjectBlobs::memory();
    let d = digest(b"bytes");
    let claim = meta.claim_blob("r", &d, 5, true, &[]).await.unwrap();
    assert_eq!(claim, Claim::Claimed);
    crate::storage::BlobStore::put_verified(&blobs, &d, bytes::Bytes::from_static(b"bytes"))
        .await
        .unwrap();
    meta.link_blob("r", &d, 5, &[], None).await.unwrap();
    assert!(meta.unlink_blob("r", &d).await.unwrap());

    // An upload claims the digest after the cutoff: gc leaves it alone.
    let cutoff = tick().await;
    let claim = meta.claim_blob("r", &d, 5, false, &[]).await.unwrap();
    assert_eq!(claim, Claim::Claimed);
    assert!(
        meta.tombstone_unlinked_blobs(cutoff, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Linking ends the claim; linked blobs are not garbage either.
    meta.link_blob("r", &d, 5, &[], None).await.unwrap();
    let cutoff = tick().await;
    assert!(
        meta.tombstone_unlinked_blobs(cutoff, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A verified re-upload of a stored blob links without writing.
    assert_eq!(
        meta.claim_blob("s", &d, 5, true, &[]).await.unwrap(),
        Claim::Linked(5)
    );

    // Unlinked everywhere and old: gc tombstones it; publishers wait.
    assert!(meta.unlink_blob("r", &d).await.unwrap());
    assert!(meta.unlink_blob("s", &d).await.unwrap());
    let cutoff = tick().await;
    let doomed = meta.tombstone_unlinked_blobs(cutoff, 10).await.unwrap();
    assert_eq!(
        doomed,
        [DoomedBlob {
            digest: d.to_string(),
            size: 5
        }]
    );
    assert_eq!(meta.blob(&d).await.unwrap(), None);
    assert_eq!(
        meta.claim_blob("r", &d, 5, true, &[]).await.unwrap(),
        Claim::Busy
    );
    assert_eq!(
        meta.claim_blob("r", &d, 5, false, &[]).await.unwrap(),
        Claim::Busy
    );
    assert!(!meta.mount_blob("r", &d, &[]).await.unwrap());
    // A fresh tombstone is not stale; once cleared, publishing resumes.
    assert!(
        !meta
            .break_stale_tombstone(&d, cutoff.cutoff_ms)
            .await
            .unwrap()
    );
    meta.clear_tombstones(&[d.to_string()]).await.unwrap();
    assert_eq!(
        meta.claim_blob("r", &d, 5, true, &[]).await.unwrap(),
        Claim::Claimed
    );
    meta.release_claim(&d).await.unwrap();

    // A stale tombstone (its gc died) is broken by a publisher.
    let cutoff = tick().await;
    let other = push_blob(meta, "r", b"other").await;
    assert!(meta.unlink_blob("r", &other.digest).await.unwrap());
    let cutoff2 = tick().await;
    assert_eq!(
        meta.tombstone_unlinked_blobs(cutoff2, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        !meta
            .break_stale_tombstone(&other.digest, cutoff.cutoff_ms)
            .await
            .unwrap()
    );
    assert!(
        meta.break_stale_tombstone(&other.digest, now_ms() + 1000)
            .await
            .unwrap()
    );
    assert_eq!(
        meta.claim_blob("r", &other.digest, 5, false, &[])
            .await
            .unwrap(),
        Claim::Claimed
    );
}

/// A claim whose publisher died (older than the claim cutoff, no blob row)
/// is collected; the publisher, if it was only slow, is told.
async fn dead_claims_are_collected(meta: &dyn MetaStore) {
    use crate::maintenance::gc::{GcOptions, run};
    let blobs = crate::storage::ObjectBlobs::memory();
    let d = digest(b"half published");
    assert_eq!(
        meta.claim_blob("r", &d, 14, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    crate::storage::BlobStore::put_verified(
        &blobs,
        &d,
        bytes::Bytes::from_static(b"half published"),
    )
    .await
    .unwrap();
    // Younger than CLAIM_TTL: even a zero grace period keeps it.
    let opts = GcOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    let report = run(meta, &blobs, &opts).await.unwrap();
    assert!(!report.skipped);
    assert_eq!(report.blobs, 0);
    // Declared dead: tombstoned (size unknown: 0), and a late link is refused.
    let doomed = meta
        .tombstone_unlinked_blobs(tick().await, 10)
        .await
        .unwrap();
    assert_eq!(
        doomed,
        [DoomedBlob {
            digest: d.to_string(),
            size: 0
        }]
    );
    assert!(matches!(
        meta.link_blob("r", &d, 14, &[], None).await,
        Err(MetaError::ClaimLost(_))
    ));
    assert_eq!(meta.stats().await.unwrap().maintenance[0].runs, 1);
}

/// Manifests: lookups, references checked in the write, sizes, indexes.
async fn manifests_and_references(meta: &dyn MetaStore) {
    let config = push_blob(meta, "r", b"config").await;
    let layer = push_blob(meta, "r", b"layer!").await;
    let elsewhere = push_blob(meta, "other", b"elsewhere").await;
    let content = br#"{"schemaVersion":2}"#;
    let d = digest(content);
    let blobs = [config.clone(), layer.clone()];
    let tags = ["v1".to_string()];
    meta.put_manifest(
        "r",
        NewManifest {
            blobs: &blobs,
            tags: &tags,
            annotations: Some(r#"{"k":"v"}"#.into()),
            ..manifest(&d, content)
        },
    )
    .await
    .unwrap();
    for reference in [Reference::Tag("v1"), Reference::Digest(&d)] {
        let got = meta.manifest("r", reference).await.unwrap().unwrap();
        assert_eq!(got.digest, d.to_string());
        assert_eq!(got.media_type, OCI_MANIFEST);
        assert_eq!(&got.content[..], content);
    }
    assert!(
        meta.manifest("other", Reference::Digest(&d))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        meta.manifest("r", Reference::Tag("v2"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        meta.manifest("nowhere", Reference::Tag("v1"))
            .await
            .unwrap()
            .is_none()
    );

    // Every failure below changes nothing.
    let bad_content = br#"{"bad":true}"#;
    let bad = digest(bad_content);
    let bad_tags = ["v1".to_string(), "bad".to_string()];
    let missing = Descriptor {
        digest: digest(b"missing"),
        size: 7,
    };
    let wrong_size = Descriptor {
        digest: layer.digest.clone(),
        size: 7,
    };
    let cases: [(&[Descriptor], &[Descriptor]); 4] = [
        (std::slice::from_ref(&missing), &[]),
        // Linked into another repository only.
        (std::slice::from_ref(&elsewhere), &[]),
        (std::slice::from_ref(&wrong_size), &[]),
        (&[], std::slice::from_ref(&missing)),
    ];
    for (i, (blobs, manifests)) in cases.into_iter().enumerate() {
        let result = meta
            .put_manifest(
                "r",
                NewManifest {
                    blobs,
                    manifests,
                    tags: &bad_tags,
                    ..manifest(&bad, bad_content)
                },
            )
            .await;
        match (i, result) {
            (0, Err(MetaError::BlobUnknown(x))) => assert_eq!(x, missing.digest.to_string()),
            (1, Err(MetaError::BlobUnknown(x))) => assert_eq!(x, elsewhere.digest.to_string()),
            (2, Err(MetaError::SizeMismatch(e))) => {
                assert_eq!((e.declared, e.stored), (7, 6));
                assert_eq!(e.digest, layer.digest);
            }
            (3, Err(MetaError::ManifestUnknown(x))) => {
                assert_eq!(x, missing.digest.to_string())
            }
            (i, other) => panic!("case {i}: unexpected {other:?}"),
        }
    }
    assert!(
        meta.manifest("r", Reference::Digest(&bad))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(tag_target(meta, "r", "v1").await, Some(d.to_string()));
    assert_eq!(
        meta.list_tags("r", None, None).await.unwrap().unwrap(),
        ["v1"]
    );

    // An index: children are manifests of the repository, sizes checked.
    let index_content = br#"{"manifests":[1]}"#;
    let index = digest(index_content);
    let child = Descriptor {
        digest: d.clone(),
        size: content.len() as u64,
    };
    let wrong_child = Descriptor {
        size: child.size + 1,
        ..child.clone()
    };
    let index_tags = ["multi".to_string()];
    assert!(matches!(
        meta.put_manifest(
            "r",
            NewManifest {
                media_type: OCI_INDEX,
                manifests: std::slice::from_ref(&wrong_child),
                tags: &index_tags,
                ..manifest(&index, index_content)
            }
        )
        .await,
        Err(MetaError::SizeMismatch(_))
    ));
    meta.put_manifest(
        "r",
        NewManifest {
            media_type: OCI_INDEX,
            manifests: std::slice::from_ref(&child),
            tags: &index_tags,
            ..manifest(&index, index_content)
        },
    )
    .await
    .unwrap();
    let got = meta
        .manifest("r", Reference::Tag("multi"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.media_type, OCI_INDEX);

    // Putting again is idempotent; a tag moves to the new manifest.
    let moved = ["v1".to_string()];
    meta.put_manifest(
        "r",
        NewManifest {
            media_type: OCI_INDEX,
            manifests: std::slice::from_ref(&child),
            tags: &moved,
            ..manifest(&index, index_content)
        },
    )
    .await
    .unwrap();
    assert_eq!(tag_target(meta, "r", "v1").await, Some(index.to_string()));

    // Deleting a manifest deletes its tags; deleting twice is false.
    assert!(meta.delete_manifest("r", &index, &[]).await.unwrap());
    assert!(!meta.delete_manifest("r", &index, &[]).await.unwrap());
    assert!(!meta.delete_manifest("nowhere", &index, &[]).await.unwrap());
    assert_eq!(tag_target(meta, "r", "v1").await, None);
    assert!(
        meta.list_tags("r", None, None)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    assert!(has_manifest(meta, "r", &child).await);
    assert!(!MetaError::BlobUnknown("x".into()).is_unavailable());
}

/// Tags matching an immutable pattern are created once and never moved or
/// deleted (with their manifest).
async fn immutable_tags(meta: &dyn MetaStore) {
    let immutable = ["v1.*".to_string()];
    let (a_content, b_content) = (b"{\"a\":1}", b"{\"b\":1}");
    let (a, b) = (digest(a_content), digest(b_content));
    let release = ["v1.0".to_string()];
    let latest = ["latest".to_string()];
    let put = |d, content, tags| put_with(meta, d, content, tags, &immutable);
    put(&a, a_content, &release).await.unwrap();
    put(&a, a_content, &release).await.unwrap(); // same target: fine
    match put(&b, b_content, &release).await {
        Err(MetaError::TagImmutable { tag, pattern }) => {
            assert_eq!((tag.as_str(), pattern.as_str()), ("v1.0", "v1.*"))
        }
        other => panic!("expected TagImmutable, got {other:?}"),
    }
    assert!(
        meta.manifest("r", Reference::Digest(&b))
            .await
            .unwrap()
            .is_none(),
        "a refused put stores nothing"
    );
    put(&b, b_content, &latest).await.unwrap();
    put(&a, a_content, &latest).await.unwrap(); // mutable tags move
    assert_eq!(tag_target(meta, "r", "latest").await, Some(a.to_string()));
    assert!(matches!(
        meta.delete_manifest("r", &a, &immutable).await,
        Err(MetaError::TagImmutable { .. })
    ));
    assert_eq!(tag_target(meta, "r", "v1.0").await, Some(a.to_string()));
    assert!(meta.delete_manifest("r", &b, &immutable).await.unwrap());
    assert!(meta.delete_manifest("r", &a, &[]).await.unwrap());
}

async fn put_with(
    meta: &dyn MetaStore,
    d: &Digest,
    content: &[u8],
    tags: &[String],
    immutable_tags: &[String],
) -> Result<()> {
    meta.put_manifest(
        "r",
        NewManifest {
            tags,
            immutable_tags,
            ..manifest(d, content)
        },
    )
    .await
}

/// Referrers: by subject, in push order, filtered by artifact type.
async fn referrers(meta: &dyn MetaStore) {
    let subject = put(meta, "r", "subject", &[], &["t"]).await;
    let mut pushed = Vec::new();
    for (i, artifact_type) in [
        Some("application/vnd.example.sbom"),
        Some("application/vnd.example.sig"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let content = format!("{{\"referrer\":{i}}}").into_bytes();
        let d = digest(&content);
        let annotations = format!("{{\"i\":\"{i}\"}}");
        meta.put_manifest(
            "r",
            NewManifest {
                artifact_type,
                subject: Some(&subject.digest),
                annotations: Some(annotations.clone()),
                ..manifest(&d, &content)
            },
        )
        .await
        .unwrap();
        pushed.push((
            d.to_string(),
            content.len() as u64,
            artifact_type,
            annotations,
        ));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Not a referrer: no subject.
    put(meta, "r", "unrelated", &[], &[]).await;

    let all = meta.referrers("r", &subject.digest, None).await.unwrap();
    assert_eq!(all.len(), 3);
    for (got, (d, size, artifact_type, annotations)) in all.iter().zip(&pushed) {
        assert_eq!(&got.digest, d);
        assert_eq!(got.size, *size);
        assert_eq!(got.media_type, OCI_MANIFEST);
        assert_eq!(got.artifact_type.as_deref(), *artifact_type);
        assert_eq!(got.annotations.as_deref(), Some(annotations.as_str()));
    }
    let sigs = meta
        .referrers("r", &subject.digest, Some("application/vnd.example.sig"))
        .await
        .unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].digest, pushed[1].0);
    assert!(
        meta.referrers("r", &subject.digest, Some("application/x-none"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        meta.referrers("other", &subject.digest, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        meta.referrers("r", &digest(b"no such subject"), None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Tags: bytewise order, paging, deletion, history.
async fn tags(meta: &dyn MetaStore) {
    assert_eq!(meta.list_tags("r", None, None).await.unwrap(), None);
    assert_eq!(meta.tag_history("r").await.unwrap(), None);
    let names = [
        "b", "a", "Z", "a-b", "a.b", "a_b", "ab", "latest", "v1.0", "v1.10", "v1.9", "V2",
    ];
    let first = put(meta, "r", "first", &[], &names).await;
    let all = sorted(&names);
    assert_eq!(meta.list_tags("r", None, None).await.unwrap().unwrap(), all);
    let mut paged = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = meta
            .list_tags("r", last.as_deref(), Some(5))
            .await
            .unwrap()
            .unwrap();
        assert!(page.len() <= 5);
        let Some(end) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        last = Some(end);
    }
    assert_eq!(paged, all);
    assert_eq!(
        meta.list_tags("r", Some("a-b"), Some(2))
            .await
            .unwrap()
            .unwrap(),
        ["a.b", "a_b"]
    );
    assert!(
        meta.list_tags("r", None, Some(0))
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );

    assert!(meta.delete_tag("r", "a").await.unwrap());
    assert!(!meta.delete_tag("r", "a").await.unwrap());
    assert!(!meta.delete_tag("nowhere", "a").await.unwrap());
    assert_eq!(tag_target(meta, "r", "a").await, None);
    assert_eq!(
        tag_target(meta, "r", "b").await,
        Some(first.digest.to_string())
    );

    // History: newest first, then by name.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = put(meta, "r", "second", &[], &["w", "latest"]).await;
    let history = meta.tag_history("r").await.unwrap().unwrap();
    assert_eq!(history.len(), names.len() - 1 + 1);
    assert_eq!(history[0].name, "latest");
    assert_eq!(history[1].name, "w");
    assert_eq!(history[0].digest, second.digest.to_string());
    assert_eq!(history[0].updated_at, history[1].updated_at);
    assert!(history[2].updated_at < history[1].updated_at);
    let older: Vec<&str> = history[2..].iter().map(|t| t.name.as_str()).collect();
    let mut expected: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != "a" && *n != "latest")
        .collect();
    expected.sort();
    assert_eq!(older, expected);
    assert!(
        history[2..]
            .iter()
            .all(|t| t.digest == first.digest.to_string())
    );

    // A repository without tags lists none (it exists).
    push_blob(meta, "untagged", b"x").await;
    assert_eq!(
        meta.list_tags("untagged", None, None).await.unwrap(),
        Some(Vec::new())
    );
}

/// Upload sessions: the append's compare and swap, parts in order, the
/// hash state, expiry and the end of a session at link time.
async fn uploads(meta: &dyn MetaStore) {
    assert!(meta.upload("u1").await.unwrap().is_none());
    meta.create_upload("r", "u1").await.unwrap();
    let u = meta.upload("u1").await.unwrap().unwrap();
    assert_eq!(
        (u.id.as_str(), u.repository.as_str(), u.size),
        ("u1", "r", 0)
    );
    assert!(u.parts.is_empty());
    assert_eq!(u.hash_state, None);

    let part = |name, size, state: &[u8]| NewPart {
        name,
        size,
        hash_state: Some(state.to_vec()),
    };
    assert!(
        meta.append_upload_part("u1", 0, part("p0", 5, &[1, 2, 3]))
            .await
            .unwrap()
    );
    // Stale offsets lose.
    assert!(
        !meta
            .append_upload_part("u1", 0, part("p0-again", 5, &[9]))
            .await
            .unwrap()
    );
    assert!(
        !meta
            .append_upload_part("u1", 3, part("p-mid", 1, &[9]))
            .await
            .unwrap()
    );
    assert!(
        !meta
            .append_upload_part("nope", 0, part("p", 1, &[9]))
            .await
            .unwrap()
    );
    assert!(
        meta.append_upload_part("u1", 5, part("p1", 7, &[4, 5]))
            .await
            .unwrap()
    );
    let u = meta.upload("u1").await.unwrap().unwrap();
    assert_eq!(u.size, 12);
    assert_eq!(u.parts, ["p0", "p1"]);
    assert_eq!(u.hash_state, Some(vec![4, 5]));
    // Without a hash state.
    assert!(
        meta.append_upload_part(
            "u1",
            12,
            NewPart {
                name: "p2",
                size: 1,
                hash_state: None
            }
        )
        .await
        .unwrap()
    );
    let u = meta.upload("u1").await.unwrap().unwrap();
    assert_eq!((u.size, u.hash_state), (13, None));
    assert_eq!(u.parts, ["p0", "p1", "p2"]);

    let later = now_ms() + 60_000;
    assert_eq!(meta.stale_uploads(later).await.unwrap(), ["u1"]);
    assert!(meta.stale_uploads(0).await.unwrap().is_empty());
    assert_eq!(meta.stats().await.unwrap().uploads_in_progress, 1);

    // Linking the blob the session produced ends it.
    let data = b"thirteen byte";
    let d = digest(data);
    assert_eq!(
        meta.claim_blob("r", &d, 13, false, &[]).await.unwrap(),
        Claim::Claimed
    );
    meta.link_blob("r", &d, 13, &[], Some("u1")).await.unwrap();
    assert!(meta.upload("u1").await.unwrap().is_none());

    meta.create_upload("r", "u2").await.unwrap();
    meta.delete_upload("u2").await.unwrap();
    meta.delete_upload("u2").await.unwrap();
    assert!(meta.upload("u2").await.unwrap().is_none());
    assert!(meta.stale_uploads(later).await.unwrap().is_empty());
}

/// Retention deletes the listed tags that still point where they did, and
/// untagged manifests older than a cutoff; a dry run changes nothing.
async fn retention(meta: &dyn MetaStore) {
    assert_eq!(
        meta.apply_retention("nowhere", &[], Some(now_ms()), false)
            .await
            .unwrap(),
        (Vec::new(), Vec::new())
    );
    let old = put(meta, "r", "old", &[], &["old", "moved"]).await;
    let untagged = put(meta, "r", "untagged", &[], &[]).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let history = meta.tag_history("r").await.unwrap().unwrap();
    let listed = |name: &str| history.iter().find(|t| t.name == name).unwrap().clone();
    let (old_tag, moved_tag) = (listed("old"), listed("moved"));
    // `moved` is pushed again after being listed: it stays.
    let new = put(meta, "r", "new", &[], &["moved", "new"]).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let young = put(meta, "r", "young", &[], &[]).await;

    let selected = [old_tag.clone(), moved_tag];
    let (tags, manifests) = meta
        .apply_retention("r", &selected, Some(cutoff), true)
        .await
        .unwrap();
    assert_eq!(tags, std::slice::from_ref(&old_tag));
    let mut expected = vec![old.digest.to_string(), untagged.digest.to_string()];
    expected.sort();
    assert_eq!(manifests, expected);
    // Dry: nothing changed.
    assert_eq!(
        tag_target(meta, "r", "old").await,
        Some(old.digest.to_string())
    );
    assert!(has_manifest(meta, "r", &untagged).await);

    let (tags, manifests) = meta
        .apply_retention("r", &selected, Some(cutoff), false)
        .await
        .unwrap();
    assert_eq!(tags, [old_tag]);
    assert_eq!(manifests, expected);
    assert_eq!(tag_target(meta, "r", "old").await, None);
    assert_eq!(
        tag_target(meta, "r", "moved").await,
        Some(new.digest.to_string())
    );
    assert!(!has_manifest(meta, "r", &old).await);
    assert!(!has_manifest(meta, "r", &untagged).await);
    assert!(has_manifest(meta, "r", &young).await);
    assert!(has_manifest(meta, "r", &new).await);
    // Without a cutoff, only tags go.
    let new_tag = meta
        .tag_history("r")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "new")
        .unwrap();
    let (tags, manifests) = meta
        .apply_retention("r", std::slice::from_ref(&new_tag), None, false)
        .await
        .unwrap();
    assert_eq!((tags, manifests), (vec![new_tag], Vec::new()));
}

/// gc: the sweep of a repository (reachability through tags, indexes and
/// referrers; the grace period), links, empty repositories, tombstones in
/// batches, the dry-run plan, and the record of runs.
async fn gc_sweep_and_tombstones(meta: &dyn MetaStore) {
    let config = push_blob(meta, "g", b"config of tagged").await;
    let layer = push_blob(meta, "g", b"layer of untagged").await;
    let loose = push_blob(meta, "g", b"linked, unreferenced").await;
    let tagged = put(meta, "g", "tagged", std::slice::from_ref(&config), &["v1"]).await;
    let untagged = put(meta, "g", "untagged", std::slice::from_ref(&layer), &[]).await;
    // A referrer of a tagged manifest, and the child of a tagged index, are
    // reachable.
    let sig_content = b"{\"signature\":1}";
    let sig = digest(sig_content);
    meta.put_manifest(
        "g",
        NewManifest {
            subject: Some(&tagged.digest),
            ..manifest(&sig, sig_content)
        },
    )
    .await
    .unwrap();
    let child = put(meta, "g", "child", &[], &[]).await;
    let index_content = b"{\"index\":1}";
    let index = digest(index_content);
    let index_tags = ["multi".to_string()];
    meta.put_manifest(
        "g",
        NewManifest {
            media_type: OCI_INDEX,
            manifests: std::slice::from_ref(&child),
            tags: &index_tags,
            ..manifest(&index, index_content)
        },
    )
    .await
    .unwrap();
    // A repository left empty, and one with an upload in progress.
    let lonely = push_blob(meta, "empty", b"lonely").await;
    assert!(meta.unlink_blob("empty", &lonely.digest).await.unwrap());
    let busy = push_blob(meta, "busy", b"busy").await;
    assert!(meta.unlink_blob("busy", &busy.digest).await.unwrap());
    meta.create_upload("busy", "in-progress").await.unwrap();

    let rules = tick().await;
    // Pushed after the cutoff: young, kept.
    let young = put(meta, "g", "young", &[], &[]).await;

    let mut doomed_blobs = vec![
        layer.digest.to_string(),
        loose.digest.to_string(),
        lonely.digest.to_string(),
        busy.digest.to_string(),
    ];
    doomed_blobs.sort();

    // The plan computes everything and changes nothing.
    let plan = meta.plan_gc(rules).await.unwrap();
    let names: Vec<&str> = plan.repositories.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["busy", "empty", "g"]);
    let g = &plan.repositories[2].1;
    assert_eq!(g.manifests, [untagged.digest.to_string()]);
    assert_eq!(g.links, 2);
    assert!(!g.repository_removed);
    assert!(plan.repositories[1].1.repository_removed);
    assert!(!plan.repositories[0].1.repository_removed);
    let planned: Vec<&str> = plan.blobs.iter().map(|b| b.digest.as_str()).collect();
    assert_eq!(planned, doomed_blobs);
    assert!(has_manifest(meta, "g", &untagged).await);
    assert_eq!(
        meta.repository_blob("g", &layer.digest).await.unwrap(),
        Some(layer.size)
    );
    assert_eq!(meta.list_repositories(None, None).await.unwrap().len(), 3);
    assert!(
        meta.stale_tombstones(now_ms() + 1000)
            .await
            .unwrap()
            .is_empty()
    );

    // Without deleting untagged manifests, only unreferenced links go.
    let keep = SweepRules {
        delete_untagged: false,
        ..rules
    };
    let sweep = meta.sweep_repository("g", keep).await.unwrap();
    assert!(sweep.manifests.is_empty());
    assert_eq!(sweep.links, 1);
    assert!(has_manifest(meta, "g", &untagged).await);

    let sweep = meta.sweep_repository("g", rules).await.unwrap();
    assert_eq!(sweep.manifests, [untagged.digest.to_string()]);
    assert_eq!(sweep.links, 1);
    assert!(!sweep.repository_removed);
    assert!(!has_manifest(meta, "g", &untagged).await);
    for kept in [&tagged, &child, &young] {
        assert!(has_manifest(meta, "g", kept).await);
    }
    assert!(
        meta.manifest("g", Reference::Digest(&sig))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        meta.manifest("g", Reference::Digest(&index))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        meta.repository_blob("g", &config.digest).await.unwrap(),
        Some(config.size)
    );
    assert_eq!(
        meta.repository_blob("g", &layer.digest).await.unwrap(),
        None
    );
    let empty = meta.sweep_repository("empty", rules).await.unwrap();
    assert!(empty.repository_removed);
    let kept = meta.sweep_repository("busy", rules).await.unwrap();
    assert!(!kept.repository_removed, "an upload is in progress");
    assert_eq!(
        meta.list_repositories(None, None).await.unwrap(),
        ["busy", "g"]
    );
    let none = meta.sweep_repository("nowhere", rules).await.unwrap();
    assert!(none.manifests.is_empty() && none.links == 0 && !none.repository_removed);

    // Blobs no repository links, in batches, by digest.
    let first = meta.tombstone_unlinked_blobs(rules, 3).await.unwrap();
    let first: Vec<String> = first.into_iter().map(|b| b.digest).collect();
    assert_eq!(first, doomed_blobs[..3]);
    let rest = meta.tombstone_unlinked_blobs(rules, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].digest, doomed_blobs[3]);
    assert!(
        meta.tombstone_unlinked_blobs(rules, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(meta.blob(&layer.digest).await.unwrap(), None);
    let mut stale = meta.stale_tombstones(now_ms() + 1000).await.unwrap();
    stale.sort();
    assert_eq!(stale, doomed_blobs);
    assert!(meta.stale_tombstones(0).await.unwrap().is_empty());
    assert_eq!(
        meta.claim_blob("g", &layer.digest, layer.size, false, &[])
            .await
            .unwrap(),
        Claim::Busy
    );
    meta.clear_tombstones(&doomed_blobs[..2]).await.unwrap();
    assert_eq!(
        meta.stale_tombstones(now_ms() + 1000).await.unwrap().len(),
        2
    );
    meta.clear_tombstones(&doomed_blobs).await.unwrap();
    meta.clear_tombstones(&[]).await.unwrap();
    assert!(
        meta.stale_tombstones(now_ms() + 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        meta.claim_blob("g", &layer.digest, layer.size, false, &[])
            .await
            .unwrap(),
        Claim::Claimed
    );
    meta.release_claim(&layer.digest).await.unwrap();
}

/// Maintenance records and what metrics read.
async fn stats_usage_and_runs(meta: &dyn MetaStore) {
    let stats = meta.stats().await.unwrap();
    assert_eq!(
        stats,
        StoreStats {
            maintenance: ["gc", "retention"]
                .map(|kind| MaintenanceTotals {
                    kind: kind.into(),
                    ..Default::default()
                })
                .to_vec(),
            ..Default::default()
        }
    );
    assert!(meta.usage().await.unwrap().is_empty());

    let small = push_blob(meta, "a", b"abc").await;
    push_blob(meta, "a", b"defgh").await;
    let m = put(meta, "a", "m", std::slice::from_ref(&small), &["t1", "t2"]).await;
    assert!(meta.mount_blob("b", &small.digest, &[]).await.unwrap());
    meta.create_upload("a", "u").await.unwrap();

    let stats = meta.stats().await.unwrap();
    assert_eq!(
        (
            stats.repositories,
            stats.manifests,
            stats.tags,
            stats.blobs,
            stats.blob_bytes,
            stats.uploads_in_progress
        ),
        (2, 1, 2, 2, 8, 1)
    );
    assert_eq!(
        meta.usage().await.unwrap(),
        [
            RepoUsage {
                name: "a".into(),
                bytes: 8 + m.size,
                blobs: 2,
                manifests: 1,
                tags: 2,
            },
            RepoUsage {
                name: "b".into(),
                bytes: 3,
                blobs: 1,
                manifests: 0,
                tags: 0,
            },
        ]
    );

    let run = |started_ms, finished_ms, dry_run, ok, n| MaintenanceRun {
        kind: "gc",
        started_ms,
        finished_ms,
        dry_run,
        ok,
        deleted_blobs: n,
        deleted_manifests: n * 2,
        deleted_tags: 0,
        deleted_bytes: n * 100,
        detail: Some("{}".into()),
    };
    meta.record_run(&run(1_000, 3_000, false, true, 1))
        .await
        .unwrap();
    meta.record_run(&run(10_000, 10_500, false, false, 2))
        .await
        .unwrap();
    // Dry runs are not counted.
    meta.record_run(&run(20_000, 29_000, true, true, 50))
        .await
        .unwrap();
    meta.record_run(&MaintenanceRun {
        kind: "retention",
        started_ms: 5_000,
        finished_ms: 5_250,
        ok: true,
        deleted_tags: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let stats = meta.stats().await.unwrap();
    assert_eq!(
        stats.maintenance,
        [
            MaintenanceTotals {
                kind: "gc".into(),
                runs: 2,
                failed_runs: 1,
                deleted_blobs: 3,
                deleted_manifests: 6,
                deleted_tags: 0,
                deleted_bytes: 300,
                last_run_unix: 10.0,
                last_duration_seconds: 0.5,
            },
            MaintenanceTotals {
                kind: "retention".into(),
                runs: 1,
                failed_runs: 0,
                deleted_blobs: 0,
                deleted_manifests: 0,
                deleted_tags: 4,
                deleted_bytes: 0,
                last_run_unix: 5.0,
                last_duration_seconds: 0.25,
            },
        ]
    );
}

/// The manifest cache never serves what this process changed.
async fn manifest_cache_follows_changes(meta: &dyn MetaStore) {
    let a = put(meta, "r", "a", &[], &["latest"]).await;
    for _ in 0..3 {
        assert_eq!(
            tag_target(meta, "r", "latest").await,
            Some(a.digest.to_string())
        );
    }
    let b = put(meta, "r", "b", &[], &["latest"]).await;
    assert_eq!(
        tag_target(meta, "r", "latest").await,
        Some(b.digest.to_string())
    );
    assert!(meta.delete_tag("r", "latest").await.unwrap());
    assert_eq!(tag_target(meta, "r", "latest").await, None);
    put(meta, "r", "a", &[], &["latest"]).await;
    assert!(has_manifest(meta, "r", &a).await);
    assert!(meta.delete_manifest("r", &a.digest, &[]).await.unwrap());
    assert!(!has_manifest(meta, "r", &a).await);
    assert_eq!(tag_target(meta, "r", "latest").await, None);
    // gc's sweep of an untagged manifest.
    assert!(has_manifest(meta, "r", &b).await);
    let sweep = meta.sweep_repository("r", tick().await).await.unwrap();
    assert_eq!(sweep.manifests, [b.digest.to_string()]);
    assert!(!has_manifest(meta, "r", &b).await);
}

/// A closed store fails as "unavailable" (503, readiness), not as SQL.
async fn closed_store_is_unavailable(meta: &dyn MetaStore) {
    meta.ping().await.unwrap();
    meta.close().await;
    let e = meta.ping().await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let e = meta.list_repositories(None, None).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    assert!(!MetaError::Database(sqlx::Error::RowNotFound).is_unavailable());
    assert!(MetaError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
}

async fn login_failures(meta: &dyn MetaStore) {
    let window = 60_000;
    assert_eq!(meta.login_failures("1.2.3.4\nalice").await.unwrap(), None);
    for n in 1..=3 {
        meta.record_login_failure("1.2.3.4\nalice", 1_000 + n, window)
            .await
            .unwrap();
    }
    let f = meta
        .login_failures("1.2.3.4\nalice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.failures, f.window_start_ms), (3, 1_001));
    // Another key is its own count.
    meta.record_login_failure("1.2.3.4\nbob", 2_000, window)
        .await
        .unwrap();
    assert_eq!(
        meta.login_failures("1.2.3.4\nbob")
            .await
            .unwrap()
            .unwrap()
            .failures,
        1
    );
    // A failure after the window starts it again, and ended windows of
    // other keys are forgotten.
    meta.record_login_failure("1.2.3.4\nalice", 1_001 + window, window)
        .await
        .unwrap();
    let f = meta
        .login_failures("1.2.3.4\nalice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.failures, f.window_start_ms), (1, 1_001 + window));
    meta.record_login_failure("9.9.9.9\ncarol", 2_001 + window, window)
        .await
        .unwrap();
    assert_eq!(meta.login_failures("1.2.3.4\nbob").await.unwrap(), None);
    meta.clear_login_failures("1.2.3.4\nalice").await.unwrap();
    assert_eq!(meta.login_failures("1.2.3.4\nalice").await.unwrap(), None);
}

async fn mirror_records(meta: &dyn MetaStore) {
    // Tags checked upstream.
    assert_eq!(meta.tag_checked_at("up/a", "v1").await.unwrap(), None);
    meta.set_tag_checked("up/a", "v1", 1_000).await.unwrap();
    meta.set_tag_checked("up/a", "v1", 2_000).await.unwrap();
    assert_eq!(
        meta.tag_checked_at("up/a", "v1").await.unwrap(),
        Some(2_000)
    );
    assert_eq!(meta.tag_checked_at("up/a", "v2").await.unwrap(), None);

    // One fetch at a time; a dead holder's claim is taken over.
    assert!(meta.claim_fetch("b:x", "p1", 100, 0).await.unwrap());
    assert!(!meta.claim_fetch("b:x", "p2", 150, 50).await.unwrap());
    assert!(
        meta.claim_fetch("b:x", "p1", 160, 50).await.unwrap(),
        "its own claim, renewed"
    );
    meta.release_fetch("b:x", "p2").await.unwrap();
    assert!(
        !meta.claim_fetch("b:x", "p2", 170, 50).await.unwrap(),
        "released by a non-owner"
    );
    assert!(
        meta.claim_fetch("b:x", "p2", 500, 200).await.unwrap(),
        "stale: taken over"
    );
    meta.release_fetch("b:x", "p2").await.unwrap();
    assert!(meta.claim_fetch("b:x", "p3", 510, 0).await.unwrap());

    // Pulls, least recent first, under a prefix.
    meta.record_pull("up/a", "sha256:1", 30).await.unwrap();
    meta.record_pull("up/b", "sha256:2", 10).await.unwrap();
    meta.record_pull("other/c", "sha256:3", 5).await.unwrap();
    meta.record_pull("up/a", "sha256:4", 20).await.unwrap();
    meta.record_pull("up/a", "sha256:1", 40).await.unwrap();
    let lru = meta.least_recently_pulled("up/", 10).await.unwrap();
    let order: Vec<(&str, i64)> = lru
        .iter()
        .map(|p| (p.manifest.as_str(), p.pulled_at))
        .collect();
    assert_eq!(
        order,
        [("sha256:2", 10), ("sha256:4", 20), ("sha256:1", 40)]
    );
    assert_eq!(meta.least_recently_pulled("up/", 1).await.unwrap().len(), 1);
    meta.forget_pull("up/b", "sha256:2").await.unwrap();
    assert_eq!(
        meta.least_recently_pulled("up/", 10).await.unwrap().len(),
        2
    );

    // A mirrored manifest may name blobs not fetched yet; a push may not.
    let layer = Descriptor {
        digest: digest(b"not fetched yet"),
        size: 15,
    };
    let content = br#"{"mirrored":true}"#;
    let d = digest(content);
    let pushed = NewManifest {
        blobs: std::slice::from_ref(&layer),
        ..manifest(&d, content)
    };
    assert!(matches!(
        meta.put_manifest("up/m", pushed).await,
        Err(MetaError::BlobUnknown(_))
    ));
    let mirrored = NewManifest {
        blobs: std::slice::from_ref(&layer),
        check_children: false,
        ..manifest(&d, content)
    };
    meta.put_manifest("up/m", mirrored).await.unwrap();
    assert!(
        has_manifest(
            meta,
            "up/m",
            &Descriptor {
                digest: d,
                size: content.len() as u64
            }
        )
        .await
    );
}

/// SIF descriptions: written once per stored blob, found through a
/// repository that links the blob, gone with the blob.
async fn sif_records(meta: &dyn MetaStore) {
    let layer = push_blob(meta, "hpc/sif", b"a SIF blob").await;
    let other = push_blob(meta, "hpc/other", b"not a SIF").await;
    assert_eq!(meta.sif_record(&layer.digest).await.unwrap(), None);

    let image: crate::sif::SifImage =
        crate::sif::parse(&crate::sif::tests::signed_amd64()).unwrap();
    let config = bytes::Bytes::from_static(b"{\"architecture\":\"amd64\"}");
    let config_digest = digest(&config);
    let record = SifRecord {
        digest: layer.digest.clone(),
        description: Ok(image.clone()),
        library_config: Some((config_digest.clone(), config.clone())),
    };
    assert!(meta.put_sif_record(&record).await.unwrap());
    assert_eq!(
        meta.sif_record(&layer.digest).await.unwrap(),
        Some(record.clone())
    );
    // Written once: a second description of the same bytes changes nothing.
    let again = SifRecord {
        description: Err("changed my mind".into()),
        library_config: None,
        ..record.clone()
    };
    assert!(!meta.put_sif_record(&again).await.unwrap());
    assert_eq!(
        meta.sif_record(&layer.digest).await.unwrap(),
        Some(record.clone())
    );

    // Not a SIF: the reason is kept.
    let refused = SifRecord {
        digest: other.digest.clone(),
        description: Err("no SIF magic: not a SIF file".into()),
        library_config: None,
    };
    assert!(meta.put_sif_record(&refused).await.unwrap());
    assert_eq!(meta.sif_record(&other.digest).await.unwrap(), Some(refused));

    // A blob that is not stored gets no record.
    let absent = SifRecord {
        digest: digest(b"never pushed"),
        ..record.clone()
    };
    assert!(!meta.put_sif_record(&absent).await.unwrap());
    assert_eq!(meta.sif_record(&absent.digest).await.unwrap(), None);

    // The derived config is served through a repository linking the blob.
    assert_eq!(
        meta.library_config("hpc/sif", &config_digest)
            .await
            .unwrap(),
        Some(config.clone())
    );
    assert_eq!(
        meta.library_config("hpc/other", &config_digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.library_config("nowhere", &config_digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.library_config("hpc/sif", &layer.digest).await.unwrap(),
        None
    );

    // gc deleting the blob deletes its record.
    assert!(meta.unlink_blob("hpc/sif", &layer.digest).await.unwrap());
    assert_eq!(
        meta.library_config("hpc/sif", &config_digest)
            .await
            .unwrap(),
        None
    );
    let rules = tick().await;
    let doomed = meta.tombstone_unlinked_blobs(rules, 10).await.unwrap();
    assert_eq!(doomed.len(), 1);
    assert_eq!(meta.sif_record(&layer.digest).await.unwrap(), None);
    meta.clear_tombstones(&[layer.digest.to_string()])
        .await
        .unwrap();
}

/// What the web UI reads: summaries of named repositories in the order
/// asked, a repository's tags newest first with their manifests, the push
/// time and tags of a manifest, a pattern's usage and the latest runs.
async fn browsing(meta: &dyn MetaStore) {
    assert!(meta.repository_summaries(&[]).await.unwrap().is_empty());
    assert_eq!(meta.tag_page("none", 0, 10).await.unwrap(), None);

    let layer = push_blob(meta, "team/a", b"layer-bytes").await;
    let m1 = put(meta, "team/a", "m1", std::slice::from_ref(&layer), &["v1"]).await;
    tick().await;
    let m2 = put(
        meta,
        "team/a",
        "m2",
        std::slice::from_ref(&layer),
        &["v2", "latest"],
    )
    .await;
    push_blob(meta, "team/b", b"bb").await;
    let names: Vec<String> = ["team/b", "nope", "team/a"].map(String::from).to_vec();
    let summaries = meta.repository_summaries(&names).await.unwrap();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    let (b, a) = (&summaries[0], &summaries[1]);
    assert_eq!(
        (b.name.as_str(), b.tags, b.manifests, b.bytes),
        ("team/b", 0, 0, 2)
    );
    assert_eq!(b.last_push_ms, None, "blobs alone are no push");
    assert_eq!(
        (a.name.as_str(), a.tags, a.manifests, a.bytes),
        ("team/a", 3, 2, 11 + m1.size + m2.size)
    );
    assert!(a.last_push_ms.is_some_and(|t| t > 0), "{a:?}");

    let page = meta.tag_page("team/a", 0, 10).await.unwrap().unwrap();
    assert_eq!(page.total, 3);
    let names: Vec<&str> = page.rows.iter().map(|r| r.name.as_str()).collect();
    // Newest first, then by name.
    assert_eq!(names, ["latest", "v2", "v1"]);
    assert_eq!(page.rows[0].digest, m2.digest.to_string());
    assert_eq!(page.rows[0].media_type, OCI_MANIFEST);
    assert_eq!(page.rows[0].content.as_ref(), br#"{"name":"m2"}"#);
    assert!(page.rows[0].updated_at > page.rows[2].updated_at);
    let rest = meta.tag_page("team/a", 2, 10).await.unwrap().unwrap();
    assert_eq!(rest.rows.len(), 1);
    assert_eq!(rest.rows[0].name, "v1");
    assert_eq!(
        meta.tag_page("team/a", 0, 1)
            .await
            .unwrap()
            .unwrap()
            .rows
            .len(),
        1
    );

    let facts = meta
        .manifest_facts("team/a", &m2.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.tags, ["latest", "v2"]);
    assert!(facts.created_at > 0);
    assert_eq!(
        meta.manifest_facts("team/b", &m2.digest).await.unwrap(),
        None
    );
    assert_eq!(meta.manifest_facts("none", &m2.digest).await.unwrap(), None);

    assert_eq!(meta.pattern_usage("team/*").await.unwrap(), a.bytes + 2);
    assert_eq!(meta.pattern_usage("team/b").await.unwrap(), 2);
    assert_eq!(meta.pattern_usage("other/*").await.unwrap(), 0);

    assert!(meta.recent_runs(5).await.unwrap().is_empty());
    for (kind, started_ms, dry_run) in [
        ("gc", 1_000, false),
        ("retention", 2_000, true),
        ("gc", 3_000, false),
    ] {
        meta.record_run(&MaintenanceRun {
            kind,
            started_ms,
            finished_ms: started_ms + 10,
            dry_run,
            ok: true,
            deleted_blobs: 1,
            deleted_tags: 2,
            deleted_bytes: 30,
            detail: Some(r#"{"tags":["secret/repo:v1"]}"#.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let runs = meta.recent_runs(2).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].kind, runs[0].started_ms, runs[0].dry_run),
        ("gc", 3_000, false)
    );
    assert_eq!(
        (runs[1].kind, runs[1].started_ms, runs[1].dry_run),
        ("retention", 2_000, true)
    );
    assert_eq!(
        (
            runs[1].deleted_tags,
            runs[1].deleted_bytes,
            runs[1].finished_ms
        ),
        (2, 30, 2_010)
    );
    assert!(
        runs.iter().all(|r| r.detail.is_none()),
        "details name repositories"
    );
}

// ------------------------------------------------------- every backend

macro_rules! every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let meta = crate::meta::SqliteMeta::memory().await.unwrap();
                    super::$test(&meta).await;
                    crate::meta::RepositoryMeta::close(&meta).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::with_database(|db| async move {
                        let meta = db.connect().await;
                        super::$test(&meta).await;
                        crate::meta::RepositoryMeta::close(&meta).await;
                    })
                    .await;
                }
            )*
        }
    };
}

every_backend!(
    repositories_and_catalog,
    blobs_claims_and_links,
    quotas,
    publishers_and_gc_exclude_each_other,
    dead_claims_are_collected,
    manifests_and_references,
    immutable_tags,
    referrers,
    tags,
    uploads,
    retention,
    gc_sweep_and_tombstones,
    stats_usage_and_runs,
    manifest_cache_follows_changes,
    closed_store_is_unavailable,
    login_failures,
    mirror_records,
    sif_records,
    browsing,
);

// ------------------------------------------------------- PostgreSQL

/// A database of its own on the test server.
#[derive(Clone)]
pub(crate) struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

/// The admin URL, or a failure that says how to get one.
fn admin_url() -> String {
    match std::env::var("BERTH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "BERTH_TEST_DATABASE_URL is not set: the PostgreSQL metadata tests need a server. \
             Start one (and versitygw) with `eval \"$(tests/backends/up.sh)\"` from the \
             repository root, which prints the exports, then run the tests again \
             (tests/backends/down.sh stops them)."
        ),
    }
}

impl TestDatabase {
    /// Creates `berth_test_<random>`, with ICU's en-US as its default
    /// collation where the server has ICU (so that bytewise order is
    /// really the store's doing), else the server's default.
    pub(crate) async fn create() -> Self {
        let admin = admin_url();
        let name = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to BERTH_TEST_DATABASE_URL ({e}); is the server up? \
                     `eval \"$(tests/backends/up.sh)\"` starts it"
                )
            });
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if sqlx::raw_sql(sqlx::AssertSqlSafe(icu))
            .execute(&mut conn)
            .await
            .is_err()
        {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("BERTH_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            admin,
            name,
            url: url.to_string(),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn connect(&self) -> PostgresMeta {
        PostgresMeta::connect(&self.url, 8, Duration::from_secs(10))
            .await
            .unwrap()
    }

    /// Drops the database, ending whatever still uses it.
    pub(crate) async fn drop_database(&self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    /// Ends every session on this database but the caller's (a restart,
    /// as far as the clients can tell).
    async fn terminate_sessions(&self) -> u64 {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()) t",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        n as u64
    }
}

/// Runs `test` on a fresh database, dropped afterwards (also when the test
/// fails).
pub(crate) async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(TestDatabase) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDatabase::create().await;
    let result = AssertUnwindSafe(test(db.clone())).catch_unwind().await;
    db.drop_database().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Two `PostgresMeta` on one database: two processes, as far as the
/// database can tell (pools, listeners and locks of their own).
mod two_processes {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    async fn pair(db: &TestDatabase) -> (Arc<PostgresMeta>, Arc<PostgresMeta>) {
        (Arc::new(db.connect().await), Arc::new(db.connect().await))
    }

    fn part(name: &str) -> NewPart<'_> {
        NewPart {
            name,
            size: 4,
            hash_state: Some(name.as_bytes().to_vec()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_appends_have_one_winner() {
        with_database(|db| async move {
            let (a, b) = pair(&db).await;
            a.create_upload("r", "u").await.unwrap();
            let mut offset = 0;
            for round in 0..10 {
                let tasks: Vec<_> = (0..8)
                    .map(|i| {
                        let meta = if i % 2 == 0 { a.clone() } else { b.clone() };
                        let name = format!("r{round}-w{i}");
                        tokio::spawn(async move {
                            let won = meta
                                .append_upload_part("u", offset, part(&name))
                                .await
                                .unwrap();
                            (won, name)
                        })
                    })
                    .collect();
                let mut winners = Vec::new();
                for t in tasks {
                    let (won, name) = t.await.unwrap();
                    if won {
                        winners.push(name);
                    }
                }
                assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
                offset += 4;
                let u = b.upload("u").await.unwrap().unwrap();
                assert_eq!(u.size, offset);
                assert_eq!(u.parts.last(), Some(&winners[0]));
                assert_eq!(u.hash_state.as_deref(), Some(winners[0].as_bytes()));
            }
            a.close().await;
            b.close().await;
        })
        .await;
    }

    /// gc (one process) tombstones unlinked blobs in small batches while
    /// the other publishes the same digests: every publisher either linked
    /// the blob before gc saw it (and gc left it) or was told to wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claims_race_tombstones() {
        with_database(|db| async move {
            let (gc, publisher) = pair(&db).await;
            let mut digests = Vec::new();
            for i in 0..60 {
                let data = format!("blob {i}").into_bytes();
                let d = push_blob(gc.as_ref(), "old", &data).await;
                assert!(gc.unlink_blob("old", &d.digest).await.unwrap());
                digests.push(d);
            }
            let rules = tick().await;
            let sweeper = {
                let gc = gc.clone();
                tokio::spawn(async move {
                    let mut doomed = Vec::new();
                    loop {
                        let batch = gc.tombstone_unlinked_blobs(rules, 3).await.unwrap();
                        if batch.is_empty() {
                            return doomed;
                        }
                        doomed.extend(batch.into_iter().map(|b| b.digest));
                    }
                })
            };
            let claims: Vec<_> = digests
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let publisher = publisher.clone();
                    let d = d.clone();
                    tokio::spawn(async move {
                        // Half verified re-uploads (link at once), half
                        // fresh publications (claim, then link).
                        let verified = i % 2 == 0;
                        let claim = publisher
                            .claim_blob("new", &d.digest, d.size, verified, &[])
                            .await
                            .unwrap();
                        if claim == Claim::Claimed {
                            publisher
                                .link_blob("new", &d.digest, d.size, &[], None)
                                .await
                                .unwrap();
                        }
                        (d, verified, claim)
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for c in claims {
                outcomes.push(c.await.unwrap());
            }
            let doomed = sweeper.await.unwrap();
            let (mut busy, mut published) = (0, 0);
            for (d, verified, claim) in outcomes {
                let gone = doomed.contains(&d.digest.to_string());
                let served = publisher.repository_blob("new", &d.digest).await.unwrap();
                match claim {
                    Claim::Busy => {
                        assert!(gone, "{d:?}: busy, but gc did not take it");
                        assert_eq!(served, None);
                        busy += 1;
                    }
                    Claim::Linked(_) | Claim::Claimed => {
                        assert!(verified || claim == Claim::Claimed);
                        assert!(!gone, "{d:?} was published and collected");
                        assert_eq!(served, Some(d.size));
                        published += 1;
                    }
                }
            }
            assert_eq!(busy + published, 60);
            assert_eq!(busy, doomed.len());
            gc.close().await;
            publisher.close().await;
        })
        .await;
    }

    /// Pushes from two processes under one quota: the links are checked
    /// one at a time, so the quota holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn quotas_hold_across_processes() {
        with_database(|db| async move {
            let (a, b) = pair(&db).await;
            let q = vec![Quota {
                pattern: "q/*".into(),
                limit_bytes: 10,
            }];
            let tasks: Vec<_> = (0..6)
                .map(|i| {
                    let meta = if i % 2 == 0 { a.clone() } else { b.clone() };
                    let q = q.clone();
                    tokio::spawn(async move {
                        let d = digest(format!("q{i}").as_bytes());
                        let repo = format!("q/{i}");
                        meta.claim_blob(&repo, &d, 4, false, &q).await?;
                        meta.link_blob(&repo, &d, 4, &q, None).await
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(MetaError::QuotaExceeded { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(ok, 2);
            let used: u64 = a.usage().await.unwrap().iter().map(|u| u.bytes).sum();
            assert_eq!(used, 8);
            a.close().await;
            b.close().await;
        })
        .await;
    }

    /// What one process wrote is what the other reads next, at once (no
    /// waiting: replicas behind a load balancer read their writes), also
    /// right after every connection was cut (a restart).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_other_process_reads_every_change_at_once() {
        with_database(|db| async move {
            let (a, b) = pair(&db).await;
            for round in 0..5 {
                let m = put(a.as_ref(), "r", &format!("m{round}"), &[], &["latest"]).await;
                for _ in 0..3 {
                    assert_eq!(
                        tag_target(b.as_ref(), "r", "latest").await,
                        Some(m.digest.to_string())
                    );
                }
            }
            assert!(a.delete_tag("r", "latest").await.unwrap());
            assert_eq!(tag_target(b.as_ref(), "r", "latest").await, None);
            let m = put(a.as_ref(), "r", "again", &[], &["latest"]).await;
            assert!(has_manifest(b.as_ref(), "r", &m).await);
            assert!(a.delete_manifest("r", &m.digest, &[]).await.unwrap());
            assert!(!has_manifest(b.as_ref(), "r", &m).await);
            assert_eq!(tag_target(b.as_ref(), "r", "latest").await, None);

            // Every session cut (a restart, as far as the clients can tell):
            // the pools reconnect and b still reads a's writes at once.
            assert!(db.terminate_sessions().await > 0);
            for round in 0..5 {
                let m = put(a.as_ref(), "r", &format!("after{round}"), &[], &["latest"]).await;
                assert_eq!(
                    tag_target(b.as_ref(), "r", "latest").await,
                    Some(m.digest.to_string())
                );
            }
            a.close().await;
            b.close().await;
        })
        .await;
    }

    /// One gc at a time: the lock is exclusive across processes, a run that
    /// cannot take it is skipped (and not recorded), and it is released
    /// when dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_gc_at_a_time() {
        use crate::maintenance::gc::{GcOptions, run};
        with_database(|db| async move {
            let (a, b) = pair(&db).await;
            let blobs = crate::storage::ObjectBlobs::memory();
            let held = a.gc_lock().await.unwrap().expect("the first gc leads");
            assert!(b.gc_lock().await.unwrap().is_none());
            assert!(
                a.gc_lock().await.unwrap().is_none(),
                "one lock per database"
            );
            let report = run(b.as_ref(), &blobs, &GcOptions::default())
                .await
                .unwrap();
            assert!(report.skipped);
            assert_eq!(b.stats().await.unwrap().maintenance[0].runs, 0);
            drop(held);
            let started = Instant::now();
            let again = loop {
                if let Some(lock) = b.gc_lock().await.unwrap() {
                    break lock;
                }
                assert!(started.elapsed() < Duration::from_secs(5), "never released");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            drop(again);
            let started = Instant::now();
            loop {
                let report = run(a.as_ref(), &blobs, &GcOptions::default())
                    .await
                    .unwrap();
                if !report.skipped {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(5), "never released");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(a.stats().await.unwrap().maintenance[0].runs, 1);
            a.close().await;
            b.close().await;
        })
        .await;
    }

    /// Processes starting together on a new database migrate it once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_starting_together_migrate_once() {
        with_database(|db| async move {
            let url = db.url().to_string();
            let starts: Vec<_> = (0..4)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        PostgresMeta::connect(&url, 2, Duration::from_secs(30)).await
                    })
                })
                .collect();
            for s in starts {
                let meta = s.await.unwrap().unwrap();
                meta.ping().await.unwrap();
                meta.close().await;
            }
        })
        .await;
    }
}

/// No server at the address, or one that never answers: a clear error,
/// quickly, classified as unavailable, without the password.
#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://berth:s3cr3t-pw@127.0.0.1:{closed}/berth");
    let started = std::time::Instant::now();
    let e = PostgresMeta::connect(&url, 4, Duration::from_secs(5))
        .await
        .err()
        .expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(e.is_unavailable(), "{e:?}");
    let text = chain(&e);
    assert!(
        text.contains(&format!("127.0.0.1:{closed}/berth")),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(!format!("{e:?}").contains("s3cr3t-pw"));

    // Accepts connections, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://berth:s3cr3t-pw@127.0.0.1:{port}/berth");
    let started = std::time::Instant::now();
    let e = PostgresMeta::connect(&url, 4, Duration::from_millis(500))
        .await
        .err()
        .expect("the server never answers");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(e.is_unavailable(), "{e:?}");
    assert!(!chain(&e).contains("s3cr3t-pw"));
    drop(silent);

    let e = PostgresMeta::connect(
        "postgres://berth:pw@[not a host/x",
        4,
        Duration::from_secs(1),
    )
    .await
    .err()
    .expect("not a URL");
    assert!(!chain(&e).contains("pw@"), "{}", chain(&e));
}

/// An error and its causes, as `{:#}` would print them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
