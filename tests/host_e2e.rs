//! Foundation end to end: the five real handler binaries under the local host.
//!
//! What was tried and what must hold:
//! - a SyncScheduler timer tick enqueues a job that SyncInboundWorker consumes
//!   and completes (records land in the store, the queue is empty);
//! - a message whose handler keeps failing is redelivered with a growing
//!   DeliveryCount and dead-lettered after MaxDeliveryCount, nothing lost;
//! - an undecodable message is quarantined and acknowledged, not retried hot;
//! - messages enqueued while the host is down are delivered after a restart.

use std::time::Duration;

use syncbridge_core::model::{JobReason, Priority, SyncJob};
use syncbridge_core::{OutboundMessage, QueueName, QueueSender, Store};
use syncbridge_tests::*;

const WAIT: Duration = Duration::from_secs(60);

/// A timer tick produces a queue message that the inbound worker consumes and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_tick_reaches_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(250).await;
    let store = store(dir.path());
    let tasks = add_connection(&store, "c1", &sbx.base_url(), &["contacts"], None).await;
    let host = start_host(host_config(dir.path())).await;

    let fired = host
        .fire_timer("SyncScheduler")
        .await
        .expect("the scheduler invocation succeeds");
    assert!(
        fired
            .response
            .logs
            .iter()
            .any(|l| l.starts_with("enqueued 1 job")),
        "scheduler logs: {:?}",
        fired.response.logs
    );
    let t = &tasks[0];
    let run = eventually(WAIT, "the inbound run to finish", || async {
        store
            .list_runs(Some(&t.id), 1)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(run.status.as_str(), "succeeded", "{run:?}");
    assert_eq!(run.counts.created, 250);
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        250
    );
    let counts = eventually(WAIT, "the message to be completed", || async {
        let c = host.queue.counts(QueueName::SYNC_INBOUND).unwrap();
        (c.active + c.locked + c.scheduled == 0).then_some(c)
    })
    .await;
    assert_eq!(counts.dead_lettered, 0);
    let task = store.get_task(&t.id).await.unwrap().unwrap();
    assert!(task.lease.is_none(), "the lease is released");
    assert!(task.cursor.is_some(), "the cursor is committed");
    host.shutdown().await;
}

/// A handler that keeps failing (corrupt task row → 500) is redelivered and dead-lettered after MaxDeliveryCount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_message_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let tasks = add_connection(&store, "c1", "http://127.0.0.1:9", &["contacts"], None).await;
    // Corrupt the task document so every delivery fails with a store error.
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    db.execute(
        "UPDATE task_docs SET doc = '{broken' WHERE id = ?1",
        [tasks[0].id.as_str()],
    )
    .unwrap();
    let mut cfg = host_config(dir.path());
    cfg.max_delivery_count = 3;
    let host = start_host(cfg).await;
    let job = SyncJob {
        task: tasks[0].id.clone(),
        connection: tasks[0].connection.clone(),
        object: tasks[0].object.clone(),
        priority: Priority::Interactive,
        reason: JobReason::Manual,
        lease_token: "v0".into(),
    };
    host.queue
        .send(vec![OutboundMessage::json(
            QueueName::inbound(),
            "job-1",
            &job,
        )])
        .await
        .unwrap();
    let dead = eventually(WAIT, "the message to be dead-lettered", || async {
        host.queue
            .dead_letters(QueueName::SYNC_INBOUND)
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(dead.message_id, "job-1");
    assert_eq!(dead.delivery_count, 3, "delivered MaxDeliveryCount times");
    assert_eq!(
        dead.dead_letter_reason.as_deref(),
        Some("MaxDeliveryCountExceeded")
    );
    assert_eq!(
        dead.body,
        serde_json::to_vec(&job).unwrap(),
        "the body is kept intact"
    );
    host.shutdown().await;
}

/// A message that is not a sync job is quarantined once and acknowledged (no redelivery, no dead letter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let host = start_host(host_config(dir.path())).await;
    let mut msg = OutboundMessage::json(
        QueueName::inbound(),
        "poison-1",
        &serde_json::json!({"hello": "world"}),
    );
    msg.body = b"\xff\xfe not json".to_vec();
    host.queue.send(vec![msg]).await.unwrap();
    let q = eventually(WAIT, "the message to be quarantined", || async {
        store.list_quarantine(10).await.unwrap().into_iter().next()
    })
    .await;
    assert_eq!(q.message.source, "SyncInboundWorker");
    assert_eq!(q.message.message_id.as_deref(), Some("poison-1"));
    assert_eq!(q.message.body, b"\xff\xfe not json");
    eventually(WAIT, "the queue to drain", || async {
        let c = host.queue.counts(QueueName::SYNC_INBOUND).unwrap();
        (c.active + c.locked == 0).then_some(())
    })
    .await;
    assert_eq!(
        host.queue
            .counts(QueueName::SYNC_INBOUND)
            .unwrap()
            .dead_lettered,
        0
    );
    assert_eq!(
        store.list_quarantine(10).await.unwrap().len(),
        1,
        "quarantined exactly once"
    );
    host.shutdown().await;
}

/// Messages sent while the host is stopped are delivered after it restarts (the queue is a file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(30).await;
    let store = store(dir.path());
    let tasks = add_connection(&store, "c1", &sbx.base_url(), &["contacts", "deals"], None).await;
    let host = start_host(host_config(dir.path())).await;
    host.shutdown().await;
    drop(host);

    // While the host is down: lease the tasks and enqueue their jobs directly.
    let queue = syncbridge_localqueue::LocalQueue::open(dir.path().join("queue.db")).unwrap();
    let report = syncbridge_core::scheduler::tick(
        &store,
        &queue,
        &syncbridge_core::SystemClock,
        &syncbridge_core::events::NoEvents,
        &syncbridge_core::scheduler::SchedulerConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, 2);
    assert_eq!(queue.counts(QueueName::SYNC_INBOUND).unwrap().active, 2);
    drop(queue);

    let host = start_host(host_config(dir.path())).await;
    for t in &tasks {
        eventually(WAIT, "the run after restart", || async {
            store
                .list_runs(Some(&t.id), 1)
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.finished_at.is_some())
        })
        .await;
        assert_eq!(
            store.count_records(&t.connection, &t.object).await.unwrap(),
            30
        );
    }
    host.shutdown().await;
}
