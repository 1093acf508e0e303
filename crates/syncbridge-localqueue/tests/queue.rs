//! Behaviour of the SQLite queue against Service Bus semantics. Time only moves
//! through a `ManualClock`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use syncbridge_core::{Clock, ManualClock, OutboundMessage, QueueName, QueueSender, Timestamp};
use syncbridge_localqueue::{
    AbandonOutcome, Envelope, LocalQueue, LocalQueueError, LocalQueueOptions,
    MAX_DELIVERY_COUNT_EXCEEDED, QueueCounts, SendResult,
};

const Q: &str = "sync-inbound";
const LOCK: Duration = Duration::from_secs(30);
const T0: Timestamp = Timestamp::from_millis(1_764_331_200_000);

fn setup(max_delivery_count: u32) -> (tempfile::TempDir, Arc<ManualClock>, LocalQueue) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let q = open(dir.path(), &clock, max_delivery_count);
    (dir, clock, q)
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>, max_delivery_count: u32) -> LocalQueue {
    let opts = LocalQueueOptions {
        max_delivery_count,
        ..LocalQueueOptions::with_clock(clock.clone())
    };
    LocalQueue::open_with(dir.join("queue.db"), opts).unwrap()
}

fn msg(id: &str) -> OutboundMessage {
    OutboundMessage {
        queue: QueueName::new(Q),
        message_id: id.into(),
        body: id.as_bytes().to_vec(),
        content_type: Some("text/plain".into()),
        scheduled_enqueue_at: None,
        session_id: None,
        properties: BTreeMap::new(),
    }
}

/// A repeated MessageId inside the window is dropped but the send succeeds; after the window it is accepted again.
#[tokio::test]
async fn duplicate_detection_window() {
    let (_dir, clock, q) = setup(10);
    q.send(vec![msg("a")]).await.unwrap();
    clock.advance(Duration::from_secs(9 * 60));
    q.send(vec![msg("a"), msg("b")]).await.unwrap();
    assert_eq!(q.counts(Q).unwrap().active, 2, "a once, b once");
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        q.enqueue(&[msg("a")]).unwrap()[..],
        [SendResult::Enqueued { .. }]
    ));
    assert_eq!(q.counts(Q).unwrap().active, 3);
    // Same id in one batch: the second copy is the duplicate.
    assert_eq!(
        q.enqueue(&[msg("c"), msg("c")]).unwrap()[1],
        SendResult::Duplicate
    );
}

/// Duplicate detection also holds after the original was completed (it is keyed on the id, not on presence).
#[test]
fn duplicate_after_complete_is_dropped() {
    let (_dir, _clock, q) = setup(10);
    q.enqueue(&[msg("a")]).unwrap();
    let m = q.receive(Q, LOCK).unwrap().unwrap();
    q.complete(&m.lock_token).unwrap();
    assert_eq!(q.enqueue(&[msg("a")]).unwrap(), vec![SendResult::Duplicate]);
    assert!(q.receive(Q, LOCK).unwrap().is_none());
}

/// A scheduled message is invisible (counted as scheduled) until its time, then delivered with that enqueue time.
#[test]
fn scheduled_enqueue_is_respected() {
    let (_dir, clock, q) = setup(10);
    let at = T0.add(Duration::from_secs(60));
    q.enqueue(&[msg("later").at(at)]).unwrap();
    assert_eq!(
        q.counts(Q).unwrap(),
        QueueCounts {
            scheduled: 1,
            ..Default::default()
        }
    );
    assert!(q.receive(Q, LOCK).unwrap().is_none());
    clock.advance(Duration::from_secs(59));
    assert!(q.receive(Q, LOCK).unwrap().is_none());
    clock.advance(Duration::from_secs(1));
    let m = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(m.message.message_id, "later");
    assert_eq!(m.message.enqueued_time, at);
    assert_eq!(m.message.scheduled_enqueue_time, Some(at));
}

/// A locked message is invisible to other receivers until the lock expires, then redelivered with DeliveryCount 2.
#[test]
fn peek_lock_invisibility_and_expiry_redelivery() {
    let (_dir, clock, q) = setup(10);
    q.enqueue(&[msg("a")]).unwrap();
    let first = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(first.message.delivery_count, 1);
    assert_eq!(first.locked_until, T0.add(LOCK));
    assert!(
        q.receive(Q, LOCK).unwrap().is_none(),
        "invisible while locked"
    );
    assert_eq!(
        q.counts(Q).unwrap(),
        QueueCounts {
            locked: 1,
            ..Default::default()
        }
    );
    clock.advance(LOCK);
    let second = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(second.message.delivery_count, 2);
    assert_ne!(second.lock_token, first.lock_token);
    assert!(matches!(
        q.complete(&first.lock_token),
        Err(LocalQueueError::LockLost)
    ));
    q.complete(&second.lock_token).unwrap();
    assert_eq!(q.counts(Q).unwrap(), QueueCounts::default());
}

/// Completing with an expired lock fails with LockLost even if nobody took the message since.
#[test]
fn complete_after_lock_expiry_is_lock_lost() {
    let (_dir, clock, q) = setup(10);
    q.enqueue(&[msg("a")]).unwrap();
    let m = q.receive(Q, LOCK).unwrap().unwrap();
    clock.advance(LOCK + Duration::from_millis(1));
    assert!(matches!(
        q.complete(&m.lock_token),
        Err(LocalQueueError::LockLost)
    ));
    assert_eq!(q.counts(Q).unwrap().active, 1);
}

/// Abandon redelivers at once with DeliveryCount+1; at MaxDeliveryCount it moves to the DLQ with the documented reason.
#[test]
fn abandon_redelivers_then_dead_letters() {
    let (_dir, _clock, q) = setup(3);
    q.enqueue(&[msg("poison")]).unwrap();
    for expected in 1..=3 {
        let m = q.receive(Q, LOCK).unwrap().unwrap();
        assert_eq!(m.message.delivery_count, expected);
        let outcome = q.abandon(&m.lock_token).unwrap();
        let want = if expected == 3 {
            AbandonOutcome::DeadLettered
        } else {
            AbandonOutcome::Redelivered
        };
        assert_eq!(outcome, want);
    }
    assert!(q.receive(Q, LOCK).unwrap().is_none());
    assert_eq!(
        q.counts(Q).unwrap(),
        QueueCounts {
            dead_lettered: 1,
            ..Default::default()
        }
    );
    let dl = q.dead_letters(Q).unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].queue, "sync-inbound/$DeadLetterQueue");
    assert_eq!(
        dl[0].dead_letter_reason.as_deref(),
        Some(MAX_DELIVERY_COUNT_EXCEEDED)
    );
    assert_eq!(dl[0].delivery_count, 3);
    assert_eq!(dl[0].body, b"poison");
    // The DLQ itself is receivable.
    let from_dlq = q
        .receive("sync-inbound/$DeadLetterQueue", LOCK)
        .unwrap()
        .unwrap();
    q.complete(&from_dlq.lock_token).unwrap();
    assert_eq!(q.counts(Q).unwrap(), QueueCounts::default());
}

/// An expired lock at MaxDeliveryCount counts as the last delivery: the message is dead-lettered, not redelivered.
#[test]
fn lock_expiry_at_max_dead_letters() {
    let (_dir, clock, q) = setup(2);
    q.enqueue(&[msg("slow")]).unwrap();
    q.receive(Q, LOCK).unwrap().unwrap();
    clock.advance(LOCK);
    let m = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(m.message.delivery_count, 2);
    clock.advance(LOCK);
    assert!(q.receive(Q, LOCK).unwrap().is_none());
    assert_eq!(q.counts(Q).unwrap().dead_lettered, 1);
}

/// Locks left by a receiver that died end at once with `expire_all_locks` (clock not moved):
/// the message is received again with the next delivery count, and its old lock token is lost.
#[test]
fn expire_all_locks_redelivers_at_once() {
    let (dir, clock, q) = setup(10);
    q.enqueue(&[msg("in-flight"), msg("waiting")]).unwrap();
    let held = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(held.message.message_id, "in-flight");
    // A new handle, as a restarted host opens the file; the old one's holder is gone.
    let fresh = open(dir.path(), &clock, 10);
    assert_eq!(fresh.expire_all_locks().unwrap(), 1);
    assert_eq!(fresh.expire_all_locks().unwrap(), 0, "nothing left to end");
    let again = fresh.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(
        (
            again.message.message_id.as_str(),
            again.message.delivery_count
        ),
        ("in-flight", 2)
    );
    assert!(matches!(
        q.complete(&held.lock_token),
        Err(LocalQueueError::LockLost)
    ));
    assert_eq!(q.counts(Q).unwrap().dead_lettered, 0);
}

/// Messages, delivery counts and dedup history survive closing and reopening the file.
#[test]
fn reopen_keeps_messages() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    {
        let q = open(dir.path(), &clock, 10);
        q.enqueue(&[msg("a"), msg("b")]).unwrap();
        let m = q.receive(Q, LOCK).unwrap().unwrap();
        q.abandon(&m.lock_token).unwrap();
    }
    let q = open(dir.path(), &clock, 10);
    assert_eq!(q.enqueue(&[msg("a")]).unwrap(), vec![SendResult::Duplicate]);
    let m = q.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(
        (m.message.message_id.as_str(), m.message.delivery_count),
        ("a", 2)
    );
    assert_eq!(m.message.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        q.counts(Q).unwrap(),
        QueueCounts {
            active: 1,
            locked: 1,
            ..Default::default()
        }
    );
}

/// Two handles on one file see each other's sends, locks and completions.
#[test]
fn two_handles_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let sender = open(dir.path(), &clock, 10);
    let receiver = open(dir.path(), &clock, 10);
    sender.enqueue(&[msg("a"), msg("b")]).unwrap();
    let a = receiver.receive(Q, LOCK).unwrap().unwrap();
    let b = sender.receive(Q, LOCK).unwrap().unwrap();
    assert_eq!(
        (a.message.message_id.as_str(), b.message.message_id.as_str()),
        ("a", "b")
    );
    assert!(receiver.receive(Q, LOCK).unwrap().is_none());
    sender.complete(&a.lock_token).unwrap();
    assert_eq!(
        receiver.enqueue(&[msg("b")]).unwrap(),
        vec![SendResult::Duplicate]
    );
    assert_eq!(
        sender.counts(Q).unwrap(),
        QueueCounts {
            locked: 1,
            ..Default::default()
        }
    );
}

/// Concurrent senders on separate handles (threads) lose nothing and get distinct sequence numbers.
#[test]
fn concurrent_handles_do_not_lose_sends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let q = open(dir.path(), &clock, 10);
            std::thread::spawn(move || {
                for i in 0..25 {
                    q.enqueue(&[msg(&format!("{t}-{i}"))]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let q = open(dir.path(), &clock, 10);
    let all = q.peek(Q).unwrap();
    assert_eq!(all.len(), 100);
    let mut seqs: Vec<i64> = all.iter().map(|m| m.sequence_number).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 100);
}

/// Broker properties from an envelope round-trip; a TTL makes the message vanish once expired.
#[test]
fn envelope_properties_and_ttl() {
    let (_dir, clock, q) = setup(10);
    let mut m = msg("p");
    m.properties.insert("tenant".into(), "t1".into());
    m.session_id = Some("s1".into());
    let env = Envelope {
        message: m,
        subject: Some("Label".into()),
        correlation_id: Some("c1".into()),
        time_to_live: Some(Duration::from_secs(5)),
    };
    q.enqueue_envelopes(&[
        env.clone(),
        Envelope {
            message: msg("q"),
            ..env.clone()
        },
    ])
    .unwrap();
    let got = q.receive(Q, LOCK).unwrap().unwrap().message;
    assert_eq!(got.properties.get("tenant").map(String::as_str), Some("t1"));
    assert_eq!(got.session_id.as_deref(), Some("s1"));
    assert_eq!(got.subject.as_deref(), Some("Label"));
    assert_eq!(got.correlation_id.as_deref(), Some("c1"));
    assert_eq!(got.expires_at, Some(T0.add(Duration::from_secs(5))));
    clock.advance(Duration::from_secs(5));
    assert!(
        q.receive(Q, LOCK).unwrap().is_none(),
        "the unlocked one expired"
    );
    assert_eq!(q.counts(Q).unwrap().active, 0);
}

/// Senders cannot target a DLQ, and oversize ids are refused as permanent errors.
#[tokio::test]
async fn invalid_sends_are_permanent_errors() {
    let (_dir, _clock, q) = setup(10);
    let mut m = msg("x");
    m.queue = QueueName::new("sync-inbound/$DeadLetterQueue");
    assert!(!q.send(vec![m]).await.unwrap_err().is_transient());
    assert!(
        !q.send(vec![msg(&"x".repeat(129))])
            .await
            .unwrap_err()
            .is_transient()
    );
    assert!(!q.queue_exists(Q).unwrap(), "failed sends declare nothing");
    q.declare_queue(Q).unwrap();
    assert!(q.queue_exists(Q).unwrap() && q.queue_exists("sync-inbound/$DeadLetterQueue").unwrap());
    assert_eq!(q.queues().unwrap(), vec![Q.to_string()]);
}

/// What was tried: chunks sent in one call, once with a bad message (an
/// id over 128 characters) in the last chunk, then all valid ones with a
/// repeat across chunks. What holds: the bad call stores nothing and says
/// no chunk was sent (so the scheduler gives every task back); the good
/// one stores every message once, in order (duplicate detection spans the
/// chunks of one call).
#[tokio::test]
async fn chunks_are_sent_all_or_nothing() {
    let (_dir, _clock, q) = setup(10);
    let bad = vec![
        vec![msg("a"), msg("b")],
        vec![msg("c"), msg(&"x".repeat(129))],
    ];
    let err = q.send_chunks(bad).await.unwrap_err();
    assert_eq!(err.sent, 0);
    assert!(!err.error.is_transient());
    assert!(!q.queue_exists(Q).unwrap(), "nothing stored");
    let good = vec![vec![msg("a"), msg("b")], vec![msg("c"), msg("a")]];
    q.send_chunks(good).await.unwrap();
    let ids: Vec<String> = q
        .peek(Q)
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    Receive,
    Complete(usize),
    Abandon(usize),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12).prop_map(Op::Send),
        3 => Just(Op::Receive),
        2 => (0usize..8).prop_map(Op::Complete),
        1 => (0usize..8).prop_map(Op::Abandon),
        1 => (0u16..400).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Model check: any sequence of send/receive/complete/abandon/time never loses a message nor completes one twice.
    #[test]
    fn never_loses_or_duplicates_a_completed_message(ops in proptest::collection::vec(op(), 1..60)) {
        let (_dir, clock, q) = setup(4);
        // Model: ids accepted (dedup window 10 min ≫ the ≤ 400 s steps here, so ids are unique per run
        // unless 10 min pass), ids completed, and locks handed out.
        let window = Duration::from_secs(600);
        let mut first_seen: BTreeMap<String, Timestamp> = BTreeMap::new();
        let mut accepted: Vec<String> = Vec::new();
        let mut completed: Vec<String> = Vec::new();
        let mut held: Vec<(String, String)> = Vec::new(); // (lock token, message id)
        for op in ops {
            match op {
                Op::Send(n) => {
                    let id = format!("m{n}");
                    let dup = first_seen.get(&id).is_some_and(|t| t.add(window) > clock.now());
                    let res = q.enqueue(&[msg(&id)]).unwrap();
                    prop_assert_eq!(res[0] == SendResult::Duplicate, dup);
                    if !dup {
                        first_seen.insert(id.clone(), clock.now());
                        accepted.push(id);
                    }
                }
                Op::Receive => {
                    if let Some(m) = q.receive(Q, LOCK).unwrap() {
                        held.push((m.lock_token, m.message.message_id));
                    }
                }
                Op::Complete(i) if !held.is_empty() => {
                    let (token, id) = held.remove(i % held.len());
                    if q.complete(&token).is_ok() {
                        completed.push(id);
                    }
                }
                Op::Abandon(i) if !held.is_empty() => {
                    let (token, _) = held.remove(i % held.len());
                    let _ = q.abandon(&token);
                }
                Op::Advance(s) => clock.advance(Duration::from_secs(u64::from(s))),
                _ => {}
            }
        }
        // Drain: let every lock expire, then complete everything still in the queue.
        clock.advance(LOCK);
        while let Some(m) = q.receive(Q, LOCK).unwrap() {
            q.complete(&m.lock_token).unwrap();
            completed.push(m.message.message_id);
        }
        let dead: Vec<String> = q.dead_letters(Q).unwrap().into_iter().map(|m| m.message_id).collect();
        // Every accepted send ends completed or dead-lettered, exactly once.
        let mut outcome: Vec<String> = completed.iter().chain(dead.iter()).cloned().collect();
        outcome.sort();
        accepted.sort();
        prop_assert_eq!(outcome, accepted);
    }
}
