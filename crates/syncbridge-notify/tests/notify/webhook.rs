//! The generic outbound webhook: Standard Webhooks signature and JSON body.

use std::time::Duration;
use syncbridge_core::Clock as _;

use syncbridge_core::events::Event;
use syncbridge_notify::ChannelConfig;
use syncbridge_notify::samples::sample_events;
use syncbridge_signatures::{Request, Scheme, VerifyError, WebhookSecret, verify};

use crate::common::{Recorded, Recorder, Reply, WHSEC, clock, one_channel, service};

fn verify_recorded(
    r: &Recorded,
    url: &str,
    secret: &str,
    now_unix: i64,
) -> Result<syncbridge_signatures::Verified, VerifyError> {
    let req = Request {
        method: "POST",
        url,
        headers: &r.headers,
        body: &r.body,
    };
    verify(
        &Scheme::StandardWebhooks,
        &[WebhookSecret::new(secret)],
        &req,
        now_unix,
        300,
    )
}

/// Every kind's webhook delivery verifies with `syncbridge_signatures::verify` (standard-webhooks); the id is the message id and the body carries the core event, which deserializes back unchanged.
#[tokio::test]
async fn webhook_signature_verifies_and_body_round_trips() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let url = rec.url("/hooks/syncbridge");
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::webhook("w", &url, WHSEC)),
        &clock,
    );
    for e in sample_events() {
        svc.enqueue(e).await.unwrap();
    }
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), sample_events().len());
    let now = clock.now().as_unix_secs();
    for r in &reqs {
        let verified = verify_recorded(r, &url, WHSEC, now).expect("signature verifies");
        let v = r.json();
        assert_eq!(verified.event_id.as_deref(), v["data"]["id"].as_str());
        assert_eq!(verified.timestamp, Some(now));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let event: Event = serde_json::from_value(v["data"]["event"].clone()).unwrap();
        assert_eq!(v["type"], format!("syncbridge.{}", event.kind()));
        assert_eq!(v["data"]["kind"], event.kind());
        assert_eq!(v["data"]["title"], event.title());
        assert_eq!(v["data"]["group_key"], event.group_key());
        assert_eq!(v["data"]["count"], 1);
        assert!(sample_events().contains(&event));
        // A wrong secret or a tampered body fails.
        assert!(verify_recorded(r, &url, "whsec_c2VjcmV0LW90aGVy", now).is_err());
        let mut tampered = r.clone();
        tampered.body.push(b' ');
        assert!(verify_recorded(&tampered, &url, WHSEC, now).is_err());
    }
}

/// A retried webhook keeps its id and body but is signed afresh with the retry's timestamp, so the receiver can dedupe and still check freshness.
#[tokio::test]
async fn webhook_retry_keeps_id_and_resigns() {
    let rec = Recorder::start().await;
    rec.script([Reply::new(500, "oops")]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let url = rec.url("/hooks/syncbridge");
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::webhook("w", &url, WHSEC)),
        &clock,
    );
    svc.enqueue(sample_events().remove(0)).await.unwrap();
    let t1 = clock.now().as_unix_secs();
    svc.deliver_due(clock.now()).await.unwrap();
    clock.advance(Duration::from_secs(5));
    let t2 = clock.now().as_unix_secs();
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(
        reqs[0].header("webhook-timestamp"),
        Some(t1.to_string().as_str())
    );
    assert_eq!(
        reqs[1].header("webhook-timestamp"),
        Some(t2.to_string().as_str())
    );
    verify_recorded(&reqs[1], &url, WHSEC, t2).unwrap();
}
