//! The admin dashboard's files (`ui/`, React), embedded at build time
//! (`build.rs` reads `ui/dist`) and served at `/api/v1/admin/` without a
//! key: the page itself signs in ([`crate::session`]) and then calls this
//! API like any client.
//!
//! Hashed files under `assets/` are cached for a year (`immutable`);
//! `index.html` is revalidated every time and answers every other path
//! (the dashboard routes in the browser). When the build was missing, a
//! page says how to make it.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::problem::ApiError;
use crate::session::DASHBOARD_PATH;

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>syncbridge dashboard</title></head>\
<body><main><h1>Dashboard not built</h1><p>The dashboard was not built into this binary: run <code>scripts/ui</code> (or <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>), then rebuild.</p></main></body></html>";

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The content type of a file name (by extension).
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn respond(path: &str, body: &'static [u8], cache: &'static str) -> Response {
    let mut r = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type(path)),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    r
}

fn index() -> Response {
    match asset("index.html") {
        Some(b) => respond("index.html", b, "no-cache"),
        None => respond("index.html", NOT_BUILT.as_bytes(), "no-store"),
    }
}

/// `GET /v1/admin`: to the dashboard's folder.
pub async fn redirect() -> Redirect {
    Redirect::permanent(DASHBOARD_PATH)
}

/// `GET /v1/admin/`: the page.
pub async fn root() -> Response {
    index()
}

/// `GET /v1/admin/{*path}`: a built file, else the page (browser routes).
pub async fn file(Path(path): Path<String>) -> Response {
    if let Some(b) = asset(&path) {
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return respond(&path, b, cache);
    }
    if path.starts_with("assets/") {
        return ApiError::NotFound(format!("no dashboard file {path}")).into_response();
    }
    index()
}

/// Whether this binary has the dashboard built in.
pub fn built() -> bool {
    asset("index.html").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
