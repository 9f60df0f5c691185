//! Which web pages may open `/ws`: a browser sends the page's `Origin` with every
//! WebSocket upgrade, and a page on another site must not be able to read the live
//! feed through a visitor's browser. Clients that are not browsers send no `Origin`
//! and are not concerned.

use axum::http::{HeaderMap, header};

/// The origins allowed to open `/ws`, besides the dashboard's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// Any origin (`*`).
    any: bool,
    /// Exact origins, `scheme://host[:port]`, lower case.
    listed: Vec<String>,
}

impl AllowedOrigins {
    /// Only the dashboard's own origin (the default).
    pub fn same_origin() -> Self {
        Self::default()
    }

    /// From `--allowed-origin` values: `*` for any, or origins such as
    /// `https://ops.example.org` (scheme, host and optional port; no path).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, String> {
        let mut allowed = Self::default();
        for value in values {
            let v = value.as_ref().trim().trim_end_matches('/');
            if v == "*" {
                allowed.any = true;
                continue;
            }
            let Some((scheme, authority)) = v.split_once("://") else {
                return Err(format!(
                    "allowed origin {v:?}: expected scheme://host[:port], e.g. https://ops.example.org, or *"
                ));
            };
            if !matches!(scheme, "http" | "https")
                || authority.is_empty()
                || authority.contains(['/', '?', '#', ' ', '@'])
            {
                return Err(format!(
                    "allowed origin {v:?}: expected http(s)://host[:port] with no path, or *"
                ));
            }
            allowed.listed.push(v.to_ascii_lowercase());
        }
        Ok(allowed)
    }

    /// Whether a request with these headers may open `/ws`: no `Origin` (not a
    /// browser), the same host as the request's `Host`, or an allowed origin.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        if self.any {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if self.listed.contains(&origin) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match (origin.split_once("://"), host) {
            (Some((scheme, authority)), Some(host)) => {
                matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host.trim())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_by_default_and_listed_ones_besides() {
        let own = AllowedOrigins::same_origin();
        assert!(own.allows(&headers(None, "localhost:8080")));
        assert!(own.allows(&headers(Some("http://localhost:8080"), "localhost:8080")));
        assert!(own.allows(&headers(Some("HTTPS://Map.Example.org"), "map.example.org")));
        assert!(!own.allows(&headers(Some("http://evil.example"), "localhost:8080")));
        assert!(!own.allows(&headers(Some("http://localhost:9999"), "localhost:8080")));
        assert!(!own.allows(&headers(Some("null"), "localhost:8080")));
        let listed = AllowedOrigins::parse(&["https://ops.example.org/"]).unwrap();
        assert!(listed.allows(&headers(Some("https://ops.example.org"), "10.0.0.5:8080")));
        assert!(!listed.allows(&headers(Some("http://ops.example.org"), "10.0.0.5:8080")));
        let any = AllowedOrigins::parse(&["*"]).unwrap();
        assert!(any.allows(&headers(Some("http://evil.example"), "localhost:8080")));
    }

    #[test]
    fn malformed_origins_are_refused_with_the_reason() {
        for bad in ["ops.example.org", "ftp://x", "https://x/path", "https://"] {
            let err = AllowedOrigins::parse(&[bad]).expect_err(bad);
            assert!(err.contains(bad.trim_end_matches('/')), "{err}");
        }
    }
}
