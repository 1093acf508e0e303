//! `/v1/notifications`: the notification service's channels and routing
//! rules (`SYNCBRIDGE_NOTIFY_CONFIG`, the product webhook), its outbox
//! counts, a test message to one channel, and `PUT /v1/notifications/rules`.
//!
//! Channels are read-only: they live in the configuration file, which the
//! deployment owns, and a channel's URL and secret are never answered
//! (Slack and Teams URLs are bearer credentials). The rules can be edited:
//! a save is checked against the configured channels and the known kinds
//! and severities (422 naming the entry, nothing written), stored as one
//! versioned document (`Store::put_notification_rules`, compare-and-swap;
//! the version is the `ETag`, `If-Match` guards it, 412) and from then on
//! replaces the file's rules in every binary (within
//! `syncbridge_notify::STORED_RULES_REFRESH`; this process at once).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use syncbridge_core::TenantId;
use syncbridge_core::events::Severity;
use syncbridge_core::notify_rules::{DefaultRoute, NotificationRules, Rule};
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
    /// Where the rules come from: `store` (saved from the dashboard) or
    /// `file` (the configuration file's, until a save).
    pub rules_source: String,
    /// The stored rules' version (0: none saved); also the `ETag`.
    pub rules_version: u64,
    /// Every event kind a rule can name.
    pub event_kinds: Vec<String>,
    /// Outbox counts, when it could be read.
    pub outbox: Option<OutboxView>,
}

fn severity(s: syncbridge_core::events::Severity) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn rule_view(r: &Rule) -> RuleView {
    RuleView {
        tenant: r.tenant.as_ref().map(ToString::to_string),
        kinds: r.kinds.clone(),
        min_severity: severity(r.min_severity),
        channels: r.channels.clone(),
    }
}

fn default_view(d: &DefaultRoute) -> RuleView {
    RuleView {
        tenant: None,
        kinds: Vec::new(),
        min_severity: severity(d.min_severity),
        channels: d.channels.clone(),
    }
}

fn event_kinds() -> Vec<String> {
    syncbridge_notify::samples::EVENT_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect()
}

/// The rules' version as an `ETag` (`"0"`: the file's rules, none saved).
fn etag(version: u64) -> [(header::HeaderName, HeaderValue); 1] {
    let v = HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a header value");
    [(header::ETAG, v)]
}

/// The configured channels, the rules in force (stored, else the file's)
/// with their version as `ETag`, and the outbox counts.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications",
    responses((status = 200, body = NotificationsView,
            headers(("ETag" = String, description = "The rules' version; send it as If-Match when saving them"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
) -> Result<
    (
        [(header::HeaderName, HeaderValue); 1],
        Json<NotificationsView>,
    ),
    ApiError,
> {
    let stored = app.store.get_notification_rules().await?;
    let version = stored.as_ref().map_or(0, |r| r.version);
    let Some(n) = &app.notify else {
        return Ok((
            etag(version),
            Json(NotificationsView {
                configured: false,
                channels: Vec::new(),
                rules: Vec::new(),
                default_route: None,
                rules_source: "file".into(),
                rules_version: version,
                event_kinds: event_kinds(),
                outbox: None,
            }),
        ));
    };
    let cfg = n.config();
    let outbox = n.stats().await.ok().map(|s| OutboxView {
        pending: s.pending,
        delivered: s.delivered,
        dead: s.dead,
    });
    let (rules, default, source) = match &stored {
        Some(r) => (&r.rules, r.default.as_ref(), "store"),
        None => (&cfg.rules, cfg.default.as_ref(), "file"),
    };
    Ok((
        etag(version),
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
            rules: rules.iter().map(rule_view).collect(),
            default_route: default.map(default_view),
            rules_source: source.into(),
            rules_version: version,
            event_kinds: event_kinds(),
            outbox,
        }),
    ))
}

/// Body of `PUT /v1/notifications/rules`: the whole ordered rule set.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    /// Ordered rules; the first that matches an event decides.
    pub rules: Vec<RuleView>,
    /// Where events that no rule matches go (`null`: dropped); its
    /// `tenant` must be `null` and `kinds` empty.
    #[serde(default)]
    pub default_route: Option<RuleView>,
}

/// A rule from its view (pure); the error names the entry.
fn parse_rule(what: &str, v: &RuleView) -> Result<Rule, ApiError> {
    let bad = |m: String| ApiError::InvalidRules(format!("{what}: {m}"));
    let min_severity: Severity = serde_json::from_value(serde_json::Value::String(
        v.min_severity.clone(),
    ))
    .map_err(|_| {
        bad(format!(
            "unknown min_severity {:?}; use info, warning or critical",
            v.min_severity
        ))
    })?;
    let tenant = v
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| bad(format!("tenant: {e}")))?;
    Ok(Rule {
        tenant,
        kinds: v.kinds.clone(),
        min_severity,
        channels: v.channels.clone(),
    })
}

/// The rule set a body asks for (pure), before the channel and kind checks.
pub fn parse_rules(b: &RulesBody) -> Result<(Vec<Rule>, Option<DefaultRoute>), ApiError> {
    let rules = b
        .rules
        .iter()
        .enumerate()
        .map(|(i, v)| parse_rule(&format!("rule {}", i + 1), v))
        .collect::<Result<Vec<_>, _>>()?;
    let default = match &b.default_route {
        None => None,
        Some(v) if v.tenant.is_some() || !v.kinds.is_empty() => {
            return Err(ApiError::InvalidRules(
                "the default route takes every event: no tenant, no kinds".into(),
            ));
        }
        Some(v) => {
            let r = parse_rule("the default route", v)?;
            Some(DefaultRoute {
                min_severity: r.min_severity,
                channels: r.channels,
            })
        }
    };
    Ok((rules, default))
}

/// Replaces the notification rules with the body's ordered list (the
/// channels stay the configuration file's). Every channel must be
/// configured and every kind and severity known, else 422 naming the
/// entry, and nothing is written. With `If-Match` (the `ETag` of a `GET`),
/// only while the rules are at that version, else 412. The saved rules
/// replace the file's in every binary within 10 s.
#[utoipa::path(put, path = "/v1/notifications/rules", tag = "notifications",
    request_body = RulesBody,
    params(("If-Match" = Option<String>, Header, description = "Only this version (the ETag of a GET), else 412; `*` any")),
    responses((status = 200, body = NotificationsView,
            headers(("ETag" = String, description = "The saved rules' version"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn put_rules(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RulesBody>, JsonRejection>,
) -> Result<
    (
        [(header::HeaderName, HeaderValue); 1],
        Json<NotificationsView>,
    ),
    ApiError,
> {
    let want = crate::connections::if_match(&headers)?;
    let Json(b) = body?;
    let (rules, default) = parse_rules(&b)?;
    let empty = syncbridge_notify::NotifyConfig::default();
    let cfg = app.notify.as_ref().map_or(&empty, |n| n.config());
    cfg.validate_rules(&rules, default.as_ref())
        .map_err(|e| ApiError::InvalidRules(e.to_string()))?;
    let current = app
        .store
        .get_notification_rules()
        .await?
        .map_or(0, |r| r.version);
    if let Some(tags) = &want
        && !tags.iter().any(|t| *t == current.to_string())
    {
        return Err(ApiError::PreconditionFailed(format!(
            "the notification rules are at version \"{current}\", not the one If-Match names; read them again"
        )));
    }
    let next = NotificationRules {
        version: current + 1,
        rules,
        default,
        updated_at: app.clock.now(),
    };
    if !app.store.put_notification_rules(&next).await? {
        return Err(ApiError::PreconditionFailed(
            "the notification rules changed while this request ran; read them again".into(),
        ));
    }
    if let Some(n) = &app.notify {
        n.forget_stored_rules().await;
    }
    tracing::info!(
        version = next.version,
        rules = next.rules.len(),
        "notification rules saved over the api"
    );
    get(State(app)).await
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
