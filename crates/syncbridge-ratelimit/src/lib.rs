//! Rate limiting of outbound provider calls: one budget per connection,
//! shared by everything that calls the provider for it (pulls, pushes,
//! webhook follow-ups, token refreshes), checked at several levels at once.
//!
//! - [`gcra`]: the pure algorithm (one timestamp per bucket, all-or-nothing
//!   across levels, blocking level named).
//! - [`config`]: the levels as they sit in a connector definition
//!   (`{ name, limit, period_secs, burst?, scope, endpoint? }`).
//! - [`InProcessLimiter`]: the embedded default and the Redis fallback.
//! - [`RedisLimiter`]: one Lua script on the Redis server clock, with TTLs,
//!   cluster-safe hash tags, a circuit breaker and a counted local fallback.
//! - [`adaptive`]: provider rate-limit headers → shared overrides
//!   (pause / reduced rate); backoff with full jitter.
//! - [`auth`]: credentials that rotate under a live connection (Microsoft
//!   Entra tokens for Azure Managed Redis), behind a trait the Azure side
//!   implements; the limiter re-authenticates with `AUTH` when they change.
//! - [`redis_server`]: starts a throw-away `redis-server` (optionally with a
//!   TLS port and a certificate made for the run) for tests and the benchmark.
//! - [`breaker`]: the circuit breaker around the shared backend (injected clock).
//! - `inprocess`, `redis_limiter`: the two backends behind [`InProcessLimiter`]
//!   and [`RedisLimiter`]; `types`: the request, the verdict and the adaptive
//!   overrides both share.
//!
//! Workers hold an `Arc<dyn Limiter>` (or the core `RateLimiter`), call
//! [`Limiter::acquire`] before each provider request, park the job when
//! [`Verdict::should_park`] says the wait is long, and feed every response
//! to [`Limiter::observe`].

pub mod adaptive;
pub mod auth;
pub mod breaker;
pub mod config;
pub mod gcra;
mod inprocess;
mod redis_limiter;
pub mod redis_server;
mod types;

pub use adaptive::{AdaptivePolicy, Observation, WindowInfo};
pub use auth::{CredentialsError, RedisAuth, RedisCredentials};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use config::{ConfigError, LimitLevel, LimitsConfig, ProviderLimits, Scope};
pub use inprocess::{InProcessLimiter, OverrideBoard};
pub use redis_limiter::{
    DECIDE_LUA, HEARTBEAT_LUA, KeyLayout, LimiterStats, OVERRIDE_LUA, RedisLimiter,
    RedisLimiterConfig,
};
pub use types::{DenyReason, LimiterError, OverrideScope, OverrideSpec, Request, Verdict};

use syncbridge_core::{RateLimiter, Timestamp};

/// Level named in a denial caused by an adaptive override's pause.
pub const OVERRIDE_LEVEL: &str = "override";
/// Level named in a fail-closed denial while Redis is unavailable.
pub const UNAVAILABLE_LEVEL: &str = "redis-unavailable";

/// What [`Limiter::observe`] saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptation {
    /// The parsed headers.
    pub observation: Observation,
    /// The override written, if any.
    pub applied: Option<OverrideSpec>,
}

/// The richer limiter API both backends implement (endpoint classes, costs,
/// overrides, adaptation). The core [`RateLimiter`] trait is the cost-only
/// subset the connector runtime already calls.
#[async_trait::async_trait]
pub trait Limiter: RateLimiter {
    /// Spends `req.cost` units of every applicable level, or none.
    async fn acquire(&self, req: &Request<'_>) -> Verdict;

    /// Writes an override every instance sees.
    ///
    /// # Errors
    /// Unknown provider; provider scope without app levels; backend down.
    async fn apply_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
        spec: &OverrideSpec,
    ) -> Result<(), LimiterError>;

    /// Removes an override.
    ///
    /// # Errors
    /// Backend down.
    async fn clear_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
    ) -> Result<(), LimiterError>;

    /// The limiter's clock (for converting header dates).
    fn now(&self) -> Timestamp;

    /// Feeds one provider response: parses its rate-limit headers and, when
    /// `policy` says so (429, quota spent, little left), writes an override
    /// for `scope` that every instance sees. Pass the scope the provider's
    /// headers describe: `Connection` for per-account quotas (HubSpot,
    /// Salesforce, Shopify), `Provider` for an app-wide window (the sandbox).
    ///
    /// # Errors
    /// Writing the override failed (the observation is lost, not the call).
    async fn observe(
        &self,
        provider: &str,
        scope: &OverrideScope,
        status: u16,
        headers: &[(&str, &str)],
        policy: &AdaptivePolicy,
    ) -> Result<Adaptation, LimiterError> {
        let observation = adaptive::parse_headers(status, headers.iter().copied(), self.now());
        let applied = policy.plan(&observation);
        if let Some(spec) = &applied {
            self.apply_override(provider, scope, spec).await?;
        }
        Ok(Adaptation {
            observation,
            applied,
        })
    }
}

/// The core hook's `observe`, shared by both backends: feeds the response to
/// [`Limiter::observe`] with the default adaptive policy, for the provider app
/// or the connection as `app_wide` says. Problems are logged, never returned.
pub(crate) async fn observe_response<L: Limiter + ?Sized>(
    limiter: &L,
    provider: &str,
    connection: &syncbridge_core::ConnectionId,
    app_wide: bool,
    status: u16,
    headers: &[(String, String)],
) {
    let scope = if app_wide {
        OverrideScope::Provider
    } else {
        OverrideScope::Connection(connection.clone())
    };
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Err(e) = Limiter::observe(
        limiter,
        provider,
        &scope,
        status,
        &pairs,
        &AdaptivePolicy::default(),
    )
    .await
    {
        tracing::debug!(provider, error = %e, "rate-limit observation not applied");
    }
}

/// Every provider's levels from connector definitions (providers without
/// levels are unlimited).
pub fn limits_from_definitions<'a>(
    defs: impl IntoIterator<Item = &'a syncbridge_core::connector::ConnectorDef>,
) -> LimitsConfig {
    let mut cfg = LimitsConfig::default();
    for d in defs {
        if !d.rate_limits.is_empty() {
            let levels = d.rate_limits.iter().map(LimitLevel::from).collect();
            cfg = cfg.with_provider(d.name.clone(), ProviderLimits::new(levels));
        }
    }
    cfg
}
