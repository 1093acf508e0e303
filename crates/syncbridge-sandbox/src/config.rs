//! What a sandbox is started with, and what `POST /_sandbox/config` may change
//! while it runs.
//!
//! [`SandboxConfig`] is both: `seed` and `records_per_object` shape the data
//! (used at start and by `/_sandbox/reset`); everything else is read per
//! request, so a [`ConfigPatch`] takes effect on the next request.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::webhooks::validate_secret;

/// Largest page a client may ask for unless configured otherwise (HubSpot's list limit).
pub const DEFAULT_MAX_PAGE_SIZE: usize = 100;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A rate limit was not `N/<duration>` (e.g. `100/10s`) or was zero.
    #[error("invalid rate limit {0:?}: expected N/<duration> such as 100/10s, 5/1m or 50/500ms")]
    RateLimit(String),
    /// A probability outside `0..=1`, or exclusive fault rates adding up to more than 1.
    #[error("invalid fault rate: {0}")]
    FaultRate(String),
    /// A webhook secret that is not `whsec_<base64>`.
    #[error("invalid webhook secret: {0}")]
    WebhookSecret(String),
    /// A webhook URL that does not parse as an absolute http(s) URL.
    #[error("invalid webhook url {0:?}")]
    WebhookUrl(String),
    /// A value out of range (page size 0, negative token lifetime…).
    #[error("invalid value for {field}: {reason}")]
    Value {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Everything a sandbox needs. `Default` is the test setup: seed 42, 1000
/// records per object, auth on, no rate limit, no faults, no webhooks.
#[derive(Clone, PartialEq)]
pub struct SandboxConfig {
    /// Seed for the generated data (same seed and count ⇒ identical records).
    pub seed: u64,
    /// How many records each object (`contacts`, `companies`, `deals`) starts with.
    pub records_per_object: usize,
    /// When false, `/crm` routes accept requests without a bearer token.
    pub auth_enabled: bool,
    /// The OAuth client the token endpoint accepts.
    pub client_id: String,
    /// That client's secret (`sbx_cs_...`).
    pub client_secret: String,
    /// An authorization code the token endpoint accepts (any `sbx_code_...` is accepted too).
    pub auth_code: String,
    /// Lifetime of issued access tokens (`expires_in`, rounded up to seconds).
    pub token_ttl: Duration,
    /// Largest `limit` accepted on list endpoints (search accepts `max(this, 200)`).
    pub max_page_size: usize,
    /// App-wide fixed-window rate limit on `/crm` routes; `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Injected failures on `/crm` routes.
    pub faults: FaultConfig,
    /// Where mutation events are POSTed, signed; `None` = no webhooks.
    pub webhook: Option<WebhookConfig>,
    /// `GET /oauth/authorize` approves at once (no consent page), for headless tests.
    pub oauth_auto_approve: bool,
    /// Redirect URIs registered for the client (exact match); empty = any
    /// `http://127.0.0.1…` / `http://localhost…` URI.
    pub redirect_uris: Vec<String>,
    /// The token endpoint answers every request `500 server_error` (tests of
    /// a provider failing the code exchange).
    pub fail_token_requests: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            records_per_object: 1000,
            auth_enabled: true,
            client_id: "sbx_client_demo".to_owned(),
            client_secret: "sbx_cs_demo_secret".to_owned(),
            auth_code: "sbx_code_demo".to_owned(),
            token_ttl: Duration::from_secs(1800),
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            rate_limit: None,
            faults: FaultConfig::default(),
            webhook: None,
            oauth_auto_approve: false,
            redirect_uris: Vec::new(),
            fail_token_requests: false,
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("seed", &self.seed)
            .field("records_per_object", &self.records_per_object)
            .field("auth_enabled", &self.auth_enabled)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("max_page_size", &self.max_page_size)
            .field("rate_limit", &self.rate_limit)
            .field("faults", &self.faults)
            .field("webhook", &self.webhook)
            .field("oauth_auto_approve", &self.oauth_auto_approve)
            .field("redirect_uris", &self.redirect_uris)
            .field("fail_token_requests", &self.fail_token_requests)
            .finish()
    }
}

impl SandboxConfig {
    /// Checks every field that can be wrong.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_page_size == 0 {
            return Err(ConfigError::Value {
                field: "max_page_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        if let Some(rl) = &self.rate_limit {
            rl.validate()?;
        }
        self.faults.validate()?;
        if let Some(w) = &self.webhook {
            w.validate()?;
        }
        Ok(())
    }

    /// Applies a runtime patch; on error nothing changes.
    ///
    /// # Errors
    /// When the patched configuration would not [`validate`](Self::validate).
    pub fn apply(&mut self, patch: ConfigPatch) -> Result<(), ConfigError> {
        let mut next = self.clone();
        if let Some(rl) = patch.rate_limit {
            next.rate_limit = rl;
        }
        if let Some(faults) = patch.faults {
            next.faults = faults;
        }
        if let Some(secs) = patch.token_ttl_secs {
            next.token_ttl = Duration::try_from_secs_f64(secs).map_err(|e| ConfigError::Value {
                field: "token_ttl_secs",
                reason: e.to_string(),
            })?;
        }
        if let Some(webhook) = patch.webhook {
            next.webhook = webhook;
        }
        if let Some(n) = patch.max_page_size {
            next.max_page_size = n;
        }
        if let Some(on) = patch.auth_enabled {
            next.auth_enabled = on;
        }
        if let Some(on) = patch.oauth_auto_approve {
            next.oauth_auto_approve = on;
        }
        if let Some(uris) = patch.redirect_uris {
            next.redirect_uris = uris;
        }
        if let Some(on) = patch.fail_token_requests {
            next.fail_token_requests = on;
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// The JSON view served by `/_sandbox/config` (secrets redacted).
    pub fn to_public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed,
            "records_per_object": self.records_per_object,
            "auth_enabled": self.auth_enabled,
            "client_id": self.client_id,
            "token_ttl_secs": self.token_ttl.as_secs_f64(),
            "max_page_size": self.max_page_size,
            "oauth_auto_approve": self.oauth_auto_approve,
            "redirect_uris": self.redirect_uris,
            "fail_token_requests": self.fail_token_requests,
            "rate_limit": self.rate_limit,
            "faults": self.faults,
            "webhook": self.webhook.as_ref().map(|w| serde_json::json!({
                "url": w.url,
                "max_batch": w.max_batch,
                "max_retries": w.max_retries,
                "backoff_ms": w.backoff_ms,
            })),
        })
    }
}

/// A partial update for [`SandboxConfig`], the body of `POST /_sandbox/config`.
/// Absent fields stay as they are; `"rate_limit": null` / `"webhook": null`
/// switch those off; `faults` replaces the whole fault set (missing rates = 0)
/// and restarts its random sequence from its `seed`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// `"100/10s"`, `{"limit":100,"window_ms":10000}` or `null`.
    #[serde(default, deserialize_with = "double_option")]
    pub rate_limit: Option<Option<RateLimit>>,
    /// The new fault set.
    pub faults: Option<FaultConfig>,
    /// New access-token lifetime for tokens issued from now on.
    pub token_ttl_secs: Option<f64>,
    /// New webhook target, or `null`.
    #[serde(default, deserialize_with = "double_option")]
    pub webhook: Option<Option<WebhookConfig>>,
    /// New largest list page.
    pub max_page_size: Option<usize>,
    /// Switch bearer-token checks on or off.
    pub auth_enabled: Option<bool>,
    /// Switch the consent page's automatic approval on or off.
    pub oauth_auto_approve: Option<bool>,
    /// Replace the registered redirect URIs (`[]`: any loopback http URI).
    pub redirect_uris: Option<Vec<String>>,
    /// Make the token endpoint fail (500) or work again.
    pub fail_token_requests: Option<bool>,
}

fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// === impl RateLimit ===

/// `limit` requests per `window`, app-wide (HubSpot: 100 per 10 s per app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length.
    #[serde(rename = "window_ms", serialize_with = "ser_ms")]
    pub window: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl RateLimit {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.limit == 0 || self.window.is_zero() {
            return Err(ConfigError::RateLimit(format!(
                "{}/{}ms",
                self.limit,
                self.window.as_millis()
            )));
        }
        Ok(())
    }
}

impl FromStr for RateLimit {
    type Err = ConfigError;

    /// Parses `N/<duration>`: `100/10s`, `5/1m`, `50/500ms`, `100/10` (seconds).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ConfigError::RateLimit(s.to_owned());
        let (n, window) = s.trim().split_once('/').ok_or_else(err)?;
        let limit: u32 = n.trim().parse().map_err(|_| err())?;
        let window = window.trim();
        let split = window
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(window.len());
        let (digits, unit) = window.split_at(split);
        let amount: u64 = if digits.is_empty() && !unit.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| err())?
        };
        let window = match unit {
            "ms" => Duration::from_millis(amount),
            "" | "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount * 60),
            "h" => Duration::from_secs(amount * 3600),
            _ => return Err(err()),
        };
        let rl = RateLimit { limit, window };
        rl.validate().map_err(|_| err())?;
        Ok(rl)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Object { limit: u32, window_ms: u64 },
        }
        let rl = match Repr::deserialize(d)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom)?,
            Repr::Object { limit, window_ms } => RateLimit {
                limit,
                window: Duration::from_millis(window_ms),
            },
        };
        rl.validate().map_err(serde::de::Error::custom)?;
        Ok(rl)
    }
}

// === impl FaultConfig ===

/// Probabilities of injected failures, drawn per `/crm` request from a random
/// sequence seeded with `seed` (same seed and request order ⇒ same faults).
///
/// `error_rate`, `drop_rate` and `truncate_rate` are exclusive outcomes of one
/// draw (their sum must be ≤ 1); latency is drawn independently and can add to
/// any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault sequence.
    pub seed: u64,
    /// Probability of a 500/502/503/504 returned *instead of* handling the request.
    pub error_rate: f64,
    /// Probability of closing the connection without a complete response,
    /// *after* the request was handled (a write may have been applied).
    pub drop_rate: f64,
    /// Probability of a cut-off body, after the request was handled.
    pub truncate_rate: f64,
    /// Probability of an added delay.
    pub latency_rate: f64,
    /// The added delay, in milliseconds.
    pub latency_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            error_rate: 0.0,
            drop_rate: 0.0,
            truncate_rate: 0.0,
            latency_rate: 0.0,
            latency_ms: 0,
        }
    }
}

impl FaultConfig {
    /// True when no fault can ever fire.
    pub fn is_off(&self) -> bool {
        self.error_rate == 0.0
            && self.drop_rate == 0.0
            && self.truncate_rate == 0.0
            && (self.latency_rate == 0.0 || self.latency_ms == 0)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
            ("truncate_rate", self.truncate_rate),
            ("latency_rate", self.latency_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::FaultRate(format!(
                    "{name} = {p} is not in 0..=1"
                )));
            }
        }
        let exclusive = self.error_rate + self.drop_rate + self.truncate_rate;
        if exclusive > 1.0 + 1e-9 {
            return Err(ConfigError::FaultRate(format!(
                "error_rate + drop_rate + truncate_rate = {exclusive} exceeds 1"
            )));
        }
        Ok(())
    }
}

// === impl WebhookConfig ===

/// Where and how mutation events are delivered.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Absolute URL the event batches are POSTed to.
    pub url: String,
    /// Standard Webhooks secret, `whsec_<base64 key>`.
    pub secret: String,
    /// Most events per POST (events are sent as a JSON array).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Retries after a 5xx or a connection error (a 4xx is not retried).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First retry delay; doubles per retry.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

fn default_max_batch() -> usize {
    100
}
fn default_max_retries() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    100
}

impl WebhookConfig {
    /// A target with default batching and retry settings.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            max_batch: default_max_batch(),
            max_retries: default_max_retries(),
            backoff_ms: default_backoff_ms(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(ConfigError::WebhookUrl(self.url.clone())),
        }
        validate_secret(&self.secret)?;
        if self.max_batch == 0 {
            return Err(ConfigError::Value {
                field: "webhook.max_batch",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("max_batch", &self.max_batch)
            .field("max_retries", &self.max_retries)
            .field("backoff_ms", &self.backoff_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rate limits parse from the CLI's `N/<duration>` text and refuse nonsense.
    #[test]
    fn rate_limit_text() {
        let rl: RateLimit = "100/10s".parse().unwrap();
        assert_eq!(rl, RateLimit::new(100, Duration::from_secs(10)));
        assert_eq!(
            "5/m".parse::<RateLimit>().unwrap().window,
            Duration::from_secs(60)
        );
        assert_eq!(
            "50/500ms".parse::<RateLimit>().unwrap().window,
            Duration::from_millis(500)
        );
        assert_eq!(
            "7/3".parse::<RateLimit>().unwrap().window,
            Duration::from_secs(3)
        );
        for bad in ["100", "0/10s", "x/10s", "10/0s", "10/10d"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    /// A config patch distinguishes "absent" from `null`, and a bad patch changes nothing.
    #[test]
    fn patch_semantics() {
        let mut cfg = SandboxConfig {
            rate_limit: Some(RateLimit::new(1, Duration::from_secs(1))),
            ..SandboxConfig::default()
        };
        let keep: ConfigPatch = serde_json::from_str(r#"{"max_page_size":500}"#).unwrap();
        cfg.apply(keep).unwrap();
        assert_eq!(cfg.max_page_size, 500);
        assert!(cfg.rate_limit.is_some());

        let off: ConfigPatch = serde_json::from_str(r#"{"rate_limit":null}"#).unwrap();
        cfg.apply(off).unwrap();
        assert!(cfg.rate_limit.is_none());

        let bad: ConfigPatch = serde_json::from_str(
            r#"{"rate_limit":"10/1s","faults":{"error_rate":0.7,"drop_rate":0.7}}"#,
        )
        .unwrap();
        assert!(matches!(cfg.apply(bad), Err(ConfigError::FaultRate(_))));
        assert!(cfg.rate_limit.is_none(), "failed patch must not half-apply");
    }
}
