//! Rendering a [`Notification`] for each channel: Slack Block Kit, a Teams
//! Adaptive Card in the message envelope, and the generic webhook's JSON.
//!
//! Rendering is pure and deterministic (no clock): a retried message has the
//! same body as its first attempt.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use syncbridge_core::Timestamp;
use syncbridge_core::events::{Event, ProductEvent, Severity};

use crate::config::ChannelKind;

/// Whether a message announces a group or summarizes its repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Occurrence {
    /// The group's first message; `count` occurrences were collected while it was held.
    First,
    /// A follow-up: `count` more occurrences inside the window.
    Repeated,
}

impl Occurrence {
    /// The stored / JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Occurrence::First => "first",
            Occurrence::Repeated => "repeated",
        }
    }
}

/// One message to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Stable message id: the same on every retry (`webhook-id` on the generic webhook).
    pub id: String,
    /// The event (the latest occurrence for a follow-up).
    pub event: Event,
    /// First message or follow-up.
    pub occurrence: Occurrence,
    /// Occurrences this message reports (at least 1).
    pub count: u64,
    /// The first occurrence it reports.
    pub first_at: Timestamp,
    /// The last occurrence it reports.
    pub last_at: Timestamp,
    /// A sample sent by `syncbridge notify test`.
    pub test: bool,
}

/// The channel-specific JSON body.
pub fn render(kind: ChannelKind, n: &Notification) -> Value {
    match kind {
        ChannelKind::Slack => slack(n),
        ChannelKind::Teams => teams(n),
        ChannelKind::Webhook => webhook(n),
        ChannelKind::Product => product(n),
    }
}

/// `Critical`, `Warning`, `Info`.
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn times(n: u64) -> &'static str {
    if n == 1 { "time" } else { "times" }
}

/// The one-line headline: the event's title, with the count or "Still happening".
pub fn headline(n: &Notification) -> String {
    let title = n.event.title();
    let text = match (n.occurrence, n.count) {
        (Occurrence::First, 0 | 1) => title,
        (Occurrence::First, c) => format!("{title} (×{c})"),
        (Occurrence::Repeated, _) => format!("Still happening: {title}"),
    };
    if n.test {
        format!("Test: {text}")
    } else {
        text
    }
}

/// Severity, kind and when / how often, in plain text.
pub fn summary(n: &Notification) -> String {
    let sev = severity_label(n.event.severity());
    let kind = n.event.kind();
    match (n.occurrence, n.count) {
        (Occurrence::First, 0 | 1) => format!("{sev} · {kind} · at {}", n.first_at),
        (Occurrence::First, c) => format!(
            "{sev} · {kind} · {c} occurrences from {} to {}",
            n.first_at, n.last_at
        ),
        (Occurrence::Repeated, c) => format!(
            "{sev} · {kind} · repeated {c} more {} from {} to {}",
            times(c),
            n.first_at,
            n.last_at
        ),
    }
}

/// Plain-text fallback (Slack `text`, Adaptive Card `fallbackText`).
pub fn fallback_text(n: &Notification) -> String {
    truncate(&format!("{} — {}", headline(n), summary(n)), 3000)
}

fn footer(n: &Notification) -> String {
    let mut s = format!("syncbridge · notification {}", n.id);
    if n.test {
        s.push_str(" · test message sent by `syncbridge notify test`");
    }
    s
}

/// What a person should do about it.
pub fn advice(event: &Event) -> &'static str {
    match event {
        Event::SyncRunFailed { .. } => {
            "The task runs again on its schedule. Check the error and the provider's status."
        }
        Event::SyncRunRecovered { .. } => "No action needed: the task is syncing again.",
        Event::TaskStalled { .. } => {
            "Check that the scheduler and the sync workers are running and not failing."
        }
        Event::ConnectionNeedsReauth { .. } => {
            "Ask the tenant to re-authorize the connection; syncing is paused until then."
        }
        Event::ProviderCredentialsRejected { .. } => {
            "Check the OAuth client id and secret of this provider app; every connection using it is affected."
        }
        Event::MassDeleteBreakerTripped { .. } => {
            "Nothing was deleted. Confirm the deletions are intended (raise the object's max_delete_share) or fix the source."
        }
        Event::ConflictParked { .. } => {
            "Choose which side wins for the listed fields; the record is not synced until then."
        }
        Event::MessageQuarantined { .. } => {
            "The message will not be retried. Inspect it to find the producer's bug."
        }
        Event::MessageDeadLettered { .. } => {
            "Inspect the dead-letter queue and resubmit the message once the cause is fixed."
        }
        Event::RateLimitFallbackEngaged { .. } => {
            "Check the shared rate-limit store (Redis); instances are limiting locally meanwhile."
        }
        Event::SyncCompleted { .. }
        | Event::ConnectionCreated { .. }
        | Event::ConnectionReauthorized { .. } => "No action needed: this is news for the product.",
    }
}

fn duration_text(secs: u32) -> String {
    if secs != 0 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// The event's fields as (label, value) pairs, in display order.
pub fn facts(event: &Event) -> Vec<(&'static str, String)> {
    match event {
        Event::SyncRunFailed {
            tenant,
            connection,
            task,
            error,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Task", task.to_string()),
            ("Error", error.clone()),
        ],
        Event::SyncRunRecovered {
            tenant,
            connection,
            task,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Task", task.to_string()),
        ],
        Event::TaskStalled {
            tenant,
            connection,
            task,
            last_run_at,
            interval_secs,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Task", task.to_string()),
            (
                "Last run",
                last_run_at.map_or_else(|| "never".to_owned(), |t| t.to_string()),
            ),
            ("Interval", duration_text(*interval_secs)),
        ],
        Event::ConnectionNeedsReauth {
            tenant,
            connection,
            provider,
            reason,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Provider", provider.clone()),
            ("Reason", reason.clone()),
        ],
        Event::ProviderCredentialsRejected { provider, reason } => {
            vec![("Provider", provider.clone()), ("Reason", reason.clone())]
        }
        Event::MassDeleteBreakerTripped {
            tenant,
            connection,
            task,
            deletes,
            total,
            max_share,
        } => {
            let share = if *total == 0 {
                String::new()
            } else {
                format!(" ({})", percent(*deletes as f64 / *total as f64))
            };
            vec![
                ("Tenant", tenant.to_string()),
                ("Connection", connection.to_string()),
                ("Task", task.to_string()),
                ("Deletions", format!("{deletes} of {total} records{share}")),
                ("Limit", format!("{} of records", percent(*max_share))),
            ]
        }
        Event::ConflictParked {
            tenant,
            connection,
            object,
            record,
            fields,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Object", object.clone()),
            ("Record", record.clone()),
            ("Fields", fields.join(", ")),
        ],
        Event::MessageQuarantined {
            source,
            message_id,
            reason,
        } => vec![
            ("Source", source.clone()),
            (
                "Message id",
                message_id.clone().unwrap_or_else(|| "unknown".into()),
            ),
            ("Reason", reason.clone()),
        ],
        Event::MessageDeadLettered {
            queue,
            message_id,
            reason,
        } => vec![
            ("Queue", queue.clone()),
            ("Message id", message_id.clone()),
            ("Reason", reason.clone()),
        ],
        Event::RateLimitFallbackEngaged { provider, reason } => {
            vec![("Provider", provider.clone()), ("Reason", reason.clone())]
        }
        Event::SyncCompleted { .. }
        | Event::ConnectionCreated { .. }
        | Event::ConnectionReauthorized { .. } => product_facts(event),
    }
}

/// [`facts`] of the product events.
fn product_facts(event: &Event) -> Vec<(&'static str, String)> {
    match event {
        Event::SyncCompleted {
            tenant,
            connection,
            object,
            run,
            status,
            added,
            updated,
            deleted,
            ..
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Object", object.clone()),
            ("Run", format!("{run} ({status})")),
            (
                "Changes",
                format!("{added} added, {updated} updated, {deleted} deleted"),
            ),
        ],
        Event::ConnectionCreated {
            tenant,
            connection,
            provider,
        }
        | Event::ConnectionReauthorized {
            tenant,
            connection,
            provider,
        } => vec![
            ("Tenant", tenant.to_string()),
            ("Connection", connection.to_string()),
            ("Provider", provider.clone()),
        ],
        _ => Vec::new(),
    }
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes the three characters Slack's mrkdwn treats as control sequences.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack limits (Block Kit reference): header text 150 characters, section
/// text 3000, at most 10 fields of 2000 each.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_FIELDS_MAX: usize = 10;

/// Slack incoming-webhook body: `text` (notification fallback) and blocks
/// header, section (summary + fields), context (advice and message id).
pub fn slack(n: &Notification) -> Value {
    let emoji = match n.event.severity() {
        Severity::Critical => ":red_circle:",
        Severity::Warning => ":warning:",
        Severity::Info => ":white_check_mark:",
    };
    let header = truncate(&format!("{emoji} {}", headline(n)), SLACK_HEADER_MAX);
    let fields: Vec<Value> = facts(&n.event)
        .into_iter()
        .take(SLACK_FIELDS_MAX)
        .map(|(label, value)| {
            let text = format!("*{label}*\n{}", slack_escape(&value));
            json!({"type": "mrkdwn", "text": truncate(&text, SLACK_FIELD_MAX)})
        })
        .collect();
    let section_text = truncate(&slack_escape(&summary(n)), 3000);
    json!({
        "text": fallback_text(n),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section_text}, "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": slack_escape(advice(&n.event))},
                {"type": "mrkdwn", "text": slack_escape(&footer(n))}
            ]}
        ]
    })
}

/// The Adaptive Card alone (version 1.4).
pub fn adaptive_card(n: &Notification) -> Value {
    let color = match n.event.severity() {
        Severity::Critical => "Attention",
        Severity::Warning => "Warning",
        Severity::Info => "Good",
    };
    let facts: Vec<Value> = facts(&n.event)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": truncate(&value, 2000)}))
        .collect();
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": fallback_text(n),
        "body": [
            {"type": "TextBlock", "text": headline(n), "size": "Large", "weight": "Bolder",
             "color": color, "wrap": true},
            {"type": "TextBlock", "text": summary(n), "isSubtle": true, "spacing": "None", "wrap": true},
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "text": advice(&n.event), "wrap": true},
            {"type": "TextBlock", "text": footer(n), "size": "Small", "isSubtle": true, "wrap": true}
        ]
    })
}

/// Teams incoming-webhook / Workflows body: the documented message envelope
/// with one Adaptive Card attachment.
pub fn teams(n: &Notification) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": adaptive_card(n)
        }]
    })
}

/// The generic webhook's JSON, in the Standard Webhooks payload shape
/// (`type`, `timestamp`, `data`). `data.id` equals the `webhook-id` header;
/// `data.event` is the core [`Event`] as serialized by the core (tagged by `kind`).
pub fn webhook(n: &Notification) -> Value {
    json!({
        "type": format!("syncbridge.{}", n.event.kind()),
        "timestamp": n.last_at.to_rfc3339(),
        "data": {
            "id": n.id,
            "kind": n.event.kind(),
            "severity": severity_name(n.event.severity()),
            "tenant": n.event.tenant().map(|t| t.as_str()),
            "title": n.event.title(),
            "group_key": n.event.group_key(),
            "occurrence": n.occurrence.name(),
            "count": n.count,
            "first_at": n.first_at.to_rfc3339(),
            "last_at": n.last_at.to_rfc3339(),
            "test": n.test,
            "event": n.event,
        }
    })
}

/// The product webhook's JSON, in the Standard Webhooks payload shape:
/// `type` is the product event type (`sync.completed`, …), `timestamp` the
/// occurrence, `data` the event's public fields ([`product_data`]) plus
/// `id`, equal to the `webhook-id` header (stable across retries).
pub fn product(n: &Notification) -> Value {
    let ProductEvent::Yes(kind) = n.event.product() else {
        // Routing sends only product events to a product channel; a stored
        // row from an older configuration still renders as the generic form.
        return webhook(n);
    };
    let mut data = product_data(&n.event);
    if let Value::Object(m) = &mut data {
        m.insert("id".into(), Value::String(n.id.clone()));
    }
    json!({
        "type": kind,
        "timestamp": n.last_at.to_rfc3339(),
        "data": data,
    })
}

/// The fields the product sees for an event (its documented contract,
/// independent of the core's serialization). Pure.
pub fn product_data(event: &Event) -> Value {
    match event {
        Event::SyncCompleted {
            tenant,
            connection,
            object,
            run,
            status,
            added,
            updated,
            deleted,
            records_cursor,
        } => json!({
            "tenant": tenant,
            "connection_id": connection,
            "object": object,
            "run_id": run,
            "status": status,
            "counts": {"added": added, "updated": updated, "deleted": deleted},
            "records_cursor": records_cursor,
        }),
        Event::ConnectionCreated {
            tenant,
            connection,
            provider,
        }
        | Event::ConnectionReauthorized {
            tenant,
            connection,
            provider,
        } => json!({"tenant": tenant, "connection_id": connection, "provider": provider}),
        Event::ConnectionNeedsReauth {
            tenant,
            connection,
            provider,
            reason,
        } => json!({
            "tenant": tenant,
            "connection_id": connection,
            "provider": provider,
            "reason": reason,
        }),
        other => json!({"kind": other.kind(), "tenant": other.tenant()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truncation counts characters, not bytes, and marks the cut.
    #[test]
    fn truncate_counts_chars() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }

    /// Durations and shares print the way a person reads them.
    #[test]
    fn human_numbers() {
        assert_eq!(duration_text(300), "5 min");
        assert_eq!(duration_text(7200), "2 h");
        assert_eq!(duration_text(90), "90 s");
        assert_eq!(percent(0.2), "20%");
        assert_eq!(percent(0.125), "12.5%");
    }
}
