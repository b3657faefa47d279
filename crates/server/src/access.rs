//! Who may use the server: an optional bearer token on every HTTP endpoint, and the Origin
//! check that keeps another site's page from opening a WebSocket with a visitor's browser
//! (cross-site WebSocket hijacking: browsers send `Origin` but apply no same-origin policy to
//! WebSockets).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The access rules of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// When set, every HTTP request must carry `Authorization: Bearer TOKEN` or `?token=TOKEN`.
    pub token: Option<String>,
    /// Origins (`scheme://host[:port]`) allowed to open `/ws` besides the server's own.
    pub allowed_origins: Vec<String>,
}

/// Middleware on every route: 401 unless the request carries the token (when one is set).
pub(crate) async fn require_token(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &access.token else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    // Browsers' EventSource and WebSocket cannot set headers: the query carries it for them.
    let query = request.uri().query().unwrap_or("").split('&');
    let in_query = query.filter_map(|pair| pair.strip_prefix("token="));
    let mut presented = bearer.into_iter().chain(in_query.map(str::as_bytes));
    if presented.any(|t| same_secret(t, token.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong token: send Authorization: Bearer TOKEN (or ?token=TOKEN)",
    )
        .into_response()
}

/// Compares in time independent of where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Middleware on `/ws`: 403 for a cross-origin upgrade whose origin is not allowed. Requests
/// without `Origin` (non-browser clients, which no other site can drive) pass.
pub(crate) async fn check_origin(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    match origin_refused(request.headers(), &access.allowed_origins) {
        None => next.run(request).await,
        Some(origin) => (
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin WebSocket upgrade from {origin} refused; allow it with --allow-origin {origin}"
            ),
        )
            .into_response(),
    }
}

/// The refused origin, or `None` when the request may go on.
fn origin_refused(headers: &HeaderMap, allowed: &[String]) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let normal = |o: &str| o.trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|a| normal(a) == normal(&text)) {
        return None;
    }
    // Same origin: the Origin's host[:port] is the Host the request was sent to.
    let lower = text.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.as_bytes().eq_ignore_ascii_case(host) => None,
        _ => Some(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origins_same_allowed_absent_pass_others_are_refused() {
        let allowed = ["https://bench.example:8443/".to_owned()];
        let refused = |o, host| origin_refused(&headers(o, host), &allowed);
        assert_eq!(refused(None, "127.0.0.1:80"), None);
        assert_eq!(refused(Some("http://127.0.0.1:80"), "127.0.0.1:80"), None);
        assert_eq!(
            refused(Some("HTTP://LocalHost:8080"), "localhost:8080"),
            None
        );
        assert_eq!(refused(Some("https://BENCH.example:8443"), "x:1"), None);
        assert_eq!(
            refused(Some("http://127.0.0.1:81"), "127.0.0.1:80").as_deref(),
            Some("http://127.0.0.1:81"),
            "another port is another origin"
        );
        assert!(refused(Some("http://evil.example"), "127.0.0.1:80").is_some());
        assert!(refused(Some("null"), "127.0.0.1:80").is_some());
        assert!(
            refused(Some("http://127.0.0.1:80/x"), "127.0.0.1:80").is_some(),
            "an origin has no path"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
