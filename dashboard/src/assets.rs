//! The map page and its library, embedded in the binary at build time (see `build.rs`),
//! served with ETags and cache headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

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
    let Some((body, etag)) = find(path) else {
        return crate::api::ApiError::NotFound(format!("no such file: {path}")).into_response();
    };
    let path = if path == "/" { "/index.html" } else { path };
    let cache = if path.starts_with("/vendor/") { "public, max-age=86400" } else { "no-cache" };
    let mut response = if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
