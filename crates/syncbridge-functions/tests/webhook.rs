//! WebhookReceiver in process (`oneshot`), with the embedded store and queue.
//!
//! What was tried and what must hold: a valid Standard Webhooks delivery is
//! stored and enqueued once; a redelivery is a duplicate; missing or garbled
//! headers, a wrong secret, stale or future timestamps, an oversized body and
//! an unknown connection each get the right 4xx, store and enqueue nothing,
//! count the outcome, and never echo the secret; rotation accepts either
//! secret; an event for no known object is quarantined; Slack's
//! url_verification handshake is answered.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use syncbridge_core::model::{
    Connection, ConnectionStatus, Direction, Priority, SyncTask, WebhookSettings,
};
use syncbridge_core::{
    Clock, ConnectionId, ObjectType, QueueName, SecretString, SystemClock, TenantId,
};
use syncbridge_functions::webhook::{WebhookCounters, router_with_counters};
use syncbridge_functions::{AppState, Settings};
use syncbridge_localqueue::LocalQueue;
use syncbridge_signatures::{Request as SigRequest, Scheme, WebhookSecret};
use tower::ServiceExt;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    queue: LocalQueue,
    counters: Arc<WebhookCounters>,
}

async fn harness(scheme: &str, secrets: &[&str]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_data_dir(dir.path());
    settings.webhook_max_bytes = 4096;
    let state = AppState::embedded(settings).unwrap();
    let now = SystemClock.now();
    let conn = Connection {
        id: ConnectionId::parse("conn1").unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: None,
        webhook: Some(WebhookSettings {
            scheme: scheme.into(),
            sealed_secrets: syncbridge_credentials::seal_webhook_secrets(
                state.credential_manager.sealer(),
                &ConnectionId::parse("conn1").unwrap(),
                &secrets
                    .iter()
                    .map(|s| SecretString::new(*s))
                    .collect::<Vec<_>>(),
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
    state
        .store
        .put_task(&SyncTask {
            id: SyncTask::id_for(&conn.id, &object, Direction::Inbound),
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
        counters: Arc::default(),
    }
}

fn signed(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let req = SigRequest {
        method: "POST",
        url: "http://localhost/api/webhooks/conn1",
        headers: &[],
        body: body.as_bytes(),
    };
    syncbridge_signatures::sign(
        &Scheme::StandardWebhooks,
        &WebhookSecret::new(secret),
        &req,
        ts,
        id,
    )
    .unwrap()
}

async fn post(
    h: &Harness,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let app = router_with_counters(h.state.clone(), h.counters.clone());
    let resp = app
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn now() -> i64 {
    SystemClock.now().as_unix_secs()
}

fn queued(h: &Harness) -> u64 {
    let c = h.queue.counts(QueueName::SYNC_INBOUND).unwrap();
    c.active + c.scheduled + c.locked
}

const EVENT: &str = r#"{"id":"evt_1","type":"contact.updated","object":"contacts","objectId":"7"}"#;

/// A valid delivery is accepted and enqueued once; the same delivery again is a duplicate.
#[tokio::test]
async fn valid_delivery_once_then_duplicate() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let headers = signed(SECRET, "msg_1", now(), EVENT);
    let (status, body) = post(&h, "/api/webhooks/conn1", &headers, EVENT).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(queued(&h), 1);
    let (status, body) = post(&h, "/api/webhooks/conn1", &headers, EVENT).await;
    assert_eq!(
        (status, body.contains("duplicate")),
        (StatusCode::OK, true),
        "{body}"
    );
    assert_eq!(queued(&h), 1, "a redelivery enqueues nothing");
    let snap = h.counters.snapshot();
    assert_eq!((snap["accepted"], snap["duplicate"]), (1, 1));
}

/// What was tried: the receiver died after its store stage committed an
/// event and before the enqueue stage sent the event's job (simulated by
/// storing the event directly, as stage 1 does). What must hold: the
/// provider's redelivery (it got no 2xx) enqueues the job, exactly once, and
/// a further redelivery adds none.
#[tokio::test]
async fn redelivery_after_a_crash_before_enqueue_enqueues_once() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let event = syncbridge_core::model::WebhookEvent {
        connection: ConnectionId::parse("conn1").unwrap(),
        dedup_key: "msg_crash".into(),
        received_at: SystemClock.now(),
        body: EVENT.as_bytes().to_vec(),
    };
    let fresh = h
        .state
        .store
        .insert_webhook_events(&[event], std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
    assert_eq!(queued(&h), 0, "the crash left the event without its job");
    let headers = signed(SECRET, "msg_crash", now(), EVENT);
    for attempt in 1..=2 {
        let (status, body) = post(&h, "/api/webhooks/conn1", &headers, EVENT).await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: {body}");
        assert!(body.contains("duplicate"), "attempt {attempt}: {body}");
        assert_eq!(queued(&h), 1, "attempt {attempt}: one job, never two");
    }
}

/// What was tried: a Square delivery (Square signs the URL it called)
/// arriving through the host's proxy, where `Host` names the handler and the
/// caller's host and scheme come as `X-Forwarded-Host` / `X-Forwarded-Proto`.
/// What must hold: it verifies against the public URL and is accepted.
#[tokio::test]
async fn url_signed_schemes_verify_the_forwarded_url() {
    const KEY: &str = "square-signature-key";
    let h = harness("square", &[KEY]).await;
    let req = SigRequest {
        method: "POST",
        url: "https://hooks.example.com/api/webhooks/conn1",
        headers: &[],
        body: EVENT.as_bytes(),
    };
    let mut headers = syncbridge_signatures::sign(
        &Scheme::Square,
        &WebhookSecret::new(KEY),
        &req,
        now(),
        "sq_1",
    )
    .unwrap();
    headers.extend([
        ("host".to_string(), "127.0.0.1:7777".to_string()),
        (
            "x-forwarded-host".to_string(),
            "hooks.example.com".to_string(),
        ),
        ("x-forwarded-proto".to_string(), "https".to_string()),
    ]);
    let (status, body) = post(&h, "/api/webhooks/conn1", &headers, EVENT).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(queued(&h), 1);
}

/// What was tried: an event naming no synced object was stored by a
/// receiver that died before quarantining it; the provider redelivers.
/// What must hold: the redelivery is answered only once the event is in the
/// quarantine, so it can be listed and replayed.
#[tokio::test]
async fn a_redelivered_unroutable_event_reaches_the_quarantine() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let body = r#"{"id":"evt_t","object":"tickets"}"#;
    let event = syncbridge_core::model::WebhookEvent {
        connection: ConnectionId::parse("conn1").unwrap(),
        dedup_key: "msg_t".into(),
        received_at: SystemClock.now(),
        body: body.as_bytes().to_vec(),
    };
    h.state
        .store
        .insert_webhook_events(&[event], std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    let headers = signed(SECRET, "msg_t", now(), body);
    let (status, answer) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let q = h.state.store.list_quarantine(10).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].message.message_id.as_deref(), Some("msg_t"));
    assert_eq!(queued(&h), 0);
}

/// Each kind of bad input gets its 4xx, stores and enqueues nothing, is counted, and leaks no secret.
#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
#[tokio::test]
async fn bad_input_table() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let good = signed(SECRET, "msg_2", now(), EVENT);
    let without = |name: &str| {
        good.iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
            .cloned()
            .collect::<Vec<_>>()
    };
    let with = |name: &str, value: &str| {
        let mut v = without(name);
        v.push((name.to_string(), value.to_string()));
        v
    };
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000));
    // (name, path, headers, body, expected status, counter)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(String, String)>,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "missing signature",
            "/api/webhooks/conn1",
            without("webhook-signature"),
            EVENT.into(),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        (
            "missing timestamp",
            "/api/webhooks/conn1",
            without("webhook-timestamp"),
            EVENT.into(),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        (
            "garbled signature",
            "/api/webhooks/conn1",
            with("webhook-signature", "v1,%%%not-base64"),
            EVENT.into(),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        (
            "garbled timestamp",
            "/api/webhooks/conn1",
            with("webhook-timestamp", "yesterday"),
            EVENT.into(),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        (
            "wrong secret",
            "/api/webhooks/conn1",
            signed(OLD_SECRET, "msg_2", now(), EVENT),
            EVENT.into(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "stale timestamp",
            "/api/webhooks/conn1",
            signed(SECRET, "msg_2", now() - 3600, EVENT),
            EVENT.into(),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            "/api/webhooks/conn1",
            signed(SECRET, "msg_2", now() + 3600, EVENT),
            EVENT.into(),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "tampered body",
            "/api/webhooks/conn1",
            good.clone(),
            EVENT.replace("7", "8"),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "oversized body",
            "/api/webhooks/conn1",
            signed(SECRET, "msg_3", now(), &big),
            big.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "unknown connection",
            "/api/webhooks/nope",
            good.clone(),
            EVENT.into(),
            StatusCode::NOT_FOUND,
            "unknown_connection",
        ),
    ];
    for (name, path, headers, body, want, counter) in cases {
        let before = h.counters.snapshot().get(counter).copied().unwrap_or(0);
        let (status, text) = post(&h, path, &headers, &body).await;
        assert_eq!(status, want, "{name}: {text}");
        assert!(
            !text.contains(SECRET) && !text.contains(&SECRET[6..]),
            "{name}: secret leaked: {text}"
        );
        if !counter.is_empty() {
            assert_eq!(
                h.counters.snapshot()[counter],
                before + 1,
                "{name}: counter {counter}"
            );
        }
        assert_eq!(queued(&h), 0, "{name}: nothing enqueued");
        assert!(
            h.state.store.list_quarantine(10).await.unwrap().is_empty(),
            "{name}: nothing quarantined"
        );
    }
    // Nothing was stored either: the good delivery is still new.
    let (status, _) = post(&h, "/api/webhooks/conn1", &good, EVENT).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// During a rotation both the old and the new secret verify.
#[tokio::test]
async fn rotation_accepts_both_secrets() {
    let h = harness("standard-webhooks", &[SECRET, OLD_SECRET]).await;
    for (i, s) in [SECRET, OLD_SECRET].into_iter().enumerate() {
        let body = EVENT.replace("evt_1", &format!("evt_r{i}"));
        let (status, text) = post(
            &h,
            "/api/webhooks/conn1",
            &signed(s, &format!("msg_r{i}"), now(), &body),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    }
    assert_eq!(queued(&h), 2);
}

/// A verified event for an object no task syncs is quarantined (listable, replayable), not enqueued.
#[tokio::test]
async fn unroutable_event_is_quarantined() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let body = r#"{"id":"evt_9","type":"ticket.created","object":"tickets"}"#;
    let (status, text) = post(
        &h,
        "/api/webhooks/conn1",
        &signed(SECRET, "msg_9", now(), body),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert!(text.contains("quarantined"), "{text}");
    assert_eq!(queued(&h), 0);
    let q = h.state.store.list_quarantine(10).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].message.body, body.as_bytes());
    assert!(
        q[0].message.reason.contains("tickets"),
        "{}",
        q[0].message.reason
    );
}

/// Slack's url_verification handshake is answered with the challenge after the signature checks.
#[tokio::test]
async fn slack_handshake_is_answered() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let h = harness("slack", &[secret]).await;
    let body = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now();
    let req = SigRequest {
        method: "POST",
        url: "http://localhost/api/webhooks/conn1",
        headers: &[],
        body: body.as_bytes(),
    };
    let headers =
        syncbridge_signatures::sign(&Scheme::Slack, &WebhookSecret::new(secret), &req, ts, "x")
            .unwrap();
    let (status, text) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
        "{text}"
    );
    assert_eq!(queued(&h), 0, "a handshake is not an event");
}

/// What was tried: Zoom's endpoint validation during a secret rotation,
/// signed with the second (new) secret of the connection's two. What must
/// hold: the `encryptedToken` answer is keyed with the secret that verified
/// the request, not merely the first one listed.
#[tokio::test]
async fn zoom_validation_answers_with_the_secret_that_verified() {
    use hmac::Mac as _;
    let (old, new) = ("zoom-old-secret", "zoom-new-secret");
    let h = harness("zoom", &[old, new]).await;
    let body = r#"{"event":"endpoint.url_validation","payload":{"plainToken":"abc123"}}"#;
    let req = SigRequest {
        method: "POST",
        url: "http://localhost/api/webhooks/conn1",
        headers: &[],
        body: body.as_bytes(),
    };
    let headers =
        syncbridge_signatures::sign(&Scheme::Zoom, &WebhookSecret::new(new), &req, now(), "z")
            .unwrap();
    let (status, text) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(new.as_bytes()).unwrap();
    mac.update(b"abc123");
    let want = hex::encode(mac.finalize().into_bytes());
    assert!(text.contains(&want), "{text}");
}

/// What was tried: connections whose stored webhook settings no delivery
/// could ever pass — a Standard Webhooks secret that is not base64
/// (`whsec_!!!`, stored before `connections add` checked secrets), a
/// scheme that does not parse, and sealed secrets altered at rest. What must
/// hold: a signed delivery is answered 403 with a message saying the
/// settings cannot be used (never 500, which tells the provider to retry a
/// server fault), the outcome is counted, and nothing is enqueued.
#[tokio::test]
async fn unusable_stored_settings_answer_403() {
    let body = EVENT;
    let headers = signed(SECRET, "msg_u", now(), body);
    let h = harness("standard-webhooks", &["whsec_!!!"]).await;
    let (status, text) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("cannot verify"), "{text}");
    assert_eq!(h.counters.snapshot()["bad_configuration"], 1);
    assert_eq!(queued(&h), 0);

    let h = harness("standard-webhooks", &[SECRET]).await;
    let id = ConnectionId::parse("conn1").unwrap();
    let mut conn = h.state.store.get_connection(&id).await.unwrap().unwrap();
    conn.webhook.as_mut().unwrap().scheme = "no-such-scheme".into();
    h.state.store.put_connection(&conn).await.unwrap();
    let (status, text) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("cannot be used"), "{text}");

    let h = harness("standard-webhooks", &[SECRET]).await;
    let mut conn = h.state.store.get_connection(&id).await.unwrap().unwrap();
    let sealed = &mut conn.webhook.as_mut().unwrap().sealed_secrets;
    sealed.ciphertext[0] ^= 1;
    h.state.store.put_connection(&conn).await.unwrap();
    let (status, text) = post(&h, "/api/webhooks/conn1", &headers, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("cannot be used"), "{text}");
    assert_eq!(queued(&h), 0);
}

/// What was tried: a connection's webhook secrets sealed under the data key,
/// the key rotated, the secrets sealed again, and a credential blob of the
/// same connection passed off as its webhook secrets. What must hold: the
/// stored JSON holds no secret in plain text; secrets sealed before the
/// rotation still open (and deliveries signed with them verify), new seals
/// use the new key version; a blob sealed for another purpose does not open.
#[tokio::test]
async fn sealed_secrets_survive_a_key_rotation() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let id = ConnectionId::parse("conn1").unwrap();
    let conn = h.state.store.get_connection(&id).await.unwrap().unwrap();
    let stored = serde_json::to_string(&conn).unwrap();
    assert!(!stored.contains(&SECRET[6..]), "{stored}");
    assert!(!format!("{conn:?}").contains(&SECRET[6..]));
    let sealer = h.state.credential_manager.sealer();
    let before = conn.webhook.unwrap().sealed_secrets;
    let new_version = sealer.rotate().await.unwrap();
    assert_ne!(before.key_version, new_version);
    let opened = syncbridge_credentials::open_webhook_secrets(sealer, &id, &before)
        .await
        .unwrap();
    assert_eq!(opened[0].expose(), SECRET);
    let (status, text) = post(
        &h,
        "/api/webhooks/conn1",
        &signed(SECRET, "msg_rot", now(), EVENT),
        EVENT,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let again = syncbridge_credentials::seal_webhook_secrets(sealer, &id, &opened)
        .await
        .unwrap();
    assert_eq!(again.key_version, new_version);
    let credential = sealer.seal(&id, br#"["x"]"#).await.unwrap();
    let passed_off = syncbridge_core::model::SealedSecrets {
        key_version: credential.key_version,
        nonce: credential.nonce,
        ciphertext: credential.ciphertext,
    };
    assert!(
        syncbridge_credentials::open_webhook_secrets(sealer, &id, &passed_off)
            .await
            .is_err()
    );
}

/// Invoked the way the host calls a function it does not proxy (`POST
/// /WebhookReceiver` with the JSON envelope), the receiver refuses loudly
/// with a 500 naming the setting, counts it, and enqueues nothing.
#[tokio::test]
async fn the_json_envelope_is_refused_loudly() {
    let h = harness("standard-webhooks", &[SECRET]).await;
    let spec = syncbridge_protocol::host::HttpRequestSpec {
        method: "POST".into(),
        url: "http://localhost/api/webhooks/conn1".into(),
        body: Some(bytes::Bytes::from_static(b"{}")),
        ..Default::default()
    };
    let sys = syncbridge_protocol::request::SysMetadata::new(
        "WebhookReceiver",
        time::OffsetDateTime::now_utc(),
    );
    let envelope = syncbridge_protocol::host::http_request("req", &spec, &sys).to_vec();
    let envelope = String::from_utf8(envelope).unwrap();
    let (status, body) = post(&h, "/WebhookReceiver", &[], &envelope).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("enableProxyingHttpRequest"), "{body}");
    assert_eq!(queued(&h), 0);
    assert_eq!(h.counters.snapshot().get("not_proxied"), Some(&1));
}
