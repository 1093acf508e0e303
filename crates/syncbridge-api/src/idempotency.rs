//! `Idempotency-Key` on the change calls, with Stripe's semantics.
//!
//! The key is scoped to the caller's API key; the request's fingerprint is
//! the SHA-256 of its method, path and canonical JSON body (object keys
//! sorted, no insignificant whitespace), so reordered or re-spaced bodies
//! are the same request. [`run`] claims the key in the store before the
//! call acts (core's `store::changes` holds the rules both backends keep):
//!
//! - a new key: the call runs; a 2xx answer is stored under the key, any
//!   other answer gives the key back (a refused request changed nothing, so
//!   its retry with a fix is a new request);
//! - the same key and fingerprint, answered: the stored status and body
//!   again, with `Idempotent-Replayed: true`;
//! - the same key, another fingerprint: 422 `idempotency-key-reused`;
//! - the same request still running: 409 `idempotency-key-in-flight` (a
//!   claim lapses after 60 s, so a crashed request does not hold the key);
//! - keys are kept 24 hours.
//!
//! Calls without the header run as they are.

use std::future::Future;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::store::{ClaimOutcome, IdempotencyClaim, StoredAnswer};
use syncbridge_functions::AppState;

use crate::problem::ApiError;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// The header on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A change call's answer before it is sent: status and JSON body.
pub type Answer = (StatusCode, Value);

/// The request's fingerprint (pure): SHA-256 hex of method, path and the
/// canonical body (`Value`'s maps are sorted; `Null` for no body).
pub fn fingerprint(method: &Method, path: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(body).expect("a Value serializes"));
    hex::encode(h.finalize())
}

/// The request's key, checked: 1 to 255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(&HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::InvalidRequest(format!(
            "Idempotency-Key: 1 to {MAX_KEY_LEN} visible ASCII characters"
        ))
    };
    let text = v.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

/// The request a change call answers, as the key's fingerprint sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller.
    pub caller: &'a ApiKey,
    /// Its headers (the key).
    pub headers: &'a HeaderMap,
    /// Method.
    pub method: &'a Method,
    /// Path.
    pub path: &'a str,
    /// The parsed body (`Null` for none).
    pub body: &'a Value,
}

fn respond(answer: Result<Answer, ApiError>) -> Response {
    match answer {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs `act` under the request's idempotency key, if it has one.
pub async fn run<F, Fut>(app: &AppState, req: Request<'_>, act: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let key = match key_of(req.headers) {
        Err(e) => return e.into_response(),
        Ok(None) => return respond(act().await),
        Ok(Some(key)) => key,
    };
    let claim = IdempotencyClaim {
        scope: req.caller.id.clone(),
        key: key.clone(),
        fingerprint: fingerprint(req.method, req.path, req.body),
        token: hex::encode(rand::random::<[u8; 16]>()),
        now: app.clock.now(),
    };
    match app.store.claim_idempotency_key(&claim).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(ClaimOutcome::Reused) => ApiError::IdempotencyKeyReused(key).into_response(),
        Ok(ClaimOutcome::InFlight) => ApiError::IdempotencyKeyInFlight(key).into_response(),
        Ok(ClaimOutcome::Replay(a)) => {
            let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
            let mut resp = (status, Json(a.body)).into_response();
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            resp
        }
        Ok(ClaimOutcome::Claimed) => {
            let out = act().await;
            settle(app, &claim, &out).await;
            respond(out)
        }
    }
}

/// Stores a 2xx answer under the claim, or gives the key back.
async fn settle(app: &AppState, claim: &IdempotencyClaim, out: &Result<Answer, ApiError>) {
    let done = match out {
        Ok((status, body)) if status.is_success() => {
            let answer = StoredAnswer {
                status: status.as_u16(),
                body: body.clone(),
            };
            app.store.complete_idempotency_key(claim, &answer).await
        }
        _ => app.store.release_idempotency_key(claim).await,
    };
    match done {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(scope = %claim.scope, "idempotency claim lapsed before the call answered");
        }
        Err(e) => {
            tracing::warn!(scope = %claim.scope, error = %e, "settling an idempotency key failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key order and spacing do not change the fingerprint; method, path
    /// and values do.
    #[test]
    fn fingerprints() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 1}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":1,"y":2},"b":1}"#).unwrap();
        let p = "/v1/connections/c1/objects/contacts/records";
        assert_eq!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, p, &b)
        );
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::PATCH, p, &a)
        );
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, "/v1/x", &a)
        );
        let c: Value = serde_json::from_str(r#"{"a":{"x":1,"y":3},"b":1}"#).unwrap();
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, p, &c)
        );
    }

    /// Keys are 1–255 visible ASCII characters.
    #[test]
    fn keys() {
        let mut h = HeaderMap::new();
        assert_eq!(key_of(&h).unwrap(), None);
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(key_of(&h).unwrap().as_deref(), Some("abc-123"));
        h.insert(HEADER, HeaderValue::from_static("a b"));
        assert!(key_of(&h).is_err());
        h.insert(HEADER, HeaderValue::from_str(&"k".repeat(256)).unwrap());
        assert!(key_of(&h).is_err());
    }
}
