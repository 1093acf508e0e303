//! `GET /v1/run-stats`: runs per hour over the last hours — how many, how
//! many failed, records changed, mean duration — for the dashboard's
//! Overview charts, computed here in one call instead of the browser paging
//! through every run.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use syncbridge_core::Timestamp;
use syncbridge_core::model::{RunStatus, SyncRun};
use syncbridge_core::store::{RunKey, RunQuery};
use syncbridge_functions::AppState;
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiError, Problem};

/// Most runs read for one answer (beyond it, `truncated` is set).
pub const MAX_RUNS: usize = 500_000;
const PAGE: usize = 5_000;
const HOUR_MS: i64 = 3_600_000;

/// Parameters of `GET /v1/run-stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Hours back from now, 1 to 168 (default 24).
    #[param(minimum = 1, maximum = 168)]
    pub hours: Option<u32>,
}

/// One hour's runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct HourStats {
    /// Start of the hour (RFC 3339).
    pub start: String,
    /// Runs started in it.
    pub runs: u64,
    /// Of which failed.
    pub failed: u64,
    /// Records created, updated or deleted by them.
    pub records: u64,
    /// Mean duration of those finished, in milliseconds.
    pub mean_duration_ms: Option<u64>,
}

/// Runs per hour, oldest hour first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunStats {
    /// One entry per hour, the current (partial) hour last.
    pub hours: Vec<HourStats>,
    /// More runs than [`MAX_RUNS`] started in the period; the oldest were not counted.
    pub truncated: bool,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    runs: u64,
    failed: u64,
    records: u64,
    ms: u64,
    finished: u64,
}

fn add(acc: &mut [Acc], first_hour: i64, r: &SyncRun) {
    let i = (r.started_at.as_millis() - first_hour).div_euclid(HOUR_MS);
    let Some(a) = usize::try_from(i).ok().and_then(|i| acc.get_mut(i)) else {
        return;
    };
    a.runs += 1;
    if r.status == RunStatus::Failed {
        a.failed += 1;
    }
    a.records += r.counts.created + r.counts.updated + r.counts.deleted;
    if let Some(f) = r.finished_at {
        a.ms += f.since(r.started_at).as_millis() as u64;
        a.finished += 1;
    }
}

/// Runs per hour over the last `hours` hours.
#[utoipa::path(get, path = "/v1/run-stats", tag = "runs",
    params(StatsParams),
    responses((status = 200, body = RunStats),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn stats(
    State(app): State<AppState>,
    q: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<RunStats>, ApiError> {
    let Query(p) = q?;
    let hours = p.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::InvalidRequest(format!(
            "hours {hours}: must be 1 to 168"
        )));
    }
    let now = app.clock.now().as_millis();
    let first_hour = now.div_euclid(HOUR_MS) * HOUR_MS - i64::from(hours - 1) * HOUR_MS;
    let since = Timestamp::from_millis(first_hour);
    let mut acc = vec![Acc::default(); hours as usize];
    let mut after: Option<RunKey> = None;
    let mut read = 0usize;
    let truncated = loop {
        let page = app
            .store
            .list_runs_page(&RunQuery {
                connection: None,
                statuses: Vec::new(),
                since: Some(since),
                after: after.take(),
                limit: PAGE,
            })
            .await?;
        for r in &page {
            add(&mut acc, first_hour, r);
        }
        read += page.len();
        if page.len() < PAGE {
            break false;
        }
        if read >= MAX_RUNS {
            break true;
        }
        let last = page.last().expect("a full page");
        after = Some(RunKey {
            started_at: last.started_at,
            id: last.id.clone(),
        });
    };
    let hours = acc
        .iter()
        .enumerate()
        .map(|(i, a)| HourStats {
            start: Timestamp::from_millis(first_hour + i as i64 * HOUR_MS).to_string(),
            runs: a.runs,
            failed: a.failed,
            records: a.records,
            mean_duration_ms: (a.finished > 0).then(|| a.ms / a.finished),
        })
        .collect();
    Ok(Json(RunStats { hours, truncated }))
}
