//! `/v1/runs`: runs by connection, status and time, newest first; one run.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use syncbridge_core::store::{RunKey, RunQuery};
use syncbridge_core::{RunId, Timestamp};
use syncbridge_functions::AppState;
use utoipa::IntoParams;

use crate::connections::load;
use crate::pages;
use crate::problem::{ApiError, Problem};
use crate::views::{RunPage, RunView, internal_statuses};

/// Filters and paging of `GET /v1/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this connection's runs.
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub connection_id: Option<String>,
    /// `running`, `succeeded` or `failed`.
    #[param(pattern = "^(running|succeeded|failed)$")]
    pub status: Option<String>,
    /// Only runs started at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

const RUNS: &str = "runs";

fn run_key(cursor: &str) -> Result<RunKey, ApiError> {
    let k = pages::decode(RUNS, cursor, 2)?;
    let bad = || ApiError::InvalidCursor(format!("cursor {cursor:?} was not issued for this list"));
    let at: i64 = k[0].parse().map_err(|_| bad())?;
    Ok(RunKey {
        started_at: Timestamp::from_millis(at),
        id: RunId::parse(k[1].clone()).map_err(|_| bad())?,
    })
}

/// Lists runs, newest first.
#[utoipa::path(get, path = "/v1/runs", operation_id = "list_runs", operation_id = "list_runs", tag = "runs",
    params(ListParams),
    responses((status = 200, body = RunPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(app): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let statuses = match p.status.as_deref() {
        None => Vec::new(),
        Some(s) => internal_statuses(s).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "status {s:?}: must be running, succeeded or failed"
            ))
        })?,
    };
    let since = pages::time_param("since", p.since.as_deref())?;
    let after = p.cursor.as_deref().map(run_key).transpose()?;
    let connection = match p.connection_id.as_deref() {
        Some(id) => Some(load(&app, id).await?.id),
        None => None,
    };
    let runs = app
        .store
        .list_runs_page(&RunQuery {
            connection,
            statuses,
            since,
            after,
            limit,
        })
        .await?;
    Ok(Json(RunPage {
        next_cursor: pages::next_cursor(&runs, limit, |r| {
            pages::encode(
                RUNS,
                &[&r.started_at.as_millis().to_string(), r.id.as_str()],
            )
        }),
        runs: runs.iter().map(RunView::from).collect(),
    }))
}

/// One run.
#[utoipa::path(get, path = "/v1/runs/{id}", operation_id = "get_run", tag = "runs",
    params(("id" = String, Path, description = "Run id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 512)),
    responses((status = 200, body = RunView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RunView>, ApiError> {
    let Path(id) = id?;
    let id = RunId::parse(id).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let run = app
        .store
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    Ok(Json(RunView::from(&run)))
}
