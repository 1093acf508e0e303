//! `GET /v1/health`: store reachable, queue depth and dead letters per
//! queue (where the queue backend can count), overdue tasks, connections
//! needing re-authorization.
//!
//! Not reported yet, and said so in the answer: Service Bus queue depths
//! (they need the management API, which the sender's data-plane token
//! cannot read) and per-function last invocation and failures (nothing
//! records them durably yet).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use syncbridge_core::QueueName;
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::store::ConnectionQuery;
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::problem::Problem;

/// How many ids a health section lists.
const SAMPLE: usize = 100;

/// One queue's messages by state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// Waiting for a receiver.
    pub active: u64,
    /// Waiting for their scheduled time.
    pub scheduled: u64,
    /// Held by a receiver now.
    pub locked: u64,
    /// In the dead-letter queue.
    pub dead_lettered: u64,
}

/// Some ids and how many there are (at most [`SAMPLE`] listed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Sample {
    /// How many were found (capped at the sample size plus one).
    pub count: usize,
    /// Their ids.
    pub ids: Vec<String>,
    /// More exist than listed.
    pub more: bool,
}

impl Sample {
    fn of(mut ids: Vec<String>) -> Self {
        let more = ids.len() > SAMPLE;
        let count = ids.len();
        ids.truncate(SAMPLE);
        Sample { count, ids, more }
    }
}

/// The health report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the store cannot be read.
    pub status: String,
    /// Whether the store answered.
    pub store_reachable: bool,
    /// The store's error, when it did not.
    pub store_error: Option<String>,
    /// Queue depths, when the queue backend can count them.
    pub queues: Option<Vec<QueueView>>,
    /// Why `queues` is missing.
    pub queues_note: Option<String>,
    /// Tasks past their watchdog time (no run within twice their interval).
    pub overdue_tasks: Option<Sample>,
    /// Connections a person must re-authorize.
    pub needs_reauth: Option<Sample>,
    /// What is not reported yet.
    pub not_reported: Vec<String>,
}

async fn queue_counts(app: &AppState) -> Result<Vec<QueueView>, String> {
    if app.settings.azure.service_bus.is_some() {
        return Err("Service Bus queue depths need the management API; not reported".into());
    }
    let path = app.settings.data_dir.join("queue.db");
    tokio::task::spawn_blocking(move || {
        let q = syncbridge_localqueue::LocalQueue::open(&path).map_err(|e| e.to_string())?;
        [QueueName::inbound(), QueueName::outbound()]
            .iter()
            .map(|name| {
                let c = q.counts(name.as_str()).map_err(|e| e.to_string())?;
                Ok(QueueView {
                    name: name.to_string(),
                    active: c.active,
                    scheduled: c.scheduled,
                    locked: c.locked,
                    dead_lettered: c.dead_lettered,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The report; 503 when the store cannot be read.
#[utoipa::path(get, path = "/v1/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn health(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let now = app.clock.now();
    let overdue = app.store.stall_candidates(now, SAMPLE + 1).await;
    let reauth = app
        .store
        .list_connections_page(&ConnectionQuery {
            status: Some(ConnectionStatus::NeedsReauth),
            limit: SAMPLE + 1,
            ..Default::default()
        })
        .await;
    let store_error = match (&overdue, &reauth) {
        (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let (queues, queues_note) = match queue_counts(&app).await {
        Ok(q) => (Some(q), None),
        Err(why) => (None, Some(why)),
    };
    let ok = store_error.is_none();
    let report = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        store_reachable: ok,
        store_error,
        queues,
        queues_note,
        overdue_tasks: overdue
            .ok()
            .map(|v| Sample::of(v.into_iter().map(|t| t.id.to_string()).collect())),
        needs_reauth: reauth
            .ok()
            .map(|v| Sample::of(v.into_iter().map(|c| c.id.to_string()).collect())),
        not_reported: vec![
            "last invocation and recent failures per function: not recorded durably yet".into(),
        ],
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
