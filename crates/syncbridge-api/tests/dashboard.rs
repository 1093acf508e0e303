//! The routes the dashboard added, against a real embedded state (SQLite
//! store in a temp dir), through the router with tower's `oneshot`.
//!
//! Sign-in: a key or a one-time link becomes an HttpOnly, SameSite=Strict
//! cookie; changes made with the cookie need the session's CSRF token
//! (refused otherwise, nothing written); signing out, expiry and a spent
//! link end access. The dashboard's files are served without a key.
//! Webhook settings: set, rotate (two secrets verify, the new one shown
//! once), end the rotation, remove; bad schemes and secrets refused.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use syncbridge_api::{keys, session};
use syncbridge_core::apikeys::ApiScope;
use syncbridge_core::{Clock as _, ManualClock, Timestamp};
use syncbridge_functions::{AppState, Settings};
use tower::ServiceExt;

const T0: Timestamp = Timestamp::from_millis(1_764_331_200_000);

struct Api {
    app: AppState,
    clock: Arc<ManualClock>,
    router: Router,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    app.clock = clock.clone();
    Api {
        router: syncbridge_api::router(app.clone()),
        app,
        clock,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

#[derive(Default)]
struct Req<'a> {
    bearer: Option<&'a str>,
    cookie: Option<&'a str>,
    csrf: Option<&'a str>,
    body: Option<Value>,
}

impl Api {
    async fn call(&self, method: &str, path: &str, r: Req<'_>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = r.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        if let Some(c) = r.cookie {
            req = req.header(header::COOKIE, format!("other=1; sb_session={c}"));
        }
        if let Some(c) = r.csrf {
            req = req.header("x-csrf-token", c);
        }
        let body = match &r.body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                b.to_string()
            }
            None => String::new(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    async fn key(&self, scope: ApiScope) -> String {
        keys::create(self.app.store.as_ref(), "k", scope, T0)
            .await
            .unwrap()
            .key
            .expose()
            .to_owned()
    }

    /// Signs in with `body`; the session secret from the cookie and the reply.
    async fn sign_in(&self, body: Value) -> (String, Reply) {
        let r = self
            .call(
                "POST",
                "/api/v1/session",
                Req {
                    body: Some(body),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        let secret = cookie
            .strip_prefix("sb_session=")
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned();
        (secret, r)
    }
}

fn assert_problem(r: &Reply, status: u16, slug: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{}",
        r.text
    );
    assert_eq!(r.body["type"], format!("urn:syncbridge:problem:{slug}"));
}

const SANDBOX: &str = r#"{"id":"c1","tenant":"acme","provider":"sandbox","base_url":"http://127.0.0.1:9","interval_secs":60}"#;

/// A key signs in: the cookie is HttpOnly, SameSite=Strict, Path=/api; reads
/// work with the cookie alone; a change without the CSRF token (or with
/// another session's) is refused and writes nothing; with it, it works.
#[tokio::test]
async fn cookie_session_with_csrf_on_changes() {
    let a = api().await;
    let key = a.key(ApiScope::Write).await;
    let (secret, r) = a.sign_in(json!({ "api_key": key })).await;
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/api", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(secret.starts_with("sbs_"));
    assert!(
        !r.text.contains(&secret),
        "the secret is only in the cookie"
    );
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(r.body["scope"], "write");

    // The session answers its CSRF token again (a reloaded page).
    let cookie = Req {
        cookie: Some(&secret),
        ..Default::default()
    };
    let me = a.call("GET", "/api/v1/session", cookie).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["csrf_token"], csrf);

    let list = || Req {
        cookie: Some(&secret),
        ..Default::default()
    };
    assert_eq!(
        a.call("GET", "/api/v1/connections", list()).await.status,
        200
    );

    let body: Value = serde_json::from_str(SANDBOX).unwrap();
    let no_csrf = Req {
        cookie: Some(&secret),
        body: Some(body.clone()),
        ..Default::default()
    };
    assert_problem(
        &a.call("POST", "/api/v1/connections", no_csrf).await,
        403,
        "csrf",
    );
    let other = session::csrf_token("sbs_another_session");
    let wrong = Req {
        cookie: Some(&secret),
        csrf: Some(&other),
        body: Some(body.clone()),
        ..Default::default()
    };
    assert_problem(
        &a.call("POST", "/api/v1/connections", wrong).await,
        403,
        "csrf",
    );
    let none = a.call("GET", "/api/v1/connections", list()).await;
    assert_eq!(none.body["connections"], json!([]), "nothing was written");

    let ok = Req {
        cookie: Some(&secret),
        csrf: Some(&csrf),
        body: Some(body),
        ..Default::default()
    };
    let made = a.call("POST", "/api/v1/connections", ok).await;
    assert_eq!(made.status, 201, "{}", made.text);
}

/// The session has the scope of the key that signed in: a read key's
/// session cannot change anything nor manage keys.
#[tokio::test]
async fn session_keeps_the_key_scope() {
    let a = api().await;
    let key = a.key(ApiScope::Read).await;
    let (secret, r) = a.sign_in(json!({ "api_key": key })).await;
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let body: Value = serde_json::from_str(SANDBOX).unwrap();
    let write = Req {
        cookie: Some(&secret),
        csrf: Some(&csrf),
        body: Some(body),
        ..Default::default()
    };
    assert_problem(
        &a.call("POST", "/api/v1/connections", write).await,
        403,
        "forbidden",
    );
    let keys = Req {
        cookie: Some(&secret),
        ..Default::default()
    };
    assert_problem(
        &a.call("GET", "/api/v1/api-keys", keys).await,
        403,
        "forbidden",
    );
}

/// Signing out needs the CSRF token, ends the session at once and clears
/// the cookie; an expired session is refused too.
#[tokio::test]
async fn sign_out_and_expiry() {
    let a = api().await;
    let key = a.key(ApiScope::Admin).await;
    let (secret, r) = a.sign_in(json!({ "api_key": key })).await;
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let bare = || Req {
        cookie: Some(&secret),
        ..Default::default()
    };
    assert_problem(
        &a.call("DELETE", "/api/v1/session", bare()).await,
        403,
        "csrf",
    );
    assert_eq!(a.call("GET", "/api/v1/health", bare()).await.status, 200);
    let out = Req {
        cookie: Some(&secret),
        csrf: Some(&csrf),
        ..Default::default()
    };
    let out = a.call("DELETE", "/api/v1/session", out).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("sb_session=;") && cleared.contains("Max-Age=0"));
    assert_problem(
        &a.call("GET", "/api/v1/health", bare()).await,
        401,
        "unauthorized",
    );
    assert_problem(
        &a.call("GET", "/api/v1/session", bare()).await,
        401,
        "unauthorized",
    );

    // A second session, past its lifetime.
    let (secret2, _) = a.sign_in(json!({ "api_key": key })).await;
    let later = || Req {
        cookie: Some(&secret2),
        ..Default::default()
    };
    a.clock
        .advance(session::SESSION_TTL - Duration::from_secs(1));
    assert_eq!(a.call("GET", "/api/v1/health", later()).await.status, 200);
    a.clock.advance(Duration::from_secs(1));
    assert_problem(
        &a.call("GET", "/api/v1/health", later()).await,
        401,
        "unauthorized",
    );
}

/// The one-time link `syncbridge up` prints signs in once, with admin
/// scope; a second use, an expired link, a session secret or a link used
/// as a bearer key are refused.
#[tokio::test]
async fn one_time_link() {
    let a = api().await;
    let store = a.app.store.as_ref();
    let link = session::create_login(store, T0).await.unwrap();
    let link = link.expose().to_owned();
    assert!(link.starts_with("sbl_"));
    let as_bearer = Req {
        bearer: Some(&link),
        ..Default::default()
    };
    assert_problem(
        &a.call("GET", "/api/v1/health", as_bearer).await,
        401,
        "unauthorized",
    );
    let (secret, r) = a.sign_in(json!({ "login_token": link })).await;
    assert_eq!(r.body["scope"], "admin");
    let again = Req {
        body: Some(json!({ "login_token": link })),
        ..Default::default()
    };
    assert_problem(
        &a.call("POST", "/api/v1/session", again).await,
        401,
        "unauthorized",
    );
    let session_as_bearer = Req {
        bearer: Some(&secret),
        ..Default::default()
    };
    assert_problem(
        &a.call("GET", "/api/v1/health", session_as_bearer).await,
        401,
        "unauthorized",
    );

    let old = session::create_login(store, T0).await.unwrap();
    a.clock.advance(session::LOGIN_TTL);
    let expired = Req {
        body: Some(json!({ "login_token": old.expose() })),
        ..Default::default()
    };
    assert_problem(
        &a.call("POST", "/api/v1/session", expired).await,
        401,
        "unauthorized",
    );

    // Sessions and links are not API keys.
    let admin = a.key(ApiScope::Admin).await;
    let list = Req {
        bearer: Some(&admin),
        ..Default::default()
    };
    let keys = a.call("GET", "/api/v1/api-keys", list).await;
    let ids: Vec<&str> = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].starts_with("key_"));
}

/// Bad sign-ins are problems and make no session.
#[tokio::test]
async fn bad_sign_ins() {
    let a = api().await;
    let key = a.key(ApiScope::Admin).await;
    for (body, status, slug) in [
        (json!({}), 400, "invalid-request"),
        (
            json!({ "api_key": key, "login_token": "sbl_x" }),
            400,
            "invalid-request",
        ),
        (
            json!({ "api_key": key, "extra": 1 }),
            400,
            "invalid-request",
        ),
        (json!({ "api_key": "sbk_wrong" }), 401, "unauthorized"),
        (json!({ "login_token": "sbl_wrong" }), 401, "unauthorized"),
    ] {
        let r = a
            .call(
                "POST",
                "/api/v1/session",
                Req {
                    body: Some(body.clone()),
                    ..Default::default()
                },
            )
            .await;
        assert_problem(&r, status, slug);
        assert!(!r.headers.contains_key(header::SET_COOKIE), "{body}");
    }
    let made = keys::create(a.app.store.as_ref(), "gone", ApiScope::Admin, T0)
        .await
        .unwrap();
    keys::revoke(a.app.store.as_ref(), &made.record.id, T0)
        .await
        .unwrap();
    let r = a
        .call(
            "POST",
            "/api/v1/session",
            Req {
                body: Some(json!({ "api_key": made.key.expose() })),
                ..Default::default()
            },
        )
        .await;
    assert_problem(&r, 401, "unauthorized");
}

/// The dashboard is served without a key: the page at `/api/v1/admin/`
/// and at every browser route below it (no-cache), a missing asset is a
/// problem, `/api/v1/admin` redirects.
#[tokio::test]
async fn dashboard_files() {
    let a = api().await;
    for path in ["/api/v1/admin/", "/api/v1/admin/connections/c1"] {
        let r = a.call("GET", path, Req::default()).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            r.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(r.headers["referrer-policy"], "no-referrer");
        if syncbridge_api::dashboard::built() {
            assert_eq!(r.headers[header::CACHE_CONTROL], "no-cache");
            assert!(r.text.contains("/api/v1/admin/assets/"), "{}", r.text);
        } else {
            assert!(r.text.contains("scripts/ui"), "{}", r.text);
        }
    }
    let r = a
        .call("GET", "/api/v1/admin/assets/nope.js", Req::default())
        .await;
    assert_problem(&r, 404, "not-found");
    let r = a.call("GET", "/api/v1/admin", Req::default()).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers[header::LOCATION], "/api/v1/admin/");
    if let Some((path, _)) = syncbridge_api::dashboard::ASSETS
        .iter()
        .find(|(p, _)| p.ends_with(".js"))
    {
        let r = a
            .call("GET", &format!("/api/v1/admin/{path}"), Req::default())
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            r.headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
}

/// The secrets stored for connection c1, opened.
async fn stored_secrets(a: &Api) -> Vec<String> {
    let id = syncbridge_core::ConnectionId::parse("c1".to_owned()).unwrap();
    let c = a.app.store.get_connection(&id).await.unwrap().unwrap();
    let Some(w) = c.webhook else {
        return Vec::new();
    };
    syncbridge_credentials::open_webhook_secrets(
        a.app.credential_manager.sealer(),
        &id,
        &w.sealed_secrets,
    )
    .await
    .unwrap()
    .iter()
    .map(|s| s.expose().to_owned())
    .collect()
}

/// Webhook settings over the API: set with a given secret (not answered
/// back) or a generated one (answered once); a rotation keeps the previous
/// secret active beside the new one, ending it keeps only the new; bad
/// schemes and secrets are refused and change nothing; removal.
#[tokio::test]
async fn webhook_settings_and_rotation() {
    let a = api().await;
    let key = a.key(ApiScope::Write).await;
    let bearer = |body: Option<Value>| Req {
        bearer: Some(&key),
        body,
        ..Default::default()
    };
    let made = a
        .call(
            "POST",
            "/api/v1/connections",
            bearer(Some(serde_json::from_str(SANDBOX).unwrap())),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let path = "/api/v1/connections/c1/webhook";
    let none = a.call("GET", path, bearer(None)).await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.body["configured"], false);
    assert_problem(
        &a.call(
            "POST",
            "/api/v1/connections/c1/webhook/rotate",
            bearer(None),
        )
        .await,
        409,
        "conflict",
    );

    let given = a
        .call(
            "PUT",
            path,
            bearer(Some(json!({"scheme": "github", "secret": "s3cret-given"}))),
        )
        .await;
    assert_eq!(given.status, 200, "{}", given.text);
    assert_eq!(
        given.body["secret"],
        Value::Null,
        "a given secret is not answered back"
    );
    assert!(!given.text.contains("s3cret-given"));
    assert_eq!(stored_secrets(&a).await, vec!["s3cret-given"]);

    for bad in [
        json!({"scheme": "no-such-scheme"}),
        json!({"scheme": "standard-webhooks", "secret": "whsec_not base64!"}),
        json!({"scheme": "github", "secret": "x", "extra": 1}),
    ] {
        let r = a.call("PUT", path, bearer(Some(bad.clone()))).await;
        assert_problem(&r, 400, "invalid-request");
        assert_eq!(stored_secrets(&a).await, vec!["s3cret-given"], "{bad}");
    }

    let generated = a
        .call(
            "PUT",
            path,
            bearer(Some(json!({"scheme": "standard-webhooks"}))),
        )
        .await;
    assert_eq!(generated.status, 200, "{}", generated.text);
    let first = generated.body["secret"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_"));
    assert_eq!(generated.body["scheme"], "standard-webhooks");
    assert_eq!(stored_secrets(&a).await, vec![first.clone()]);

    let rot = a
        .call(
            "POST",
            "/api/v1/connections/c1/webhook/rotate",
            bearer(None),
        )
        .await;
    assert_eq!(rot.status, 200, "{}", rot.text);
    let second = rot.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rot.body["active_secrets"], 2);
    assert_eq!(
        stored_secrets(&a).await,
        vec![second.clone(), first.clone()]
    );
    let shown = a.call("GET", path, bearer(None)).await;
    assert!(!shown.text.contains(&second) && !shown.text.contains(&first));

    let rot2 = a
        .call(
            "POST",
            "/api/v1/connections/c1/webhook/rotate",
            bearer(None),
        )
        .await;
    let third = rot2.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        stored_secrets(&a).await,
        vec![third.clone(), second],
        "at most two stay active"
    );

    let ended = a
        .call(
            "DELETE",
            "/api/v1/connections/c1/webhook/previous",
            bearer(None),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["active_secrets"], 1);
    assert_eq!(stored_secrets(&a).await, vec![third]);

    let gone = a.call("DELETE", path, bearer(None)).await;
    assert_eq!(gone.status, 204);
    assert!(stored_secrets(&a).await.is_empty());
    assert_problem(
        &a.call("GET", "/api/v1/connections/nope/webhook", bearer(None))
            .await,
        404,
        "not-found",
    );
}

/// Connection summaries: the page and filters of `GET /v1/connections`,
/// each with its next sync (its tasks' earliest due time) and its latest
/// run's outcome; a bad filter is a problem.
#[tokio::test]
async fn connection_summaries() {
    use syncbridge_core::model::{RunCounts, RunStatus, SyncRun};
    use syncbridge_core::{ConnectionId, RunId, TaskId};
    let a = api().await;
    let key = a.key(ApiScope::Write).await;
    let bearer = |body: Option<Value>| Req {
        bearer: Some(&key),
        body,
        ..Default::default()
    };
    for id in ["c1", "c2"] {
        let body = SANDBOX.replace("\"c1\"", &format!("{id:?}"));
        let r = a
            .call(
                "POST",
                "/api/v1/connections",
                bearer(Some(serde_json::from_str(&body).unwrap())),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    a.app
        .store
        .put_run(&SyncRun {
            id: RunId::parse("r1").unwrap(),
            task: TaskId::parse("c2:contacts:inbound").unwrap(),
            connection: ConnectionId::parse("c2").unwrap(),
            status: RunStatus::Failed,
            started_at: T0,
            finished_at: Some(T0),
            counts: RunCounts::default(),
            error: Some("HTTP 401 from the provider".into()),
        })
        .await
        .unwrap();
    let r = a
        .call("GET", "/api/v1/connection-summaries?limit=1", bearer(None))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["connections"][0]["id"], "c1");
    assert_eq!(r.body["connections"][0]["last_status"], Value::Null);
    assert_eq!(
        r.body["connections"][0]["next_sync_at"],
        T0.to_string(),
        "first run due at creation"
    );
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = a
        .call(
            "GET",
            &format!("/api/v1/connection-summaries?limit=1&cursor={cursor}"),
            bearer(None),
        )
        .await;
    assert_eq!(r.body["connections"][0]["id"], "c2");
    assert_eq!(r.body["connections"][0]["last_status"], "failed");
    assert_eq!(
        r.body["connections"][0]["last_error"],
        "HTTP 401 from the provider"
    );
    assert_problem(
        &a.call(
            "GET",
            "/api/v1/connection-summaries?status=nope",
            bearer(None),
        )
        .await,
        400,
        "invalid-request",
    );
}

/// Run stats: runs of the last hours bucketed by hour (runs, failed,
/// records changed, mean duration), older runs left out; bad hours refused.
#[tokio::test]
async fn run_stats_per_hour() {
    use syncbridge_core::model::{RunCounts, RunStatus, SyncRun};
    use syncbridge_core::{ConnectionId, RunId, TaskId};
    let a = api().await;
    let key = a.key(ApiScope::Read).await;
    let min = |m: i64| Timestamp::from_millis(T0.as_millis() + m * 60_000);
    a.clock.set(min(20));
    let runs = [
        ("r-now", min(10), RunStatus::Succeeded, 3, Some(1_000)),
        ("r-now-2", min(15), RunStatus::Running, 4, None),
        ("r-prev", min(-30), RunStatus::Failed, 0, Some(500)),
        ("r-old", min(-300), RunStatus::Succeeded, 100, Some(9)),
    ];
    for (id, at, status, created, ms) in runs {
        a.app
            .store
            .put_run(&SyncRun {
                id: RunId::parse(id).unwrap(),
                task: TaskId::parse("c1:contacts:inbound").unwrap(),
                connection: ConnectionId::parse("c1").unwrap(),
                started_at: at,
                finished_at: ms.map(|ms| Timestamp::from_millis(at.as_millis() + ms)),
                status,
                counts: RunCounts {
                    created,
                    ..Default::default()
                },
                error: None,
            })
            .await
            .unwrap();
    }
    let get = |q: &'static str| {
        let key = key.clone();
        let a = &a;
        async move {
            a.call(
                "GET",
                &format!("/api/v1/run-stats{q}"),
                Req {
                    bearer: Some(&key),
                    ..Default::default()
                },
            )
            .await
        }
    };
    let r = get("?hours=3").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hours = r.body["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    assert_eq!(hours[0]["start"], min(-120).to_string());
    assert_eq!(hours[0]["runs"], 0);
    assert_eq!(hours[0]["mean_duration_ms"], Value::Null);
    assert_eq!(hours[1]["runs"], 1);
    assert_eq!(hours[1]["failed"], 1);
    assert_eq!(hours[1]["mean_duration_ms"], 500);
    assert_eq!(hours[2]["runs"], 2);
    assert_eq!(hours[2]["records"], 7);
    assert_eq!(hours[2]["mean_duration_ms"], 1_000, "only finished runs");
    assert_eq!(r.body["truncated"], false);
    let day = get("").await;
    assert_eq!(day.body["hours"].as_array().unwrap().len(), 24);
    let total: u64 = day.body["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 4, "five hours back is inside a day");
    for bad in ["?hours=0", "?hours=169", "?hours=x"] {
        assert_problem(&get(bad).await, 400, "invalid-request");
    }
}

/// The API with a notification service: channels `ops-slack` and `oncall`,
/// the file's rules sending everything to `ops-slack`.
async fn api_with_notify() -> Api {
    let mut a = api().await;
    let config = syncbridge_notify::NotifyConfig {
        channels: vec![
            syncbridge_notify::ChannelConfig::slack("ops-slack", "http://127.0.0.1:9/slack"),
            syncbridge_notify::ChannelConfig::teams("oncall", "http://127.0.0.1:9/teams"),
        ],
        rules: vec![syncbridge_notify::Rule::new(&["ops-slack"])],
        ..Default::default()
    };
    let svc =
        syncbridge_notify::NotificationService::open_in_dir(a._dir.path(), config, a.clock.clone())
            .unwrap();
    svc.use_stored_rules(a.app.store.clone(), Duration::from_secs(3600));
    a.app.notify = Some(svc);
    a.router = syncbridge_api::router(a.app.clone());
    a
}

/// Notification rules are edited as a whole: the file's rules until a save
/// (ETag "0"); a valid save under If-Match is stored (ETag "1") and shown;
/// an unknown channel, kind or severity, or a default route with a tenant,
/// is 422 naming the entry; a stale If-Match is 412; a write key is 403 —
/// and none of those refused saves changes what is stored.
#[tokio::test]
async fn notification_rules_edit() {
    let a = api_with_notify().await;
    let admin = a.key(ApiScope::Admin).await;
    let write = a.key(ApiScope::Write).await;
    let get = || {
        let (a, admin) = (&a, &admin);
        async move {
            let r = a
                .call(
                    "GET",
                    "/api/v1/notifications",
                    Req {
                        bearer: Some(admin),
                        ..Default::default()
                    },
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r
        }
    };
    let put = |body: Value, key: &'static str, if_match: Option<&'static str>| {
        let key = if key == "admin" {
            admin.clone()
        } else {
            write.clone()
        };
        let a = &a;
        async move {
            let mut req = Request::builder()
                .method("PUT")
                .uri("/api/v1/notifications/rules")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(m) = if_match {
                req = req.header(header::IF_MATCH, m);
            }
            let resp = a
                .router
                .clone()
                .oneshot(req.body(Body::from(body.to_string())).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            Reply {
                status,
                headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
    };

    let before = get().await;
    assert_eq!(before.headers[header::ETAG], "\"0\"");
    assert_eq!(before.body["rules_source"], "file");
    assert_eq!(before.body["rules"][0]["channels"], json!(["ops-slack"]));

    let good = json!({
        "rules": [
            {"tenant": "acme", "kinds": ["sync_run_failed"], "min_severity": "warning", "channels": ["oncall"]},
            {"tenant": null, "kinds": [], "min_severity": "info", "channels": ["ops-slack", "oncall"]}
        ],
        "default_route": {"tenant": null, "kinds": [], "min_severity": "critical", "channels": ["ops-slack"]}
    });
    let saved = put(good.clone(), "admin", Some("\"0\"")).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.headers[header::ETAG], "\"1\"");
    let after = get().await;
    assert_eq!(after.headers[header::ETAG], "\"1\"");
    assert_eq!(after.body["rules_source"], "store");
    assert_eq!(after.body["rules_version"], 1);
    assert_eq!(after.body["rules"], good["rules"]);
    assert_eq!(after.body["default_route"], good["default_route"]);

    // Refused saves: each names the bad entry; nothing is written.
    let mut bad_channel = good.clone();
    bad_channel["rules"][1]["channels"] = json!(["ops-slack", "pager"]);
    let mut bad_kind = good.clone();
    bad_kind["rules"][0]["kinds"] = json!(["sync_exploded"]);
    let mut bad_severity = good.clone();
    bad_severity["rules"][1]["min_severity"] = json!("urgent");
    let mut tenant_default = good.clone();
    tenant_default["default_route"]["tenant"] = json!("acme");
    let mut no_channel = good.clone();
    no_channel["default_route"]["channels"] = json!([]);
    for (body, names) in [
        (bad_channel, ["rule 2", "\"pager\""]),
        (bad_kind, ["rule 1", "\"sync_exploded\""]),
        (bad_severity, ["rule 2", "\"urgent\""]),
        (tenant_default, ["default route", "tenant"]),
        (no_channel, ["default route", "no channel"]),
    ] {
        let r = put(body, "admin", None).await;
        assert_problem(&r, 422, "invalid-rules");
        let detail = r.body["detail"].as_str().unwrap();
        for n in names {
            assert!(detail.contains(n), "{detail:?} should name {n}");
        }
    }
    let stale = put(json!({"rules": []}), "admin", Some("\"0\"")).await;
    assert_problem(&stale, 412, "precondition-failed");
    let by_write_key = put(json!({"rules": []}), "write", None).await;
    assert_problem(&by_write_key, 403, "forbidden");
    let unchanged = get().await;
    assert_eq!(unchanged.headers[header::ETAG], "\"1\"");
    assert_eq!(unchanged.body["rules"], good["rules"]);
    assert_eq!(unchanged.body["default_route"], good["default_route"]);

    // Without If-Match a save applies to the current version.
    let cleared = put(json!({"rules": []}), "admin", None).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.headers[header::ETAG], "\"2\"");
    assert_eq!(cleared.body["rules"], json!([]));
    assert_eq!(cleared.body["default_route"], Value::Null);
}

/// Expired sessions are refused and deleted; a live one is kept; signing
/// in prunes signed-out sessions and spent sign-in links.
#[tokio::test]
async fn expired_sessions_are_pruned() {
    let a = api().await;
    let store = a.app.store.clone();
    let key = a.key(ApiScope::Admin).await;
    let (old, _) = a.sign_in(json!({ "api_key": key })).await;
    a.clock.advance(Duration::from_secs(3600));
    let (live, _) = a.sign_in(json!({ "api_key": key })).await;
    let (gone, r) = a.sign_in(json!({ "api_key": key })).await;
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let out = Req {
        cookie: Some(&gone),
        csrf: Some(&csrf),
        ..Default::default()
    };
    assert_eq!(a.call("DELETE", "/api/v1/session", out).await.status, 204);
    let link = session::create_login(store.as_ref(), a.clock.now())
        .await
        .unwrap();
    a.sign_in(json!({ "login_token": link.expose() })).await;
    let ids = || {
        let store = store.clone();
        async move {
            let mut ids: Vec<String> = store
                .list_api_keys()
                .await
                .unwrap()
                .into_iter()
                .map(|k| k.id[..4].to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    // Signing in with the link spent it, then pruned it and `gone` (signed
    // out): left are the key, `old`, `live` and the link's session.
    assert_eq!(ids().await, ["key_", "ses_", "ses_", "ses_"]);

    // `old` is past its lifetime, `live` is not.
    a.clock
        .advance(session::SESSION_TTL - Duration::from_secs(1800));
    let call = |secret: &str| {
        let a = &a;
        let secret = secret.to_owned();
        async move {
            a.call(
                "GET",
                "/api/v1/health",
                Req {
                    cookie: Some(&secret),
                    ..Default::default()
                },
            )
            .await
        }
    };
    assert_problem(&call(&old).await, 401, "unauthorized");
    assert_eq!(call(&live).await.status, 200, "the live session is kept");
    // The refusal deleted `old`; `live` and the link's session remain.
    assert_eq!(ids().await, ["key_", "ses_", "ses_"]);
}
