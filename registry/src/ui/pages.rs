//! The UI's page handlers: parse the request, check what the visitor may
//! see, ask the service, render. Form posts (log in, log out, delete a
//! tag) are checked for their origin and CSRF token first.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde::Deserialize;

use super::render::{self, Chrome};
use super::session::{self, CsrfError};
use super::{Target, Visitor};
use crate::auth::{Action, SESSION_TTL};
use crate::http::AppState;
use crate::http::access;
use crate::http::errors::ApiError;
use crate::service::browse::PageRequest;

/// Repositories per page of the list.
const REPOSITORIES_PER_PAGE: u32 = 50;
/// Tags per page of a repository.
const TAGS_PER_PAGE: u32 = 50;
/// Runs on the operations page.
const RECENT_RUNS: u32 = 20;

/// Query parameters of the pages (all optional; junk is ignored).
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    q: Option<String>,
    page: Option<String>,
    deleted: Option<String>,
    next: Option<String>,
}

impl PageQuery {
    fn page(&self) -> Option<u32> {
        self.page.as_deref().and_then(|p| p.parse().ok())
    }
}

fn chrome(state: &AppState, v: &Visitor) -> Chrome {
    Chrome {
        user: v.user().map(str::to_string),
        access_control: state.access.is_some(),
        csrf: v.csrf.clone(),
        now_ms: crate::meta::now_ms(),
        host: v.host().to_string(),
        plain_http: !v.https(),
        here: v.here.clone(),
    }
}

/// An HTML response: never cached (it depends on who asks), framed by no
/// one, scripts and styles only from here, forms only posted here.
fn html(v: &Visitor, status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Some(cookie) = v.csrf_cookie() {
        h.append(header::SET_COOKIE, cookie);
    }
    r
}

/// An error page with the status and message of `e`.
fn error_page(state: &AppState, v: &Visitor, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE => "Unavailable",
        s if s.is_client_error() => "Cannot do that",
        _ => "Something went wrong",
    };
    html(
        v,
        e.status,
        render::error(&chrome(state, v), title, &e.message),
    )
}

/// What anyone is told of a repository they may not pull: that it is not
/// known, as one that does not exist.
fn unknown(name: &str) -> ApiError {
    crate::service::ServiceError::NameUnknown(name.to_string()).into()
}

/// `GET /ui/`: the repositories the visitor may pull.
pub async fn repositories(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<PageQuery>,
) -> Response {
    let query = q.q.clone().unwrap_or_default();
    let page = PageRequest::new(q.page(), None, REPOSITORIES_PER_PAGE);
    let visible = |name: &str| access::may_pull(&state, &v.caller, name);
    match state
        .registry
        .repository_list(query.trim(), page, &visible)
        .await
    {
        Ok(mut list) => {
            list.query = query;
            html(
                &v,
                StatusCode::OK,
                render::repositories(&chrome(&state, &v), &list),
            )
        }
        Err(e) => error_page(&state, &v, e.into()),
    }
}

/// `GET /ui/r/NAME` and `GET /ui/r/NAME/-/manifests/REFERENCE`.
pub async fn repository(
    State(state): State<AppState>,
    v: Visitor,
    Path(rest): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let target = match Target::parse(&rest) {
        Some(t @ (Target::Repository(_) | Target::Manifest(..))) => t,
        _ => return error_page(&state, &v, crate::http::route::not_found()),
    };
    if !access::may(&state, &v.caller, target.name(), Action::Pull) {
        return error_page(&state, &v, unknown(target.name()));
    }
    let repo = state.registry.repository(target.name());
    let c = chrome(&state, &v);
    match &target {
        Target::Manifest(_, reference) => match repo.manifest_view(reference).await {
            Ok(view) => html(
                &v,
                StatusCode::OK,
                render::manifest(&c, &view, &reference.to_string()),
            ),
            Err(e) => error_page(&state, &v, e.into()),
        },
        _ => {
            let page = PageRequest::new(q.page(), None, TAGS_PER_PAGE);
            match repo.view(page).await {
                Ok(view) => {
                    let can_delete = access::may(&state, &v.caller, &view.name, Action::Delete);
                    let notice = q
                        .deleted
                        .filter(|t| crate::oci::names::is_valid_tag(t))
                        .map(render::Notice::Deleted);
                    html(
                        &v,
                        StatusCode::OK,
                        render::repository(&c, &view, can_delete, notice.as_ref()),
                    )
                }
                Err(e) => error_page(&state, &v, e.into()),
            }
        }
    }
}

/// `POST /ui/r/NAME/-/tags/TAG/delete`: deletes the tag (not the manifest),
/// as `DELETE /v2/NAME/manifests/TAG` does, for a visitor who may delete.
pub async fn delete_tag(
    State(state): State<AppState>,
    v: Visitor,
    Path(rest): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(e) = session::check_form(&v.headers, &v.origins(), form.get("csrf")) {
        return refused(&state, &v, e);
    }
    let Some(Target::DeleteTag(name, tag)) = Target::parse(&rest) else {
        return error_page(&state, &v, crate::http::route::not_found());
    };
    if !access::may(&state, &v.caller, &name, Action::Pull) {
        return error_page(&state, &v, unknown(&name));
    }
    if !access::may(&state, &v.caller, &name, Action::Delete) {
        let who = v.user().unwrap_or("anonymous");
        let e = ApiError::new(
            crate::http::errors::Code::Denied,
            format!("{who} may not delete in repository `{name}`"),
        )
        .with_status(StatusCode::FORBIDDEN);
        return error_page(&state, &v, e);
    }
    let reference = crate::oci::names::TagOrDigest::Tag(tag.clone());
    match state
        .registry
        .repository(&name)
        .delete_manifest(&reference)
        .await
    {
        Ok(()) => {
            tracing::info!(repository = %name, tag = %tag, user = v.user().unwrap_or(""), "tag deleted from the web UI");
            see_other(&format!("{}?deleted={tag}", render::repository_href(&name)))
        }
        Err(e) => error_page(&state, &v, e.into()),
    }
}

/// `GET /ui/operations`: for logged-in visitors when access control is on.
pub async fn operations(State(state): State<AppState>, v: Visitor) -> Response {
    if state.access.is_some() && v.user().is_none() {
        return see_other(&render::login_href("/ui/operations"));
    }
    match state.registry.operations(RECENT_RUNS).await {
        Ok(ops) => html(
            &v,
            StatusCode::OK,
            render::operations(&chrome(&state, &v), &ops),
        ),
        Err(e) => error_page(&state, &v, e.into()),
    }
}

/// Where to go after logging in: a UI page, nowhere else.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

/// `GET /ui/login`
pub async fn login_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<PageQuery>,
) -> Response {
    let next = next_page(q.next.as_deref());
    html(
        &v,
        StatusCode::OK,
        render::login(&chrome(&state, &v), &next, "", None),
    )
}

/// `POST /ui/login`: checks the credentials as the token endpoint does
/// (same rate limit, same failure metrics) and keeps a session token in
/// an HttpOnly cookie.
pub async fn login(State(state): State<AppState>, v: Visitor, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if let Err(e) = session::check_form(&v.headers, &v.origins(), form.get("csrf")) {
        return refused(&state, &v, e);
    }
    let next = next_page(form.get("next"));
    let Some(access_control) = &state.access else {
        return see_other(&next);
    };
    let user = form.get("username").unwrap_or_default().trim().to_string();
    let password = form.get("password").unwrap_or_default().to_string();
    let failed = |status: StatusCode, message: &str| {
        html(
            &v,
            status,
            render::login(&chrome(&state, &v), &next, &user, Some(message)),
        )
    };
    if user.is_empty() {
        return failed(StatusCode::BAD_REQUEST, "Enter a user name.");
    }
    let identity = match access::login(access_control, v.client, user.clone(), password, "ui").await
    {
        Ok(identity) => identity,
        Err(e) => return failed(e.status, &e.message),
    };
    let token = match access_control.sessions.issue(identity.name(), Vec::new()) {
        Ok((token, _)) => token,
        Err(e) => return error_page(&state, &v, ApiError::internal(e)),
    };
    tracing::info!(user = %identity.name(), "logged in to the web UI");
    let mut r = see_other(&next);
    let cookie = session::set_cookie(
        session::SESSION_COOKIE,
        &token,
        SESSION_TTL.as_secs(),
        v.https(),
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, cookie);
    }
    r
}

/// `POST /ui/logout`: forgets the session cookie.
pub async fn logout(State(state): State<AppState>, v: Visitor, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if let Err(e) = session::check_form(&v.headers, &v.origins(), form.get("csrf")) {
        return refused(&state, &v, e);
    }
    let mut r = see_other("/ui/");
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", 0, v.https());
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, cookie);
    }
    r
}

fn refused(state: &AppState, v: &Visitor, e: CsrfError) -> Response {
    tracing::warn!(error = %e, "web UI form refused");
    let e = ApiError::new(crate::http::errors::Code::Denied, e.to_string())
        .with_status(StatusCode::FORBIDDEN);
    error_page(state, v, e)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A posted form's fields.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_sends_back_to_ui_pages_only() {
        assert_eq!(next_page(Some("/ui/r/a?page=2")), "/ui/r/a?page=2");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/v2/",
            "/ui\\..\\x",
        ] {
            assert_eq!(next_page(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(next_page(None), "/ui/");
    }

    #[test]
    fn forms_parse() {
        let f = Form::parse(b"csrf=abc&next=%2Fui%2F&username=al+ice");
        assert_eq!(f.get("csrf"), Some("abc"));
        assert_eq!(f.get("next"), Some("/ui/"));
        assert_eq!(f.get("username"), Some("al ice"));
        assert_eq!(f.get("password"), None);
    }
}
