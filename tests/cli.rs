//! The `syncbridge` command line, run as a user runs it (the real binary).
//!
//! What was tried and what must hold: `webhooks verify` prints `valid` and
//! exits 0 for GitHub's documented vector, and exits 1 with the reason for a
//! wrong secret or a stale timestamp; `quarantine list/replay` recovers a
//! webhook event that matched no task once the task exists; `notify test`
//! exits 0 when the channel answers 200 and 1 with the channel's answer when
//! it answers 500; `connections add` refuses bad input naming the flag
//! (unusable webhook secrets, empty or lone tokens, absurd lifetimes, an id
//! in use without `--replace`) and writes nothing; `up` names a setting a
//! handler refused and refuses an app root without host.json.

use std::process::{Command, Output};

use axum::http::StatusCode;
use syncbridge_core::model::QuarantinedMessage;
use syncbridge_core::{ConnectionId, Store, Timestamp};
use syncbridge_tests::{bin_dir, store, text};

fn syncbridge(args: &[&str]) -> Output {
    Command::new(bin_dir().join("syncbridge"))
        .args(args)
        .output()
        .expect("syncbridge runs")
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
            "--replace",
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

/// Runs `syncbridge` with extra environment, failing the test if it has not
/// exited within a minute (a hung `up` would otherwise hang the suite).
fn syncbridge_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bin_dir().join("syncbridge"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("syncbridge runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not exit within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// What was tried: `connections add` with webhook secrets no delivery could
/// match (`whsec_!!!`, empty, a bare `whsec_`, a `whpk_` that is no key), an
/// empty access token, a refresh token without an access token, an API key
/// that is empty, `--expires-in` 2^64-1. What must hold: each is refused with
/// a message naming what is wrong, nothing is stored (`connections list`
/// stays empty), and a well-formed secret is accepted.
#[test]
fn connections_add_refuses_unusable_secrets_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let base = [
        "--data-dir",
        d,
        "connections",
        "add",
        "--tenant",
        "t",
        "--id",
        "c",
        "--provider",
        "sandbox",
    ];
    let webhook = |secret: &'static str| -> Vec<&'static str> {
        vec![
            "--webhook-scheme",
            "standard-webhooks",
            "--webhook-secret",
            secret,
        ]
    };
    // (extra arguments, environment, what the refusal must say)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            webhook("whsec_!!!"),
            vec![],
            "--webhook-secret #1: invalid webhook secret",
        ),
        (webhook(""), vec![], "secret is empty"),
        (webhook("whsec_"), vec![], "--webhook-secret #1"),
        (webhook("whpk_abc"), vec![], "whpk_"),
        (
            vec!["--webhook-scheme", "github", "--webhook-secret", " "],
            vec![],
            "secret is empty",
        ),
        (
            vec![],
            vec![("SYNCBRIDGE_ACCESS_TOKEN", "")],
            "SYNCBRIDGE_ACCESS_TOKEN is empty",
        ),
        (
            vec![],
            vec![("SYNCBRIDGE_REFRESH_TOKEN", "rt")],
            "SYNCBRIDGE_REFRESH_TOKEN is set without SYNCBRIDGE_ACCESS_TOKEN",
        ),
        (
            vec![],
            vec![("SYNCBRIDGE_API_KEY", "")],
            "SYNCBRIDGE_API_KEY is empty",
        ),
        (
            vec!["--expires-in", "18446744073709551615"],
            vec![("SYNCBRIDGE_ACCESS_TOKEN", "at")],
            "--expires-in 18446744073709551615",
        ),
    ];
    for (extra, env, want) in cases {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        let out = syncbridge_env(&args, &env);
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        assert!(
            text(&out).contains(want),
            "{args:?} {env:?}: {}",
            text(&out)
        );
    }
    let list = syncbridge(&["--data-dir", d, "connections", "list"]);
    assert!(text(&list).contains("no connections"), "{}", text(&list));
    let mut args = base.to_vec();
    args.extend(webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    let ok = syncbridge_env(
        &args,
        &[
            ("SYNCBRIDGE_ACCESS_TOKEN", "at"),
            ("SYNCBRIDGE_REFRESH_TOKEN", "rt"),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
}

/// What was tried: `connections add` twice with the same `--id`. What must
/// hold: the second is refused (naming `--replace`) and the first
/// connection's tasks are untouched; with `--replace` it goes through.
#[tokio::test]
async fn a_connection_id_in_use_needs_replace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = |objects: &str, replace: bool| {
        let mut args = vec![
            "--data-dir",
            d,
            "connections",
            "add",
            "--tenant",
            "t",
            "--id",
            "c1",
        ];
        args.extend(["--provider", "sandbox", "--objects", objects]);
        if replace {
            args.push("--replace");
        }
        syncbridge(&args)
    };
    assert!(add("contacts", false).status.success());
    let again = add("deals", false);
    assert!(!again.status.success());
    assert!(text(&again).contains("--replace"), "{}", text(&again));
    let tasks = store(dir.path()).list_tasks(None).await.unwrap();
    let objects: Vec<&str> = tasks.iter().map(|t| t.object.as_str()).collect();
    assert_eq!(objects, ["contacts"], "the first connection is untouched");
    assert!(add("deals", true).status.success());
}

/// What was tried: `syncbridge up` with `SYNCBRIDGE_LEASE_SECS=abc` (every
/// handler refuses it at start), with `SYNCBRIDGE_HTTP_MAX_CONNECTIONS=abc`
/// (the host's own setting), and with `--app-root /nonexistent`. What must
/// hold: each exits non-zero, and what it prints names the bad setting as
/// the handler said it, or the bad path; none starts the app from the
/// source checkout instead.
#[test]
fn up_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let up = ["--data-dir", d, "up", "--http-port", "0"];
    let lease = syncbridge_env(&up, &[("SYNCBRIDGE_LEASE_SECS", "abc")]);
    assert!(!lease.status.success());
    assert!(
        text(&lease).contains(r#"SYNCBRIDGE_LEASE_SECS: "abc" is not a whole number"#),
        "{}",
        text(&lease)
    );
    let bound = syncbridge_env(&up, &[("SYNCBRIDGE_HTTP_MAX_CONNECTIONS", "abc")]);
    assert!(!bound.status.success());
    assert!(
        text(&bound).contains("SYNCBRIDGE_HTTP_MAX_CONNECTIONS"),
        "{}",
        text(&bound)
    );
    let mut args = up.to_vec();
    args.extend(["--app-root", "/nonexistent"]);
    let root = syncbridge_env(&args, &[]);
    assert!(!root.status.success());
    assert!(
        text(&root).contains("--app-root /nonexistent"),
        "{}",
        text(&root)
    );
}
