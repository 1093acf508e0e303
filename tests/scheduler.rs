//! The scheduler tick over the real embedded store (SQLite) and the real
//! local queue, with more due tasks than one lease/send chunk: every due
//! task is leased and sent once, tenants take turns, and a refused send
//! gives back exactly the tasks whose jobs did not go out.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use syncbridge_core::events::NoEvents;
use syncbridge_core::model::{Direction, Priority, SyncTask};
use syncbridge_core::scheduler::{SEND_CHUNK, SchedulerConfig, TickError, tick};
use syncbridge_core::{
    ConnectionId, ManualClock, ObjectType, OutboundMessage, QueueError, QueueName, QueueSender,
    Store, TenantId, Timestamp,
};
use syncbridge_localqueue::LocalQueue;
use syncbridge_sqlite::SqliteStore;

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const TENANTS: usize = 40;

/// `n` due inbound tasks spread over `TENANTS` tenants (tenant i%TENANTS),
/// each on its own connection so ids stay unique.
async fn seed(store: &dyn Store, n: usize) {
    for i in 0..n {
        let conn = ConnectionId::parse(format!("c{i}")).unwrap();
        let object = ObjectType::parse("contacts").unwrap();
        store
            .put_task(&SyncTask {
                id: SyncTask::id_for(&conn, &object, Direction::Inbound),
                tenant: TenantId::parse(format!("t{}", i % TENANTS)).unwrap(),
                connection: conn,
                object,
                direction: Direction::Inbound,
                priority: Priority::Scheduled,
                interval_secs: 3600,
                next_run_at: NOW.sub(Duration::from_secs(1 + (i % 7) as u64)),
                cursor: None,
                lease: None,
                last_run_at: None,
                stalled: false,
                version: 0,
                generation: 0,
            })
            .await
            .unwrap();
    }
}

/// The real local queue, refusing every send after the first `ok` (a
/// fault injected around the real queue: a Service Bus outage mid-tick).
#[derive(Debug)]
struct RefusesAfter {
    inner: LocalQueue,
    ok: AtomicUsize,
}

#[async_trait::async_trait]
impl QueueSender for RefusesAfter {
    async fn send(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let left = self.ok.load(Ordering::SeqCst);
        if left == 0 {
            return Err(QueueError::Transient("queue unavailable".into()));
        }
        self.ok.store(left - 1, Ordering::SeqCst);
        self.inner.send(messages).await
    }
}

fn queued(queue: &LocalQueue) -> Vec<syncbridge_localqueue::Message> {
    queue.peek(QueueName::inbound().as_str()).unwrap()
}

/// What was tried: 2.5 chunks' worth of due tasks over 40 tenants, one tick,
/// then a second tick. What must hold: every due task leased and sent
/// exactly once (distinct message ids), the first 40 jobs from 40 distinct
/// tenants, and the second tick sends nothing while the leases live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_leases_and_sends_every_due_task_once_in_fair_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(dir.path()).unwrap();
    let queue = LocalQueue::open(dir.path().join("queue.db")).unwrap();
    let n = SEND_CHUNK * 2 + SEND_CHUNK / 2;
    seed(&store, n).await;
    let clock = ManualClock::new(NOW);
    let cfg = SchedulerConfig::default();

    let report = tick(&store, &queue, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!((report.enqueued, report.lost_races), (n, 0));
    let jobs = queued(&queue);
    let ids: BTreeSet<_> = jobs.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!((jobs.len(), ids.len()), (n, n), "one job per task");
    let first: BTreeSet<_> = jobs
        .iter()
        .take(TENANTS)
        .map(|m| m.properties["tenant"].clone())
        .collect();
    assert_eq!(
        first.len(),
        TENANTS,
        "every tenant gets a turn before any gets two"
    );
    assert!(store.due_tasks(NOW, 10).await.unwrap().is_empty());

    let again = tick(&store, &queue, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!(again.enqueued, 0, "live leases are not due");
    assert_eq!(queued(&queue).len(), n);
}

/// What was tried: the whole plan is leased, the queue takes the first
/// chunk, then refuses the second. What must hold: the
/// tick fails, the first chunk's jobs are queued, every other task is
/// unleased and due again at once, and the next tick (queue back) sends
/// exactly those: no task lost, none sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_send_gives_back_every_task_it_did_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(dir.path()).unwrap();
    let n = SEND_CHUNK * 2 + SEND_CHUNK / 2;
    seed(&store, n).await;
    let clock = ManualClock::new(NOW);
    let cfg = SchedulerConfig::default();
    let flaky = RefusesAfter {
        inner: LocalQueue::open(dir.path().join("queue.db")).unwrap(),
        ok: AtomicUsize::new(1),
    };

    let err = tick(&store, &flaky, &clock, &NoEvents, &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, TickError::Queue(_)), "{err:?}");
    assert_eq!(queued(&flaky.inner).len(), SEND_CHUNK);
    let due = store.due_tasks(NOW, n).await.unwrap();
    assert_eq!(due.len(), n - SEND_CHUNK, "what was not sent is due again");
    assert!(due.iter().all(|t| t.lease.is_none()));

    flaky.ok.store(usize::MAX, Ordering::SeqCst);
    let report = tick(&store, &flaky, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!(report.enqueued, n - SEND_CHUNK);
    let jobs = queued(&flaky.inner);
    let tasks: BTreeSet<_> = jobs
        .iter()
        .map(|m| {
            m.message_id
                .split(':')
                .take(3)
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    assert_eq!((jobs.len(), tasks.len()), (n, n), "every task's job once");
}
