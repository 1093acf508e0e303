//! The `Invocation<T>` extractor in a tiny axum router, driven with `oneshot`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use serde_json::Value;
use syncbridge_protocol::{
    BrokerMessage, INVOCATION_ID_HEADER, Invocation, InvocationContext, InvocationResponse,
    ProtocolError, ServiceBusInvocation, SysMetadata, TimerInvocation, service_bus_request,
    timer_request,
};
use time::macros::datetime;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
struct Job {
    #[serde(rename = "jobId")]
    job_id: String,
}

/// What the handler quarantined: (context, raw envelope, reason).
type Quarantine = Arc<Mutex<Vec<(InvocationContext, Bytes, String)>>>;

async fn process_job(
    State(quarantine): State<Quarantine>,
    inv: Invocation<ServiceBusInvocation>,
) -> Response {
    let decoded = inv
        .payload
        .clone()
        .and_then(|m| m.json::<Job>().map(|j| (m, j)));
    match decoded {
        Ok((msg, job)) => InvocationResponse::new()
            .log(format!(
                "job {} delivery {}",
                job.job_id, msg.metadata.delivery_count
            ))
            .log_all(msg.warning_logs())
            .into_response(),
        Err(poison) if poison.is_poison() => {
            quarantine.lock().unwrap().push((
                inv.context.clone(),
                inv.raw.clone(),
                poison.to_string(),
            ));
            InvocationResponse::quarantined(poison).into_response()
        }
        Err(misconfigured) => ProtocolError::from(misconfigured).into_response(),
    }
}

async fn tick(inv: Invocation<TimerInvocation>) -> Result<InvocationResponse, ProtocolError> {
    let timer = inv.into_payload_or_reject()?;
    Ok(InvocationResponse::new().log(format!("past due: {}", timer.is_past_due)))
}

fn app(quarantine: Quarantine) -> Router {
    Router::new()
        .route("/ProcessJob", post(process_job))
        .route("/Tick", post(tick))
        .with_state(quarantine)
}

async fn call(app: Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .header(INVOCATION_ID_HEADER, "inv-42")
        .body(Body::from(body))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

fn sys() -> SysMetadata {
    SysMetadata::new("ProcessJob", datetime!(2024-05-01 12:00 UTC))
}

/// Proves a valid Service Bus invocation is extracted and answered 200 with the handler's logs.
#[tokio::test]
async fn valid_message_is_processed() {
    let q = Quarantine::default();
    let req = service_bus_request(
        "msg",
        br#"{"jobId":"9"}"#,
        &BrokerMessage::new("m1"),
        true,
        &sys(),
    );
    let (status, body) = call(app(q.clone()), "/ProcessJob", req.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Logs"][0], "job 9 delivery 1");
    assert!(q.lock().unwrap().is_empty());
}

/// Proves an undecodable body is poison: the raw envelope reaches the handler, is quarantined
/// verbatim with the invocation id, and the host gets 200 (no hot redelivery loop, §11.5).
#[tokio::test]
async fn poison_message_is_quarantined_with_200() {
    let q = Quarantine::default();
    let req = service_bus_request(
        "msg",
        b"\x00not json",
        &BrokerMessage::new("m2"),
        true,
        &sys(),
    );
    let sent = req.to_vec();
    let (status, body) = call(app(q.clone()), "/ProcessJob", sent.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let parsed = syncbridge_protocol::parse_invocation_response(&body).unwrap();
    assert!(parsed.is_quarantined());
    let stored = q.lock().unwrap();
    let (ctx, raw, reason) = &stored[0];
    assert_eq!(raw.as_ref(), sent.as_slice());
    assert_eq!(ctx.invocation_id.as_deref(), Some("inv-42"));
    assert_eq!(ctx.function_name.as_deref(), Some("ProcessJob"));
    assert!(reason.contains("undecodable"), "{reason}");
}

/// Proves a body that is not a JSON envelope is rejected with 400 and a clear message.
#[tokio::test]
async fn malformed_envelope_is_400() {
    let q = Quarantine::default();
    for body in [&b"not json"[..], b"", b"[1,2]", br#"{"Data":"x"}"#] {
        let (status, text) = call(app(q.clone()), "/ProcessJob", body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("malformed invocation envelope"), "{text}");
    }
    assert!(q.lock().unwrap().is_empty());
}

/// Proves `into_payload_or_reject` turns a missing trigger into a 400 (timer: host logs, retries).
#[tokio::test]
async fn strict_handler_rejects_undecodable_payload() {
    let ok = timer_request(true, None, datetime!(2024-05-01 12:00 UTC), "Tick");
    let (status, body) = call(app(Quarantine::default()), "/Tick", ok.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("past due: true"));

    let (status, body) = call(
        app(Quarantine::default()),
        "/Tick",
        br#"{"Data":{},"Metadata":{}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("undecodable invocation payload")
    );
}

/// Proves the function name falls back to the request path when `sys` is absent (§2).
#[tokio::test]
async fn function_name_falls_back_to_path() {
    let q = Quarantine::default();
    let body = br#"{"Data":{"msg":"bm90IGpzb24="},"Metadata":{"DeliveryCount":"4"}}"#;
    let (status, _) = call(app(q.clone()), "/ProcessJob", body.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let stored = q.lock().unwrap();
    assert_eq!(stored[0].0.function_name.as_deref(), Some("ProcessJob"));
}

/// Proves a binding mismatch (two Data entries, trigger unknowable) is *not* treated as poison:
/// it answers 400 so messages dead-letter visibly instead of the whole queue being quarantined.
#[tokio::test]
async fn binding_mismatch_is_not_quarantined() {
    let q = Quarantine::default();
    let body = br#"{"Data":{"msg":"e30=","blob":"e30="},"Metadata":{"DeliveryCount":"1"}}"#;
    let (status, text) = call(app(q.clone()), "/ProcessJob", body.to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("several bindings")
    );
    assert!(q.lock().unwrap().is_empty());
}

/// Proves an envelope over the router's body limit is rejected with 413 and a clear message.
#[tokio::test]
async fn oversized_envelope_is_413() {
    let app = app(Quarantine::default()).layer(axum::extract::DefaultBodyLimit::max(64));
    let req = service_bus_request("msg", &[b'x'; 256], &BrokerMessage::new("m"), true, &sys());
    let (status, text) = call(app, "/ProcessJob", req.to_vec()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("could not read the invocation body")
    );
}
