//! Shared rate limiting across worker PROCESSES, against the sandbox.
//!
//! What was tried: the sandbox enforces 100 requests per 10 s (429 +
//! Retry-After beyond); three real `sync-inbound-worker` processes share one
//! budget through a real `redis-server` (started here on a free port) and sync
//! nine tasks (three connections × three objects, 100 pages each) at once.
//! What must hold at steady state (after the first window): the sandbox sends
//! no 429, and at least 90% of the allowed rate is used.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use syncbridge_core::model::{JobReason, Lease, SyncJob};
use syncbridge_core::{Clock, Store, SystemClock};
use syncbridge_protocol::host::{BrokerMessage, service_bus_request};
use syncbridge_protocol::request::SysMetadata;
use syncbridge_ratelimit::redis_server::RedisServer;
use syncbridge_tests::pipeline::admin;
use syncbridge_tests::{add_connection, bin_dir, eventually, store};
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin_dir().join("sync-inbound-worker"))
            .env(syncbridge_protocol::PORT_ENV, port.to_string())
            .env("SYNCBRIDGE_DATA_DIR", dir.path())
            .env("SYNCBRIDGE_CONNECTORS_DIR", &connectors)
            .env("SYNCBRIDGE_REDIS_URL", redis.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(20), "a worker to listen", || {
            let http = http.clone();
            async move {
                http.get(format!("http://127.0.0.1:{port}/"))
                    .send()
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
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
