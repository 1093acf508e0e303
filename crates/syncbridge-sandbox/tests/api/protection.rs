//! The hostile provider: rate limiting and injected faults.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use syncbridge_sandbox::{FaultConfig, RateLimit, SandboxConfig};

use crate::helpers::{TestApp, spawn_app, spawn_with};

fn header(resp: &reqwest::Response, name: &str) -> u64 {
    resp.headers()[name].to_str().unwrap().parse().unwrap()
}

async fn set_faults(app: &TestApp, faults: Value) {
    app.admin("/_sandbox/config", json!({ "faults": faults }))
        .await;
}

/// Over the app-wide limit the sandbox answers 429 with Retry-After; every response carries both header families.
#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    // Arrange
    let app = spawn_with(SandboxConfig {
        records_per_object: 5,
        rate_limit: Some(RateLimit::new(3, Duration::from_secs(10))),
        ..SandboxConfig::default()
    })
    .await;

    // Act + Assert: three pass with a falling budget.
    for remaining in [2, 1, 0] {
        let resp = app.get("/crm/v3/objects/contacts").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-ratelimit-limit"), 3);
        assert_eq!(header(&resp, "x-ratelimit-remaining"), remaining);
        assert!((1..=10).contains(&header(&resp, "x-ratelimit-reset")));
        assert_eq!(header(&resp, "x-hubspot-ratelimit-max"), 3);
        assert_eq!(header(&resp, "x-hubspot-ratelimit-remaining"), remaining);
        assert_eq!(
            header(&resp, "x-hubspot-ratelimit-interval-milliseconds"),
            10_000
        );
    }
    let resp = app.get("/crm/v3/objects/contacts").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!((1..=10).contains(&header(&resp, "retry-after")));
    assert_eq!(header(&resp, "x-ratelimit-remaining"), 0);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "RATE_LIMITS");

    // Admin routes are not limited, and the stats saw it.
    let stats = app.stats().await;
    assert_eq!(stats["throttled"], 1);
    assert_eq!(stats["requests"], 4);
}

/// The window renews: after it passes, requests are allowed again (and the limit can be set at runtime).
#[tokio::test]
async fn rate_limit_window_renews() {
    let app = spawn_app(5).await;
    app.admin("/_sandbox/config", json!({"rate_limit": "1/1500ms"}))
        .await;
    assert_eq!(
        app.get("/crm/v3/objects/deals")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/crm/v3/objects/deals")
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        app.get("/crm/v3/objects/deals")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.admin("/_sandbox/config", json!({"rate_limit": null}))
        .await;
    let resp = app.get("/crm/v3/objects/deals").send().await.unwrap();
    assert!(
        resp.headers().get("x-ratelimit-limit").is_none(),
        "off means no headers"
    );
}

/// error_rate answers 5xx in HubSpot's error shape instead of handling the request.
#[tokio::test]
async fn injected_server_errors() {
    let app = spawn_app(5).await;
    set_faults(&app, json!({"error_rate": 1.0})).await;
    for _ in 0..6 {
        let resp = app
            .post(
                "/crm/v3/objects/contacts",
                &json!({"properties": {"firstname": "Never"}}),
            )
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_server_error(), "{}", resp.status());
        assert_eq!(resp.json::<Value>().await.unwrap()["status"], "error");
    }
    assert_eq!(app.dump("contacts").await.len(), 5, "not applied");
    let stats = app.stats().await;
    assert_eq!(stats["faults"]["errors"], 6);
    assert_eq!(stats["faults_injected"], 6);
}

/// drop_rate closes the connection without a complete response, after the write was applied.
#[tokio::test]
async fn injected_connection_drops() {
    let app = spawn_app(5).await;
    set_faults(&app, json!({"drop_rate": 1.0})).await;
    let sent = app
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"firstname": "Ghost"}}),
        )
        .send()
        .await;
    let outcome = match sent {
        Err(e) => Err(e),
        Ok(resp) => resp.bytes().await.map(|_| ()),
    };
    assert!(outcome.is_err(), "the client must see a broken exchange");
    assert_eq!(
        app.dump("contacts").await.len(),
        6,
        "applied although the client never heard"
    );
    assert_eq!(app.stats().await["faults"]["drops"], 1);
}

/// truncate_rate cuts bodies: either the connection ends early (Content-Length unmet) or the JSON is cut.
#[tokio::test]
async fn injected_truncated_bodies() {
    let app = spawn_app(20).await;
    set_faults(&app, json!({"truncate_rate": 1.0, "seed": 3})).await;
    let (mut short_reads, mut bad_json) = (0, 0);
    for _ in 0..12 {
        let resp = app.get("/crm/v3/objects/contacts?limit=20").send().await;
        let body = match resp {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                r.bytes().await
            }
            Err(e) => Err(e),
        };
        match body {
            Err(_) => short_reads += 1,
            Ok(bytes) => {
                assert!(
                    serde_json::from_slice::<Value>(&bytes).is_err(),
                    "body must be cut"
                );
                bad_json += 1;
            }
        }
    }
    assert!(
        short_reads > 0 && bad_json > 0,
        "both flavours: {short_reads} {bad_json}"
    );
    assert_eq!(app.stats().await["faults"]["truncations"], 12);
}

/// latency_rate delays responses by latency_ms.
#[tokio::test]
async fn injected_latency() {
    let app = spawn_app(5).await;
    set_faults(&app, json!({"latency_rate": 1.0, "latency_ms": 250})).await;
    let started = Instant::now();
    let resp = app.get("/crm/v3/objects/contacts").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(app.stats().await["faults"]["delays"], 1);
}

/// The fault sequence is a function of its seed: two sandboxes fail the same requests.
#[tokio::test]
async fn faults_are_deterministic_by_seed() {
    let faults = FaultConfig {
        seed: 5,
        error_rate: 0.5,
        ..FaultConfig::default()
    };
    let statuses = |app: TestApp| async move {
        let mut out = Vec::new();
        for _ in 0..16 {
            out.push(
                app.get("/crm/v3/objects/deals")
                    .send()
                    .await
                    .unwrap()
                    .status(),
            );
        }
        out
    };
    let config = SandboxConfig {
        records_per_object: 3,
        faults,
        ..SandboxConfig::default()
    };
    let a = statuses(spawn_with(config.clone()).await).await;
    let b = statuses(spawn_with(config).await).await;
    assert_eq!(a, b);
    assert!(a.contains(&StatusCode::OK));
    assert!(a.iter().any(StatusCode::is_server_error));
}
