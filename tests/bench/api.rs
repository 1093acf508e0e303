//! The product API at scale, over real loopback HTTP, on the embedded
//! default (SQLite store in a temp dir).
//!
//! Run with: `cargo run --release -p syncbridge-tests --bin bench-api [-- RECORDS]`
//! (default 100,000).
//!
//! Seeds one connection's `contacts` with RECORDS records through
//! `Store::commit_page` (pages of 1,000 under a leased task, as a sync
//! does), 10,000 connections (every 100th disabled) across 1,000 tenants and
//! 100,000 runs (10 per connection, one a second, one in ten failed), makes an admin key
//! and serves `syncbridge_api::router` on 127.0.0.1. Then measures:
//! - the raw read: `Store::records_feed` in pages of 1,000 straight from the
//!   store (and `Store::list_records`, for reference), records/s;
//! - the feed: `GET /v1/records?…&limit=1000` following `next_cursor` to the
//!   end (the client decodes every page), records/s, and its ratio to the raw
//!   feed read (goal ≥ 50%);
//! - p50/p99 of list calls (goal p99 ≤ 50 ms): connections (first page, a
//!   filtered page, a page 5,000 deep), runs (first page, one connection's,
//!   the failed ones), each called 200 times in a row.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;
use syncbridge_core::model::{Lease, SyncTask, content_hash};
use syncbridge_core::store::{FeedQuery, PageCommit, RecordUpsert};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, Store, Timestamp};
use syncbridge_functions::{AppState, Settings};
use syncbridge_tests::fleet::{CONNECTIONS, RUNS_PER_CONNECTION, seed_connection, serve_api};

const PAGE: usize = 1_000;
const CALLS: usize = 200;
const STAGES: [&str; 3] = ["lead", "customer", "subscriber"];
/// The connection whose records the feed reads.
const FEED_CONNECTION: &str = "conn-00000";

/// A contact the size of a typical CRM record (a dozen fields).
fn record(i: usize) -> RecordUpsert {
    let data = serde_json::json!({
        "id": format!("c{i:07}"),
        "email": format!("person{i}@example.com"),
        "firstname": format!("First{i}"),
        "lastname": format!("Last{}", i % 997),
        "company": format!("Company {}", i % 5000),
        "phone": format!("+1-555-{:04}", i % 10_000),
        "lifecyclestage": STAGES[i % 3],
        "city": "Springfield",
        "country": "US",
        "score": i % 100,
        "createdate": "2026-01-01T00:00:00Z",
        "lastmodifieddate": "2026-06-01T12:00:00Z",
    });
    RecordUpsert {
        external_id: ExternalId::parse(format!("c{i:07}")).unwrap(),
        hash: content_hash(&data),
        data,
        remote_updated_at: None,
    }
}

async fn seed_records(store: &dyn Store, task: &SyncTask, n: usize, now: Timestamp) {
    let lease = Lease {
        token: "bench".into(),
        until: now.add(Duration::from_secs(86_400)),
    };
    assert!(
        store
            .lease_task(&task.id, task.version, &lease)
            .await
            .unwrap()
    );
    for start in (0..n).step_by(PAGE) {
        let page = PageCommit {
            task: task.id.clone(),
            lease_token: lease.token.clone(),
            connection: task.connection.clone(),
            object: task.object.clone(),
            upserts: (start..n.min(start + PAGE)).map(record).collect(),
            deletes: Vec::new(),
            cursor: Some(start.to_string()),
        };
        store.commit_page(&page).await.unwrap();
    }
}

async fn seed(store: &dyn Store, records: usize, now: Timestamp) {
    let t0 = Instant::now();
    for c in 0..CONNECTIONS {
        let t = seed_connection(store, c, now).await;
        if c == 0 {
            seed_records(store, &t, records, now).await;
        }
    }
    println!(
        "seeded {records} records, {CONNECTIONS} connections, {} runs in {:.1} s",
        CONNECTIONS * RUNS_PER_CONNECTION,
        t0.elapsed().as_secs_f64()
    );
}

/// Reads the whole feed from the store; (records, seconds).
async fn raw_feed(store: &dyn Store) -> (usize, f64) {
    let t0 = Instant::now();
    let mut q = FeedQuery {
        connection: ConnectionId::parse(FEED_CONNECTION).unwrap(),
        object: ObjectType::parse("contacts").unwrap(),
        after_seq: None,
        modified_after: None,
        actions: Default::default(),
        limit: PAGE,
    };
    let mut total = 0;
    loop {
        let page = store.records_feed(&q).await.unwrap();
        total += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE => q.after_seq = Some(last.seq),
            _ => break,
        }
    }
    (total, t0.elapsed().as_secs_f64())
}

/// Reads every record by id from the store; (records, seconds).
async fn raw_list(store: &dyn Store) -> (usize, f64) {
    let t0 = Instant::now();
    let conn = ConnectionId::parse(FEED_CONNECTION).unwrap();
    let object = ObjectType::parse("contacts").unwrap();
    let mut after: Option<ExternalId> = None;
    let mut total = 0;
    loop {
        let page = store
            .list_records(&conn, &object, after.as_ref(), PAGE)
            .await
            .unwrap();
        total += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.external_id.clone()),
            _ => break,
        }
    }
    (total, t0.elapsed().as_secs_f64())
}

#[derive(Deserialize)]
struct FeedPage {
    records: Vec<IgnoredAny>,
    next_cursor: Option<String>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn get(&self, path_and_query: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path_and_query}");
        resp.bytes().await.unwrap().to_vec()
    }

    /// Follows the feed's cursors to the end; (records, seconds).
    async fn feed(&self) -> (usize, f64) {
        let t0 = Instant::now();
        let first =
            format!("/api/v1/records?connection_id={FEED_CONNECTION}&object=contacts&limit={PAGE}");
        let mut url = first.clone();
        let mut total = 0;
        loop {
            let page: FeedPage = serde_json::from_slice(&self.get(&url).await).unwrap();
            total += page.records.len();
            match page.next_cursor {
                Some(c) if !page.records.is_empty() => url = format!("{first}&cursor={c}"),
                _ => break,
            }
        }
        (total, t0.elapsed().as_secs_f64())
    }

    /// The `next_cursor` after `pages` pages of `limit` connections.
    async fn connections_cursor(&self, pages: usize, limit: usize) -> String {
        let mut cursor: Option<String> = None;
        for _ in 0..pages {
            let url = match &cursor {
                Some(c) => format!("/api/v1/connections?limit={limit}&cursor={c}"),
                None => format!("/api/v1/connections?limit={limit}"),
            };
            let v: serde_json::Value = serde_json::from_slice(&self.get(&url).await).unwrap();
            cursor = Some(v["next_cursor"].as_str().unwrap().to_owned());
        }
        cursor.unwrap()
    }

    /// p50 and p99 of `CALLS` calls of `path`, in ms.
    async fn latency(&self, path: &str) -> (f64, f64) {
        self.get(path).await; // warm-up
        let mut ms = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t0 = Instant::now();
            self.get(path).await;
            ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        (ms[CALLS / 2], ms[CALLS * 99 / 100 - 1])
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let app = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let now = app.clock.now();
    seed(app.store.as_ref(), records, now).await;
    let (base, key) = serve_api(&app, now).await;
    let client = Client {
        http: reqwest::Client::new(),
        base,
        key,
    };

    println!(
        "{:<44} {:>10} {:>8} {:>12}",
        "read", "records", "seconds", "records/s"
    );
    let (n_raw, s_raw) = raw_feed(app.store.as_ref()).await;
    let (n_list, s_list) = raw_list(app.store.as_ref()).await;
    let (n_api, s_api) = client.feed().await;
    assert_eq!((n_raw, n_list, n_api), (records, records, records));
    for (label, n, s) in [
        ("raw: Store::records_feed, 1,000/page", n_raw, s_raw),
        ("raw: Store::list_records, 1,000/page", n_list, s_list),
        ("API: GET /v1/records, limit=1000", n_api, s_api),
    ] {
        println!("{label:<44} {n:>10} {s:>8.2} {:>12.0}", n as f64 / s);
    }
    let ratio = (n_api as f64 / s_api) / (n_raw as f64 / s_raw);
    println!("feed/raw ratio: {:.0}% (goal >= 50%)", ratio * 100.0);

    let deep = client.connections_cursor(10, 500).await;
    let cases = [
        ("connections, first page", "/api/v1/connections".to_owned()),
        (
            "connections, tenant=tenant-7",
            "/api/v1/connections?tenant=tenant-7".to_owned(),
        ),
        (
            "connections, status=disabled",
            "/api/v1/connections?status=disabled".to_owned(),
        ),
        (
            "connections, cursor 5,000 deep",
            format!("/api/v1/connections?cursor={deep}"),
        ),
        ("runs, first page", "/api/v1/runs".to_owned()),
        (
            "runs, connection_id=conn-01234",
            "/api/v1/runs?connection_id=conn-01234".to_owned(),
        ),
        (
            "runs, status=failed",
            "/api/v1/runs?status=failed".to_owned(),
        ),
    ];
    println!(
        "{:<44} {:>10} {:>10}",
        "list call (200 calls)", "p50 ms", "p99 ms"
    );
    let mut worst: f64 = 0.0;
    for (label, path) in &cases {
        let (p50, p99) = client.latency(path).await;
        worst = worst.max(p99);
        println!("{label:<44} {p50:>10.2} {p99:>10.2}");
    }
    println!("worst p99: {worst:.2} ms (goal <= 50 ms)");
}
