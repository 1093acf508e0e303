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
