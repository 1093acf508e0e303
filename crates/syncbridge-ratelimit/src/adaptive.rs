//! Adapting to what providers say: rate-limit response headers parsed into
//! one normalised [`Observation`], a policy turning it into an
//! [`OverrideSpec`] (pause / reduced rate) that every limiter instance sees,
//! and capped exponential backoff with full jitter for retries.
//!
//! Understood headers:
//! - `X-RateLimit-Limit/-Remaining/-Reset/-Resource` (GitHub and many others;
//!   reset as epoch seconds, epoch milliseconds or delta seconds),
//! - `X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`,
//!   `-Secondly/-Secondly-Remaining`, `-Daily/-Daily-Remaining`,
//! - IETF draft `RateLimit-Policy` / `RateLimit` structured fields, and the
//!   older draft `RateLimit-Limit/-Remaining/-Reset`,
//! - `Retry-After` (delay-seconds or HTTP-date),
//! - Salesforce `Sforce-Limit-Info: api-usage=18/15000; api-bursts=1/750`,
//! - Zendesk `X-Rate-Limit/-Remaining`, Shopify `X-Shopify-Shop-Api-Call-Limit`.
//!
//! Malformed values are ignored, never an error; hints longer than
//! [`MAX_HINT`] are capped.

use std::time::{Duration, UNIX_EPOCH};

use syncbridge_core::Timestamp;

use crate::types::OverrideSpec;

/// Longest wait any header may ask for (absurd values are capped).
pub const MAX_HINT: Duration = Duration::from_secs(2 * 86_400);

/// One quota window a provider reported on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowInfo {
    /// Which window (`x-ratelimit`, `hubspot-interval`, `api-usage`, an IETF policy name…).
    pub name: String,
    /// Units allowed per window.
    pub limit: Option<u64>,
    /// Units left.
    pub remaining: Option<u64>,
    /// Time until more quota is available.
    pub reset_after: Option<Duration>,
    /// Window length.
    pub window: Option<Duration>,
}

impl WindowInfo {
    fn named(name: &str) -> Self {
        WindowInfo {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// `remaining / limit`, when both are known.
    pub fn fraction_left(&self) -> Option<f64> {
        match (self.remaining, self.limit) {
            (Some(r), Some(l)) if l > 0 => Some(r as f64 / l as f64),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_after.is_none()
    }
}

/// Everything a response said about rate limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, converted to a delay.
    pub retry_after: Option<Duration>,
    /// Quota windows reported.
    pub windows: Vec<WindowInfo>,
}

impl Observation {
    /// The provider refused for rate reasons (429).
    pub fn is_throttled(&self) -> bool {
        self.status == 429
    }

    /// The longest time until an exhausted window (remaining = 0) reopens,
    /// if any window is exhausted and says when.
    pub fn exhausted_reset(&self) -> Option<Duration> {
        self.windows
            .iter()
            .filter(|w| w.remaining == Some(0))
            .filter_map(|w| w.reset_after.or(w.window))
            .max()
    }

    /// The window with the smallest share left.
    pub fn tightest(&self) -> Option<(f64, &WindowInfo)> {
        self.windows
            .iter()
            .filter_map(|w| w.fraction_left().map(|f| (f, w)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The window named `name`.
    pub fn window(&self, name: &str) -> Option<&WindowInfo> {
        self.windows.iter().find(|w| w.name == name)
    }
}

fn num(v: &str) -> Option<u64> {
    let v = v.trim();
    // "100, 100;w=10" (old IETF draft with policy) → the first number
    let head = v.split([',', ';', ' ']).next().unwrap_or("");
    head.parse::<u64>().ok().or_else(|| {
        head.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn secs(v: f64) -> Option<Duration> {
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v).min(MAX_HINT))
}

/// `Retry-After`: delay-seconds or an HTTP-date (relative to `now`; a date
/// in the past means zero).
pub fn parse_retry_after(v: &str, now: Timestamp) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return secs(s);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    let at = Timestamp::from_millis(ms.min(i64::MAX as u128) as i64);
    Some(at.since(now).min(MAX_HINT))
}

/// An `X-RateLimit-Reset`-style value: epoch milliseconds (≥ 10¹²), epoch
/// seconds (≥ 10⁹, GitHub) or delta seconds (everyone else), or an RFC 3339
/// time (Jira: `2026-12-07T14:00:00Z`).
pub fn parse_reset(v: &str, now: Timestamp) -> Option<Duration> {
    let Ok(x) = v.trim().parse::<f64>() else {
        return Timestamp::parse(v.trim()).map(|at| at.since(now).min(MAX_HINT));
    };
    let x = Some(x).filter(|x| x.is_finite() && *x >= 0.0)?;
    if x >= 1e12 {
        Some(Timestamp::from_millis(x as i64).since(now).min(MAX_HINT))
    } else if x >= 1e9 {
        Some(
            Timestamp::from_millis((x * 1000.0) as i64)
                .since(now)
                .min(MAX_HINT),
        )
    } else {
        secs(x)
    }
}

/// `Sforce-Limit-Info: api-usage=10018/100000; api-bursts=1/750` →
/// one window per `name=used/allocated` pair (24 h rolling for api-usage).
pub fn parse_sforce_limit_info(v: &str) -> Vec<WindowInfo> {
    v.split([';', ','])
        .filter_map(|part| {
            let (name, usage) = part.trim().split_once('=')?;
            let (used, max) = usage.trim().split_once('/')?;
            let used = used.trim().parse::<u64>().ok()?;
            let max = max.trim().parse::<u64>().ok()?;
            let name = name.trim();
            Some(WindowInfo {
                name: name.to_owned(),
                limit: Some(max),
                remaining: Some(max.saturating_sub(used)),
                reset_after: None,
                window: (name == "api-usage").then_some(Duration::from_secs(86_400)),
            })
        })
        .collect()
}

/// Splits a structured-field list on commas outside quoted strings.
fn sf_items(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One structured-field item: `"name";k=v;k2=v2` → (name, params).
fn sf_item(item: &str) -> Option<(String, Vec<(&str, &str)>)> {
    let mut parts = item.split(';');
    let head = parts.next()?.trim();
    let name = if let Some(q) = head.strip_prefix('"') {
        q.strip_suffix('"')?.to_owned()
    } else if !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.*:/".contains(c))
    {
        head.to_owned()
    } else {
        return None;
    };
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim(), v.trim()))
        })
        .collect();
    Some((name, params))
}

fn param<'a>(params: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// IETF `RateLimit-Policy: "burst";q=100;w=60,"daily";q=1000;w=86400` →
/// windows with limit and length. Malformed items are skipped.
pub fn parse_ratelimit_policy(v: &str) -> Vec<WindowInfo> {
    sf_items(v)
        .into_iter()
        .filter_map(sf_item)
        .filter_map(|(name, ps)| {
            let limit = num(param(&ps, "q")?)?;
            Some(WindowInfo {
                name,
                limit: Some(limit),
                window: param(&ps, "w")
                    .and_then(|w| w.parse::<f64>().ok())
                    .and_then(secs),
                ..Default::default()
            })
        })
        .collect()
}

/// IETF `RateLimit: "default";r=50;t=30` → windows with remaining and reset.
pub fn parse_ratelimit(v: &str) -> Vec<WindowInfo> {
    sf_items(v)
        .into_iter()
        .filter_map(sf_item)
        .filter_map(|(name, ps)| {
            let remaining = param(&ps, "r").and_then(num);
            let reset_after = param(&ps, "t")
                .and_then(|t| t.parse::<f64>().ok())
                .and_then(secs);
            (remaining.is_some() || reset_after.is_some()).then_some(WindowInfo {
                name,
                remaining,
                reset_after,
                ..Default::default()
            })
        })
        .collect()
}

/// Parses every rate-limit header of one response (`now` converts dates
/// and epoch resets to delays).
pub fn parse_headers<I, K, V>(status: u16, headers: I, now: Timestamp) -> Observation
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut obs = Observation {
        status,
        ..Default::default()
    };
    let mut xrl = WindowInfo::named("x-ratelimit");
    let mut draft = WindowInfo::named("ratelimit");
    let mut hs = WindowInfo::named("hubspot-interval");
    let mut hs_sec = WindowInfo {
        window: Some(Duration::from_secs(1)),
        ..WindowInfo::named("hubspot-secondly")
    };
    let mut hs_daily = WindowInfo {
        window: Some(Duration::from_secs(86_400)),
        ..WindowInfo::named("hubspot-daily")
    };
    let mut zd = WindowInfo {
        window: Some(Duration::from_secs(60)),
        ..WindowInfo::named("x-rate-limit")
    };
    let mut policies = Vec::new();
    let mut states = Vec::new();
    for (k, v) in headers {
        let (k, v) = (k.as_ref().trim().to_ascii_lowercase(), v.as_ref());
        match k.as_str() {
            "retry-after" => obs.retry_after = parse_retry_after(v, now),
            "x-ratelimit-limit" => xrl.limit = num(v),
            "x-ratelimit-remaining" => xrl.remaining = num(v),
            "x-ratelimit-reset" => xrl.reset_after = parse_reset(v, now),
            "x-ratelimit-resource" => {
                let r = v.trim();
                if !r.is_empty() {
                    xrl.name = format!("x-ratelimit:{r}");
                }
            }
            "ratelimit-limit" => draft.limit = num(v),
            "ratelimit-remaining" => draft.remaining = num(v),
            "ratelimit-reset" => draft.reset_after = v.trim().parse::<f64>().ok().and_then(secs),
            "x-hubspot-ratelimit-max" => hs.limit = num(v),
            "x-hubspot-ratelimit-remaining" => hs.remaining = num(v),
            "x-hubspot-ratelimit-interval-milliseconds" => {
                hs.window = num(v).map(|ms| Duration::from_millis(ms).min(MAX_HINT));
            }
            "x-hubspot-ratelimit-secondly" => hs_sec.limit = num(v),
            "x-hubspot-ratelimit-secondly-remaining" => hs_sec.remaining = num(v),
            "x-hubspot-ratelimit-daily" => hs_daily.limit = num(v),
            "x-hubspot-ratelimit-daily-remaining" => hs_daily.remaining = num(v),
            "x-rate-limit" => zd.limit = num(v),
            "x-rate-limit-remaining" => zd.remaining = num(v),
            "ratelimit-policy" => policies.extend(parse_ratelimit_policy(v)),
            "ratelimit" => states.extend(parse_ratelimit(v)),
            "sforce-limit-info" => obs.windows.extend(parse_sforce_limit_info(v)),
            "x-shopify-shop-api-call-limit" => {
                if let Some((Some(used), Some(max))) =
                    v.trim().split_once('/').map(|(u, m)| (num(u), num(m)))
                {
                    obs.windows.push(WindowInfo {
                        limit: Some(max),
                        remaining: Some(max.saturating_sub(used)),
                        ..WindowInfo::named("shopify-bucket")
                    });
                }
            }
            _ => {}
        }
    }
    for w in [xrl, draft, hs, hs_sec, hs_daily, zd] {
        if !w.is_empty() {
            obs.windows.push(w);
        }
    }
    // IETF: join RateLimit items to RateLimit-Policy items by name.
    for s in states {
        if let Some(p) = policies.iter_mut().find(|p| p.name == s.name) {
            p.remaining = s.remaining;
            p.reset_after = s.reset_after;
        } else if policies.len() == 1 && s.name == "default" {
            let p = &mut policies[0];
            p.remaining = s.remaining;
            p.reset_after = s.reset_after;
        } else {
            policies.push(s);
        }
    }
    obs.windows.extend(policies);
    obs
}

/// Turns observations into overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptivePolicy {
    /// Below this share of a window left, slow down (0 disables).
    pub low_remaining: f64,
    /// Rate factor applied when slowing down and after a 429.
    pub reduced_factor: f64,
    /// After a 429, keep the reduced rate this long past the pause.
    pub throttle_recovery: Duration,
    /// Pause after a 429 that says nothing about when to come back.
    pub default_pause: Duration,
    /// How long a low-remaining slowdown lasts when the window's reset is unknown.
    pub default_slowdown: Duration,
    /// Cap on any pause.
    pub max_pause: Duration,
}

impl Default for AdaptivePolicy {
    fn default() -> Self {
        AdaptivePolicy {
            low_remaining: 0.05,
            reduced_factor: 0.5,
            throttle_recovery: Duration::from_secs(30),
            default_pause: Duration::from_secs(5),
            default_slowdown: Duration::from_secs(10),
            max_pause: MAX_HINT,
        }
    }
}

impl AdaptivePolicy {
    /// What to do about `obs`:
    /// - 429 (or 503 with `Retry-After`): pause for `Retry-After` (it beats
    ///   everything), else until the exhausted window resets, else
    ///   `default_pause`; then run at `reduced_factor` for `throttle_recovery`.
    /// - A window with nothing left: pause until it resets.
    /// - A window below `low_remaining`: run at `reduced_factor` until it resets.
    /// - Otherwise nothing.
    pub fn plan(&self, obs: &Observation) -> Option<OverrideSpec> {
        let cap = |d: Duration| d.min(self.max_pause);
        if obs.is_throttled() || (obs.status == 503 && obs.retry_after.is_some()) {
            let pause = cap(obs
                .retry_after
                .or_else(|| obs.exhausted_reset())
                .unwrap_or(self.default_pause));
            return Some(OverrideSpec {
                pause_for: Some(pause),
                rate_factor: Some(self.reduced_factor),
                ttl: pause + self.throttle_recovery,
            });
        }
        if let Some(reset) = obs.exhausted_reset().filter(|d| !d.is_zero()) {
            return Some(OverrideSpec::pause(cap(reset)));
        }
        let (frac, w) = obs.tightest()?;
        (frac < self.low_remaining).then(|| {
            let ttl = w.reset_after.or(w.window).unwrap_or(self.default_slowdown);
            OverrideSpec::reduce(self.reduced_factor, cap(ttl))
        })
    }
}

/// Capped exponential backoff with full jitter:
/// `unit × min(cap, base · 2^attempt)` with `unit` uniform in [0, 1)
/// (clamped), attempt counted from 0.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = (base.as_secs_f64() * 2f64.powi(attempt.min(1000) as i32)).min(cap.as_secs_f64());
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(ceiling * unit)
        .unwrap_or(cap)
        .min(cap)
}

/// [`full_jitter`] drawing `unit` from `rng`.
pub fn full_jitter_with<R: rand::Rng + ?Sized>(
    attempt: u32,
    base: Duration,
    cap: Duration,
    rng: &mut R,
) -> Duration {
    full_jitter(attempt, base, cap, rng.random::<f64>())
}

/// The delay before retry `attempt`: a server hint (`Retry-After`, reset)
/// wins, with up to 10 % (at least `base`, at most `cap`) of jitter on top
/// so throttled clients do not all return at the same instant; without a
/// hint, [`full_jitter`].
pub fn retry_delay(
    attempt: u32,
    server_hint: Option<Duration>,
    base: Duration,
    cap: Duration,
    unit: f64,
) -> Duration {
    match server_hint {
        Some(hint) => {
            let spread = (hint / 10).max(base).min(cap);
            hint.saturating_add(full_jitter(0, spread, spread, unit))
        }
        None => full_jitter(attempt, base, cap, unit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn now() -> Timestamp {
        Timestamp::from_millis(NOW_MS)
    }

    fn obs(status: u16, h: &[(&str, &str)]) -> Observation {
        parse_headers(status, h.iter().copied(), now())
    }

    /// Retry-After in seconds, fractions, HTTP-dates (future and past) and garbage.
    #[test]
    fn retry_after_table() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            ("1.5", Some(Duration::from_millis(1500))),
            ("-3", None),
            ("soon", None),
            (
                "Tue, 14 Nov 2023 22:13:50 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Tue, 14 Nov 2023 22:00:00 GMT", Some(Duration::ZERO)),
            ("99999999", Some(MAX_HINT)),
        ];
        for (v, want) in cases {
            assert_eq!(parse_retry_after(v, now()), *want, "{v:?}");
        }
    }

    /// X-RateLimit-Reset as delta seconds, epoch seconds (GitHub) and epoch milliseconds.
    #[test]
    fn reset_table() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("30", Some(Duration::from_secs(30))),
            ("1700000060", Some(Duration::from_secs(60))),
            ("1700000000500", Some(Duration::from_millis(500))),
            ("1600000000", Some(Duration::ZERO)),
            ("2023-11-14T22:14:20Z", Some(Duration::from_secs(60))),
            ("x", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_reset(v, now()), *want, "{v:?}");
        }
    }

    /// GitHub-style headers become one window named after the resource.
    #[test]
    fn x_ratelimit_github() {
        let o = obs(
            403,
            &[
                ("X-RateLimit-Limit", "5000"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1700000120"),
                ("X-RateLimit-Resource", "search"),
                ("Content-Type", "application/json"),
            ],
        );
        assert_eq!(
            o.windows,
            vec![WindowInfo {
                name: "x-ratelimit:search".into(),
                limit: Some(5000),
                remaining: Some(0),
                reset_after: Some(Duration::from_secs(120)),
                window: None,
            }]
        );
        assert_eq!(o.exhausted_reset(), Some(Duration::from_secs(120)));
    }

    /// HubSpot interval, secondly and daily headers each become a window.
    #[test]
    fn hubspot_headers() {
        let o = obs(
            200,
            &[
                ("x-hubspot-ratelimit-max", "100"),
                ("x-hubspot-ratelimit-remaining", "7"),
                ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
                ("x-hubspot-ratelimit-secondly", "10"),
                ("x-hubspot-ratelimit-secondly-remaining", "9"),
                ("x-hubspot-ratelimit-daily", "250000"),
                ("x-hubspot-ratelimit-daily-remaining", "249000"),
            ],
        );
        let hs = o.window("hubspot-interval").unwrap();
        assert_eq!(
            (hs.limit, hs.remaining, hs.window),
            (Some(100), Some(7), Some(Duration::from_secs(10)))
        );
        assert_eq!(o.window("hubspot-secondly").unwrap().remaining, Some(9));
        assert_eq!(o.window("hubspot-daily").unwrap().limit, Some(250_000));
        let (frac, w) = o.tightest().unwrap();
        assert_eq!(w.name, "hubspot-interval");
        assert!((frac - 0.07).abs() < 1e-9);
    }

    /// IETF RateLimit-Policy and RateLimit join by policy name; malformed items are skipped.
    #[test]
    fn ietf_structured_fields() {
        let o = obs(
            200,
            &[
                (
                    "RateLimit-Policy",
                    r#""burst";q=100;w=60, "daily";q=1000;w=86400, bad item, "nq";w=5"#,
                ),
                ("RateLimit", r#""burst";r=0;t=30, "daily";r=900;t=3600"#),
            ],
        );
        assert_eq!(o.windows.len(), 2);
        let b = o.window("burst").unwrap();
        assert_eq!(
            (b.limit, b.remaining, b.reset_after, b.window),
            (
                Some(100),
                Some(0),
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(60))
            )
        );
        assert_eq!(o.window("daily").unwrap().remaining, Some(900));
        assert_eq!(o.exhausted_reset(), Some(Duration::from_secs(30)));
        // a lone "default" state attaches to a lone policy of another name
        let o = obs(
            200,
            &[
                ("ratelimit-policy", "\"p\";q=10;w=1"),
                ("ratelimit", "\"default\";r=2;t=1"),
            ],
        );
        assert_eq!(o.windows.len(), 1);
        assert_eq!(o.windows[0].remaining, Some(2));
        // quoted commas do not split items
        assert_eq!(parse_ratelimit_policy(r#""a,b";q=5"#)[0].name, "a,b");
        assert!(parse_ratelimit("garbage;;=").is_empty());
    }

    /// The pre-07 draft's separate RateLimit-Limit/-Remaining/-Reset headers (limit may carry a policy).
    #[test]
    fn old_draft_headers() {
        let o = obs(
            200,
            &[
                ("RateLimit-Limit", "100, 100;w=10"),
                ("RateLimit-Remaining", "3"),
                ("RateLimit-Reset", "4"),
            ],
        );
        let w = o.window("ratelimit").unwrap();
        assert_eq!(
            (w.limit, w.remaining, w.reset_after),
            (Some(100), Some(3), Some(Duration::from_secs(4)))
        );
    }

    /// Sforce-Limit-Info with and without api-bursts, and malformed values.
    #[test]
    fn salesforce_table() {
        type Case = (&'static str, Vec<(&'static str, u64, u64)>);
        let cases: &[Case] = &[
            (
                "api-usage=10018/100000",
                vec![("api-usage", 100_000, 89_982)],
            ),
            (
                "api-usage=18/15000; api-bursts=1/750",
                vec![("api-usage", 15_000, 14_982), ("api-bursts", 750, 749)],
            ),
            ("api-usage=200/100", vec![("api-usage", 100, 0)]),
            ("api-usage=abc/100", vec![]),
            ("", vec![]),
        ];
        for (v, want) in cases {
            let got: Vec<(String, u64, u64)> = parse_sforce_limit_info(v)
                .into_iter()
                .map(|w| (w.name, w.limit.unwrap(), w.remaining.unwrap()))
                .collect();
            let want: Vec<(String, u64, u64)> = want
                .iter()
                .map(|(n, l, r)| (n.to_string(), *l, *r))
                .collect();
            assert_eq!(got, want, "{v:?}");
        }
        let o = obs(200, &[("Sforce-Limit-Info", "api-usage=99990/100000")]);
        assert_eq!(
            o.window("api-usage").unwrap().window,
            Some(Duration::from_secs(86_400))
        );
    }

    /// Zendesk and Shopify forms are understood too.
    #[test]
    fn zendesk_and_shopify() {
        let o = obs(
            200,
            &[
                ("X-Rate-Limit", "700"),
                ("X-Rate-Limit-Remaining", "699"),
                ("X-Shopify-Shop-Api-Call-Limit", "32/40"),
            ],
        );
        assert_eq!(o.window("x-rate-limit").unwrap().remaining, Some(699));
        assert_eq!(o.window("shopify-bucket").unwrap().remaining, Some(8));
    }

    /// The policy: 429 pauses (Retry-After first), exhaustion pauses until reset, low remaining slows, plenty does nothing.
    #[test]
    fn plan_table() {
        let p = AdaptivePolicy::default();
        let s = |x| Duration::from_secs(x);
        let cases: Vec<(Observation, Option<OverrideSpec>)> = vec![
            (
                obs(
                    429,
                    &[
                        ("Retry-After", "7"),
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", "60"),
                    ],
                ),
                Some(OverrideSpec {
                    pause_for: Some(s(7)),
                    rate_factor: Some(0.5),
                    ttl: s(37),
                }),
            ),
            (
                obs(
                    429,
                    &[
                        ("X-RateLimit-Limit", "10"),
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", "60"),
                    ],
                ),
                Some(OverrideSpec {
                    pause_for: Some(s(60)),
                    rate_factor: Some(0.5),
                    ttl: s(90),
                }),
            ),
            (
                obs(429, &[]),
                Some(OverrideSpec {
                    pause_for: Some(s(5)),
                    rate_factor: Some(0.5),
                    ttl: s(35),
                }),
            ),
            (
                obs(503, &[("Retry-After", "2")]),
                Some(OverrideSpec {
                    pause_for: Some(s(2)),
                    rate_factor: Some(0.5),
                    ttl: s(32),
                }),
            ),
            (obs(503, &[]), None),
            (
                obs(
                    200,
                    &[
                        ("X-RateLimit-Limit", "100"),
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", "9"),
                    ],
                ),
                Some(OverrideSpec::pause(s(9))),
            ),
            (
                obs(
                    200,
                    &[
                        ("x-hubspot-ratelimit-max", "100"),
                        ("x-hubspot-ratelimit-remaining", "3"),
                        ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
                    ],
                ),
                Some(OverrideSpec::reduce(0.5, s(10))),
            ),
            (
                obs(200, &[("Sforce-Limit-Info", "api-usage=10/100000")]),
                None,
            ),
            (obs(200, &[]), None),
        ];
        for (i, (o, want)) in cases.into_iter().enumerate() {
            assert_eq!(p.plan(&o), want, "case {i}: {o:?}");
        }
        let capped = AdaptivePolicy {
            max_pause: s(1),
            ..p
        };
        assert_eq!(
            capped
                .plan(&obs(429, &[("Retry-After", "100")]))
                .unwrap()
                .pause_for,
            Some(s(1))
        );
    }

    /// Full jitter stays within [0, min(cap, base·2^n)] and scales with the injected unit draw.
    #[test]
    fn full_jitter_table() {
        let ms = Duration::from_millis;
        let (base, cap) = (ms(100), ms(5_000));
        let cases: &[(u32, f64, Duration)] = &[
            (0, 0.0, ms(0)),
            (0, 0.5, ms(50)),
            (3, 0.5, ms(400)),
            (3, 1.0, ms(800)),
            (10, 0.25, ms(1_250)),
            (10, 2.0, ms(5_000)),
            (u32::MAX, 0.5, ms(2_500)),
            (1, f64::NAN, ms(0)),
        ];
        for &(attempt, unit, want) in cases {
            assert_eq!(
                full_jitter(attempt, base, cap, unit),
                want,
                "{attempt} {unit}"
            );
        }
        assert!(
            full_jitter(5, Duration::MAX, Duration::MAX, 0.5) > Duration::ZERO,
            "huge caps do not panic"
        );
        // a seeded rng gives values in range, and a hint wins with bounded jitter on top
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..20 {
            let d = full_jitter_with(attempt, base, cap, &mut rng);
            assert!(d <= cap.min(base * 2u32.saturating_pow(attempt.min(20))));
        }
        assert_eq!(retry_delay(4, Some(ms(30_000)), base, cap, 0.0), ms(30_000));
        assert_eq!(retry_delay(4, Some(ms(30_000)), base, cap, 1.0), ms(33_000));
        assert_eq!(retry_delay(4, Some(ms(100)), base, cap, 1.0), ms(200));
        assert_eq!(retry_delay(2, None, base, cap, 1.0), ms(400));
    }
}
