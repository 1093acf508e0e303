//! Routing by tenant, kind and minimum severity.

use syncbridge_core::Clock as _;
use syncbridge_core::events::{Event, Severity};
use syncbridge_core::{ConnectionId, TaskId, TenantId};
use syncbridge_notify::{
    ChannelConfig, DefaultRoute, EnqueueOutcome, GroupingConfig, NotifyConfig, Rule,
};

use crate::common::{Recorder, WHSEC, clock, service};

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

fn failed(t: &str) -> Event {
    Event::SyncRunFailed {
        tenant: tenant(t),
        connection: ConnectionId::parse(format!("{t}-c")).unwrap(),
        task: TaskId::parse(format!("{t}-task")).unwrap(),
        error: "boom".into(),
    }
}

fn stalled(t: &str) -> Event {
    Event::TaskStalled {
        tenant: tenant(t),
        connection: ConnectionId::parse(format!("{t}-c")).unwrap(),
        task: TaskId::parse(format!("{t}-task")).unwrap(),
        last_run_at: None,
        interval_secs: 300,
    }
}

fn recovered(t: &str) -> Event {
    Event::SyncRunRecovered {
        tenant: tenant(t),
        connection: ConnectionId::parse(format!("{t}-c")).unwrap(),
        task: TaskId::parse(format!("{t}-task")).unwrap(),
    }
}

fn conflict(t: &str) -> Event {
    Event::ConflictParked {
        tenant: tenant(t),
        connection: ConnectionId::parse(format!("{t}-c")).unwrap(),
        object: "contacts".into(),
        record: "1".into(),
        fields: vec!["email".into()],
    }
}

/// The first rule matching tenant and kind decides the channels; below its minimum severity the event is dropped (no fall-through); unmatched events take the default route and its minimum; tenant-less events match only tenant-less rules or the default.
#[tokio::test]
async fn routes_by_tenant_kind_and_min_severity() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = NotifyConfig {
        grouping: GroupingConfig {
            wait_secs: 0,
            window_secs: 900,
        },
        channels: vec![
            ChannelConfig::slack("acme-slack", rec.url("/acme-slack")),
            ChannelConfig::teams("acme-teams", rec.url("/acme-teams")),
            ChannelConfig::webhook("ops", rec.url("/ops"), WHSEC),
        ],
        rules: vec![
            Rule::new(&["acme-slack", "ops"])
                .tenant(tenant("acme"))
                .kinds(&["sync_run_failed"]),
            Rule::new(&["acme-teams"])
                .tenant(tenant("acme"))
                .min_severity(Severity::Warning),
        ],
        default: Some(DefaultRoute {
            min_severity: Severity::Critical,
            channels: vec!["ops".into()],
        }),
        ..NotifyConfig::default()
    };
    let svc = service(dir.path(), config, &clock);
    let cases: Vec<(Event, Option<usize>)> = vec![
        (failed("acme"), Some(2)),   // rule 1: slack + ops
        (stalled("acme"), Some(1)),  // rule 2 (warning >= warning): teams
        (recovered("acme"), None),   // rule 2 matches, info < warning: dropped
        (failed("globex"), Some(1)), // default (critical): ops
        (conflict("globex"), None),  // default, warning < critical: dropped
        (
            Event::MessageDeadLettered {
                queue: "sync-inbound".into(),
                message_id: "m1".into(),
                reason: "MaxDeliveryCountExceeded".into(),
            },
            Some(1),
        ), // no tenant: tenant rules skip it; default: ops
    ];
    for (e, expect) in cases {
        let kind = e.kind();
        let outcome = svc.enqueue(e).await.unwrap();
        match expect {
            Some(n) => assert_eq!(outcome, EnqueueOutcome::Queued { messages: n }, "{kind}"),
            None => assert!(matches!(outcome, EnqueueOutcome::Dropped(_)), "{kind}"),
        }
    }
    svc.deliver_due(clock.now()).await.unwrap();
    // The kind as each format shows it.
    let kinds_at = |path: &str| -> Vec<String> {
        rec.requests_to(path)
            .iter()
            .map(|r| {
                let v = r.json();
                let summary = if let Some(kind) = v["data"]["kind"].as_str() {
                    return kind.to_owned();
                } else if v["blocks"].is_array() {
                    v["blocks"][1]["text"]["text"].clone()
                } else {
                    v["attachments"][0]["content"]["body"][1]["text"].clone()
                };
                summary
                    .as_str()
                    .unwrap()
                    .split(" · ")
                    .nth(1)
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(kinds_at("/acme-slack"), vec!["sync_run_failed"]);
    assert_eq!(kinds_at("/acme-teams"), vec!["task_stalled"]);
    let mut ops = kinds_at("/ops");
    ops.sort();
    assert_eq!(
        ops,
        vec![
            "message_dead_lettered",
            "sync_run_failed",
            "sync_run_failed"
        ]
    );
    let ops_tenants: Vec<String> = rec
        .requests_to("/ops")
        .iter()
        .map(|r| r.json()["data"]["tenant"].to_string())
        .collect();
    assert!(ops_tenants.contains(&"\"acme\"".to_owned()));
    assert!(ops_tenants.contains(&"\"globex\"".to_owned()));
    assert!(ops_tenants.contains(&"null".to_owned()));
}

/// Without a default route, events no rule matches are dropped and nothing is sent.
#[tokio::test]
async fn without_default_unmatched_events_are_dropped() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = NotifyConfig {
        channels: vec![ChannelConfig::slack("s", rec.url("/s"))],
        rules: vec![Rule::new(&["s"]).tenant(tenant("acme"))],
        ..NotifyConfig::default()
    };
    let svc = service(dir.path(), config, &clock);
    assert!(matches!(
        svc.enqueue(failed("globex")).await.unwrap(),
        EnqueueOutcome::Dropped(_)
    ));
    assert_eq!(svc.stats().await.unwrap().pending, 0);
}

/// Rules saved in the store (the dashboard's) replace the file's rules and
/// default route as a whole: the same event goes to the file's channel
/// before the save and to the stored rule's channel after. The store is
/// read once per refresh period (a save is not seen until the cache is
/// refreshed or forgotten), and stored rules naming a channel the config no
/// longer has are not used: the file's rules route instead.
#[tokio::test]
async fn stored_rules_replace_the_files() {
    use std::sync::Arc;
    use std::time::Duration;
    use syncbridge_core::Store;
    use syncbridge_core::notify_rules::NotificationRules;

    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = NotifyConfig {
        grouping: GroupingConfig {
            wait_secs: 0,
            window_secs: 900,
        },
        channels: vec![
            ChannelConfig::slack("file-slack", rec.url("/file")),
            ChannelConfig::teams("stored-teams", rec.url("/stored")),
        ],
        rules: vec![Rule::new(&["file-slack"])],
        ..NotifyConfig::default()
    };
    let svc = service(dir.path(), config, &clock);
    let store: Arc<dyn Store> =
        Arc::new(syncbridge_sqlite::SqliteStore::open_in(dir.path()).unwrap());
    svc.use_stored_rules(store.clone(), Duration::from_secs(3600));
    let sent_to = |svc: &syncbridge_notify::NotificationService, t: &'static str| {
        let svc = svc.clone();
        let clock = clock.clone();
        let rec = rec.clone();
        async move {
            let (f0, s0) = (
                rec.requests_to("/file").len(),
                rec.requests_to("/stored").len(),
            );
            let outcome = svc.enqueue(failed(t)).await.unwrap();
            assert_eq!(outcome, EnqueueOutcome::Queued { messages: 1 }, "{t}");
            svc.deliver_due(clock.now()).await.unwrap();
            let (f1, s1) = (
                rec.requests_to("/file").len(),
                rec.requests_to("/stored").len(),
            );
            match (f1 - f0, s1 - s0) {
                (1, 0) => "file",
                (0, 1) => "stored",
                other => panic!("{t}: unexpected deliveries {other:?}"),
            }
        }
    };
    assert_eq!(
        sent_to(&svc, "t1").await,
        "file",
        "nothing stored: the file's rules"
    );

    let stored = NotificationRules {
        version: 1,
        rules: vec![Rule::new(&["stored-teams"]).kinds(&["sync_run_failed"])],
        default: None,
        updated_at: clock.now(),
    };
    assert!(store.put_notification_rules(&stored).await.unwrap());
    assert_eq!(
        sent_to(&svc, "t2").await,
        "file",
        "the last read is cached for the refresh period"
    );
    svc.forget_stored_rules().await;
    assert_eq!(
        sent_to(&svc, "t3").await,
        "stored",
        "the stored rules route"
    );
    // The stored rule set has no default: an event it does not match is
    // dropped, though the file's catch-all rule would have sent it.
    assert!(matches!(
        svc.enqueue(stalled("t3")).await.unwrap(),
        EnqueueOutcome::Dropped(_)
    ));

    let unfit = NotificationRules {
        version: 2,
        rules: vec![Rule::new(&["removed-from-the-file"])],
        default: None,
        updated_at: clock.now(),
    };
    assert!(store.put_notification_rules(&unfit).await.unwrap());
    svc.forget_stored_rules().await;
    assert_eq!(
        sent_to(&svc, "t4").await,
        "file",
        "stored rules that do not fit the config fall back to the file's"
    );
}
