//! Signed webhook emission: every applied mutation becomes a
//! [`WebhookEvent`]; a background task POSTs them in batches (a JSON array,
//! as HubSpot does) signed with the Standard Webhooks scheme
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`), via
//! `syncbridge_signatures::sign_standard_webhooks`.
//!
//! Delivery never blocks the API: handlers only push onto an unbounded
//! channel. The single worker keeps mutation order, retries 5xx / 429 /
//! connection errors with doubling backoff (same `webhook-id`, fresh
//! timestamp and signature), and gives up on other 4xx. It holds only a
//! `Weak` reference to the sandbox and ends when the sandbox is dropped.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncbridge_signatures::{Request, Scheme, WebhookSecret, sign, sign_standard_webhooks};
use tokio::sync::mpsc;

use crate::clock;
use crate::config::{ConfigError, WebhookConfig};
use crate::sandbox::Inner;
use crate::stats::bump;
use crate::store::{Change, ChangeEvent, ObjectKind};

/// Per-attempt HTTP timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One event as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Unique per sandbox process (`evt_<n>`), for receiver-side dedup.
    pub id: String,
    /// `contact.created`, `company.updated`, `deal.deleted`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The object kind (`contacts`).
    pub object: ObjectKind,
    /// The record id.
    pub object_id: String,
    /// The mutation's timestamp (equals the record's new `updatedAt`).
    pub occurred_at: String,
}

/// Checks that `secret` is a `whsec_<base64>` HMAC secret the signer can use.
///
/// # Errors
/// [`ConfigError::WebhookSecret`] otherwise.
pub fn validate_secret(secret: &str) -> Result<(), ConfigError> {
    if !secret.starts_with("whsec_") {
        return Err(ConfigError::WebhookSecret(
            "expected whsec_<base64 key>".to_owned(),
        ));
    }
    let probe = Request {
        method: "POST",
        url: "http://localhost/",
        headers: &[],
        body: b"",
    };
    sign(
        &Scheme::StandardWebhooks,
        &WebhookSecret::new(secret),
        &probe,
        0,
        "msg_probe",
    )
    .map(drop)
    .map_err(|e| ConfigError::WebhookSecret(e.to_string()))
}

/// The sending half, owned by the sandbox.
#[derive(Debug)]
pub(crate) struct Emitter {
    tx: mpsc::UnboundedSender<WebhookEvent>,
    /// Taken by the worker when it starts (on the first event).
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<WebhookEvent>>>,
    next_event: AtomicU64,
}

impl Emitter {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            next_event: AtomicU64::new(1),
        }
    }

    /// Queues `changes`; starts the worker on first use (needs a tokio runtime;
    /// without one, events wait for the next call made inside a runtime).
    pub(crate) fn emit(&self, changes: &[ChangeEvent], owner: Weak<Inner>) {
        for c in changes {
            let n = self.next_event.fetch_add(1, Ordering::Relaxed);
            let verb = match c.change {
                Change::Created => "created",
                Change::Updated => "updated",
                Change::Deleted => "deleted",
            };
            let event = WebhookEvent {
                id: format!("evt_{n}"),
                event_type: format!("{}.{verb}", c.kind.singular()),
                object: c.kind,
                object_id: c.id.to_string(),
                occurred_at: clock::iso(c.at_ms),
            };
            // The receiver lives as long as the worker, which lives as long as we do.
            let _ = self.tx.send(event);
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut slot = self.rx.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rx) = slot.take() {
                runtime.spawn(run(rx, owner));
            }
        }
    }
}

/// The delivery loop: one batch at a time, in order.
async fn run(mut rx: mpsc::UnboundedReceiver<WebhookEvent>, owner: Weak<Inner>) {
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent("syncbridge-sandbox")
        .build()
        .unwrap_or_default();
    while let Some(first) = rx.recv().await {
        let Some(inner) = owner.upgrade() else { break };
        let Some(target) = inner.config().webhook else {
            continue; // switched off since the event was queued
        };
        let mut batch = vec![first];
        while batch.len() < target.max_batch {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let delivered = deliver(&client, &target, &batch, &inner).await;
        let stats = &inner.stats;
        if delivered {
            bump(&stats.webhook_batches);
            stats
                .webhook_events
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        } else {
            bump(&stats.webhook_failures);
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    target: &WebhookConfig,
    batch: &[WebhookEvent],
    inner: &Inner,
) -> bool {
    let Ok(body) = serde_json::to_vec(batch) else {
        return false;
    };
    let msg_id = format!("msg_{}", batch[0].id.trim_start_matches("evt_"));
    let secret = WebhookSecret::new(target.secret.as_str());
    let mut backoff = Duration::from_millis(target.backoff_ms);
    for attempt in 0..=target.max_retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        let timestamp = clock::wall_ms().div_euclid(1000);
        let signature = sign_standard_webhooks(&secret, &msg_id, timestamp, &body);
        bump(&inner.stats.webhook_attempts);
        let sent = client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                tracing::debug!(status = %r.status(), attempt, "webhook delivery will be retried");
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), url = %target.url, "webhook rejected; not retried");
                return false;
            }
            Err(e) => {
                tracing::debug!(error.message = %e, attempt, "webhook delivery failed");
            }
        }
    }
    tracing::warn!(url = %target.url, events = batch.len(), "webhook batch given up after retries");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `whsec_` base64 secrets are accepted as signing secrets.
    #[test]
    fn secret_validation() {
        assert!(validate_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(validate_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(validate_secret("whsec_not base64!").is_err());
    }
}
