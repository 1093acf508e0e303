//! Shared rate limiting across worker PROCESSES, against the sandbox.
//!
//! What was tried: the sandbox enforces 100 requests per 10 s (429 +
//! Retry-After beyond); three real `sync-inbound-worker` processes share one
//! budget through a real `redis-server` (started here on a free port) and sync
//! nine tasks (three connections × three objects, 100 pages each) at once.
//! What must hold at steady state (after the first window): the sandbox sends
//! no 429, and at least 90% of the allowed rate is used.
//!
//! The same run again the way Azure Managed Redis is reached: TLS (the
//! server's certificate made for the run, its CA passed as
//! `SYNCBRIDGE_REDIS_CA_FILE`) and Microsoft Entra authentication
//! (`SYNCBRIDGE_REDIS_AUTH=entra`): each worker's real
//! `ManagedIdentityCredential` asks a fake managed-identity endpoint
//! (loopback, the App Service protocol) whose tokens are JWT-shaped (the
//! `oid` claim names the ACL user, as Entra's name the identity) and are the
//! user's current password, valid 3 s beyond the 5-minute refresh margin; the test
//! rotates that password every 3 s (new one added, ones two rotations old
//! removed), so every worker re-authenticates its live connection many times
//! during the measurement.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use syncbridge_core::model::{JobReason, Lease, SyncJob};
use syncbridge_core::{Clock, Store, SystemClock};
use syncbridge_protocol::host::{BrokerMessage, service_bus_request};
use syncbridge_protocol::request::SysMetadata;
use syncbridge_ratelimit::redis_server::RedisServer;
use syncbridge_tests::pipeline::admin;
use syncbridge_tests::{add_connection, answering, bin_dir, free_port, store};
use tokio::process::Command;

async fn stats(base: &str) -> (u64, u64) {
    let s: serde_json::Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        s["requests"].as_u64().unwrap(),
        s["throttled"].as_u64().unwrap(),
    )
}

/// Three worker processes sharing a Redis budget stay under the provider's window and use ≥ 90% of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_one_budget() {
    let redis =
        RedisServer::start().expect("redis-server must be installed (scripts/test installs it)");
    let env = vec![("SYNCBRIDGE_REDIS_URL".to_owned(), redis.url())];
    share_one_budget(env).await;
}

const IDENTITY_SECRET: &str = "fake-identity-header-e2e";

/// A JWT-shaped token number `n` for `oid` (header and claims base64url, a
/// dummy signature): Redis only compares it as the ACL password.
fn fake_token(oid: &str, n: u32) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.sig{n}",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(json!({"oid": oid, "aud": "https://redis.azure.com", "n": n}))
    )
}

/// The password the fake identity endpoint hands out as the token.
type Current = Arc<Mutex<String>>;

/// A fake App Service managed-identity endpoint (loopback; the documented
/// protocol: `X-IDENTITY-HEADER`, `api-version=2019-08-01`, `resource`)
/// whose token is the ACL user's current password, expiring 303 s from now:
/// 3 s past the 5-minute margin after which both the SDK and the token cache
/// renew it.
async fn fake_identity(current: Current) -> String {
    async fn token(
        axum::extract::State(current): axum::extract::State<Current>,
        axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>,
        headers: axum::http::HeaderMap,
    ) -> (axum::http::StatusCode, String) {
        let header = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        if header != Some(IDENTITY_SECRET)
            || q.get("resource").map(String::as_str) != Some("https://redis.azure.com")
        {
            return (axum::http::StatusCode::BAD_REQUEST, "bad request".into());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let body = json!({
            "access_token": current.lock().unwrap().clone(),
            "expires_on": (now + 303).to_string(),
            "resource": "https://redis.azure.com",
            "token_type": "Bearer",
        });
        (axum::http::StatusCode::OK, body.to_string())
    }
    let app = axum::Router::new()
        .route("/msi/token", axum::routing::get(token))
        .with_state(current);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/msi/token")
}

async fn redis_cmd(c: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async::<redis::Value>(c)
        .await
        .unwrap();
}

/// `AUTH` calls the server has answered so far.
async fn auth_calls(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_auth:calls="))
        .and_then(|v| v.split(',').next())
        .map_or(0, |v| v.parse().unwrap())
}

/// The same, over TLS with Entra-style rotating tokens (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_one_budget_over_tls_with_rotating_tokens() {
    let redis = RedisServer::start_tls()
        .expect("redis-server and openssl must be installed (scripts/test installs them)");
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let user = "0b1ec7d0-0000-4000-8000-00000000e2e0";
    let token = |n: u32| fake_token(user, n);
    let first = format!(">{}", token(0));
    redis_cmd(&mut admin, &["ACL", "SETUSER", user, "on", &first]).await;
    redis_cmd(&mut admin, &["ACL", "SETUSER", user, "~*", "&*", "+@all"]).await;
    let current: Current = Arc::new(Mutex::new(token(0)));
    let endpoint = fake_identity(current.clone()).await;
    let rotate = {
        let (mut admin, current) = (admin.clone(), current.clone());
        tokio::spawn(async move {
            for n in 1u32.. {
                tokio::time::sleep(Duration::from_secs(3)).await;
                redis_cmd(
                    &mut admin,
                    &["ACL", "SETUSER", user, &format!(">{}", token(n))],
                )
                .await;
                *current.lock().unwrap() = token(n);
                if n >= 2 {
                    let old = format!("<{}", token(n - 2));
                    redis_cmd(&mut admin, &["ACL", "SETUSER", user, &old]).await;
                }
            }
        })
    };
    let auth_before = auth_calls(&mut admin).await;
    let env = vec![
        ("SYNCBRIDGE_REDIS_URL".to_owned(), redis.tls_url().unwrap()),
        ("SYNCBRIDGE_REDIS_AUTH".to_owned(), "entra".to_owned()),
        (
            "SYNCBRIDGE_REDIS_CA_FILE".to_owned(),
            redis.ca_file().unwrap().display().to_string(),
        ),
        ("IDENTITY_ENDPOINT".to_owned(), endpoint),
        ("IDENTITY_HEADER".to_owned(), IDENTITY_SECRET.to_owned()),
    ];
    share_one_budget(env).await;
    rotate.abort();
    let auths = auth_calls(&mut admin).await - auth_before;
    // Three logins plus, per worker, a re-authentication after most of the
    // ~13 rotations of the 40 s run.
    assert!(
        auths >= 3 + 3 * 5,
        "only {auths} AUTH calls: the workers did not re-authenticate their connections"
    );
}

/// Runs three workers with `redis_env` against a sandbox enforcing 100/10 s
/// and checks the steady state (module docs).
async fn share_one_budget(redis_env: Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = syncbridge_sandbox::SandboxConfig {
        records_per_object: 10_000,
        auth_enabled: false,
        rate_limit: Some("100/10s".parse().unwrap()),
        ..Default::default()
    };
    let sbx = syncbridge_sandbox::spawn(cfg).await.unwrap();
    let base = sbx.base_url();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    std::fs::write(
        connectors.join("sandbox.toml"),
        syncbridge_core::connector::registry::sandbox_with_limit(100, 10.0),
    )
    .unwrap();

    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let mut jobs = Vec::new();
    for c in ["c1", "c2", "c3"] {
        for t in add_connection(&*store, c, &base, &["contacts", "companies", "deals"], None).await
        {
            let lease = Lease {
                token: "v0".into(),
                until: SystemClock.now().add(Duration::from_secs(600)),
            };
            assert!(store.lease_task(&t.id, 0, &lease).await.unwrap());
            jobs.push(SyncJob {
                task: t.id.clone(),
                connection: t.connection.clone(),
                object: t.object.clone(),
                priority: t.priority,
                reason: JobReason::Scheduled,
                lease_token: "v0".into(),
            });
        }
    }
    let mut workers = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let child = Command::new(bin_dir().join("sync-inbound-worker"))
            .env(syncbridge_protocol::PORT_ENV, port.to_string())
            .env("SYNCBRIDGE_DATA_DIR", dir.path())
            .env("SYNCBRIDGE_CONNECTORS_DIR", &connectors)
            .envs(redis_env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        answering(&url, Duration::from_secs(20), "a worker to listen").await;
        workers.push((child, port));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let mut inflight = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let port = workers[i % 3].1;
        let mut props = BrokerMessage::new(job.message_id());
        props.content_type = Some("application/json".into());
        let sys = SysMetadata::new("SyncInboundWorker", time::OffsetDateTime::now_utc());
        let body =
            service_bus_request("msg", &serde_json::to_vec(job).unwrap(), &props, true, &sys)
                .to_vec();
        let req = http
            .post(format!("http://127.0.0.1:{port}/SyncInboundWorker"))
            .header("content-type", "application/json")
            .body(body);
        inflight.push(tokio::spawn(req.send()));
    }

    // Warm-up: the first window absorbs start-up; then measure two full windows.
    // Real time on purpose: three worker processes share the limit through a
    // real redis-server, whose `TIME` is the limiter's clock, against the
    // sandbox's own window; no clock of theirs can be paused or injected.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (r0, t0) = stats(&base).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (r1, t1) = stats(&base).await;
    let used = (r1 - r0) as f64 / 200.0;
    assert_eq!(
        t1 - t0,
        0,
        "429s at steady state: {} in 20 s ({} requests)",
        t1 - t0,
        r1 - r0
    );
    assert!(
        used >= 0.90,
        "only {:.0}% of the allowed rate used ({} requests in 20 s)",
        used * 100.0,
        r1 - r0
    );
    for f in inflight {
        f.abort();
    }
    drop(workers);
    admin(&base, "config", json!({"rate_limit": null})).await;
}
