//! `Authorization: Bearer` (or the dashboard's session cookie, with its
//! CSRF token on changes: [`crate::session`]) on every route but
//! `GET /v1/openapi.json`, `/v1/session` and the dashboard's files.
//!
//! The scope a call needs follows from the call: reads (`GET`) need `read`,
//! changes need `write`, and anything under `/v1/api-keys` needs `admin`.
//! 401 without a valid key, 403 when its scope is too low. The key text is
//! never logged; a refusal logs only its reason.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use syncbridge_core::apikeys::{ApiKey, ApiScope};
use syncbridge_functions::AppState;

use crate::keys;
use crate::problem::ApiError;
use crate::session;

/// The scope a call needs (pure).
pub fn needed_scope(method: &Method, path: &str) -> ApiScope {
    if path.split('/').any(|seg| seg == "api-keys") {
        ApiScope::Admin
    } else if path.ends_with("/notifications/rules") && method != Method::GET {
        // Where operators are alerted is the deployment's, like its keys.
        ApiScope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        ApiScope::Read
    } else {
        ApiScope::Write
    }
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The middleware: authenticates, checks the scope, and hands the key to
/// handlers as a request extension.
pub(crate) async fn require_key(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let needed = needed_scope(req.method(), req.uri().path());
    let key = match bearer(req.headers()) {
        Some(token) => keys::authenticate(app.store.as_ref(), token).await?,
        None => by_session(&app, req.method(), req.headers()).await?,
    };
    let Some(key) = key else {
        tracing::info!(
            "api call refused: no bearer key or session, or unknown, revoked or expired"
        );
        return Err(ApiError::Unauthorized);
    };
    if !key.scope.allows(needed) {
        tracing::info!(key = %key.id, scope = key.scope.as_str(), needed = needed.as_str(), "api call refused: scope");
        return Err(ApiError::Forbidden {
            have: key.scope.as_str(),
            needed: needed.as_str(),
        });
    }
    req.extensions_mut().insert::<ApiKey>(key);
    Ok(next.run(req).await)
}

/// The session of a request's cookie; a change also needs its CSRF token.
async fn by_session(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<ApiKey>, ApiError> {
    let Some(secret) = session::cookie_of(headers) else {
        return Ok(None);
    };
    let Some(found) = session::find(app.store.as_ref(), secret, app.clock.now()).await? else {
        return Ok(None);
    };
    if method != Method::GET && method != Method::HEAD {
        session::check_csrf(headers, secret)?;
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads need read, changes write, key management admin.
    #[test]
    fn scopes_by_call() {
        assert_eq!(needed_scope(&Method::GET, "/api/v1/runs"), ApiScope::Read);
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/connections/c1/sync"),
            ApiScope::Write
        );
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/api-keys"),
            ApiScope::Admin
        );
        assert_eq!(
            needed_scope(&Method::PUT, "/api/v1/notifications/rules"),
            ApiScope::Admin
        );
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/notifications"),
            ApiScope::Read
        );
        assert_eq!(
            needed_scope(&Method::DELETE, "/api/v1/connections/api-keysx"),
            ApiScope::Write
        );
    }

    /// Only `Bearer <token>` counts.
    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer sbk_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("sbk_x"));
    }
}
