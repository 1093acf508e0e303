//! The request, the verdict, and adaptive overrides shared by both backends.

use std::time::Duration;

use syncbridge_core::{ConnectionId, Decision};

/// One request for budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Provider name (the connector definition's `name`).
    pub provider: &'a str,
    /// The tenant connection the call is made for.
    pub connection: &'a ConnectionId,
    /// Endpoint class (`search`, `bulk`…), if the call belongs to one.
    pub endpoint: Option<&'a str>,
    /// Units to spend (1 for a plain request; GraphQL cost points…).
    pub cost: u32,
    /// When the shared backend is unavailable, refuse instead of using the
    /// degraded local limit (for costly or non-idempotent writes, which are
    /// better queued for later than risked against the provider's quota).
    pub fail_closed: bool,
}

impl<'a> Request<'a> {
    /// A cost-1 request with no endpoint class.
    pub fn new(provider: &'a str, connection: &'a ConnectionId) -> Self {
        Request {
            provider,
            connection,
            endpoint: None,
            cost: 1,
            fail_closed: false,
        }
    }

    /// In endpoint class `class`.
    pub fn endpoint(mut self, class: &'a str) -> Self {
        self.endpoint = Some(class);
        self
    }

    /// Spending `cost` units.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Refused while the shared backend is down.
    pub fn fail_closed(mut self) -> Self {
        self.fail_closed = true;
        self
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// A configured level is spent for now.
    Exhausted,
    /// An adaptive override (provider said 429 / quota spent) pauses calls.
    Paused,
    /// The cost exceeds the level's burst: it can never pass
    /// (`retry_after` is `Duration::MAX`).
    CostTooHigh,
    /// The shared backend is down and the request asked to fail closed.
    Unavailable,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; the budget is spent.
    Allowed,
    /// Not now.
    Denied {
        /// The level that refused (configured name, `override`, or
        /// `redis-unavailable`).
        level: String,
        /// When every level would let the request through.
        retry_after: Duration,
        /// Why.
        reason: DenyReason,
    },
}

impl Verdict {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed)
    }

    /// The refusing level's name, if denied.
    pub fn level(&self) -> Option<&str> {
        match self {
            Verdict::Allowed => None,
            Verdict::Denied { level, .. } => Some(level),
        }
    }

    /// The wait, zero when allowed.
    pub fn retry_after(&self) -> Duration {
        match self {
            Verdict::Allowed => Duration::ZERO,
            Verdict::Denied { retry_after, .. } => *retry_after,
        }
    }

    /// Whether a worker should checkpoint and re-enqueue instead of
    /// sleeping (the wait is longer than `max_inline_wait`, e.g. a spent
    /// daily quota).
    pub fn should_park(&self, max_inline_wait: Duration) -> bool {
        self.retry_after() > max_inline_wait
    }

    pub(crate) fn denied(level: &str, retry_after_us: i64, reason: DenyReason) -> Self {
        let retry_after = if retry_after_us == crate::gcra::NEVER {
            Duration::MAX
        } else {
            Duration::from_micros(retry_after_us.max(0) as u64)
        };
        Verdict::Denied {
            level: level.to_owned(),
            retry_after,
            reason: if retry_after_us == crate::gcra::NEVER {
                DenyReason::CostTooHigh
            } else {
                reason
            },
        }
    }
}

impl From<Verdict> for Decision {
    fn from(v: Verdict) -> Decision {
        match v {
            Verdict::Allowed => Decision::Allowed,
            Verdict::Denied {
                level, retry_after, ..
            } => Decision::Denied { level, retry_after },
        }
    }
}

/// Whose calls an override slows down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OverrideScope {
    /// The provider app as a whole: acts on the provider's app-scoped
    /// levels, which every request passes, so a pause stops every connection.
    /// Needs at least one `scope = "app"` level.
    Provider,
    /// One connection: acts on its connection and endpoint levels.
    Connection(ConnectionId),
}

/// An adaptive override, relative to the moment it is written (the Redis
/// backend converts it with the server's `TIME`, so instance clocks may drift).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverrideSpec {
    /// Refuse everything in scope for this long (never shortens an existing pause).
    pub pause_for: Option<Duration>,
    /// Multiply the scope's rates and bursts by this factor in (0, 1]
    /// (replaces an earlier factor).
    pub rate_factor: Option<f64>,
    /// How long the override lives (at least as long as the pause).
    pub ttl: Duration,
}

impl OverrideSpec {
    /// A pause of `d`.
    pub fn pause(d: Duration) -> Self {
        OverrideSpec {
            pause_for: Some(d),
            rate_factor: None,
            ttl: d,
        }
    }

    /// A reduced rate for `ttl`.
    pub fn reduce(factor: f64, ttl: Duration) -> Self {
        OverrideSpec {
            pause_for: None,
            rate_factor: Some(factor),
            ttl,
        }
    }

    /// The TTL actually stored: at least the pause, at least 1 ms.
    pub fn effective_ttl(&self) -> Duration {
        self.ttl
            .max(self.pause_for.unwrap_or_default())
            .max(Duration::from_millis(1))
    }

    /// The factor, clamped to (0, 1]; `None` when absent or not a number.
    pub fn clamped_factor(&self) -> Option<f64> {
        self.rate_factor
            .filter(|f| f.is_finite() && *f > 0.0)
            .map(|f| f.clamp(0.001, 1.0))
    }
}

/// Why a limiter operation (other than a decision) failed.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// No limits are configured for the provider.
    #[error("no rate limits are configured for provider {0:?}")]
    UnknownProvider(String),
    /// A provider-scoped override needs an app-scoped level to act on.
    #[error("provider {0:?} has no app-scoped level for a provider override to act on")]
    NoAppLevels(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Redis failed or timed out.
    #[error("redis: {0}")]
    Redis(String),
}
