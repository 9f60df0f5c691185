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

/// Every module a JavaScript module imports statically (`import … from '…'`, `import '…'`,
/// `export … from '…'`, on one line or over several), resolved against the module's
/// folder. Bare specifiers (neither `/`, `./` nor `../`) are not URLs and are skipped.
fn js_imports(js: &str, base: &str) -> Vec<String> {
    let folder = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let starts = [
        "import ", "import{", "import*", "import'", "import\"", "export {", "export{", "export *",
        "export*",
    ];
    let mut out = Vec::new();
    let mut statement = String::new();
    for line in js.lines().map(str::trim) {
        if statement.is_empty() && !starts.iter().any(|s| line.starts_with(s)) {
            continue;
        }
        statement.push_str(line);
        statement.push('\n');
        match specifier(&statement) {
            Some(spec) => {
                if spec.starts_with('/') {
                    out.push(normalize(spec));
                } else if spec.starts_with("./") || spec.starts_with("../") {
                    out.push(normalize(&format!("{folder}{spec}")));
                }
                statement.clear();
            }
            // `export { a, b };` and the like: no module named.
            None if line.ends_with(';') => statement.clear(),
            None => {}
        }
    }
    out
}

/// The quoted module specifier of an import or re-export statement, once it is complete.
fn specifier(statement: &str) -> Option<&str> {
    let quoted = |s: &str| s.starts_with(['\'', '"']);
    let after = statement
        .strip_prefix("import")
        .map(str::trim_start)
        .filter(|s| quoted(s))
        .or_else(|| {
            statement
                .match_indices("from")
                .map(|(i, _)| statement[i + 4..].trim_start())
                .find(|s| quoted(s))
        })?;
    let quote = after.chars().next()?;
    let end = after[1..].find(quote)?;
    Some(&after[1..=end])
}

/// `/a/./b/../c.js` → `/a/c.js`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
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
    let mut modules: Vec<(String, String)> = Vec::new(); // (imported module, importer)
    for path in &local {
        let (status, ctype, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path} is empty");
        let ctype = ctype.unwrap();
        if path.ends_with(".js") {
            assert!(ctype.starts_with("text/javascript"), "{path}: {ctype}");
            if !path.starts_with("/vendor/") {
                for module in js_imports(std::str::from_utf8(&body).unwrap(), path) {
                    modules.push((module, path.clone()));
                }
            }
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
    // The page's ES modules and theirs in turn: the browser refuses a module script that
    // is not served with a JavaScript type.
    let mut seen = std::collections::HashSet::new();
    while let Some((path, importer)) = modules.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let (status, ctype, body) = get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}, imported by {importer}");
        assert!(!body.is_empty(), "{path} is empty");
        let ctype = ctype.unwrap();
        assert!(ctype.starts_with("text/javascript"), "{path}: {ctype}");
        for module in js_imports(&String::from_utf8(body).unwrap(), &path) {
            modules.push((module, path.clone()));
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
