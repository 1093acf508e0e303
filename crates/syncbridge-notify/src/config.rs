//! Configuration: channels, routing rules, grouping and delivery settings.
//!
//! Written as TOML (see the crate documentation for a full example) and
//! checked once by [`NotifyConfig::validate`]; the service refuses a config
//! that does not validate. Channel URLs and signing secrets are secrets: they
//! are read into [`SecretString`] / [`WebhookSecret`], which never print, and
//! may be given indirectly (`url_env`, `secret_env`) so the file itself holds
//! no secret and the values live with the other credentials (in Azure an app
//! setting that is a Key Vault reference).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use syncbridge_core::SecretString;
use syncbridge_core::events::{Event, ProductEvent};
use syncbridge_signatures::WebhookSecret;

use crate::error::NotifyError;
use crate::samples::EVENT_KINDS;

/// The name of the channel [`NotifyConfig::with_product_webhook`] adds.
pub const PRODUCT_CHANNEL: &str = "product-webhook";

/// A kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Slack incoming webhook, Block Kit message.
    Slack,
    /// Microsoft Teams incoming webhook or Workflows webhook, Adaptive Card.
    Teams,
    /// A generic HTTPS endpoint, JSON signed with Standard Webhooks.
    Webhook,
    /// The product's webhook: only the product events
    /// ([`Event::product`]), in their documented payloads, signed with
    /// Standard Webhooks. Not named by rules: every product event goes to
    /// every product channel, besides the operators' routing.
    Product,
}

impl ChannelKind {
    /// The configuration / CLI name (`slack`, `teams`, `webhook`).
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Product => "product",
        }
    }

    /// Whether its messages carry a Standard Webhooks signature (and the
    /// channel needs a `whsec_` secret).
    pub fn signed(self) -> bool {
        matches!(self, ChannelKind::Webhook | ChannelKind::Product)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChannelKind {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, NotifyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "slack" => Ok(ChannelKind::Slack),
            "teams" => Ok(ChannelKind::Teams),
            "webhook" => Ok(ChannelKind::Webhook),
            "product" => Ok(ChannelKind::Product),
            other => Err(NotifyError::Config(format!(
                "unknown channel type {other:?}; use slack, teams, webhook or product"
            ))),
        }
    }
}

/// One destination. `Debug` never shows the URL or the secret.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The name rules refer to (unique).
    pub name: String,
    /// What kind of endpoint it is.
    pub kind: ChannelKind,
    /// The endpoint URL (a secret: Slack and Teams URLs are bearer credentials).
    pub url: SecretString,
    /// The Standard Webhooks signing secret (`whsec_…`); required for `webhook`.
    pub secret: Option<WebhookSecret>,
}

impl ChannelConfig {
    /// A Slack incoming webhook.
    pub fn slack(name: impl Into<String>, url: impl Into<String>) -> Self {
        ChannelConfig {
            name: name.into(),
            kind: ChannelKind::Slack,
            url: SecretString::new(url),
            secret: None,
        }
    }

    /// A Teams incoming webhook or Workflows webhook.
    pub fn teams(name: impl Into<String>, url: impl Into<String>) -> Self {
        ChannelConfig {
            name: name.into(),
            kind: ChannelKind::Teams,
            url: SecretString::new(url),
            secret: None,
        }
    }

    /// A generic endpoint signed with Standard Webhooks.
    pub fn webhook(
        name: impl Into<String>,
        url: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        ChannelConfig {
            name: name.into(),
            kind: ChannelKind::Webhook,
            url: SecretString::new(url),
            secret: Some(WebhookSecret::new(secret.into())),
        }
    }

    /// The product's webhook (see [`ChannelKind::Product`]).
    pub fn product(name: impl Into<String>, url: SecretString, secret: WebhookSecret) -> Self {
        ChannelConfig {
            name: name.into(),
            kind: ChannelKind::Product,
            url,
            secret: Some(secret),
        }
    }
}

pub use syncbridge_core::notify_rules::{DefaultRoute, Rule};

/// How repeats of the same failure are folded together.
///
/// Events are "the same" when their tenant and [`Event::group_key`] are equal.
/// The first occurrence opens a group. Its message is held for `wait` and
/// then sent with the number of occurrences seen by then, so a burst is one
/// message with a count. Later occurrences are counted, and when the group's
/// `window` (measured from the first occurrence) closes, one follow-up
/// message says "repeated N more times". A group whose window saw repeats
/// rolls over into another window; a window without repeats ends the group,
/// and the next occurrence starts a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupingConfig {
    /// Seconds the first message is held to collect a burst (default 30; 0 sends at once).
    #[serde(default = "default_wait_secs")]
    pub wait_secs: u64,
    /// Seconds of a grouping window (default 900). At least `wait_secs`.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
}

fn default_wait_secs() -> u64 {
    30
}
fn default_window_secs() -> u64 {
    900
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            wait_secs: default_wait_secs(),
            window_secs: default_window_secs(),
        }
    }
}

impl GroupingConfig {
    /// How long the first message is held.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs)
    }
    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// Retries, timeouts and the worker loop.
///
/// A failed attempt is retried after `initial_backoff_secs · 2^(attempt-1)`,
/// capped at `max_backoff_secs` (a `Retry-After` answer raises the delay, up
/// to the same cap). After `max_attempts` attempts, or at once for an answer
/// that no retry can fix (4xx other than 408/425/429, a redirect), the
/// message is marked dead and an error is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First retry delay in seconds (default 5).
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_secs: u64,
    /// Largest retry delay in seconds (default 900).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// Attempts before a message is dead (default 16, about two hours).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout in seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The worker loop's longest sleep between passes, in seconds (default 5).
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Messages sent concurrently in one pass (default 16).
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Days delivered and dead messages are kept in the outbox (default 7).
    #[serde(default = "default_retention")]
    pub retention_days: u64,
}

fn default_initial_backoff() -> u64 {
    5
}
fn default_max_backoff() -> u64 {
    900
}
fn default_max_attempts() -> u32 {
    16
}
fn default_timeout() -> u64 {
    10
}
fn default_poll() -> u64 {
    5
}
fn default_batch() -> u32 {
    16
}
fn default_retention() -> u64 {
    7
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            initial_backoff_secs: default_initial_backoff(),
            max_backoff_secs: default_max_backoff(),
            max_attempts: default_max_attempts(),
            timeout_secs: default_timeout(),
            poll_secs: default_poll(),
            batch: default_batch(),
            retention_days: default_retention(),
        }
    }
}

impl DeliveryConfig {
    /// The delay before the attempt after attempt number `attempt` (1-based)
    /// failed: capped exponential backoff, raised to `retry_after` if the
    /// channel asked for longer (still capped).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = Duration::from_secs(self.max_backoff_secs.max(1));
        let exp = attempt.saturating_sub(1).min(32);
        let base = Duration::from_secs(self.initial_backoff_secs.max(1))
            .saturating_mul(1u32.checked_shl(exp).unwrap_or(u32::MAX));
        base.max(retry_after.unwrap_or_default()).min(cap)
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

/// The whole notification configuration.
///
/// Routing: the first rule (in order) that matches the event's tenant and
/// kind decides; if the event's severity is below that rule's
/// `min_severity` the event is dropped. An event no rule matches goes to
/// `default` (if configured, and again subject to its `min_severity`).
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// Grouping of repeats.
    pub grouping: GroupingConfig,
    /// Retries and the worker loop.
    pub delivery: DeliveryConfig,
    /// Destinations.
    pub channels: Vec<ChannelConfig>,
    /// Ordered rules; the first match decides.
    pub rules: Vec<Rule>,
    /// Where events that no rule matches go.
    pub default: Option<DefaultRoute>,
}

/// The file form of a channel: the URL and secret may be given directly or
/// named by an environment variable.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: ChannelKind,
    #[serde(default)]
    url: Option<SecretString>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    secret: Option<WebhookSecret>,
    #[serde(default)]
    secret_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    grouping: GroupingConfig,
    #[serde(default)]
    delivery: DeliveryConfig,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    default: Option<DefaultRoute>,
}

impl NotifyConfig {
    /// Parses TOML, resolving `url_env` / `secret_env` through `env`, and
    /// validates. Errors name the setting, never a secret value.
    pub fn from_toml_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, NotifyError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml errors quote the offending line, which may hold a URL:
            // keep only the message.
            NotifyError::Config(format!(
                "notification config does not parse: {}",
                e.message()
            ))
        })?;
        let mut channels = Vec::with_capacity(raw.channels.len());
        for c in raw.channels {
            let url = match (c.url, c.url_env) {
                (Some(url), None) => url,
                (None, Some(var)) => SecretString::new(
                    env(&var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                        NotifyError::Config(format!(
                            "channel {:?}: environment variable {var} (url_env) is not set",
                            c.name
                        ))
                    })?,
                ),
                _ => {
                    return Err(NotifyError::Config(format!(
                        "channel {:?}: give exactly one of url and url_env",
                        c.name
                    )));
                }
            };
            let secret = match (c.secret, c.secret_env) {
                (Some(s), None) => Some(s),
                (None, Some(var)) => Some(WebhookSecret::new(
                    env(&var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                        NotifyError::Config(format!(
                            "channel {:?}: environment variable {var} (secret_env) is not set",
                            c.name
                        ))
                    })?,
                )),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(NotifyError::Config(format!(
                        "channel {:?}: give at most one of secret and secret_env",
                        c.name
                    )));
                }
            };
            channels.push(ChannelConfig {
                name: c.name,
                kind: c.kind,
                url,
                secret,
            });
        }
        let config = NotifyConfig {
            grouping: raw.grouping,
            delivery: raw.delivery,
            channels,
            rules: raw.rules,
            default: raw.default,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file, resolving `*_env` through `env` (the
    /// handlers pass their settings' environment; see
    /// [`from_toml_with_env`](Self::from_toml_with_env)).
    pub fn load(
        path: impl AsRef<Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, NotifyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| NotifyError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_with_env(&text, env)
    }

    /// Checks names, references, kinds, URLs, secrets and numbers.
    pub fn validate(&self) -> Result<(), NotifyError> {
        let err = |m: String| Err(NotifyError::Config(m));
        let mut names = HashSet::new();
        for c in &self.channels {
            if c.name.trim().is_empty() {
                return err("a channel has an empty name".into());
            }
            if !names.insert(c.name.as_str()) {
                return err(format!("channel name {:?} is used twice", c.name));
            }
            check_url(&c.name, &c.url)?;
            match (c.kind.signed(), &c.secret) {
                (true, None) => {
                    return err(format!(
                        "channel {:?}: a {} channel needs a Standard Webhooks secret (whsec_…)",
                        c.name, c.kind
                    ));
                }
                (true, Some(secret)) => check_secret(&c.name, secret)?,
                (_, Some(_)) => {
                    return err(format!(
                        "channel {:?}: only webhook channels take a secret",
                        c.name
                    ));
                }
                (_, None) => {}
            }
        }
        self.validate_rules(&self.rules, self.default.as_ref())?;
        if self.grouping.wait_secs > self.grouping.window_secs {
            return err("grouping.wait_secs must not exceed grouping.window_secs".into());
        }
        if self.grouping.window_secs == 0 {
            return err("grouping.window_secs must be at least 1".into());
        }
        let d = &self.delivery;
        if d.max_attempts == 0 || d.batch == 0 || d.poll_secs == 0 {
            return err("delivery.max_attempts, batch and poll_secs must be at least 1".into());
        }
        if d.initial_backoff_secs > d.max_backoff_secs {
            return err(
                "delivery.initial_backoff_secs must not exceed delivery.max_backoff_secs".into(),
            );
        }
        Ok(())
    }

    /// Checks a rule set against this config's channels: every rule and
    /// the default name at least one configured channel, no product channel
    /// (it is not routed by rules), and known event kinds. The error names
    /// the rule (1-based) or the default route. Used for the file's rules
    /// and for rules saved through the API before they are stored.
    pub fn validate_rules(
        &self,
        rules: &[Rule],
        default: Option<&DefaultRoute>,
    ) -> Result<(), NotifyError> {
        let check_refs = |what: String, channels: &[String]| -> Result<(), NotifyError> {
            if channels.is_empty() {
                return Err(NotifyError::Config(format!("{what} lists no channel")));
            }
            for ch in channels {
                match self.channel(ch) {
                    None => {
                        return Err(NotifyError::Config(format!(
                            "{what} names channel {ch:?}, which is not configured"
                        )));
                    }
                    Some(c) if c.kind == ChannelKind::Product => {
                        return Err(NotifyError::Config(format!(
                            "{what} names channel {ch:?}, a product channel: it receives every product event and is not routed by rules"
                        )));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        };
        for (i, rule) in rules.iter().enumerate() {
            check_refs(format!("rule {}", i + 1), &rule.channels)?;
            for k in &rule.kinds {
                if !EVENT_KINDS.contains(&k.as_str()) {
                    return Err(NotifyError::Config(format!(
                        "rule {}: unknown event kind {k:?}; known kinds: {}",
                        i + 1,
                        EVENT_KINDS.join(", ")
                    )));
                }
            }
        }
        if let Some(d) = default {
            check_refs("the default route".into(), &d.channels)?;
        }
        Ok(())
    }

    /// The channel with this name.
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// Adds the product's webhook channel (named [`PRODUCT_CHANNEL`]), as
    /// the handlers do when `SYNCBRIDGE_PRODUCT_WEBHOOK_URL` is set.
    pub fn with_product_webhook(mut self, url: SecretString, secret: WebhookSecret) -> Self {
        self.channels
            .push(ChannelConfig::product(PRODUCT_CHANNEL, url, secret));
        self
    }

    /// Which channels an event goes to: the operators' (by the rules) and,
    /// for a product event, every product channel; `Err(reason)` when none.
    pub fn route(&self, event: &Event) -> Result<Vec<String>, &'static str> {
        self.route_with(&self.rules, self.default.as_ref(), event)
    }

    /// [`route`](Self::route) with another rule set in place of the
    /// config's rules and default (the dashboard's stored rules); the
    /// channels stay this config's.
    pub fn route_with(
        &self,
        rules: &[Rule],
        default: Option<&DefaultRoute>,
        event: &Event,
    ) -> Result<Vec<String>, &'static str> {
        let mut out = match route_operators(rules, default, event) {
            Ok(channels) => channels,
            Err(reason) => {
                if !self.is_product_event(event) {
                    return Err(reason);
                }
                Vec::new()
            }
        };
        if self.is_product_event(event) {
            for c in self
                .channels
                .iter()
                .filter(|c| c.kind == ChannelKind::Product)
            {
                if !out.contains(&c.name) {
                    out.push(c.name.clone());
                }
            }
        }
        Ok(out)
    }

    /// Whether a product channel will receive the event.
    fn is_product_event(&self, event: &Event) -> bool {
        event.product() != ProductEvent::No
            && self.channels.iter().any(|c| c.kind == ChannelKind::Product)
    }
}

/// The rules' decision: the first matching rule, else the default route.
fn route_operators(
    rules: &[Rule],
    default: Option<&DefaultRoute>,
    event: &Event,
) -> Result<Vec<String>, &'static str> {
    let (min, channels) = match rules.iter().find(|r| r.matches(event)) {
        Some(rule) => (rule.min_severity, &rule.channels),
        None => match default {
            Some(d) => (d.min_severity, &d.channels),
            None => return Err("no rule matches and there is no default route"),
        },
    };
    if event.severity() < min {
        return Err("below the matching rule's minimum severity");
    }
    let mut out: Vec<String> = Vec::with_capacity(channels.len());
    for c in channels {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// Checks a channel URL without ever printing it.
pub(crate) fn check_url(name: &str, url: &SecretString) -> Result<(), NotifyError> {
    match url::Url::parse(url.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(NotifyError::Config(format!(
            "channel {name:?}: the URL must be http(s) with a host"
        ))),
        // `url::ParseError` describes the problem, not the input.
        Err(e) => Err(NotifyError::Config(format!(
            "channel {name:?}: the URL does not parse ({e})"
        ))),
    }
}

/// Checks that a Standard Webhooks secret can sign.
pub(crate) fn check_secret(name: &str, secret: &WebhookSecret) -> Result<(), NotifyError> {
    let req = syncbridge_signatures::Request {
        method: "POST",
        url: "https://example.invalid/",
        headers: &[],
        body: b"{}",
    };
    syncbridge_signatures::sign(
        &syncbridge_signatures::Scheme::StandardWebhooks,
        secret,
        &req,
        0,
        "msg_check",
    )
    .map(|_| ())
    .map_err(|e| NotifyError::Config(format!("channel {name:?}: unusable signing secret: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backoff doubles from the initial delay, is capped, and honours Retry-After up to the cap.
    #[test]
    fn backoff_is_capped_exponential() {
        let d = DeliveryConfig::default();
        let secs = |a, ra| d.backoff(a, ra).as_secs();
        assert_eq!(
            (1..=10).map(|a| secs(a, None)).collect::<Vec<_>>(),
            vec![5, 10, 20, 40, 80, 160, 320, 640, 900, 900]
        );
        assert_eq!(secs(100, None), 900);
        assert_eq!(secs(1, Some(Duration::from_secs(60))), 60);
        assert_eq!(secs(1, Some(Duration::from_secs(86_400))), 900);
    }

    /// Channel kinds parse from their CLI names, case-insensitively, and nothing else.
    #[test]
    fn channel_kind_names() {
        for k in [ChannelKind::Slack, ChannelKind::Teams, ChannelKind::Webhook] {
            assert_eq!(k.name().parse::<ChannelKind>().unwrap(), k);
            assert_eq!(
                k.to_string().to_uppercase().parse::<ChannelKind>().unwrap(),
                k
            );
        }
        assert!("email".parse::<ChannelKind>().is_err());
    }
}
