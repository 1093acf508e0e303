//! Inbound records per second for two catalog connectors, end to end: a
//! loopback server answering each provider's documented list shape (pages
//! generated on the fly, no mock overhead to speak of) → the shipped
//! definition through the HTTP adapter and the inbound pipeline → the
//! embedded SQLite store.
//!
//! Run with: `cargo run --release -p syncbridge-tests --bin bench-connectors [-- RECORDS]`
//! - Stripe customers: `last_id` paging (`starting_after` = the last id while
//!   `has_more`), 100 per page as the shipped definition asks;
//! - Pipedrive persons: `body_cursor` paging (`additional_data.next_cursor`),
//!   500 per page as the shipped definition asks.
//!
//! Without the definitions' rate limits (the bench measures the engine; the
//! providers' own limits — Stripe 25 requests/s per connection as shipped —
//! cap a real account far below these figures).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use serde_json::{Value, json};
use syncbridge_core::Store;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::model::RunStatus;
use syncbridge_core::model::{Connection, ConnectionStatus, SyncTask};
use syncbridge_core::{ConnectionId, ObjectType, TenantId, Timestamp};
use syncbridge_tests::pipeline::{deps, run_once};
use syncbridge_tests::{inbound_task, store};

type Params = Query<HashMap<String, String>>;

/// Stripe's `GET /v1/customers`: `limit`, `starting_after`, `has_more`.
async fn stripe(State(n): State<usize>, Query(q): Params) -> axum::Json<Value> {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let start = q
        .get("starting_after")
        .and_then(|s| s.strip_prefix("cus_"))
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(0, |i| i + 1);
    let end = (start + limit).min(n);
    let data: Vec<Value> = (start..end)
        .map(|i| {
            json!({"id": format!("cus_{i}"), "object": "customer", "created": 1_700_000_000 + i,
                   "email": format!("customer{i}@example.com"), "name": format!("Customer {i}"),
                   "phone": "+1 555 0100", "description": null, "livemode": false})
        })
        .collect();
    axum::Json(json!({"object": "list", "url": "/v1/customers", "has_more": end < n, "data": data}))
}

/// Pipedrive's `GET /api/v2/persons`: `limit`, `cursor`, `additional_data.next_cursor`.
async fn pipedrive(State(n): State<usize>, Query(q): Params) -> axum::Json<Value> {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = (start + limit).min(n);
    let data: Vec<Value> = (start..end)
        .map(|i| {
            json!({"id": i + 1, "name": format!("Person {i}"), "owner_id": 7, "org_id": 3,
                   "update_time": "2026-11-28T10:00:00Z", "add_time": "2026-11-01T10:00:00Z",
                   "emails": [{"value": format!("person{i}@example.com"), "primary": true, "label": "work"}],
                   "phones": [{"value": "+1 555 0100", "primary": true, "label": "work"}]})
        })
        .collect();
    let next = (end < n).then(|| end.to_string());
    axum::Json(json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}))
}

/// A connection to `provider` at `base` and its inbound task for `object`, stored.
async fn inbound_task_for(store: &dyn Store, provider: &str, base: &str, object: &str) -> SyncTask {
    let conn = Connection {
        id: ConnectionId::parse(format!("bench-{provider}")).unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: provider.into(),
        status: ConnectionStatus::Active,
        base_url: Some(base.into()),
        webhook: None,
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: Timestamp::from_millis(0),
    };
    store.put_connection(&conn).await.unwrap();
    let task = inbound_task(
        &conn,
        ObjectType::parse(object).unwrap(),
        Timestamp::from_millis(0),
    );
    store.put_task(&task).await.unwrap();
    task
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let app = axum::Router::new()
        .route("/v1/customers", axum::routing::get(stripe))
        .route("/api/v2/persons", axum::routing::get(pipedrive))
        .with_state(n);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    println!("{n} records per connector, loopback provider on {base}");
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "case", "records", "seconds", "records/s"
    );
    for (provider, object, page) in [("stripe", "customers", 100), ("pipedrive", "persons", 500)] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(store(dir.path()));
        let task = inbound_task_for(&*store, provider, &base, object).await;
        let deps = deps(store.clone(), Registry::builtin());
        let t0 = Instant::now();
        let run = run_once(&deps, &task).await;
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        assert_eq!(run.counts.created as usize, n, "{:?}", run.counts);
        println!(
            "{:<36} {:>10} {:>10.2} {:>12.0}",
            format!("{provider} {object}, initial, {page}/page"),
            run.counts.created,
            secs,
            run.counts.created as f64 / secs
        );
    }
}
