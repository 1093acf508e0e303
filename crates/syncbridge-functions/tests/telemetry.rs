//! Telemetry through the real routers (`syncbridge_functions::app`, as the
//! binaries serve them), with the subscriber's JSON output captured in memory.
//!
//! What must hold: every log line of an invocation carries the host's
//! invocation id (`X-Azure-Functions-InvocationId`) on its `invocation` span;
//! a webhook delivery's id becomes the correlation id of the jobs it enqueues
//! and arrives, through the queue, on the inbound worker's log lines; the
//! scheduler gives each job it enqueues a new correlation id.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use syncbridge_core::model::{
    Connection, ConnectionStatus, Direction, JobMessage, Lease, Priority, SyncJob, SyncTask,
    WebhookSettings,
};
use syncbridge_core::{
    Clock, ConnectionId, ObjectType, QueueName, SecretString, SystemClock, TaskId, TenantId,
};
use syncbridge_functions::telemetry::{self, LogFormat};
use syncbridge_functions::{AppState, Settings, app, inbound, scheduler, webhook};
use syncbridge_localqueue::LocalQueue;
use syncbridge_protocol::{BrokerMessage, INVOCATION_ID_HEADER, SysMetadata};
use syncbridge_signatures::{Request as SigRequest, Scheme, WebhookSecret};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The subscriber's output, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Every line, parsed (each must be one JSON object).
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The first line whose message is `message`.
    fn line(&self, message: &str) -> serde_json::Value {
        let lines = self.lines();
        lines
            .iter()
            .find(|l| l["message"] == message)
            .cloned()
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
    }
}

/// Installs a JSON subscriber writing into the returned buffer for this
/// thread (the tests run on a current-thread runtime, spawned tasks included).
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let sub = telemetry::subscriber(LogFormat::Json, EnvFilter::new("info"), out.clone());
    (out, tracing::subscriber::set_default(sub))
}

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    queue: LocalQueue,
    task: TaskId,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let now = SystemClock.now();
    let conn = Connection {
        id: ConnectionId::parse("conn1").unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: None,
        webhook: Some(WebhookSettings {
            scheme: "standard-webhooks".into(),
            sealed_secrets: syncbridge_credentials::seal_webhook_secrets(
                state.credential_manager.sealer(),
                &ConnectionId::parse("conn1").unwrap(),
                &[SecretString::new(SECRET)],
            )
            .await
            .unwrap(),
        }),
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: now,
    };
    state.store.put_connection(&conn).await.unwrap();
    let object = ObjectType::parse("contacts").unwrap();
    let task = SyncTask::id_for(&conn.id, &object, Direction::Inbound);
    state
        .store
        .put_task(&SyncTask {
            id: task.clone(),
            tenant: conn.tenant.clone(),
            connection: conn.id.clone(),
            object,
            direction: Direction::Inbound,
            priority: Priority::Scheduled,
            interval_secs: 300,
            next_run_at: now,
            cursor: None,
            lease: None,
            last_run_at: None,
            stalled: false,
            version: 0,
            generation: 0,
        })
        .await
        .unwrap();
    let queue = LocalQueue::open(dir.path().join("queue.db")).unwrap();
    Harness {
        _dir: dir,
        state,
        queue,
        task,
    }
}

/// The inbound messages waiting on `sync-inbound`, as `(message, body)`.
fn inbound_messages(h: &Harness) -> Vec<(syncbridge_localqueue::Message, JobMessage)> {
    h.queue
        .peek(QueueName::SYNC_INBOUND)
        .unwrap()
        .into_iter()
        .map(|m| {
            let body = serde_json::from_slice(&m.body).unwrap();
            (m, body)
        })
        .collect()
}

async fn call(router: axum::Router, req: Request<Body>) -> StatusCode {
    router.oneshot(req).await.unwrap().status()
}

fn utc_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A delivery's id is the correlation id of its job, in the queue and on the
/// webhook's and then the inbound worker's log lines, each with its own
/// invocation id.
#[tokio::test]
async fn webhook_delivery_id_travels_to_the_inbound_worker() {
    let h = harness().await;
    let (out, _guard) = capture();

    // WebhookReceiver: a signed Standard Webhooks delivery, id `msg_corr_1`.
    let body = r#"{"type":"contact.updated","object":"contacts","objectId":"7"}"#;
    let sig = SigRequest {
        method: "POST",
        url: "http://localhost/api/webhooks/conn1",
        headers: &[],
        body: body.as_bytes(),
    };
    let headers = syncbridge_signatures::sign(
        &Scheme::StandardWebhooks,
        &WebhookSecret::new(SECRET),
        &sig,
        SystemClock.now().as_unix_secs(),
        "msg_corr_1",
    )
    .unwrap();
    let mut req = Request::post("/api/webhooks/conn1")
        .header("content-type", "application/json")
        .header(INVOCATION_ID_HEADER, "inv-webhook");
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let router = app(webhook::FUNCTION, webhook::router, h.state.clone());
    let status = call(router, req.body(Body::from(body)).unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The enqueued job carries it, in the body and as an application property.
    let queued = inbound_messages(&h);
    assert_eq!(queued.len(), 1);
    let (msg, job) = &queued[0];
    assert_eq!(job.correlation_id.as_deref(), Some("msg_corr_1"));
    assert_eq!(job.job.task, h.task);
    assert_eq!(
        msg.properties.get("correlation_id").map(String::as_str),
        Some("msg_corr_1")
    );
    let plain: SyncJob = serde_json::from_slice(&msg.body).unwrap();
    assert_eq!(
        plain, job.job,
        "still a SyncJob for readers that ignore the id"
    );

    let accepted = out.line("webhook accepted");
    assert_eq!(accepted["span"]["function"], "WebhookReceiver");
    assert_eq!(accepted["span"]["invocation_id"], "inv-webhook");
    assert_eq!(accepted["span"]["correlation_id"], "msg_corr_1");
    assert_eq!(accepted["span"]["connection"], "conn1");

    // SyncInboundWorker gets that message as the host delivers it. A run
    // holds the task's lease, so the follow-up is deferred (no provider call).
    let now = SystemClock.now();
    assert!(
        h.state
            .store
            .lease_task(
                &h.task,
                0,
                &Lease {
                    token: "v0".into(),
                    until: now.add(std::time::Duration::from_secs(600)),
                },
            )
            .await
            .unwrap()
    );
    let invocation = syncbridge_protocol::service_bus_request(
        "msg",
        &msg.body,
        &BrokerMessage::new(msg.message_id.clone()),
        true,
        &SysMetadata::new(inbound::FUNCTION, utc_now()),
    );
    let req = Request::post(format!("/{}", inbound::FUNCTION))
        .header("content-type", "application/json")
        .header(INVOCATION_ID_HEADER, "inv-worker")
        .body(Body::from(invocation.to_vec()))
        .unwrap();
    let router = app(inbound::FUNCTION, inbound::router, h.state.clone());
    assert_eq!(call(router, req).await, StatusCode::OK);

    let skipped = out.line("job skipped");
    let span = &skipped["span"];
    assert_eq!(span["name"], telemetry::INVOCATION_SPAN);
    assert_eq!(span["function"], "SyncInboundWorker");
    assert_eq!(span["invocation_id"], "inv-worker");
    assert_eq!(span["correlation_id"], "msg_corr_1");
    assert_eq!(span["message_id"], msg.message_id.as_str());
    assert_eq!(span["delivery_count"], 1);
    assert_eq!(span["task"], h.task.as_str());
    assert!(
        !out.lines().iter().any(|l| l.to_string().contains(SECRET)),
        "the webhook secret is never logged"
    );
}

/// Each job a scheduler tick enqueues gets a new correlation id, logged with
/// the tick's invocation id.
#[tokio::test]
async fn scheduler_gives_each_job_a_correlation_id() {
    let h = harness().await;
    let (out, _guard) = capture();
    let invocation =
        syncbridge_protocol::timer_request(false, None, utc_now(), scheduler::FUNCTION);
    let req = Request::post(format!("/{}", scheduler::FUNCTION))
        .header("content-type", "application/json")
        .header(INVOCATION_ID_HEADER, "inv-tick")
        .body(Body::from(invocation.to_vec()))
        .unwrap();
    let router = app(scheduler::FUNCTION, scheduler::router, h.state.clone());
    assert_eq!(call(router, req).await, StatusCode::OK);

    let queued = inbound_messages(&h);
    assert_eq!(queued.len(), 1);
    let (msg, job) = &queued[0];
    let id = job.correlation_id.clone().expect("a correlation id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(msg.properties.get("correlation_id"), Some(&id));

    let enqueued = out.line("job enqueued");
    assert_eq!(enqueued["correlation_id"], id.as_str());
    assert_eq!(enqueued["message_id"], msg.message_id.as_str());
    assert_eq!(enqueued["span"]["invocation_id"], "inv-tick");
    assert_eq!(
        out.line("scheduler tick")["span"]["function"],
        "SyncScheduler"
    );
}
