//! Product webhooks end to end: the real handlers under the local host
//! (what `syncbridge up` runs) and the real CLI, with the product's webhook
//! configured (`SYNCBRIDGE_PRODUCT_WEBHOOK_URL` / `_SECRET`) to a loopback
//! receiver in this test.
//!
//! What was tried: one sandbox connection added by `syncbridge connections
//! add`, another created by `POST /v1/connections`, then a scheduler tick
//! that syncs both. What must hold: the receiver gets `connection.created`
//! for each and `sync.completed` for each run, every delivery carrying a
//! Standard Webhooks signature that `syncbridge-signatures` verifies with
//! the configured secret; `sync.completed`'s counts equal the run's counts
//! in the store and the sandbox's number of records.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use syncbridge_core::model::{Direction, SyncTask};
use syncbridge_core::{ConnectionId, ObjectType, Store as _};
use syncbridge_signatures::{Request, Scheme, WebhookSecret, verify};
use syncbridge_tests::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery: its headers and body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

/// A loopback receiver that records every POST and answers 204.
async fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let shared = Arc::clone(&got);
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let shared = Arc::clone(&shared);
        async move {
            let h = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            shared.lock().unwrap().push((h, body.to_vec()));
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/syncbridge", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (url, got)
}

/// The verified payloads received so far, by `type`; panics on a bad signature.
fn verified(url: &str, got: &Mutex<Vec<Delivery>>, kind: &str) -> Vec<Value> {
    // A copy, so a failed check below cannot poison the receiver's lock.
    let got = got.lock().unwrap().clone();
    got.iter()
        .map(|(headers, body)| {
            let req = Request {
                method: "POST",
                url,
                headers,
                body,
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let v = verify(
                &Scheme::StandardWebhooks,
                &[WebhookSecret::new(SECRET)],
                &req,
                now,
                300,
            )
            .expect("the delivery's Standard Webhooks signature verifies");
            let payload: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v.event_id.as_deref(), payload["data"]["id"].as_str());
            payload
        })
        .filter(|p| p["type"] == kind)
        .collect()
}

/// Runs the CLI with the product webhook configured; its stdout.
fn cli(data_dir: &str, url: &str, args: &[&str]) -> String {
    let env = [
        ("SYNCBRIDGE_PRODUCT_WEBHOOK_URL", url),
        ("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET", SECRET),
    ];
    syncbridge_cli_with(data_dir, args, &env)
}

/// `connection.created` from the CLI and the API, `sync.completed` with the run's counts, all signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_webhooks_reach_the_product() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sbx = sandbox(75).await;
    let (url, got) = receiver().await;
    let key = cli(
        d,
        &url,
        &["api-keys", "create", "--name", "e2e", "--scope", "admin"],
    );
    let key = key.trim();

    let mut cfg = host_config(dir.path());
    cfg.env
        .insert("SYNCBRIDGE_PRODUCT_WEBHOOK_URL".into(), url.clone());
    cfg.env
        .insert("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET".into(), SECRET.into());
    let host = start_host(cfg).await;

    cli(
        d,
        &url,
        &[
            "connections",
            "add",
            "--tenant",
            "acme",
            "--id",
            "crm1",
            "--provider",
            "sandbox",
            "--base-url",
            &sbx.base_url(),
            "--objects",
            "contacts",
        ],
    );
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/connections", host.url()))
        .bearer_auth(key)
        .json(&json!({
            "id": "crm2", "tenant": "acme", "provider": "sandbox",
            "base_url": sbx.base_url(), "objects": ["contacts"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    host.fire_timer("SyncScheduler")
        .await
        .expect("scheduler tick");

    let completed = eventually(Duration::from_secs(60), "sync.completed for both", || {
        let done = verified(&url, &got, "sync.completed");
        async move { (done.len() >= 2).then_some(done) }
    })
    .await;
    let announced = eventually(
        Duration::from_secs(30),
        "connection.created for both",
        || {
            let created = verified(&url, &got, "connection.created");
            async move { (created.len() >= 2).then_some(created) }
        },
    )
    .await;
    let mut ids: Vec<&str> = announced
        .iter()
        .map(|p| p["data"]["connection_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["crm1", "crm2"], "once each: {announced:?}");
    assert!(announced.iter().all(|p| p["data"]["provider"] == "sandbox"));

    let in_sandbox = pipeline::expected(&sbx.base_url(), "contacts").await.len() as u64;
    assert_eq!(in_sandbox, 75);
    let store = store(dir.path());
    for conn in ["crm1", "crm2"] {
        let p = completed
            .iter()
            .find(|p| p["data"]["connection_id"] == conn)
            .unwrap_or_else(|| panic!("sync.completed for {conn}: {completed:?}"));
        let data = &p["data"];
        let task = SyncTask::id_for(
            &ConnectionId::parse(conn).unwrap(),
            &ObjectType::parse("contacts").unwrap(),
            Direction::Inbound,
        );
        let runs = store.list_runs(Some(&task), 10).await.unwrap();
        let run = runs
            .iter()
            .find(|r| r.id.as_str() == data["run_id"].as_str().unwrap())
            .expect("the event names a stored run");
        assert_eq!(data["object"], "contacts");
        assert_eq!(data["status"], run.status.as_str());
        assert_eq!(data["counts"]["added"], run.counts.created, "{p}");
        assert_eq!(data["counts"]["updated"], run.counts.updated, "{p}");
        assert_eq!(data["counts"]["deleted"], run.counts.deleted, "{p}");
        assert_eq!(data["counts"]["added"], in_sandbox, "{p}");
        // The feed read from the event's cursor holds the run's records.
        let cursor = data["records_cursor"].as_str().expect("records_cursor");
        let (conn_id, object) = (
            ConnectionId::parse(conn).unwrap(),
            ObjectType::parse("contacts").unwrap(),
        );
        let from = (0..=10_000u64)
            .find(|s| syncbridge_core::store::feed::cursor(&conn_id, &object, *s) == cursor)
            .expect("a feed cursor of this connection's contacts");
        let feed = store
            .records_feed(&syncbridge_core::store::FeedQuery {
                connection: conn_id,
                object,
                after_seq: Some(from),
                modified_after: None,
                actions: Default::default(),
                limit: 1000,
            })
            .await
            .unwrap();
        assert_eq!(
            feed.len() as u64,
            in_sandbox,
            "the run's records after its cursor"
        );
    }
    host.shutdown().await;
}
