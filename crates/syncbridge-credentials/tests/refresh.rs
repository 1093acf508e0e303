//! Token refresh against the real sandbox token endpoint (rotating,
//! single-use refresh tokens) with a real SQLite store, plus a scripted
//! endpoint for answers the sandbox never gives.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{World, conn_id, now, scripted, test_config};
use syncbridge_core::credentials::{AuthValue, CredentialError, CredentialProvider};
use syncbridge_core::events::Event;
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::{SecretString, Store};
use syncbridge_credentials::{ClientRegistry, CredentialDoc, OAuthClient, RefreshTrigger};

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

fn bearer(v: Option<AuthValue>) -> SecretString {
    match v {
        Some(AuthValue::Bearer(t)) => t,
        other => panic!("expected a bearer token, got {other:?}"),
    }
}

/// 20 concurrent tasks refreshing one connection after a 401 make exactly one token request and all get the same new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_tasks_make_one_token_request() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    let (conn, at0, rt0) = w.add(&m, "c-tasks", HOUR, MIN).await;
    let before = w.token_requests();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (m, conn, def, at0) = (m.clone(), conn.clone(), w.def.clone(), at0.clone());
        tasks.push(tokio::spawn(async move {
            m.refresh(&conn, &def, RefreshTrigger::Rejected(at0)).await
        }));
    }
    let mut outs = Vec::new();
    for t in tasks {
        outs.push(t.await.unwrap().unwrap());
    }
    assert_eq!(w.token_requests() - before, 1);
    assert_eq!(outs.iter().filter(|o| o.performed).count(), 1);
    let new = &outs[0].access_token;
    assert_ne!(new, &at0);
    assert!(outs.iter().all(|o| &o.access_token == new));
    assert!(w.accepts(new).await);
    assert_eq!(w.status("c-tasks").await, ConnectionStatus::Active);
    let stored = m.open(&conn.id).await.unwrap().unwrap();
    let CredentialDoc::OAuth2 { refresh_token, .. } = stored.doc else {
        panic!("oauth")
    };
    assert_ne!(
        refresh_token.unwrap(),
        rt0,
        "the rotated refresh token was persisted"
    );
    assert_eq!(m.counters().token_requests, 1);
    assert_eq!(m.counters().refreshes, 1);
}

/// 20 OS threads, each with its own runtime and its own manager (separate lock owners, like separate instances), make exactly one token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_threads_with_separate_managers_make_one_token_request() {
    let w = World::new(HOUR).await;
    let seed = w.manager();
    let (conn, at0, _) = w.add(&seed, "c-threads", HOUR, MIN).await;
    let v0 = seed.open(&conn.id).await.unwrap().unwrap().version;
    let before = w.token_requests();
    let barrier = Arc::new(std::sync::Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let m = w.manager();
            let (conn, def, barrier) = (conn.clone(), w.def.clone(), barrier.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                barrier.wait();
                let out = rt
                    .block_on(m.refresh(&conn, &def, RefreshTrigger::StaleVersion(v0)))
                    .unwrap();
                (out, m.counters())
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(w.token_requests() - before, 1);
    assert_eq!(outs.iter().filter(|(o, _)| o.performed).count(), 1);
    let new = outs[0].0.access_token.clone();
    assert_ne!(new, at0);
    assert!(
        outs.iter()
            .all(|(o, _)| o.access_token == new && o.version == v0 + 1)
    );
    assert_eq!(outs.iter().map(|(_, c)| c.token_requests).sum::<u64>(), 1);
    assert!(w.accepts(&new).await);
    assert_eq!(w.status("c-threads").await, ConnectionStatus::Active);
}

/// `authorize` hands out a fresh token without any request, refreshes a due one once, and 10 concurrent callers of an expired token share one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorize_refreshes_only_when_due() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    let (fresh, fresh_at, _) = w.add(&m, "c-fresh", HOUR, MIN).await;
    let (expired, expired_at, _) = w.add(&m, "c-expired", HOUR, HOUR + MIN).await;
    let before = w.token_requests();
    for _ in 0..5 {
        assert_eq!(bearer(m.authorize(&fresh, &w.def).await.unwrap()), fresh_at);
    }
    assert_eq!(w.token_requests(), before, "fresh token: no network");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (m, c, d) = (m.clone(), expired.clone(), w.def.clone());
        tasks.push(tokio::spawn(async move { m.authorize(&c, &d).await }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(bearer(t.await.unwrap().unwrap()));
    }
    assert_eq!(w.token_requests() - before, 1);
    assert!(got.iter().all(|t| t == &got[0] && t != &expired_at));
    assert!(w.accepts(&got[0]).await);
    // The new token (one hour) is not due: no further requests.
    assert_eq!(bearer(m.authorize(&expired, &w.def).await.unwrap()), got[0]);
    assert_eq!(w.token_requests() - before, 1);
}

/// A token response without `refresh_token` keeps the stored refresh token; `expires_in` and scope are recorded.
#[tokio::test]
async fn response_without_refresh_token_keeps_the_old_one() {
    let w = World::new(HOUR).await;
    let ep = scripted(vec![(
        200,
        vec![("content-type", "application/json".into())],
        r#"{"access_token":"new_at_1","token_type":"bearer","expires_in":3600,"scope":"a b"}"#
            .into(),
    )])
    .await;
    let m = w.manager();
    let mut conn = w.connection("c-keep");
    conn.base_url = Some(ep.url.clone());
    w.store.put_connection(&conn).await.unwrap();
    let rt = SecretString::new("rt_keep_me");
    let doc = CredentialDoc::oauth2(
        SecretString::new("old_at"),
        Some(rt.clone()),
        Some(HOUR),
        now(),
    );
    m.store_initial(&conn.id, doc).await.unwrap();
    let out = m
        .refresh(
            &conn,
            &w.def,
            RefreshTrigger::Rejected(SecretString::new("old_at")),
        )
        .await
        .unwrap();
    assert!(out.performed);
    assert_eq!(out.access_token.expose(), "new_at_1");
    let CredentialDoc::OAuth2 {
        refresh_token,
        expires_at,
        issued_at,
        scope,
        ..
    } = m.open(&conn.id).await.unwrap().unwrap().doc
    else {
        panic!("oauth")
    };
    assert_eq!(refresh_token, Some(rt));
    assert_eq!(expires_at, Some(issued_at.add(HOUR)));
    assert_eq!(scope.as_deref(), Some("a b"));
    assert_eq!(ep.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A revoked refresh token marks only that connection needs_reauth, raises one event, and stops every further provider call for it; re-authorizing restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_refresh_token_needs_reauth_and_stops_calls() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    let (a, a_at, a_rt) = w.add(&m, "c-revoked", HOUR, MIN).await;
    let (b, b_at, _) = w.add(&m, "c-healthy", HOUR, MIN).await;
    w.revoke(&a_rt).await;
    let before = w.token_requests();
    // Several concurrent 401 handlers: one request, one event.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (m, c, d, t) = (m.clone(), a.clone(), w.def.clone(), a_at.clone());
        tasks.push(tokio::spawn(async move {
            m.rejected(&c, &d, &AuthValue::Bearer(t)).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(CredentialError::NeedsReauth));
    }
    assert_eq!(w.token_requests() - before, 1);
    assert_eq!(w.status("c-revoked").await, ConnectionStatus::NeedsReauth);
    let events = w.events.all();
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Event::ConnectionNeedsReauth {
            connection,
            reason,
            provider,
            ..
        } => {
            assert_eq!(connection, &a.id);
            assert_eq!(reason, "invalid_grant");
            assert_eq!(provider, "sandbox");
        }
        e => panic!("unexpected {e:?}"),
    }
    // No further provider calls, even through a stale `Active` connection value.
    let calls = w.token_requests();
    assert_eq!(
        m.authorize(&a, &w.def).await,
        Err(CredentialError::NeedsReauth)
    );
    assert_eq!(
        m.refresh(&a, &w.def, RefreshTrigger::StaleVersion(i64::MAX))
            .await,
        Err(CredentialError::NeedsReauth)
    );
    // A fresh manager (another process) agrees without calling the provider.
    let m2 = w.manager();
    assert_eq!(
        m2.authorize(&a, &w.def).await,
        Err(CredentialError::NeedsReauth)
    );
    assert_eq!(w.token_requests(), calls);
    // A sweep two days ahead refreshes b only: a left the sweep's metadata.
    let report = m.sweep(now().add(HOUR * 48), 100).await.unwrap();
    assert_eq!(
        (report.checked, report.refreshed, report.needs_reauth),
        (1, 1, 0)
    );
    assert_eq!(w.token_requests(), calls + 1);
    // Other connections are unaffected.
    assert_eq!(w.status("c-healthy").await, ConnectionStatus::Active);
    let b_now = bearer(m.authorize(&b, &w.def).await.unwrap());
    assert!(w.accepts(&b_now).await);
    assert_ne!(b_now, b_at);
    // A person re-authorizes: the connection works again.
    let pair = w.sandbox.sandbox().issue_tokens();
    let doc = CredentialDoc::oauth2(
        SecretString::new(pair.access_token),
        Some(SecretString::new(pair.refresh_token)),
        Some(HOUR),
        now(),
    );
    m.reauthorize(&a.id, doc).await.unwrap();
    let a2 = w.store.get_connection(&a.id).await.unwrap().unwrap();
    assert_eq!(a2.status, ConnectionStatus::Active);
    let t = bearer(m.authorize(&a2, &w.def).await.unwrap());
    assert!(w.accepts(&t).await);
    let out = m
        .refresh(&a2, &w.def, RefreshTrigger::Rejected(t))
        .await
        .unwrap();
    assert!(out.performed);
}

/// `invalid_client` raises one ProviderCredentialsRejected for the app, pauses its refreshes, and marks no connection.
#[tokio::test]
async fn invalid_client_raises_one_event() {
    let w = World::new(HOUR).await;
    let cfg = w.sandbox.sandbox().config();
    let bad = ClientRegistry::new().with(OAuthClient::new(
        "sandbox",
        cfg.client_id.clone(),
        SecretString::new("sbx_cs_wrong_secret"),
    ));
    let m = w.manager_with(bad, test_config());
    let (a, a_at, _) = w.add(&m, "c-ic-1", HOUR, MIN).await;
    let (b, b_at, _) = w.add(&m, "c-ic-2", HOUR, MIN).await;
    let before = w.token_requests();
    for (c, t) in [(&a, &a_at), (&b, &b_at), (&a, &a_at)] {
        let r = m
            .refresh(c, &w.def, RefreshTrigger::Rejected(t.clone()))
            .await;
        match r {
            Err(CredentialError::Permanent(msg)) => {
                assert!(!msg.contains("sbx_cs_"), "{msg}")
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }
    assert_eq!(w.token_requests() - before, 1, "the app's refreshes pause");
    assert_eq!(w.events.kinds(), vec!["provider_credentials_rejected"]);
    assert_eq!(m.counters().invalid_client_alerts, 1);
    assert_eq!(w.status("c-ic-1").await, ConnectionStatus::Active);
    assert_eq!(w.status("c-ic-2").await, ConnectionStatus::Active);
    // The tokens themselves are untouched and still work.
    assert!(w.accepts(&a_at).await);
}

/// 503 and 429 from the token endpoint are Transient with their status kept; the connection stays Active, `authorize` keeps the unexpired token, and refreshes back off for Retry-After.
#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let w = World::new(HOUR).await;
    for (status, ra) in [(503u16, "7"), (429, "2")] {
        let ep = scripted(vec![(
            status,
            vec![
                ("content-type", "text/html".into()),
                ("retry-after", ra.into()),
            ],
            "<html>busy</html>".into(),
        )])
        .await;
        let m = w.manager();
        let id = format!("c-transient-{status}");
        let mut conn = w.connection(&id);
        conn.base_url = Some(ep.url.clone());
        w.store.put_connection(&conn).await.unwrap();
        // Due (58 of 60 minutes gone) but still usable.
        let at = SecretString::new("still_valid_at");
        let doc = CredentialDoc::oauth2(
            at.clone(),
            Some(SecretString::new("rt")),
            Some(HOUR),
            now().sub(58 * MIN),
        );
        m.store_initial(&conn.id, doc).await.unwrap();
        match m.refresh(&conn, &w.def, RefreshTrigger::Due).await {
            Err(CredentialError::Transient(msg)) => {
                assert!(msg.contains(&status.to_string()), "{msg}")
            }
            other => panic!("expected Transient, got {other:?}"),
        }
        // Backing off (Retry-After): authorize keeps the unexpired token
        // and makes no request.
        assert_eq!(bearer(m.authorize(&conn, &w.def).await.unwrap()), at);
        assert!(matches!(
            m.refresh(&conn, &w.def, RefreshTrigger::Due).await,
            Err(CredentialError::Transient(msg)) if msg.contains("failed recently")
        ));
        assert_eq!(ep.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(w.status(&id).await, ConnectionStatus::Active);
        assert_eq!(m.counters().transient_failures, 1);
        // A forced refresh ignores the backoff.
        let forced = m
            .refresh(&conn, &w.def, RefreshTrigger::StaleVersion(i64::MAX))
            .await;
        assert!(matches!(forced, Err(CredentialError::Transient(_))));
        assert_eq!(ep.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
    // An unreachable endpoint is transient too.
    let m = w.manager();
    let mut conn = w.connection("c-unreachable");
    conn.base_url = Some("http://127.0.0.1:9".into());
    w.store.put_connection(&conn).await.unwrap();
    let doc = CredentialDoc::oauth2(
        SecretString::new("x"),
        Some(SecretString::new("rt")),
        Some(HOUR),
        now().sub(2 * HOUR),
    );
    m.store_initial(&conn.id, doc).await.unwrap();
    assert!(matches!(
        m.authorize(&conn, &w.def).await,
        Err(CredentialError::Transient(_))
    ));
    assert!(w.events.all().is_empty());
}

/// A redirect from the token endpoint is not followed (the client secret never travels to the redirect target), and is reported as a wrong token URL.
#[tokio::test]
async fn redirects_are_not_followed() {
    let w = World::new(HOUR).await;
    let target = scripted(vec![(
        200,
        vec![("content-type", "application/json".into())],
        "{}".into(),
    )])
    .await;
    let ep = scripted(vec![(
        302,
        vec![("location", format!("{}/steal", target.url))],
        String::new(),
    )])
    .await;
    let m = w.manager();
    let mut conn = w.connection("c-redirect");
    conn.base_url = Some(ep.url.clone());
    w.store.put_connection(&conn).await.unwrap();
    let doc = CredentialDoc::oauth2(
        SecretString::new("a"),
        Some(SecretString::new("rt")),
        Some(HOUR),
        now().sub(2 * HOUR),
    );
    m.store_initial(&conn.id, doc).await.unwrap();
    let r = m.refresh(&conn, &w.def, RefreshTrigger::Due).await;
    // A token URL that redirects is not the token endpoint: a configuration
    // error, reported once, not retried as if the provider were down.
    assert!(
        matches!(&r, Err(CredentialError::Permanent(m)) if m.contains("302")),
        "{r:?}"
    );
    assert_eq!(ep.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(target.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(w.events.kinds(), vec!["provider_credentials_rejected"]);
}

/// The sweep refreshes due and day-idle credentials, counts a revoked one as needs_reauth, leaves fresh ones alone, and respects its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_reports_what_it_did() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    for i in 0..3 {
        // 30-minute tokens with 2 minutes left: inside the 5-minute margin.
        w.add(&m, &format!("c-due-{i}"), 30 * MIN, 28 * MIN).await;
    }
    for i in 0..2 {
        w.add(&m, &format!("c-fresh-{i}"), HOUR, MIN).await;
    }
    // A 30-day token last refreshed 25 hours ago: idle for more than a day.
    w.add(&m, "c-idle", 30 * 24 * HOUR, 25 * HOUR).await;
    let (_, _, rt) = w.add(&m, "c-gone", 30 * MIN, 28 * MIN).await;
    w.revoke(&rt).await;
    let before = w.token_requests();

    // The store answers only what is due (3 in their margin, the idle one,
    // the revoked one), soonest first, up to the limit: the 2 fresh
    // credentials are never read.
    let limited = m.sweep(now(), 2).await.unwrap();
    assert_eq!((limited.scanned, limited.checked), (2, 2));
    let report = m.sweep(now(), 100).await.unwrap();
    let total_refreshed = limited.refreshed + report.refreshed;
    assert_eq!(
        report.scanned, 3,
        "the 5 due minus the 2 the limited sweep took"
    );
    assert_eq!(total_refreshed, 4, "{limited:?} {report:?}");
    assert_eq!(limited.needs_reauth + report.needs_reauth, 1);
    assert_eq!(report.failed + limited.failed, 0);
    assert_eq!(
        report.checked,
        report.refreshed + report.skipped + report.failed + report.needs_reauth
    );
    assert_eq!(w.token_requests() - before, 5, "4 refreshes + 1 refused");
    assert_eq!(w.status("c-gone").await, ConnectionStatus::NeedsReauth);
    assert_eq!(w.status("c-idle").await, ConnectionStatus::Active);
    assert_eq!(w.events.kinds(), vec!["connection_needs_reauth"]);

    // Everything is fresh now and the marked credential is never due: the
    // sweep reads nothing.
    let again = m.sweep(now(), 100).await.unwrap();
    assert_eq!((again.scanned, again.checked, again.refreshed), (0, 0, 0));
    assert_eq!(w.token_requests() - before, 5);
    let idle = m.open(&conn_id("c-idle")).await.unwrap().unwrap();
    assert!(now().since(idle.refreshed_at) < MIN);
}
