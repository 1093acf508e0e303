//! Token endpoints that misbehave (issue 14): a wrong token URL, and a real
//! loopback token server that rotates refresh tokens, revokes the whole
//! grant when a spent one is presented again, and answers slowly.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{World, now, scripted, test_config};
use syncbridge_core::SecretString;
use syncbridge_core::credentials::CredentialError;
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::{Store, model::Connection};
use syncbridge_credentials::{CredentialDoc, CredentialManager, RefreshConfig, RefreshTrigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HOUR: Duration = Duration::from_secs(3600);

/// Adds connection `id` whose token endpoint is at `base` (the sandbox
/// definition's relative `token_url` resolves against it), with a due
/// credential holding refresh token `rt`.
async fn due_connection(
    w: &World,
    m: &CredentialManager,
    id: &str,
    base: &str,
    rt: &str,
) -> Connection {
    let mut conn = w.connection(id);
    conn.base_url = Some(base.to_owned());
    w.store.put_connection(&conn).await.unwrap();
    let doc = CredentialDoc::oauth2(
        SecretString::new("at_0"),
        Some(SecretString::new(rt)),
        Some(HOUR),
        now().sub(2 * HOUR),
    );
    m.store_initial(&conn.id, doc).await.unwrap();
    conn
}

/// What was tried: token URLs that answer 404 (an HTML page), 405, and a
/// 200 HTML page, each refreshed twice. What holds: the first refresh fails
/// as a configuration error (`Permanent`, naming the token URL) with one
/// `provider_credentials_rejected` event; the second makes no request and
/// raises nothing more; the connection stays active. Before the fix each was
/// "unparsable token response", a transient error retried forever.
#[tokio::test]
async fn a_wrong_token_url_is_a_configuration_error_reported_once() {
    let w = World::new(HOUR).await;
    for (i, (status, body)) in [
        (404u16, "<html>Not Found</html>"),
        (405, "method not allowed"),
        (200, "<html>welcome to our website</html>"),
    ]
    .into_iter()
    .enumerate()
    {
        let ep = scripted(vec![(
            status,
            vec![("content-type", "text/html".into())],
            body.into(),
        )])
        .await;
        let m = w.manager();
        let id = format!("c-wrong-url-{i}");
        let conn = due_connection(&w, &m, &id, &ep.url, "rt").await;
        let before = w.events.all().len();
        for attempt in 0..2 {
            match m.refresh(&conn, &w.def, RefreshTrigger::Due).await {
                Err(CredentialError::Permanent(msg)) => {
                    assert!(msg.contains("token"), "{status}: {msg}")
                }
                other => {
                    panic!("HTTP {status}, attempt {attempt}: expected Permanent, got {other:?}")
                }
            }
        }
        assert_eq!(
            ep.hits.load(Ordering::SeqCst),
            1,
            "HTTP {status}: one request"
        );
        let events = w.events.kinds()[before..].to_vec();
        assert_eq!(
            events,
            vec!["provider_credentials_rejected"],
            "HTTP {status}"
        );
        assert_eq!(w.status(&id).await, ConnectionStatus::Active);
    }
}

/// A token server like providers with refresh-token reuse detection: every
/// refresh rotates the refresh token; presenting a spent one revokes the
/// whole grant, unless it comes back within `grace` of its rotation (then
/// the same new tokens are answered again, as Okta's grace period and
/// Auth0's reuse interval do). The first `slow` answers come after `delay`.
#[derive(Clone)]
struct RotatingServer {
    url: String,
    state: Arc<Mutex<Grant>>,
    requests: Arc<AtomicU64>,
}

struct Grant {
    current: String,
    /// The last rotation: (spent token, its answer, when).
    last: Option<(String, String, std::time::Instant)>,
    spent: HashSet<String>,
    revoked: bool,
    issued: u64,
}

impl RotatingServer {
    async fn start(first_rt: &str, delay: Duration, slow: u64, grace: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = RotatingServer {
            url,
            state: Arc::new(Mutex::new(Grant {
                current: first_rt.to_owned(),
                last: None,
                spent: HashSet::new(),
                revoked: false,
                issued: 0,
            })),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { s.serve(sock, delay, slow, grace).await });
            }
        });
        server
    }

    async fn serve(
        &self,
        mut sock: tokio::net::TcpStream,
        delay: Duration,
        slow: u64,
        grace: Duration,
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let body = loop {
            let Ok(k) = sock.read(&mut chunk).await else {
                return;
            };
            if k == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..k]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                }
            }
        };
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let presented = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        // The grant changes when the request arrives; the answer may be slow.
        let (status, json) = self.decide(&presented, grace);
        if n < slow {
            tokio::time::sleep(delay).await;
        }
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            json.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
    }

    fn decide(&self, presented: &str, grace: Duration) -> (u16, String) {
        let invalid = (400, r#"{"error":"invalid_grant"}"#.to_owned());
        let mut g = self.state.lock().unwrap();
        if g.revoked {
            return invalid;
        }
        if presented == g.current {
            g.issued += 1;
            let next = format!("rt_{}", g.issued);
            let answer = format!(
                r#"{{"access_token":"at_{}","token_type":"bearer","expires_in":3600,"refresh_token":"{next}"}}"#,
                g.issued
            );
            let spent = std::mem::replace(&mut g.current, next);
            g.spent.insert(spent.clone());
            g.last = Some((spent, answer.clone(), std::time::Instant::now()));
            return (200, answer);
        }
        if let Some((spent, answer, at)) = &g.last
            && spent == presented
            && at.elapsed() < grace
        {
            return (200, answer.clone());
        }
        if g.spent.contains(presented) {
            g.revoked = true; // reuse detected: the whole grant goes
        }
        invalid
    }

    fn revoked(&self) -> bool {
        self.state.lock().unwrap().revoked
    }
}

/// What was tried: a provider with reuse detection that takes 12 s to answer
/// a refresh (more than the 10 s the token request used to be given),
/// refreshed with the default settings, then refreshed again. What holds:
/// the slow answer is waited for and saved, the grant is intact (the second
/// refresh rotates again, no reuse), the connection stays active. Before the
/// fix the request timed out after 10 s, the provider had rotated the token
/// anyway, and the next refresh presented the spent one: grant revoked,
/// connection `needs_reauth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_token_answer_is_waited_for_not_abandoned() {
    let w = World::new(HOUR).await;
    let server = RotatingServer::start("rt_0", Duration::from_secs(12), 1, Duration::ZERO).await;
    let cfg = RefreshConfig {
        poll_interval: Duration::from_millis(20),
        ..RefreshConfig::default()
    };
    let m = w.manager_with(w.clients(), cfg);
    let conn = due_connection(&w, &m, "c-slow", &server.url, "rt_0").await;
    let first = m.refresh(&conn, &w.def, RefreshTrigger::Due).await;
    assert!(
        matches!(&first, Ok(o) if o.performed && o.access_token.expose() == "at_1"),
        "{first:?}"
    );
    let again = m
        .refresh(&conn, &w.def, RefreshTrigger::StaleVersion(i64::MAX))
        .await;
    assert!(
        matches!(&again, Ok(o) if o.access_token.expose() == "at_2"),
        "{again:?}"
    );
    assert!(!server.revoked());
    assert_eq!(w.status("c-slow").await, ConnectionStatus::Active);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

/// What was tried: a refresh whose answer is lost (the server answers after
/// our 1 s timeout, having rotated the token), against a provider with a
/// 30 s reuse grace period. What holds: the manager re-reads the store,
/// repeats the request at once, gets the same new tokens and saves them —
/// one refresh call, no error, the grant intact. Before the fix the lost
/// answer was a transient failure with a 30 s backoff, so the next attempt
/// came after the grace period and the grant was revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_repeated_at_once_after_reading_the_store() {
    let w = World::new(HOUR).await;
    let server = RotatingServer::start(
        "rt_0",
        Duration::from_millis(1500),
        1,
        Duration::from_secs(30),
    )
    .await;
    let m = w.manager_with(w.clients(), test_config());
    let conn = due_connection(&w, &m, "c-lost", &server.url, "rt_0").await;
    let out = m.refresh(&conn, &w.def, RefreshTrigger::Due).await;
    assert!(
        matches!(&out, Ok(o) if o.performed && o.access_token.expose() == "at_1"),
        "{out:?}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2, "one repeat");
    let stored = m.open(&conn.id).await.unwrap().unwrap();
    let CredentialDoc::OAuth2 { refresh_token, .. } = stored.doc else {
        panic!("an OAuth credential")
    };
    assert_eq!(
        refresh_token.map(|t| t.expose().to_owned()),
        Some("rt_1".to_owned())
    );
    assert!(!server.revoked());
}

/// What was tried: the same lost answer with a provider that has no grace
/// period (strict reuse detection). What holds (the remaining window, as
/// documented): the repeat finds the grant revoked and the connection is
/// marked `needs_reauth` with its event in that same call, instead of
/// failing "transiently" and discovering it at a later refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grace_period_a_lost_answer_is_reported_at_once() {
    let w = World::new(HOUR).await;
    let server =
        RotatingServer::start("rt_0", Duration::from_millis(1500), 1, Duration::ZERO).await;
    let m = w.manager_with(w.clients(), test_config());
    let conn = due_connection(&w, &m, "c-strict", &server.url, "rt_0").await;
    let out = m.refresh(&conn, &w.def, RefreshTrigger::Due).await;
    assert!(matches!(out, Err(CredentialError::NeedsReauth)), "{out:?}");
    assert!(server.revoked());
    assert_eq!(w.status("c-strict").await, ConnectionStatus::NeedsReauth);
    assert_eq!(w.events.kinds(), vec!["connection_needs_reauth"]);
}

/// What was tried: a custom connector `mine` (the sandbox definition
/// renamed, with an absolute `token_url` at the sandbox) in
/// `SYNCBRIDGE_CONNECTORS_DIR`, a connection of it whose base URL leads
/// nowhere, and `credentials-refresh-once` (a separate process, as another
/// Functions instance would refresh). What holds: the helper loads the same
/// definitions as the handlers, refreshes through the custom `token_url`
/// (one token request at the sandbox) and exits 0. Before the fix it knew
/// only the built-ins: "unknown connector mine", exit 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_once_uses_a_custom_connector_and_its_token_url() {
    let w = World::new(HOUR).await;
    let defs = w.dir.path().join("connectors");
    std::fs::create_dir_all(&defs).unwrap();
    let sandbox = syncbridge_core::connector::registry::BUILTIN
        .iter()
        .find(|(f, _)| *f == "sandbox.toml")
        .unwrap()
        .1;
    let token_url = format!("{}/oauth/v1/token", w.sandbox.base_url());
    let mine = sandbox
        .replacen("name = \"sandbox\"", "name = \"mine\"", 1)
        .replacen(
            "token_url = \"/oauth/v1/token\"",
            &format!("token_url = \"{token_url}\""),
            1,
        );
    assert!(mine.contains(&token_url) && mine.contains("name = \"mine\""));
    std::fs::write(defs.join("mine.toml"), mine).unwrap();
    let m = w.manager();
    let (mut conn, _, _) = w.add(&m, "c-mine", HOUR, 2 * HOUR).await;
    conn.provider = "mine".into();
    conn.base_url = Some("http://127.0.0.1:9".into());
    w.store.put_connection(&conn).await.unwrap();
    let before = w.token_requests();
    let cfg = w.sandbox.sandbox().config();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credentials-refresh-once"))
        .arg("--data-dir")
        .arg(w.dir.path())
        .args(["--connection", "c-mine"])
        .env("SYNCBRIDGE_CONNECTORS_DIR", &defs)
        .env("SYNCBRIDGE_OAUTH_MINE_CLIENT_ID", cfg.client_id)
        .env("SYNCBRIDGE_OAUTH_MINE_CLIENT_SECRET", cfg.client_secret)
        .env_remove("SYNCBRIDGE_CREDENTIALS_PAUSE")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.token_requests() - before, 1);
}
