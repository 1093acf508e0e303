//! End-to-end tests of the local host with real handler processes (the test-only
//! `echo-handler` binary, linked under each function's kebab-case name).
//! Schedule, lock and dedup time moves through a `ManualClock`; only process
//! start-up and delivery are waited for in real time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;
use syncbridge_core::{
    Clock as _, ManualClock, OutboundMessage, QueueName, QueueSender, Timestamp,
};
use syncbridge_localhost::{ChildState, HostConfig, HostError, LocalHost, LocalHostHandle};
use syncbridge_localqueue::{MAX_DELIVERY_COUNT_EXCEEDED, QueueCounts};

/// 2026-11-28T12:03:10Z
const T0: Timestamp = Timestamp::from_millis(1_795_867_390_000);
const WAIT: Duration = Duration::from_secs(30);

struct App {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

impl App {
    /// An app root with `host_json` and `functions` (name, function.json), and a bin
    /// dir where every function's executable is the echo handler.
    fn new(host_json: Value, functions: &[(&str, Value)]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        let fdir = root.join("functions");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&fdir).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("records")).unwrap();
        std::fs::write(root.join("host.json"), host_json.to_string()).unwrap();
        for (name, fj) in functions {
            std::fs::create_dir_all(fdir.join(name)).unwrap();
            std::fs::write(fdir.join(name).join("function.json"), fj.to_string()).unwrap();
            let exe = bin.join(syncbridge_localhost::executable_name(name));
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_echo-handler"), exe).unwrap();
        }
        App {
            dir,
            clock: Arc::new(ManualClock::new(T0)),
        }
    }

    fn config(&self, env: &[(&str, &str)]) -> HostConfig {
        let root = self.dir.path().join("app");
        let mut c = HostConfig::new(
            &root,
            self.dir.path().join("bin"),
            self.dir.path().join("data"),
        );
        c.functions_dir = Some(root.join("functions"));
        c.clock = self.clock.clone();
        c.startup_timeout = Duration::from_secs(20);
        c.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.env.insert(
            "ECHO_RECORD_DIR".into(),
            self.records_dir().display().to_string(),
        );
        c
    }

    fn records_dir(&self) -> PathBuf {
        self.dir.path().join("records")
    }

    /// Lines the echo handler recorded for `file` (e.g. `Work.jsonl`).
    fn records(&self, file: &str) -> Vec<Value> {
        read_records(&self.records_dir().join(file))
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn host_json() -> Value {
    json!({"version": "2.0",
           "customHandler": {"description": {"defaultExecutablePath": "handler"}, "enableProxyingHttpRequest": true},
           "extensions": {"serviceBus": {"maxConcurrentCalls": 2}}})
}

fn timer_fn(schedule: &str, run_on_startup: bool) -> Value {
    json!({"bindings": [{"name": "timer", "type": "timerTrigger", "direction": "in",
                         "schedule": schedule, "runOnStartup": run_on_startup}]})
}

fn worker_fn() -> Value {
    json!({"bindings": [
        {"name": "msg", "type": "serviceBusTrigger", "direction": "in", "queueName": "jobs",
         "connection": "ServiceBusConnection", "dataType": "binary"},
        {"name": "out", "type": "serviceBus", "direction": "out", "queueName": "results",
         "connection": "ServiceBusConnection"}]})
}

fn msg(queue: &str, id: &str, body: &[u8]) -> OutboundMessage {
    OutboundMessage {
        queue: QueueName::new(queue),
        message_id: id.into(),
        body: body.to_vec(),
        content_type: Some("application/json".into()),
        scheduled_enqueue_at: None,
        session_id: None,
        properties: BTreeMap::from([("tenant".to_string(), "t1".to_string())]),
    }
}

async fn counts(h: &LocalHostHandle, queue: &str) -> QueueCounts {
    h.queue.counts(queue).unwrap()
}

/// A manual fire and a due NCRONTAB occurrence (clock moved, no sleep) both POST the timer payload; runOnStartup fires at start.
#[tokio::test]
async fn timers_fire_manually_on_schedule_and_on_startup() {
    let app = App::new(
        host_json(),
        &[
            ("Tick", timer_fn("0 */5 * * * *", false)),
            ("Boot", timer_fn("0 0 0 1 1 *", true)),
        ],
    );
    let h = LocalHost::start(app.config(&[])).await.unwrap();
    eventually("runOnStartup", || {
        (app.records("Boot.jsonl").len() == 1).then_some(())
    })
    .await;

    let invoked = h.fire_timer("Tick").await.unwrap();
    let recs = app.records("Tick.jsonl");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["invocation_id"], json!(invoked.invocation_id));
    assert_eq!(
        recs[0]["request"]["Data"]["timer"]["IsPastDue"],
        json!(false)
    );
    assert_eq!(
        recs[0]["request"]["Metadata"]["sys"]["MethodName"],
        json!("Tick")
    );
    assert_eq!(
        invoked.response.logs,
        vec!["echo-handler handled it".to_string()]
    );

    // The next occurrence of */5 after 12:03:10 is 12:05:00.
    app.clock
        .set(Timestamp::parse("2026-11-28T12:05:00Z").unwrap());
    let recs = eventually("scheduled tick", || {
        Some(app.records("Tick.jsonl")).filter(|r| r.len() == 2)
    })
    .await;
    assert_eq!(
        recs[1]["request"]["Data"]["timer"]["IsPastDue"],
        json!(false)
    );
    // Missing several occurrences yields one catch-up run, marked past due.
    app.clock
        .set(Timestamp::parse("2026-11-28T12:21:00Z").unwrap());
    let recs = eventually("catch-up tick", || {
        Some(app.records("Tick.jsonl")).filter(|r| r.len() == 3)
    })
    .await;
    assert_eq!(
        recs[2]["request"]["Data"]["timer"]["IsPastDue"],
        json!(true)
    );
    assert!(matches!(
        h.fire_timer("Nope").await,
        Err(HostError::UnknownFunction { .. })
    ));

    let status = h.status();
    assert_eq!(status.len(), 2);
    assert!(
        status
            .iter()
            .all(|s| matches!(s.state, ChildState::Ready { .. })),
        "{status:?}"
    );
    assert!(status.iter().any(|s| s.trigger == "timer 0 */5 * * * *"));
    h.shutdown().await;
    assert!(h.status().iter().all(|s| s.state == ChildState::Stopped));
}

/// A failing scheduled tick is re-run under the function's retry policy, after delays on the injected clock, with RetryContext.
#[tokio::test]
async fn failing_timer_is_retried_per_policy() {
    let tick = json!({"bindings": [{"name": "timer", "type": "timerTrigger", "direction": "in",
                                    "schedule": "%TICK_SCHEDULE%"}],
                      "retry": {"strategy": "fixedDelay", "maxRetryCount": 2, "delayInterval": "00:00:10"}});
    let app = App::new(host_json(), &[("Tick", tick)]);
    let h =
        LocalHost::start(app.config(&[("ECHO_FAIL", "Tick"), ("TICK_SCHEDULE", "0 */5 * * * *")]))
            .await
            .unwrap();
    let due = Timestamp::parse("2026-11-28T12:05:00Z").unwrap();
    app.clock.set(due);
    eventually("first attempt", || {
        (app.records("Tick.jsonl").len() == 1).then_some(())
    })
    .await;
    for n in 1..=2u64 {
        // The host measures a retry's delay from when it handled the failure,
        // which can come after this test saw the handler record the attempt
        // (and after the clock moved): nudge the clock on, never by more than
        // one more delay, until the retry arrives.
        let target = due.add(Duration::from_secs(10 * n));
        let recs = eventually("retry", || {
            let recs = app.records("Tick.jsonl");
            if recs.len() > n as usize {
                return Some(recs);
            }
            let now = app.clock.now();
            let next = if now < target {
                target
            } else {
                now.add(Duration::from_millis(500))
            };
            if next <= target.add(Duration::from_secs(10)) {
                app.clock.set(next);
            }
            None
        })
        .await;
        let ctx = &recs[n as usize]["request"]["Metadata"]["RetryContext"];
        assert_eq!(
            (ctx["RetryCount"].clone(), ctx["MaxRetryCount"].clone()),
            (json!(n), json!(2))
        );
        assert!(
            ctx["Exception"]["Message"]
                .as_str()
                .unwrap()
                .contains("500")
        );
    }
    assert!(
        app.records("Tick.jsonl")[0]["request"]["Metadata"]
            .get("RetryContext")
            .is_none()
    );
    // Retries are exhausted: nothing more until the next occurrence.
    app.clock.set(due.add(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.records("Tick.jsonl").len(), 3);
    h.shutdown().await;
}

/// A queue message reaches the worker with the binary payload and metadata, is completed, and its serviceBus outputs are sent one per array element.
#[tokio::test]
async fn queue_message_is_delivered_completed_and_outputs_sent() {
    let app = App::new(host_json(), &[("SyncInboundWorker", worker_fn())]);
    let response = r#"{"Outputs":{"out":[{"n":1},{"n":2}]},"Logs":["done"]}"#;
    let h = LocalHost::start(app.config(&[("ECHO_RESPONSE_SyncInboundWorker", response)]))
        .await
        .unwrap();
    let body = br#"{"jobId":"123"}"#;
    h.queue
        .send(vec![msg("jobs", "job-123", body)])
        .await
        .unwrap();

    let recs = eventually("delivery", || {
        Some(app.records("SyncInboundWorker.jsonl")).filter(|r| !r.is_empty())
    })
    .await;
    let req = &recs[0]["request"];
    let data = base64::engine::general_purpose::STANDARD
        .decode(req["Data"]["msg"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, body);
    assert_eq!(req["Metadata"]["DeliveryCount"], json!("1"));
    assert_eq!(req["Metadata"]["MessageId"], json!("\"job-123\""));
    assert_eq!(
        req["Metadata"]["ApplicationProperties"]["tenant"],
        json!("t1")
    );
    eventually("completion", || {
        let c = h.queue.counts("jobs").unwrap();
        (c == QueueCounts::default()).then_some(())
    })
    .await;
    let results = h.queue.peek("results").unwrap();
    assert_eq!(
        results.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        vec![b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()]
    );
    h.shutdown().await;
}

/// A handler answering 500 makes the message come back with DeliveryCount+1 until MaxDeliveryCount, then it is dead-lettered.
#[tokio::test]
async fn failing_handler_redelivers_then_dead_letters() {
    let app = App::new(host_json(), &[("SyncInboundWorker", worker_fn())]);
    let mut config = app.config(&[("ECHO_FAIL", "SyncInboundWorker")]);
    config.max_delivery_count = 3;
    let h = LocalHost::start(config).await.unwrap();
    h.queue
        .send(vec![msg("jobs", "poison", b"{}")])
        .await
        .unwrap();
    eventually("dead-lettering", || {
        (h.queue.counts("jobs").unwrap().dead_lettered == 1).then_some(())
    })
    .await;
    let counts_seen: Vec<Value> = app
        .records("SyncInboundWorker.jsonl")
        .iter()
        .map(|r| r["request"]["Metadata"]["DeliveryCount"].clone())
        .collect();
    assert_eq!(counts_seen, vec![json!("1"), json!("2"), json!("3")]);
    let dl = h.queue.dead_letters("jobs").unwrap();
    assert_eq!(
        dl[0].dead_letter_reason.as_deref(),
        Some(MAX_DELIVERY_COUNT_EXCEEDED)
    );
    assert_eq!(
        counts(&h, "jobs").await,
        QueueCounts {
            dead_lettered: 1,
            ..Default::default()
        }
    );
    h.shutdown().await;
}

/// Deliveries to one function run concurrently but never beyond extensions.serviceBus.maxConcurrentCalls (2 here).
#[tokio::test]
async fn max_concurrent_calls_is_honoured() {
    let app = App::new(host_json(), &[("SyncInboundWorker", worker_fn())]);
    let h = LocalHost::start(app.config(&[("ECHO_DELAY_MS", "300")]))
        .await
        .unwrap();
    let msgs = (0..6)
        .map(|i| msg("jobs", &format!("c-{i}"), b"{}"))
        .collect();
    h.queue.send(msgs).await.unwrap();
    eventually("all completed", || {
        (app.records("SyncInboundWorker.jsonl").len() == 6
            && h.queue.counts("jobs").unwrap() == QueueCounts::default())
        .then_some(())
    })
    .await;
    let peak = app
        .records("SyncInboundWorker.jsonl")
        .iter()
        .map(|r| r["in_flight"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(peak, 2);
    h.shutdown().await;
}

/// A message scheduled before a host shutdown is delivered by the next host on the same data dir.
#[tokio::test]
async fn queue_survives_host_restart() {
    let app = App::new(host_json(), &[("SyncInboundWorker", worker_fn())]);
    let h = LocalHost::start(app.config(&[])).await.unwrap();
    let later = T0.add(Duration::from_secs(60));
    h.queue
        .send(vec![msg("jobs", "later", b"{}").at(later)])
        .await
        .unwrap();
    assert_eq!(counts(&h, "jobs").await.scheduled, 1);
    h.shutdown().await;
    drop(h);
    assert!(app.records("SyncInboundWorker.jsonl").is_empty());

    let h = LocalHost::start(app.config(&[])).await.unwrap();
    assert_eq!(
        counts(&h, "jobs").await.scheduled,
        1,
        "still there after restart"
    );
    app.clock.set(later);
    eventually("delivery after restart", || {
        (app.records("SyncInboundWorker.jsonl").len() == 1
            && h.queue.counts("jobs").unwrap() == QueueCounts::default())
        .then_some(())
    })
    .await;
    h.shutdown().await;
}

/// HTTP-only functions are proxied byte-for-byte (non-UTF-8 body, path, query); JSON-mode HTTP functions answer with Outputs.res.
#[tokio::test]
async fn http_proxy_is_byte_exact_and_json_mode_uses_outputs() {
    let webhook = json!({"bindings": [
        {"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": "anonymous",
         "methods": ["post"], "route": "webhooks/{connectionId}"},
        {"name": "res", "type": "http", "direction": "out"}]});
    let status_fn = json!({"bindings": [
        {"name": "req", "type": "httpTrigger", "direction": "in", "methods": ["get", "post"], "route": "status/{id:int}"},
        {"name": "res", "type": "http", "direction": "out"},
        {"name": "out", "type": "serviceBus", "direction": "out", "queueName": "results"}]});
    let app = App::new(
        host_json(),
        &[("WebhookReceiver", webhook), ("StatusProbe", status_fn)],
    );
    let res = r#"{"Outputs":{"res":{"statusCode":202,"headers":{"x-a":"b"},"body":{"ok":true}},"out":{"seen":1}}}"#;
    let h = LocalHost::start(app.config(&[("ECHO_RESPONSE_StatusProbe", res)]))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, b'\r', b'\n']);
    let sent_hash = hex::encode(sha2::Sha256::digest(&body));
    let answer = client
        .post(format!("{}/api/webhooks/conn-1?x=1&y=a%20b", h.url()))
        .header("content-type", "application/octet-stream")
        .header("x-hub-signature-256", "sha256=abc")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["x-echo-sha256"].to_str().unwrap(),
        sent_hash
    );
    assert_eq!(
        answer.headers()["x-echo-uri"].to_str().unwrap(),
        "/api/webhooks/conn-1?x=1&y=a%20b"
    );
    assert_eq!(
        answer.bytes().await.unwrap().to_vec(),
        body,
        "response bytes returned as-is"
    );
    let wrong = client
        .get(format!("{}/api/webhooks/conn-1", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);

    let answer = client
        .post(format!("{}/api/status/7?q=1", h.url()))
        .body("{\"hello\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["x-a"].to_str().unwrap(), "b");
    assert_eq!(answer.text().await.unwrap(), r#"{"ok":true}"#);
    let rec = &app.records("StatusProbe.jsonl")[0]["request"];
    assert_eq!(rec["Data"]["req"]["Params"]["id"], json!("7"));
    assert_eq!(rec["Data"]["req"]["Query"]["q"], json!("1"));
    assert_eq!(rec["Data"]["req"]["Body"], json!("{\"hello\":1}"));
    assert_eq!(h.queue.peek("results").unwrap()[0].body, b"{\"seen\":1}");
    let missing = client
        .get(format!("{}/api/status/x", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    h.shutdown().await;
}

/// The Service Bus REST endpoint enqueues with 201, drops a repeated MessageId, and answers 404 for unknown queues.
#[tokio::test]
async fn rest_send_endpoint_enqueues_with_dedup() {
    let app = App::new(host_json(), &[("SyncInboundWorker", worker_fn())]);
    let h = LocalHost::start(app.config(&[])).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |queue: &str, id: &str| {
        client
            .post(format!("{}/{queue}/messages", h.url()))
            .header("authorization", "Bearer local-token")
            .header("content-type", "application/json")
            .header(
                "brokerproperties",
                json!({"MessageId": id, "Label": "Job"}).to_string(),
            )
            .body("{\"job\":1}")
            .send()
    };
    assert_eq!(send("results", "m-1").await.unwrap().status(), 201);
    assert_eq!(
        send("results", "m-1").await.unwrap().status(),
        201,
        "a duplicate still answers 201"
    );
    assert_eq!(counts(&h, "results").await.active, 1, "…but is dropped");
    assert_eq!(send("nope", "m-2").await.unwrap().status(), 404);
    app.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(send("results", "m-1").await.unwrap().status(), 201);
    assert_eq!(
        counts(&h, "results").await.active,
        2,
        "accepted again after the window"
    );
    h.shutdown().await;
}

/// A handler that keeps exiting before it ever comes up is started 4 times and then given up on, failing start-up clearly.
#[tokio::test]
async fn crashing_handler_is_given_up_after_restart_limit() {
    let app = App::new(host_json(), &[("Tick", timer_fn("0 0 * * * *", false))]);
    let mut config = app.config(&[("ECHO_EXIT_AT_START", "1")]);
    let (tx, mut rx) = tokio::sync::broadcast::channel(64);
    config.events = Some(tx);
    let err = LocalHost::start(config).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Tick") && text.contains("giving up"),
        "{text}"
    );
    let mut starts = 0;
    while let Ok(ev) = rx.try_recv() {
        if matches!(ev, syncbridge_localhost::HostEvent::FunctionStarting { .. }) {
            starts += 1;
        }
    }
    assert_eq!(starts, 4, "first start + 3 restarts");
}

/// The `Tick` handler's state.
fn tick_state(h: &LocalHostHandle) -> ChildState {
    h.status()
        .into_iter()
        .find(|s| s.name == "Tick")
        .unwrap()
        .state
}

fn kill_9(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Kills the `Tick` handler, checks the announced restart, moves the clock by
/// exactly its delay and waits for the new process.
async fn kill_and_restart(
    h: &LocalHostHandle,
    clock: &ManualClock,
    expect_restart: u32,
    expect_delay: u64,
) {
    let ChildState::Ready { pid, .. } = tick_state(h) else {
        panic!("Tick is not up: {}", tick_state(h));
    };
    kill_9(pid);
    let (restart, delay) = eventually("the restart to be announced", || match tick_state(h) {
        ChildState::Restarting { restart, delay, .. } => Some((restart, delay)),
        _ => None,
    })
    .await;
    assert_eq!(
        (restart, delay),
        (expect_restart, Duration::from_secs(expect_delay))
    );
    clock.advance(delay);
    eventually("the handler to be up again", || match tick_state(h) {
        ChildState::Ready { pid: new, .. } if new != pid => Some(()),
        _ => None,
    })
    .await;
}

/// A handler that was up and then dies is restarted forever — well past the
/// host's old limit of 3 — after 1 s, 2 s, 4 s … capped at 60 s, measured on
/// the injected clock (the test moves it by exactly each announced delay; the
/// real clock could not get there). Each restart is announced with its delay
/// (state and event), and once the handler has stayed up for
/// `HEALTHY_AFTER` the next crash starts over at 1 s.
#[tokio::test]
async fn crashed_handler_is_restarted_with_capped_backoff() {
    use syncbridge_localhost::HostEvent;
    use syncbridge_localhost::supervisor::HEALTHY_AFTER;
    let app = App::new(host_json(), &[("Tick", timer_fn("0 0 * * * *", false))]);
    let mut config = app.config(&[]);
    let (tx, mut rx) = tokio::sync::broadcast::channel(256);
    config.events = Some(tx);
    let h = LocalHost::start(config).await.unwrap();
    let mut announced = Vec::new();
    for (n, secs) in [1, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
        kill_and_restart(&h, &app.clock, n as u32 + 1, secs).await;
    }
    // Up long enough to count as healthy: the next crash waits 1 s again.
    app.clock.advance(HEALTHY_AFTER);
    kill_and_restart(&h, &app.clock, 1, 1).await;
    while let Ok(ev) = rx.try_recv() {
        match ev {
            HostEvent::FunctionRestarting { delay, .. } => announced.push(delay.as_secs()),
            HostEvent::FunctionFailed { reason, .. } => panic!("gave up: {reason}"),
            _ => {}
        }
    }
    assert_eq!(announced, [1, 2, 4, 8, 16, 32, 60, 60, 1]);
    h.shutdown().await;
}

/// A completion that fails because another connection holds the queue file's
/// write lock past the busy timeout (200 ms here) is retried, not dropped: once the
/// file is free the message completes after its single delivery. Before, the
/// failed settlement left the message locked until its lock expired (the
/// invocation timeout plus a minute on the injected clock, which this test
/// never moves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_settlement_is_retried_while_the_lock_holds() {
    let worker = json!({"bindings": [
        {"name": "msg", "type": "serviceBusTrigger", "direction": "in", "queueName": "jobs",
         "connection": "ServiceBusConnection", "dataType": "binary"}]});
    let app = App::new(host_json(), &[("Work", worker)]);
    let mut config = app.config(&[("ECHO_DELAY_MS", "500")]);
    config.queue_busy_timeout = Duration::from_millis(200);
    let h = LocalHost::start(config).await.unwrap();
    h.queue.send(vec![msg("jobs", "m-1", b"{}")]).await.unwrap();
    eventually("the invocation to start", || {
        Some(()).filter(|_| !app.records("Work.jsonl").is_empty())
    })
    .await;
    // Another writer takes the file while the handler still works (500 ms).
    let blocker = rusqlite::Connection::open(app.dir.path().join("data/queue.db")).unwrap();
    blocker
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM dedup WHERE 0;")
        .unwrap();
    let held: i64 = blocker
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE message_id = 'm-1' AND lock_token IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, 1, "the message was settled before the file was taken");
    // Well past the host's busy timeout (200 ms): completion attempts fail
    // (the receive loop's attempts fail alike, between them). Real time on
    // purpose: the lock is a real SQLite file lock and its busy timeout is
    // SQLite's, in another task's blocking call; no clock can move them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    eventually("the message to be completed", || {
        let c = h.queue.counts("jobs").unwrap();
        (c == QueueCounts::default()).then_some(())
    })
    .await;
    assert_eq!(app.records("Work.jsonl").len(), 1, "delivered once");
    h.shutdown().await;
}
