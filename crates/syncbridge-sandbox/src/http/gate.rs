//! What every `/crm` request passes before its handler, in order: count it,
//! charge the rate limit (429 when spent), draw its fault plan (delay, 5xx),
//! check the bearer token (401), run the handler, then apply a drop or
//! truncation and attach the rate-limit headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use super::render::json;
use crate::faults::{self, Outcome};
use crate::limits::RateInfo;
use crate::oauth::AccessCheck;
use crate::sandbox::Sandbox;
use crate::stats::bump;

pub(crate) async fn gate(State(sbx): State<Sandbox>, req: Request, next: Next) -> Response {
    let stats = sbx.stats_ref();
    bump(&stats.requests);
    let cfg = sbx.config();

    let rate = match sbx.rate_check(&cfg) {
        None => None,
        Some(Ok(info)) => Some(info),
        Some(Err(info)) => {
            bump(&stats.throttled);
            return throttled(info);
        }
    };

    let plan = sbx.draw_fault(&cfg);
    if let Some(delay) = plan.delay {
        bump(&stats.fault_delays);
        tokio::time::sleep(delay).await;
    }

    let mut resp = if let Outcome::Error(status) = plan.outcome {
        bump(&stats.fault_errors);
        ApiError::new(status, "INTERNAL_ERROR", "sandbox: injected server error").into_response()
    } else if let Err(e) = authorize(&sbx, req.headers(), cfg.auth_enabled) {
        bump(&stats.unauthorized);
        e.into_response()
    } else {
        let resp = next.run(req).await;
        match plan.outcome {
            Outcome::Drop => {
                bump(&stats.fault_drops);
                return faults::dropped();
            }
            Outcome::Truncate { cut_json } => {
                bump(&stats.fault_truncations);
                faults::truncated(resp, cut_json).await
            }
            Outcome::Pass | Outcome::Error(_) => resp,
        }
    };
    if let Some(info) = rate {
        rate_headers(resp.headers_mut(), &info);
    }
    resp
}

fn authorize(sbx: &Sandbox, headers: &HeaderMap, enabled: bool) -> Result<(), ApiError> {
    if !enabled {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        ));
    };
    match sbx.check_access(token) {
        AccessCheck::Valid => Ok(()),
        AccessCheck::Expired => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired.",
        )),
        AccessCheck::Unknown => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call is unknown or was revoked.",
        )),
    }
}

fn throttled(info: RateInfo) -> Response {
    let body = json!({
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "category": "RATE_LIMITS",
        "policyName": "TEN_SECONDLY_ROLLING",
    });
    let mut resp = json(StatusCode::TOO_MANY_REQUESTS, &body);
    let headers = resp.headers_mut();
    rate_headers(headers, &info);
    headers.insert(header::RETRY_AFTER, info.reset_secs().into());
    resp
}

fn rate_headers(headers: &mut HeaderMap, info: &RateInfo) {
    let num = |n: u64| HeaderValue::from(n);
    headers.insert("x-ratelimit-limit", num(info.limit.into()));
    headers.insert("x-ratelimit-remaining", num(info.remaining.into()));
    headers.insert("x-ratelimit-reset", num(info.reset_secs()));
    headers.insert("x-hubspot-ratelimit-max", num(info.limit.into()));
    headers.insert("x-hubspot-ratelimit-remaining", num(info.remaining.into()));
    headers.insert(
        "x-hubspot-ratelimit-interval-milliseconds",
        num(info.window.as_millis() as u64),
    );
}
