//! Pure GCRA (generic cell rate algorithm), no I/O and no clock of its own.
//!
//! State is one integer per bucket: the theoretical arrival time (TAT), in
//! microseconds on whatever clock the caller uses (the in-process limiter's
//! injected [`Clock`](syncbridge_core::Clock), or Redis `TIME` inside the Lua
//! script, which mirrors this file line for line).
//!
//! With emission interval `T = period / limit` and burst `B`, a request of
//! cost `n` at `now` computes `new_tat = max(tat, now) + n·T` and passes iff
//! `new_tat − now ≤ B·T`. In any interval of length `t` at most
//! `B + t/T` units pass — `burst` at once, then `limit` per `period`.
//!
//! [`decide_all`] evaluates several levels for one request: every level is
//! checked, state is written only if all pass, and the level with the longest
//! wait is named.

use std::time::Duration;

/// `retry_after_us` of a request that can never pass (cost above the burst).
pub const NEVER: i64 = i64::MAX;

/// Parameters of one bucket, precomputed from `limit` per `period` and `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    emission_us: i64,
    burst: u64,
}

impl Gcra {
    /// `limit` units per `period`, at most `burst` back to back.
    ///
    /// The emission interval is rounded *up* to whole microseconds so the
    /// sustained rate never exceeds `limit / period`. Zero `limit` or `burst`
    /// count as one; a zero period as one microsecond.
    pub fn new(limit: u64, period: Duration, burst: u64) -> Self {
        let period_us = period.as_micros().clamp(1, i64::MAX as u128);
        let limit = u128::from(limit.max(1));
        let emission_us = period_us.div_ceil(limit);
        Gcra {
            emission_us: (emission_us as i64).max(1),
            burst: burst.max(1),
        }
    }

    /// From a raw emission interval (µs) and burst; used by the Redis backend
    /// and tests.
    pub fn from_parts(emission_us: i64, burst: u64) -> Self {
        Gcra {
            emission_us: emission_us.max(1),
            burst: burst.max(1),
        }
    }

    /// Time between two units at the sustained rate, in µs.
    pub fn emission_us(&self) -> i64 {
        self.emission_us
    }

    /// Units that may pass back to back.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// `B·T`: how far the TAT may run ahead of now.
    pub fn capacity_us(&self) -> i64 {
        self.emission_us
            .saturating_mul(self.burst.min(i64::MAX as u64) as i64)
    }

    /// The same bucket at `factor` × the rate and burst (`factor` in (0, 1]
    /// slows it down; values ≥ 1 or not finite leave it unchanged). The burst
    /// never drops below one. The Lua script applies the identical formula.
    pub fn scaled(self, factor: f64) -> Self {
        if !(factor.is_finite() && factor > 0.0 && factor < 1.0) {
            return self;
        }
        let emission_us = (self.emission_us as f64 / factor).ceil();
        let burst = (self.burst as f64 * factor).floor();
        Gcra {
            emission_us: (emission_us.min(i64::MAX as f64) as i64).max(1),
            burst: (burst as u64).max(1),
        }
    }
}

/// What one bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The request fits.
    pub allowed: bool,
    /// TAT to store if the request goes ahead (the old one when denied).
    pub new_tat: i64,
    /// µs until the request would fit; 0 when allowed, [`NEVER`] when its
    /// cost exceeds the burst.
    pub retry_after_us: i64,
    /// µs until the bucket is full again after this decision, i.e. when the
    /// stored state stops mattering (the key's TTL).
    pub reset_after_us: i64,
    /// Whole units that could still pass right now after this decision.
    pub remaining: u64,
}

/// One GCRA decision: may `cost` units pass at `now` given the stored `tat`?
///
/// `tat` is the stored theoretical arrival time; anything at or before `now`
/// (including 0 for "no state") means a full bucket. Pure and total: no
/// overflow for any input.
pub fn decide(now: i64, tat: i64, g: &Gcra, cost: u32) -> Outcome {
    let cap = g.capacity_us();
    let inc = g.emission_us.saturating_mul(i64::from(cost));
    let base = tat.max(now);
    let remaining_at = |t: i64| -> u64 {
        let slack = cap.saturating_sub(t.saturating_sub(now));
        if slack <= 0 {
            0
        } else {
            (slack / g.emission_us) as u64
        }
    };
    if inc > cap {
        return Outcome {
            allowed: false,
            new_tat: tat,
            retry_after_us: NEVER,
            reset_after_us: base.saturating_sub(now),
            remaining: remaining_at(base),
        };
    }
    let new_tat = base.saturating_add(inc);
    let over = new_tat.saturating_sub(now).saturating_sub(cap);
    if over <= 0 {
        Outcome {
            allowed: true,
            new_tat,
            retry_after_us: 0,
            reset_after_us: new_tat.saturating_sub(now),
            remaining: remaining_at(new_tat),
        }
    } else {
        Outcome {
            allowed: false,
            new_tat: tat,
            retry_after_us: over,
            reset_after_us: base.saturating_sub(now),
            remaining: remaining_at(base),
        }
    }
}

/// The answer for several levels at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiOutcome {
    /// Every level passed (and the state was written).
    pub allowed: bool,
    /// Index of the level with the longest wait, when denied.
    pub blocking: Option<usize>,
    /// µs until every level would pass; 0 when allowed, [`NEVER`] when a
    /// level can never pass this cost.
    pub retry_after_us: i64,
}

/// Evaluates `levels[i]` against `tats[i]` for one request of `cost` at `now`.
///
/// Every level is checked. Only if all pass is every `tats[i]` replaced by
/// its new TAT; otherwise `tats` is left untouched and the level needing the
/// longest wait is reported (waiting that long satisfies every level, since
/// waiting does not change any level's state).
///
/// # Panics
/// If `levels` and `tats` differ in length.
pub fn decide_all(now: i64, levels: &[Gcra], tats: &mut [i64], cost: u32) -> MultiOutcome {
    assert_eq!(levels.len(), tats.len(), "one TAT per level");
    let mut worst = 0i64;
    let mut blocking = None;
    for (i, (g, tat)) in levels.iter().zip(tats.iter()).enumerate() {
        let o = decide(now, *tat, g, cost);
        if !o.allowed && (blocking.is_none() || o.retry_after_us > worst) {
            worst = o.retry_after_us;
            blocking = Some(i);
        }
    }
    if blocking.is_some() {
        return MultiOutcome {
            allowed: false,
            blocking,
            retry_after_us: worst,
        };
    }
    for (g, tat) in levels.iter().zip(tats.iter_mut()) {
        *tat = decide(now, *tat, g, cost).new_tat;
    }
    MultiOutcome {
        allowed: true,
        blocking: None,
        retry_after_us: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_core::{Clock, ManualClock, Timestamp};

    const MS: i64 = 1000;

    fn now_us(c: &ManualClock) -> i64 {
        c.now().as_millis() * 1000
    }

    /// Ten per second with burst 3: three pass at once, the fourth waits one interval, and each interval refills one.
    #[test]
    fn burst_then_refill_table() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let g = Gcra::new(10, Duration::from_secs(1), 3);
        let mut tat = 0;
        // (advance ms, expected allowed, expected retry_after ms, expected remaining)
        let table: &[(u64, bool, i64, u64)] = &[
            (0, true, 0, 2),
            (0, true, 0, 1),
            (0, true, 0, 0),
            (0, false, 100, 0),
            (50, false, 50, 0),
            (50, true, 0, 0),
            (0, false, 100, 0),
            (300, true, 0, 2),
            (1000, true, 0, 2),
        ];
        for (step, &(adv, allowed, retry_ms, remaining)) in table.iter().enumerate() {
            clock.advance(Duration::from_millis(adv));
            let o = decide(now_us(&clock), tat, &g, 1);
            assert_eq!(o.allowed, allowed, "step {step}");
            assert_eq!(o.retry_after_us, retry_ms * MS, "step {step}");
            assert_eq!(o.remaining, remaining, "step {step}");
            if o.allowed {
                tat = o.new_tat;
            }
        }
    }

    /// A cost of n spends n units: cost 3 of burst 5 leaves 2, a second cost-3 waits for one unit, cost 6 never passes.
    #[test]
    fn cost_above_one() {
        let clock = ManualClock::new(Timestamp::from_millis(5_000));
        let g = Gcra::new(5, Duration::from_secs(5), 5); // one unit per second
        let now = now_us(&clock);
        let a = decide(now, 0, &g, 3);
        assert!(a.allowed);
        assert_eq!(a.remaining, 2);
        assert_eq!(a.reset_after_us, 3_000 * MS);
        let b = decide(now, a.new_tat, &g, 3);
        assert!(!b.allowed);
        assert_eq!(b.retry_after_us, 1_000 * MS);
        assert_eq!(b.new_tat, a.new_tat, "denied requests do not move the TAT");
        clock.advance(Duration::from_secs(1));
        assert!(decide(now_us(&clock), a.new_tat, &g, 3).allowed);
        let never = decide(now, 0, &g, 6);
        assert!(!never.allowed);
        assert_eq!(never.retry_after_us, NEVER);
        assert!(decide(now, 0, &g, 0).allowed, "cost 0 peeks");
    }

    /// After a long idle time the bucket is full again but never fuller than the burst.
    #[test]
    fn idle_refills_only_to_burst() {
        let g = Gcra::new(100, Duration::from_secs(10), 4);
        let mut tat = 0;
        let now = 10_000_000 * MS;
        let passed = (0..10)
            .filter(|_| {
                let o = decide(now, tat, &g, 1);
                if o.allowed {
                    tat = o.new_tat;
                }
                o.allowed
            })
            .count();
        assert_eq!(passed, 4);
    }

    /// Multi-level: the state is written only when all levels pass, and the level with the longest wait is named.
    #[test]
    fn multi_level_denial_names_level() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        // level 0: 10/s burst 10; level 1: 3 per minute burst 3 (a "daily"-like quota)
        let levels = [
            Gcra::new(10, Duration::from_secs(1), 10),
            Gcra::new(3, Duration::from_secs(60), 3),
        ];
        let mut tats = [0i64; 2];
        for _ in 0..3 {
            let o = decide_all(now_us(&clock), &levels, &mut tats, 1);
            assert!(o.allowed);
        }
        let before = tats;
        let o = decide_all(now_us(&clock), &levels, &mut tats, 1);
        assert!(!o.allowed);
        assert_eq!(o.blocking, Some(1));
        assert_eq!(o.retry_after_us, 20_000 * MS);
        assert_eq!(tats, before, "no level written on denial");
        // the fast level alone would block a burst of 11 with a short wait
        let mut fast = [0i64; 2];
        let lv = [levels[0], Gcra::new(1000, Duration::from_secs(60), 1000)];
        for _ in 0..10 {
            assert!(decide_all(now_us(&clock), &lv, &mut fast, 1).allowed);
        }
        let o = decide_all(now_us(&clock), &lv, &mut fast, 1);
        assert_eq!((o.allowed, o.blocking), (false, Some(0)));
        assert_eq!(o.retry_after_us, 100 * MS);
        clock.advance(Duration::from_millis(100));
        assert!(decide_all(now_us(&clock), &lv, &mut fast, 1).allowed);
    }

    /// When two levels deny, the longer wait wins; a never-passing cost is reported as NEVER on its level.
    #[test]
    fn multi_level_longest_wait_and_never() {
        let levels = [
            Gcra::new(1, Duration::from_secs(1), 1),
            Gcra::new(1, Duration::from_secs(5), 1),
            Gcra::new(1, Duration::from_secs(2), 1),
        ];
        let mut tats = [0i64; 3];
        assert!(decide_all(0, &levels, &mut tats, 1).allowed);
        let o = decide_all(0, &levels, &mut tats, 1);
        assert_eq!(o.blocking, Some(1));
        assert_eq!(o.retry_after_us, 5_000_000);
        let o = decide_all(0, &levels, &mut [0; 3], 2);
        assert_eq!((o.blocking, o.retry_after_us), (Some(0), NEVER));
    }

    /// Scaling by a factor slows the rate and shrinks the burst, never below one.
    #[test]
    fn scaled_rate_and_burst() {
        let g = Gcra::new(10, Duration::from_secs(1), 10);
        let h = g.scaled(0.5);
        assert_eq!((h.emission_us(), h.burst()), (200_000, 5));
        assert_eq!(g.scaled(0.01).burst(), 1);
        assert_eq!(g.scaled(1.0), g);
        assert_eq!(g.scaled(f64::NAN), g);
        // 1/3 per µs rounds the interval up, never down
        assert_eq!(Gcra::new(3, Duration::from_micros(10), 1).emission_us(), 4);
    }

    /// Extreme inputs saturate instead of overflowing.
    #[test]
    fn no_overflow() {
        let g = Gcra::new(1, Duration::from_secs(u64::MAX), u64::MAX);
        let o = decide(i64::MAX - 1, i64::MAX, &g, u32::MAX);
        assert!(o.retry_after_us >= 0);
        let o = decide(
            i64::MIN,
            i64::MIN,
            &Gcra::new(u64::MAX, Duration::ZERO, 0),
            1,
        );
        assert!(o.allowed);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// In every window [a, b] the allowed cost never exceeds burst + (b − a)·limit/period.
            #[test]
            fn never_more_than_burst_plus_rate(
                limit in 1u64..50,
                period_ms in 1u64..5_000,
                burst in 1u64..20,
                reqs in proptest::collection::vec((0i64..400_000, 1u32..4), 1..150),
            ) {
                let g = Gcra::new(limit, Duration::from_millis(period_ms), burst);
                let mut times: Vec<(i64, u32)> = reqs;
                times.sort_by_key(|r| r.0);
                let mut tat = 0i64;
                let mut allowed: Vec<(i64, u32)> = Vec::new();
                for &(t, c) in &times {
                    let o = decide(t, tat, &g, c);
                    if o.allowed {
                        tat = o.new_tat;
                        allowed.push((t, c));
                    }
                }
                let rate_per_us = limit as f64 / (period_ms as f64 * 1000.0);
                for i in 0..allowed.len() {
                    let mut sum = 0u64;
                    for j in i..allowed.len() {
                        sum += u64::from(allowed[j].1);
                        let span = (allowed[j].0 - allowed[i].0) as f64;
                        let bound = burst as f64 + span * rate_per_us;
                        prop_assert!(sum as f64 <= bound + 1e-9,
                            "{sum} units in {span} µs; bound {bound}");
                    }
                }
            }

            /// A multi-level decision passes iff every level alone passes, and denial leaves all state untouched.
            #[test]
            fn multi_level_all_or_nothing(
                params in proptest::collection::vec((1u64..20, 1u64..2_000, 1u64..8, 0i64..3_000_000), 1..5),
                now in 0i64..2_000_000,
                cost in 0u32..5,
            ) {
                let levels: Vec<Gcra> = params.iter()
                    .map(|&(l, p, b, _)| Gcra::new(l, Duration::from_millis(p), b)).collect();
                let mut tats: Vec<i64> = params.iter().map(|p| p.3).collect();
                let before = tats.clone();
                let each: Vec<Outcome> = levels.iter().zip(&before)
                    .map(|(g, &t)| decide(now, t, g, cost)).collect();
                let o = decide_all(now, &levels, &mut tats, cost);
                prop_assert_eq!(o.allowed, each.iter().all(|e| e.allowed));
                if o.allowed {
                    let want: Vec<i64> = each.iter().map(|e| e.new_tat).collect();
                    prop_assert_eq!(tats, want);
                } else {
                    prop_assert_eq!(&tats, &before);
                    let b = o.blocking.unwrap();
                    prop_assert!(!each[b].allowed);
                    let max = each.iter().filter(|e| !e.allowed).map(|e| e.retry_after_us).max().unwrap();
                    prop_assert_eq!(o.retry_after_us, max);
                }
            }
        }
    }
}
