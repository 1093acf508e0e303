//! `GET /v1/health`: store reachable, queue depth and dead letters per
//! queue, last invocation and recent failures per function, overdue tasks,
//! connections needing re-authorization.
//!
//! Queue depths come from the queue backend (`QueueSender::depth`): the
//! local queue counts its file; Service Bus answers its entity's runtime
//! properties only to an identity with Data Owner (Manage) rights, so a
//! queue the app may not read is `unknown`, with the reason. Function
//! heartbeats are what the handlers record in the store (core's
//! `heartbeat`): a function never invoked since the store was created has
//! no `last_invocation`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::store::ConnectionQuery;
use syncbridge_core::{QueueDepth, QueueName, Timestamp};
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::problem::Problem;

/// How many ids a health section lists.
const SAMPLE: usize = 100;

/// The functions of a deployment, listed even before their first beat.
pub const FUNCTIONS: [&str; 6] = [
    "SyncScheduler",
    "SyncInboundWorker",
    "SyncOutboundWorker",
    "TokenRefresher",
    "WebhookReceiver",
    crate::FUNCTION,
];

/// One queue's messages by state, or why they are unknown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// `counted`, or `unknown` (see `unknown_reason`).
    pub state: String,
    /// Waiting for a receiver.
    pub active: Option<u64>,
    /// Waiting for their scheduled time.
    pub scheduled: Option<u64>,
    /// Held by a receiver now (the local queue only).
    pub locked: Option<u64>,
    /// In the dead-letter queue.
    pub dead_lettered: Option<u64>,
    /// Why the counts are unknown.
    pub unknown_reason: Option<String>,
}

impl QueueView {
    fn of(name: &QueueName, depth: QueueDepth) -> Self {
        match depth {
            QueueDepth::Counted(c) => QueueView {
                name: name.to_string(),
                state: "counted".into(),
                active: Some(c.active),
                scheduled: Some(c.scheduled),
                locked: c.locked,
                dead_lettered: Some(c.dead_lettered),
                unknown_reason: None,
            },
            QueueDepth::Unknown(why) => QueueView {
                name: name.to_string(),
                state: "unknown".into(),
                active: None,
                scheduled: None,
                locked: None,
                dead_lettered: None,
                unknown_reason: Some(why),
            },
        }
    }
}

/// One function's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FunctionView {
    /// Function name.
    pub function: String,
    /// The latest invocation recorded (to within the heartbeat's 10 s), RFC 3339.
    pub last_invocation: Option<String>,
    /// The latest success.
    pub last_success: Option<String>,
    /// The latest failure (a 5xx answer: the host retries it).
    pub last_failure: Option<String>,
    /// The latest failure's class (`store`, `queue`, `push`, `tick`, `sweep`, `binding`, `http <status>`).
    pub last_error_kind: Option<String>,
    /// Failures in the last hour.
    pub failures_last_hour: u64,
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

/// Tasks past their watchdog time, and the one overdue longest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overdue {
    /// How many (capped at the sample size plus one).
    pub count: usize,
    /// Their ids.
    pub ids: Vec<String>,
    /// More exist than listed.
    pub more: bool,
    /// The task overdue longest (earliest watchdog time) among those read.
    pub oldest_task: Option<String>,
    /// Since when it is overdue (its watchdog time), RFC 3339.
    pub oldest_since: Option<String>,
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
    /// Each queue's depth and dead letters, or why they are unknown.
    pub queues: Vec<QueueView>,
    /// Each function's last invocation and recent failures (missing when
    /// the store cannot be read).
    pub functions: Option<Vec<FunctionView>>,
    /// Tasks past their watchdog time (no run within twice their interval).
    pub overdue_tasks: Option<Overdue>,
    /// Connections a person must re-authorize.
    pub needs_reauth: Option<Sample>,
}

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

/// Every known function's view, from the stored beats (pure).
pub fn function_views(
    beats: &[syncbridge_core::heartbeat::FunctionBeat],
    now: Timestamp,
) -> Vec<FunctionView> {
    let mut names: Vec<&str> = FUNCTIONS.to_vec();
    for b in beats {
        if !names.contains(&b.function.as_str()) {
            names.push(&b.function);
        }
    }
    names
        .into_iter()
        .map(|name| match beats.iter().find(|b| b.function == name) {
            Some(b) => FunctionView {
                function: name.to_owned(),
                last_invocation: Some(b.last_invocation.to_rfc3339()),
                last_success: rfc3339(b.last_success),
                last_failure: rfc3339(b.last_failure),
                last_error_kind: b.last_error_kind.clone(),
                failures_last_hour: b.recent_failures(now) as u64,
            },
            None => FunctionView {
                function: name.to_owned(),
                last_invocation: None,
                last_success: None,
                last_failure: None,
                last_error_kind: None,
                failures_last_hour: 0,
            },
        })
        .collect()
}

fn overdue(tasks: &[syncbridge_core::model::SyncTask]) -> Overdue {
    let oldest = tasks
        .iter()
        .filter_map(|t| t.stall_at().map(|at| (at, t)))
        .min_by_key(|(at, _)| *at);
    let sample = Sample::of(tasks.iter().map(|t| t.id.to_string()).collect());
    Overdue {
        count: sample.count,
        ids: sample.ids,
        more: sample.more,
        oldest_task: oldest.map(|(_, t)| t.id.to_string()),
        oldest_since: oldest.map(|(at, _)| at.to_rfc3339()),
    }
}

/// The report; 503 when the store cannot be read.
#[utoipa::path(get, path = "/v1/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn health(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let now = app.clock.now();
    let overdue_tasks = app.store.stall_candidates(now, SAMPLE + 1).await;
    let reauth = app
        .store
        .list_connections_page(&ConnectionQuery {
            status: Some(ConnectionStatus::NeedsReauth),
            limit: SAMPLE + 1,
            ..Default::default()
        })
        .await;
    let beats = app.store.list_function_beats().await;
    let store_error = match (&overdue_tasks, &reauth, &beats) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let mut queues = Vec::new();
    for name in [QueueName::inbound(), QueueName::outbound()] {
        let depth = app.queue.depth(&name).await;
        queues.push(QueueView::of(&name, depth));
    }
    let ok = store_error.is_none();
    let report = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        store_reachable: ok,
        store_error,
        queues,
        functions: beats.ok().map(|b| function_views(&b, now)),
        overdue_tasks: overdue_tasks.ok().map(|t| overdue(&t)),
        needs_reauth: reauth
            .ok()
            .map(|v| Sample::of(v.into_iter().map(|c| c.id.to_string()).collect())),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
