//! The Redis limiter against a real `redis-server` started by each test on a
//! free port (and killed on drop). A missing `redis-server` fails the test.
//!
//! Redis decides on its own `TIME`, so periods are short where time must pass
//! and assertions are on counts, with wall-clock time used only for bounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use syncbridge_core::{ConnectionId, Decision, ManualClock, RateLimiter, SystemClock, Timestamp};
use syncbridge_ratelimit::redis_server::RedisServer;
use syncbridge_ratelimit::{
    AdaptivePolicy, BreakerConfig, DenyReason, InProcessLimiter, KeyLayout, LimitLevel, Limiter,
    LimitsConfig, OVERRIDE_LEVEL, OverrideScope, OverrideSpec, ProviderLimits, RedisLimiter,
    RedisLimiterConfig, Request, Scope, UNAVAILABLE_LEVEL, Verdict,
};

fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot run the Redis rate-limit tests: {e}"))
}

fn conn(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

fn config(levels: Vec<LimitLevel>) -> LimitsConfig {
    LimitsConfig::default().with_provider("hub", ProviderLimits::new(levels))
}

fn limiter(srv: &RedisServer, levels: Vec<LimitLevel>, layout: KeyLayout) -> RedisLimiter {
    let mut cfg = RedisLimiterConfig::new(srv.url());
    cfg.layout = layout;
    cfg.call_timeout = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(2);
    RedisLimiter::new(&config(levels), cfg, Arc::new(SystemClock)).unwrap()
}

async fn raw(srv: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(srv.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn pttl(c: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(c).await.unwrap()
}

async fn get(c: &mut MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(c).await.unwrap()
}

/// Decides until the first denial (at most 1000 tries); returns (allowed count, denial).
async fn until_denied(l: &RedisLimiter, req: &Request<'_>) -> (usize, Verdict) {
    for n in 0..1000 {
        let v = l.decide(req).await;
        if !v.is_allowed() {
            return (n, v);
        }
    }
    panic!("never denied");
}

/// A burst of `burst` passes back to back, the next is denied by the named level with about one interval to wait.
#[tokio::test]
async fn burst_then_denied() {
    let srv = server();
    let l = limiter(
        &srv,
        vec![
            LimitLevel::new("connection", 10, Duration::from_secs(10), Scope::Connection)
                .with_burst(3),
        ],
        KeyLayout::PerConnection,
    );
    let a = conn("a");
    let (n, v) = until_denied(&l, &Request::new("hub", &a)).await;
    assert_eq!(n, 3);
    assert_eq!(v.level(), Some("connection"));
    let wait = v.retry_after();
    assert!(
        wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    // another connection has its own budget
    assert_eq!(
        until_denied(&l, &Request::new("hub", &conn("b"))).await.0,
        3
    );
    let s = l.stats();
    assert_eq!((s.fallback_decisions, s.redis_errors), (0, 0));
    assert_eq!(s.redis_decisions, 8);
}

/// A spent 200 ms bucket refills: after a pause the full burst passes again, and never more than burst + elapsed·rate.
#[tokio::test]
async fn refill_after_short_period() {
    let srv = server();
    let l = limiter(
        &srv,
        vec![LimitLevel::new(
            "fast",
            5,
            Duration::from_millis(200),
            Scope::Connection,
        )],
        KeyLayout::PerConnection,
    );
    let a = conn("a");
    let req = Request::new("hub", &a);
    for round in 0..3 {
        let t0 = Instant::now();
        let (n, v) = until_denied(&l, &req).await;
        let elapsed = t0.elapsed();
        let bound = 5 + (elapsed.as_micros() / 40_000) as usize + 1;
        assert!(
            n >= 5 && n <= bound,
            "round {round}: {n} allowed in {elapsed:?}"
        );
        assert_eq!(v.level(), Some("fast"));
        assert!(v.retry_after() <= Duration::from_millis(40));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Multi-level: endpoint, daily and connection levels are checked together, the blocker is named, and a denial writes nothing.
#[tokio::test]
async fn multi_level_denial_writes_nothing() {
    let srv = server();
    let l = limiter(
        &srv,
        vec![
            LimitLevel::new("connection", 100, Duration::from_secs(1), Scope::Connection),
            LimitLevel::new("daily", 5, Duration::from_secs(86_400), Scope::Connection),
            LimitLevel::new("search", 1, Duration::from_secs(10), Scope::Endpoint)
                .for_endpoint("search"),
        ],
        KeyLayout::PerConnection,
    );
    let a = conn("a");
    let mut r = raw(&srv).await;
    let plain = Request::new("hub", &a);
    let search = Request::new("hub", &a).endpoint("search");
    let daily_key = l.level_key(&plain, "daily").unwrap();
    let conn_key = l.level_key(&plain, "connection").unwrap();
    assert!(daily_key.contains("{hub:a}"), "{daily_key}");

    assert!(l.decide(&search).await.is_allowed());
    let (daily0, conn0) = (get(&mut r, &daily_key).await, get(&mut r, &conn_key).await);
    let v = l.decide(&search).await;
    assert_eq!(v.level(), Some("search"));
    assert!(v.retry_after() > Duration::from_secs(9));
    assert_eq!(
        get(&mut r, &daily_key).await,
        daily0,
        "denial left daily untouched"
    );
    assert_eq!(
        get(&mut r, &conn_key).await,
        conn0,
        "denial left connection untouched"
    );

    for _ in 0..4 {
        assert!(l.decide(&plain).await.is_allowed());
    }
    let v = l.decide(&plain).await;
    assert_eq!(v.level(), Some("daily"));
    assert!(v.retry_after() > Duration::from_secs(17_000), "{v:?}");
    assert!(
        v.should_park(Duration::from_secs(30)),
        "a spent daily quota parks the job"
    );
    // a cost above a level's burst can never pass
    let v = l.decide(&Request::new("hub", &conn("b")).cost(6)).await;
    assert!(
        matches!(
            v,
            Verdict::Denied {
                reason: DenyReason::CostTooHigh,
                retry_after: Duration::MAX,
                ..
            }
        ),
        "{v:?}"
    );
}

/// Per-connection layout: an app-level denial names the app level and refunds the connection spend.
#[tokio::test]
async fn app_level_denial_refunds_connection_slot() {
    let srv = server();
    let levels = vec![
        LimitLevel::new("app", 2, Duration::from_secs(10), Scope::App),
        LimitLevel::new("connection", 5, Duration::from_secs(10), Scope::Connection),
    ];
    let l = limiter(&srv, levels, KeyLayout::PerConnection);
    let (a, b) = (conn("a"), conn("b"));
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    let rb = Request::new("hub", &b);
    let v = l.decide(&rb).await;
    assert_eq!(v.level(), Some("app"));
    assert_eq!(l.stats().refunds, 1);
    let mut r = raw(&srv).await;
    let key = l.level_key(&rb, "connection").unwrap();
    assert_eq!(get(&mut r, &key).await, None, "refunded to a full bucket");
    let app_key = l.level_key(&rb, "app").unwrap();
    assert!(app_key.contains("{hub}/app"), "{app_key}");
}

/// Per-provider layout: every level is decided in one atomic call with the same answers.
#[tokio::test]
async fn per_provider_layout() {
    let srv = server();
    let levels = vec![
        LimitLevel::new("app", 3, Duration::from_secs(10), Scope::App),
        LimitLevel::new("connection", 2, Duration::from_secs(10), Scope::Connection),
    ];
    let l = limiter(&srv, levels, KeyLayout::PerProvider);
    let (a, b) = (conn("a"), conn("b"));
    assert_eq!(
        until_denied(&l, &Request::new("hub", &a)).await.1.level(),
        Some("connection")
    );
    let (n, v) = until_denied(&l, &Request::new("hub", &b)).await;
    assert_eq!((n, v.level()), (1, Some("app")));
    assert_eq!(l.stats().refunds, 0);
    let key = l.level_key(&Request::new("hub", &a), "connection").unwrap();
    assert!(key.starts_with("rl:{hub}/a/"), "{key}");
}

/// Keys expire when their state stops mattering: a short level's key is gone after its period, overrides after their TTL.
#[tokio::test]
async fn keys_expire_after_ttl() {
    let srv = server();
    let l = limiter(
        &srv,
        vec![
            LimitLevel::new("fast", 5, Duration::from_millis(200), Scope::Connection),
            LimitLevel::new(
                "daily",
                1000,
                Duration::from_secs(86_400),
                Scope::Connection,
            ),
        ],
        KeyLayout::PerConnection,
    );
    let a = conn("a");
    let req = Request::new("hub", &a);
    let mut r = raw(&srv).await;
    for _ in 0..3 {
        assert!(l.decide(&req).await.is_allowed());
    }
    let fast = l.level_key(&req, "fast").unwrap();
    let daily = l.level_key(&req, "daily").unwrap();
    let t = pttl(&mut r, &fast).await;
    assert!(t > 0 && t <= 120, "fast TTL {t} ms: three 40 ms intervals");
    let t = pttl(&mut r, &daily).await;
    assert!(
        t > 255_000 && t <= 259_200,
        "daily TTL {t} ms: three 86.4 s intervals"
    );
    l.apply_override(
        "hub",
        &OverrideScope::Connection(a.clone()),
        &OverrideSpec::pause(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    let ovr = l.override_key("hub", &OverrideScope::Connection(a.clone()));
    assert!(pttl(&mut r, &ovr).await > 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&fast)
        .arg(&ovr)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(exists, 0, "fast and override keys expired");
    assert!(pttl(&mut r, &daily).await > 0, "daily key still alive");
}

/// An override written by one instance (from a 429 response) is seen by another; rate reductions and provider pauses too.
#[tokio::test]
async fn override_propagates_between_instances() {
    let srv = server();
    let levels = vec![
        LimitLevel::new("app", 1000, Duration::from_secs(1), Scope::App),
        LimitLevel::new("connection", 10, Duration::from_secs(10), Scope::Connection),
    ];
    let one = limiter(&srv, levels.clone(), KeyLayout::PerConnection);
    let two = limiter(&srv, levels, KeyLayout::PerConnection);
    let (x, y, z) = (conn("x"), conn("y"), conn("z"));

    let seen = one
        .observe(
            "hub",
            &OverrideScope::Connection(x.clone()),
            429,
            &[("Retry-After", "2")],
            &AdaptivePolicy::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        seen.applied.unwrap().pause_for,
        Some(Duration::from_secs(2))
    );
    let v = two.decide(&Request::new("hub", &x)).await;
    assert_eq!(v.level(), Some(OVERRIDE_LEVEL));
    assert!(
        v.retry_after() > Duration::from_millis(1000) && v.retry_after() <= Duration::from_secs(2)
    );
    assert!(
        two.decide(&Request::new("hub", &y)).await.is_allowed(),
        "other connections unaffected"
    );

    // reduced rate: burst 10 at factor 0.5 → 5 pass on the other instance
    one.apply_override(
        "hub",
        &OverrideScope::Connection(z.clone()),
        &OverrideSpec::reduce(0.5, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let (n, v) = until_denied(&two, &Request::new("hub", &z)).await;
    assert_eq!((n, v.level()), (5, Some("connection")));
    assert!(
        v.retry_after() > Duration::from_millis(1500),
        "interval doubled: {v:?}"
    );

    // a provider pause stops every connection, and clearing it resumes them
    one.apply_override(
        "hub",
        &OverrideScope::Provider,
        &OverrideSpec::pause(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(
        two.decide(&Request::new("hub", &y)).await.level(),
        Some(OVERRIDE_LEVEL)
    );
    two.clear_override("hub", &OverrideScope::Provider)
        .await
        .unwrap();
    assert!(one.decide(&Request::new("hub", &y)).await.is_allowed());
    assert_eq!(
        one.stats().fallback_decisions + two.stats().fallback_decisions,
        0
    );
}

/// After SCRIPT FLUSH the limiter falls back from EVALSHA to EVAL and keeps deciding through Redis.
#[tokio::test]
async fn noscript_falls_back_to_eval() {
    let srv = server();
    let l = limiter(
        &srv,
        vec![LimitLevel::new(
            "connection",
            10,
            Duration::from_secs(10),
            Scope::Connection,
        )],
        KeyLayout::PerConnection,
    );
    let a = conn("a");
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    let mut r = raw(&srv).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    let s = l.stats();
    assert_eq!(
        (s.redis_decisions, s.redis_errors, s.fallback_decisions),
        (2, 0, 0)
    );
}

/// The Lua script and the pure GCRA give the same allowed/denied sequence and blocking levels, also under a rate factor.
#[tokio::test]
async fn lua_matches_pure_gcra() {
    let srv = server();
    let levels = vec![
        LimitLevel::new(
            "connection",
            10,
            Duration::from_secs(100),
            Scope::Connection,
        )
        .with_burst(6),
        LimitLevel::new("daily", 9, Duration::from_secs(86_400), Scope::Connection),
        LimitLevel::new("bulk", 3, Duration::from_secs(60), Scope::Endpoint),
    ];
    let redis = limiter(&srv, levels.clone(), KeyLayout::PerConnection);
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
    let local = InProcessLimiter::new(&config(levels), clock).unwrap();
    let costs = [1u32, 2, 1, 3, 1, 1, 2, 1, 4, 1, 1, 7, 1];
    for factor in [None, Some(0.5)] {
        let c = conn(if factor.is_some() { "f" } else { "n" });
        if let Some(f) = factor {
            let spec = OverrideSpec::reduce(f, Duration::from_secs(60));
            let scope = OverrideScope::Connection(c.clone());
            redis.apply_override("hub", &scope, &spec).await.unwrap();
            local.apply_override("hub", &scope, &spec).await.unwrap();
        }
        for (i, &cost) in costs.iter().enumerate() {
            let mut req = Request::new("hub", &c).cost(cost);
            if i % 3 == 0 {
                req = req.endpoint("export");
            }
            let (a, b) = (redis.decide(&req).await, local.decide(&req));
            assert_eq!(
                a.level(),
                b.level(),
                "factor {factor:?} step {i}: {a:?} vs {b:?}"
            );
            let diff = a.retry_after().abs_diff(b.retry_after());
            assert!(diff < Duration::from_secs(1), "step {i}: {a:?} vs {b:?}");
        }
    }
}

/// Redis killed mid-test: decisions keep coming from the counted, scaled-down fallback; after a restart the breaker closes and Redis decides again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fallback_then_recovery() {
    let mut srv = server();
    let mut cfg = RedisLimiterConfig::new(srv.url());
    cfg.call_timeout = Duration::from_millis(300);
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.breaker = BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_millis(200),
    };
    let levels = vec![LimitLevel::new(
        "connection",
        80,
        Duration::from_secs(10),
        Scope::Connection,
    )];
    let l = Arc::new(
        RedisLimiter::new(&config(levels.clone()), cfg.clone(), Arc::new(SystemClock)).unwrap(),
    );
    let peer_cfg = RedisLimiterConfig {
        instance_id: "peer".into(),
        ..cfg
    };
    let peer = RedisLimiter::new(&config(levels), peer_cfg, Arc::new(SystemClock)).unwrap();
    // two instances heartbeat → each fallback takes 0.5 / 2 of the budget: burst 80 → 20
    l.heartbeat().await.unwrap();
    assert_eq!(peer.heartbeat().await.unwrap(), 2);
    assert_eq!(l.heartbeat().await.unwrap(), 2);
    assert_eq!(l.instance_count(), 2);
    l.set_instance_count(4); // e.g. the platform's max scale-out: burst 80 → 10
    let a = conn("a");
    let req = Request::new("hub", &a);
    assert!(l.decide(&req).await.is_allowed());
    assert_eq!(l.stats().redis_decisions, 1);

    srv.kill();
    let outage = Instant::now();
    let mut allowed = 0;
    for _ in 0..50 {
        let t0 = Instant::now();
        let v = l.decide(&req).await;
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "a decision took {:?}",
            t0.elapsed()
        );
        allowed += usize::from(v.is_allowed());
    }
    let s = l.stats();
    assert_eq!(s.fallback_decisions, 50, "{s:?}");
    assert!(s.redis_errors >= 2, "{s:?}");
    assert!(!l.breaker().is_closed());
    assert!(
        (10..=11 + outage.elapsed().as_secs() as usize).contains(&allowed),
        "fallback burst is 80 × 0.5 / 4 = 10, got {allowed}"
    );
    let v = l
        .decide(&Request::new("hub", &conn("w")).fail_closed())
        .await;
    assert_eq!(
        v.level(),
        Some(UNAVAILABLE_LEVEL),
        "fail-closed requests are refused while down"
    );
    assert_eq!(
        RateLimiter::check(&*l, "hub", &conn("q"), 1).await,
        Decision::Allowed,
        "the core trait keeps answering"
    );

    srv.restart().expect("restart redis on the same port");
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = l.stats().redis_decisions;
    while l.stats().redis_decisions == before {
        assert!(
            Instant::now() < deadline,
            "no recovery: {:?} {:?}",
            l.stats(),
            l.breaker().state()
        );
        l.decide(&Request::new("hub", &conn("r"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(l.breaker().is_closed());
    let fallback = l.stats().fallback_decisions;
    for _ in 0..5 {
        assert!(
            l.decide(&Request::new("hub", &conn("s")))
                .await
                .is_allowed()
        );
    }
    assert_eq!(
        l.stats().fallback_decisions,
        fallback,
        "Redis is used again"
    );
}

/// With no Redis listening at all, the limiter starts up and answers from the fallback.
#[tokio::test]
async fn starts_without_redis() {
    let port = syncbridge_ratelimit::redis_server::free_port().unwrap();
    let mut cfg = RedisLimiterConfig::new(format!("redis://127.0.0.1:{port}/"));
    cfg.breaker = BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_secs(60),
    };
    let l = RedisLimiter::new(
        &config(vec![LimitLevel::new(
            "connection",
            10,
            Duration::from_secs(1),
            Scope::Connection,
        )]),
        cfg,
        Arc::new(SystemClock),
    )
    .unwrap();
    let a = conn("a");
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    assert!(l.decide(&Request::new("hub", &a)).await.is_allowed());
    let s = l.stats();
    assert_eq!(
        (s.fallback_decisions, s.redis_errors),
        (2, 1),
        "one failed try, then the open breaker"
    );
}

/// Steady state, scaled down: three limiter instances sharing Redis drive a simulated provider with a fixed window of 100 per second; it sends no 429 and at least 90% of its rate is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_several_instances_no_throttle() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    // The provider: a fixed window that starts with the first request after a reset (like the sandbox).
    struct Provider {
        window: Mutex<Option<(Instant, u32)>>,
        requests: AtomicU64,
        throttled: AtomicU64,
    }
    impl Provider {
        fn call(&self) {
            let now = Instant::now();
            let mut w = self.window.lock().unwrap();
            let (start, used) = match *w {
                Some((s, u)) if now < s + Duration::from_secs(1) => (s, u),
                _ => (now, 0),
            };
            if used >= 100 {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            } else {
                *w = Some((start, used + 1));
                self.requests.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    let srv = server();
    // limit + burst ≤ the window's 100: at most 3 + 95 in any second
    let levels = vec![LimitLevel::new("app", 95, Duration::from_secs(1), Scope::App).with_burst(3)];
    let provider = Arc::new(Provider {
        window: Mutex::new(None),
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
    });
    let run_for = Duration::from_millis(3_500);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let mut cfg = RedisLimiterConfig::new(srv.url());
        cfg.instance_id = format!("worker-{i}");
        cfg.call_timeout = Duration::from_secs(2);
        let l = Arc::new(
            RedisLimiter::new(&config(levels.clone()), cfg, Arc::new(SystemClock)).unwrap(),
        );
        for t in 0..4 {
            let (l, provider) = (l.clone(), provider.clone());
            tasks.push(tokio::spawn(async move {
                let c = conn(&format!("c{}", (i + t) % 3));
                while start.elapsed() < run_for {
                    match l.decide(&Request::new("hub", &c)).await {
                        Verdict::Allowed => provider.call(),
                        Verdict::Denied { retry_after, .. } => {
                            tokio::time::sleep(retry_after).await
                        }
                    }
                }
                l.stats()
            }));
        }
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert_eq!(s.fallback_decisions, 0, "{s:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    let (requests, throttled) = (
        provider.requests.load(Ordering::Relaxed),
        provider.throttled.load(Ordering::Relaxed),
    );
    let used = requests as f64 / (secs * 100.0);
    eprintln!(
        "steady state: {requests} requests, {throttled} throttled, {:.1}% of 100/s used",
        used * 100.0
    );
    assert_eq!(
        throttled, 0,
        "the provider throttled {throttled} of {requests}"
    );
    assert!(
        used >= 0.9,
        "{requests} requests in {secs:.2} s = {:.0}% of 100/s",
        used * 100.0
    );
}
