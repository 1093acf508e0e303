//! Signed webhook emission, received by a small axum server on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use syncbridge_signatures::{Request, Scheme, WebhookSecret, verify};

use crate::helpers::{ok_json, spawn_app};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One received POST: its headers and raw body.
type Delivery = (Vec<(String, String)>, Bytes);

#[derive(Clone, Default)]
struct Inbox {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<Mutex<u32>>,
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut fail = inbox.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    inbox.deliveries.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

async fn start_receiver(fail_first: u32) -> (String, Inbox) {
    let inbox = Inbox::default();
    *inbox.fail_first.lock().unwrap() = fail_first;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/hooks", post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, inbox)
}

/// Every mutation is delivered as a Standard Webhooks–signed event that the signatures crate verifies; a 5xx is retried.
#[tokio::test]
async fn mutations_emit_signed_webhooks() {
    // Arrange: the receiver fails its first delivery.
    let (url, inbox) = start_receiver(1).await;
    let app = spawn_app(10).await;
    app.admin(
        "/_sandbox/config",
        json!({"webhook": {"url": url, "secret": SECRET, "backoff_ms": 20}}),
    )
    .await;

    // Act: four kinds of change, through the API and the admin mutate.
    let patched = ok_json(
        app.patch(
            "/crm/v3/objects/contacts/3",
            &json!({"properties": {"lastname": "Changed"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let created = app
        .post(
            "/crm/v3/objects/companies",
            &json!({"properties": {"name": "Hook Co"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deleted = app
        .client
        .delete(app.url("/crm/v3/objects/deals/2"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let m = app
        .admin(
            "/_sandbox/mutate",
            json!({"object": "contacts", "update": 2, "seed": 4}),
        )
        .await;

    // Assert: wait for all five events.
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..250 {
        events = inbox
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| serde_json::from_slice::<Vec<Value>>(body).unwrap())
            .collect();
        if events.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["objectId"].as_str().unwrap()))
        .collect();
    let mutated = crate::helpers::strings(&m["updated"]);
    assert_eq!(
        kinds,
        vec![
            ("contact.updated", "3"),
            ("company.created", "11"),
            ("deal.deleted", "2"),
            ("contact.updated", mutated[0].as_str()),
            ("contact.updated", mutated[1].as_str()),
        ]
    );
    assert_eq!(events[0]["object"], "contacts");
    assert_eq!(events[0]["occurredAt"], patched["updatedAt"]);
    assert!(events[0]["id"].as_str().unwrap().starts_with("evt_"));

    let secret = WebhookSecret::new(SECRET);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (headers, body) in inbox.deliveries.lock().unwrap().iter() {
        let req = Request {
            method: "POST",
            url: &url,
            headers,
            body,
        };
        let verified = verify(
            &Scheme::StandardWebhooks,
            std::slice::from_ref(&secret),
            &req,
            now,
            300,
        )
        .expect("signature verifies");
        assert!(verified.event_id.unwrap().starts_with("msg_"));
    }
    let wrong = WebhookSecret::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let (headers, body) = inbox.deliveries.lock().unwrap()[0].clone();
    let req = Request {
        method: "POST",
        url: &url,
        headers: &headers,
        body: &body,
    };
    assert!(verify(&Scheme::StandardWebhooks, &[wrong], &req, now, 300).is_err());

    let stats = app.stats().await;
    let hooks = &stats["webhooks"];
    assert_eq!(hooks["events_delivered"], 5);
    assert_eq!(hooks["failures"], 0);
    assert_eq!(
        hooks["attempts"].as_u64().unwrap(),
        hooks["batches_delivered"].as_u64().unwrap() + 1,
        "one retry after the 500"
    );
}

/// Without a webhook target nothing is sent, and a dead target never slows the API down.
#[tokio::test]
async fn webhook_delivery_never_blocks_the_api() {
    let app = spawn_app(5).await;
    // Nothing listens on port 9 (discard) on loopback: every attempt fails.
    app.admin(
        "/_sandbox/config",
        json!({"webhook": {"url": "http://127.0.0.1:9/", "secret": SECRET, "max_retries": 1, "backoff_ms": 10}}),
    )
    .await;
    let started = std::time::Instant::now();
    for i in 0..5 {
        let resp = app
            .patch(
                "/crm/v3/objects/deals/1",
                &json!({"properties": {"amount": i}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    for _ in 0..100 {
        if app.stats().await["webhooks"]["failures"].as_u64().unwrap() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the failing deliveries were never counted");
}
