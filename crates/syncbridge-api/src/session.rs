//! Dashboard sessions (`/v1/session`): sign in once with an API key or a
//! one-time sign-in link, then a cookie instead of `Authorization: Bearer`.
//!
//! - A session is a random secret (`sbs_` + 32 bytes) in the cookie
//!   [`COOKIE`] (`HttpOnly; SameSite=Strict; Path=/api`). The store keeps
//!   only its SHA-256, as a record beside the API keys (id `ses_…`, the
//!   scope of the key that signed in), so both backends keep sessions with
//!   no schema of their own, and signing out (or revoking) ends it at once.
//!   A session lives [`SESSION_TTL`] from sign-in.
//! - Every change (any method but `GET`/`HEAD`) made with the cookie needs
//!   the header [`CSRF_HEADER`] with the session's CSRF token, which only
//!   the sign-in answer and `GET /v1/session` (same origin, cookie) show:
//!   the SHA-256 of a fixed label and the session secret, so it needs no
//!   storage and another site can neither read nor compute it.
//! - `syncbridge up` prints a one-time sign-in link (as Jupyter does): a
//!   secret `sbl_…` stored hashed as `lgn_…` with admin scope, good for one
//!   sign-in within [`LOGIN_TTL`]; using it revokes it.
//! - Sessions and links carry their end (`ApiKey::expires_at`), and the
//!   store deletes the expired, signed-out and spent ones
//!   (`Store::prune_api_keys`) at every sign-in, the only place new ones
//!   are made, so their number stays bounded by the sign-ins of the last
//!   [`LOGIN_TTL`] without a timer; an expired session presented is
//!   refused and pruned at once.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use syncbridge_core::apikeys::{ApiKey, ApiScope};
use syncbridge_core::{SecretString, Store, Timestamp};
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::keys::{self, KeyError};
use crate::problem::{ApiError, Problem};

/// The session cookie's name.
pub const COOKIE: &str = "sb_session";
/// The header that carries the CSRF token on changes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session secrets start with this.
pub const SESSION_PREFIX: &str = "sbs_";
/// Stored session ids start with this.
pub const SESSION_ID_PREFIX: &str = "ses_";
/// One-time sign-in secrets start with this.
pub const LOGIN_PREFIX: &str = "sbl_";
/// Stored sign-in link ids start with this.
pub const LOGIN_ID_PREFIX: &str = "lgn_";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a sign-in link can be used.
pub const LOGIN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Where the dashboard is served (under the route prefix `/api`).
pub const DASHBOARD_PATH: &str = "/api/v1/admin/";

/// The CSRF token of a session secret (pure).
pub fn csrf_token(session: &str) -> String {
    hex::encode(Sha256::digest(
        format!("syncbridge-dashboard-csrf\n{session}").as_bytes(),
    ))
}

/// Whether `presented` is the CSRF token of `session`, in constant time.
pub fn csrf_matches(session: &str, presented: &str) -> bool {
    csrf_token(session)
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

/// The session secret in a request's cookies, if any.
pub fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, COOKIE)
}

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie_named<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// A one-time sign-in link's secret (the store keeps its hash).
pub async fn create_login(store: &dyn Store, now: Timestamp) -> Result<SecretString, KeyError> {
    let secret = keys::random_secret(LOGIN_PREFIX);
    store
        .create_api_key(&ApiKey {
            id: keys::random_id_with(LOGIN_ID_PREFIX),
            name: "one-time dashboard sign-in link".into(),
            scope: ApiScope::Admin,
            hash: keys::hash(&secret),
            created_at: now,
            revoked_at: None,
            expires_at: Some(now.add(LOGIN_TTL)),
        })
        .await?;
    Ok(SecretString::new(secret))
}

/// The live session whose secret is `secret`: `None` when unknown, signed
/// out, revoked or expired at `now`.
pub async fn find(
    store: &dyn Store,
    secret: &str,
    now: Timestamp,
) -> Result<Option<ApiKey>, ApiError> {
    let found = keys::find_live(store, secret, SESSION_PREFIX, SESSION_ID_PREFIX).await?;
    match found {
        Some(s) if s.created_at.add(SESSION_TTL) > now => Ok(Some(s)),
        Some(s) => {
            // Expired: refused, and deleted (with any other expired one)
            // so a stale cookie finds nothing next time.
            let pruned = store.prune_api_keys(now).await?;
            tracing::info!(session = %s.id, pruned, "expired dashboard session refused and pruned");
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Body of `POST /v1/session`: exactly one of the two.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key (`sbk_…`); the session gets its scope.
    pub api_key: Option<String>,
    /// The secret of the one-time link `syncbridge up` prints (`sbl_…`).
    pub login_token: Option<String>,
}

/// A session, as the dashboard sees it (never the session secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Send it as `X-CSRF-Token` on every change.
    pub csrf_token: String,
    /// What the session may do.
    pub scope: ApiScope,
    /// When it ends (RFC 3339).
    pub expires_at: String,
}

fn view(secret: &str, session: &ApiKey) -> SessionView {
    SessionView {
        csrf_token: csrf_token(secret),
        scope: session.scope,
        expires_at: session.created_at.add(SESSION_TTL).to_string(),
    }
}

/// Whether the request arrived over HTTPS (directly or as the Functions
/// host / a proxy says), so the cookie can be marked `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// The key or link a sign-in presents, checked: its scope.
async fn credential_scope(
    store: &dyn Store,
    b: &SignIn,
    now: Timestamp,
) -> Result<ApiScope, ApiError> {
    match (&b.api_key, &b.login_token) {
        (Some(key), None) => keys::authenticate(store, key)
            .await?
            .map(|k| k.scope)
            .ok_or(ApiError::Unauthorized),
        (None, Some(token)) => {
            let link = keys::find_live(store, token, LOGIN_PREFIX, LOGIN_ID_PREFIX)
                .await?
                .filter(|l| l.created_at.add(LOGIN_TTL) > now)
                .ok_or(ApiError::Unauthorized)?;
            // One use: spent before the session exists.
            store.revoke_api_key(&link.id, now).await?;
            Ok(link.scope)
        }
        _ => Err(ApiError::InvalidRequest(
            "give exactly one of api_key and login_token".into(),
        )),
    }
}

/// Signs in: sets the session cookie and answers the CSRF token.
#[utoipa::path(post, path = "/v1/session", tag = "session", security(()),
    request_body = SignIn,
    responses((status = 201, body = SessionView, description = "Signed in; the cookie `sb_session` is set"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let now = app.clock.now();
    let scope = credential_scope(app.store.as_ref(), &b, now).await?;
    // Sessions and links are only made here: pruning here bounds them.
    let pruned = app.store.prune_api_keys(now).await?;
    if pruned > 0 {
        tracing::info!(
            pruned,
            "pruned expired, signed-out and spent dashboard sessions"
        );
    }
    let secret = keys::random_secret(SESSION_PREFIX);
    let session = ApiKey {
        id: keys::random_id_with(SESSION_ID_PREFIX),
        name: "dashboard session".into(),
        scope,
        hash: keys::hash(&secret),
        created_at: now,
        revoked_at: None,
        expires_at: Some(now.add(SESSION_TTL)),
    };
    app.store.create_api_key(&session).await?;
    tracing::info!(session = %session.id, scope = scope.as_str(), "dashboard sign-in");
    let cookie = set_cookie(&secret, SESSION_TTL.as_secs(), over_https(&headers));
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(view(&secret, &session)),
    )
        .into_response())
}

/// The current session (by its cookie): its CSRF token, scope and end.
#[utoipa::path(get, path = "/v1/session", tag = "session", security(()),
    responses((status = 200, body = SessionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn current(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let secret = cookie_of(&headers).ok_or(ApiError::Unauthorized)?;
    let session = find(app.store.as_ref(), secret, app.clock.now())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(view(secret, &session)))
}

/// Signs out: ends the session (needs its CSRF token) and clears the cookie.
#[utoipa::path(delete, path = "/v1/session", tag = "session", security(()),
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Signed out"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn sign_out(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = cookie_of(&headers).ok_or(ApiError::Unauthorized)?;
    let now = app.clock.now();
    let session = find(app.store.as_ref(), secret, now)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    check_csrf(&headers, secret)?;
    app.store.revoke_api_key(&session.id, now).await?;
    tracing::info!(session = %session.id, "dashboard sign-out");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, set_cookie("", 0, over_https(&headers)))],
    )
        .into_response())
}

/// Refuses a cookie-authenticated change without the session's CSRF token.
pub(crate) fn check_csrf(headers: &HeaderMap, secret: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if csrf_matches(secret, presented) {
        Ok(())
    } else {
        tracing::info!("dashboard change refused: missing or wrong CSRF token");
        Err(ApiError::Csrf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSRF token is bound to its session and compared exactly.
    #[test]
    fn csrf_is_per_session() {
        let a = csrf_token("sbs_a");
        assert_eq!(a.len(), 64);
        assert!(csrf_matches("sbs_a", &a));
        assert!(!csrf_matches("sbs_b", &a));
        assert!(!csrf_matches("sbs_a", ""));
        assert!(!csrf_matches("sbs_a", &a[..63]));
    }

    /// The session cookie is found among others, by exact name.
    #[test]
    fn finds_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie_of(&h), None);
        h.insert(
            header::COOKIE,
            "x=1; sb_session_old=no; sb_session=sbs_abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie_of(&h), Some("sbs_abc"));
    }

    /// The cookie is HttpOnly, SameSite=Strict, scoped to /api; Secure over HTTPS.
    #[test]
    fn cookie_attributes() {
        let c = set_cookie("sbs_x", 60, false);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("sb_session=sbs_x;"));
        for part in ["HttpOnly", "SameSite=Strict", "Path=/api", "Max-Age=60"] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(!c.contains("Secure"));
        assert!(
            set_cookie("v", 1, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
