//! The rate-limit hook the workers call before every provider request.

use std::fmt;
use std::time::Duration;

use crate::ids::ConnectionId;

/// The answer of a limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Not now: the named level is spent; try again after `retry_after`.
    Denied {
        /// Which configured level refused (e.g. `connection`, `provider-app`, `daily`).
        level: String,
        /// When a request would next be allowed.
        retry_after: Duration,
    },
}

/// Shared budget for everything that calls a provider on behalf of a connection.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Asks to spend `cost` units of `connection`'s budget for `provider`.
    async fn check(&self, provider: &str, connection: &ConnectionId, cost: u32) -> Decision;

    /// Feeds one provider response (status and headers) so the limiter can
    /// adapt: read `X-RateLimit-*`/`RateLimit`/`Retry-After`, and on a 429 or
    /// a nearly spent quota pause or slow down every instance. `app_wide`
    /// says whether the provider's headers describe the whole app (true) or
    /// the connection's account. Never fails the caller.
    async fn observe_response(
        &self,
        _provider: &str,
        _connection: &ConnectionId,
        _app_wide: bool,
        _status: u16,
        _headers: &[(String, String)],
    ) {
    }
}

/// Whose budget a configured level counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelScope {
    /// The provider app as a whole, across every tenant connection.
    App,
    /// One tenant connection.
    Connection,
    /// One endpoint class of one connection.
    Endpoint,
}

/// One rate-limit level of a provider, as written in its connector
/// definition (`[[rate_limits]]`). The limiter backends validate and enforce it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitLevel {
    /// Name reported when this level refuses.
    pub name: String,
    /// Units per period.
    pub limit: u64,
    /// Period in seconds (fractions allowed).
    pub period_secs: f64,
    /// Units that may pass back to back (defaults to `limit`).
    #[serde(default)]
    pub burst: Option<u64>,
    /// Whose budget it is.
    pub scope: LevelScope,
    /// For endpoint scope: the endpoint class.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// A limiter that allows everything; for providers with no configured limits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

#[async_trait::async_trait]
impl RateLimiter for Unlimited {
    async fn check(&self, _: &str, _: &ConnectionId, _: u32) -> Decision {
        Decision::Allowed
    }
}
