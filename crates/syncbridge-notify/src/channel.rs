//! Sending one rendered notification to one channel and classifying the answer.

use std::time::Duration;

use syncbridge_core::SecretString;
use syncbridge_signatures::{WebhookSecret, sign_standard_webhooks};

use crate::config::{ChannelConfig, ChannelKind};
use crate::error::NotifyError;
use crate::render::{Notification, render};

/// Longest part of an answer's body kept for errors and logs.
const SNIPPET_CHARS: usize = 300;
/// Most bytes of an answer's body read at all.
const BODY_READ_MAX: usize = 8 * 1024;

/// The result of one attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// 2xx (and, for Teams, not the legacy connector's 200-with-error).
    Delivered {
        /// HTTP status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
    /// Anything else.
    Failed {
        /// Whether a later attempt may succeed.
        retryable: bool,
        /// The channel's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
        /// What happened (safe to print).
        error: NotifyError,
    },
}

/// The HTTP client every channel uses: bounded timeout, no redirects (a
/// redirected POST would lose or change its body and signature).
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("syncbridge-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends `n` to `channel`. `now_unix` is the signed `webhook-timestamp`.
pub(crate) async fn send(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    n: &Notification,
    now_unix: i64,
) -> Attempt {
    post(
        client,
        channel.kind,
        &channel.url,
        channel.secret.as_ref(),
        n,
        now_unix,
    )
    .await
}

pub(crate) async fn post(
    client: &reqwest::Client,
    kind: ChannelKind,
    url: &SecretString,
    secret: Option<&WebhookSecret>,
    n: &Notification,
    now_unix: i64,
) -> Attempt {
    let body = match serde_json::to_vec(&render(kind, n)) {
        Ok(b) => b,
        Err(e) => {
            return Attempt::Failed {
                retryable: false,
                retry_after: None,
                error: NotifyError::Config(format!("cannot serialize the message: {e}")),
            };
        }
    };
    let mut req = client
        .post(url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if kind.signed() {
        let Some(secret) = secret else {
            return Attempt::Failed {
                retryable: false,
                retry_after: None,
                error: NotifyError::Config(
                    "a webhook channel needs a Standard Webhooks secret".into(),
                ),
            };
        };
        let signature = sign_standard_webhooks(secret, &n.id, now_unix, &body);
        req = req
            .header("webhook-id", &n.id)
            .header("webhook-timestamp", now_unix.to_string())
            .header("webhook-signature", signature);
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Failed {
                retryable: true,
                retry_after: None,
                error: NotifyError::Unreachable {
                    channel: kind,
                    message: describe(e, url),
                },
            };
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_snippet(resp, url).await;
    classify(kind, status, body, retry_after)
}

/// Decides what an answer means.
pub(crate) fn classify(
    kind: ChannelKind,
    status: u16,
    body: String,
    retry_after: Option<Duration>,
) -> Attempt {
    let success = (200..300).contains(&status);
    // The legacy Office 365 connector answers 200 with an error text when
    // Teams throttled or refused the message.
    let teams_legacy_failure =
        kind == ChannelKind::Teams && success && body.contains("Webhook message delivery failed");
    if success && !teams_legacy_failure {
        return Attempt::Delivered { status, body };
    }
    let retryable = teams_legacy_failure || matches!(status, 408 | 425 | 429 | 500..=599);
    Attempt::Failed {
        retryable,
        retry_after,
        error: NotifyError::Rejected {
            channel: kind,
            status,
            body,
        },
    }
}

async fn read_snippet(mut resp: reqwest::Response, url: &SecretString) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_READ_MAX {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(BODY_READ_MAX);
    let text = String::from_utf8_lossy(&bytes);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::render::truncate(&redact(&collapsed, url), SNIPPET_CHARS)
}

/// A transport error's description, without the URL.
fn describe(e: reqwest::Error, url: &SecretString) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut parts: Vec<String> = vec![kind.to_owned()];
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    redact(&parts.join(": "), url)
}

/// Removes the URL and its secret-bearing parts from `text`: the whole URL,
/// its path and query, each query value of 8+ characters (Workflows URLs
/// carry `sig=`), and each path segment of 16+ characters (Slack's token).
pub(crate) fn redact(text: &str, url: &SecretString) -> String {
    let mut out = text.to_owned();
    let full = url.expose();
    if !full.is_empty() {
        out = out.replace(full, "***");
    }
    if let Ok(u) = url::Url::parse(full) {
        if u.path().len() > 1 {
            out = out.replace(u.path(), "/***");
        }
        if let Some(q) = u.query().filter(|q| !q.is_empty()) {
            out = out.replace(q, "***");
            for part in q.split('&') {
                let value = part.split_once('=').map_or(part, |(_, v)| v);
                if value.len() >= 8 {
                    out = out.replace(value, "***");
                }
            }
        }
        for segment in u.path().split('/').filter(|s| s.len() >= 16) {
            out = out.replace(segment, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2xx delivers; 408/425/429/5xx retry; other 4xx and redirects are permanent; Teams' 200-with-error retries.
    #[test]
    fn answers_are_classified() {
        let is = |kind, status, body: &str| match classify(kind, status, body.into(), None) {
            Attempt::Delivered { .. } => "ok",
            Attempt::Failed {
                retryable: true, ..
            } => "retry",
            Attempt::Failed { .. } => "dead",
        };
        assert_eq!(is(ChannelKind::Slack, 200, "ok"), "ok");
        assert_eq!(is(ChannelKind::Teams, 202, ""), "ok");
        assert_eq!(is(ChannelKind::Webhook, 204, ""), "ok");
        for s in [408, 425, 429, 500, 502, 503] {
            assert_eq!(is(ChannelKind::Slack, s, ""), "retry", "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410] {
            assert_eq!(is(ChannelKind::Slack, s, "invalid_payload"), "dead", "{s}");
        }
        let legacy = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429";
        assert_eq!(is(ChannelKind::Teams, 200, legacy), "retry");
        assert_eq!(is(ChannelKind::Slack, 200, legacy), "ok");
    }

    /// The URL, its path and its query never survive redaction.
    #[test]
    fn redaction_removes_url_parts() {
        let url =
            SecretString::new("https://example.com/workflows/abc/invoke?sp=x&sig=TOPSECRET&sv=1.0");
        let text = "failed https://example.com/workflows/abc/invoke?sp=x&sig=TOPSECRET&sv=1.0 \
                    and sp=x&sig=TOPSECRET&sv=1.0 in /workflows/abc/invoke, sig TOPSECRET";
        let out = redact(text, &url);
        assert!(!out.contains("TOPSECRET"), "{out}");
        assert!(!out.contains("/workflows/abc"), "{out}");
        let slack = SecretString::new(
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
        );
        let out = redact("token XXXXXXXXXXXXXXXXXXXXXXXX is invalid", &slack);
        assert_eq!(out, "token *** is invalid");
    }
}
