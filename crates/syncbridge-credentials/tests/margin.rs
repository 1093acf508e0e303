//! The pure timing rules: refresh margin, due, sweep selection, jitter.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use syncbridge_core::{ConnectionId, Timestamp};
use syncbridge_credentials::margin::{is_due, refresh_margin, sweep_at, sweep_due, usable};
use syncbridge_credentials::sweep::{jitter_delays, select_due};

const S: u64 = 1;
const M: u64 = 60;
const H: u64 = 3600;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_millis(secs * 1000)
}

/// The margin is max(5 min, 10 % of lifetime), capped at half the lifetime, row by row.
#[test]
fn margin_rule_table() {
    let rows: &[(u64, u64)] = &[
        // (lifetime secs, margin secs)
        (0, 0),
        (2 * M, M),                // cap: half of a 2-minute token
        (10 * M, 5 * M),           // floor and cap meet
        (30 * M, 5 * M),           // floor (10 % = 3 min)
        (50 * M, 5 * M),           // floor (10 % = 5 min)
        (H, 6 * M),                // 10 %
        (6 * H, 36 * M),           // 10 %
        (24 * H, 144 * M),         // 10 %
        (60 * 24 * H, 6 * 24 * H), // 60-day token: 6 days
        (90 * S, 45 * S),          // sub-minute precision
    ];
    for &(life, margin) in rows {
        assert_eq!(
            refresh_margin(Duration::from_secs(life)),
            Duration::from_secs(margin),
            "lifetime {life}s"
        );
    }
}

/// A token is due from expiry minus margin on, never without an expiry, and usable until expiry minus skew.
#[test]
fn due_and_usable() {
    let issued = t(1000);
    let exp = Some(t(1000 + 3600)); // 1 h: margin 6 min
    assert!(!is_due(issued, exp, t(1000 + 3600 - 361)));
    assert!(is_due(issued, exp, t(1000 + 3600 - 360)));
    assert!(is_due(issued, exp, t(1000 + 7200)));
    assert!(!is_due(issued, None, t(i64::MAX / 2000)));
    let skew = Duration::from_secs(30);
    assert!(usable(exp, t(1000 + 3600 - 31), skew));
    assert!(!usable(exp, t(1000 + 3600 - 30), skew));
    assert!(usable(None, t(0), skew));
}

/// The sweep's rule: due by margin or idle for a day; never without metadata.
#[test]
fn sweep_rule() {
    let day = Duration::from_secs(24 * H);
    let refreshed = t(0);
    let long = Some(t(30 * 24 * 3600)); // 30-day token, margin 3 days
    assert!(!sweep_due(long, refreshed, t(23 * 3600), day));
    assert!(
        sweep_due(long, refreshed, t(24 * 3600), day),
        "idle for a day"
    );
    assert!(sweep_due(long, refreshed, t(27 * 24 * 3600), day));
    assert!(!sweep_due(None, refreshed, t(100 * 24 * 3600), day));
}

/// The stored sweep time is exactly the first instant the sweep's rule
/// holds: for lifetimes from 0 to 60 days and refresh ages around every
/// boundary, `sweep_at <= now` iff `sweep_due(now)` (so the store's index
/// range selects exactly what the rule would, and nothing is missed).
#[test]
fn sweep_at_is_where_the_rule_starts() {
    let day = Duration::from_secs(24 * H);
    let refreshed = t(1_000_000);
    for lifetime in [
        0,
        1,
        119,
        120,
        600,
        1800,
        3600,
        86_399,
        86_400,
        30 * 86_400,
        60 * 86_400,
    ] {
        let exp = Some(refreshed.add(Duration::from_secs(lifetime)));
        let at = sweep_at(exp, refreshed, day).expect("an expiry gives a sweep time");
        for delta in [-2_000i64, -1, 0, 1, 2_000] {
            let now = Timestamp::from_millis(at.as_millis() + delta);
            assert_eq!(
                sweep_due(exp, refreshed, now, day),
                delta >= 0,
                "lifetime {lifetime} s, {delta} ms from the sweep time"
            );
        }
    }
    assert_eq!(
        sweep_at(None, refreshed, day),
        None,
        "no metadata: never due"
    );
}

/// Selection keeps the store's soonest-first order, filters by the rule and stops at the limit.
#[test]
fn select_due_filters_and_limits() {
    let day = Duration::from_secs(24 * H);
    let id = |s: &str| ConnectionId::parse(s).unwrap();
    let now = t(10_000);
    let rows = vec![
        (id("a"), Some(t(10_100)), t(10_000 - 3500)), // 1 h token, 100 s left: due
        (id("b"), Some(t(13_000)), t(9_000)),         // 66 min token, 50 min left: not due
        (id("c"), Some(t(10_200)), t(10_200 - 1800)), // 30 min token, 200 s left: due
        (id("d"), None, t(0)),                        // no metadata
    ];
    assert_eq!(select_due(&rows, now, day, 10), vec![id("a"), id("c")]);
    assert_eq!(select_due(&rows, now, day, 1), vec![id("a")]);
}

/// Jitter delays are deterministic for a seed, inside the window, and actually spread.
#[test]
fn jitter_spreads_within_window() {
    let spread = Duration::from_secs(10);
    let a = jitter_delays(1000, spread, &mut StdRng::seed_from_u64(1));
    let b = jitter_delays(1000, spread, &mut StdRng::seed_from_u64(1));
    assert_eq!(a, b);
    assert!(a.iter().all(|d| *d < spread));
    let early = a.iter().filter(|d| **d < spread / 2).count();
    assert!((400..600).contains(&early), "{early}");
    assert!(
        jitter_delays(3, Duration::ZERO, &mut StdRng::seed_from_u64(1))
            .iter()
            .all(|d| d.is_zero())
    );
}
