//! Grouping: the same failure repeating is one message with a count.

use std::time::Duration;
use syncbridge_core::Clock as _;

use syncbridge_core::events::Event;
use syncbridge_core::{ConnectionId, TaskId, TenantId};
use syncbridge_notify::{ChannelConfig, ChannelKind, EnqueueOutcome, GroupingConfig};

use crate::common::{Recorder, accepted_by_id, clock, one_channel, service};

fn failure(task: &str) -> Event {
    Event::SyncRunFailed {
        tenant: TenantId::parse("acme").unwrap(),
        connection: ConnectionId::parse("acme-hubspot").unwrap(),
        task: TaskId::parse(task).unwrap(),
        error: "provider answered HTTP 503".into(),
    }
}

fn grouped(wait_secs: u64, window_secs: u64) -> GroupingConfig {
    GroupingConfig {
        wait_secs,
        window_secs,
    }
}

/// 100 identical failures inside the grouping window are delivered as ONE message carrying the count 100, and nothing follows.
#[tokio::test]
async fn hundred_identical_failures_are_one_message_with_count() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut config = one_channel(ChannelConfig::slack("s", rec.url("/hook")));
    config.grouping = grouped(30, 900);
    let svc = service(dir.path(), config, &clock);
    for i in 0..100 {
        let outcome = svc.enqueue(failure("t1")).await.unwrap();
        if i == 0 {
            assert_eq!(outcome, EnqueueOutcome::Queued { messages: 1 });
        } else {
            assert_eq!(outcome, EnqueueOutcome::Grouped);
        }
        clock.advance(Duration::from_millis(200)); // 100 failures in 20 s
        svc.deliver_due(clock.now()).await.unwrap(); // the worker keeps running meanwhile
    }
    assert!(rec.requests().is_empty(), "held for the grouping wait");
    clock.advance(Duration::from_secs(10)); // past the 30 s wait
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    // The window closes without further repeats: no follow-up, group ends.
    clock.advance(Duration::from_secs(900));
    svc.deliver_due(clock.now()).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    svc.deliver_due(clock.now()).await.unwrap();

    let reqs = rec.requests();
    assert_eq!(reqs.len(), 1, "one message, not a flood");
    let v = reqs[0].json();
    assert!(
        v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("(×100)"),
        "{v:#}"
    );
    assert!(v["text"].as_str().unwrap().contains("100 occurrences"));
    assert_eq!(svc.stats().await.unwrap().open_groups, 0);
}

/// Repeats after the first message went out become one "repeated N more times" follow-up per window; a quiet window ends the group, and the next occurrence starts a new one.
#[tokio::test]
async fn repeats_after_first_message_become_one_followup_per_window() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut config = one_channel(ChannelConfig::webhook(
        "w",
        rec.url("/hook"),
        crate::common::WHSEC,
    ));
    config.grouping = grouped(30, 600);
    let svc = service(dir.path(), config, &clock);

    svc.enqueue(failure("t1")).await.unwrap();
    clock.advance(Duration::from_secs(30));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    // 99 more over the next ~8 minutes, inside the 10-minute window.
    for _ in 0..99 {
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            svc.enqueue(failure("t1")).await.unwrap(),
            EnqueueOutcome::Grouped
        );
        assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 0);
    }
    clock.advance(Duration::from_secs(600 - 30 - 495));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    let first = reqs[0].json();
    assert_eq!(first["data"]["occurrence"], "first");
    assert_eq!(first["data"]["count"], 1);
    let again = reqs[1].json();
    assert_eq!(again["data"]["occurrence"], "repeated");
    assert_eq!(again["data"]["count"], 99);

    // Second window: 3 repeats -> one follow-up with 3.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(60));
        svc.enqueue(failure("t1")).await.unwrap();
    }
    clock.advance(Duration::from_secs(600));
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].json()["data"]["count"], 3);

    // Third window is quiet: the group ends; the next failure is a new first message.
    clock.advance(Duration::from_secs(600));
    svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(svc.stats().await.unwrap().open_groups, 0);
    assert!(matches!(
        svc.enqueue(failure("t1")).await.unwrap(),
        EnqueueOutcome::Queued { .. }
    ));
    clock.advance(Duration::from_secs(30));
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[3].json()["data"]["occurrence"], "first");
    let ids = accepted_by_id(ChannelKind::Webhook, &reqs);
    assert_eq!(ids.len(), 4, "every message has its own id");
}

/// Different failures (different group keys) are not folded together.
#[tokio::test]
async fn different_failures_are_separate_messages() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut config = one_channel(ChannelConfig::slack("s", rec.url("/hook")));
    config.grouping = grouped(30, 900);
    let svc = service(dir.path(), config, &clock);
    for _ in 0..5 {
        svc.enqueue(failure("t1")).await.unwrap();
        svc.enqueue(failure("t2")).await.unwrap();
    }
    clock.advance(Duration::from_secs(30));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 2);
    let texts: Vec<String> = rec
        .requests()
        .iter()
        .map(|r| {
            r.json()["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert!(texts.iter().any(|t| t.contains("t1") && t.contains("(×5)")));
    assert!(texts.iter().any(|t| t.contains("t2") && t.contains("(×5)")));
}

/// With `wait_secs = 0` the first occurrence is sent at once; its repeats wait for the window's follow-up.
#[tokio::test]
async fn zero_wait_sends_the_first_occurrence_immediately() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut config = one_channel(ChannelConfig::slack("s", rec.url("/hook")));
    config.grouping = grouped(0, 300);
    let svc = service(dir.path(), config, &clock);
    for _ in 0..10 {
        svc.enqueue(failure("t1")).await.unwrap();
    }
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    clock.advance(Duration::from_secs(300));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("repeated 9 more times")
    );
}
