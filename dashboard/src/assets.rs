//! The map page and its library, embedded in the binary at build time (see `build.rs`),
//! served with ETags and cache headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// For working on the page: when `STREAMCITY_WEB_DIR` names a folder, the page's own
/// files are read from it on every request (no cache), so edits show on reload without
/// a rebuild. The library under `/vendor/` always comes from the binary.
fn web_dir() -> Option<&'static std::path::Path> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("STREAMCITY_WEB_DIR").map(std::path::PathBuf::from))
        .as_deref()
}

fn from_disk(path: &str) -> Option<Response> {
    let dir = web_dir()?;
    let rel = path.trim_start_matches('/');
    // Only plain relative paths: no way out of the folder.
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == ".." || c.starts_with('.'))
        || rel.starts_with("vendor/")
    {
        return None;
    }
    let body = std::fs::read(dir.join(rel)).ok()?;
    Some(
        (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
    )
}

/// The embedded file at `path`: (content, ETag).
pub fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.0 == path).map(|a| (a.1, a.2))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Serves an embedded file. The page's own files must be revalidated (`no-cache`, with
/// an ETag, so an unchanged file costs a 304); the versioned library is cached a day.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if let Some(response) = from_disk(if path == "/" { "/index.html" } else { path }) {
        return response;
    }
    let Some((body, etag)) = find(path) else {
        return crate::api::ApiError::NotFound(format!("no such file: {path}")).into_response();
    };
    let path = if path == "/" { "/index.html" } else { path };
    let cache = if path.starts_with("/vendor/") {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
