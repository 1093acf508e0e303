//! What the API answers with: JSON views of the domain, with their schemas.
//! Times are RFC 3339 text; secrets (sealed webhook secrets, credentials)
//! never appear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use syncbridge_core::Timestamp;
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::merge::ConnectionPolicies;
use syncbridge_core::model::{Connection, RunCounts, RunStatus, SyncRun, SyncTask};
use syncbridge_core::store::LastAction;
use utoipa::ToSchema;

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// A connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionView {
    /// Unique id (also the webhook route segment).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Connector name.
    pub provider: String,
    /// `active`, `needs_reauth` (a person must re-authorize) or `disabled` (paused).
    pub status: String,
    /// Overridden provider base URL.
    pub base_url: Option<String>,
    /// Connector settings.
    pub settings: BTreeMap<String, String>,
    /// Webhook signature scheme, when webhooks are set up.
    pub webhook_scheme: Option<String>,
    /// How fields changed on both sides are resolved: connection-wide, per
    /// object, per field (the most specific wins; `{}` = `manual`
    /// everywhere: conflicts are parked for a person).
    #[serde(default)]
    pub conflicts: ConnectionPolicies,
    /// Creation time.
    pub created_at: String,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        ConnectionView {
            id: c.id.to_string(),
            tenant: c.tenant.to_string(),
            provider: c.provider.clone(),
            status: c.status.as_str().into(),
            base_url: c.base_url.clone(),
            settings: c.settings.clone(),
            webhook_scheme: c.webhook.as_ref().map(|w| w.scheme.clone()),
            conflicts: c.conflicts.clone(),
            created_at: time(c.created_at),
        }
    }
}

/// A page of connections.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionPage {
    /// The connections, by id.
    pub connections: Vec<ConnectionView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The API's run status for an internal one: a run ends `succeeded` or
/// `failed`; one checkpointed for later (`parked`) is still `running`, one
/// whose worker stopped (`interrupted`) ended `failed`.
pub fn public_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running | RunStatus::Parked => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed | RunStatus::Interrupted => "failed",
    }
}

/// The internal statuses behind a public one (`None` for an unknown name).
pub fn internal_statuses(public: &str) -> Option<Vec<RunStatus>> {
    match public {
        "running" => Some(vec![RunStatus::Running, RunStatus::Parked]),
        "succeeded" => Some(vec![RunStatus::Succeeded]),
        "failed" => Some(vec![RunStatus::Failed, RunStatus::Interrupted]),
        _ => None,
    }
}

/// The object of a task id `<connection>:<object>:<direction>` (connection
/// ids may hold `:` themselves, so the connection is stripped as a prefix).
pub fn task_object(task: &str, connection: &str) -> String {
    let rest = task
        .strip_prefix(connection)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(task);
    rest.rsplit_once(':')
        .map_or(rest, |(object, _)| object)
        .to_owned()
}

/// One run of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// Run id.
    pub id: String,
    /// Its task.
    pub task_id: String,
    /// Its connection.
    pub connection_id: String,
    /// The object synced.
    pub object: String,
    /// `running`, then `succeeded` or `failed`.
    pub status: String,
    /// The engine's own state name (`running`, `parked`, `succeeded`, `failed`, `interrupted`).
    pub state: String,
    /// Start.
    pub started_at: String,
    /// End, once finished.
    pub finished_at: Option<String>,
    /// What it did.
    pub counts: RunCounts,
    /// Why it failed or parked.
    pub error: Option<String>,
}

impl From<&SyncRun> for RunView {
    fn from(r: &SyncRun) -> Self {
        RunView {
            id: r.id.to_string(),
            task_id: r.task.to_string(),
            connection_id: r.connection.to_string(),
            object: task_object(r.task.as_str(), r.connection.as_str()),
            status: public_status(r.status).into(),
            state: r.status.as_str().into(),
            started_at: time(r.started_at),
            finished_at: r.finished_at.map(time),
            counts: r.counts,
            error: r.error.clone(),
        }
    }
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// Newest first.
    pub runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The last run of a task, in short.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastResult {
    /// Run id.
    pub run_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// End, once finished.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A sync task: one object of a connection in one direction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// The object.
    pub object: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The connector's resume point (`null` = from the start).
    pub cursor: Option<String>,
    /// When it is next due.
    pub next_run_at: String,
    /// When its last run finished.
    pub last_run_at: Option<String>,
    /// Scheduling class of the next run.
    pub priority: String,
    /// Whether a run holds its lease now.
    pub leased: bool,
    /// Flagged by the watchdog: no run within twice its interval.
    pub stalled: bool,
    /// Seconds between scheduled runs.
    pub interval_secs: u32,
    /// Its latest run.
    pub last_result: Option<LastResult>,
}

impl TaskView {
    /// The view of `t` with its latest run.
    pub fn new(t: &SyncTask, now: Timestamp, last: Option<&SyncRun>) -> Self {
        TaskView {
            id: t.id.to_string(),
            object: t.object.to_string(),
            direction: t.direction.as_str().into(),
            cursor: t.cursor.clone(),
            next_run_at: time(t.next_run_at),
            last_run_at: t.last_run_at.map(time),
            priority: t.priority.as_str().into(),
            leased: t.lease.as_ref().is_some_and(|l| l.until > now),
            stalled: t.stalled,
            interval_secs: t.interval_secs,
            last_result: last.map(|r| LastResult {
                run_id: r.id.to_string(),
                status: public_status(r.status).into(),
                finished_at: r.finished_at.map(time),
                error: r.error.clone(),
            }),
        }
    }
}

/// A page of tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    /// By id.
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A record's feed metadata (`_meta`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordMeta {
    /// Its last change: `added`, `updated` or `deleted` (a tombstone).
    pub last_action: LastAction,
    /// When the store first saw it (since its last re-creation).
    pub first_seen_at: String,
    /// When our store last changed it (not the provider's time).
    pub last_modified_at: String,
    /// When it was deleted (tombstones only).
    pub deleted_at: Option<String>,
    /// The feed position just after this record: poll from it later.
    pub cursor: String,
}

/// One record of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordView {
    /// Id in the provider.
    pub id: String,
    /// Its last known fields (for a tombstone, the fields it had when deleted).
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// Feed metadata.
    #[serde(rename = "_meta")]
    pub meta: RecordMeta,
}

/// A page of the records feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordPage {
    /// In change order (ascending sequence).
    pub records: Vec<RecordView>,
    /// The last record's cursor when the page is full (read on); `null` at
    /// the end of the feed (keep the last record's `_meta.cursor` to poll).
    pub next_cursor: Option<String>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Key id (`key_…`), for revoking.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// Creation time.
    pub created_at: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            scope: k.scope.as_str().into(),
            created_at: time(k.created_at),
            revoked_at: k.revoked_at.map(time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The object is read from the task id even when the connection id holds `:`.
    #[test]
    fn object_of_a_task() {
        assert_eq!(task_object("c1:contacts:inbound", "c1"), "contacts");
        assert_eq!(task_object("t:c1:deals:outbound", "t:c1"), "deals");
    }

    /// Every internal status maps to a public one that maps back to it.
    #[test]
    fn statuses_round_trip() {
        for s in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Parked,
            RunStatus::Interrupted,
        ] {
            assert!(internal_statuses(public_status(s)).unwrap().contains(&s));
        }
        assert_eq!(internal_statuses("parked"), None);
    }
}
