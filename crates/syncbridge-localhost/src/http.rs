//! The host's HTTP front door on `127.0.0.1:<http_port>`:
//!
//! 1. `/<routePrefix>/<route>` for HTTP-triggered functions (route templates
//!    matched, `methods` enforced → 405):
//!    - **HTTP-only** functions (exactly one `httpTrigger` in, one `http` out, with
//!      `enableProxyingHttpRequest` or `enableForwardingHttpRequest`, §4d) are
//!      **proxied**: same method, the original path (with the prefix) and raw query,
//!      all end-to-end headers, the raw body bytes untouched; the handler's status,
//!      headers and body come back as they are. `X-Forwarded-*` and the invocation
//!      id header are added, hop-by-hop headers dropped, redirects not followed;
//!    - other HTTP functions get the §4c JSON payload at `/<FunctionName>` and the
//!      client gets `Outputs.<res>` (status, headers, body); a failed invocation is
//!      a 500, as in Azure.
//!      Authorization levels are not enforced locally (Core Tools doesn't either).
//! 2. `POST /{queue}/messages`: the Service Bus REST send endpoint ([`crate::sb_rest`]).
//! 3. Anything else: 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::HostState;
use crate::app::{FunctionSpec, Trigger};
use crate::events::TriggerKind;
use crate::invoke::{error_chain, invoke};
use crate::payload;
use crate::sb_rest;

/// Largest request body the front door buffers.
pub const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;

/// The router (one fallback handler doing its own matching, so function routes and
/// queue paths with slashes both work).
pub(crate) fn router(host: Arc<HostState>) -> axum::Router {
    axum::Router::new()
        .fallback(front_door)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(host)
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

async fn front_door(
    State(host): State<Arc<HostState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if let Some(rest) = strip_route_prefix(path, &host.route_prefix) {
        let mut wrong_method = false;
        for f in host.specs.iter() {
            let Trigger::Http { route, methods, .. } = &f.trigger else {
                continue;
            };
            let Some(params) = route.matches(rest) else {
                continue;
            };
            if !methods.is_empty()
                && !methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(method.as_str()))
            {
                wrong_method = true;
                continue;
            }
            return if f.http_only {
                proxy(&host, f, method, &uri, &headers, body).await
            } else {
                json_invocation(&host, f, method, &uri, &headers, body, params).await
            };
        }
        if wrong_method {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed for this function",
            )
                .into_response();
        }
    }
    if method == Method::POST
        && let Some(queue) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix("/messages"))
        && !queue.is_empty()
    {
        let queue = crate::route::percent_decode(queue);
        let q = host.queue.clone();
        let reply =
            tokio::task::spawn_blocking(move || sb_rest::handle_send(&q, &queue, &headers, &body))
                .await
                .unwrap_or_else(|e| sb_rest::RestReply {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: e.to_string(),
                });
        let ct = if reply.body.is_empty() {
            "text/plain"
        } else {
            "application/xml; charset=utf-8"
        };
        return (reply.status, [("content-type", ct)], reply.body).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        format!("no function or queue at {path}"),
    )
        .into_response()
}

/// `/api/webhooks/x` with prefix `api` → `webhooks/x`; an empty prefix keeps the whole path.
fn strip_route_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let path = path.trim_start_matches('/');
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(path);
    }
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

async fn proxy(
    host: &HostState,
    f: &FunctionSpec,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let port = match host.wait_ready(&f.name).await {
        Ok(p) => p,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://127.0.0.1:{port}{path_and_query}");
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(h) = headers.get("host") {
        out.insert("x-forwarded-host", h.clone());
    }
    out.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let invocation_id = syncbridge_localqueue::new_uuid();
    if let Ok(v) = HeaderValue::from_str(&invocation_id) {
        out.insert(HeaderName::from_static("x-azure-functions-invocationid"), v);
    }
    let sent = host
        .client
        .request(method.clone(), &url)
        .headers(out)
        .timeout(host.invocation_timeout)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(function = %f.name, %invocation_id, "proxying {method} {url} failed: {}", error_chain(&e));
            return (
                StatusCode::BAD_GATEWAY,
                format!("handler unreachable: {}", error_chain(&e)),
            )
                .into_response();
        }
    };
    let status = answer.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response_headers.append(name.clone(), value.clone());
        }
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("handler answer broken: {e}"),
            )
                .into_response();
        }
    };
    tracing::debug!(function = %f.name, %invocation_id, %status, "proxied {method} {path_and_query}");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

async fn json_invocation(
    host: &HostState,
    f: &FunctionSpec,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    params: BTreeMap<String, String>,
) -> Response {
    let Trigger::Http { binding, .. } = &f.trigger else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let now = host.clock.now();
    let request = payload::HttpRequestParts {
        url: format!(
            "http://{}{}",
            host.http_addr,
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
        method: method.as_str().to_string(),
        headers: headers.clone(),
        params,
        body,
    };
    let invoked = invoke(host, f, TriggerKind::Http, || {
        payload::http(&f.name, binding, &request, now)
    })
    .await;
    let invoked = match invoked {
        Ok(i) => i,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.reason).into_response(),
    };
    let out_binding = f.http_output.as_deref().unwrap_or("res");
    let out = if out_binding == "$return" {
        Some(syncbridge_protocol::HttpOutput::from_value(
            &invoked.response.return_value,
        ))
    } else {
        invoked.response.http_output_of(out_binding)
    };
    match out {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Some(Ok(out)) => {
            let mut response = Response::new(Body::from(out.body_bytes()));
            *response.status_mut() =
                StatusCode::from_u16(out.status_code).unwrap_or(StatusCode::OK);
            for (k, v) in &out.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    response.headers_mut().append(k, v);
                }
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Route-prefix stripping is case-insensitive and an empty prefix keeps the path.
    #[test]
    fn route_prefix() {
        assert_eq!(
            strip_route_prefix("/api/webhooks/x", "api"),
            Some("webhooks/x")
        );
        assert_eq!(
            strip_route_prefix("/API/webhooks/x", "api"),
            Some("webhooks/x")
        );
        assert_eq!(strip_route_prefix("/apix/webhooks", "api"), None);
        assert_eq!(strip_route_prefix("/webhooks/x", ""), Some("webhooks/x"));
    }
}
