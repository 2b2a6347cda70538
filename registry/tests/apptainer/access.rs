//! Access control for HPC: one robot secret (or user password) for
//! `oras://` basic credentials and the `library://` token alike; a private
//! collection refused to anonymous library clients, a public one open to
//! them; `apptainer remote login`'s token check.

use super::*;
use sha2::Digest as _;

const ROBOT: &str = "robot$hpc+ci";
const ROBOT_SECRET: &str = "hpc-ci-secret-4d1f8a90c3e2b7";

/// A registry with a policy: group `hpc` (alice) and the CI robot may
/// push and pull `hpc/*`, `private/*` and `small/*` (a group with a 64 KiB
/// quota); anyone may pull `public/*`, which only the robot pushes.
fn secured() -> (Server, tempfile::TempDir) {
    let dir = tempdir();
    let policy = format!(
        r#"groups:
  hpc: [alice]
robots:
  - name: {ROBOT}
    password_sha256: {}
rules:
  - repositories: ["hpc/*", "private/*", "small/*"]
    subjects: ["group:hpc", "robot:{ROBOT}"]
    actions: [pull, push]
  - repositories: ["public/*"]
    subjects: [anonymous, authenticated]
    actions: [pull]
  - repositories: ["public/*"]
    subjects: ["robot:{ROBOT}"]
    actions: [push]
repositories:
  - name: "small/*"
    quota_bytes: 65536
"#,
        hex::encode(sha2::Sha256::digest(ROBOT_SECRET.as_bytes()))
    );
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let alice = bcrypt::hash("alice-pw", 5).unwrap();
    let bob = bcrypt::hash("bob-pw", 5).unwrap();
    std::fs::write(&htpasswd, format!("alice:{alice}\nbob:{bob}\n")).unwrap();
    let server = Server::start_with(&[
        "--policy-file",
        s(&policy_file),
        "--htpasswd-file",
        s(&htpasswd),
    ]);
    (server, dir)
}

fn push(
    dir: &Path,
    server: &Server,
    sif: &Sif,
    path: &str,
    token: Option<&str>,
) -> Result<Value, String> {
    let mut args = vec!["library-push", "-remote", &server.base];
    if let Some(t) = token {
        args.extend(["-token", t]);
    }
    let reference = format!("library://{path}");
    args.extend([s(&sif.path), &reference]);
    let ran = run_unchecked(dir, "apptainer-client", &args, &[]);
    if ran.status.is_some_and(|s| s.success()) {
        Ok(json(&ran.stdout))
    } else {
        Err(String::from_utf8_lossy(&ran.stderr).into_owned())
    }
}

fn pull(
    dir: &Path,
    server: &Server,
    path: &str,
    arch: &str,
    token: Option<&str>,
) -> Result<Vec<u8>, String> {
    let out = dir.join(format!("pull-{}.sif", nonce()));
    let mut args = vec!["library-pull", "-remote", &server.base, "-arch", arch];
    if let Some(t) = token {
        args.extend(["-token", t]);
    }
    let reference = format!("library://{path}");
    args.extend([&reference, s(&out)]);
    let ran = run_unchecked(dir, "apptainer-client", &args, &[]);
    if ran.status.is_some_and(|s| s.success()) {
        Ok(std::fs::read(&out).expect("pulled file"))
    } else {
        Err(String::from_utf8_lossy(&ran.stderr).into_owned())
    }
}

#[test]
fn a_private_collection_is_refused_to_anonymous_library_clients() {
    let (server, tmp) = secured();
    let dir = tmp.path();
    let sif = make_sif(dir, "private", "amd64", false);

    // Anonymous: neither push nor pull.
    let e = push(dir, &server, &sif, "private/models/net:1", None).unwrap_err();
    assert!(e.contains("unauthorized"), "{e}");
    push(
        dir,
        &server,
        &sif,
        "private/models/net:1",
        Some(ROBOT_SECRET),
    )
    .expect("the robot pushes");
    let e = pull(dir, &server, "private/models/net:1", "amd64", None).unwrap_err();
    assert!(e.contains("401"), "{e}");
    // The same answer whether or not the image exists.
    let e2 = pull(dir, &server, "private/models/absent:1", "amd64", None).unwrap_err();
    assert!(e2.contains("401"), "{e2}");
    // bob is known but not in the group: 403.
    let e = pull(
        dir,
        &server,
        "private/models/net:1",
        "amd64",
        Some("bob:bob-pw"),
    )
    .unwrap_err();
    assert!(e.contains("403"), "{e}");
    // A wrong token is refused at the door.
    let e = pull(
        dir,
        &server,
        "private/models/net:1",
        "amd64",
        Some("not-a-secret"),
    )
    .unwrap_err();
    assert!(e.contains("401"), "{e}");

    // alice (group hpc) pulls, with her password as the access token.
    let got = pull(
        dir,
        &server,
        "private/models/net:1",
        "amd64",
        Some("alice:alice-pw"),
    )
    .expect("alice pulls");
    assert!(got == sif.bytes());

    // A public collection: anonymous library clients pull it.
    let public = make_sif(dir, "public", "amd64", false);
    push(
        dir,
        &server,
        &public,
        "public/tools/hello:1",
        Some(ROBOT_SECRET),
    )
    .expect("the robot pushes");
    let got = pull(dir, &server, "public/tools/hello:1", "amd64", None).expect("anonymous pull");
    assert!(got == public.bytes());
    // ...but may not push there.
    let other = make_sif(dir, "other", "amd64", false);
    let e = push(dir, &server, &other, "public/tools/hello:2", None).unwrap_err();
    assert!(e.contains("unauthorized"), "{e}");
}

#[test]
fn one_robot_secret_serves_oras_credentials_and_the_library_token() {
    let (server, tmp) = secured();
    let dir = tmp.path();
    let sif = make_sif(dir, "robot", "arm64", true);

    // oras:// with the robot as basic credentials (`apptainer registry login`).
    let reference = format!("oras://{}/hpc/ci/tool:1", server.addr);
    apptainer(
        dir,
        [
            "oras-push",
            "-plain-http",
            "-username",
            ROBOT,
            "-password",
            ROBOT_SECRET,
            s(&sif.path),
            &reference,
        ],
    );
    // Anonymous oras:// gets nothing.
    let e = apptainer_fails(
        dir,
        [
            "oras-pull",
            "-plain-http",
            "-arch",
            "arm64",
            &reference,
            s(&dir.join("x.sif")),
        ],
    );
    assert!(e.contains("UNAUTHORIZED") || e.contains("401"), "{e}");

    // library:// with the same secret as the access token: the image
    // pushed over oras:// is pulled through the library API.
    let got =
        pull(dir, &server, "hpc/ci/tool:1", "arm64", Some(ROBOT_SECRET)).expect("library pull");
    assert!(got == sif.bytes());
    // And pushed through it; pulled back over oras:// with basic credentials.
    let second = make_sif(dir, "robot2", "arm64", false);
    push(dir, &server, &second, "hpc/ci/tool:2", Some(ROBOT_SECRET)).expect("library push");
    let out = dir.join("oras2.sif");
    apptainer(
        dir,
        [
            "oras-pull",
            "-plain-http",
            "-arch",
            "arm64",
            "-username",
            ROBOT,
            "-password",
            ROBOT_SECRET,
            &format!("oras://{}/hpc/ci/tool:2", server.addr),
            s(&out),
        ],
    );
    assert!(std::fs::read(&out).unwrap() == second.bytes());

    // `apptainer remote login` checks a token at /v1/token-status.
    let status = |token: &str| {
        http_get(
            &server.url("/v1/token-status"),
            &[&format!("Authorization: Bearer {token}")],
        )
    };
    let ok = status(ROBOT_SECRET);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["data"]["subject"], ROBOT);
    assert_eq!(status("alice:alice-pw").status, 200);
    assert_eq!(status("alice:wrong").status, 401);
    assert_eq!(status("guess").status, 401);
    assert_eq!(http_get(&server.url("/v1/token-status"), &[]).status, 401);

    // The redirect's token grants what the policy gives the caller, no more.
    let redirect = http_get(
        &server.url("/v1/oci-redirect?namespace=public/tools/x&accessTypes=pull,push"),
        &[],
    )
    .json();
    let token = redirect["token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        json(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
    };
    assert_eq!(claims["access"][0]["name"], "public/tools/x", "{claims}");
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull"]),
        "{claims}"
    );
    assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() >= 3600);
}

#[test]
fn a_group_quota_holds_for_library_pushes() {
    let (server, tmp) = secured();
    let dir = tmp.path();
    // Each SIF is about 36 KiB: the first fits under the group's 64 KiB,
    // the second (in another collection of the group) does not.
    let first = make_sif(dir, "q1", "amd64", false);
    let second = make_sif(dir, "q2", "amd64", false);
    assert!(first.size < 48 * 1024 && first.size + second.size > 64 * 1024);
    push(dir, &server, &first, "small/one/app:1", Some(ROBOT_SECRET)).expect("within the quota");
    let e = push(dir, &server, &second, "small/two/app:1", Some(ROBOT_SECRET)).unwrap_err();
    assert!(e.contains("403"), "{e}");
    // Nothing of it is tagged.
    let a = http_get(
        &server.url("/v2/small/two/app/manifests/1"),
        &[&format!(
            "Authorization: Basic {}",
            basic(ROBOT, ROBOT_SECRET)
        )],
    );
    assert_eq!(a.status, 404);
    // What fits is still served.
    let got = pull(dir, &server, "small/one/app:1", "amd64", Some(ROBOT_SECRET)).expect("pull");
    assert!(got == first.bytes());
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
