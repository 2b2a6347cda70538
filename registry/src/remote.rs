//! A client of another OCI registry (an upstream Berth mirrors, or a Berth
//! that `berth ls` lists): plain requests, and the two ways a registry asks
//! for credentials — `Basic` (send them) and the Docker token flow
//! (`Bearer realm=…,scope=…`: fetch a token from the realm, with the
//! credentials if any, and send it). Tokens are kept per scope until they
//! expire, so a busy mirror does not log in for every request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

/// How long a token is used when the token service does not say.
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    #[error("the token service at {realm} answered {status}: {message}")]
    Token {
        realm: String,
        status: StatusCode,
        message: String,
    },
    #[error("the registry's challenge names no token service (realm)")]
    NoRealm,
    #[error("the token service at {realm} returned no token")]
    NoToken { realm: String },
}

pub struct Remote {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
    /// Bearer tokens by scope, with when they stop being used.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Remote {
    /// A client of the registry at `base`, logging in as `credentials` when
    /// asked to.
    pub fn new(
        base: &str,
        credentials: Option<(String, String)>,
        http: reqwest::Client,
    ) -> Result<Self, RemoteError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(RemoteError::BadUrl(base));
        }
        Ok(Self {
            http,
            base,
            credentials,
            tokens: Mutex::default(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `method path` with `accept`; on a challenge, logs in as it asks and
    /// sends again. `scope` (e.g. `repository:library/alpine:pull`) names
    /// the token to try first, if one is kept.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Response, RemoteError> {
        let url = format!("{}{path}", self.base);
        let request = |auth: Option<String>| {
            let mut r = self.http.request(method.clone(), &url);
            if let Some(accept) = accept {
                r = r.header(ACCEPT, accept);
            }
            if let Some(auth) = auth {
                r = r.header(AUTHORIZATION, auth);
            }
            r
        };
        let kept = scope.and_then(|s| self.kept_token(s));
        let response = request(kept.map(|t| format!("Bearer {t}"))).send().await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(challenge) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return Ok(response);
        };
        if challenge.starts_with("Basic") {
            let Some((user, password)) = &self.credentials else {
                return Ok(response);
            };
            return Ok(request(None)
                .basic_auth(user, Some(password))
                .send()
                .await?);
        }
        if !challenge.starts_with("Bearer") {
            return Ok(response);
        }
        let params = parse_challenge(&challenge);
        let (token, life) = self.token(&params).await?;
        let until = Instant::now() + life;
        if let Ok(mut tokens) = self.tokens.lock() {
            if let Some(challenged) = params.get("scope") {
                tokens.insert(challenged.clone(), (token.clone(), until));
            }
            if let Some(scope) = scope {
                tokens.insert(scope.to_string(), (token.clone(), until));
            }
        }
        Ok(request(Some(format!("Bearer {token}"))).send().await?)
    }

    fn kept_token(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let (token, until) = tokens.get(scope)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    /// A token for the challenge's scope, and how long to use it.
    async fn token(
        &self,
        challenge: &BTreeMap<String, String>,
    ) -> Result<(String, Duration), RemoteError> {
        let realm = challenge.get("realm").ok_or(RemoteError::NoRealm)?;
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = challenge.get("service") {
            query.push(("service", service));
        }
        for scope in challenge
            .get("scope")
            .into_iter()
            .flat_map(|s| s.split(' '))
        {
            query.push(("scope", scope));
        }
        let mut request = self.http.get(realm).query(&query);
        if let Some((u, p)) = &self.credentials {
            request = request.basic_auth(u, Some(p));
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(RemoteError::Token {
                realm: realm.clone(),
                status: response.status(),
                message: error_message(response).await,
            });
        }
        let body: Value = response.json().await?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .ok_or_else(|| RemoteError::NoToken {
                realm: realm.clone(),
            })?;
        // Renewed a little before the service says it ends.
        let life = body["expires_in"].as_u64().map_or(DEFAULT_TOKEN_LIFE, |s| {
            Duration::from_secs(s.saturating_sub(5).max(1))
        });
        Ok((token.to_string(), life))
    }
}

/// The message of the spec's error body, or the body itself.
pub async fn error_message(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or(text)
}

/// `Bearer realm="…",service="…",scope="…"` -> its parameters.
pub fn parse_challenge(header: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut rest = header
        .trim_start_matches("Bearer")
        .trim_start_matches("Basic")
        .trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key.to_string(), value.to_string());
        rest = remainder.trim_start_matches(',').trim();
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="http://r/auth/token",service="berth",scope="repository:a:pull registry:catalog:*""#,
        );
        assert_eq!(c["realm"], "http://r/auth/token");
        assert_eq!(c["service"], "berth");
        assert_eq!(c["scope"], "repository:a:pull registry:catalog:*");
        let c = parse_challenge(r#"Basic realm="registry""#);
        assert_eq!(c["realm"], "registry");
        assert!(Remote::new("ftp://x", None, reqwest::Client::new()).is_err());
    }
}
