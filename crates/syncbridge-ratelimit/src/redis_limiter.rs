//! The Redis backend: one Lua script ([`DECIDE_LUA`]) evaluates every level
//! on the server clock (`TIME`), writes only if all pass, sets each key's TTL
//! to when its state stops mattering, and answers allowed / blocking level /
//! retry-after in one round trip. Works on Azure Cache for Redis (no modules).
//!
//! # Key layout and Redis Cluster
//!
//! All keys one script call touches must hash to one slot, and an app-wide
//! key cannot share a slot with every connection's keys. Two layouts:
//!
//! - [`KeyLayout::PerConnection`] (default, cluster-safe and scales out):
//!   connection and endpoint levels and the connection's override live under
//!   the hash tag `{<provider>:<connection>}`; app levels and the provider
//!   override under `{<provider>}`. A request makes the connection call
//!   first; only if it passes *and* the provider has app levels does a second
//!   call check the app levels. If that one refuses, the first call's spend
//!   is refunded (a `refund` run of the same script). So all-or-nothing holds
//!   except for the microseconds between the two calls, and a provider without
//!   app levels costs one round trip.
//! - [`KeyLayout::PerProvider`]: every key of a provider under `{<provider>}`:
//!   strictly atomic and always one round trip, but a provider's whole traffic
//!   lands on one shard. Fine for a non-clustered Redis (Azure Basic/Standard,
//!   Premium without clustering) or modest traffic.
//!
//! Keys: `<prefix>:{<provider>:<connection>}/<level>[/<endpoint-class>]`,
//! `<prefix>:{<provider>}/<level>`, overrides end in `/!override`
//! (PerProvider: `<prefix>:{<provider>}/<connection>/<level>…`).
//!
//! # When Redis fails
//!
//! Every call runs under a timeout and a [`CircuitBreaker`]. While the
//! breaker is open, decisions come from an in-process limiter holding this
//! instance's share of each budget, `safety / last known instance count`
//! (see [`RedisLimiter::heartbeat`]); every such decision is counted
//! ([`LimiterStats::fallback_decisions`]). Requests marked
//! [`Request::fail_closed`] are refused instead. A half-open probe
//! reconnects; on success the breaker closes and Redis is used again.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError,
    ServerErrorKind,
};
use syncbridge_core::{Clock, ConnectionId, Decision, RateLimiter, Timestamp};

use crate::auth::{RedisAuth, RedisCredentials};
use crate::breaker::{Admission, BreakerConfig, CircuitBreaker};
use crate::config::{LimitsConfig, ProviderLimits, Scope};
use crate::inprocess::{InProcessLimiter, OverrideBoard};
use crate::types::{DenyReason, LimiterError, OverrideScope, OverrideSpec, Request, Verdict};
use crate::{Limiter, OVERRIDE_LEVEL, UNAVAILABLE_LEVEL};

/// The decision script.
pub const DECIDE_LUA: &str = include_str!("lua/decide.lua");
/// The override-writing script.
pub const OVERRIDE_LUA: &str = include_str!("lua/override.lua");
/// The instance heartbeat script.
pub const HEARTBEAT_LUA: &str = include_str!("lua/heartbeat.lua");

/// Where a provider's keys live; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyLayout {
    /// Connection keys tagged per connection, app keys per provider (two calls when app levels exist).
    #[default]
    PerConnection,
    /// Every key of a provider in one slot (one atomic call).
    PerProvider,
}

/// Settings of a [`RedisLimiter`].
#[derive(Debug, Clone)]
pub struct RedisLimiterConfig {
    /// `redis://host:port/db`, or `rediss://` for TLS (Azure Managed Redis:
    /// `rediss://<host>:10000`). A user name and password in the URL are used
    /// unless [`Self::credentials`] is set.
    pub url: String,
    /// Rotating credentials (Microsoft Entra tokens); `None` = the URL's.
    pub credentials: Option<Arc<dyn RedisCredentials>>,
    /// PEM root certificates to trust for `rediss://` instead of the
    /// system's and the bundled public roots (a private CA, the tests'
    /// self-signed one).
    pub tls_roots_pem: Option<Vec<u8>>,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Key layout.
    pub layout: KeyLayout,
    /// Limit on one script call (including the wait for a connection).
    pub call_timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Circuit breaker around Redis.
    pub breaker: BreakerConfig,
    /// Share of `limit / instances` the fallback takes (0.5 = half).
    pub fallback_safety: f64,
    /// This instance's id in the heartbeat set.
    pub instance_id: String,
    /// Instances not seen for this long are no longer counted.
    pub heartbeat_window: Duration,
}

impl RedisLimiterConfig {
    /// Defaults for `url`: prefix `rl`, per-connection layout, 250 ms call
    /// and connect timeouts, breaker 3 failures / 2 s, safety 0.5.
    pub fn new(url: impl Into<String>) -> Self {
        RedisLimiterConfig {
            url: url.into(),
            credentials: None,
            tls_roots_pem: None,
            key_prefix: "rl".into(),
            layout: KeyLayout::PerConnection,
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(250),
            breaker: BreakerConfig::default(),
            fallback_safety: 0.5,
            instance_id: format!("{:016x}", rand::random::<u64>()),
            heartbeat_window: Duration::from_secs(30),
        }
    }
}

/// Counters, readable by tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Decisions answered by Redis.
    pub redis_decisions: u64,
    /// Decisions answered by the fallback (or refused fail-closed) because Redis was unavailable.
    pub fallback_decisions: u64,
    /// Redis calls that failed or timed out.
    pub redis_errors: u64,
    /// Connection-slot spends given back because the app slot refused.
    pub refunds: u64,
}

#[derive(Default)]
struct Counters {
    redis: AtomicU64,
    fallback: AtomicU64,
    errors: AtomicU64,
    refunds: AtomicU64,
}

struct LuaScript {
    src: &'static str,
    sha: String,
}

impl LuaScript {
    fn new(src: &'static str) -> Self {
        LuaScript {
            src,
            sha: redis::Script::new(src).get_hash().to_owned(),
        }
    }
}

struct Level {
    name: String,
    scope: Scope,
    emission_us: i64,
    burst: u64,
    level: crate::config::LimitLevel,
}

struct Provider {
    levels: Vec<Level>,
    has_app: bool,
}

/// The Redis-backed multi-level limiter.
pub struct RedisLimiter {
    cfg: RedisLimiterConfig,
    info: ConnectionInfo,
    conn: Mutex<Option<Live>>,
    connect_lock: tokio::sync::Mutex<()>,
    providers: HashMap<String, Provider>,
    breaker: CircuitBreaker,
    fallback: InProcessLimiter,
    instances: AtomicU32,
    counters: Counters,
    decide: LuaScript,
    set_override: LuaScript,
    heartbeat: LuaScript,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.cfg.key_prefix)
            .field("layout", &self.cfg.layout)
            .field("breaker", &self.breaker.state())
            .field("instances", &self.instances.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

/// The open connection and the credentials it is authenticated with.
#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    auth: Option<RedisAuth>,
}

enum CallError {
    Redis(RedisError),
    Timeout,
}

impl From<RedisError> for CallError {
    fn from(e: RedisError) -> Self {
        CallError::Redis(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Redis(e) => write!(f, "{e}"),
            CallError::Timeout => f.write_str("timed out"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisLimiter {
    /// A limiter for `limits` on the Redis at `cfg.url`. Connects lazily:
    /// a Redis that is down at start only means fallback decisions.
    ///
    /// # Errors
    /// Invalid limits or URL.
    pub fn new(
        limits: &LimitsConfig,
        cfg: RedisLimiterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimiterError> {
        limits.validate()?;
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| LimiterError::Redis(e.to_string()))?;
        install_tls_provider();
        let providers = limits
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), compile(p)))
            .collect();
        let fallback = InProcessLimiter::with_board(limits, clock.clone(), OverrideBoard::new())?;
        let me = RedisLimiter {
            breaker: CircuitBreaker::new(cfg.breaker, clock),
            cfg,
            info,
            conn: Mutex::new(None),
            connect_lock: tokio::sync::Mutex::new(()),
            providers,
            fallback,
            instances: AtomicU32::new(1),
            counters: Counters::default(),
            decide: LuaScript::new(DECIDE_LUA),
            set_override: LuaScript::new(OVERRIDE_LUA),
            heartbeat: LuaScript::new(HEARTBEAT_LUA),
        };
        me.rescale_fallback();
        Ok(me)
    }

    /// The counters so far.
    pub fn stats(&self) -> LimiterStats {
        LimiterStats {
            redis_decisions: self.counters.redis.load(Ordering::Relaxed),
            fallback_decisions: self.counters.fallback.load(Ordering::Relaxed),
            redis_errors: self.counters.errors.load(Ordering::Relaxed),
            refunds: self.counters.refunds.load(Ordering::Relaxed),
        }
    }

    /// The breaker (state is readable for health checks).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The in-process limiter used while Redis is unavailable.
    pub fn fallback(&self) -> &InProcessLimiter {
        &self.fallback
    }

    /// The last known number of limiter instances sharing the budgets.
    pub fn instance_count(&self) -> u32 {
        self.instances.load(Ordering::Relaxed)
    }

    /// Sets the instance count (e.g. the platform's configured maximum
    /// scale-out) and resizes the fallback to `safety / n` of each budget.
    pub fn set_instance_count(&self, n: u32) {
        self.instances.store(n.max(1), Ordering::Relaxed);
        self.rescale_fallback();
    }

    fn rescale_fallback(&self) {
        let n = f64::from(self.instance_count());
        self.fallback.set_scale(self.cfg.fallback_safety / n);
    }

    /// Registers this instance in the shared heartbeat set and learns how
    /// many instances were seen within `heartbeat_window`; the count sizes
    /// the fallback. Call it every few seconds (see [`Self::spawn_heartbeat`]).
    /// While the breaker is open the last known count is kept.
    ///
    /// # Errors
    /// Redis failed (the breaker notes it).
    pub async fn heartbeat(&self) -> Result<u32, LimiterError> {
        if self.breaker.admit() == Admission::Reject {
            return Ok(self.instance_count());
        }
        let keys = [format!("{}:instances", self.cfg.key_prefix)];
        let args = [
            self.cfg.instance_id.clone(),
            self.cfg.heartbeat_window.as_millis().to_string(),
        ];
        match self.call::<i64>(&self.heartbeat, &keys, &args).await {
            Ok(n) => {
                self.breaker.on_success();
                let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
                if n != self.instance_count() {
                    self.set_instance_count(n);
                }
                Ok(n)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Runs [`Self::heartbeat`] every `every` until the returned handle is aborted.
    pub fn spawn_heartbeat(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if let Err(e) = me.heartbeat().await {
                    tracing::debug!(error = %e, "rate-limit heartbeat failed");
                }
            }
        })
    }

    /// The shared connection, authenticated with the current credentials:
    /// a live connection whose credentials changed is re-authenticated with
    /// `AUTH` (as Entra requires before the old token expires); a new one
    /// logs in with them.
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let auth = match &self.cfg.credentials {
            Some(c) => Some(c.current().await.map_err(|e| {
                RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "credentials",
                    e.to_string(),
                ))
            })?),
            None => None,
        };
        if let Some(live) = lock(&self.conn).clone()
            && live.auth == auth
        {
            return Ok(live.conn);
        }
        let _g = self.connect_lock.lock().await;
        let current = lock(&self.conn).clone();
        if let Some(mut live) = current {
            if live.auth == auth {
                return Ok(live.conn);
            }
            if let Some(a) = &auth {
                let reauth = redis::cmd("AUTH")
                    .arg(&a.username)
                    .arg(&a.password)
                    .query_async::<()>(&mut live.conn)
                    .await;
                if let Err(e) = reauth {
                    // A connection that refused the new pair is not reused.
                    *lock(&self.conn) = None;
                    return Err(e);
                }
                *lock(&self.conn) = Some(Live {
                    conn: live.conn.clone(),
                    auth,
                });
                return Ok(live.conn);
            }
        }
        let c = self
            .client(auth.as_ref())?
            .get_multiplexed_async_connection_with_config(
                &AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.cfg.connect_timeout))
                    .set_response_timeout(Some(self.cfg.call_timeout)),
            )
            .await?;
        *lock(&self.conn) = Some(Live {
            conn: c.clone(),
            auth,
        });
        Ok(c)
    }

    /// A client for the configured address with `auth` (else the URL's own
    /// user and password), trusting [`RedisLimiterConfig::tls_roots_pem`]
    /// when given.
    fn client(&self, auth: Option<&RedisAuth>) -> Result<redis::Client, RedisError> {
        let mut info = self.info.clone();
        if let Some(a) = auth {
            let settings = info
                .redis_settings()
                .clone()
                .set_username(&a.username)
                .set_password(&a.password);
            info = info.set_redis_settings(settings);
        }
        match &self.cfg.tls_roots_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(info),
        }
    }

    /// EVALSHA, falling back to EVAL when the server has no copy of the
    /// script (restart, failover, SCRIPT FLUSH); EVAL also caches it again.
    async fn call<T: redis::FromRedisValue>(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<T, CallError> {
        let fut = async {
            let mut conn = self.connection().await?;
            let build = |verb: &str, body: &str| {
                let mut c = redis::cmd(verb);
                c.arg(body).arg(keys.len()).arg(keys).arg(args);
                c
            };
            match build("EVALSHA", &script.sha)
                .query_async::<T>(&mut conn)
                .await
            {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    Ok(build("EVAL", script.src)
                        .query_async::<T>(&mut conn)
                        .await?)
                }
                r => Ok(r?),
            }
        };
        match tokio::time::timeout(self.cfg.call_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Notes a failed call: breaker, counter, and a dropped connection
    /// unless the server itself answered with an error.
    fn failed(&self, e: CallError) -> LimiterError {
        self.breaker.on_failure();
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let server_side =
            matches!(&e, CallError::Redis(r) if matches!(r.kind(), ErrorKind::Server(_)));
        if !server_side {
            *lock(&self.conn) = None;
        }
        tracing::debug!(error = %e, "rate-limit redis call failed");
        LimiterError::Redis(e.to_string())
    }

    fn tag_conn(&self, provider: &str, conn: &ConnectionId) -> String {
        match self.cfg.layout {
            KeyLayout::PerConnection => format!("{}:{{{provider}:{conn}}}", self.cfg.key_prefix),
            KeyLayout::PerProvider => format!("{}:{{{provider}}}/{conn}", self.cfg.key_prefix),
        }
    }

    fn tag_app(&self, provider: &str) -> String {
        format!("{}:{{{provider}}}", self.cfg.key_prefix)
    }

    /// The Redis key of `level`'s state for `req` (for tests and tooling).
    pub fn level_key(&self, req: &Request<'_>, level: &str) -> Option<String> {
        let p = self.providers.get(req.provider)?;
        let l = p.levels.iter().find(|l| l.name == level)?;
        Some(match l.scope {
            Scope::App => format!("{}/{}", self.tag_app(req.provider), l.name),
            Scope::Connection => {
                format!("{}/{}", self.tag_conn(req.provider, req.connection), l.name)
            }
            Scope::Endpoint => format!(
                "{}/{}/{}",
                self.tag_conn(req.provider, req.connection),
                l.name,
                req.endpoint?
            ),
        })
    }

    /// The Redis key of an override (for tests and tooling).
    pub fn override_key(&self, provider: &str, scope: &OverrideScope) -> String {
        match scope {
            OverrideScope::Provider => format!("{}/!override", self.tag_app(provider)),
            OverrideScope::Connection(c) => format!("{}/!override", self.tag_conn(provider, c)),
        }
    }

    /// One script call over `levels` (indices into `p.levels`).
    async fn run(
        &self,
        mode: &str,
        p: &Provider,
        req: &Request<'_>,
        levels: &[usize],
        overrides: &[String],
    ) -> Result<Reply, CallError> {
        let mut keys = Vec::with_capacity(overrides.len() + levels.len());
        keys.extend(overrides.iter().cloned());
        let mut args = Vec::with_capacity(3 + 3 * levels.len());
        args.push(mode.to_owned());
        args.push(req.cost.to_string());
        args.push(overrides.len().to_string());
        for &i in levels {
            let l = &p.levels[i];
            keys.push(match l.scope {
                Scope::App => format!("{}/{}", self.tag_app(req.provider), l.name),
                Scope::Connection => {
                    format!("{}/{}", self.tag_conn(req.provider, req.connection), l.name)
                }
                Scope::Endpoint => format!(
                    "{}/{}/{}",
                    self.tag_conn(req.provider, req.connection),
                    l.name,
                    req.endpoint.unwrap_or_default()
                ),
            });
            args.push(l.emission_us.to_string());
            args.push(l.burst.to_string());
            args.push(if l.scope == Scope::App { "a" } else { "c" }.to_owned());
        }
        let r: Vec<i64> = self.call(&self.decide, &keys, &args).await?;
        Ok(Reply {
            allowed: r.first() == Some(&1),
            level: r.get(1).copied().unwrap_or(0),
            retry_us: r.get(2).copied().unwrap_or(0),
        })
    }

    fn verdict(p: &Provider, levels: &[usize], r: &Reply) -> Verdict {
        if r.allowed {
            return Verdict::Allowed;
        }
        let retry = if r.retry_us < 0 {
            crate::gcra::NEVER
        } else {
            r.retry_us
        };
        if r.level < 0 {
            return Verdict::denied(OVERRIDE_LEVEL, retry, DenyReason::Paused);
        }
        let name = usize::try_from(r.level - 1)
            .ok()
            .and_then(|k| levels.get(k))
            .map_or("", |&i| p.levels[i].name.as_str());
        Verdict::denied(name, retry, DenyReason::Exhausted)
    }

    async fn decide_redis(&self, p: &Provider, req: &Request<'_>) -> Result<Verdict, CallError> {
        let applies = |scopes: &[Scope]| -> Vec<usize> {
            p.levels
                .iter()
                .enumerate()
                .filter(|(_, l)| scopes.contains(&l.scope) && l.level.applies_to(req.endpoint))
                .map(|(i, _)| i)
                .collect()
        };
        let conn_ovr = self.override_key(
            req.provider,
            &OverrideScope::Connection(req.connection.clone()),
        );
        let app_ovr = self.override_key(req.provider, &OverrideScope::Provider);
        match self.cfg.layout {
            KeyLayout::PerProvider => {
                let levels = applies(&[Scope::App, Scope::Connection, Scope::Endpoint]);
                let ovr = if p.has_app {
                    vec![app_ovr, conn_ovr]
                } else {
                    vec![conn_ovr]
                };
                let r = self.run("take", p, req, &levels, &ovr).await?;
                Ok(Self::verdict(p, &levels, &r))
            }
            KeyLayout::PerConnection => {
                let conn_levels = applies(&[Scope::Connection, Scope::Endpoint]);
                let r = self.run("take", p, req, &conn_levels, &[conn_ovr]).await?;
                if !r.allowed || !p.has_app {
                    return Ok(Self::verdict(p, &conn_levels, &r));
                }
                let app_levels = applies(&[Scope::App]);
                let r2 = self.run("take", p, req, &app_levels, &[app_ovr]).await?;
                if !r2.allowed && !conn_levels.is_empty() {
                    self.run("refund", p, req, &conn_levels, &[]).await?;
                    self.counters.refunds.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Self::verdict(p, &app_levels, &r2))
            }
        }
    }

    fn fallback_decide(&self, req: &Request<'_>) -> Verdict {
        self.counters.fallback.fetch_add(1, Ordering::Relaxed);
        if req.fail_closed {
            let now = self.fallback.clock().now();
            let wait = self
                .breaker
                .open_until()
                .map_or(self.cfg.breaker.open_for, |t| t.since(now))
                .max(Duration::from_millis(1));
            return Verdict::Denied {
                level: UNAVAILABLE_LEVEL.to_owned(),
                retry_after: wait,
                reason: DenyReason::Unavailable,
            };
        }
        self.fallback.decide(req)
    }

    /// Decides `req`: through Redis when the breaker allows, else locally.
    pub async fn decide(&self, req: &Request<'_>) -> Verdict {
        let Some(p) = self.providers.get(req.provider) else {
            return Verdict::Allowed;
        };
        if self.breaker.admit() == Admission::Reject {
            return self.fallback_decide(req);
        }
        match self.decide_redis(p, req).await {
            Ok(v) => {
                self.breaker.on_success();
                self.counters.redis.fetch_add(1, Ordering::Relaxed);
                v
            }
            Err(e) => {
                self.failed(e);
                self.fallback_decide(req)
            }
        }
    }

    /// Writes an override to Redis (shared by every instance) and to the
    /// local fallback's board.
    ///
    /// # Errors
    /// Unknown provider, a provider override without app levels, or Redis
    /// unavailable (the local copy is still written).
    pub async fn write_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
        spec: &OverrideSpec,
    ) -> Result<(), LimiterError> {
        self.fallback.set_override(provider, scope, spec)?;
        if self.breaker.admit() == Admission::Reject {
            return Err(LimiterError::Redis("circuit open".into()));
        }
        let keys = [self.override_key(provider, scope)];
        let args = [
            spec.pause_for
                .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
                .to_string(),
            spec.clamped_factor()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            spec.effective_ttl().as_millis().max(1).to_string(),
            match scope {
                OverrideScope::Provider => "a",
                OverrideScope::Connection(_) => "c",
            }
            .to_owned(),
        ];
        match self.call::<i64>(&self.set_override, &keys, &args).await {
            Ok(_) => {
                self.breaker.on_success();
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Removes an override everywhere.
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn remove_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
    ) -> Result<(), LimiterError> {
        self.fallback.board().clear(provider, scope);
        let key = self.override_key(provider, scope);
        let fut = async {
            let mut c = self.connection().await?;
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut c)
                .await?;
            Ok::<_, CallError>(())
        };
        match tokio::time::timeout(self.cfg.call_timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(self.failed(CallError::Timeout)),
        }
    }
}

struct Reply {
    allowed: bool,
    level: i64,
    retry_us: i64,
}

fn compile(p: &ProviderLimits) -> Provider {
    Provider {
        has_app: p.has_app_levels(),
        levels: p
            .levels
            .iter()
            .map(|l| {
                let g = l.gcra();
                Level {
                    name: l.name.clone(),
                    scope: l.scope,
                    emission_us: g.emission_us(),
                    burst: g.burst(),
                    level: l.clone(),
                }
            })
            .collect(),
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, provider: &str, connection: &ConnectionId, cost: u32) -> Decision {
        self.decide(&Request::new(provider, connection).cost(cost))
            .await
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
impl Limiter for RedisLimiter {
    async fn acquire(&self, req: &Request<'_>) -> Verdict {
        self.decide(req).await
    }

    async fn apply_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
        spec: &OverrideSpec,
    ) -> Result<(), LimiterError> {
        self.write_override(provider, scope, spec).await
    }

    async fn clear_override(
        &self,
        provider: &str,
        scope: &OverrideScope,
    ) -> Result<(), LimiterError> {
        self.remove_override(provider, scope).await
    }

    fn now(&self) -> Timestamp {
        self.fallback.clock().now()
    }
}

/// rustls needs one process-wide crypto provider; the workspace compiles two
/// (ring, and aws-lc-rs through the Azure SDK), so none is picked by default.
/// Installing one that is already installed is a no-op.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
