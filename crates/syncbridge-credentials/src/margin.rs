//! When a token is due for refresh: pure functions of timestamps.
//!
//! The refresh margin is `max(5 min, 10 % of the token's lifetime)`, capped
//! at half the lifetime. The cap only bites for tokens living under 10
//! minutes (the sandbox's demo tokens): without it a 2-minute token would be
//! "due" the moment it is issued and every request would refresh it.

use std::time::Duration;

use syncbridge_core::Timestamp;

/// The floor of the margin.
pub const MIN_MARGIN: Duration = Duration::from_secs(300);

/// Idle credentials are refreshed at least this often by the sweep.
pub const IDLE_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// How long before expiry a token of this lifetime is refreshed.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    MIN_MARGIN.max(lifetime / 10).min(lifetime / 2)
}

/// The instant from which a token issued at `issued_at` and expiring at
/// `expires_at` is due for refresh.
pub fn due_at(issued_at: Timestamp, expires_at: Timestamp) -> Timestamp {
    expires_at.sub(refresh_margin(expires_at.since(issued_at)))
}

/// Whether the token should be refreshed at `now` (never, when it has no expiry).
pub fn is_due(issued_at: Timestamp, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|e| now >= due_at(issued_at, e))
}

/// The sweep's rule on the store's plaintext metadata: due by margin, or
/// not refreshed for `idle_after`. Credentials without sweep metadata are
/// never due.
pub fn sweep_due(
    meta_expires_at: Option<Timestamp>,
    refreshed_at: Timestamp,
    now: Timestamp,
    idle_after: Duration,
) -> bool {
    meta_expires_at.is_some()
        && (is_due(refreshed_at, meta_expires_at, now) || now.since(refreshed_at) >= idle_after)
}

/// The first instant at which [`sweep_due`] holds: stored next to the
/// ciphertext (the store's indexed `sweep_at`), so a sweep reads only what
/// is due instead of every credential. `None` = never.
pub fn sweep_at(
    meta_expires_at: Option<Timestamp>,
    refreshed_at: Timestamp,
    idle_after: Duration,
) -> Option<Timestamp> {
    meta_expires_at.map(|e| due_at(refreshed_at, e).min(refreshed_at.add(idle_after)))
}

/// Whether a token can still be sent at `now`: unexpired with `skew` to spare.
pub fn usable(expires_at: Option<Timestamp>, now: Timestamp, skew: Duration) -> bool {
    expires_at.is_none_or(|e| now.add(skew) < e)
}
