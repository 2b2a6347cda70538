//! Parses the path under `/v2/` into an endpoint. Repository names have any
//! number of segments, so the endpoint is read from the tail of the path.

use super::errors::{ApiError, Code};
use crate::names::is_valid_name;

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

fn not_found() -> ApiError {
    ApiError::new(Code::Unsupported, "no such endpoint")
        .with_status(axum::http::StatusCode::NOT_FOUND)
}

/// `rest` is the path after `/v2/`, without query.
pub fn parse(rest: &str) -> Result<Route, ApiError> {
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let name = name(&segs[..n - 3])?;
        return Ok(if segs[n - 1].is_empty() {
            Route::Uploads { name }
        } else {
            Route::Upload {
                name,
                id: segs[n - 1].to_string(),
            }
        });
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Route::Uploads {
            name: name(&segs[..n - 2])?,
        });
    }
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Ok(Route::Tags {
            name: name(&segs[..n - 2])?,
        });
    }
    if n >= 3 && !segs[n - 1].is_empty() {
        let last = segs[n - 1].to_string();
        match segs[n - 2] {
            "manifests" => {
                return Ok(Route::Manifest {
                    name: name(&segs[..n - 2])?,
                    reference: last,
                });
            }
            "blobs" => {
                return Ok(Route::Blob {
                    name: name(&segs[..n - 2])?,
                    digest: last,
                });
            }
            "referrers" => {
                return Ok(Route::Referrers {
                    name: name(&segs[..n - 2])?,
                    digest: last,
                });
            }
            _ => {}
        }
    }
    Err(not_found())
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
    }
}
