//! `GET /v1/connection-summaries`: a page of connections (the filters and
//! cursors of `GET /v1/connections`) with what the dashboard's table shows
//! beside each — the last and next sync and the latest run's outcome — so
//! the table is one call per page however many connections exist.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use syncbridge_core::store::RunQuery;
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::connections::{ListParams, list};
use crate::problem::{ApiError, Problem};
use crate::views::{ConnectionView, RunView};

/// A connection and its sync state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionSummary {
    /// The connection.
    #[serde(flatten)]
    pub connection: ConnectionView,
    /// When one of its tasks last ran (RFC 3339).
    pub last_sync_at: Option<String>,
    /// When its next task is due (RFC 3339).
    pub next_sync_at: Option<String>,
    /// Its latest run's status (`running`, `succeeded`, `failed`).
    pub last_status: Option<String>,
    /// Its latest run's error.
    pub last_error: Option<String>,
}

/// A page of summaries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SummaryPage {
    /// By id.
    pub connections: Vec<ConnectionSummary>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

async fn summary(app: &AppState, view: ConnectionView) -> Result<ConnectionSummary, ApiError> {
    let id = crate::connections::connection_id(&view.id)?;
    let tasks = app.store.list_tasks(Some(&id)).await?;
    let latest = app
        .store
        .list_runs_page(&RunQuery {
            connection: Some(id),
            statuses: Vec::new(),
            since: None,
            after: None,
            limit: 1,
        })
        .await?;
    let run = latest.first().map(RunView::from);
    Ok(ConnectionSummary {
        last_sync_at: tasks
            .iter()
            .filter_map(|t| t.last_run_at)
            .max()
            .map(|t| t.to_string()),
        next_sync_at: tasks
            .iter()
            .map(|t| t.next_run_at)
            .min()
            .map(|t| t.to_string()),
        last_status: run.as_ref().map(|r| r.status.clone()),
        last_error: run.and_then(|r| r.error),
        connection: view,
    })
}

/// Lists connections by id with their last and next sync and latest outcome.
#[utoipa::path(get, path = "/v1/connection-summaries", tag = "connections",
    params(ListParams),
    responses((status = 200, body = SummaryPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn summaries(
    State(app): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<SummaryPage>, ApiError> {
    let Json(page) = list(State(app.clone()), q).await?;
    let mut connections = Vec::with_capacity(page.connections.len());
    for view in page.connections {
        connections.push(summary(&app, view).await?);
    }
    Ok(Json(SummaryPage {
        connections,
        next_cursor: page.next_cursor,
    }))
}
