//! `GET /oauth/authorize`: the consent page (RFC 6749 §4.1.1), and
//! `POST /oauth/authorize`: its Approve / Deny. A request with an unknown
//! client or an unregistered redirect URI gets an HTML error page and is
//! never redirected (§4.1.2.1); every other answer is a redirect to the
//! client's `redirect_uri` with `code` + `state`, or `error` + `state`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use syncbridge_signatures::html::{self, escape};

use crate::consent::{AuthRequest, redirect_allowed};
use crate::sandbox::Sandbox;

/// A small HTML page (no caching, no framing: the consent page must not be
/// framed, clickjacking).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (status, html::PAGE_HEADERS, html::page(title, body)).into_response()
}

fn refuse(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Authorization error",
        &format!("<p id=\"error\">{}</p>", escape(why)),
    )
}

/// `redirect_uri` with `params` appended to its query.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return refuse("redirect_uri is not a URL");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn with_state<'a>(
    req: &'a AuthRequest,
    mut params: Vec<(&'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    params
}

/// Checks an authorization request: an error page (no redirect) for an
/// unknown client or redirect URI, an error redirect for the rest.
fn check(sbx: &Sandbox, q: &HashMap<String, String>) -> Result<AuthRequest, Box<Response>> {
    let cfg = sbx.config();
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    if get("client_id").as_deref() != Some(cfg.client_id.as_str()) {
        return Err(Box::new(refuse("unknown client_id")));
    }
    let Some(redirect_uri) = get("redirect_uri") else {
        return Err(Box::new(refuse("redirect_uri is required")));
    };
    if !redirect_allowed(&cfg.redirect_uris, &redirect_uri) {
        return Err(Box::new(refuse(
            "redirect_uri is not registered for this client",
        )));
    }
    let req = AuthRequest {
        client_id: cfg.client_id.clone(),
        redirect_uri,
        scope: get("scope").unwrap_or_default(),
        state: get("state"),
        code_challenge: get("code_challenge"),
    };
    let bad = |error: &str, description: &str| {
        Box::new(redirect(
            &req.redirect_uri,
            &with_state(
                &req,
                vec![("error", error), ("error_description", description)],
            ),
        ))
    };
    if get("response_type").as_deref() != Some("code") {
        return Err(bad(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    match (get("code_challenge_method").as_deref(), &req.code_challenge) {
        (None, None) | (Some("S256"), Some(_)) => {}
        (None | Some("S256"), _) => {
            return Err(bad(
                "invalid_request",
                "code_challenge and code_challenge_method go together",
            ));
        }
        (Some(_), _) => {
            return Err(bad("invalid_request", "code_challenge_method must be S256"));
        }
    }
    Ok(req)
}

fn approve(sbx: &Sandbox, req: &AuthRequest) -> Response {
    let code = sbx.with_consents(|c| c.issue(req.clone(), Instant::now()));
    redirect(&req.redirect_uri, &with_state(req, vec![("code", &code)]))
}

pub(crate) async fn authorize_page(
    State(sbx): State<Sandbox>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let req = match check(&sbx, &q) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if sbx.config().oauth_auto_approve {
        return approve(&sbx, &req);
    }
    let scopes: String = req
        .scope
        .split_whitespace()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect();
    let redirect_host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let id = sbx.with_consents(|c| c.hold(req.clone(), Instant::now()));
    page(
        StatusCode::OK,
        "Authorize access to the sandbox CRM",
        &format!(
            "<p>The application <strong id=\"client\">{client}</strong> (returning to \
             <span id=\"redirect-host\">{host}</span>) asks for:</p><ul id=\"scopes\">{scopes}</ul>\
             <form method=\"post\" action=\"/oauth/authorize\">\
             <input type=\"hidden\" name=\"request_id\" value=\"{id}\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
             </form>",
            client = escape(&req.client_id),
            host = escape(&redirect_host),
            id = escape(&id),
        ),
    )
}

pub(crate) async fn decide(State(sbx): State<Sandbox>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let id = form.get("request_id").map(String::as_str).unwrap_or("");
    let Some(req) = sbx.with_consents(|c| c.take(id, Instant::now())) else {
        return refuse("this authorization request is unknown, expired or already decided");
    };
    match form.get("decision").map(String::as_str) {
        Some("approve") => approve(&sbx, &req),
        Some("deny") => redirect(
            &req.redirect_uri,
            &with_state(
                &req,
                vec![
                    ("error", "access_denied"),
                    ("error_description", "the user denied access"),
                ],
            ),
        ),
        _ => refuse("decision must be approve or deny"),
    }
}
