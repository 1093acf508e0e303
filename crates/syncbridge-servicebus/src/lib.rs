//! [`ServiceBusSender`]: the core [`QueueSender`] over Azure Service Bus's REST
//! send API (`docs/functions-host.md` §7), authenticated with a Microsoft Entra token
//! from the app's managed identity (role *Azure Service Bus Data Sender*).
//!
//! Why REST and not an output binding: custom handlers cannot set `MessageId`,
//! `ScheduledEnqueueTimeUtc` or `SessionId` through bindings, and the webhook
//! receiver (an HTTP-only proxied function) has no output bindings at all.
//!
//! [`entra`] gets the Microsoft Entra tokens (managed identity, or the
//! operator's `az login`), shared with Key Vault.
//!
//! # Wire format
//!
//! - One message whose application properties can travel as HTTP headers →
//!   `POST {endpoint}/{queue}/messages`, body = payload, `Content-Type` = the
//!   message's content type, `BrokerProperties` = JSON (`MessageId`,
//!   `SessionId`, `ScheduledEnqueueTimeUtc` in RFC 1123, `TimeToLive` in
//!   seconds), one header per application property (JSON-quoted value).
//! - Otherwise a batch → same URL, `Content-Type:
//!   application/vnd.microsoft.servicebus.json`, body = JSON array of
//!   `{"Body", "BrokerProperties", "UserProperties"}` (`IsBodyBase64` for
//!   non-UTF-8 payloads). Batches are split to stay under [`MAX_BATCH_BYTES`].
//! - `201 Created` = accepted. A repeated `MessageId` inside the queue's
//!   duplicate-detection window is also answered 201 and dropped by the broker,
//!   which is what makes resends idempotent.
//!
//! # Errors
//!
//! 408/429/500/502/503/504, timeouts and connection failures →
//! [`QueueError::Transient`]; 400/401/403/404/410/413 →
//! [`QueueError::Permanent`]. A 401 first drops the cached token and retries
//! once (a revoked or rotated token), and only then is permanent. A batch that
//! had to be split is not atomic across its parts; a retry of the whole
//! `send` is safe because every part carries its `MessageId`s.
//!
//! # Queue depth
//!
//! [`QueueSender::depth`] reads the queue's runtime properties from the
//! entity endpoint, `GET {endpoint}/{queue}?api-version=2021-05` (an Atom
//! entry whose `QueueDescription` holds `CountDetails`:
//! `ActiveMessageCount`, `ScheduledMessageCount`,
//! `DeadLetterMessageCount`). That is a management read: with Microsoft
//! Entra it needs *Azure Service Bus Data Owner* (SAS: `Manage`); *Data
//! Sender* is refused (401/403). A refusal, or any other failure, is
//! reported as unknown with the reason, never as an error.
//!
//! # Settings
//!
//! [`ServiceBusSettings::from_vars`]: `ServiceBusConnection__fullyQualifiedNamespace`
//! (the same identity-based setting the Service Bus trigger uses) or
//! `SYNCBRIDGE_SERVICEBUS_ENDPOINT` (a full URL, e.g. the local host's
//! `http://127.0.0.1:7071`), optional `ServiceBusConnection__clientId` for a
//! user-assigned identity.

pub mod entra;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use serde::Serialize;
use syncbridge_core::{
    MessageCounts, OutboundMessage, QueueDepth, QueueError, QueueName, QueueSender,
};
use url::Url;

pub use entra::{TokenCache, TokenError};

/// Batch media type (exact, no charset parameter).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// Largest request this sender builds: Standard tier's 256 KB message/batch
/// limit, less room for headers.
pub const MAX_BATCH_BYTES: usize = 240 * 1024;
/// The REST setting names.
pub const SETTING_NAMESPACE: &str = "ServiceBusConnection__fullyQualifiedNamespace";
/// Full endpoint URL override (local host, tests).
pub const SETTING_ENDPOINT: &str = "SYNCBRIDGE_SERVICEBUS_ENDPOINT";
/// User-assigned identity client id (optional).
pub const SETTING_CLIENT_ID: &str = "ServiceBusConnection__clientId";

/// Where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusSettings {
    /// `https://<namespace>.servicebus.windows.net/` (or a local endpoint).
    pub endpoint: Url,
    /// Client id of a user-assigned identity; system-assigned when `None`.
    pub client_id: Option<String>,
    /// Managed identity (in Azure) or the developer's login (operator CLI).
    pub credential: entra::CredentialKind,
}

impl ServiceBusSettings {
    /// Reads [`SETTING_ENDPOINT`] or [`SETTING_NAMESPACE`] (one is required; both
    /// set is contradictory), [`SETTING_CLIENT_ID`] and
    /// [`entra::SETTING_CREDENTIAL`]. Errors name the setting.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let endpoint = match (get(SETTING_ENDPOINT), get(SETTING_NAMESPACE)) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "both {SETTING_ENDPOINT} and {SETTING_NAMESPACE} are set; set one"
                ));
            }
            (Some(url), None) => Url::parse(&url)
                .map_err(|e| format!("{SETTING_ENDPOINT} {url:?} is not a URL: {e}"))?,
            (None, Some(ns)) => {
                let ns = ns.trim().trim_end_matches('/');
                let host = ns.strip_prefix("sb://").unwrap_or(ns);
                Url::parse(&format!("https://{host}/")).map_err(|e| {
                    format!("{SETTING_NAMESPACE} {ns:?} is not a namespace host name: {e}")
                })?
            }
            (None, None) => {
                return Err(format!(
                    "{SETTING_NAMESPACE} is not set (e.g. mynamespace.servicebus.windows.net)"
                ));
            }
        };
        Ok(ServiceBusSettings {
            endpoint,
            client_id: get(SETTING_CLIENT_ID),
            credential: entra::CredentialKind::from_vars(&var)?,
        })
    }
}

/// Sender tuning.
#[derive(Debug, Clone)]
pub struct ServiceBusOptions {
    /// Per-request timeout (a timeout is transient).
    pub timeout: Duration,
    /// `TimeToLive` stamped on every message (the queue's default when `None`).
    pub time_to_live: Option<Duration>,
    /// Split batches above this many bytes (see [`MAX_BATCH_BYTES`]).
    pub max_batch_bytes: usize,
}

impl Default for ServiceBusOptions {
    fn default() -> Self {
        ServiceBusOptions {
            timeout: Duration::from_secs(30),
            time_to_live: None,
            max_batch_bytes: MAX_BATCH_BYTES,
        }
    }
}

/// Sends to Service Bus queues over REST. Cheap to clone.
#[derive(Clone)]
pub struct ServiceBusSender {
    endpoint: Url,
    http: reqwest::Client,
    token: Arc<TokenCache>,
    options: ServiceBusOptions,
}

impl std::fmt::Debug for ServiceBusSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusSender")
            .field("endpoint", &self.endpoint.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `BrokerProperties` as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BrokerProperties {
    /// Duplicate-detection key.
    pub message_id: String,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_enqueue_time_utc: Option<String>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<f64>,
    /// Payload media type (batch items; a single send uses the header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl BrokerProperties {
    /// The broker properties of `m` (`ttl` from the sender's options).
    pub fn of(m: &OutboundMessage, ttl: Option<Duration>, in_batch: bool) -> Self {
        BrokerProperties {
            message_id: m.message_id.clone(),
            session_id: m.session_id.clone(),
            scheduled_enqueue_time_utc: m.scheduled_enqueue_at.map(|t| {
                httpdate::fmt_http_date(
                    UNIX_EPOCH + Duration::from_millis(t.as_millis().max(0) as u64),
                )
            }),
            time_to_live: ttl.map(|d| d.as_secs_f64()),
            content_type: if in_batch {
                m.content_type.clone()
            } else {
                None
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchItem {
    body: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_body_base64: bool,
    broker_properties: BrokerProperties,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_properties: BTreeMap<String, String>,
}

/// A property can be a header if its name is a lowercase HTTP token (header
/// names are case-insensitive, so upper case would not survive) that is not a
/// standard header, and its value is printable ASCII.
fn header_safe(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
        })
        && !matches!(
            name,
            "authorization" | "brokerproperties" | "content-type" | "content-length" | "host"
        )
        && !name.starts_with("x-ms-")
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn transient(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

impl ServiceBusSender {
    /// A sender to `endpoint` (the namespace URL) with tokens from `credential`
    /// for [`entra::SERVICE_BUS_SCOPE`].
    pub fn new(
        endpoint: Url,
        credential: Arc<dyn TokenCredential>,
        options: ServiceBusOptions,
    ) -> Result<Self, QueueError> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| QueueError::Permanent(format!("building the HTTP client: {e}")))?;
        Ok(ServiceBusSender {
            endpoint,
            http,
            token: Arc::new(TokenCache::new(credential, entra::SERVICE_BUS_SCOPE)),
            options,
        })
    }

    /// From settings, with the credential they name (the app's managed
    /// identity unless [`entra::SETTING_CREDENTIAL`] says otherwise).
    pub fn from_settings(settings: &ServiceBusSettings) -> Result<Self, QueueError> {
        let credential = entra::credential(settings.credential, settings.client_id.clone())
            .map_err(|e| QueueError::Permanent(e.to_string()))?;
        Self::new(
            settings.endpoint.clone(),
            credential,
            ServiceBusOptions::default(),
        )
    }

    /// The namespace URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    fn url(&self, queue: &str) -> Result<Url, QueueError> {
        self.endpoint
            .join(&format!("{queue}/messages"))
            .map_err(|e| QueueError::Permanent(format!("queue name {queue:?}: {e}")))
    }

    /// One HTTP send, with a single retry after a 401 (fresh token).
    async fn post(
        &self,
        url: &Url,
        what: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(), QueueError> {
        for attempt in 0..2 {
            let token = self
                .token
                .bearer()
                .await
                .map_err(|e| QueueError::Transient(e.to_string()))?;
            let request = build(
                self.http
                    .post(url.clone())
                    .header("authorization", format!("Bearer {token}")),
            );
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(QueueError::Transient(format!(
                        "{what}: {}",
                        if e.is_timeout() {
                            "timed out".to_string()
                        } else {
                            e.without_url().to_string()
                        }
                    )));
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = response.text().await.unwrap_or_default();
            let detail: String = body.chars().take(300).collect();
            if status.as_u16() == 401 && attempt == 0 {
                tracing::warn!(%status, "Service Bus refused the token; fetching a fresh one");
                self.token.invalidate().await;
                continue;
            }
            let text = format!("{what}: {status}: {detail}");
            return Err(if transient(status) {
                QueueError::Transient(text)
            } else {
                QueueError::Permanent(text)
            });
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn send_single(&self, m: &OutboundMessage) -> Result<(), QueueError> {
        let url = self.url(m.queue.as_str())?;
        let props =
            serde_json::to_string(&BrokerProperties::of(m, self.options.time_to_live, false))
                .expect("broker properties serialize");
        let what = format!("sending {} to {}", m.message_id, m.queue);
        self.post(&url, &what, |mut r| {
            r = r
                .header("brokerproperties", props.clone())
                .header(
                    "content-type",
                    m.content_type
                        .as_deref()
                        .unwrap_or("application/octet-stream"),
                )
                .body(m.body.clone());
            for (k, v) in &m.properties {
                r = r.header(k.as_str(), serde_json::to_string(v).expect("string"));
            }
            r
        })
        .await
    }

    fn batch_item(&self, m: &OutboundMessage) -> BatchItem {
        let (body, is_body_base64) = match std::str::from_utf8(&m.body) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&m.body),
                true,
            ),
        };
        BatchItem {
            body,
            is_body_base64,
            broker_properties: BrokerProperties::of(m, self.options.time_to_live, true),
            user_properties: m.properties.clone(),
        }
    }

    async fn send_batch(&self, queue: &str, items: Vec<BatchItem>) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        // Split greedily by serialized size.
        let mut parts: Vec<Vec<serde_json::Value>> = vec![Vec::new()];
        let mut size = 2;
        for item in items {
            let v = serde_json::to_value(&item).expect("batch items serialize");
            let len = v.to_string().len() + 1;
            if len + 2 > self.options.max_batch_bytes {
                return Err(QueueError::Permanent(format!(
                    "message {} is {len} bytes; Service Bus accepts at most {} per request",
                    item.broker_properties.message_id, self.options.max_batch_bytes
                )));
            }
            if size + len > self.options.max_batch_bytes {
                parts.push(Vec::new());
                size = 2;
            }
            size += len;
            parts.last_mut().expect("non-empty").push(v);
        }
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let body = serde_json::to_vec(&part).expect("JSON array");
            let what = format!("sending a batch of {} to {queue}", part.len());
            self.post(&url, &what, |r| {
                r.header("content-type", BATCH_CONTENT_TYPE)
                    .body(body.clone())
            })
            .await?;
        }
        Ok(())
    }
}

/// The runtime counts in a queue's Atom entry (`CountDetails`), whatever
/// namespace prefix the service gives their elements. Pure.
pub fn parse_count_details(xml: &str) -> Option<MessageCounts> {
    let count = |name: &str| -> Option<u64> {
        let details = &xml[xml.find("CountDetails")?..];
        let at = details
            .match_indices(name)
            .map(|(i, _)| i + name.len())
            .find(|&end| details[end..].starts_with('>'))?;
        let rest = &details[at + 1..];
        rest[..rest.find('<')?].trim().parse().ok()
    };
    Some(MessageCounts {
        active: count("ActiveMessageCount")?,
        scheduled: count("ScheduledMessageCount").unwrap_or(0),
        locked: None,
        dead_lettered: count("DeadLetterMessageCount")?,
    })
}

impl ServiceBusSender {
    /// `GET {endpoint}/{queue}?api-version=2021-05`: the queue's counts.
    async fn runtime_counts(&self, queue: &str) -> Result<MessageCounts, String> {
        let mut url = self
            .endpoint
            .join(queue)
            .map_err(|e| format!("queue name {queue:?}: {e}"))?;
        url.set_query(Some("api-version=2021-05"));
        let token = self.token.bearer().await.map_err(|e| e.to_string())?;
        let response = self
            .http
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .map_err(|e| format!("reading {queue}'s runtime properties: {}", e.without_url()))?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Err(format!(
                "this app's identity may not read {queue}'s runtime properties ({status}): \
                 that needs Azure Service Bus Data Owner (Manage), which the API app is not \
                 given (docs/azure.md)"
            ));
        }
        if !status.is_success() {
            return Err(format!("reading {queue}'s runtime properties: {status}"));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        parse_count_details(&text)
            .ok_or_else(|| format!("{queue}'s runtime properties carry no CountDetails"))
    }
}

#[async_trait]
impl QueueSender for ServiceBusSender {
    async fn depth(&self, queue: &QueueName) -> QueueDepth {
        match self.runtime_counts(queue.as_str()).await {
            Ok(c) => QueueDepth::Counted(c),
            Err(why) => QueueDepth::Unknown(why),
        }
    }

    async fn send(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        // Group by queue, keeping order within each queue.
        let mut by_queue: Vec<(String, Vec<OutboundMessage>)> = Vec::new();
        for m in messages {
            match by_queue.iter_mut().find(|(q, _)| q == m.queue.as_str()) {
                Some((_, v)) => v.push(m),
                None => by_queue.push((m.queue.as_str().to_owned(), vec![m])),
            }
        }
        for (queue, msgs) in by_queue {
            let single = msgs.len() == 1
                && msgs[0].properties.iter().all(|(k, v)| header_safe(k, v))
                && msgs[0].body.len() <= self.options.max_batch_bytes;
            if single {
                self.send_single(&msgs[0]).await?;
            } else {
                let items = msgs.iter().map(|m| self.batch_item(m)).collect();
                self.send_batch(&queue, items).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_core::{QueueName, Timestamp};

    /// Broker properties: RFC 1123 schedule, TTL in seconds, content type only in batches.
    #[test]
    fn broker_properties_format() {
        let m = OutboundMessage {
            session_id: Some("s1".into()),
            ..OutboundMessage::json(QueueName::inbound(), "id-1", &serde_json::json!({}))
        }
        .at(Timestamp::from_millis(784_111_777_000));
        let p = BrokerProperties::of(&m, Some(Duration::from_secs(90)), false);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "MessageId": "id-1",
                "SessionId": "s1",
                "ScheduledEnqueueTimeUtc": "Sun, 06 Nov 1994 08:49:37 GMT",
                "TimeToLive": 90.0
            })
        );
        assert_eq!(
            BrokerProperties::of(&m, None, true).content_type.as_deref(),
            Some("application/json")
        );
    }

    /// Settings: namespace or endpoint, not both, and the error names the setting.
    #[test]
    fn settings_from_vars() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = ServiceBusSettings::from_vars(vars(&[(
            SETTING_NAMESPACE,
            "ns1.servicebus.windows.net",
        )]))
        .unwrap();
        assert_eq!(s.endpoint.as_str(), "https://ns1.servicebus.windows.net/");
        let s = ServiceBusSettings::from_vars(vars(&[(SETTING_ENDPOINT, "http://127.0.0.1:7071")]))
            .unwrap();
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:7071/");
        let e = ServiceBusSettings::from_vars(vars(&[])).unwrap_err();
        assert!(e.contains(SETTING_NAMESPACE), "{e}");
        let e = ServiceBusSettings::from_vars(vars(&[
            (SETTING_NAMESPACE, "a"),
            (SETTING_ENDPOINT, "http://b"),
        ]))
        .unwrap_err();
        assert!(e.contains("both"), "{e}");
    }

    /// The Atom entry of a queue, as the entity endpoint answers it.
    #[test]
    fn count_details_from_the_atom_entry() {
        let xml = r#"<entry xmlns="http://www.w3.org/2005/Atom"><title type="text">sync-inbound</title><content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><MessageCount>12</MessageCount><CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus"><d2p1:ActiveMessageCount>7</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>3</d2p1:DeadLetterMessageCount><d2p1:ScheduledMessageCount>2</d2p1:ScheduledMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount><d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount></CountDetails></QueueDescription></content></entry>"#;
        assert_eq!(
            parse_count_details(xml),
            Some(MessageCounts {
                active: 7,
                scheduled: 2,
                locked: None,
                dead_lettered: 3,
            })
        );
        assert_eq!(parse_count_details("<entry><title>x</title></entry>"), None);
        assert_eq!(
            parse_count_details("<CountDetails><ActiveMessageCount>x</ActiveMessageCount>"),
            None,
            "not a number"
        );
    }

    /// Only lowercase token names with printable values travel as headers.
    #[test]
    fn header_safety() {
        assert!(header_safe("tenant", "acme"));
        assert!(!header_safe("Tenant", "acme"));
        assert!(!header_safe("x-ms-foo", "1"));
        assert!(!header_safe("note", "line\nbreak"));
        assert!(!header_safe("content-type", "x"));
    }
}
