//! The fleet the `bench-api` and `bench-dashboard` programs seed: 10,000
//! connections across 1,000 tenants (every 100th disabled), one hourly
//! `contacts` task each and 100,000 runs (10 per connection, one a second
//! going back from now, one in ten failed, spread evenly); and the API
//! they serve it through.

use std::time::Duration;

use syncbridge_core::apikeys::ApiScope;
use syncbridge_core::model::{
    Connection, ConnectionStatus, RunCounts, RunStatus, SyncRun, SyncTask,
};
use syncbridge_core::{ConnectionId, ObjectType, RunId, Store, TenantId, Timestamp};
use syncbridge_functions::AppState;

use crate::inbound_task;

/// Connections seeded.
pub const CONNECTIONS: usize = 10_000;
/// Tenants they belong to (connection `c` to tenant `c % TENANTS`).
pub const TENANTS: usize = 1_000;
/// Runs per connection.
pub const RUNS_PER_CONNECTION: usize = 10;

/// Connection `c`: `conn-{c:05}`, created at `now`.
pub fn connection(c: usize, now: Timestamp) -> Connection {
    Connection {
        id: ConnectionId::parse(format!("conn-{c:05}")).unwrap(),
        tenant: TenantId::parse(format!("tenant-{}", c % TENANTS)).unwrap(),
        provider: "sandbox".into(),
        // A few disabled ones, for a selective status filter.
        status: if c % 100 == 99 {
            ConnectionStatus::Disabled
        } else {
            ConnectionStatus::Active
        },
        base_url: None,
        webhook: None,
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: now,
    }
}

/// Run `n` of connection `c`: runs interleave across connections in time (one
/// a second), one in ten failed, spread evenly.
pub fn run(task: &SyncTask, c: usize, n: usize, now: Timestamp) -> SyncRun {
    let started_at = now.sub(Duration::from_secs((n * CONNECTIONS + c + 1) as u64));
    let failed = (c + n) % 10 == 3;
    SyncRun {
        id: RunId::parse(format!("run-{}-{n:02}", task.connection.as_str())).unwrap(),
        task: task.id.clone(),
        connection: task.connection.clone(),
        started_at,
        finished_at: Some(started_at.add(Duration::from_secs(5))),
        status: if failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        },
        counts: RunCounts {
            pages: 1,
            fetched: 100,
            created: 10,
            updated: 5,
            unchanged: 85,
            ..Default::default()
        },
        error: failed.then(|| "provider answered 500".to_owned()),
    }
}

/// Seeds connection `c` with its task and runs; its task.
pub async fn seed_connection(store: &dyn Store, c: usize, now: Timestamp) -> SyncTask {
    let conn = connection(c, now);
    store.put_connection(&conn).await.unwrap();
    let t = inbound_task(&conn, ObjectType::parse("contacts").unwrap(), now);
    store.put_task(&t).await.unwrap();
    for n in 0..RUNS_PER_CONNECTION {
        store.put_run(&run(&t, c, n, now)).await.unwrap();
    }
    t
}

/// Makes an admin key on `app`'s store and serves `syncbridge_api::router`
/// (the API and the embedded dashboard) on 127.0.0.1: the base URL and the key.
pub async fn serve_api(app: &AppState, now: Timestamp) -> (String, String) {
    let key = syncbridge_api::keys::create(app.store.as_ref(), "bench", ApiScope::Admin, now)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = syncbridge_api::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, key.key.expose().to_owned())
}
