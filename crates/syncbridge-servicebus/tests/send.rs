//! `ServiceBusSender` against the **real** local host's Service Bus REST
//! endpoint (`syncbridge_localhost::LocalHost`, `POST /{queue}/messages`, which
//! stores into its durable `LocalQueue` with Service Bus semantics), with the
//! token from the **real** `azure_identity::ManagedIdentityCredential` talking
//! to a **fake** managed-identity endpoint on loopback (see `common`: no Azure
//! endpoint can run here). Error mapping is tested against a scripted loopback
//! server.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use common::{FakeIdentity, in_child, run_child};
use syncbridge_core::{OutboundMessage, QueueError, QueueName, QueueSender, Timestamp};
use syncbridge_localhost::{HostConfig, LocalHost, LocalHostHandle};
use syncbridge_servicebus::{ServiceBusOptions, ServiceBusSender, entra};
use url::Url;

/// 2030-01-01T00:00:00Z: a scheduled time in the future, whole seconds (RFC 1123 precision).
const LATER: Timestamp = Timestamp::from_millis(1_893_456_000_000);

/// A local host with no functions, only the two product queues declared.
async fn local_host() -> (tempfile::TempDir, LocalHostHandle) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../host.json"),
        app.join("host.json"),
    )
    .unwrap();
    let host = LocalHost::start(HostConfig::new(
        &app,
        dir.path().join("bin"),
        dir.path().join("data"),
    ))
    .await
    .unwrap();
    host.queue.declare_queue(QueueName::SYNC_INBOUND).unwrap();
    host.queue.declare_queue(QueueName::SYNC_OUTBOUND).unwrap();
    (dir, host)
}

fn job(id: &str, n: u32) -> OutboundMessage {
    OutboundMessage::json(QueueName::inbound(), id, &serde_json::json!({ "n": n }))
}

/// The child half of [`managed_identity_token_then_send_to_local_host`]: real
/// `ManagedIdentityCredential` (from `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`),
/// real sender, real local host.
async fn child_sends() {
    let url = syncbridge_env::Env::var(&syncbridge_env::ProcessEnv, "SB_TEST_URL").unwrap();
    let credential = entra::managed_identity(None).expect("App Service identity detected");
    let sender = ServiceBusSender::new(
        Url::parse(&url).unwrap(),
        credential,
        ServiceBusOptions {
            time_to_live: Some(Duration::from_secs(3600)),
            ..ServiceBusOptions::default()
        },
    )
    .unwrap();
    // 1. A single send: scheduled, in a session, one header-safe property.
    let mut first = job("job-1", 1).at(LATER);
    first.session_id = Some("conn-a".into());
    first.properties.insert("tenant".into(), "acme".into());
    sender.send(vec![first.clone()]).await.unwrap();
    // 2. A batch: job-1 again (dropped by duplicate detection), a property
    //    whose upper-case name only survives in a batch, and a binary body.
    let mut second = job("job-2", 2);
    second.properties.insert("Priority".into(), "High".into());
    let mut third = job("job-3", 3);
    third.body = vec![0x00, 0xff, 0x10];
    third.content_type = Some("application/octet-stream".into());
    sender
        .send(vec![first.clone(), second.clone(), third])
        .await
        .unwrap();
    // 3. A resend of job-2 alone: dropped too.
    sender.send(vec![second]).await.unwrap();
}

/// The real `ManagedIdentityCredential` gets a token from the App Service
/// identity protocol (fake endpoint) once; the sender uses it for four sends
/// to the local host; the queue holds each `MessageId` once with its
/// properties, session and scheduled time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_token_then_send_to_local_host() {
    if in_child() {
        child_sends().await;
        return;
    }
    let identity = FakeIdentity::start().await;
    let (_dir, host) = local_host().await;
    let url = host.url();
    let id = identity.clone();
    tokio::task::spawn_blocking(move || {
        run_child(
            "managed_identity_token_then_send_to_local_host",
            &id,
            &[("SB_TEST_URL", url)],
        )
    })
    .await
    .unwrap();

    let requests = identity.requests();
    assert_eq!(requests.len(), 1, "one token for all sends: {requests:?}");
    let r = &requests[0];
    assert_eq!(
        r.query.get("resource").map(String::as_str),
        Some("https://servicebus.azure.net")
    );
    assert_eq!(
        r.query.get("api-version").map(String::as_str),
        Some("2019-08-01")
    );
    assert_eq!(r.identity_header.as_deref(), Some(common::IDENTITY_SECRET));

    let messages = host.queue.peek(QueueName::SYNC_INBOUND).unwrap();
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["job-1", "job-2", "job-3"], "duplicates dropped");
    let first = &messages[0];
    assert_eq!(first.scheduled_enqueue_time, Some(LATER));
    assert_eq!(first.session_id.as_deref(), Some("conn-a"));
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        first.properties,
        BTreeMap::from([("tenant".to_string(), "acme".to_string())])
    );
    assert_eq!(first.body, br#"{"n":1}"#);
    assert!(first.expires_at.is_some(), "TimeToLive applied");
    assert_eq!(
        messages[1].properties.get("Priority").map(String::as_str),
        Some("High")
    );
    assert_eq!(messages[1].scheduled_enqueue_time, None);
    assert_eq!(
        messages[2].body,
        vec![0x00, 0xff, 0x10],
        "base64 batch body"
    );
    host.shutdown().await;
}

/// A credential that hands out fixed tokens and counts calls (for tests that
/// are not about the identity protocol).
#[derive(Debug, Default)]
struct StaticCredential {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for StaticCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, [entra::SERVICE_BUS_SCOPE]);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken::new(
            format!("static-{n}"),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// More messages than fit one request are split into several batches; all land once.
#[tokio::test]
async fn large_batches_are_split() {
    let (_dir, host) = local_host().await;
    let credential = Arc::new(StaticCredential::default());
    let sender = ServiceBusSender::new(
        Url::parse(&host.url()).unwrap(),
        credential.clone(),
        ServiceBusOptions {
            max_batch_bytes: 2_000,
            ..ServiceBusOptions::default()
        },
    )
    .unwrap();
    let batch: Vec<_> = (0..60).map(|i| job(&format!("b{i:02}"), i)).collect();
    sender.send(batch.clone()).await.unwrap();
    sender.send(batch).await.unwrap();
    let messages = host.queue.peek(QueueName::SYNC_INBOUND).unwrap();
    assert_eq!(messages.len(), 60);
    assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
    // A message that can never fit is refused as permanent, before sending.
    let mut huge = job("huge", 0);
    huge.body = vec![b'x'; 5_000];
    let err = sender
        .send(vec![huge.clone(), job("x", 1)])
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    // An unknown queue is permanent (404 from the host).
    let mut lost = job("lost", 0);
    lost.queue = QueueName::new("no-such-queue");
    assert!(!sender.send(vec![lost]).await.unwrap_err().is_transient());
    host.shutdown().await;
}

/// A loopback server that answers every send with the next scripted status
/// (a stand-in for Service Bus failure modes; nothing real can fail on cue).
async fn scripted(statuses: Vec<u16>, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let statuses = Arc::new(statuses);
    let app = axum::Router::new().route(
        "/{queue}/messages",
        axum::routing::post(move || {
            let (h, statuses) = (h.clone(), statuses.clone());
            async move {
                let i = h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let code = statuses[i.min(statuses.len() - 1)];
                (StatusCode::from_u16(code).unwrap(), "<Error/>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), hits)
}

/// Status codes map to retryable or not; a 401 refreshes the token once.
#[tokio::test]
async fn errors_are_classified() {
    for (code, transient) in [
        (429, true),
        (500, true),
        (503, true),
        (400, false),
        (403, false),
        (404, false),
        (410, false),
    ] {
        let (url, _) = scripted(vec![code], Duration::ZERO).await;
        let sender = ServiceBusSender::new(
            Url::parse(&url).unwrap(),
            Arc::new(StaticCredential::default()),
            ServiceBusOptions::default(),
        )
        .unwrap();
        let err = sender.send(vec![job("j", 1)]).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{code}: {err}");
        assert!(err.to_string().contains(&code.to_string()), "{err}");
    }

    // 401 then 201: a fresh token is fetched and the send succeeds.
    let (url, hits) = scripted(vec![401, 201], Duration::ZERO).await;
    let credential = Arc::new(StaticCredential::default());
    let sender = ServiceBusSender::new(
        Url::parse(&url).unwrap(),
        credential.clone(),
        ServiceBusOptions::default(),
    )
    .unwrap();
    sender.send(vec![job("j", 1)]).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(credential.calls.load(Ordering::SeqCst), 2);
    // 401 twice: permanent.
    let (url, _) = scripted(vec![401], Duration::ZERO).await;
    let sender = ServiceBusSender::new(
        Url::parse(&url).unwrap(),
        Arc::new(StaticCredential::default()),
        ServiceBusOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        sender.send(vec![job("j", 1)]).await,
        Err(QueueError::Permanent(_))
    ));

    // A timeout is transient.
    let (url, _) = scripted(vec![201], Duration::from_secs(5)).await;
    let sender = ServiceBusSender::new(
        Url::parse(&url).unwrap(),
        Arc::new(StaticCredential::default()),
        ServiceBusOptions {
            timeout: Duration::from_millis(200),
            ..ServiceBusOptions::default()
        },
    )
    .unwrap();
    let err = sender.send(vec![job("j", 1)]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}
