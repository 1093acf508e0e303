//! `GET /v1/run-stats`: runs per hour over the last hours — how many, how
//! many failed, records changed, mean duration — for the dashboard's
//! Overview charts, in one call: the store sums the runs per hour
//! ([`syncbridge_core::Store::run_stats`], an aggregate over an index of run
//! starts), no run document is decoded here.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use syncbridge_core::Timestamp;
use syncbridge_core::store::RunStatsQuery;
use syncbridge_functions::AppState;
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiError, Problem};

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
    /// Always `false`: every run of the period is counted (the store
    /// aggregates). Kept so that clients written against the paging version
    /// still read the same document.
    pub truncated: bool,
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
    let q = RunStatsQuery {
        since: Timestamp::from_millis(first_hour),
        until: Timestamp::from_millis(first_hour + i64::from(hours) * HOUR_MS),
        bucket_ms: std::num::NonZeroU32::new(HOUR_MS as u32).expect("an hour is not zero"),
    };
    let mut buckets = app.store.run_stats(&q).await?.into_iter().peekable();
    let hours = (0..i64::from(hours))
        .map(|i| {
            let start = Timestamp::from_millis(first_hour + i * HOUR_MS);
            let b = buckets.next_if(|b| b.start == start);
            let (runs, failed, records, finished, ms) = b.map_or((0, 0, 0, 0, 0), |b| {
                (b.runs, b.failed, b.records, b.finished, b.duration_ms)
            });
            HourStats {
                start: start.to_string(),
                runs,
                failed,
                records,
                mean_duration_ms: (finished > 0).then(|| ms / finished),
            }
        })
        .collect();
    Ok(Json(RunStats {
        hours,
        truncated: false,
    }))
}
