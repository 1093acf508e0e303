//! The product webhook channel: product events only, their payloads, the
//! signature, and retries through the outbox.

use std::time::Duration;

use serde_json::json;
use syncbridge_core::events::{Event, ProductEvent, Severity};
use syncbridge_core::{Clock as _, SecretString};
use syncbridge_notify::render::product_data;
use syncbridge_notify::samples::sample_events;
use syncbridge_notify::{
    ChannelConfig, ChannelKind, DefaultRoute, NotifyConfig, PRODUCT_CHANNEL, Rule,
};
use syncbridge_signatures::{Request, Scheme, WebhookSecret, verify};

use crate::common::{Recorder, Reply, WHSEC, accepted_by_id, clock, service};

fn sample(kind: &str) -> Event {
    sample_events()
        .into_iter()
        .find(|e| e.kind() == kind)
        .unwrap()
}

/// Default grouping (30 s hold) plus the product webhook, as the handlers build it.
fn product_only(url: &str) -> NotifyConfig {
    NotifyConfig::default().with_product_webhook(SecretString::new(url), WebhookSecret::new(WHSEC))
}

/// Each product event maps to its documented payload fields; other events are not product events.
#[test]
fn event_to_payload_mapping() {
    assert_eq!(
        product_data(&sample("sync_completed")),
        json!({
            "tenant": "acme",
            "connection_id": "acme-hubspot",
            "object": "contacts",
            "run_id": "acme-hubspot:contacts:inbound:r1",
            "status": "succeeded",
            "counts": {"added": 120, "updated": 7, "deleted": 2},
            // ["records", "acme-hubspot", "contacts", "4711"], base64url.
            "records_cursor": "WyJyZWNvcmRzIiwiYWNtZS1odWJzcG90IiwiY29udGFjdHMiLCI0NzExIl0",
        })
    );
    assert_eq!(
        product_data(&sample("connection_created")),
        json!({"tenant": "acme", "connection_id": "acme-hubspot", "provider": "hubspot"})
    );
    assert_eq!(
        product_data(&sample("connection_needs_reauth")),
        json!({
            "tenant": "acme",
            "connection_id": "acme-hubspot",
            "provider": "hubspot",
            "reason": "invalid_grant",
        })
    );
    let types: Vec<&str> = sample_events()
        .iter()
        .filter_map(|e| match e.product() {
            ProductEvent::Yes(t) => Some(t),
            ProductEvent::No => None,
        })
        .collect();
    assert_eq!(
        types,
        [
            "connection.needs_reauth",
            "sync.completed",
            "connection.created",
            "connection.reauthorized"
        ]
    );
}

/// The product channel receives exactly the product events, at once (no grouping hold), signed; the body is `{type, timestamp, data}` with `data.id` = `webhook-id`.
#[tokio::test]
async fn product_channel_gets_product_events_signed() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let url = rec.url("/product");
    let svc = service(dir.path(), product_only(&url), &clock);
    for e in sample_events() {
        svc.enqueue(e).await.unwrap();
    }
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    // sync.completed and connection.created at once; needs_reauth waits
    // out the grouping hold like every operator event of its kind.
    let types: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "sync.completed",
            "connection.created",
            "connection.reauthorized"
        ]
    );
    clock.advance(Duration::from_secs(30));
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[3].json()["type"], "connection.needs_reauth");
    for r in &reqs {
        let req = Request {
            method: "POST",
            url: &url,
            headers: &r.headers,
            body: &r.body,
        };
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let v = verify(
            &Scheme::StandardWebhooks,
            &[WebhookSecret::new(WHSEC)],
            &req,
            ts,
            300,
        )
        .expect("signature verifies");
        let body = r.json();
        assert_eq!(v.event_id.as_deref(), body["data"]["id"].as_str());
        assert!(body["timestamp"].is_string());
    }
}

/// A receiver that answers 500 then 200 gets the event once: retried after the configured backoff, same id and body, then never again.
#[tokio::test]
async fn product_webhook_retries_after_500() {
    let rec = Recorder::start().await;
    rec.script([Reply::new(500, "oops")]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let url = rec.url("/product");
    let svc = service(dir.path(), product_only(&url), &clock);
    svc.enqueue(sample("sync_completed")).await.unwrap();
    let first = svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!((first.delivered, first.retrying), (0, 1));
    // Not before the first backoff (5 s by default) …
    clock.advance(Duration::from_secs(4));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 0);
    // … then once.
    clock.advance(Duration::from_secs(1));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(svc.deliver_due(clock.now()).await.unwrap().delivered, 0);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body);
    let accepted = accepted_by_id(ChannelKind::Product, &reqs);
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].1, 1);
    assert_eq!(reqs[1].json()["data"]["counts"]["added"], 120);
}

/// Operator routing is unchanged by a product channel: a rule's channels still get product events it matches, other events never reach the product; rules may not name a product channel.
#[tokio::test]
async fn product_routing_is_additive() {
    let ops = ChannelConfig::slack("ops", "https://hooks.slack.com/services/T/B/X");
    let cfg = NotifyConfig {
        channels: vec![ops],
        default: Some(DefaultRoute {
            min_severity: Severity::Warning,
            channels: vec!["ops".into()],
        }),
        ..NotifyConfig::default()
    }
    .with_product_webhook(
        SecretString::new("https://product.example.com/hooks"),
        WebhookSecret::new(WHSEC),
    );
    cfg.validate().unwrap();
    let route = |kind| cfg.route(&sample(kind));
    assert_eq!(route("sync_completed").unwrap(), [PRODUCT_CHANNEL]);
    assert_eq!(
        route("connection_needs_reauth").unwrap(),
        ["ops", PRODUCT_CHANNEL]
    );
    assert_eq!(route("sync_run_failed").unwrap(), ["ops"]);
    assert!(route("sync_run_recovered").is_err());
    let mut bad = cfg.clone();
    bad.rules.push(Rule::new(&[PRODUCT_CHANNEL]));
    assert!(bad.validate().is_err());
}
