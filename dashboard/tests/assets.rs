//! The map page and everything it references are served, with the right types.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use streamcity_core::Topics;
use streamcity_dashboard::{Live, LiveConfig, app};
use streamcity_network::{SyntheticConfig, synthetic};
use tower::ServiceExt;

fn router() -> axum::Router {
    let city = Arc::new(synthetic::generate(SyntheticConfig::default()));
    app(Arc::new(Live::new(
        city,
        Topics::default(),
        LiveConfig::default(),
    )))
}

async fn get(path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let ctype = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ctype, body)
}

/// Every value of `attr="..."` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// Every `url(...)` in a stylesheet, resolved against the stylesheet's folder.
fn css_urls(css: &str, base: &str) -> Vec<String> {
    let folder = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    css.match_indices("url(")
        .filter_map(|(i, _)| {
            let rest = &css[i + 4..];
            let inner = rest[..rest.find(')')?].trim_matches(|c| c == '"' || c == '\'');
            if inner.starts_with("data:") || inner.starts_with('#') {
                return None;
            }
            Some(if inner.starts_with('/') {
                inner.to_owned()
            } else {
                format!("{folder}{inner}")
            })
        })
        .collect()
}

#[tokio::test]
async fn the_map_page_and_every_asset_it_references_are_served() {
    let (status, ctype, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.unwrap().starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("id=\"map\""), "the page has a map element");

    let mut refs: Vec<String> = attribute_values(&html, "src");
    refs.extend(attribute_values(&html, "href"));
    let local: Vec<String> = refs
        .into_iter()
        .filter(|r| r.starts_with('/') && !r.starts_with("//"))
        .collect();
    assert!(
        local.iter().any(|r| r.ends_with("leaflet.js")),
        "the page loads Leaflet: {local:?}"
    );
    assert!(
        local.iter().any(|r| r.ends_with(".css")),
        "the page loads a stylesheet: {local:?}"
    );
    // No external resources: the page must work offline.
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the page references the internet"
    );

    let mut checked = 0;
    for path in &local {
        let (status, ctype, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path} is empty");
        let ctype = ctype.unwrap();
        if path.ends_with(".js") {
            assert!(ctype.starts_with("text/javascript"), "{path}: {ctype}");
        }
        if path.ends_with(".css") {
            assert!(ctype.starts_with("text/css"), "{path}: {ctype}");
            for url in css_urls(&String::from_utf8(body).unwrap(), path) {
                let (status, _, _) = get(&url).await;
                assert_eq!(status, StatusCode::OK, "{url}, referenced by {path}");
                checked += 1;
            }
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} assets checked");
}

#[tokio::test]
async fn unchanged_files_are_not_sent_again() {
    let response = router()
        .oneshot(Request::get("/app.js").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let etag = response
        .headers()
        .get(header::ETAG)
        .expect("an ETag")
        .clone();
    assert_eq!(
        response.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-cache"
    );
    let again = router()
        .oneshot(
            Request::get("/app.js")
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn unknown_paths_get_json_404s() {
    for path in ["/nope.js", "/api/nope"] {
        let (status, ctype, body) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(ctype.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("nope"));
    }
}

#[tokio::test]
async fn network_endpoints_describe_the_city() {
    let (status, _, body) = get("/api/routes").await;
    assert_eq!(status, StatusCode::OK);
    let routes: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(routes.as_array().unwrap().len() >= 12);
    assert!(routes[0]["shape"].as_array().unwrap().len() > 2);
    let (_, _, body) = get("/api/stops").await;
    let stops: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(stops.as_array().unwrap().len() >= 300);
    assert!(stops[0]["lat"].as_f64().is_some());
    let (status, _, _) = get("/readyz").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready before any vehicle data"
    );
}
