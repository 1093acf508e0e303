//! kill -9 of the real `sync-inbound-worker` process at random points of a
//! sync, then a restart and the host's redelivery of the same message.
//!
//! What was tried: 24 syncs of 3,000 contacts (30 pages, each answered after a
//! few ms of injected provider latency), each worker killed with SIGKILL after
//! a random delay (seeded, so the run is reproducible).
//! What must hold after each kill: every record in the store is an exact copy
//! of the provider's (no torn page), and a completed pass implies the full set.
//! After restart and redelivery: the store equals the sandbox, every record is
//! at version 1 (nothing written twice with new content), the cursor's
//! high-water mark equals the newest record, and at least 20 of the kills
//! interrupted a run in flight.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use syncbridge_core::model::{JobReason, Lease, SyncJob};
use syncbridge_core::pipeline::inbound::InboundCursor;
use syncbridge_core::{Clock, Store, SystemClock};
use syncbridge_protocol::host::{BrokerMessage, service_bus_request};
use syncbridge_protocol::request::SysMetadata;
use syncbridge_tests::pipeline::{actual, assert_in_sync, expected};
use syncbridge_tests::{add_connection, answering, bin_dir, free_port, slow_sandbox, store};
use tokio::process::{Child, Command};

async fn start_worker(data_dir: &Path) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(bin_dir().join("sync-inbound-worker"))
        .env(syncbridge_protocol::PORT_ENV, port.to_string())
        .env("SYNCBRIDGE_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker starts");
    let url = format!("http://127.0.0.1:{port}/");
    answering(&url, Duration::from_secs(20), "the worker to listen").await;
    (child, port)
}

fn invocation(job: &SyncJob, delivery: u32) -> Vec<u8> {
    let mut props = BrokerMessage::new(job.message_id());
    props.delivery_count = delivery;
    props.content_type = Some("application/json".into());
    let sys = SysMetadata::new("SyncInboundWorker", time::OffsetDateTime::now_utc());
    service_bus_request("msg", &serde_json::to_vec(job).unwrap(), &props, true, &sys).to_vec()
}

/// Random SIGKILLs mid-sync never lose, tear or duplicate records, and the redelivered job finishes the sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_points() {
    const N: usize = 3000;
    // 15 ms per provider call: a pass (30 pages) outlasts the latest kill
    // (400 ms) however fast the machine, so every kill lands before or
    // during the run, never after it (with 4 ms a fast run sometimes ended
    // first and the test counted too few interruptions).
    let sbx = slow_sandbox(N, 15).await;
    let base = sbx.base_url();
    let want = expected(&base, "contacts").await;
    let newest = reqwest::get(format!("{base}/_sandbox/records/contacts"))
        .await
        .unwrap()
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| syncbridge_core::Timestamp::parse(r["updatedAt"].as_str()?))
        .max();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let http = reqwest::Client::new();
    let mut interrupted = 0;
    for round in 0..24 {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(store(dir.path()));
        let task = add_connection(&*store, "c1", &base, &["contacts"], None)
            .await
            .remove(0);
        let lease = Lease {
            token: "v0".into(),
            until: SystemClock.now().add(Duration::from_secs(600)),
        };
        assert!(store.lease_task(&task.id, 0, &lease).await.unwrap());
        let job = SyncJob {
            task: task.id.clone(),
            connection: task.connection.clone(),
            object: task.object.clone(),
            priority: task.priority,
            reason: JobReason::Scheduled,
            lease_token: "v0".into(),
        };

        // First delivery, killed at a random point.
        let (mut child, port) = start_worker(dir.path()).await;
        let url = format!("http://127.0.0.1:{port}/SyncInboundWorker");
        let send = tokio::spawn(
            http.post(&url)
                .header("content-type", "application/json")
                .body(invocation(&job, 1))
                .send(),
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let answered = matches!(send.await.unwrap(), Ok(r) if r.status().is_success());

        // What a kill may leave: only exact copies; a finished pass means everything.
        let have = actual(&*store, &task).await;
        for (id, (hash, version)) in &have {
            assert_eq!(
                want.get(id),
                Some(hash),
                "round {round}: record {id} is not an exact copy"
            );
            assert_eq!(*version, 1, "round {round}: record {id} rewritten");
        }
        let t = store.get_task(&task.id).await.unwrap().unwrap();
        let cur = InboundCursor::parse(t.cursor.as_deref());
        if t.lease.is_none() {
            assert!(
                answered || have.len() == N,
                "round {round}: lease released but sync incomplete"
            );
        }
        if !answered && t.lease.is_some() {
            interrupted += 1;
        }
        if cur.page.is_none() && cur.high_water.is_some() {
            assert_eq!(
                have.len(),
                N,
                "round {round}: cursor says the pass ended but records are missing"
            );
        }

        // Restart and redeliver (DeliveryCount 2), as the host does after a lost lock.
        if t.lease.is_some() {
            let (_child, port) = start_worker(dir.path()).await;
            let r = http
                .post(format!("http://127.0.0.1:{port}/SyncInboundWorker"))
                .header("content-type", "application/json")
                .body(invocation(&job, 2))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "round {round}: redelivery answered {}",
                r.status()
            );
        }
        assert_in_sync(&*store, &task, &base).await;
        let have = actual(&*store, &task).await;
        assert!(
            have.values().all(|(_, v)| *v == 1),
            "round {round}: a record was written twice"
        );
        let t = store.get_task(&task.id).await.unwrap().unwrap();
        assert!(
            t.lease.is_none(),
            "round {round}: lease still held after the sync finished"
        );
        let cur = InboundCursor::parse(t.cursor.as_deref());
        assert_eq!(
            (cur.page, cur.high_water),
            (None, newest),
            "round {round}: cursor inconsistent"
        );
    }
    assert!(
        interrupted >= 20,
        "only {interrupted} of 24 kills interrupted a run in flight"
    );
}
