//! Prints decisions per second of the in-process limiter and of the Redis
//! limiter (multi-level, pipelined over one multiplexed connection), starting
//! its own `redis-server` on a free port.
//!
//! ```text
//! cargo run --release -p syncbridge-ratelimit --bin ratelimit-bench -- [--quick]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use syncbridge_core::{ConnectionId, SystemClock};
use syncbridge_ratelimit::redis_server::RedisServer;
use syncbridge_ratelimit::{
    InProcessLimiter, KeyLayout, LimitLevel, LimitsConfig, ProviderLimits, RedisLimiter,
    RedisLimiterConfig, Request, Scope,
};

fn levels(app: bool) -> ProviderLimits {
    let mut l = vec![
        LimitLevel::new(
            "connection",
            1_000_000,
            Duration::from_secs(1),
            Scope::Connection,
        ),
        LimitLevel::new(
            "daily",
            1_000_000_000,
            Duration::from_secs(86_400),
            Scope::Connection,
        ),
        LimitLevel::new("search", 1_000_000, Duration::from_secs(1), Scope::Endpoint)
            .for_endpoint("search"),
    ];
    if app {
        l.insert(
            0,
            LimitLevel::new("app", 1_000_000_000, Duration::from_secs(1), Scope::App),
        );
    }
    ProviderLimits::new(l)
}

fn conns(n: usize) -> Vec<ConnectionId> {
    (0..n)
        .map(|i| ConnectionId::parse(format!("conn-{i}")).expect("valid id"))
        .collect()
}

fn bench_inprocess(iters: u64, threads: usize) -> f64 {
    let cfg = LimitsConfig::default().with_provider("hub", levels(true));
    let l = Arc::new(InProcessLimiter::new(&cfg, Arc::new(SystemClock)).expect("config"));
    let ids = Arc::new(conns(1000));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (l, ids) = (l.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut allowed = 0u64;
                for i in 0..iters {
                    let c = &ids[(i as usize + t * 7) % ids.len()];
                    let mut r = Request::new("hub", c);
                    if i % 4 == 0 {
                        r = r.endpoint("search");
                    }
                    allowed += u64::from(l.decide(&r).is_allowed());
                }
                allowed
            })
        })
        .collect();
    let allowed: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    let secs = start.elapsed().as_secs_f64();
    let total = iters * threads as u64;
    assert_eq!(
        allowed, total,
        "bench limits are generous: everything passes"
    );
    total as f64 / secs
}

async fn bench_redis(
    url: &str,
    layout: KeyLayout,
    app: bool,
    concurrency: usize,
    dur: Duration,
) -> (f64, u64) {
    let cfg = LimitsConfig::default().with_provider("hub", levels(app));
    let mut rc = RedisLimiterConfig::new(url);
    rc.layout = layout;
    rc.call_timeout = Duration::from_secs(2);
    let l = Arc::new(RedisLimiter::new(&cfg, rc, Arc::new(SystemClock)).expect("config"));
    let ids = Arc::new(conns(1000));
    // warm up: connect, load the script
    l.decide(&Request::new("hub", &ids[0])).await;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (l, ids, done) = (l.clone(), ids.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    let c = &ids[i % ids.len()];
                    let mut r = Request::new("hub", c);
                    if i % 4 == 0 {
                        r = r.endpoint("search");
                    }
                    l.decide(&r).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += concurrency;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = l.stats();
    assert_eq!(
        stats.fallback_decisions, 0,
        "no fallback during the benchmark: {stats:?}"
    );
    (
        done.load(Ordering::Relaxed) as f64 / secs,
        stats.redis_decisions,
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let iters = if quick { 1_000_000 } else { 10_000_000 };
    let dur = Duration::from_secs(if quick { 2 } else { 5 });
    let concurrency = 256;

    let one = bench_inprocess(iters, 1);
    println!(
        "in-process, 4 levels (app, connection, daily, search on 1/4), 1 thread:  {one:>12.0} decisions/s"
    );
    let two = bench_inprocess(iters / 2, 2);
    println!(
        "in-process, 4 levels, 2 threads:                                         {two:>12.0} decisions/s"
    );

    let server = match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = server.url();
    let cases = [
        (
            "redis per-connection layout, 3 levels (connection, daily, search 1/4), 1 call",
            KeyLayout::PerConnection,
            false,
        ),
        (
            "redis per-provider layout, 4 levels incl. app, 1 call                         ",
            KeyLayout::PerProvider,
            true,
        ),
        (
            "redis per-connection layout, 4 levels incl. app, 2 calls                      ",
            KeyLayout::PerConnection,
            true,
        ),
    ];
    for (name, layout, app) in cases {
        let (rate, n) = rt.block_on(bench_redis(&url, layout, app, concurrency, dur));
        println!("{name}: {rate:>9.0} decisions/s ({n} decisions, {concurrency} in flight)");
    }
    drop(server);
}
