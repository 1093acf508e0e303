//! The scheduler, the watchdog and the token sweep at the scale of a real
//! deployment, on the embedded default (SQLite store + local SQLite queue).
//!
//! Run with: `cargo run --release -p syncbridge-tests --bin bench-scheduler`
//! (optional arguments: tenants, connections per tenant, tasks).
//!
//! Seeds 10,000 tenants, 30,000 connections (each with a sealed credential
//! whose sweep time is a day away) and 100,000 inbound tasks, a third of
//! them due, then times:
//! - one `SyncScheduler` tick with the shipped `SchedulerConfig` (lease and
//!   enqueue every due task, fair across tenants, plus the watchdog and the
//!   outbox relay);
//! - a second tick right after, with nothing due (every due task is leased);
//! - the watchdog's and the sweep's store reads with nothing to do.
//!
//! Ends with `due=N leased=N enqueued=N tick_ms=X empty_tick_ms=Y`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use syncbridge_core::events::NoEvents;
use syncbridge_core::model::{Connection, ConnectionStatus, Direction, Priority, SyncTask};
use syncbridge_core::scheduler::{SchedulerConfig, tick};
use syncbridge_core::store::SealedCredential;
use syncbridge_core::{
    ConnectionId, ManualClock, ObjectType, QueueName, Store, TenantId, Timestamp,
};
use syncbridge_localqueue::LocalQueue;
use syncbridge_sqlite::SqliteStore;

const OBJECTS: [&str; 4] = ["contacts", "companies", "deals", "tickets"];

struct Scale {
    tenants: usize,
    per_tenant: usize,
    tasks: usize,
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn connection(id: &ConnectionId, tenant: &TenantId, now: Timestamp) -> Connection {
    Connection {
        id: id.clone(),
        tenant: tenant.clone(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: None,
        webhook: None,
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: now,
    }
}

/// Task `i` of connection `conn`: every third one due now, the rest within the hour.
fn task(conn: &Connection, object: usize, i: usize, now: Timestamp) -> SyncTask {
    let o = ObjectType::parse(format!("{}{}", OBJECTS[object % 4], object / 4)).unwrap();
    let due = if i.is_multiple_of(3) {
        now.sub(Duration::from_secs(1 + (i % 60) as u64))
    } else {
        now.add(Duration::from_secs(60 + (i % 3000) as u64))
    };
    SyncTask {
        id: SyncTask::id_for(&conn.id, &o, Direction::Inbound),
        tenant: conn.tenant.clone(),
        connection: conn.id.clone(),
        object: o,
        direction: Direction::Inbound,
        priority: Priority::Scheduled,
        interval_secs: 3600,
        next_run_at: due,
        cursor: None,
        lease: None,
        last_run_at: Some(due.sub(Duration::from_secs(3600))),
        stalled: false,
        version: 0,
        generation: 0,
    }
}

fn credential(conn: &ConnectionId, now: Timestamp) -> SealedCredential {
    SealedCredential {
        connection: conn.clone(),
        version: 1,
        key_version: "k1".into(),
        nonce: vec![0; 12],
        ciphertext: vec![0; 200],
        expires_at: Some(now.add(Duration::from_secs(30 * 86_400))),
        refreshed_at: now,
        sweep_at: Some(now.add(Duration::from_secs(86_400))),
    }
}

async fn seed(store: &dyn Store, s: &Scale, now: Timestamp) -> usize {
    let conns = s.tenants * s.per_tenant;
    let mut due = 0;
    for c in 0..conns {
        let tenant = TenantId::parse(format!("tenant-{}", c % s.tenants)).unwrap();
        let id = ConnectionId::parse(format!("conn-{c}")).unwrap();
        let conn = connection(&id, &tenant, now);
        store.put_connection(&conn).await.unwrap();
        store
            .put_credential(&credential(&id, now), None)
            .await
            .unwrap();
        // Tasks spread evenly: connection c gets tasks i ≡ c (mod conns).
        for (object, i) in (c..s.tasks).step_by(conns).enumerate() {
            store.put_task(&task(&conn, object, i, now)).await.unwrap();
            due += usize::from(i.is_multiple_of(3));
        }
    }
    due
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = Scale {
        tenants: arg(1, 10_000),
        per_tenant: arg(2, 3),
        tasks: arg(3, 100_000),
    };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
    let queue = LocalQueue::open(dir.path().join("queue.db")).unwrap();
    let now = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(now);

    let t0 = Instant::now();
    let due = seed(&*store, &scale, now).await;
    println!(
        "seeded {} tenants, {} connections, {} tasks ({} due) in {:.1} s",
        scale.tenants,
        scale.tenants * scale.per_tenant,
        scale.tasks,
        due,
        t0.elapsed().as_secs_f64()
    );

    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let read = store.due_tasks(now, cfg.scan_limit).await.unwrap().len();
    println!(
        "of the tick: reading the {read} due tasks alone takes {:.1} ms",
        ms(t0.elapsed())
    );
    let (t0, cpu0) = (Instant::now(), cpu_ms());
    let report = tick(&*store, &queue, &clock, &NoEvents, &cfg)
        .await
        .unwrap();
    let tick_time = t0.elapsed();
    // CPU time of the process over the tick: what the wall time would be
    // on an otherwise idle machine (the tick is one sequential pipeline),
    // so a loaded machine's figure can be read against it.
    println!("tick CPU time: {:.0} ms", cpu_ms() - cpu0);
    let t0 = Instant::now();
    let empty = tick(&*store, &queue, &clock, &NoEvents, &cfg)
        .await
        .unwrap();
    let empty_time = t0.elapsed();
    assert_eq!(
        empty.enqueued, 0,
        "everything due was leased by the first tick"
    );

    let t0 = Instant::now();
    let stalled = store.stall_candidates(now, cfg.scan_limit).await.unwrap();
    let watchdog_time = t0.elapsed();
    let t0 = Instant::now();
    let sweep = store.credentials_due(now, 1000).await.unwrap();
    let sweep_time = t0.elapsed();
    println!(
        "watchdog read: {} candidates in {:.2} ms; sweep read: {} due in {:.2} ms",
        stalled.len(),
        ms(watchdog_time),
        sweep.len(),
        ms(sweep_time)
    );

    let (first_round, queued) = fairness(&queue, scale.tenants);
    println!(
        "fairness: the first {} jobs in the queue come from {} distinct tenants; {} queued",
        scale.tenants.min(queued),
        first_round,
        queued
    );
    println!(
        "due={due} leased={} enqueued={} tick_ms={:.1} empty_tick_ms={:.2}",
        report.enqueued + report.lost_races,
        report.enqueued,
        ms(tick_time),
        ms(empty_time)
    );
}

/// User + system CPU time of this process so far, in milliseconds (from
/// /proc/self/stat, in clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() * 10.0
}

/// How many distinct tenants the first `tenants` queued jobs belong to (all
/// of them when the tick round-robins tenants), and how many jobs are queued.
fn fairness(queue: &LocalQueue, tenants: usize) -> (usize, usize) {
    let jobs = queue
        .peek(QueueName::inbound().as_str())
        .expect("the local queue lists its messages");
    let first: BTreeSet<String> = jobs
        .iter()
        .take(tenants)
        .filter_map(|m| m.properties.get("tenant").cloned())
        .collect();
    (first.len(), jobs.len())
}
