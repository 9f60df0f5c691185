//! Access control: a bearer token, required for what writes (acknowledging, muting)
//! and, when asked, for what reads (`/ws`, `/api`, `/gtfs-rt`). Given as
//! `Authorization: Bearer <token>`, or as `?access_token=<token>` where a header cannot
//! be set (a browser's WebSocket). Compared in constant time; a missing or wrong token
//! is answered `401` with a JSON error. The page, static files, `/metrics`, `/healthz`
//! and `/readyz` stay open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::live::Live;

/// Who may do what.
#[derive(Debug, Clone, Default)]
pub struct Access {
    token: Option<Arc<str>>,
    reads: bool,
}

impl Access {
    /// Writes need `token` (none: no writes are taken); reads need it too when
    /// `reads`.
    pub fn new(token: Option<String>, reads: bool) -> Self {
        Access {
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            reads,
        }
    }

    /// Whether a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether reads need the token.
    pub fn reads_need_token(&self) -> bool {
        self.reads && self.token.is_some()
    }

    /// Checks a write request's token.
    pub fn check_write(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
        match &self.token {
            None => Err(refuse(
                StatusCode::FORBIDDEN,
                "this dashboard takes no actions: start it with --api-token (or STREAMCITY_API_TOKEN)",
            )),
            Some(token) => check(token, headers, query),
        }
    }

    /// Checks a read request's token, when reads need one.
    pub fn check_read(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
        match &self.token {
            Some(token) if self.reads => check(token, headers, query),
            _ => Ok(()),
        }
    }
}

/// The token a request carries: its bearer header, else its `access_token` parameter.
fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer.or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
    })
}

fn check(token: &str, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
    match presented(headers, query) {
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "a token is required: send Authorization: Bearer <token>",
        )),
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(refuse(StatusCode::UNAUTHORIZED, "the token is not valid")),
    }
}

/// A request refused: 401 (no or a wrong token) or 403 (no writes taken), answered
/// with a JSON error.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    status: StatusCode,
    why: &'static str,
}

fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal { status, why }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "error": self.why }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"streamcity\""),
            );
        }
        response
    }
}

/// Middleware: reads need the token when the dashboard says so. An `access_token`
/// parameter is taken out of the query before the handler sees it.
pub async fn reads(State(live): State<Arc<Live>>, mut request: Request, next: Next) -> Response {
    if let Err(refused) = live
        .access()
        .check_read(request.headers(), request.uri().query())
    {
        return refused.into_response();
    }
    if let Some(query) = request.uri().query()
        && query.split('&').any(|p| p.starts_with("access_token="))
    {
        let rest: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("access_token="))
            .collect();
        let path = request.uri().path();
        let target = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        if let Ok(uri) = target.parse() {
            *request.uri_mut() = uri;
        }
    }
    next.run(request).await
}
