//! The `syncbridge` command line, run as a user runs it (the real binary).
//!
//! What was tried and what must hold: `webhooks verify` prints `valid` and
//! exits 0 for GitHub's documented vector, and exits 1 with the reason for a
//! wrong secret or a stale timestamp; `quarantine list/replay` recovers a
//! webhook event that matched no task once the task exists; `notify test`
//! exits 0 when the channel answers 200 and 1 with the channel's answer when
//! it answers 500; `connections add` refuses bad input naming the flag.

use std::process::{Command, Output};

use axum::http::StatusCode;
use syncbridge_core::model::QuarantinedMessage;
use syncbridge_core::{ConnectionId, Store, Timestamp};
use syncbridge_tests::{bin_dir, store};

fn syncbridge(args: &[&str]) -> Output {
    Command::new(bin_dir().join("syncbridge"))
        .args(args)
        .output()
        .expect("syncbridge runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// GitHub's documented vector verifies; a wrong secret and a stale timestamp do not.
#[test]
fn webhooks_verify() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, "Hello, World!").unwrap();
    let sig = "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let b = body.to_str().unwrap();
    let ok = syncbridge(&[
        "webhooks",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "It's a Secret to Everybody",
        "--header",
        sig,
        "--body-file",
        b,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).starts_with("valid"), "{}", text(&ok));
    let bad = syncbridge(&[
        "webhooks",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "wrong",
        "--header",
        sig,
        "--body-file",
        b,
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("invalid") && !text(&bad).contains("wrong"),
        "{}",
        text(&bad)
    );
    // Standard Webhooks with an explicit clock: 10 minutes late is outside the 5-minute tolerance.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let payload = br#"{"test": 2432232314}"#;
    std::fs::write(&body, payload).unwrap();
    let headers = syncbridge_signatures::sign(
        &syncbridge_signatures::Scheme::StandardWebhooks,
        &syncbridge_signatures::WebhookSecret::new(secret),
        &syncbridge_signatures::Request {
            method: "POST",
            url: "https://x/",
            headers: &[],
            body: payload,
        },
        1_614_265_330,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
    )
    .unwrap();
    let mut args: Vec<String> = [
        "webhooks",
        "verify",
        "--scheme",
        "standard-webhooks",
        "--secret",
        secret,
        "--body-file",
        b,
    ]
    .map(String::from)
    .to_vec();
    for (k, v) in &headers {
        args.push("--header".into());
        args.push(format!("{k}: {v}"));
    }
    let on_time: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["--now", "1614265400"])
        .collect();
    assert_eq!(syncbridge(&on_time).status.code(), Some(0));
    let late: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["--now", "1614265930"])
        .collect();
    let out = syncbridge(&late);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timestamp"), "{}", text(&out));
}

/// An event quarantined for lack of a task is routed again once the task exists.
#[tokio::test]
async fn quarantine_list_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = |objects: &str| {
        syncbridge(&[
            "--data-dir",
            d,
            "connections",
            "add",
            "--tenant",
            "t",
            "--id",
            "c1",
            "--provider",
            "sandbox",
            "--objects",
            objects,
            "--webhook-scheme",
            "standard-webhooks",
            "--webhook-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
    };
    assert!(add("contacts").status.success());
    let s = store(dir.path());
    let id = s
        .quarantine(&QuarantinedMessage {
            source: "WebhookReceiver".into(),
            message_id: Some("evt_1".into()),
            connection: Some(ConnectionId::parse("c1").unwrap()),
            reason: "matches no sync task".into(),
            body: br#"{"id":"evt_1","object":"deals"}"#.to_vec(),
            at: Timestamp::from_millis(0),
        })
        .await
        .unwrap();
    let list = syncbridge(&["--data-dir", d, "quarantine", "list"]);
    assert!(text(&list).contains(&format!("#{id}")), "{}", text(&list));
    let early = syncbridge(&["--data-dir", d, "quarantine", "replay", &id.to_string()]);
    assert_eq!(
        early.status.code(),
        Some(1),
        "still unroutable: {}",
        text(&early)
    );
    assert_eq!(
        s.list_quarantine(10).await.unwrap().len(),
        1,
        "left in quarantine"
    );
    assert!(add("contacts,deals").status.success());
    let replay = syncbridge(&["--data-dir", d, "quarantine", "replay", &id.to_string()]);
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(
        text(&replay).contains("1 follow-up job"),
        "{}",
        text(&replay)
    );
    assert!(s.list_quarantine(10).await.unwrap().is_empty());
    let q = syncbridge_localqueue::LocalQueue::open(dir.path().join("queue.db")).unwrap();
    assert_eq!(q.counts("sync-inbound").unwrap().active, 1);
}

/// `notify test` reports success, or the channel's failure with a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_exit_codes() {
    let app = axum::Router::new()
        .route("/ok", axum::routing::post(|| async { "ok" }))
        .route(
            "/broken",
            axum::routing::post(|| async {
                (StatusCode::INTERNAL_SERVER_ERROR, "channel is down")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ok = tokio::task::spawn_blocking(move || {
        syncbridge(&[
            "notify",
            "test",
            "--channel",
            "slack",
            "--url",
            &format!("http://{addr}/ok"),
        ])
    })
    .await
    .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let bad = tokio::task::spawn_blocking(move || {
        syncbridge(&[
            "notify",
            "test",
            "--channel",
            "teams",
            "--url",
            &format!("http://{addr}/broken"),
        ])
    })
    .await
    .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("500"), "{}", text(&bad));
}

/// Bad `connections add` input is refused, naming the flag at fault.
#[test]
fn connections_add_validation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, flag) in [
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "has space",
                "--provider",
                "sandbox",
            ],
            "--id",
        ),
        (
            vec!["--tenant", "t", "--id", "c", "--provider", "nope"],
            "--provider",
        ),
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "c",
                "--provider",
                "sandbox",
                "--objects",
                "tickets",
            ],
            "--objects",
        ),
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "c",
                "--provider",
                "sandbox",
                "--webhook-scheme",
                "github",
            ],
            "--webhook-scheme",
        ),
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "c",
                "--provider",
                "sandbox",
                "--webhook-scheme",
                "nope",
                "--webhook-secret",
                "x",
            ],
            "--webhook-scheme",
        ),
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "c",
                "--provider",
                "sandbox",
                "--conflict",
                "contacts.shoe_size=latest",
            ],
            "--conflict",
        ),
        (
            vec![
                "--tenant",
                "t",
                "--id",
                "c",
                "--provider",
                "sandbox",
                "--conflict",
                "contacts=whoever",
            ],
            "--conflict",
        ),
    ] {
        let mut all = vec!["--data-dir", d, "connections", "add"];
        all.extend(args);
        let out = syncbridge(&all);
        assert!(!out.status.success(), "{all:?} should fail");
        assert!(text(&out).contains(flag), "{all:?}: {}", text(&out));
    }
}

/// `changes submit` through the CLI: a change to a record the store holds is
/// queued; an unmapped field or a missing record is refused with the reason
/// and queues nothing (`changes list` stays as it was).
#[tokio::test]
async fn changes_submit_list_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sbx = syncbridge_tests::sandbox(3).await;
    let base = sbx.base_url();
    let add = syncbridge(&[
        "--data-dir",
        d,
        "connections",
        "add",
        "--tenant",
        "t",
        "--id",
        "c1",
        "--provider",
        "sandbox",
        "--base-url",
        &base,
        "--objects",
        "contacts",
        "--conflict",
        "*=latest",
        "--conflict",
        "contacts.phone=manual",
    ]);
    assert!(add.status.success(), "{}", text(&add));
    // Pull the records in, in process, against the same store.
    let store: std::sync::Arc<dyn syncbridge_core::Store> =
        std::sync::Arc::new(syncbridge_tests::store(dir.path()));
    let task = store.list_tasks(None).await.unwrap().remove(0);
    let deps = syncbridge_tests::pipeline::deps(
        store.clone(),
        syncbridge_core::connector::registry::Registry::builtin(),
    );
    syncbridge_tests::pipeline::run_once(&deps, &task).await;
    let conn = store
        .get_connection(&syncbridge_core::ConnectionId::parse("c1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&conn.conflicts).unwrap(),
        serde_json::json!({"policy": "latest", "objects": {"contacts": {"fields": {"phone": "manual"}}}})
    );
    let ok = syncbridge(&[
        "--data-dir",
        d,
        "changes",
        "submit",
        "--connection",
        "c1",
        "--object",
        "contacts",
        "--id",
        "1",
        "--set",
        "phone=+1 555 0100",
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("push queued"), "{}", text(&ok));
    for (args, why) in [
        (vec!["--id", "1", "--set", "shoe_size=44"], "not mapped"),
        (vec!["--id", "999", "--set", "phone=1"], "not found"),
    ] {
        let mut all = vec![
            "--data-dir",
            d,
            "changes",
            "submit",
            "--connection",
            "c1",
            "--object",
            "contacts",
        ];
        all.extend(args);
        let out = syncbridge(&all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert!(text(&out).contains(why), "{all:?}: {}", text(&out));
    }
    let list = syncbridge(&["--data-dir", d, "changes", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["id"], "1");
    assert!(rows[0]["push_due_at"].is_string());
}
