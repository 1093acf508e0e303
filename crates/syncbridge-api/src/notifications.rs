//! `/v1/notifications`: the notification service's channels and routing
//! rules as configured (`SYNCBRIDGE_NOTIFY_CONFIG`, the product webhook),
//! its outbox counts, and a test message to one channel.
//!
//! Read-only: the rules live in the configuration file, which the
//! deployment owns; a channel's URL and secret are never answered (Slack
//! and Teams URLs are bearer credentials).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};

/// A channel (never its URL or secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    /// The name rules use.
    pub name: String,
    /// `slack`, `teams`, `webhook` or `product`.
    pub kind: String,
}

/// A routing rule; the first that matches an event decides.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleView {
    /// Only this tenant's events (`null`: every event).
    pub tenant: Option<String>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<String>,
    /// Events below this severity are dropped (`info`, `warning`, `critical`).
    pub min_severity: String,
    /// Where matching events go.
    pub channels: Vec<String>,
}

/// The outbox's messages by state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxView {
    /// Waiting (held, due or being retried).
    pub pending: u64,
    /// Delivered (kept for the retention period).
    pub delivered: u64,
    /// Given up on.
    pub dead: u64,
}

/// The notification settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationsView {
    /// Whether a notification service is configured.
    pub configured: bool,
    /// Destinations.
    pub channels: Vec<ChannelView>,
    /// Ordered rules.
    pub rules: Vec<RuleView>,
    /// Where events that no rule matches go (`null`: dropped).
    pub default_route: Option<RuleView>,
    /// Outbox counts, when it could be read.
    pub outbox: Option<OutboxView>,
}

fn severity(s: syncbridge_core::events::Severity) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The configured channels, rules and outbox counts.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications",
    responses((status = 200, body = NotificationsView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(app): State<AppState>) -> Json<NotificationsView> {
    let Some(n) = &app.notify else {
        return Json(NotificationsView {
            configured: false,
            channels: Vec::new(),
            rules: Vec::new(),
            default_route: None,
            outbox: None,
        });
    };
    let cfg = n.config();
    let outbox = n.stats().await.ok().map(|s| OutboxView {
        pending: s.pending,
        delivered: s.delivered,
        dead: s.dead,
    });
    Json(NotificationsView {
        configured: true,
        channels: cfg
            .channels
            .iter()
            .map(|c| ChannelView {
                name: c.name.clone(),
                kind: c.kind.name().to_owned(),
            })
            .collect(),
        rules: cfg
            .rules
            .iter()
            .map(|r| RuleView {
                tenant: r.tenant.as_ref().map(ToString::to_string),
                kinds: r.kinds.clone(),
                min_severity: severity(r.min_severity),
                channels: r.channels.clone(),
            })
            .collect(),
        default_route: cfg.default.as_ref().map(|d| RuleView {
            tenant: None,
            kinds: Vec::new(),
            min_severity: severity(d.min_severity),
            channels: d.channels.clone(),
        }),
        outbox,
    })
}

/// Body of `POST /v1/notifications/test`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// The channel's name.
    pub channel: String,
}

/// What the channel answered to a test message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    /// Whether the channel accepted it (2xx).
    pub delivered: bool,
    /// The channel's answer, or why it failed (never its URL or secret).
    pub answer: String,
}

/// Sends a sample message, marked as a test, to one configured channel now
/// (not through the outbox) and answers what the channel said.
#[utoipa::path(post, path = "/v1/notifications/test", tag = "notifications",
    request_body = TestBody,
    responses((status = 200, body = TestResult),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn test(
    State(app): State<AppState>,
    body: Result<Json<TestBody>, JsonRejection>,
) -> Result<Json<TestResult>, ApiError> {
    let Json(b) = body?;
    let channel = app
        .notify
        .as_ref()
        .and_then(|n| n.config().channel(&b.channel).cloned())
        .ok_or_else(|| ApiError::NotFound(format!("no notification channel {:?}", b.channel)))?;
    let sent =
        syncbridge_notify::send_test(channel.kind, &channel.url, channel.secret.as_ref()).await;
    tracing::info!(channel = %channel.name, delivered = sent.is_ok(), "notification test over the api");
    Ok(Json(match sent {
        Ok(answer) => TestResult {
            delivered: true,
            answer,
        },
        Err(e) => TestResult {
            delivered: false,
            answer: e.to_string(),
        },
    }))
}
