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
//!
//! Bodies: a proxied body is streamed to the handler as it arrives (never
//! held whole in memory), and the handler's answer is streamed back with its
//! own status — a handler's 413 reaches the caller as 413. A body larger than
//! [`HostConfig::max_body_bytes`](crate::HostConfig::max_body_bytes) is
//! refused at the door with 413 (at once when `Content-Length` says so, else
//! when the stream passes the limit), one that does not arrive within the
//! body read timeout with 408; neither is reported as an unreachable handler.
//! JSON-mode functions and the Service Bus endpoint buffer their (limited)
//! body, as the payload needs it whole.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use syncbridge_protocol::INVOCATION_ID_HEADER;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::HostState;
use crate::app::{FunctionSpec, Trigger};
use crate::events::TriggerKind;
use crate::invoke::{error_chain, invoke};
use crate::payload;
use crate::sb_rest;

/// The default largest request body the front door lets through (Azure's limit).
pub const MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;

/// The router (one fallback handler doing its own matching, so function routes and
/// queue paths with slashes both work).
pub(crate) fn router(host: Arc<HostState>) -> axum::Router {
    axum::Router::new().fallback(front_door).with_state(host)
}

/// A request body passed the front door's limit.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the request body is larger than {0} bytes, the local host's limit (SYNCBRIDGE_HOST_MAX_BODY_BYTES)"
)]
pub struct TooLarge(pub u64);

/// The caller's request body broke off (bad framing, a reset): a client fault.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
struct BrokenBody(#[source] axum::Error);

fn too_large(limit: u64) -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, TooLarge(limit).to_string()).into_response()
}

/// The answer for a request body that could not be read or sent on: 413
/// past the limit, 408 too slow, 400 broken off by the caller, else `otherwise`.
fn body_fault(
    e: &(dyn std::error::Error + 'static),
    limit: u64,
    otherwise: impl FnOnce() -> Response,
) -> Response {
    use syncbridge_protocol::server::{BodyTimeout, find_source};
    if find_source::<TooLarge>(e).is_some()
        || find_source::<http_body_util::LengthLimitError>(e).is_some()
    {
        too_large(limit)
    } else if let Some(t) = find_source::<BodyTimeout>(e) {
        (StatusCode::REQUEST_TIMEOUT, t.to_string()).into_response()
    } else if let Some(b) = find_source::<BrokenBody>(e) {
        (StatusCode::BAD_REQUEST, b.to_string()).into_response()
    } else {
        otherwise()
    }
}

/// Reads a whole body of at most `limit` bytes (JSON payloads, REST sends).
async fn buffer(body: Body, limit: u64) -> Result<Bytes, Response> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    axum::body::to_bytes(body, cap).await.map_err(|e| {
        body_fault(&e, limit, || {
            (
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            )
                .into_response()
        })
    })
}

/// A proxied request body on its way to the handler: counted against the
/// door's limit as it streams (`Sync` for reqwest).
struct DoorBody {
    inner: sync_wrapper::SyncWrapper<Body>,
    /// The caller's body's size hint (exact with a `Content-Length`), taken
    /// before wrapping: `SyncWrapper` gives no shared access.
    hint: http_body::SizeHint,
    seen: u64,
    limit: u64,
}

impl HttpBody for DoorBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(this.inner.get_mut()).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(BrokenBody(e))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.hint
    }
}

/// `Content-Length` of the request, if it says one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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
    body: Body,
) -> Response {
    let limit = host.max_body_bytes;
    if content_length(&headers).is_some_and(|n| n > limit) {
        return too_large(limit);
    }
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
                match buffer(body, limit).await {
                    Ok(body) => {
                        json_invocation(&host, f, method, &uri, &headers, body, params).await
                    }
                    Err(refused) => refused,
                }
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
        let body = match buffer(body, limit).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
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
    body: Body,
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
        // `from_bytes` lower-cases the protocol crate's spelling, as HTTP/1 sends it.
        if let Ok(name) = HeaderName::from_bytes(INVOCATION_ID_HEADER.as_bytes()) {
            out.insert(name, v);
        }
    }
    // The body streams through with the caller's framing: its exact size
    // hint makes the handler see the same `Content-Length`.
    let limit = host.max_body_bytes;
    let streamed = reqwest::Body::wrap(DoorBody {
        hint: body.size_hint(),
        inner: sync_wrapper::SyncWrapper::new(body),
        seen: 0,
        limit,
    });
    let sent = host
        .client
        .request(method.clone(), &url)
        .headers(out)
        .timeout(host.invocation_timeout)
        .body(streamed)
        .send()
        .await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            return body_fault(&e, limit, || {
                tracing::warn!(function = %f.name, %invocation_id, "proxying {method} {url} failed: {}", error_chain(&e));
                (
                    StatusCode::BAD_GATEWAY,
                    format!("handler unreachable: {}", error_chain(&e)),
                )
                    .into_response()
            });
        }
    };
    let status = answer.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response_headers.append(name.clone(), value.clone());
        }
    }
    // The path only: a query may carry secrets (an OAuth callback's `code`).
    let path = path_and_query.split('?').next().unwrap_or_default();
    tracing::debug!(function = %f.name, %invocation_id, %status, "proxied {method} {path}");
    // Streamed back as it comes; a handler that breaks off mid-answer cuts it short.
    let mut response = Response::new(Body::new(reqwest::Body::from(answer)));
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
