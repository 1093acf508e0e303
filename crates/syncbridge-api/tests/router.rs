//! The API's router against a real embedded state (SQLite store and local
//! queue in a temp dir), called with tower's `oneshot`: auth refusals, the
//! routes, bad input answered as problem documents with nothing written.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use syncbridge_api::keys;
use syncbridge_core::apikeys::ApiScope;
use syncbridge_core::model::{QuarantinedMessage, RunCounts, RunStatus, SyncRun};
use syncbridge_core::{ConnectionId, RunId, TaskId, Timestamp};
use syncbridge_functions::{AppState, Settings};
use tower::ServiceExt;

struct Api {
    app: AppState,
    router: Router,
    admin: String,
    write: String,
    read: String,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let app = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let mut made = Vec::new();
    for scope in [ApiScope::Admin, ApiScope::Write, ApiScope::Read] {
        let k = keys::create(app.store.as_ref(), scope.as_str(), scope, Timestamp::EPOCH)
            .await
            .unwrap();
        made.push(k.key.expose().to_owned());
    }
    Api {
        router: syncbridge_api::router(app.clone()),
        app,
        admin: made[0].clone(),
        write: made[1].clone(),
        read: made[2].clone(),
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    etag: Option<String>,
    body: Value,
}

impl Api {
    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Reply {
        self.call_with(method, path, key, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            content_type,
            etag,
            body,
        }
    }
}

fn assert_problem(r: &Reply, status: u16, slug: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.content_type, "application/problem+json", "{:?}", r.body);
    assert_eq!(
        r.body["type"],
        format!("urn:syncbridge:problem:{slug}"),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["status"], status);
}

const SANDBOX: &str = r#"{"id":"c1","tenant":"acme","provider":"sandbox","base_url":"http://127.0.0.1:9","interval_secs":60}"#;

/// [`api`] with the sandbox connection c1 created over the API.
async fn api_with_c1() -> Api {
    let a = api().await;
    let made = a
        .call("POST", "/api/v1/connections", Some(&a.write), Some(SANDBOX))
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    a
}

/// No key, a wrong key, a revoked key: 401. A read key writing, a write key
/// managing keys: 403. The document needs no key.
#[tokio::test]
async fn keys_and_scopes() {
    let a = api().await;
    assert_problem(
        &a.call("GET", "/api/v1/connections", None, None).await,
        401,
        "unauthorized",
    );
    assert_problem(
        &a.call("GET", "/api/v1/connections", Some("sbk_wrong"), None)
            .await,
        401,
        "unauthorized",
    );
    assert_eq!(
        a.call("GET", "/api/v1/connections", Some(&a.read), None)
            .await
            .status,
        200
    );
    assert_problem(
        &a.call("POST", "/api/v1/connections", Some(&a.read), Some(SANDBOX))
            .await,
        403,
        "forbidden",
    );
    assert!(
        a.app
            .store
            .get_connection(&ConnectionId::parse("c1").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_problem(
        &a.call("GET", "/api/v1/api-keys", Some(&a.write), None)
            .await,
        403,
        "forbidden",
    );
    let listed = a
        .call("GET", "/api/v1/api-keys", Some(&a.admin), None)
        .await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 3);
    assert!(
        !listed.body.to_string().contains(&a.read),
        "keys are never listed"
    );

    let made = a
        .call(
            "POST",
            "/api/v1/api-keys",
            Some(&a.admin),
            Some(r#"{"name":"ci","scope":"read"}"#),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let key = made.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sbk_"));
    assert_eq!(
        a.call("GET", "/api/v1/runs", Some(&key), None).await.status,
        200
    );
    let id = made.body["id"].as_str().unwrap();
    let revoked = a
        .call(
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    assert_problem(
        &a.call("GET", "/api/v1/runs", Some(&key), None).await,
        401,
        "unauthorized",
    );

    let doc = a.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"].as_str().unwrap().get(..3), Some("3.1"));
}

/// Create, get, list with filters and cursors, update, pause, resume, delete.
#[tokio::test]
async fn connections_lifecycle() {
    let a = api().await;
    let w = Some(a.write.as_str());
    let made = a
        .call("POST", "/api/v1/connections", w, Some(SANDBOX))
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(made.body["status"], "active");
    assert_problem(
        &a.call("POST", "/api/v1/connections", w, Some(SANDBOX))
            .await,
        409,
        "conflict",
    );
    for i in 2..=5 {
        let body = SANDBOX
            .replace("\"c1\"", &format!("\"c{i}\""))
            .replace("acme", if i % 2 == 0 { "other" } else { "acme" });
        assert_eq!(
            a.call("POST", "/api/v1/connections", w, Some(&body))
                .await
                .status,
            201
        );
    }
    let r = Some(a.read.as_str());
    let mut seen = Vec::new();
    let mut path = "/api/v1/connections?limit=2".to_owned();
    loop {
        let page = a.call("GET", &path, r, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for c in page.body["connections"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/connections?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c1", "c2", "c3", "c4", "c5"]);
    let acme = a
        .call("GET", "/api/v1/connections?tenant=acme", r, None)
        .await;
    assert_eq!(acme.body["connections"].as_array().unwrap().len(), 3);

    let got = a.call("GET", "/api/v1/connections/c1", r, None).await;
    assert_eq!(got.body["provider"], "sandbox");
    let patched = a
        .call(
            "PATCH",
            "/api/v1/connections/c1",
            w,
            Some(r#"{"base_url":"http://127.0.0.1:10"}"#),
        )
        .await;
    assert_eq!(patched.body["base_url"], "http://127.0.0.1:10");
    let paused = a
        .call("POST", "/api/v1/connections/c1/pause", w, None)
        .await;
    assert_eq!(paused.body["status"], "disabled");
    let listed = a
        .call("GET", "/api/v1/connections?status=disabled", r, None)
        .await;
    assert_eq!(listed.body["connections"][0]["id"], "c1");
    let resumed = a
        .call("POST", "/api/v1/connections/c1/resume", w, None)
        .await;
    assert_eq!(resumed.body["status"], "active");

    let tasks = a.call("GET", "/api/v1/connections/c1/tasks", r, None).await;
    let tasks = tasks.body["tasks"].as_array().unwrap().clone();
    assert!(!tasks.is_empty());
    assert_eq!(tasks[0]["cursor"], Value::Null);
    assert_eq!(tasks[0]["last_result"], Value::Null);

    assert_eq!(
        a.call("DELETE", "/api/v1/connections/c2", w, None)
            .await
            .status,
        204
    );
    assert_problem(
        &a.call("GET", "/api/v1/connections/c2", r, None).await,
        404,
        "not-found",
    );
    assert_problem(
        &a.call("DELETE", "/api/v1/connections/c2", w, None).await,
        404,
        "not-found",
    );
}

/// Sync now asks for interactive runs; a full resync resets the cursor; an
/// unknown object is refused before anything is asked; a task whose run is
/// in flight keeps its lease and cursor (full resync and interval change: 409).
#[tokio::test]
async fn sync_now_and_full_resync() {
    let a = api_with_c1().await;
    let w = Some(a.write.as_str());
    let conn = ConnectionId::parse("c1").unwrap();
    let mut t = a.app.store.list_tasks(Some(&conn)).await.unwrap()[0].clone();
    t.cursor = Some("page-9".into());
    t.next_run_at = Timestamp::from_millis(i64::MAX / 2);
    a.app.store.put_task(&t).await.unwrap();

    let bad = a
        .call(
            "POST",
            "/api/v1/connections/c1/sync",
            w,
            Some(r#"{"objects":["widgets"],"full_resync":true}"#),
        )
        .await;
    assert_problem(&bad, 400, "invalid-request");
    let still = a.app.store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(still.cursor.as_deref(), Some("page-9"), "nothing written");

    let plain = a.call("POST", "/api/v1/connections/c1/sync", w, None).await;
    assert_eq!(plain.status, 202, "{:?}", plain.body);
    let asked = a.app.store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(
        asked.priority,
        syncbridge_core::model::Priority::Interactive
    );
    assert!(asked.next_run_at <= a.app.clock.now());
    assert_eq!(asked.cursor.as_deref(), Some("page-9"));

    let body = format!(r#"{{"objects":["{}"],"full_resync":true}}"#, t.object);
    let mut leased = a.app.store.get_task(&t.id).await.unwrap().unwrap();
    leased.lease = Some(syncbridge_core::model::Lease {
        token: "run-1".into(),
        until: Timestamp::from_millis(i64::MAX / 2),
    });
    a.app.store.put_task(&leased).await.unwrap();
    let busy = a
        .call("POST", "/api/v1/connections/c1/sync", w, Some(&body))
        .await;
    assert_problem(&busy, 409, "conflict");
    let interval = a
        .call(
            "PATCH",
            "/api/v1/connections/c1",
            w,
            Some(r#"{"interval_secs":5}"#),
        )
        .await;
    assert_problem(&interval, 409, "conflict");
    let kept = a.app.store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(kept.lease, leased.lease, "a running task keeps its lease");
    assert_eq!(kept.cursor.as_deref(), Some("page-9"));
    leased.lease = None;
    a.app.store.put_task(&leased).await.unwrap();
    let full = a
        .call("POST", "/api/v1/connections/c1/sync", w, Some(&body))
        .await;
    assert_eq!(full.status, 202, "{:?}", full.body);
    assert_eq!(full.body["tasks"], json!([t.id.as_str()]));
    let reset = a.app.store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(reset.cursor, None);
    assert_problem(
        &a.call("POST", "/api/v1/connections/nope/sync", w, None)
            .await,
        404,
        "not-found",
    );
}

fn run(id: &str, secs: i64, status: RunStatus) -> SyncRun {
    SyncRun {
        id: RunId::parse(id).unwrap(),
        task: TaskId::parse("c1:contacts:inbound").unwrap(),
        connection: ConnectionId::parse("c1").unwrap(),
        started_at: Timestamp::from_millis(1_000_000 + secs * 1000),
        finished_at: Some(Timestamp::from_millis(1_000_000 + secs * 1000 + 10)),
        status,
        counts: RunCounts {
            created: 3,
            ..Default::default()
        },
        error: None,
    }
}

/// Runs page newest first with public statuses, filter by status, and one run.
#[tokio::test]
async fn runs_pages_and_detail() {
    let a = api().await;
    assert_eq!(
        a.call("POST", "/api/v1/connections", Some(&a.write), Some(SANDBOX))
            .await
            .status,
        201
    );
    for (i, s) in [
        RunStatus::Succeeded,
        RunStatus::Interrupted,
        RunStatus::Parked,
    ]
    .into_iter()
    .enumerate()
    {
        a.app
            .store
            .put_run(&run(&format!("r{i}"), i as i64, s))
            .await
            .unwrap();
    }
    let r = Some(a.read.as_str());
    let first = a
        .call("GET", "/api/v1/runs?connection_id=c1&limit=2", r, None)
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let runs = first.body["runs"].as_array().unwrap();
    assert_eq!(runs[0]["id"], "r2");
    assert_eq!(runs[0]["status"], "running");
    assert_eq!(runs[0]["object"], "contacts");
    assert_eq!(runs[1]["status"], "failed");
    assert_eq!(runs[1]["counts"]["created"], 3);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let next = a
        .call(
            "GET",
            &format!("/api/v1/runs?connection_id=c1&limit=2&cursor={cursor}"),
            r,
            None,
        )
        .await;
    assert_eq!(next.body["runs"][0]["id"], "r0");
    assert_eq!(next.body["next_cursor"], Value::Null);
    let ok = a
        .call("GET", "/api/v1/runs?status=succeeded", r, None)
        .await;
    assert_eq!(ok.body["runs"].as_array().unwrap().len(), 1);
    let one = a.call("GET", "/api/v1/runs/r1", r, None).await;
    assert_eq!(one.body["state"], "interrupted");
    assert_problem(
        &a.call("GET", "/api/v1/runs/none", r, None).await,
        404,
        "not-found",
    );
}

/// Bad input answers a problem document and writes nothing.
#[tokio::test]
async fn bad_input_is_a_problem() {
    let a = api().await;
    let r = Some(a.read.as_str());
    let w = Some(a.write.as_str());
    assert_problem(
        &a.call("GET", "/api/v1/runs?cursor=garbage", r, None).await,
        400,
        "invalid-cursor",
    );
    let conn_cursor = syncbridge_api::pages::encode("connections", &["c1"]);
    assert_problem(
        &a.call(
            "GET",
            &format!("/api/v1/runs?cursor={conn_cursor}"),
            r,
            None,
        )
        .await,
        400,
        "invalid-cursor",
    );
    assert_problem(
        &a.call("GET", "/api/v1/runs?limit=0", r, None).await,
        400,
        "invalid-request",
    );
    assert_problem(
        &a.call("GET", "/api/v1/runs?limit=x", r, None).await,
        400,
        "invalid-request",
    );
    assert_problem(
        &a.call("GET", "/api/v1/runs?status=parked", r, None).await,
        400,
        "invalid-request",
    );
    assert_problem(
        &a.call("GET", "/api/v1/runs?connection_id=nope", r, None)
            .await,
        404,
        "not-found",
    );
    assert_problem(
        &a.call("GET", "/api/v1/runs?since=yesterday", r, None).await,
        400,
        "invalid-request",
    );
    for body in [
        "{not json",
        r#"{"id":"c1","tenant":"acme"}"#,
        r#"{"id":"c1","tenant":"acme","provider":"sandbox","interval_secs":"often"}"#,
        r#"{"id":"c1","tenant":"acme","provider":"nope"}"#,
        r#"{"id":"has space","tenant":"acme","provider":"sandbox"}"#,
        r#"{"id":"c1","tenant":"acme","provider":"sandbox","objects":["widgets"]}"#,
        r#"{"id":"c1","tenant":"acme","provider":"sandbox","extra":1}"#,
    ] {
        let reply = a.call("POST", "/api/v1/connections", w, Some(body)).await;
        assert!(reply.status.is_client_error(), "{body}: {:?}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json", "{body}");
    }
    let big = format!(
        r#"{{"id":"c1","tenant":"acme","provider":"sandbox","base_url":"{}"}}"#,
        "x".repeat(syncbridge_api::MAX_BODY_BYTES)
    );
    assert_problem(
        &a.call("POST", "/api/v1/connections", w, Some(&big)).await,
        413,
        "body-too-large",
    );
    assert!(
        a.app.store.list_connections(None).await.unwrap().is_empty(),
        "nothing written"
    );
    assert_problem(
        &a.call("GET", "/api/v1/nothing-here", r, None).await,
        404,
        "no-route",
    );
    assert_problem(
        &a.call("PUT", "/api/v1/connections", w, None).await,
        405,
        "method-not-allowed",
    );
    assert_problem(
        &a.call("GET", "/api/v1/quarantine/abc", r, None).await,
        400,
        "invalid-request",
    );
}

/// Quarantine: list, inspect, discard; a replay of a message from a queue
/// worker re-sends it (the CLI's replay, shared).
#[tokio::test]
async fn quarantine_inspect_replay_discard() {
    let a = api().await;
    let msg = |source: &str| QuarantinedMessage {
        source: source.into(),
        message_id: Some("m1".into()),
        connection: None,
        reason: "undecodable".into(),
        body: b"{}".to_vec(),
        at: Timestamp::EPOCH,
    };
    let first = a
        .app
        .store
        .quarantine(&msg("SyncInboundWorker"))
        .await
        .unwrap();
    let second = a.app.store.quarantine(&msg("SyncScheduler")).await.unwrap();
    let r = Some(a.read.as_str());
    let w = Some(a.write.as_str());
    let list = a.call("GET", "/api/v1/quarantine?limit=1", r, None).await;
    assert_eq!(list.body["entries"][0]["id"], first);
    assert!(list.body["next_cursor"].is_string());
    let one = a
        .call("GET", &format!("/api/v1/quarantine/{first}"), r, None)
        .await;
    assert_eq!(one.body["body_text"], "{}");
    let replayed = a
        .call(
            "POST",
            &format!("/api/v1/quarantine/{first}/replay"),
            w,
            None,
        )
        .await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.body);
    assert_eq!(replayed.body["queue"], "sync-inbound");
    let q =
        syncbridge_localqueue::LocalQueue::open(a.app.settings.data_dir.join("queue.db")).unwrap();
    assert_eq!(q.counts("sync-inbound").unwrap().active, 1);
    let refused = a
        .call(
            "POST",
            &format!("/api/v1/quarantine/{second}/replay"),
            w,
            None,
        )
        .await;
    assert_problem(&refused, 409, "conflict");
    assert_eq!(
        a.call("DELETE", &format!("/api/v1/quarantine/{second}"), w, None)
            .await
            .status,
        204
    );
    assert!(a.app.store.list_quarantine(10).await.unwrap().is_empty());
}

/// The catalog lists the shipped connectors with auth and push abilities;
/// health reports the store, the local queues and nothing overdue.
#[tokio::test]
async fn catalog_and_health() {
    let a = api().await;
    let r = Some(a.read.as_str());
    let cat = a.call("GET", "/api/v1/providers", r, None).await;
    let names: Vec<&str> = cat.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"sandbox"), "{names:?}");
    let sandbox = a.call("GET", "/api/v1/providers/sandbox", r, None).await;
    assert_eq!(sandbox.body["auth"], "oauth2");
    assert_problem(
        &a.call("GET", "/api/v1/providers/nope", r, None).await,
        404,
        "not-found",
    );
    let h = a.call("GET", "/api/v1/health", r, None).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    assert_eq!(h.body["store_reachable"], true);
    assert_eq!(h.body["queues"][0]["name"], "sync-inbound");
    assert_eq!(h.body["overdue_tasks"]["count"], 0);
}

/// A provider's settings are listed in the catalog and required of a
/// connection: tried without them, with a typo, with a value that would
/// change the URL's shape, and as a bad PATCH — each a 400 naming the
/// setting, nothing stored or changed; given, they are kept.
#[tokio::test]
async fn connector_settings_are_listed_and_required() {
    let a = api().await;
    let (r, w) = (Some(a.read.as_str()), Some(a.write.as_str()));
    let gh = a.call("GET", "/api/v1/providers/github", r, None).await;
    let names: Vec<&str> = gh.body["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["owner", "repo"], "{:?}", gh.body);
    assert_eq!(gh.body["settings"][0]["default"], Value::Null, "required");
    let make = |settings: &str| {
        format!(r#"{{"id":"gh","tenant":"acme","provider":"github","settings":{settings}}}"#)
    };
    for (settings, detail) in [
        (
            "{}",
            "settings: connector github needs the settings owner, repo",
        ),
        (
            r#"{"owner":"octo"}"#,
            "settings: connector github needs the settings repo",
        ),
        (
            r#"{"owner":"octo","repo":"hello","ownr":"x"}"#,
            r#"settings: connector github has no setting "ownr" (known: owner, repo)"#,
        ),
    ] {
        let refused = a
            .call("POST", "/api/v1/connections", w, Some(&make(settings)))
            .await;
        assert_problem(&refused, 400, "invalid-request");
        assert_eq!(refused.body["detail"], detail);
    }
    let bad = a
        .call(
            "POST",
            "/api/v1/connections",
            w,
            Some(&make(r#"{"owner":"octo/evil","repo":"r"}"#)),
        )
        .await;
    assert_problem(&bad, 400, "invalid-request");
    assert!(
        a.call("GET", "/api/v1/connections/gh", r, None)
            .await
            .status
            == 404
    );
    let made = a
        .call(
            "POST",
            "/api/v1/connections",
            w,
            Some(&make(r#"{"owner":"octo","repo":"hello"}"#)),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let patched = a
        .call(
            "PATCH",
            "/api/v1/connections/gh",
            w,
            Some(r#"{"settings":{"owner":"octo"}}"#),
        )
        .await;
    assert_problem(&patched, 400, "invalid-request");
    let got = a.call("GET", "/api/v1/connections/gh", r, None).await;
    assert_eq!(
        got.body["settings"],
        json!({"owner": "octo", "repo": "hello"})
    );
}

/// Writes record `id` of c1's contacts: `name` as its fields, or removed
/// when `name` is `None`; `version` is the stored one it replaces.
async fn put_record(a: &Api, id: &str, version: Option<i64>, name: Option<&str>) {
    use syncbridge_core::model::{Record, content_hash};
    use syncbridge_core::store::RecordWrite;
    use syncbridge_core::{ExternalId, ObjectType};
    let external_id = ExternalId::parse(id).unwrap();
    let next = name.map(|n| {
        let data = json!({ "name": n });
        Record {
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            external_id: external_id.clone(),
            hash: content_hash(&data),
            data,
            version: version.unwrap_or(0) + 1,
            remote_updated_at: None,
            local: None,
        }
    });
    a.app
        .store
        .write_record(&RecordWrite {
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            external_id,
            expect_version: version,
            next,
            audit: Vec::new(),
        })
        .await
        .unwrap();
}

/// Reads the whole feed from `cursor` in pages of `limit`; the records and
/// the last record's cursor (to poll from).
async fn read_feed(
    a: &Api,
    limit: usize,
    mut cursor: Option<String>,
) -> (Vec<Value>, Option<String>) {
    let mut all = Vec::new();
    loop {
        let mut path = format!("/api/v1/records?connection_id=c1&object=contacts&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = a.call("GET", &path, Some(&a.read), None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let records = page.body["records"].as_array().unwrap().clone();
        assert!(records.len() <= limit);
        if let Some(last) = records.last() {
            cursor = Some(last["_meta"]["cursor"].as_str().unwrap().to_owned());
        }
        all.extend(records);
        match page.body["next_cursor"].as_str() {
            Some(c) => assert_eq!(
                Some(c),
                cursor.as_deref(),
                "next_cursor = the last record's"
            ),
            None => return (all, cursor),
        }
    }
}

fn ids_and_actions(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["_meta"]["last_action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The feed pages in change order with its metadata; polling from the last
/// record's cursor returns exactly what changed since (updates, tombstones);
/// filters, unknown connections, foreign or malformed cursors, limits.
#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario: tests are exempt")]
async fn records_feed() {
    let a = api_with_c1().await;
    for id in ["a", "b", "c", "d", "e"] {
        put_record(&a, id, None, Some(id)).await;
    }
    let (first, saved) = read_feed(&a, 2, None).await;
    let added = |ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|i| ((*i).to_owned(), "added".to_owned()))
            .collect()
    };
    assert_eq!(ids_and_actions(&first), added(&["a", "b", "c", "d", "e"]));
    assert_eq!(first[1]["fields"], json!({ "name": "b" }));
    let meta = &first[1]["_meta"];
    assert_eq!(meta["deleted_at"], Value::Null);
    assert_eq!(meta["first_seen_at"], meta["last_modified_at"]);

    put_record(&a, "b", Some(1), Some("b2")).await;
    put_record(&a, "d", Some(1), None).await;
    let (since, _) = read_feed(&a, 10, saved.clone()).await;
    assert_eq!(
        ids_and_actions(&since),
        [
            ("b".into(), "updated".into()),
            ("d".into(), "deleted".into())
        ]
    );
    assert_eq!(since[0]["fields"], json!({ "name": "b2" }));
    assert_eq!(
        since[1]["fields"],
        json!({ "name": "d" }),
        "a tombstone keeps its last fields"
    );
    assert!(since[1]["_meta"]["deleted_at"].is_string());

    let r = Some(a.read.as_str());
    let only = a
        .call(
            "GET",
            "/api/v1/records?connection_id=c1&object=contacts&filter=deleted",
            r,
            None,
        )
        .await;
    assert_eq!(
        ids_and_actions(only.body["records"].as_array().unwrap()),
        [("d".into(), "deleted".into())]
    );
    assert_eq!(only.body["next_cursor"], Value::Null, "not a full page");
    let later = a
        .call(
            "GET",
            "/api/v1/records?connection_id=c1&object=contacts&modified_after=2100-01-01T00:00:00Z",
            r,
            None,
        )
        .await;
    assert_eq!(later.body["records"], json!([]));

    let saved = saved.unwrap();
    for (path, status, slug) in [
        (
            "/api/v1/records?connection_id=nope&object=contacts".to_owned(),
            404,
            "not-found",
        ),
        (
            "/api/v1/records?connection_id=c1".to_owned(),
            400,
            "invalid-request",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&cursor=garbage".to_owned(),
            400,
            "invalid-cursor",
        ),
        (
            format!("/api/v1/records?connection_id=c1&object=deals&cursor={saved}"),
            400,
            "invalid-cursor",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&limit=0".to_owned(),
            400,
            "invalid-request",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&limit=1001".to_owned(),
            400,
            "invalid-request",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&limit=x".to_owned(),
            400,
            "invalid-request",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&filter=gone".to_owned(),
            400,
            "invalid-request",
        ),
        (
            "/api/v1/records?connection_id=c1&object=contacts&modified_after=yesterday".to_owned(),
            400,
            "invalid-request",
        ),
    ] {
        assert_problem(&a.call("GET", &path, r, None).await, status, slug);
    }
    assert_problem(
        &a.call(
            "GET",
            "/api/v1/records?connection_id=c1&object=contacts",
            None,
            None,
        )
        .await,
        401,
        "unauthorized",
    );
}

/// Optimistic concurrency on connections.
///
/// Tried: GET's `ETag`; PATCH, pause and a full resync under a stale
/// `If-Match`, under the current one, under `*`, under a malformed one and
/// without one; a plain "sync now" under a stale one.
///
/// Must hold: a stale version is 412 `precondition-failed` and changes
/// nothing; the current one succeeds and answers the new `ETag` (equal to
/// what GET then shows); without `If-Match` writes behave as before; a
/// malformed header is 400.
#[tokio::test]
async fn connections_carry_etags() {
    let a = api_with_c1().await;
    let w = Some(a.write.as_str());
    let first = a.call("GET", "/api/v1/connections/c1", w, None).await;
    let t1 = first.etag.clone().expect("GET answers an ETag");
    assert!(t1.starts_with('"') && t1.ends_with('"'), "{t1}");

    let patch = r#"{"base_url":"http://127.0.0.1:10"}"#;
    let ok = a
        .call_with(
            "PATCH",
            "/api/v1/connections/c1",
            w,
            Some(patch),
            &[("if-match", &t1)],
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let t2 = ok.etag.clone().expect("the new version");
    assert_ne!(t2, t1);
    let now = a.call("GET", "/api/v1/connections/c1", w, None).await;
    assert_eq!(now.etag.as_deref(), Some(t2.as_str()));
    assert_eq!(now.body["base_url"], "http://127.0.0.1:10");

    let stale_patch = r#"{"base_url":"http://127.0.0.1:11"}"#;
    let stale = a
        .call_with(
            "PATCH",
            "/api/v1/connections/c1",
            w,
            Some(stale_patch),
            &[("if-match", &t1)],
        )
        .await;
    assert_problem(&stale, 412, "precondition-failed");
    let pause = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/pause",
            w,
            None,
            &[("if-match", &t1)],
        )
        .await;
    assert_problem(&pause, 412, "precondition-failed");
    let resync = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/sync",
            w,
            Some(r#"{"full_resync":true}"#),
            &[("if-match", &t1)],
        )
        .await;
    assert_problem(&resync, 412, "precondition-failed");
    let after = a.call("GET", "/api/v1/connections/c1", w, None).await;
    assert_eq!(after.etag.as_deref(), Some(t2.as_str()), "nothing changed");
    assert_eq!(after.body["base_url"], "http://127.0.0.1:10");
    assert_eq!(after.body["status"], "active");

    let plain = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/sync",
            w,
            None,
            &[("if-match", &t1)],
        )
        .await;
    assert_eq!(
        plain.status, 202,
        "plain sync now ignores If-Match: {:?}",
        plain.body
    );
    let bad = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/pause",
            w,
            None,
            &[("if-match", "v1")],
        )
        .await;
    assert_problem(&bad, 400, "invalid-request");

    let weak = format!("W/{t2}");
    let paused = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/pause",
            w,
            None,
            &[("if-match", &weak)],
        )
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["status"], "disabled");
    let t3 = paused.etag.clone().unwrap();
    let any = a
        .call_with(
            "POST",
            "/api/v1/connections/c1/resume",
            w,
            None,
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(any.status, 200, "{:?}", any.body);
    let t4 = any.etag.clone().unwrap();
    assert_ne!(t4, t3);
    let blind = a
        .call("POST", "/api/v1/connections/c1/pause", w, None)
        .await;
    assert_eq!(blind.status, 200, "without If-Match as before");
    assert_ne!(blind.etag.as_deref(), Some(t4.as_str()));
}

/// A connection's conflict policies over `GET`/`PATCH /v1/connections/{id}`.
///
/// Tried: a valid document (connection, object and field levels) under the
/// current `If-Match`; then under that now-stale version; a misspelt policy
/// name, an object the sandbox connector lacks, a field it does not map
/// (each with an interval change in the same body); `{}` to clear them.
///
/// Must hold: the valid document is stored (the store's connection resolves
/// the field under it) and read back by `GET`; every refusal is 422
/// `invalid-conflict-policies` naming the bad entry (412 for the stale
/// version) and writes nothing: the same `ETag`, policies and interval.
#[tokio::test]
async fn conflict_policies_read_and_replaced() {
    use syncbridge_core::ObjectType;
    use syncbridge_core::merge::{Policy, PolicyConfig};
    let a = api_with_c1().await;
    let w = Some(a.write.as_str());
    let path = "/api/v1/connections/c1";
    let first = a.call("GET", path, w, None).await;
    assert_eq!(
        first.body["conflicts"],
        json!({}),
        "default: manual everywhere"
    );
    let t1 = first.etag.clone().unwrap();

    let doc = json!({"policy": "latest", "objects": {"contacts": {"policy": "source_wins", "fields": {"phone": "target_wins"}}}});
    let body = json!({ "conflicts": doc }).to_string();
    let ok = a
        .call_with("PATCH", path, w, Some(&body), &[("if-match", &t1)])
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["conflicts"], doc);
    let t2 = ok.etag.clone().unwrap();
    let read = a.call("GET", path, w, None).await;
    assert_eq!(read.body["conflicts"], doc);
    assert_eq!(read.etag.as_deref(), Some(t2.as_str()));
    let id = ConnectionId::parse("c1").unwrap();
    let stored = a.app.store.get_connection(&id).await.unwrap().unwrap();
    let mut cfg = PolicyConfig::default();
    cfg.connections.insert(id.clone(), stored.conflicts);
    let contacts = ObjectType::parse("contacts").unwrap();
    let deals = ObjectType::parse("deals").unwrap();
    assert_eq!(
        cfg.resolve(&id, &contacts, "phone").policy,
        Policy::TargetWins
    );
    assert_eq!(
        cfg.resolve(&id, &contacts, "email").policy,
        Policy::SourceWins
    );
    assert_eq!(cfg.resolve(&id, &deals, "amount").policy, Policy::Latest);

    let stale = a
        .call_with(
            "PATCH",
            path,
            w,
            Some(r#"{"conflicts":{}}"#),
            &[("if-match", &t1)],
        )
        .await;
    assert_problem(&stale, 412, "precondition-failed");
    let bad = [
        (json!({"policy": "newest"}), "newest"),
        (
            json!({"objects": {"widgets": {"policy": "latest"}}}),
            "\"widgets\"",
        ),
        (
            json!({"objects": {"contacts": {"fields": {"phnoe": "latest"}}}}),
            "\"phnoe\"",
        ),
    ];
    for (conflicts, named) in bad {
        let body = json!({ "interval_secs": 7, "conflicts": conflicts }).to_string();
        let r = a
            .call_with("PATCH", path, w, Some(&body), &[("if-match", &t2)])
            .await;
        assert_problem(&r, 422, "invalid-conflict-policies");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{named} in {detail}");
    }
    let after = a.call("GET", path, w, None).await;
    assert_eq!(after.etag.as_deref(), Some(t2.as_str()), "nothing written");
    assert_eq!(after.body["conflicts"], doc);
    let tasks = a.call("GET", "/api/v1/connections/c1/tasks", w, None).await;
    for t in tasks.body["tasks"].as_array().unwrap() {
        assert_eq!(t["interval_secs"], 60, "the interval is unchanged: {t}");
    }

    let cleared = a
        .call_with(
            "PATCH",
            path,
            w,
            Some(r#"{"conflicts":{}}"#),
            &[("if-match", &t2)],
        )
        .await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.body);
    assert_eq!(cleared.body["conflicts"], json!({}), "replaced, not merged");
}

/// Health with queued and dead-lettered work, beats and an overdue task.
///
/// Tried: two messages on `sync-inbound`, one of them dead-lettered; a
/// failure beat of the inbound worker; an API call through the handler's
/// app (which records the API's own beat); a task overdue for an hour.
///
/// Must hold: the queues' counts; every function listed (those never
/// invoked without times); the worker's failure with its kind; the API's
/// beat; the overdue task as the oldest.
#[tokio::test]
async fn health_reports_queues_functions_and_overdue() {
    use syncbridge_core::heartbeat::{FunctionBeat, Outcome};
    use syncbridge_core::{OutboundMessage, QueueName};
    let a = api_with_c1().await;
    let queue = syncbridge_localqueue::LocalQueue::open(syncbridge_localqueue::queue_path(
        &a.app.settings.data_dir,
    ))
    .unwrap();
    for id in ["m1", "m2"] {
        a.app
            .queue
            .send(vec![OutboundMessage::json(
                QueueName::inbound(),
                id,
                &json!({}),
            )])
            .await
            .unwrap();
    }
    let got = queue
        .receive("sync-inbound", std::time::Duration::from_secs(60))
        .unwrap()
        .expect("a message");
    queue
        .dead_letter(&got.lock_token, "test", "dead-lettered by the test")
        .unwrap();
    let now = a.app.clock.now();
    a.app
        .store
        .put_function_beat(&FunctionBeat::of(
            "SyncInboundWorker",
            now,
            &Outcome::Failure {
                kind: "store".into(),
            },
        ))
        .await
        .unwrap();
    let mut late = a
        .app
        .store
        .list_tasks(Some(&ConnectionId::parse("c1").unwrap()))
        .await
        .unwrap()
        .remove(0);
    late.next_run_at = now.sub(std::time::Duration::from_secs(3600));
    late.version += 1;
    a.app.store.put_task(&late).await.unwrap();

    let app = syncbridge_functions::app(
        syncbridge_api::FUNCTION,
        syncbridge_api::router,
        a.app.clone(),
    );
    let req = Request::builder()
        .uri("/api/v1/health")
        .header(header::AUTHORIZATION, format!("Bearer {}", a.read))
        .body(Body::empty())
        .unwrap();
    let _ = app.clone().oneshot(req).await.unwrap();
    let h = a.call("GET", "/api/v1/health", Some(&a.read), None).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    let q = &h.body["queues"][0];
    assert_eq!(
        (&q["name"], &q["state"], &q["active"], &q["dead_lettered"]),
        (
            &json!("sync-inbound"),
            &json!("counted"),
            &json!(1),
            &json!(1)
        ),
        "{q}"
    );
    let functions = h.body["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 6, "{functions:?}");
    let f = |name: &str| {
        functions
            .iter()
            .find(|f| f["function"] == name)
            .unwrap()
            .clone()
    };
    let worker = f("SyncInboundWorker");
    assert_eq!(worker["last_error_kind"], "store", "{worker}");
    assert_eq!(worker["failures_last_hour"], 1);
    assert_eq!(worker["last_success"], Value::Null);
    assert!(
        f("SyncApi")["last_success"].is_string(),
        "the API's own beat"
    );
    assert_eq!(
        f("TokenRefresher")["last_invocation"],
        Value::Null,
        "never invoked"
    );
    let overdue = &h.body["overdue_tasks"];
    assert_eq!(overdue["count"], 1, "{overdue}");
    assert_eq!(overdue["oldest_task"], late.id.as_str());
    assert_eq!(h.body["needs_reauth"]["count"], 0);
}
