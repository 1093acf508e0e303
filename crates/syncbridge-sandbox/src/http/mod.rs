//! The HTTP surface: HubSpot-shaped `/crm/v3` and `/oauth/v1` routes plus the
//! `/_sandbox` admin API. Only this module knows about axum.
//!
//! Layering, outermost first: every route is counted in the stats
//! ([`count_route`]); `/crm` routes then pass the [`gate`] (rate limit →
//! faults → bearer token) before their handler.

mod admin;
mod authorize;
mod crm;
mod error;
mod gate;
mod oauth;
mod render;
mod search;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::sandbox::Sandbox;

pub(crate) use error::ApiError;

/// The whole API as a router, for `axum::serve` or `tower::ServiceExt::oneshot`.
pub fn app(sandbox: Sandbox) -> Router {
    let provider = Router::new()
        .route("/crm/v3/objects/{object}", get(crm::list).post(crm::create))
        .route("/crm/v3/objects/{object}/search", post(crm::search))
        .route(
            "/crm/v3/objects/{object}/{id}",
            get(crm::get_one).patch(crm::update).delete(crm::archive),
        )
        .layer(middleware::from_fn_with_state(sandbox.clone(), gate::gate));
    let admin = Router::new()
        .route("/_sandbox/stats", get(admin::stats))
        .route("/_sandbox/mutate", post(admin::mutate))
        .route("/_sandbox/reset", post(admin::reset))
        .route(
            "/_sandbox/config",
            get(admin::get_config).post(admin::set_config),
        )
        .route("/_sandbox/records/{object}", get(admin::records))
        .route("/_sandbox/revoke", post(admin::revoke))
        .route("/_sandbox/tokens", post(admin::mint_tokens));
    Router::new()
        .merge(provider)
        .merge(admin)
        .route("/oauth/v1/token", post(oauth::token))
        .route(
            "/oauth/authorize",
            get(authorize::authorize_page).post(authorize::decide),
        )
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(sandbox.clone(), count_route))
        .with_state(sandbox)
}

async fn count_route(State(sbx): State<Sandbox>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", req.method(), path.as_str()),
        None => "unmatched".to_owned(),
    };
    sbx.stats_ref().count_route(route);
    next.run(req).await
}
