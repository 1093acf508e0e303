//! The product API: the `SyncApi` custom handler's router and handlers.
//!
//! An HTTP-only function (route `v1/{*path}`): the Functions host (or
//! `syncbridge up`) proxies requests byte for byte, with the route prefix,
//! so routes here are served under `/api/v1/…`. Every route but
//! `GET /v1/openapi.json`, `/v1/session`, the dashboard's files
//! (`/v1/admin/…`) and the connect flow's browser routes
//! (`/v1/connect/s/…`, `/v1/connect/callback`, `/v1/connect/done`) needs
//! `Authorization: Bearer <API key>` or the dashboard's session cookie
//! (with `X-CSRF-Token` on changes).
//!
//! # Layout
//!
//! - [`keys`]: making, checking, revoking API keys (the CLI calls it too);
//!   [`auth`]: the bearer middleware and the scope each call needs.
//! - [`problem`]: [`ApiError`], answered as RFC 9457 problem documents.
//! - [`pages`]: opaque cursors and page sizes.
//! - [`records`]: the records feed (change order, tombstones, cursors
//!   to poll from, the semantics of Nango's records API).
//! - [`notifications`]: the notification channels (read-only) and rules (editable),
//!   outbox counts, a test message.
//! - [`run_stats`]: runs per hour (the Overview's charts, one call).
//! - [`summaries`]: connections with their last and next sync (the
//!   dashboard's table, one call per page).
//! - [`webhook`]: a connection's webhook scheme and secrets, rotation.
//! - [`connect`]: the connect flow (OAuth 2.0 authorization code + PKCE,
//!   or a key form): sessions (write scope) and the public browser routes
//!   (the link, the callback, the done page), which need no key.
//! - [`changes`]: the product's record changes (create, update, delete,
//!   push status, conflicts and their resolution, the audit), through core's
//!   outbound path; [`idempotency`]: the `Idempotency-Key` those calls take.
//! - [`connections`], [`runs`], [`quarantine`], [`catalog`], [`health`],
//!   [`api_keys`]: the routes; [`views`]: their JSON; [`policies`]: the
//!   check of a connection's conflict policies before `PATCH` stores them.
//! - [`session`]: the dashboard's sign-in (API key or one-time link) →
//!   session cookie + CSRF token; [`dashboard`]: its embedded files at
//!   `/api/v1/admin/`.
//! - [`router`] / [`openapi`]: the routes and the OpenAPI 3.1 document,
//!   generated from the same annotated handlers (`utoipa`), so the
//!   document cannot list a route the router lacks. `docs/openapi.json` is
//!   its committed copy; a test fails when they differ
//!   (`SYNCBRIDGE_WRITE_OPENAPI=1 cargo test -p syncbridge-api --test openapi`
//!   rewrites it).

pub mod api_keys;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod connect;
pub mod connections;
pub mod dashboard;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod notifications;
pub mod pages;
pub mod policies;
pub mod problem;
pub mod quarantine;
pub mod records;
pub mod run_stats;
pub mod runs;
pub mod session;
pub mod summaries;
pub mod views;
pub mod webhook;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use syncbridge_functions::AppState;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::ApiError;

/// The function's name (folder `functions/SyncApi`, binary `sync-api`).
pub const FUNCTION: &str = "SyncApi";

/// The Functions host's route prefix (`host.json`: `extensions.http.routePrefix`).
pub const ROUTE_PREFIX: &str = "/api";

/// The largest request body accepted (bodies are small JSON documents).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "syncbridge API",
        description = "The product's integration surface: the records feed, the connect flow, record changes (Idempotency-Key), conflicts and the audit, connections, sync now, runs, tasks, quarantine, the connector catalog, health and API keys. Every call but GET /v1/openapi.json, /v1/session and the connect flow's browser routes (/v1/connect/s/…, /v1/connect/callback, /v1/connect/done) needs `Authorization: Bearer <key>` (or the dashboard's session cookie `sb_session` from POST /v1/session, with the header X-CSRF-Token on every change); errors are RFC 9457 problem documents; lists page with opaque cursors.",
        version = "1"
    ),
    servers((url = "/api")),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    paths(openapi_json),
    components(schemas(problem::Problem))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document itself, public.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "get_openapi", tag = "meta", security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_text(),
    )
        .into_response()
}

fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connections::list, connections::create))
        .routes(routes!(connect::create))
        .routes(routes!(
            connections::get,
            connections::update,
            connections::delete
        ))
        .routes(routes!(connections::pause))
        .routes(routes!(connections::resume))
        .routes(routes!(connections::sync_now))
        .routes(routes!(connections::tasks))
        .routes(routes!(summaries::summaries))
        .routes(routes!(webhook::get, webhook::set, webhook::remove))
        .routes(routes!(webhook::rotate))
        .routes(routes!(webhook::drop_previous))
        .routes(routes!(records::feed))
        .routes(routes!(changes::create_record))
        .routes(routes!(changes::update_record, changes::delete_record))
        .routes(routes!(changes::record_status))
        .routes(routes!(changes::resolve))
        .routes(routes!(changes::conflicts))
        .routes(routes!(changes::audit))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(run_stats::stats))
        .routes(routes!(quarantine::list))
        .routes(routes!(quarantine::get, quarantine::discard))
        .routes(routes!(quarantine::replay_one))
        .routes(routes!(catalog::list))
        .routes(routes!(catalog::get))
        .routes(routes!(health::health))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(notifications::get))
        .routes(routes!(notifications::test))
        .routes(routes!(notifications::put_rules))
        .split_for_parts()
}

/// The session routes: public (they check the cookie or the credential
/// themselves), in the document.
fn session_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(
            session::sign_in,
            session::current,
            session::sign_out
        ))
        .split_for_parts()
}

/// The connect flow's browser routes: public (the link and the state are
/// their credentials), in the document.
fn connect_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(connect::open, connect::submit_key))
        .routes(routes!(connect::callback))
        .routes(routes!(connect::done))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = parts().1;
    doc.merge(session_parts().1);
    doc.merge(connect_parts().1);
    doc
}

/// The document as served and committed (pretty JSON, trailing newline).
pub fn openapi_text() -> String {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = openapi().to_pretty_json().expect("the document serializes");
        text.push('\n');
        text
    })
    .clone()
}

/// The handler's router: every route under [`ROUTE_PREFIX`], the key check
/// on all but the document, problem documents for unknown paths and methods.
pub fn router(state: AppState) -> Router {
    let (api, _) = parts();
    let public = Router::new()
        .route("/v1/openapi.json", axum::routing::get(openapi_json))
        .route("/v1/admin", axum::routing::get(dashboard::redirect))
        .route("/v1/admin/", axum::routing::get(dashboard::root))
        .route("/v1/admin/{*path}", axum::routing::get(dashboard::file))
        .merge(session_parts().0)
        .merge(connect_parts().0);
    let guarded = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .method_not_allowed_fallback(problem::method_not_allowed);
    let v1 = public
        .merge(guarded)
        .fallback(problem::no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .nest(ROUTE_PREFIX, v1)
        .fallback(problem::no_route)
        .with_state(state)
}
