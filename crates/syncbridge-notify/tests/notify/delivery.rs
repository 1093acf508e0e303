//! Durable delivery: retries with backoff, at-least-once across crashes.

use std::sync::Arc;
use std::time::Duration;
use syncbridge_core::Clock as _;

use syncbridge_core::SystemClock;
use syncbridge_notify::samples::sample_events;
use syncbridge_notify::{
    ChannelConfig, ChannelKind, DeliveryReport, NotificationService, NotifyConfig,
};

use crate::common::{Recorder, Reply, accepted_by_id, clock, one_channel, service};

fn event() -> syncbridge_core::events::Event {
    sample_events().remove(0)
}

/// A channel that answers 500 then 200 receives the message exactly once after the retry (counted by message id), and the retry waits for its backoff.
#[tokio::test]
async fn answer_500_then_200_delivers_exactly_once() {
    let rec = Recorder::start().await;
    rec.script([Reply::new(500, "rollup_error")]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack("s", rec.url("/hook"))),
        &clock,
    );
    svc.enqueue(event()).await.unwrap();
    let r1 = svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(
        r1,
        DeliveryReport {
            delivered: 0,
            retrying: 1,
            dead: 0
        }
    );
    clock.advance(Duration::from_secs(4)); // backoff is 5 s
    assert_eq!(
        svc.deliver_due(clock.now()).await.unwrap(),
        DeliveryReport::default()
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3600));
        svc.deliver_due(clock.now()).await.unwrap();
    }
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2, "one failed attempt, one success");
    assert_eq!(
        crate::common::message_id(ChannelKind::Slack, &reqs[0]),
        crate::common::message_id(ChannelKind::Slack, &reqs[1]),
        "the retry is the same message"
    );
    let accepted = accepted_by_id(ChannelKind::Slack, &reqs);
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].1, 1, "accepted exactly once");
    assert_eq!(reqs[0].body, reqs[1].body, "a retry sends the same body");
    let stats = svc.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.dead), (0, 1, 0));
}

/// A crash between enqueue and delivery loses nothing: a new service on the same file delivers what the dropped one recorded.
#[tokio::test]
async fn crash_between_enqueue_and_delivery_still_delivers() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = one_channel(ChannelConfig::teams("t", rec.url("/hook")));
    {
        let before = service(dir.path(), config.clone(), &clock);
        for e in sample_events().into_iter().take(3) {
            before.enqueue(e).await.unwrap();
        }
        // dropped without delivering: the process "crashed"
    }
    assert!(rec.requests().is_empty());
    let after = service(dir.path(), config, &clock);
    assert_eq!(after.stats().await.unwrap().pending, 3);
    assert_eq!(after.deliver_due(clock.now()).await.unwrap().delivered, 3);
    assert_eq!(accepted_by_id(ChannelKind::Teams, &rec.requests()).len(), 3);
}

/// A crash while a request is in flight (answer never recorded) resends the same message after the claim's lease: at-least-once, with a stable id for dedupe.
#[tokio::test]
async fn crash_during_send_resends_after_lease() {
    let rec = Recorder::start().await;
    let mut slow = Reply::new(200, "ok");
    slow.delay = Duration::from_secs(30);
    rec.script([slow]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = one_channel(ChannelConfig::webhook(
        "w",
        rec.url("/hook"),
        crate::common::WHSEC,
    ));
    {
        let before = service(dir.path(), config.clone(), &clock);
        before.enqueue(event()).await.unwrap();
        let pass = before.deliver_due(clock.now());
        tokio::pin!(pass);
        // "Crash": abandon the pass once the request has reached the channel.
        let deadline = std::time::Instant::now() + Duration::from_secs(9);
        while rec.requests().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "request never arrived"
            );
            tokio::select! {
                _ = &mut pass => panic!("the pass ended although the channel never answered"),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        assert_eq!(rec.requests().len(), 1);
    }
    let after = service(dir.path(), config, &clock);
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        after.deliver_due(clock.now()).await.unwrap(),
        DeliveryReport::default(),
        "still claimed"
    );
    clock.advance(Duration::from_secs(60)); // past timeout + 30 s lease
    assert_eq!(after.deliver_due(clock.now()).await.unwrap().delivered, 1);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
}

/// An answer no retry can fix (404 from a deleted Slack webhook) marks the message dead at once, with the status and body kept for the operator.
#[tokio::test]
async fn permanent_answer_is_dead_without_retry() {
    let rec = Recorder::start().await;
    rec.respond_always(Reply::new(404, "no_service"));
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack("s", rec.url("/hook"))),
        &clock,
    );
    svc.enqueue(event()).await.unwrap();
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().dead, 1);
    clock.advance(Duration::from_secs(86_400));
    svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(rec.requests().len(), 1);
    let dead = svc.dead_messages(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].channel, "s");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("slack answered HTTP 404: no_service")
    );
}

/// Retries back off exponentially (5, 10, 20 s) and stop after `max_attempts`, leaving the message dead.
#[tokio::test]
async fn retries_back_off_and_stop_after_max_attempts() {
    let rec = Recorder::start().await;
    rec.respond_always(Reply::new(503, "busy"));
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut config = one_channel(ChannelConfig::teams("t", rec.url("/hook")));
    config.delivery.max_attempts = 4;
    let svc = service(dir.path(), config, &clock);
    svc.enqueue(event()).await.unwrap();
    svc.deliver_due(clock.now()).await.unwrap();
    let mut attempts_at = vec![0u64];
    let mut elapsed = 0u64;
    while elapsed < 600 {
        clock.advance(Duration::from_secs(1));
        elapsed += 1;
        let before = rec.requests().len();
        svc.deliver_due(clock.now()).await.unwrap();
        if rec.requests().len() > before {
            attempts_at.push(elapsed);
        }
    }
    assert_eq!(attempts_at, vec![0, 5, 15, 35], "backoff 5, 10, 20 s");
    let stats = svc.stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 1));
}

/// A 429 answer's `Retry-After` delays the retry beyond the normal backoff.
#[tokio::test]
async fn retry_after_is_honoured() {
    let rec = Recorder::start().await;
    let mut throttled = Reply::new(429, "slow down");
    throttled.headers.push(("retry-after", "120".into()));
    rec.script([throttled]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack("s", rec.url("/hook"))),
        &clock,
    );
    svc.enqueue(event()).await.unwrap();
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().retrying, 1);
    clock.advance(Duration::from_secs(119));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
}

/// An unreachable channel (nothing listening) is retried, not dropped.
#[tokio::test]
async fn unreachable_channel_is_retried() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack(
            "s",
            format!("http://127.0.0.1:{closed}/hook"),
        )),
        &clock,
    );
    svc.enqueue(event()).await.unwrap();
    let r = svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(r.retrying, 1);
    assert_eq!(svc.stats().await.unwrap().pending, 1);
}

/// A message whose channel was removed from the configuration is marked dead instead of retried forever.
#[tokio::test]
async fn removed_channel_marks_message_dead() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    service(
        dir.path(),
        one_channel(ChannelConfig::slack("old", rec.url("/old"))),
        &clock,
    )
    .enqueue(event())
    .await
    .unwrap();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack("new", rec.url("/new"))),
        &clock,
    );
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().dead, 1);
    assert!(rec.requests().is_empty());
    let dead = svc.dead_messages(5).await.unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("no longer configured")
    );
}

/// Delivered messages are pruned from the outbox after the retention period.
#[tokio::test]
async fn delivered_messages_are_pruned_after_retention() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack("s", rec.url("/hook"))),
        &clock,
    );
    svc.enqueue(event()).await.unwrap();
    svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(svc.stats().await.unwrap().delivered, 1);
    clock.advance(Duration::from_secs(8 * 86_400));
    svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(svc.stats().await.unwrap().delivered, 0);
}

/// The worker loop (`run`) delivers what the sink receives without being called per message, and stops on shutdown.
#[tokio::test]
async fn worker_loop_delivers_and_stops() {
    use syncbridge_core::events::EventSink;
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config: NotifyConfig = one_channel(ChannelConfig::slack("s", rec.url("/hook")));
    let svc = NotificationService::open_in_dir(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let svc = svc.clone();
        async move {
            svc.run(async {
                stopped.await.ok();
            })
            .await;
        }
    });
    let sink: Arc<dyn EventSink> = Arc::new(svc.clone());
    sink.emit(event()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rec.requests().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rec.requests().len(), 1);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("worker stops on shutdown")
        .unwrap();
}
