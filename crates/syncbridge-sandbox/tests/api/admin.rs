//! The `/_sandbox` admin API, the in-process router and the binary.

use std::process::Stdio;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use syncbridge_sandbox::{Sandbox, SandboxConfig, app};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::ServiceExt;

use crate::helpers::{spawn_app, strings};

/// Stats count provider requests and token requests, and break requests down per route.
#[tokio::test]
async fn stats_count_requests_per_route() {
    let app = spawn_app(5).await;
    app.get_json("/crm/v3/objects/contacts").await;
    app.get_json("/crm/v3/objects/deals/2").await;
    app.get_json("/crm/v3/objects/deals/3").await;
    let _ = app
        .client
        .post(app.url("/oauth/v1/token"))
        .send()
        .await
        .unwrap();

    let stats = app.stats().await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["throttled"], 0);
    assert_eq!(stats["faults_injected"], 0);
    let routes = &stats["routes"];
    assert_eq!(routes["GET /crm/v3/objects/{object}"], 1);
    assert_eq!(routes["GET /crm/v3/objects/{object}/{id}"], 2);
    assert_eq!(routes["POST /oauth/v1/token"], 1);
    assert_eq!(app.handle.stats().requests, 3, "the library view agrees");
}

/// `/_sandbox/mutate` changes exactly the ids it reports; `/_sandbox/reset` restores the seeded data and zeroes stats.
#[tokio::test]
async fn mutate_reports_affected_ids_and_reset_restores() {
    let app = spawn_app(30).await;
    let seeded = app.dump("contacts").await;

    let m = app
        .admin(
            "/_sandbox/mutate",
            json!({"object": "contacts", "update": 4, "delete": 2, "create": 3, "seed": 9}),
        )
        .await;
    let (updated, deleted, created) = (
        strings(&m["updated"]),
        strings(&m["deleted"]),
        strings(&m["created"]),
    );
    assert_eq!((updated.len(), deleted.len(), created.len()), (4, 2, 3));
    assert_eq!(created, ["31", "32", "33"]);
    let after = app.dump("contacts").await;
    assert_eq!(after.len(), 31);
    for r in &after {
        let id = r["id"].as_str().unwrap().to_owned();
        let before = seeded.iter().find(|s| s["id"] == r["id"]);
        let changed = before != Some(r);
        let reported = updated.contains(&id) || created.contains(&id);
        assert_eq!(changed, reported, "record {id}");
        if reported {
            assert_eq!(r["updatedAt"], m["updatedAt"]);
        }
    }
    assert!(
        deleted
            .iter()
            .all(|id| !after.iter().any(|r| r["id"] == id.as_str()))
    );

    let same = app
        .admin(
            "/_sandbox/mutate",
            json!({"object": "deals", "update": 3, "seed": 9}),
        )
        .await;
    let again = crate::helpers::spawn_app(30).await;
    let same2 = again
        .admin(
            "/_sandbox/mutate",
            json!({"object": "deals", "update": 3, "seed": 9}),
        )
        .await;
    assert_eq!(
        same["updated"], same2["updated"],
        "a mutate seed picks the same records"
    );

    app.admin("/_sandbox/reset", json!({})).await;
    assert_eq!(app.dump("contacts").await, seeded);
    assert_eq!(app.stats().await["requests"], 0);
    let r = app
        .admin("/_sandbox/reset", json!({"seed": 1, "records": 7}))
        .await;
    assert_eq!(r["records_per_object"], 7);
    assert_eq!(app.dump("deals").await.len(), 7);
}

/// Invalid runtime config is refused with 400 and changes nothing.
#[tokio::test]
async fn config_validation() {
    let app = spawn_app(3).await;
    let resp = app
        .client
        .post(app.url("/_sandbox/config"))
        .json(&json!({"faults": {"error_rate": 2.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .client
        .post(app.url("/_sandbox/config"))
        .json(&json!({"webhook": {"url": "http://127.0.0.1:1/", "secret": "plain"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let cfg: Value = app
        .client
        .get(app.url("/_sandbox/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["faults"]["error_rate"], 0.0);
    assert!(cfg["webhook"].is_null());
    assert!(cfg.get("client_secret").is_none(), "secrets are not served");
}

/// The router works in-process through `oneshot`, without a socket.
#[tokio::test]
async fn router_serves_oneshot_requests() {
    let sandbox = Sandbox::new(SandboxConfig {
        records_per_object: 4,
        ..SandboxConfig::default()
    })
    .unwrap();
    let token = sandbox.issue_tokens().access_token;
    let router = app(sandbox);

    let unauthorized = router
        .clone()
        .oneshot(
            Request::get("/crm/v3/objects/contacts")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);

    let resp = router
        .oneshot(
            Request::get("/crm/v3/objects/contacts?limit=2")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["paging"]["next"]["after"], "2");
}

/// The binary prints `listening on http://127.0.0.1:PORT` as its first stdout line and serves there.
#[tokio::test]
async fn binary_prints_its_address_first() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncbridge-sandbox"))
        .args([
            "--port",
            "0",
            "--records",
            "25",
            "--seed",
            "3",
            "--no-auth",
            "--rate-limit",
            "100/10s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).await.unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line was {first:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));

    let resp = reqwest::get(format!("{base}/crm/v3/objects/companies?limit=100"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ratelimit-limit"], "100");
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 25);
    child.kill().await.unwrap();
}
