//! Which local repository a request for a mirrored image means. containerd
//! configured with a mirror asks `/v2/<name>/…?ns=<registry>` with the
//! upstream's name; clients that cannot send `ns` put the mirror's name in
//! front (`/v2/docker.io/library/alpine/…`). Both mean the same local
//! repository, `<mirror>/<upstream name>`; Docker Hub's one-component names
//! are `library/` ones.

use super::Mirrors;

/// The local repository `name` means (with `ns`, the query's `ns`), when it
/// is not `name` itself.
pub fn local_name(mirrors: &Mirrors, name: &str, ns: Option<&str>) -> Option<String> {
    if mirrors.is_empty() {
        return None;
    }
    if let Some(mirror) = ns.and_then(|ns| mirrors.by_ns(ns)) {
        let upstream = if mirror.is_docker_hub() && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_string()
        };
        return Some(format!("{}/{upstream}", mirror.name()));
    }
    let (mirror, upstream) = mirrors.of_repository(name)?;
    (mirror.is_docker_hub() && !upstream.contains('/'))
        .then(|| format!("{}/library/{upstream}", mirror.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_config::MirrorConfig;

    fn mirrors() -> Mirrors {
        let config = |name: &str, url: &str| MirrorConfig {
            name: name.into(),
            url: url.into(),
            ..Default::default()
        };
        Mirrors::open(&[
            config("docker.io", "https://registry-1.docker.io"),
            config("upstream.test", "http://127.0.0.1:5003"),
        ])
        .unwrap()
    }

    #[test]
    fn ns_and_prefix_name_the_same_repository() {
        let m = mirrors();
        let cases = [
            (
                "library/alpine",
                Some("docker.io"),
                Some("docker.io/library/alpine"),
            ),
            (
                "alpine",
                Some("docker.io"),
                Some("docker.io/library/alpine"),
            ),
            (
                "alpine",
                Some("registry-1.docker.io"),
                Some("docker.io/library/alpine"),
            ),
            ("docker.io/alpine", None, Some("docker.io/library/alpine")),
            ("docker.io/library/alpine", None, None),
            (
                "team/app",
                Some("upstream.test"),
                Some("upstream.test/team/app"),
            ),
            ("app", Some("127.0.0.1:5003"), Some("upstream.test/app")),
            ("upstream.test/app", None, None),
            ("team/app", None, None),
            ("team/app", Some("ghcr.io"), None),
        ];
        for (name, ns, want) in cases {
            assert_eq!(
                local_name(&m, name, ns).as_deref(),
                want,
                "{name} ns={ns:?}"
            );
        }
        assert_eq!(
            local_name(&Mirrors::default(), "a", Some("docker.io")),
            None
        );
    }
}
