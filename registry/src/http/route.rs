//! Parses the path under `/v2/` into an endpoint. Repository names have any
//! number of segments, so the endpoint is read from the tail of the path.

use super::errors::{ApiError, Code};
use crate::oci::names::is_valid_name;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Catalog,
    Tags {
        name: String,
    },
    Manifest {
        name: String,
        reference: String,
    },
    Blob {
        name: String,
        digest: String,
    },
    /// `POST .../blobs/uploads/` (no session yet).
    Uploads {
        name: String,
    },
    Upload {
        name: String,
        id: String,
    },
    Referrers {
        name: String,
        digest: String,
    },
    /// Berth's own: the SIF images a tag or digest holds.
    Sif {
        name: String,
        reference: String,
    },
}

fn name(segments: &[&str]) -> Result<String, ApiError> {
    let name = segments.join("/");
    if is_valid_name(&name) {
        Ok(name)
    } else {
        Err(ApiError::new(
            Code::NameInvalid,
            format!("invalid repository name `{name}`: see the distribution spec's name grammar"),
        ))
    }
}

pub fn not_found() -> ApiError {
    ApiError::new(Code::Unsupported, "no such endpoint")
        .with_status(axum::http::StatusCode::NOT_FOUND)
}

/// Which endpoint a path names, before the repository name is checked: the
/// route template of metrics and logs comes from here, so it never holds a
/// repository name, digest or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Catalog,
    Tags,
    Manifest,
    Blob,
    Uploads,
    Upload,
    Referrers,
    Sif,
}

impl Endpoint {
    /// The route template, e.g. `/v2/{name}/manifests/{reference}`.
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::Catalog => "/v2/_catalog",
            Endpoint::Tags => "/v2/{name}/tags/list",
            Endpoint::Manifest => "/v2/{name}/manifests/{reference}",
            Endpoint::Blob => "/v2/{name}/blobs/{digest}",
            Endpoint::Uploads => "/v2/{name}/blobs/uploads/",
            Endpoint::Upload => "/v2/{name}/blobs/uploads/{id}",
            Endpoint::Referrers => "/v2/{name}/referrers/{digest}",
            Endpoint::Sif => "/v2/{name}/sif/{reference}",
        }
    }

    /// The route template under the `library://` clients' prefix.
    pub fn library_template(self) -> &'static str {
        match self {
            Endpoint::Catalog => "/library/v2/_catalog",
            Endpoint::Tags => "/library/v2/{name}/tags/list",
            Endpoint::Manifest => "/library/v2/{name}/manifests/{reference}",
            Endpoint::Blob => "/library/v2/{name}/blobs/{digest}",
            Endpoint::Uploads => "/library/v2/{name}/blobs/uploads/",
            Endpoint::Upload => "/library/v2/{name}/blobs/uploads/{id}",
            Endpoint::Referrers => "/library/v2/{name}/referrers/{digest}",
            Endpoint::Sif => "/library/v2/{name}/sif/{reference}",
        }
    }
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::Catalog,
        Endpoint::Tags,
        Endpoint::Manifest,
        Endpoint::Blob,
        Endpoint::Uploads,
        Endpoint::Upload,
        Endpoint::Referrers,
        Endpoint::Sif,
    ];
}

/// Route labels outside `/v2/{name}/...`.
const VERSION_CHECK: &str = "/v2/";
const TOKEN: &str = "/auth/token";
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
/// A path no endpoint serves.
const UNMATCHED: &str = "unmatched";
/// The `library://` API (see `http::library`).
const LIBRARY_DISCOVERY: &str = "/assets/config/config.prod.json";
const LIBRARY_VERSION: &str = "/version";
const LIBRARY_REDIRECT: &str = "/v1/oci-redirect";
const LIBRARY_TOKEN_STATUS: &str = "/v1/token-status";
const LIBRARY_IMAGES: &str = "/v1/images/{ref}";
/// Where `library://` clients reach the OCI API (`/library/v2/...`).
pub const LIBRARY_PREFIX: &str = "/library/v2/";

/// Every route label value (metrics export their counters at zero).
pub fn labels() -> impl Iterator<Item = &'static str> {
    [
        VERSION_CHECK,
        TOKEN,
        HEALTHZ,
        READYZ,
        UNMATCHED,
        LIBRARY_DISCOVERY,
        LIBRARY_VERSION,
        LIBRARY_REDIRECT,
        LIBRARY_TOKEN_STATUS,
        LIBRARY_IMAGES,
    ]
    .into_iter()
    .chain(Endpoint::ALL.iter().map(|e| e.template()))
    .chain(Endpoint::ALL.iter().map(|e| e.library_template()))
    .chain(crate::ui::labels())
}

/// Whether a route label is a health probe (`/healthz`, `/readyz`): asked
/// every few seconds by the kubelet, logged only at debug.
pub fn is_probe(route: &str) -> bool {
    route == HEALTHZ || route == READYZ
}

/// The route template of a request path, for metrics and logs: never a
/// repository name, digest or tag.
pub fn template(path: &str) -> &'static str {
    match path {
        "/v2" | "/v2/" => VERSION_CHECK,
        "/auth/token" => TOKEN,
        "/healthz" => HEALTHZ,
        "/readyz" => READYZ,
        LIBRARY_DISCOVERY => LIBRARY_DISCOVERY,
        LIBRARY_VERSION => LIBRARY_VERSION,
        LIBRARY_REDIRECT => LIBRARY_REDIRECT,
        LIBRARY_TOKEN_STATUS => LIBRARY_TOKEN_STATUS,
        _ if path.starts_with("/v1/images/") => LIBRARY_IMAGES,
        _ => match path.strip_prefix(LIBRARY_PREFIX) {
            Some(rest) => endpoint(rest).map_or(UNMATCHED, Endpoint::library_template),
            None => match path.strip_prefix("/v2/") {
                Some(rest) => endpoint(rest).map_or(UNMATCHED, Endpoint::template),
                None => crate::ui::route_template(path).unwrap_or(UNMATCHED),
            },
        },
    }
}

impl Route {
    /// The repository name, for the endpoints that have one.
    pub fn name_mut(&mut self) -> Option<&mut String> {
        match self {
            Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Uploads { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. }
            | Route::Sif { name, .. } => Some(name),
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        match self {
            Route::Catalog => Endpoint::Catalog,
            Route::Tags { .. } => Endpoint::Tags,
            Route::Manifest { .. } => Endpoint::Manifest,
            Route::Blob { .. } => Endpoint::Blob,
            Route::Uploads { .. } => Endpoint::Uploads,
            Route::Upload { .. } => Endpoint::Upload,
            Route::Referrers { .. } => Endpoint::Referrers,
            Route::Sif { .. } => Endpoint::Sif,
        }
    }
}

/// Splits `rest` into the endpoint and how many leading segments form the
/// repository name (the last segment, if any, is the endpoint's argument).
fn split(segs: &[&str]) -> Option<(Endpoint, usize)> {
    let n = segs.len();
    if n == 1 && segs[0] == "_catalog" {
        return Some((Endpoint::Catalog, 0));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let endpoint = if segs[n - 1].is_empty() {
            Endpoint::Uploads
        } else {
            Endpoint::Upload
        };
        return Some((endpoint, n - 3));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Some((Endpoint::Uploads, n - 2));
    }
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some((Endpoint::Tags, n - 2));
    }
    if n >= 3 && !segs[n - 1].is_empty() {
        let endpoint = match segs[n - 2] {
            "manifests" => Endpoint::Manifest,
            "blobs" => Endpoint::Blob,
            "referrers" => Endpoint::Referrers,
            "sif" => Endpoint::Sif,
            _ => return None,
        };
        return Some((endpoint, n - 2));
    }
    None
}

/// The endpoint `rest` (the path after `/v2/`) names, whether or not its
/// repository name is valid.
pub fn endpoint(rest: &str) -> Option<Endpoint> {
    let segs: Vec<&str> = rest.split('/').collect();
    split(&segs).map(|(endpoint, _)| endpoint)
}

/// The part of a request path after `/v2/`, percent-decoded. Bytes that are
/// not UTF-8 become U+FFFD, which no name, tag or digest admits: such a path
/// gets the grammar's error in the spec's JSON, like any other bad name.
pub fn rest_of(path: &str) -> String {
    let rest = path
        .strip_prefix(LIBRARY_PREFIX)
        .or_else(|| path.strip_prefix("/v2/"))
        .unwrap_or(path);
    percent_encoding::percent_decode_str(rest)
        .decode_utf8_lossy()
        .into_owned()
}

/// `rest` is the path after `/v2/`, without query.
pub fn parse(rest: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = rest.split('/').collect();
    let (endpoint, k) = split(&segs).ok_or_else(not_found)?;
    if endpoint == Endpoint::Catalog {
        return Ok(Route::Catalog);
    }
    let name = name(&segs[..k])?;
    let last = segs.last().map(|s| s.to_string()).unwrap_or_default();
    Ok(match endpoint {
        Endpoint::Catalog => Route::Catalog,
        Endpoint::Tags => Route::Tags { name },
        Endpoint::Manifest => Route::Manifest {
            name,
            reference: last,
        },
        Endpoint::Blob => Route::Blob { name, digest: last },
        Endpoint::Uploads => Route::Uploads { name },
        Endpoint::Upload => Route::Upload { name, id: last },
        Endpoint::Referrers => Route::Referrers { name, digest: last },
        Endpoint::Sif => Route::Sif {
            name,
            reference: last,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            parse("a/b/c/manifests/latest").unwrap(),
            Route::Manifest {
                name: "a/b/c".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            parse("x/blobs/uploads/").unwrap(),
            Route::Uploads { name: "x".into() }
        );
        assert_eq!(
            parse("x/blobs/uploads").unwrap(),
            Route::Uploads { name: "x".into() }
        );
        assert_eq!(
            parse("x/y/blobs/uploads/abc").unwrap(),
            Route::Upload {
                name: "x/y".into(),
                id: "abc".into()
            }
        );
        // A repository may itself be called "manifests" or "blobs".
        assert_eq!(
            parse("blobs/manifests/v1").unwrap(),
            Route::Manifest {
                name: "blobs".into(),
                reference: "v1".into()
            }
        );
        assert_eq!(
            parse("a/tags/list").unwrap(),
            Route::Tags { name: "a".into() }
        );
        assert_eq!(
            parse("../etc/manifests/x").unwrap_err().code,
            Code::NameInvalid
        );
        assert_eq!(parse("A/manifests/x").unwrap_err().code, Code::NameInvalid);
        assert!(parse("a/unknown/x").is_err());
        // Not UTF-8 once decoded: a name the grammar refuses.
        assert_eq!(
            parse(&rest_of("/v2/kn%C3%28own/tags/list"))
                .unwrap_err()
                .code,
            Code::NameInvalid
        );
        assert_eq!(rest_of("/v2/a%2Fb/tags/list"), "a/b/tags/list");
        assert_eq!(rest_of("/library/v2/a/b/tags/list"), "a/b/tags/list");
        assert_eq!(
            parse("hpc/app/sif/sha256:00").unwrap(),
            Route::Sif {
                name: "hpc/app".into(),
                reference: "sha256:00".into()
            }
        );
    }

    #[test]
    fn templates_hold_no_names() {
        for (rest, template) in [
            ("_catalog", "/v2/_catalog"),
            ("a/b/tags/list", "/v2/{name}/tags/list"),
            ("a/b/manifests/latest", "/v2/{name}/manifests/{reference}"),
            ("a/blobs/sha256:00", "/v2/{name}/blobs/{digest}"),
            ("a/blobs/uploads/", "/v2/{name}/blobs/uploads/"),
            ("a/blobs/uploads", "/v2/{name}/blobs/uploads/"),
            ("a/blobs/uploads/xyz", "/v2/{name}/blobs/uploads/{id}"),
            ("a/referrers/sha256:00", "/v2/{name}/referrers/{digest}"),
            ("hpc/app/sif/v1", "/v2/{name}/sif/{reference}"),
            // An invalid name still has a template.
            ("A/manifests/x", "/v2/{name}/manifests/{reference}"),
        ] {
            assert_eq!(
                endpoint(rest).map(Endpoint::template),
                Some(template),
                "{rest}"
            );
            if let Ok(route) = parse(rest) {
                assert_eq!(route.endpoint().template(), template, "{rest}");
            }
        }
        assert_eq!(endpoint("a/unknown/x"), None);
        assert_eq!(endpoint("_catalog/x"), None);
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn path_templates() {
        for (path, want) in [
            ("/v2/", "/v2/"),
            ("/v2", "/v2/"),
            ("/v2/_catalog", "/v2/_catalog"),
            (
                "/v2/team/app/manifests/v1",
                "/v2/{name}/manifests/{reference}",
            ),
            ("/v2/app/blobs/uploads/", "/v2/{name}/blobs/uploads/"),
            (
                "/v2/app/blobs/uploads/0f0f",
                "/v2/{name}/blobs/uploads/{id}",
            ),
            ("/auth/token", "/auth/token"),
            ("/healthz", "/healthz"),
            ("/v2/app/secret-place", "unmatched"),
            (
                "/library/v2/hpc/a/b/manifests/v1",
                "/library/v2/{name}/manifests/{reference}",
            ),
            ("/library/v2/x/y", "unmatched"),
            ("/v1/oci-redirect", "/v1/oci-redirect"),
            ("/v1/images/a/b/c:latest", "/v1/images/{ref}"),
            ("/v1/entities/a", "unmatched"),
            ("/etc/passwd", "unmatched"),
        ] {
            assert_eq!(template(path), want, "{path}");
            assert!(labels().any(|l| l == want), "{want} is not a label");
        }
    }
}
