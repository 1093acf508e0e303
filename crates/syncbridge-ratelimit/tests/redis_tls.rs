//! The limiter over TLS with rotating credentials, against a real
//! `redis-server` with a TLS port (certificate made for the run) and an ACL
//! user whose password the test rotates the way Microsoft Entra tokens
//! rotate on Azure Managed Redis: the new password is added, the client
//! switches, the old one is removed, and the server drops connections whose
//! credentials expired.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use syncbridge_core::{ConnectionId, SystemClock};
use syncbridge_ratelimit::redis_server::RedisServer;
use syncbridge_ratelimit::{
    CredentialsError, LimitLevel, LimitsConfig, ProviderLimits, RedisAuth, RedisCredentials,
    RedisLimiter, RedisLimiterConfig, Request, Scope,
};

/// Credentials the test changes, as a token cache would after a refresh.
#[derive(Debug)]
struct Rotating(Mutex<RedisAuth>);

impl Rotating {
    fn set(&self, password: &str) {
        self.0.lock().unwrap().password = password.into();
    }
}

#[async_trait::async_trait]
impl RedisCredentials for Rotating {
    async fn current(&self) -> Result<RedisAuth, CredentialsError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

async fn admin(srv: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(srv.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn run(c: &mut MultiplexedConnection, args: &[&str]) {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async::<redis::Value>(c)
        .await
        .unwrap();
}

/// (`AUTH` calls, connections accepted) so far, from `INFO`.
async fn counts(c: &mut MultiplexedConnection) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("everything")
        .query_async(c)
        .await
        .unwrap();
    let field = |line_start: &str, key: &str| -> u64 {
        info.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.split([':', ',']).find_map(|kv| kv.strip_prefix(key)))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    (
        field("cmdstat_auth:", "calls="),
        field("total_connections_received:", "total_connections_received:"),
    )
}

fn limits() -> LimitsConfig {
    LimitsConfig::default().with_provider(
        "hub",
        ProviderLimits::new(vec![LimitLevel::new(
            "connection",
            1000,
            Duration::from_secs(1),
            Scope::Connection,
        )]),
    )
}

fn limiter(srv: &RedisServer, creds: Arc<Rotating>) -> RedisLimiter {
    let limits = limits();
    let mut cfg = RedisLimiterConfig::new(srv.tls_url().unwrap());
    cfg.credentials = Some(creds);
    cfg.tls_roots_pem = srv.ca_pem();
    cfg.call_timeout = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(2);
    RedisLimiter::new(&limits, cfg, Arc::new(SystemClock)).unwrap()
}

/// Decisions come from Redis over TLS before, during and after rotations:
/// a live connection is re-authenticated with `AUTH` (no new connection), a
/// dropped one reconnects with the newest password; a refused password
/// makes decisions fall back instead of failing.
#[tokio::test]
async fn tls_and_rotating_password_keep_decisions_in_redis() {
    let srv =
        RedisServer::start_tls().unwrap_or_else(|e| panic!("cannot run the Redis TLS tests: {e}"));
    let mut adm = admin(&srv).await;
    run(
        &mut adm,
        &[
            "ACL", "SETUSER", "limiter", "on", ">p1", "~*", "&*", "+@all",
        ],
    )
    .await;
    let creds = Arc::new(Rotating(Mutex::new(RedisAuth {
        username: "limiter".into(),
        password: "p1".into(),
    })));
    let l = limiter(&srv, creds.clone());
    let c1 = ConnectionId::parse("c1").unwrap();
    let req = Request::new("hub", &c1);
    assert!(l.decide(&req).await.is_allowed());
    assert_eq!(l.stats().redis_decisions, 1, "{:?}", l.stats());

    // A token refresh: the new password is added, used, then the old removed.
    let (auth0, conns0) = counts(&mut adm).await;
    run(&mut adm, &["ACL", "SETUSER", "limiter", ">p2"]).await;
    creds.set("p2");
    run(&mut adm, &["ACL", "SETUSER", "limiter", "<p1"]).await;
    assert!(l.decide(&req).await.is_allowed());
    let (auth1, conns1) = counts(&mut adm).await;
    assert_eq!(
        auth1,
        auth0 + 1,
        "the live connection is re-authenticated once"
    );
    assert_eq!(conns1, conns0, "no new connection for a re-authentication");
    assert_eq!(l.stats().redis_decisions, 2, "{:?}", l.stats());

    // The server drops the limiter's connection (as Azure does when a
    // token expires) after another rotation: the next connection logs in
    // with the newest password.
    run(&mut adm, &["ACL", "SETUSER", "limiter", ">p3", "<p2"]).await;
    creds.set("p3");
    run(&mut adm, &["CLIENT", "KILL", "USER", "limiter"]).await;
    let mut from_redis = 0;
    for _ in 0..5 {
        l.decide(&req).await;
        from_redis = l.stats().redis_decisions;
    }
    assert!(
        from_redis >= 6,
        "at most one decision lost to the dropped connection: {:?}",
        l.stats()
    );
    assert!(l.stats().fallback_decisions <= 1, "{:?}", l.stats());

    // A password the server refuses: decisions fall back, none is lost.
    run(&mut adm, &["ACL", "SETUSER", "limiter", "resetpass", ">p4"]).await;
    run(&mut adm, &["CLIENT", "KILL", "USER", "limiter"]).await;
    let before = l.stats();
    assert!(l.decide(&req).await.is_allowed());
    assert_eq!(l.stats().redis_decisions, before.redis_decisions);
    assert_eq!(l.stats().fallback_decisions, before.fallback_decisions + 1);

    // Without the CA the server's certificate is not trusted.
    let mut untrusted = RedisLimiterConfig::new(srv.tls_url().unwrap());
    untrusted.call_timeout = Duration::from_secs(2);
    let u = RedisLimiter::new(&limits(), untrusted, Arc::new(SystemClock)).unwrap();
    assert!(u.decide(&req).await.is_allowed());
    assert_eq!(u.stats().redis_decisions, 0, "{:?}", u.stats());
    assert_eq!(u.stats().redis_errors, 1, "{:?}", u.stats());
}
