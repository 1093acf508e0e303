//! The in-process backend: GCRA state in a mutex-guarded map per provider.
//!
//! Used as the embedded default (one machine, SQLite) and as the Redis
//! fallback. Overrides live on an [`OverrideBoard`] that several limiter
//! instances of one process may share.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use syncbridge_core::{Clock, ConnectionId, Decision, RateLimiter};

use crate::config::{LimitsConfig, MAX_LEVELS, ProviderLimits, Scope};
use crate::gcra::{Gcra, decide_all};
use crate::types::{DenyReason, LimiterError, OverrideScope, OverrideSpec, Request, Verdict};
use crate::{Limiter, OVERRIDE_LEVEL};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn now_us(clock: &dyn Clock) -> i64 {
    clock.now().as_millis().saturating_mul(1000)
}

/// Overrides currently in force, shared by every limiter holding a clone.
#[derive(Clone, Default)]
pub struct OverrideBoard(Arc<Board>);

#[derive(Default)]
struct Board {
    live: AtomicUsize,
    map: Mutex<HashMap<String, ProviderOverrides>>,
}

#[derive(Default)]
struct ProviderOverrides {
    app: Option<Active>,
    conns: HashMap<String, Active>,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    pause_until_us: i64,
    factor: f64,
    expires_us: i64,
}

/// The overrides that apply to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Effective {
    pub pause_until_us: i64,
    pub app_factor: f64,
    pub conn_factor: f64,
}

impl Effective {
    pub const NONE: Effective = Effective {
        pause_until_us: 0,
        app_factor: 1.0,
        conn_factor: 1.0,
    };
}

impl fmt::Debug for OverrideBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverrideBoard")
            .field("live", &self.len())
            .finish()
    }
}

impl OverrideBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of overrides stored (some may have expired but not been swept).
    pub fn len(&self) -> usize {
        self.0.live.load(Ordering::Relaxed)
    }

    /// Whether no override is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes (merges) an override at `now_us`: a pause never shortens an
    /// existing one, a factor replaces the old one, the TTL only grows.
    pub fn apply(&self, provider: &str, scope: &OverrideScope, spec: &OverrideSpec, now_us: i64) {
        let ttl = spec.effective_ttl().as_micros().min(i64::MAX as u128) as i64;
        let fresh = Active {
            pause_until_us: spec
                .pause_for
                .map(|d| now_us.saturating_add(d.as_micros().min(i64::MAX as u128) as i64))
                .unwrap_or(0),
            factor: spec.clamped_factor().unwrap_or(1.0),
            expires_us: now_us.saturating_add(ttl),
        };
        let mut map = lock(&self.0.map);
        let p = map.entry(provider.to_owned()).or_default();
        let slot = match scope {
            OverrideScope::Provider => &mut p.app,
            OverrideScope::Connection(c) => {
                if !p.conns.contains_key(c.as_str()) {
                    p.conns.insert(c.as_str().to_owned(), fresh);
                    self.0.live.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                return merge(p.conns.get_mut(c.as_str()), fresh, spec, now_us);
            }
        };
        if slot.is_none() {
            self.0.live.fetch_add(1, Ordering::Relaxed);
            *slot = Some(fresh);
        } else {
            merge(slot.as_mut(), fresh, spec, now_us);
        }
    }

    /// Removes an override.
    pub fn clear(&self, provider: &str, scope: &OverrideScope) {
        let mut map = lock(&self.0.map);
        let Some(p) = map.get_mut(provider) else {
            return;
        };
        let removed = match scope {
            OverrideScope::Provider => p.app.take().is_some(),
            OverrideScope::Connection(c) => p.conns.remove(c.as_str()).is_some(),
        };
        if removed {
            self.0.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The overrides in force for `provider`/`connection` at `now_us`;
    /// expired entries are dropped on the way.
    pub(crate) fn effective(&self, provider: &str, connection: &str, now_us: i64) -> Effective {
        if self.0.live.load(Ordering::Relaxed) == 0 {
            return Effective::NONE;
        }
        let mut map = lock(&self.0.map);
        let Some(p) = map.get_mut(provider) else {
            return Effective::NONE;
        };
        let mut eff = Effective::NONE;
        if let Some(a) = p.app {
            if a.expires_us <= now_us {
                p.app = None;
                self.0.live.fetch_sub(1, Ordering::Relaxed);
            } else {
                eff.pause_until_us = a.pause_until_us;
                eff.app_factor = a.factor;
            }
        }
        if let Some(a) = p.conns.get(connection).copied() {
            if a.expires_us <= now_us {
                p.conns.remove(connection);
                self.0.live.fetch_sub(1, Ordering::Relaxed);
            } else {
                eff.pause_until_us = eff.pause_until_us.max(a.pause_until_us);
                eff.conn_factor = a.factor;
            }
        }
        eff
    }
}

fn merge(slot: Option<&mut Active>, fresh: Active, spec: &OverrideSpec, now_us: i64) {
    let Some(old) = slot else { return };
    if old.expires_us <= now_us {
        *old = fresh;
        return;
    }
    old.pause_until_us = old.pause_until_us.max(fresh.pause_until_us);
    if spec.clamped_factor().is_some() {
        old.factor = fresh.factor;
    }
    old.expires_us = old.expires_us.max(fresh.expires_us);
}

struct Provider {
    limits: ProviderLimits,
    has_endpoint_levels: bool,
    state: Mutex<ProviderState>,
}

struct ProviderState {
    /// Current (possibly scaled) parameters, one per level.
    gcras: Vec<Gcra>,
    /// TATs of app-scoped levels (indexed by level).
    app: Vec<i64>,
    conns: HashMap<String, ConnState>,
    sweep_at: usize,
}

struct ConnState {
    /// TATs of connection-scoped levels (indexed by level).
    tats: Vec<i64>,
    /// Endpoint class → TATs of endpoint-scoped levels (indexed by level).
    classes: HashMap<String, Vec<i64>>,
}

const MIN_SWEEP: usize = 4096;

/// The in-process multi-level limiter.
pub struct InProcessLimiter {
    clock: Arc<dyn Clock>,
    providers: HashMap<String, Provider>,
    board: OverrideBoard,
    scale_bits: AtomicU64,
}

impl fmt::Debug for InProcessLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessLimiter")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("scale", &self.scale())
            .field("overrides", &self.board)
            .finish()
    }
}

impl InProcessLimiter {
    /// A limiter for `config`, with its own override board.
    ///
    /// # Errors
    /// The configuration is invalid.
    pub fn new(config: &LimitsConfig, clock: Arc<dyn Clock>) -> Result<Self, LimiterError> {
        Self::with_board(config, clock, OverrideBoard::new())
    }

    /// A limiter sharing `board` with other in-process limiters (they all
    /// see each other's overrides).
    ///
    /// # Errors
    /// The configuration is invalid.
    pub fn with_board(
        config: &LimitsConfig,
        clock: Arc<dyn Clock>,
        board: OverrideBoard,
    ) -> Result<Self, LimiterError> {
        config.validate()?;
        let providers = config
            .providers
            .iter()
            .map(|(name, limits)| {
                let n = limits.levels.len();
                let state = ProviderState {
                    gcras: limits.levels.iter().map(|l| l.gcra()).collect(),
                    app: vec![0; n],
                    conns: HashMap::new(),
                    sweep_at: MIN_SWEEP,
                };
                (
                    name.clone(),
                    Provider {
                        limits: limits.clone(),
                        has_endpoint_levels: limits
                            .levels
                            .iter()
                            .any(|l| l.scope == Scope::Endpoint),
                        state: Mutex::new(state),
                    },
                )
            })
            .collect();
        Ok(InProcessLimiter {
            clock,
            providers,
            board,
            scale_bits: AtomicU64::new(1f64.to_bits()),
        })
    }

    /// The override board (clone it into another limiter to share overrides).
    pub fn board(&self) -> &OverrideBoard {
        &self.board
    }

    /// The clock decisions are made on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Current scale factor of every rate and burst (1 = as configured).
    pub fn scale(&self) -> f64 {
        f64::from_bits(self.scale_bits.load(Ordering::Relaxed))
    }

    /// Scales every level's rate and burst by `factor` in (0, 1] — how the
    /// Redis fallback takes its share of a global budget
    /// (`safety / instances`). Existing state is kept.
    pub fn set_scale(&self, factor: f64) {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor.min(1.0)
        } else {
            1.0
        };
        self.scale_bits.store(factor.to_bits(), Ordering::Relaxed);
        for p in self.providers.values() {
            let mut st = lock(&p.state);
            for (g, l) in st.gcras.iter_mut().zip(&p.limits.levels) {
                *g = l.gcra().scaled(factor);
            }
        }
    }

    /// Number of connections with state for `provider` (for tests/metrics).
    pub fn tracked_connections(&self, provider: &str) -> usize {
        self.providers
            .get(provider)
            .map_or(0, |p| lock(&p.state).conns.len())
    }

    /// Drops state that no longer matters (every TAT in the past). Runs by
    /// itself when the map doubles; call it from a timer if you prefer.
    pub fn evict_idle(&self) {
        let now = now_us(&*self.clock);
        for p in self.providers.values() {
            let mut st = lock(&p.state);
            sweep(&mut st, now);
        }
    }

    /// Decides `req` at the limiter's clock, synchronously.
    pub fn decide(&self, req: &Request<'_>) -> Verdict {
        self.decide_at(req, now_us(&*self.clock))
    }

    /// Decides `req` at `now_us` (µs on the limiter's clock).
    pub fn decide_at(&self, req: &Request<'_>, now_us: i64) -> Verdict {
        let Some(p) = self.providers.get(req.provider) else {
            return Verdict::Allowed;
        };
        let eff = self
            .board
            .effective(req.provider, req.connection.as_str(), now_us);
        if eff.pause_until_us > now_us {
            return Verdict::denied(
                OVERRIDE_LEVEL,
                eff.pause_until_us - now_us,
                DenyReason::Paused,
            );
        }
        let levels = &p.limits.levels;
        let mut guard = lock(&p.state);
        let st = &mut *guard;
        if st.conns.len() > st.sweep_at {
            sweep(st, now_us);
        }
        let key = req.connection.as_str();
        if !st.conns.contains_key(key) {
            st.conns.insert(
                key.to_owned(),
                ConnState {
                    tats: vec![0; levels.len()],
                    classes: HashMap::new(),
                },
            );
        }
        let Some(conn) = st.conns.get_mut(key) else {
            return Verdict::Allowed;
        };
        let class = match req.endpoint {
            Some(e)
                if p.has_endpoint_levels
                    && levels
                        .iter()
                        .any(|l| l.applies_to(Some(e)) && l.scope == Scope::Endpoint) =>
            {
                if !conn.classes.contains_key(e) {
                    conn.classes.insert(e.to_owned(), vec![0; levels.len()]);
                }
                conn.classes.get_mut(e)
            }
            _ => None,
        };

        let mut gs = [Gcra::from_parts(1, 1); MAX_LEVELS];
        let mut ts = [0i64; MAX_LEVELS];
        let mut idx = [0usize; MAX_LEVELS];
        let mut n = 0;
        for (i, l) in levels.iter().enumerate() {
            if !l.applies_to(req.endpoint) {
                continue;
            }
            let (tat, factor) = match l.scope {
                Scope::App => (st.app[i], eff.app_factor),
                Scope::Connection => (conn.tats[i], eff.conn_factor),
                Scope::Endpoint => match &class {
                    Some(c) => (c[i], eff.conn_factor),
                    None => continue,
                },
            };
            gs[n] = st.gcras[i].scaled(factor);
            ts[n] = tat;
            idx[n] = i;
            n += 1;
        }
        let out = decide_all(now_us, &gs[..n], &mut ts[..n], req.cost);
        if !out.allowed {
            let level = out.blocking.map_or("", |b| levels[idx[b]].name.as_str());
            return Verdict::denied(level, out.retry_after_us, DenyReason::Exhausted);
        }
        let mut class = class;
        for k in 0..n {
            let i = idx[k];
            match levels[i].scope {
                Scope::App => st.app[i] = ts[k],
                Scope::Connection => conn.tats[i] = ts[k],
                Scope::Endpoint => {
                    if let Some(c) = class.as_deref_mut() {
                        c[i] = ts[k];
                    }
                }
            }
        }
        Verdict::Allowed
    }

    /// Writes an override on the shared board.
    ///
    /// # Errors
    /// Unknown provider, or a provider override without app-scoped levels.
    pub fn set_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
        spec: &OverrideSpec,
    ) -> Result<(), LimiterError> {
        let p = self
            .providers
            .get(provider)
            .ok_or_else(|| LimiterError::UnknownProvider(provider.to_owned()))?;
        if *scope == OverrideScope::Provider && !p.limits.has_app_levels() {
            return Err(LimiterError::NoAppLevels(provider.to_owned()));
        }
        self.board
            .apply(provider, scope, spec, now_us(&*self.clock));
        Ok(())
    }

    /// Whether limits are configured for `provider`.
    pub fn knows(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }
}

fn sweep(st: &mut ProviderState, now: i64) {
    st.conns.retain(|_, c| {
        c.classes.retain(|_, t| t.iter().any(|&x| x > now));
        !c.classes.is_empty() || c.tats.iter().any(|&x| x > now)
    });
    st.sweep_at = (st.conns.len() * 2).max(MIN_SWEEP);
}

#[async_trait::async_trait]
impl RateLimiter for InProcessLimiter {
    async fn check(&self, provider: &str, connection: &ConnectionId, cost: u32) -> Decision {
        self.decide(&Request::new(provider, connection).cost(cost))
            .into()
    }

    async fn observe_response(
        &self,
        provider: &str,
        connection: &ConnectionId,
        app_wide: bool,
        status: u16,
        headers: &[(String, String)],
    ) {
        crate::observe_response(self, provider, connection, app_wide, status, headers).await;
    }
}

#[async_trait::async_trait]
impl Limiter for InProcessLimiter {
    async fn acquire(&self, req: &Request<'_>) -> Verdict {
        self.decide(req)
    }

    async fn apply_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
        spec: &OverrideSpec,
    ) -> Result<(), LimiterError> {
        self.set_override(provider, scope, spec)
    }

    async fn clear_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
    ) -> Result<(), LimiterError> {
        self.board.clear(provider, scope);
        Ok(())
    }

    fn now(&self) -> syncbridge_core::Timestamp {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use syncbridge_core::{ManualClock, Timestamp};

    use super::*;
    use crate::config::LimitLevel;

    fn conn(s: &str) -> ConnectionId {
        ConnectionId::parse(s).unwrap()
    }

    fn setup(levels: Vec<LimitLevel>) -> (Arc<ManualClock>, InProcessLimiter) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let cfg = LimitsConfig::default().with_provider("hub", ProviderLimits::new(levels));
        let l = InProcessLimiter::new(&cfg, clock.clone()).unwrap();
        (clock, l)
    }

    fn count_allowed(l: &InProcessLimiter, req: &Request<'_>, n: usize) -> usize {
        (0..n).filter(|_| l.decide(req).is_allowed()).count()
    }

    /// Connection levels are separate per connection; the app level is shared and names itself when it refuses.
    #[test]
    fn app_level_shared_connection_levels_separate() {
        let (_c, l) = setup(vec![
            LimitLevel::new("app", 5, Duration::from_secs(1), Scope::App),
            LimitLevel::new("conn", 3, Duration::from_secs(1), Scope::Connection),
        ]);
        let (a, b) = (conn("a"), conn("b"));
        assert_eq!(count_allowed(&l, &Request::new("hub", &a), 10), 3);
        let v = l.decide(&Request::new("hub", &a));
        assert_eq!(v.level(), Some("conn"));
        assert_eq!(count_allowed(&l, &Request::new("hub", &b), 10), 2);
        let v = l.decide(&Request::new("hub", &b));
        assert_eq!(v.level(), Some("app"));
        assert_eq!(v.retry_after(), Duration::from_millis(200));
    }

    /// Endpoint levels count only their class, per connection, and a denial there spends nothing elsewhere.
    #[test]
    fn endpoint_class_levels() {
        let (clock, l) = setup(vec![
            LimitLevel::new("conn", 10, Duration::from_secs(1), Scope::Connection),
            LimitLevel::new("search", 2, Duration::from_secs(1), Scope::Endpoint)
                .for_endpoint("search"),
            LimitLevel::new("per-class", 4, Duration::from_secs(1), Scope::Endpoint),
        ]);
        let a = conn("a");
        let s = Request::new("hub", &a).endpoint("search");
        assert_eq!(count_allowed(&l, &s, 5), 2);
        assert_eq!(l.decide(&s).level(), Some("search"));
        // "bulk" has only the unnamed per-class level (4) and the connection level
        let bulk = Request::new("hub", &a).endpoint("bulk");
        assert_eq!(count_allowed(&l, &bulk, 6), 4);
        assert_eq!(l.decide(&bulk).level(), Some("per-class"));
        // plain requests only see the connection level: 10 - 2 - 4 = 4 left
        assert_eq!(count_allowed(&l, &Request::new("hub", &a), 10), 4);
        clock.advance(Duration::from_secs(1));
        assert!(l.decide(&s).is_allowed());
    }

    /// Unknown providers are unlimited, and the core trait maps the verdict to a Decision.
    #[tokio::test]
    async fn core_trait_and_unknown_provider() {
        let (_c, l) = setup(vec![LimitLevel::new(
            "conn",
            1,
            Duration::from_secs(10),
            Scope::Connection,
        )]);
        let a = conn("a");
        assert_eq!(l.check("other", &a, 1000).await, Decision::Allowed);
        assert_eq!(l.check("hub", &a, 1).await, Decision::Allowed);
        assert_eq!(
            l.check("hub", &a, 1).await,
            Decision::Denied {
                level: "conn".into(),
                retry_after: Duration::from_secs(10)
            }
        );
        let v = l.decide(&Request::new("hub", &conn("z")).cost(2));
        assert!(matches!(
            v,
            Verdict::Denied {
                reason: DenyReason::CostTooHigh,
                retry_after: Duration::MAX,
                ..
            }
        ));
    }

    /// An override on a shared board pauses and slows every limiter holding the board, then expires.
    #[test]
    fn override_shared_between_instances() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let cfg = LimitsConfig::default().with_provider(
            "hub",
            ProviderLimits::new(vec![
                LimitLevel::new("app", 1000, Duration::from_secs(1), Scope::App),
                LimitLevel::new("conn", 10, Duration::from_secs(1), Scope::Connection),
            ]),
        );
        let l1 = InProcessLimiter::new(&cfg, clock.clone()).unwrap();
        let l2 = InProcessLimiter::with_board(&cfg, clock.clone(), l1.board().clone()).unwrap();
        let (a, b) = (conn("a"), conn("b"));
        l1.set_override(
            "hub",
            &OverrideScope::Connection(a.clone()),
            &OverrideSpec::pause(Duration::from_secs(2)),
        )
        .unwrap();
        let v = l2.decide(&Request::new("hub", &a));
        assert_eq!(v.level(), Some(OVERRIDE_LEVEL));
        assert_eq!(v.retry_after(), Duration::from_secs(2));
        assert!(
            l2.decide(&Request::new("hub", &b)).is_allowed(),
            "other connection unaffected"
        );
        clock.advance(Duration::from_secs(2));
        assert!(l2.decide(&Request::new("hub", &a)).is_allowed());
        assert_eq!(l1.board().len(), 0, "expired override swept");
        // reduced rate: 10/s burst 10 at factor 0.5 → burst 5
        l2.set_override(
            "hub",
            &OverrideScope::Connection(b.clone()),
            &OverrideSpec::reduce(0.5, Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(count_allowed(&l1, &Request::new("hub", &b), 20), 5);
        // provider pause stops everyone
        l1.set_override(
            "hub",
            &OverrideScope::Provider,
            &OverrideSpec::pause(Duration::from_secs(1)),
        )
        .unwrap();
        assert_eq!(
            l2.decide(&Request::new("hub", &a)).level(),
            Some(OVERRIDE_LEVEL)
        );
        l2.board().clear("hub", &OverrideScope::Provider);
        assert!(l2.decide(&Request::new("hub", &a)).is_allowed());
    }

    /// Observing an app-wide window's headers: exhaustion on a 200 pauses every connection until the reset, plenty left changes nothing.
    #[tokio::test]
    async fn observe_app_wide_headers() {
        let (clock, l) = setup(vec![
            LimitLevel::new("app", 95, Duration::from_secs(10), Scope::App).with_burst(5),
        ]);
        let policy = crate::AdaptivePolicy::default();
        let fine = [
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", "50"),
            ("x-ratelimit-reset", "4"),
        ];
        let seen = l
            .observe("hub", &OverrideScope::Provider, 200, &fine, &policy)
            .await
            .unwrap();
        assert_eq!(seen.applied, None);
        let spent = [
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "4"),
        ];
        let seen = l
            .observe("hub", &OverrideScope::Provider, 200, &spent, &policy)
            .await
            .unwrap();
        assert_eq!(
            seen.applied,
            Some(OverrideSpec::pause(Duration::from_secs(4)))
        );
        let v = l.decide(&Request::new("hub", &conn("any")));
        assert_eq!(
            (v.level(), v.retry_after()),
            (Some(OVERRIDE_LEVEL), Duration::from_secs(4))
        );
        clock.advance(Duration::from_secs(4));
        assert!(l.decide(&Request::new("hub", &conn("any"))).is_allowed());
    }

    /// A provider override needs an app level, and unknown providers are reported.
    #[test]
    fn override_errors() {
        let (_c, l) = setup(vec![LimitLevel::new(
            "conn",
            1,
            Duration::from_secs(1),
            Scope::Connection,
        )]);
        let spec = OverrideSpec::pause(Duration::from_secs(1));
        assert!(matches!(
            l.set_override("hub", &OverrideScope::Provider, &spec),
            Err(LimiterError::NoAppLevels(_))
        ));
        assert!(matches!(
            l.set_override("nope", &OverrideScope::Provider, &spec),
            Err(LimiterError::UnknownProvider(_))
        ));
    }

    /// Scaling (the fallback's share) shrinks burst and rate; idle state is evicted.
    #[test]
    fn scale_and_evict() {
        let (clock, l) = setup(vec![LimitLevel::new(
            "conn",
            100,
            Duration::from_secs(10),
            Scope::Connection,
        )]);
        l.set_scale(0.5 / 4.0);
        let a = conn("a");
        assert_eq!(count_allowed(&l, &Request::new("hub", &a), 100), 12);
        let v = l.decide(&Request::new("hub", &a));
        assert_eq!(v.retry_after(), Duration::from_millis(800));
        assert_eq!(l.tracked_connections("hub"), 1);
        clock.advance(Duration::from_secs(20));
        l.evict_idle();
        assert_eq!(l.tracked_connections("hub"), 0);
    }

    /// Over a simulated minute at a saturating request rate, the allowed count matches burst + rate·t.
    #[test]
    fn saturating_load_matches_rate() {
        let (clock, l) = setup(vec![
            LimitLevel::new("conn", 95, Duration::from_secs(10), Scope::Connection).with_burst(5),
        ]);
        let a = conn("a");
        let mut allowed = 0;
        for _ in 0..60_000 {
            if l.decide(&Request::new("hub", &a)).is_allowed() {
                allowed += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        // 5 + 60 s × 9.5/s = 575 (interval rounds up to 105264 µs → 574 or 575)
        assert!((574..=575).contains(&allowed), "{allowed}");
    }
}
