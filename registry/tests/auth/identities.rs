//! Who is asking: anonymous, basic (htpasswd and robots), rate limits, and reloads of the policy and users.

use super::*;

#[tokio::test]
async fn anonymous_callers_get_public_pull_and_a_challenge_for_the_rest() {
    let s = Secured::start(&[]);
    let challenge = assert_error(
        s.req(Method::GET, "/v2/", None).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await
    .unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"berth\"",
            s.server.base
        )
    );
    assert_eq!(
        s.req(Method::GET, "/v2/", Some(("alice", "alice-pw")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    s.push_image("public/base", "v1", ("alice", "alice-pw"))
        .await;
    s.push_image("team/secret", "v1", ("alice", "alice-pw"))
        .await;

    // Public pull works anonymously; push does not.
    let r = s
        .req(Method::GET, "/v2/public/base/manifests/v1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.push_blob("public/base", b"x", None).await;
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.ends_with("scope=\"repository:public/base:pull,push\""),
        "{challenge}"
    );

    // A private repository answers the same whether it exists or not.
    let existing = s
        .req(Method::GET, "/v2/team/secret/manifests/v1", None)
        .send()
        .await
        .unwrap();
    let missing = s
        .req(Method::GET, "/v2/team/nothing/manifests/v1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(existing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        existing.text().await.unwrap(),
        missing.text().await.unwrap()
    );

    // The catalog shows only what the caller may pull. Without credentials
    // it is a challenge for the catalog scope; an anonymous token lists what
    // anonymous may pull.
    let r = s
        .req(Method::GET, "/v2/_catalog", None)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.ends_with("scope=\"registry:catalog:*\""),
        "{challenge}"
    );
    let anonymous = s.token(&["registry:catalog:*"], None).await;
    let anonymous = anonymous.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/_catalog"))
        .bearer_auth(&anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["public/base"])
    );
    let r = s
        .req(Method::GET, "/v2/_catalog", Some(("alice", "alice-pw")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["public/base", "team/secret"])
    );
    let r = s
        .req(Method::GET, "/v2/_catalog", Some((ROBOT, ROBOT_SECRET)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!([]));
}

#[tokio::test]
async fn basic_credentials_users_groups_and_robots() {
    let s = Secured::start(&[]);
    let alice = Some(("alice", "alice-pw"));
    assert_eq!(
        s.push_blob("team/app", b"a", alice).await.status(),
        StatusCode::CREATED
    );
    // Authenticated but not granted: 403 DENIED, no challenge.
    let r = s.push_blob("team/app", b"b", Some(("bob", "bob-pw"))).await;
    assert_eq!(assert_error(r, StatusCode::FORBIDDEN, "DENIED").await, None);
    // Wrong password: 401 with the challenge.
    let r = s
        .push_blob("team/app", b"c", Some(("alice", "wrong")))
        .await;
    assert!(
        assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            .await
            .is_some()
    );
    let r = s
        .push_blob("team/app", b"c", Some(("nobody", "alice-pw")))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // The robot pushes ci/*, only pulls prod/*.
    let robot = Some((ROBOT, ROBOT_SECRET));
    assert_eq!(
        s.push_blob("ci/app", b"r", robot).await.status(),
        StatusCode::CREATED
    );
    let r = s.push_blob("prod/app", b"r", robot).await;
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = s
        .req(Method::GET, "/v2/prod/app/tags/list", robot)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    let r = s.push_blob("ci/app", b"r", Some((ROBOT, "guess"))).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Deleting needs delete; push is not enough.
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/ci/app/blobs/{}", sha256(b"r")),
            robot,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/team/app/blobs/{}", sha256(b"a")),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Mounting needs pull on the source: the robot cannot read team/*.
    let r = s
        .req(
            Method::POST,
            &format!(
                "/v2/ci/app/blobs/uploads/?mount={}&from=team/app",
                sha256(b"a")
            ),
            robot,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let s = Secured::start(&[]);
    for _ in 0..10 {
        let r = s
            .push_blob("team/app", b"x", Some(("alice", "wrong")))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // alice is under attack from this address: even her right password is
    // refused for a while, and the answer says for how long.
    let r = s
        .push_blob("team/app", b"x", Some(("alice", "alice-pw")))
        .await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("alice"),
        "{body}"
    );
    // Someone else behind the same address is not locked out.
    let r = s.push_blob("team/app", b"y", Some(("bob", "bob-pw"))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN); // known, not granted: not 429
    let r = s
        .push_blob("public/app", b"y", Some(("alice", "alice-pw")))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let log = s.server.log();
    assert!(
        !log.contains("wrong") && !log.contains("alice-pw"),
        "a password reached the log"
    );
    let metrics = s.server.metrics();
    assert!(
        metrics.contains("berth_auth_failures_total{endpoint=\"registry\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_auth_rate_limited_total{endpoint=\"registry\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn policy_and_users_reload_and_an_invalid_policy_keeps_the_old_one() {
    let s = Secured::start(&[]);
    // Turn policy.yaml into a ConfigMap-style symlink.
    let cm = s.dir.path().join("cm");
    std::fs::create_dir_all(&cm).unwrap();
    configmap_swap(&cm, 1, &policy(""));
    std::fs::remove_file(s.policy_path()).unwrap();
    std::os::unix::fs::symlink(cm.join("..data/policy.yaml"), s.policy_path()).unwrap();

    let bob = Some(("bob", "bob-pw"));
    assert_eq!(
        s.push_blob("team/app", b"b", bob).await.status(),
        StatusCode::FORBIDDEN
    );
    let grant_bob =
        "  - repositories: [\"team/*\"]\n    subjects: [\"user:bob\"]\n    actions: [push]\n";
    configmap_swap(&cm, 2, &policy(grant_bob));
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.push_blob("team/app", b"b", bob).await.status() != StatusCode::CREATED {
        assert!(
            Instant::now() < deadline,
            "the new policy was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A user added to the htpasswd file can log in without a restart.
    let carol = bcrypt::hash("carol-pw", 5).unwrap();
    let htpasswd = s.dir.path().join("htpasswd");
    let mut users = std::fs::read_to_string(&htpasswd).unwrap();
    users.push_str(&format!("carol:{carol}\n"));
    std::fs::write(&htpasswd, users).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = s
            .req(Method::GET, "/v2/", Some(("carol", "carol-pw")))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new htpasswd user was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    configmap_swap(&cm, 3, "rules: [this is not a rule]\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.server.log().contains("keeping the previous version") {
        assert!(
            Instant::now() < deadline,
            "the invalid policy was not reported"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        s.push_blob("team/app", b"b2", bob).await.status(),
        StatusCode::CREATED
    );
}
