//! `POST /oauth/v1/token` (HubSpot's path): form-encoded
//! `grant_type=authorization_code` (codes from `/oauth/authorize` are
//! redeemed once, with their redirect URI and PKCE verifier; the configured
//! code and any `sbx_code_…` are accepted as before) or `refresh_token`, client credentials in
//! the form or as HTTP Basic. Errors follow RFC 6749 §5.2 (`invalid_client` is
//! a 401, `invalid_grant` a 400) plus HubSpot's `status`/`message` fields.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::render::json;
use crate::consent::ISSUED_CODE_PREFIX;
use crate::oauth::{CODE_PREFIX, GrantError};
use crate::sandbox::Sandbox;
use crate::stats::bump;

fn oauth_error(
    status: StatusCode,
    error: &str,
    hubspot_status: &str,
    description: &str,
) -> Response {
    let mut resp = json(
        status,
        &json!({
            "error": error,
            "error_description": description,
            "status": hubspot_status,
            "message": description,
        }),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"syncbridge-sandbox\""),
        );
    }
    resp
}

/// `(client_id, client_secret)` from HTTP Basic, else from the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            Some((id.to_owned(), secret.to_owned()))
        });
    basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    })
}

pub(crate) async fn token(State(sbx): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&sbx.stats_ref().token_requests);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let cfg = sbx.config();
    if cfg.fail_token_requests {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "INTERNAL_ERROR",
            "the token endpoint failed (fail_token_requests)",
        );
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(grant, "authorization_code" | "refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "BAD_GRANT_TYPE",
            "grant_type must be authorization_code or refresh_token",
        );
    }
    let client = client_credentials(&headers, &form);
    let Some((client_id, _)) =
        client.filter(|(id, secret)| *id == cfg.client_id && *secret == cfg.client_secret)
    else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "BAD_CLIENT_ID",
            "unknown client or wrong client secret",
        );
    };
    let issued = if grant == "authorization_code" {
        let code = form.get("code").map(String::as_str).unwrap_or("");
        if code.starts_with(ISSUED_CODE_PREFIX) {
            let redeemed = sbx.with_consents(|c| {
                c.redeem(
                    code,
                    &client_id,
                    form.get("redirect_uri").map(String::as_str),
                    form.get("code_verifier").map(String::as_str),
                    tokio::time::Instant::now(),
                )
            });
            if let Err(e) = redeemed {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    &e.to_string(),
                );
            }
        } else if code != cfg.auth_code
            && !(code.starts_with(CODE_PREFIX) && code.len() > CODE_PREFIX.len())
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "BAD_AUTH_CODE",
                "unknown authorization code",
            );
        }
        Ok(sbx.with_tokens(|t| t.issue(&client_id, cfg.token_ttl, tokio::time::Instant::now())))
    } else {
        match form.get("refresh_token") {
            Some(rt) => sbx.refresh(rt, &client_id),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "BAD_REFRESH_TOKEN",
                    "refresh_token is required",
                );
            }
        }
    };
    match issued {
        Ok(pair) => {
            let mut resp = json(StatusCode::OK, &pair);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            let description = match e {
                GrantError::Used => "refresh token was already used (tokens rotate)",
                GrantError::Revoked => "refresh token was revoked",
                GrantError::Unknown => "missing or unknown refresh token",
                GrantError::WrongClient => "refresh token was issued to another client",
            };
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "BAD_REFRESH_TOKEN",
                description,
            )
        }
    }
}
