//! `/v1/quarantine`: list, inspect, replay, discard. [`replay`] is the one
//! replay `syncbridge quarantine replay` runs too; webhook events are routed
//! again by core's `pipeline::webhook::replay`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use syncbridge_core::pipeline::webhook::ReplayError as WebhookReplayError;
use syncbridge_core::store::QuarantineEntry;
use syncbridge_core::{OutboundMessage, QueueError, QueueName, StoreError};
use syncbridge_functions::AppState;
use utoipa::{IntoParams, ToSchema};

use crate::pages;
use crate::problem::{ApiError, Problem};

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// A webhook event was routed again: its follow-up jobs were enqueued.
    Routed {
        /// How many.
        jobs: usize,
    },
    /// A queue message was sent again to its queue.
    Resent {
        /// The queue.
        queue: String,
    },
}

/// Why a replay did not happen (the entry stays in quarantine).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No entry has this id.
    #[error("no quarantine entry #{0}")]
    NoEntry(i64),
    /// The webhook event still matches no sync task.
    #[error("#{0} still matches no sync task; left in quarantine")]
    StillUnroutable(i64),
    /// The message came from a function without a queue.
    #[error("#{id} came from {origin}, which has no queue to replay to")]
    NoQueue {
        /// The entry.
        id: i64,
        /// Where it came from.
        origin: String,
    },
    /// Routing the webhook event failed.
    #[error(transparent)]
    Routing(#[from] WebhookReplayError),
    /// Sending the message failed.
    #[error("re-sending: {0}")]
    Queue(#[from] QueueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Quarantine is small (messages nobody could process); it is read whole
/// and paged here.
async fn all(app: &AppState) -> Result<Vec<QuarantineEntry>, StoreError> {
    app.store.list_quarantine(usize::MAX >> 1).await
}

/// The entry `id`, if it exists.
pub async fn find(app: &AppState, id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
    Ok(all(app).await?.into_iter().find(|e| e.id == id))
}

/// Re-processes entry `id` and removes it from quarantine: a webhook event
/// is routed again, a queue message re-sent to its queue.
pub async fn replay(app: &AppState, id: i64) -> Result<Replayed, ReplayError> {
    let entry = find(app, id).await?.ok_or(ReplayError::NoEntry(id))?;
    let m = &entry.message;
    let done = if m
        .source
        .starts_with(syncbridge_functions::webhook::FUNCTION)
    {
        // A new correlation id ties the replayed jobs' logs together.
        let correlation_id = syncbridge_functions::correlation::new_id();
        let replayed = syncbridge_core::pipeline::webhook::replay(
            &*app.store,
            &*app.queue,
            m,
            &correlation_id,
        )
        .await?;
        match replayed {
            Some(jobs) => Replayed::Routed { jobs },
            None => return Err(ReplayError::StillUnroutable(id)),
        }
    } else {
        let queue = match m.source.as_str() {
            syncbridge_functions::inbound::FUNCTION => QueueName::inbound(),
            syncbridge_functions::outbound::FUNCTION => QueueName::outbound(),
            other => {
                return Err(ReplayError::NoQueue {
                    id,
                    origin: other.to_owned(),
                });
            }
        };
        let mut msg = OutboundMessage::json(
            queue.clone(),
            format!("replay-{id}"),
            &serde_json::Value::Null,
        );
        msg.body = m.body.clone();
        app.queue.send(vec![msg]).await?;
        Replayed::Resent {
            queue: queue.to_string(),
        }
    };
    app.store.take_quarantined(id).await?;
    Ok(done)
}

/// A quarantined message, in short.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// Entry id.
    pub id: i64,
    /// Where it came from (function or queue).
    pub source: String,
    /// Its message id or webhook dedup key.
    pub message_id: Option<String>,
    /// Its connection, when known.
    pub connection_id: Option<String>,
    /// Why it was set aside.
    pub reason: String,
    /// When.
    pub at: String,
    /// Size of its payload.
    pub bytes: usize,
}

impl From<&QuarantineEntry> for EntryView {
    fn from(e: &QuarantineEntry) -> Self {
        EntryView {
            id: e.id,
            source: e.message.source.clone(),
            message_id: e.message.message_id.clone(),
            connection_id: e.message.connection.as_ref().map(|c| c.to_string()),
            reason: e.message.reason.clone(),
            at: e.message.at.to_rfc3339(),
            bytes: e.message.body.len(),
        }
    }
}

/// A quarantined message with its payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryDetail {
    /// The entry.
    #[serde(flatten)]
    pub entry: EntryView,
    /// The payload as text, when it is UTF-8.
    pub body_text: Option<String>,
    /// The payload, base64.
    pub body_base64: String,
}

/// A page of quarantine entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryPage {
    /// Oldest first.
    pub entries: Vec<EntryView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /v1/quarantine`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

const QUARANTINE: &str = "quarantine";

/// Lists quarantined messages and webhook events, oldest first.
#[utoipa::path(get, path = "/v1/quarantine", operation_id = "list_quarantine", operation_id = "list_quarantine", tag = "quarantine",
    params(ListParams),
    responses((status = 200, body = EntryPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(app): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<EntryPage>, ApiError> {
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let after: Option<i64> = match p.cursor {
        Some(c) => Some(pages::decode(QUARANTINE, &c, 1)?[0].parse().map_err(|_| {
            ApiError::InvalidCursor(format!("cursor {c:?} was not issued for this list"))
        })?),
        None => None,
    };
    let page: Vec<QuarantineEntry> = all(&app)
        .await?
        .into_iter()
        .filter(|e| after.is_none_or(|a| e.id > a))
        .take(limit)
        .collect();
    Ok(Json(EntryPage {
        next_cursor: pages::next_cursor(&page, limit, |e| {
            pages::encode(QUARANTINE, &[&e.id.to_string()])
        }),
        entries: page.iter().map(EntryView::from).collect(),
    }))
}

async fn entry(
    app: &AppState,
    id: Result<Path<i64>, PathRejection>,
) -> Result<QuarantineEntry, ApiError> {
    let Path(id) = id?;
    find(app, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no quarantine entry #{id}")))
}

/// One entry with its payload.
#[utoipa::path(get, path = "/v1/quarantine/{id}", operation_id = "get_quarantine_entry", tag = "quarantine",
    params(("id" = i64, Path, description = "Entry id", minimum = 1)),
    responses((status = 200, body = EntryDetail),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<EntryDetail>, ApiError> {
    let e = entry(&app, id).await?;
    Ok(Json(EntryDetail {
        entry: EntryView::from(&e),
        body_text: String::from_utf8(e.message.body.clone()).ok(),
        body_base64: base64::engine::general_purpose::STANDARD.encode(&e.message.body),
    }))
}

/// What a replay did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    /// The entry (now out of quarantine).
    pub id: i64,
    /// `routed` (a webhook event) or `resent` (a queue message).
    pub outcome: String,
    /// Follow-up jobs enqueued, for a webhook event.
    pub jobs: Option<usize>,
    /// The queue it went to, for a message.
    pub queue: Option<String>,
}

/// Re-processes an entry; it leaves quarantine when that worked.
#[utoipa::path(post, path = "/v1/quarantine/{id}/replay", operation_id = "replay_quarantine_entry", tag = "quarantine",
    params(("id" = i64, Path, description = "Entry id", minimum = 1)),
    responses((status = 200, body = ReplayView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn replay_one(
    State(app): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<ReplayView>, ApiError> {
    let Path(id) = id?;
    let done = replay(&app, id).await.map_err(|e| match e {
        ReplayError::NoEntry(_) => ApiError::NotFound(e.to_string()),
        ReplayError::StillUnroutable(_) | ReplayError::NoQueue { .. } => {
            ApiError::Conflict(e.to_string())
        }
        ReplayError::Store(s) => s.into(),
        // The entry names no connection, or its connection takes no webhooks
        // any more: fixing the connection, not retrying, is what helps.
        ReplayError::Routing(
            WebhookReplayError::NoConnection | WebhookReplayError::NotAccepting(_),
        ) => ApiError::Conflict(e.to_string()),
        ReplayError::Routing(WebhookReplayError::Store(s)) => s.into(),
        ReplayError::Routing(WebhookReplayError::Queue(_)) | ReplayError::Queue(_) => {
            ApiError::Unavailable(e.to_string())
        }
    })?;
    Ok(Json(match done {
        Replayed::Routed { jobs } => ReplayView {
            id,
            outcome: "routed".into(),
            jobs: Some(jobs),
            queue: None,
        },
        Replayed::Resent { queue } => ReplayView {
            id,
            outcome: "resent".into(),
            jobs: None,
            queue: Some(queue),
        },
    }))
}

/// Discards an entry.
#[utoipa::path(delete, path = "/v1/quarantine/{id}", operation_id = "discard_quarantine_entry", tag = "quarantine",
    params(("id" = i64, Path, description = "Entry id", minimum = 1)),
    responses((status = 204, description = "Discarded"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn discard(
    State(app): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    match app.store.take_quarantined(id).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::NotFound(format!("no quarantine entry #{id}"))),
    }
}
