//! The optional plain-HTTP listener (`http.redirect_listen`): it serves nothing but a
//! permanent redirect to the same path on the HTTPS console, so a bare host name typed
//! into a browser still ends up encrypted. HSTS then keeps the browser on HTTPS.

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// `https://<host from the request, without its port>:<https_port><path>`.
pub fn location(headers: &HeaderMap, uri: &Uri, https_port: u16, fallback_host: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or(fallback_host);
    // Strip a port (but not the colons of a bracketed IPv6 address).
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("https://{name}:{https_port}{path}")
}

/// Serves redirects on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    https_port: u16,
    mut stop: crate::jobs::Stop,
) {
    let fallback = listener
        .local_addr()
        .map_or_else(|_| "localhost".to_owned(), |a| a.ip().to_string());
    let app = axum::Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let to = location(&headers, &uri, https_port, &fallback);
        async move { redirect(to) }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.requested().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "redirect listener failed");
    }
}

fn redirect(to: String) -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [
            (header::LOCATION, to),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::location;
    use axum::http::{HeaderMap, HeaderValue, Uri};

    fn at(host: Option<&str>, uri: &str) -> String {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert("host", HeaderValue::from_str(v).expect("header"));
        }
        location(&h, &uri.parse::<Uri>().expect("uri"), 8443, "10.0.0.1")
    }

    #[test]
    fn redirects_keep_the_name_and_path() {
        assert_eq!(
            at(Some("rs.example:80"), "/a?b=1"),
            "https://rs.example:8443/a?b=1"
        );
        assert_eq!(at(Some("rs.example"), "/"), "https://rs.example:8443/");
        assert_eq!(at(Some("[::1]:80"), "/x"), "https://[::1]:8443/x");
        assert_eq!(at(None, "/x"), "https://10.0.0.1:8443/x");
        assert_eq!(at(Some("evil.example/\\"), "/"), "https://10.0.0.1:8443/");
    }
}
