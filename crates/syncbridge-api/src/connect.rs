//! The connect flow: a product's customer authorizes their own account.
//!
//! 1. `POST /v1/connect/sessions` (write scope) makes a [`ConnectSession`]
//!    (10 minutes, single use) and answers its `connect_url`,
//!    `<SYNCBRIDGE_PUBLIC_URL>/api/v1/connect/s/<session id>.<secret>`.
//! 2. The browser opens it (public route). OAuth providers: the session
//!    binds a fresh `state` (`<session id>.<secret>`) and PKCE verifier
//!    (sealed) and the browser goes to the provider's `authorize_url` with
//!    the deployment's one `redirect_uri`, `<public URL>/api/v1/connect/callback`.
//!    API-key and basic-auth providers: a small form, posted back to the link.
//! 3. `GET /v1/connect/callback` (public) takes the state once, exchanges
//!    the code (`oauth2` crate, in `syncbridge-credentials`), seals the
//!    tokens, creates the connection with its tasks (or re-authorizes the
//!    existing one and asks its tasks to run) and sends the browser to
//!    `return_url?connection_id=…`, or `return_url?error=<code>` with
//!    nothing stored.
//!
//! Secrets: the link's and the state's random parts are stored only as
//! SHA-256, the verifier sealed; codes, tokens and verifiers are never
//! logged. Return URLs must start with a prefix of
//! `SYNCBRIDGE_CONNECT_RETURN_URLS` (or be one of this deployment's own
//! pages: `/api/v1/connect/done`, which the CLI uses, or the admin
//! dashboard's under `/api/v1/admin/`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syncbridge_core::connect::{
    ConnectError, ConnectOutcome, ConnectSession, ConnectStage, Refusal, SESSION_TTL, split_token,
    token_text,
};
use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::connector::definition::{AuthDef, Pkce as PkceMode};
use syncbridge_core::events::Event;
use syncbridge_core::model::{Connection, Direction, Priority, SealedSecrets};
use syncbridge_core::{ConnectionId, SecretString, TenantId};
use syncbridge_credentials::{CodeExchange, CredentialDoc, Pkce};
use syncbridge_functions::AppState;
use syncbridge_signatures::html::{self, escape};
use utoipa::ToSchema;

use crate::connections::{NewConnection, plan_connection};
use crate::problem::{ApiError, Problem};

/// The flow's callback, under the route prefix.
pub const CALLBACK_PATH: &str = "/api/v1/connect/callback";
/// The built-in "you can close this window" page, an always-allowed return URL.
pub const DONE_PATH: &str = "/api/v1/connect/done";

/// Body of `POST /v1/connect/sessions`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// Owner of the connection.
    pub tenant: String,
    /// Connector name (`GET /v1/providers`).
    pub provider: String,
    /// Where the browser goes at the end, with `connection_id` or `error`
    /// added to its query; must start with a prefix of `SYNCBRIDGE_CONNECT_RETURN_URLS`.
    pub return_url: String,
    /// An existing connection to re-authorize (its tenant and provider must match).
    #[serde(default)]
    pub connection_id: Option<String>,
    /// The provider's base URL, for providers whose host varies (the sandbox, self-hosted ones).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The new connection's settings (`GET /v1/providers/{name}` lists what the
    /// provider needs, e.g. GitHub's `owner` and `repo`), checked now so a link
    /// is never made for a connection that could not sync. Not with
    /// `connection_id`: a re-authorization keeps the connection's settings.
    #[serde(default)]
    pub settings: Option<BTreeMap<String, String>>,
}

/// A session made: the link to send the customer to.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session's id (not a secret).
    pub id: String,
    /// Open this in the customer's browser, once, before `expires_at`.
    pub connect_url: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The connection the flow creates or re-authorizes.
    pub connection_id: String,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// What the customer does for this provider.
enum Mode {
    /// Consent at the provider's `authorize_url`.
    OAuth,
    /// Type an API key or a user and password into our form.
    Form,
}

fn mode_of(def: &ConnectorDef) -> Result<Mode, String> {
    match &def.auth {
        AuthDef::Oauth2 {
            authorize_url: Some(_),
            ..
        } => Ok(Mode::OAuth),
        AuthDef::Oauth2 { .. } => Err(format!(
            "connector {} declares no auth.authorize_url: it has no connect flow",
            def.name
        )),
        AuthDef::ApiKey { .. } | AuthDef::Basic => Ok(Mode::Form),
        AuthDef::None => Err(format!("connector {} needs no authorization", def.name)),
    }
}

/// The admin dashboard's pages (`ui/`), which start connect flows from
/// "Add connection" and "Reconnect" and are returned to.
pub const DASHBOARD_PATH: &str = "/api/v1/admin/";

/// Whether `url` is one of this deployment's own pages: the done page (the
/// CLI's) or the admin dashboard's.
fn own_done_page(app: &AppState, url: &str) -> bool {
    app.settings.connect.public_url.as_ref().is_some_and(|p| {
        let base = p.as_str().trim_end_matches('/');
        [DONE_PATH, DASHBOARD_PATH]
            .iter()
            .any(|path| url.starts_with(&format!("{base}{path}")))
    })
}

fn http_url(field: &str, v: &str) -> Result<(), ApiError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(ApiError::InvalidRequest(format!(
            "{field}: must be an absolute http(s) URL"
        ))),
    }
}

/// Makes a session (the route's work; the CLI's `connect` calls it too).
///
/// # Errors
/// An unlisted return URL, an unknown provider or connection, a provider
/// without a connect flow or without an OAuth client, no public URL; the store.
pub async fn create_session(app: &AppState, b: SessionBody) -> Result<SessionCreated, ApiError> {
    let cs = &app.settings.connect;
    http_url("return_url", &b.return_url)?;
    if !(cs.return_url_allowed(&b.return_url) || own_done_page(app, &b.return_url)) {
        return Err(ApiError::InvalidRequest(format!(
            "return_url: not allowed here; it must start with one of SYNCBRIDGE_CONNECT_RETURN_URLS ({})",
            if cs.return_urls.is_empty() {
                "none set".to_owned()
            } else {
                cs.return_urls.join(", ")
            }
        )));
    }
    let Some(public) = &cs.public_url else {
        return Err(ApiError::InvalidRequest(
            "the connect flow needs SYNCBRIDGE_PUBLIC_URL (this deployment's public base URL)"
                .into(),
        ));
    };
    let tenant =
        TenantId::parse(&b.tenant).map_err(|e| ApiError::InvalidRequest(format!("tenant: {e}")))?;
    let def = app.registry.get(&b.provider).ok_or_else(|| {
        ApiError::InvalidRequest(format!("provider: no connector named {:?}", b.provider))
    })?;
    let mode = mode_of(&def).map_err(ApiError::InvalidRequest)?;
    if matches!(mode, Mode::OAuth) && app.credential_manager.client_id(&def.name).is_none() {
        let p = syncbridge_credentials::client::env_provider_segment(&def.name);
        return Err(ApiError::InvalidRequest(format!(
            "provider: no OAuth client configured for {} (set SYNCBRIDGE_OAUTH_{p}_CLIENT_ID and _CLIENT_SECRET)",
            def.name
        )));
    }
    if let Some(u) = &b.base_url {
        http_url("base_url", u)?;
    }
    let settings = session_settings(&def, &b)?;
    let (connection_id, reconnect, base_url) = match &b.connection_id {
        Some(id) => {
            let id = ConnectionId::parse(id)
                .map_err(|e| ApiError::InvalidRequest(format!("connection_id: {e}")))?;
            let conn = app
                .store
                .get_connection(&id)
                .await?
                .filter(|c| c.tenant == tenant)
                .ok_or_else(|| ApiError::NotFound(format!("connection {id} of tenant {tenant}")))?;
            if conn.provider != def.name {
                return Err(ApiError::InvalidRequest(format!(
                    "connection_id: {id} is a {} connection, not {}",
                    conn.provider, def.name
                )));
            }
            (id, true, b.base_url.clone().or(conn.base_url))
        }
        None => {
            let id = ConnectionId::parse(token_text("conn_", &random_bytes::<16>()))
                .expect("generated ids are valid");
            (id, false, b.base_url.clone())
        }
    };
    let now = app.clock.now();
    let secret = hex::encode(random_bytes::<32>());
    let session = ConnectSession {
        id: token_text("cs_", &random_bytes::<16>()),
        tenant,
        provider: def.name.clone(),
        connection_id,
        reconnect,
        return_url: b.return_url,
        base_url,
        settings,
        created_at: now,
        expires_at: now.add(SESSION_TTL),
        link_hash: sha256_hex(&secret),
        stage: ConnectStage::Created,
        version: 1,
    };
    app.store.create_connect_session(&session).await?;
    tracing::info!(session = %session.id, tenant = %session.tenant, provider = %session.provider,
        connection = %session.connection_id, reconnect = session.reconnect, "connect session created");
    Ok(SessionCreated {
        connect_url: format!(
            "{}/api/v1/connect/s/{}.{secret}",
            public.as_str().trim_end_matches('/'),
            session.id
        ),
        expires_at: session.expires_at.to_rfc3339(),
        connection_id: session.connection_id.to_string(),
        id: session.id,
    })
}

/// The settings a session's new connection gets: checked against what the
/// provider declares, defaults filled. Pure.
fn session_settings(
    def: &ConnectorDef,
    b: &SessionBody,
) -> Result<BTreeMap<String, String>, ApiError> {
    match (&b.connection_id, &b.settings) {
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
            "settings: a re-authorization keeps the connection's settings (change them with PATCH /v1/connections/{id})".into(),
        )),
        (Some(_), None) => Ok(BTreeMap::new()),
        (None, given) => def
            .connection_settings(given.as_ref().unwrap_or(&BTreeMap::new()))
            .map_err(|e| ApiError::InvalidRequest(format!("settings: {e}"))),
    }
}

/// Starts a connect flow: a single-use link for the customer's browser.
#[utoipa::path(post, path = "/v1/connect/sessions", tag = "connect",
    request_body = SessionBody,
    responses((status = 201, body = SessionCreated),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(app): State<AppState>,
    body: Result<Json<SessionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let Json(b) = body?;
    Ok((StatusCode::CREATED, Json(create_session(&app, b).await?)))
}

// ---- browser side ------------------------------------------------------------

/// A small HTML page (no caching, no framing, no referrer).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        html::PAGE_HEADERS,
        [("referrer-policy", "no-referrer")],
        html::page(title, body),
    )
        .into_response()
}

fn invalid_link() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This connect link is not valid",
        "<p id=\"error\">state_invalid</p><p>Ask the application for a new link.</p>",
    )
}

/// A 302 to `to` with `params` added to its query.
fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(to) else {
        return invalid_link();
    };
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// Back to the session's return URL with an error, the session left as it is.
fn back_with(s: &ConnectSession, e: ConnectError) -> Response {
    redirect(&s.return_url, &[("error", e.code())])
}

/// Ends `s` (compare-and-swap) and sends the browser back with the outcome.
async fn finish(app: &AppState, s: &ConnectSession, outcome: ConnectOutcome) -> Response {
    let done = s.advanced(ConnectStage::Done {
        outcome: outcome.clone(),
    });
    match app.store.advance_connect_session(&done).await {
        Ok(true) => {}
        Ok(false) => return back_with(s, ConnectError::StateInvalid),
        Err(e) => {
            tracing::warn!(session = %s.id, error = %e, "connect session: recording the outcome failed");
        }
    }
    match outcome {
        ConnectOutcome::Connected { connection_id } => {
            tracing::info!(session = %s.id, connection = %connection_id, "connect flow finished");
            redirect(&s.return_url, &[("connection_id", connection_id.as_str())])
        }
        ConnectOutcome::Failed { error } => {
            tracing::info!(session = %s.id, error = %error, "connect flow refused");
            redirect(&s.return_url, &[("error", &error)])
        }
    }
}

fn failed(e: ConnectError) -> ConnectOutcome {
    ConnectOutcome::Failed {
        error: e.code().to_owned(),
    }
}

/// The session a `<id>.<secret>` token names, with the secret's hash.
async fn session_of(
    app: &AppState,
    token: &str,
) -> Result<Option<(ConnectSession, String)>, ApiError> {
    let Some((id, secret)) = split_token(token) else {
        return Ok(None);
    };
    Ok(app
        .store
        .get_connect_session(id)
        .await?
        .map(|s| (s, sha256_hex(secret))))
}

/// The session a link's token opens, or the answer that refuses it: an
/// unknown or foreign token gets the invalid-link page; a used link goes
/// back with `state_invalid`; an expired one ends the session.
async fn linked_session(app: &AppState, token: &str) -> Result<ConnectSession, Response> {
    let (s, hash) = match session_of(app, token).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(invalid_link()),
        Err(e) => return Err(unavailable(&e)),
    };
    match s.check_link(&hash, app.clock.now()) {
        Ok(()) => Ok(s),
        Err(Refusal::Expired) => Err(finish(app, &s, failed(ConnectError::SessionExpired)).await),
        Err(_) if hash_matches(&s, &hash) => Err(back_with(&s, ConnectError::StateInvalid)),
        Err(_) => Err(invalid_link()),
    }
}

/// The connect link: to the provider's consent page, or the key form.
#[utoipa::path(get, path = "/v1/connect/s/{token}", tag = "connect", security(()),
    params(("token" = String, Path, description = "The link's token, as in connect_url")),
    responses((status = 302, description = "To the provider's authorization page (or back to return_url with an error)"),
        (status = 200, description = "The API key / password form", content_type = "text/html", body = String),
        (status = "4XX", description = "An invalid link", content_type = "text/html", body = String),
        (status = "5XX", description = "The store failed", content_type = "text/html", body = String)))]
pub async fn open(
    State(app): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = token else {
        return invalid_link();
    };
    let s = match linked_session(&app, &token).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let Some(def) = app.registry.get(&s.provider) else {
        return finish(&app, &s, failed(ConnectError::ServerError)).await;
    };
    match mode_of(&def) {
        Ok(Mode::OAuth) => to_provider(&app, &s, &def).await,
        Ok(Mode::Form) => key_form(&def, &token, None),
        Err(_) => finish(&app, &s, failed(ConnectError::ServerError)).await,
    }
}

fn hash_matches(s: &ConnectSession, hash: &str) -> bool {
    s.link_hash == hash
}

fn unavailable(e: &ApiError) -> Response {
    tracing::warn!(error = %e, "connect flow: the store failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "<p id=\"error\">server_error</p>",
    )
}

/// The provider's authorize URL for `s` with `state` and the PKCE challenge.
fn authorize_url(
    app: &AppState,
    s: &ConnectSession,
    def: &ConnectorDef,
    state: &str,
    challenge: Option<&str>,
    redirect_uri: &url::Url,
) -> Result<url::Url, String> {
    let AuthDef::Oauth2 {
        authorize_url: Some(raw),
        scopes,
        optional_scopes,
        optional_scopes_param,
        authorize_params,
        ..
    } = &def.auth
    else {
        return Err("no authorize_url".into());
    };
    let base = s.base_url.as_deref().unwrap_or(&def.base_url);
    let mut url = url::Url::parse(base)
        .and_then(|b| b.join(raw))
        .map_err(|e| format!("authorize_url {raw:?}: {e}"))?;
    let client_id = app
        .credential_manager
        .client_id(&def.name)
        .ok_or("no OAuth client")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri.as_str());
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        if let Some(p) = optional_scopes_param
            && !optional_scopes.is_empty()
        {
            q.append_pair(p, &optional_scopes.join(" "));
        }
        for (k, v) in authorize_params {
            q.append_pair(k, v);
        }
        q.append_pair("state", state);
        if let Some(c) = challenge {
            q.append_pair("code_challenge", c)
                .append_pair("code_challenge_method", "S256");
        }
    }
    Ok(url)
}

/// Binds a fresh state and verifier to `s` and sends the browser to the provider.
async fn to_provider(app: &AppState, s: &ConnectSession, def: &ConnectorDef) -> Response {
    let Some(redirect_uri) = app.settings.connect.redirect_uri() else {
        return finish(app, s, failed(ConnectError::ServerError)).await;
    };
    let secret = hex::encode(random_bytes::<32>());
    let state = format!("{}.{secret}", s.id);
    let pkce = matches!(
        &def.auth,
        AuthDef::Oauth2 {
            pkce: PkceMode::S256,
            ..
        }
    )
    .then(Pkce::generate);
    let sealed = match &pkce {
        None => None,
        Some(p) => {
            let key = ConnectionId::parse(&s.id).expect("session ids are valid ids");
            match app
                .credential_manager
                .seal_verifier(&key, &p.verifier)
                .await
            {
                Ok(b) => Some(SealedSecrets {
                    key_version: b.key_version,
                    nonce: b.nonce,
                    ciphertext: b.ciphertext,
                }),
                Err(e) => {
                    tracing::warn!(session = %s.id, error = %e, "connect: sealing the verifier failed");
                    return finish(app, s, failed(ConnectError::ServerError)).await;
                }
            }
        }
    };
    let url = match authorize_url(
        app,
        s,
        def,
        &state,
        pkce.as_ref().map(|p| p.challenge.as_str()),
        &redirect_uri,
    ) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(session = %s.id, error = %e, "connect: no authorize URL");
            return finish(app, s, failed(ConnectError::ServerError)).await;
        }
    };
    let browser = hex::encode(random_bytes::<32>());
    let opened = s.advanced(ConnectStage::Opened {
        state_hash: sha256_hex(&secret),
        verifier: sealed,
        redirect_uri: redirect_uri.to_string(),
        browser_hash: Some(sha256_hex(&browser)),
    });
    match app.store.advance_connect_session(&opened).await {
        Ok(true) => {
            tracing::info!(session = %s.id, provider = %s.provider, "connect: to the provider's consent page");
            let mut r = redirect(url.as_str(), &[]);
            browser_cookie(
                &mut r,
                &s.id,
                &browser,
                SESSION_TTL.as_secs(),
                secure_cookies(app),
            );
            r
        }
        Ok(false) => back_with(s, ConnectError::StateInvalid),
        Err(e) => unavailable(&e.into()),
    }
}

/// The cookie that binds a session's callback to the browser that opened
/// its link: one per session (two links open in one browser do not clash),
/// scoped to the connect routes, unreadable by scripts. `SameSite=Lax`
/// because the callback is a top-level redirect from the provider's site,
/// which `Strict` would send without it.
fn browser_cookie_name(session_id: &str) -> String {
    format!("sb_connect_{session_id}")
}

/// Sets (for `max_age` seconds; 0 forgets it) the browser binding of session `session_id`.
fn browser_cookie(r: &mut Response, session_id: &str, value: &str, max_age: u64, secure: Secure) {
    let secure = if secure == Secure::Yes {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/api/v1/connect; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        browser_cookie_name(session_id)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Whether cookies get `Secure`: when the deployment's public URL is HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secure {
    Yes,
    No,
}

fn secure_cookies(app: &AppState) -> Secure {
    match &app.settings.connect.public_url {
        Some(u) if u.scheme() == "https" => Secure::Yes,
        _ => Secure::No,
    }
}

/// The key form of an API-key or basic-auth provider.
fn key_form(def: &ConnectorDef, token: &str, error: Option<&str>) -> Response {
    let fields = match def.auth {
        AuthDef::Basic => {
            "<label>User <input name=\"user\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>"
        }
        _ => {
            "<label>API key <input name=\"api_key\" type=\"password\" autocomplete=\"off\" required></label>"
        }
    };
    let name = def.display_name.as_deref().unwrap_or(&def.name);
    let err = error.map_or(String::new(), |e| {
        format!("<p id=\"error\">{}</p>", escape(e))
    });
    page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &format!("Connect {name}"),
        &format!(
            "{err}<form method=\"post\" action=\"/api/v1/connect/s/{}\">{fields}\
             <button type=\"submit\" id=\"connect\">Connect</button></form>",
            escape(token)
        ),
    )
}

/// The key form's fields.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct KeyForm {
    /// The API key (API-key providers).
    #[serde(default)]
    pub api_key: Option<String>,
    /// The user (basic-auth providers).
    #[serde(default)]
    pub user: Option<String>,
    /// The password (basic-auth providers).
    #[serde(default)]
    pub password: Option<String>,
}

/// The key form posted: stores the key and connects.
#[utoipa::path(post, path = "/v1/connect/s/{token}", tag = "connect", security(()),
    params(("token" = String, Path, description = "The link's token, as in connect_url")),
    request_body(content = KeyForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 302, description = "Back to return_url with connection_id or error"),
        (status = "4XX", description = "An invalid link, or the form again with what is missing", content_type = "text/html", body = String),
        (status = "5XX", description = "The store failed", content_type = "text/html", body = String)))]
pub async fn submit_key(
    State(app): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let Ok(Path(token)) = token else {
        return invalid_link();
    };
    let s = match linked_session(&app, &token).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let Some(def) = app.registry.get(&s.provider) else {
        return invalid_link();
    };
    let mut f = KeyForm::default();
    for (k, v) in url::form_urlencoded::parse(&body).into_owned() {
        match k.as_str() {
            "api_key" => f.api_key = Some(v),
            "user" => f.user = Some(v),
            "password" => f.password = Some(v),
            _ => {}
        }
    }
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|x| x.trim().is_empty());
    let doc = match (&def.auth, &f) {
        (AuthDef::ApiKey { .. }, KeyForm { api_key, .. }) if !blank(api_key) => {
            CredentialDoc::ApiKey {
                key: SecretString::new(api_key.clone().unwrap_or_default().trim()),
            }
        }
        (AuthDef::Basic, KeyForm { user, password, .. }) if !blank(user) && !blank(password) => {
            CredentialDoc::Basic {
                user: user.clone().unwrap_or_default().trim().to_owned(),
                password: SecretString::new(password.clone().unwrap_or_default()),
            }
        }
        (AuthDef::ApiKey { .. } | AuthDef::Basic, _) => {
            return key_form(&def, &token, Some("Fill in every field."));
        }
        _ => return invalid_link(),
    };
    let redeemed = s.advanced(ConnectStage::Redeemed);
    match app.store.advance_connect_session(&redeemed).await {
        Ok(true) => {}
        Ok(false) => return back_with(&s, ConnectError::StateInvalid),
        Err(e) => return unavailable(&e.into()),
    }
    let outcome = connect_with(&app, &redeemed, &def, doc).await;
    finish(&app, &redeemed, outcome).await
}

/// The provider's answer (RFC 6749 §4.1.2 / §4.1.2.1).
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// The state the flow sent.
    #[serde(default)]
    pub state: Option<String>,
    /// The provider's error (`access_denied`, …).
    #[serde(default)]
    pub error: Option<String>,
    /// The provider's description of it (not used).
    #[serde(default)]
    pub error_description: Option<String>,
}

/// The OAuth redirect URI: takes the state once, exchanges the code, connects.
#[utoipa::path(get, path = "/v1/connect/callback", tag = "connect", security(()),
    params(CallbackQuery),
    responses((status = 302, description = "Back to return_url with connection_id or error"),
        (status = "4XX", description = "An unknown state (no session to return to)", content_type = "text/html", body = String),
        (status = "5XX", description = "The store failed", content_type = "text/html", body = String)))]
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return invalid_link();
    };
    let (s, hash) = match session_of(&app, q.state.as_deref().unwrap_or("")).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid_link(),
        Err(e) => return unavailable(&e),
    };
    match s.check_state(&hash, app.clock.now()) {
        Ok(()) => {}
        Err(Refusal::Expired) => {
            return finish(&app, &s, failed(ConnectError::SessionExpired)).await;
        }
        Err(Refusal::Invalid | Refusal::OtherBrowser) => {
            tracing::info!(session = %s.id, "connect callback refused: state unknown or used");
            return back_with(&s, ConnectError::StateInvalid);
        }
    }
    let browser =
        crate::session::cookie_named(&headers, &browser_cookie_name(&s.id)).map(sha256_hex);
    if s.check_browser(browser.as_deref()).is_err() {
        // The consent URL reached another browser (forwarded, or phished):
        // the session ends, nothing is connected.
        tracing::warn!(session = %s.id, "connect callback refused: not the browser that opened the link");
        return finish(&app, &s, failed(ConnectError::BrowserMismatch)).await;
    }
    let ConnectStage::Opened {
        verifier,
        redirect_uri,
        ..
    } = &s.stage
    else {
        return back_with(&s, ConnectError::StateInvalid);
    };
    if let Some(err) = q.error.as_deref() {
        let e = if err == "access_denied" {
            ConnectError::AccessDenied
        } else {
            ConnectError::ProviderError
        };
        return finish(&app, &s, failed(e)).await;
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()).map(SecretString::new) else {
        return finish(&app, &s, failed(ConnectError::ProviderError)).await;
    };
    // Take the state before anything else: a replay loses here.
    let redeemed = s.advanced(ConnectStage::Redeemed);
    match app.store.advance_connect_session(&redeemed).await {
        Ok(true) => {}
        Ok(false) => return back_with(&s, ConnectError::StateInvalid),
        Err(e) => return unavailable(&e.into()),
    }
    let outcome =
        exchange_and_connect(&app, &redeemed, verifier.as_ref(), redirect_uri, &code).await;
    let mut r = finish(&app, &redeemed, outcome).await;
    // The binding ends with the session.
    browser_cookie(&mut r, &s.id, "", 0, secure_cookies(&app));
    r
}

async fn exchange_and_connect(
    app: &AppState,
    s: &ConnectSession,
    verifier: Option<&SealedSecrets>,
    redirect_uri: &str,
    code: &SecretString,
) -> ConnectOutcome {
    let Some(def) = app.registry.get(&s.provider) else {
        return failed(ConnectError::ServerError);
    };
    let Ok(redirect_uri) = url::Url::parse(redirect_uri) else {
        return failed(ConnectError::ServerError);
    };
    let verifier = match verifier {
        None => None,
        Some(v) => {
            let key = ConnectionId::parse(&s.id).expect("session ids are valid ids");
            let sealed = syncbridge_credentials::Sealed {
                key_version: v.key_version.clone(),
                nonce: v.nonce.clone(),
                ciphertext: v.ciphertext.clone(),
            };
            match app.credential_manager.open_verifier(&key, &sealed).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(session = %s.id, error = %e, "connect: opening the verifier failed");
                    return failed(ConnectError::ServerError);
                }
            }
        }
    };
    let exchanged = app
        .credential_manager
        .exchange_code(CodeExchange {
            def: &def,
            base_url: s.base_url.as_deref(),
            code,
            redirect_uri: &redirect_uri,
            verifier: verifier.as_ref(),
        })
        .await;
    match exchanged {
        Ok(doc) => connect_with(app, s, &def, doc).await,
        Err(e) => {
            tracing::warn!(session = %s.id, provider = %s.provider, error = %e, "connect: code exchange failed");
            failed(ConnectError::ExchangeFailed)
        }
    }
}

/// Stores the credential and creates (or re-authorizes) the connection.
async fn connect_with(
    app: &AppState,
    s: &ConnectSession,
    def: &ConnectorDef,
    doc: CredentialDoc,
) -> ConnectOutcome {
    let result = if s.reconnect {
        reauthorize(app, s, doc).await
    } else {
        create_connection(app, s, def, doc).await
    };
    match result {
        Ok(conn) => ConnectOutcome::Connected {
            connection_id: conn.id,
        },
        Err(e) => {
            tracing::warn!(session = %s.id, connection = %s.connection_id, error = %e, "connect: storing the connection failed");
            failed(ConnectError::ServerError)
        }
    }
}

async fn create_connection(
    app: &AppState,
    s: &ConnectSession,
    def: &ConnectorDef,
    doc: CredentialDoc,
) -> Result<Connection, String> {
    let now = app.clock.now();
    let (conn, tasks) = plan_connection(
        NewConnection {
            id: s.connection_id.to_string(),
            tenant: s.tenant.to_string(),
            provider: def.name.clone(),
            base_url: s.base_url.clone(),
            objects: Vec::new(),
            interval_secs: 300,
            settings: s.settings.clone(),
        },
        &app.registry,
        now,
    )
    .map_err(|e| e.to_string())?;
    let store = &app.store;
    if store
        .get_connection(&conn.id)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!("connection {} exists", conn.id));
    }
    // The credential first, then the tasks, then the connection: a
    // connection is listed only once it can run.
    app.credential_manager
        .store_initial(&conn.id, doc)
        .await
        .map_err(|e| e.to_string())?;
    for t in &tasks {
        store.put_task(t).await.map_err(|e| e.to_string())?;
    }
    store
        .put_connection(&conn)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(connection = %conn.id, tenant = %conn.tenant, tasks = tasks.len(), "connection created by the connect flow");
    app.events.emit(Event::connection_created(&conn)).await;
    Ok(conn)
}

async fn reauthorize(
    app: &AppState,
    s: &ConnectSession,
    doc: CredentialDoc,
) -> Result<Connection, String> {
    let store = &app.store;
    app.credential_manager
        .reauthorize(&s.connection_id, doc)
        .await
        .map_err(|e| e.to_string())?;
    let conn = store
        .get_connection(&s.connection_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("connection {} is gone", s.connection_id))?;
    // Its tasks were skipped while it needed re-authorization: run them now.
    let now = app.clock.now();
    for t in store
        .list_tasks(Some(&conn.id))
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|t| t.direction == Direction::Inbound)
    {
        store
            .request_run(&t.id, Priority::Interactive, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(connection = %conn.id, "connection re-authorized by the connect flow");
    app.events.emit(Event::connection_reauthorized(&conn)).await;
    Ok(conn)
}

/// What the built-in done page shows.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoneQuery {
    /// The connection, on success.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// The error code, on failure.
    #[serde(default)]
    pub error: Option<String>,
}

/// The built-in return page (the CLI's `connect` uses it): "you can close this window".
#[utoipa::path(get, path = "/v1/connect/done", tag = "connect", security(()),
    params(DoneQuery),
    responses((status = 200, description = "Connected, or why not", content_type = "text/html", body = String),
        (status = "4XX", description = "A malformed query", content_type = "text/html", body = String)))]
pub async fn done(q: Result<Query<DoneQuery>, QueryRejection>) -> Response {
    let Query(q) = q.unwrap_or_default();
    match (q.connection_id, q.error) {
        (Some(id), _) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "<p>Connection <code id=\"connection\">{}</code> is ready. You can close this window.</p>",
                escape(&id)
            ),
        ),
        (None, error) => page(
            StatusCode::OK,
            "Not connected",
            &format!(
                "<p id=\"error\">{}</p><p>You can close this window.</p>",
                escape(error.as_deref().unwrap_or("unknown"))
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_core::connector::registry::Registry;

    fn body(connection_id: Option<&str>, settings: Option<&[(&str, &str)]>) -> SessionBody {
        SessionBody {
            tenant: "acme".into(),
            provider: "github".into(),
            return_url: "https://app.example/done".into(),
            connection_id: connection_id.map(str::to_owned),
            base_url: None,
            settings: settings.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
        }
    }

    /// A new connection's session carries its checked settings; a missing
    /// one refuses the session; a re-authorization takes none.
    #[test]
    fn session_settings_are_checked_when_the_session_is_made() {
        let r = Registry::builtin();
        let gh = r.get("github").unwrap();
        let given = [("owner", "octo"), ("repo", "hello")];
        let kept = session_settings(&gh, &body(None, Some(&given))).unwrap();
        assert_eq!(kept.get("repo").map(String::as_str), Some("hello"));
        let missing = session_settings(&gh, &body(None, None)).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("needs the settings owner, repo"),
            "{missing}"
        );
        assert!(
            session_settings(&gh, &body(Some("c1"), None))
                .unwrap()
                .is_empty()
        );
        let again = session_settings(&gh, &body(Some("c1"), Some(&given))).unwrap_err();
        assert!(
            again.to_string().contains("re-authorization keeps"),
            "{again}"
        );
    }
}
