//! Harness of the provider tests (`providers`, `provider_bad_answers`): a
//! Prism mock generated from a provider's published OpenAPI description, a
//! loopback server answering fixtures from a provider's documentation, and
//! one connector operation at a time through the real HTTP adapter.
//!
//! Prism comes from `scripts/prism` (npm, pinned, into `target/prism`); a
//! description is read from `../shared/specs/` and written, with the
//! project's corrections (`connectors/spec-patches/`), to a temp file that
//! Prism serves. Prism checks every request against the description and
//! answers a violation with 4xx (`sl-violations`), which the adapter reports
//! as a refused request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use syncbridge_core::connector::definition::{AuthDef, ConnectorDef, DeleteStrategy, ObjectDef};
use syncbridge_core::connector::extract::{
    ExtractedPage, NextPage, PageView, extract_page, next_page,
};
use syncbridge_core::connector::http::{HttpConnector, PageRequest, RetryPolicy};
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::credentials::{AuthValue, CredentialError, CredentialProvider};
use syncbridge_core::model::{Connection, ConnectionStatus};
use syncbridge_core::pipeline::inbound::feed_object;
use syncbridge_core::ratelimit::Unlimited;
use syncbridge_core::{ConnectionId, SecretString, SystemClock, TenantId, Timestamp};

use crate::{free_port, repo_root};

/// Answers a fixed authorization for every request: the kind the
/// definition's `auth` asks for, with a test value.
#[derive(Debug)]
pub struct StaticAuth(pub Option<AuthValue>);

impl StaticAuth {
    /// The authorization `def` sends, with placeholder secrets.
    pub fn for_def(def: &ConnectorDef) -> Self {
        StaticAuth(match &def.auth {
            AuthDef::None => None,
            AuthDef::Oauth2 { .. } => Some(AuthValue::Bearer(SecretString::new("test-token"))),
            AuthDef::ApiKey {
                header,
                prefix,
                query,
            } => Some(match query {
                Some(q) => AuthValue::Query {
                    name: q.clone(),
                    value: SecretString::new("test-key"),
                },
                None => AuthValue::Header {
                    name: header.clone().unwrap_or_else(|| "Authorization".into()),
                    value: SecretString::new(format!(
                        "{}test-key",
                        prefix.as_deref().unwrap_or("")
                    )),
                },
            }),
            AuthDef::Basic => Some(AuthValue::Basic {
                user: "agent@example.com/token".into(),
                password: SecretString::new("test-token"),
            }),
        })
    }
}

#[async_trait::async_trait]
impl CredentialProvider for StaticAuth {
    async fn authorize(
        &self,
        _: &Connection,
        _: &ConnectorDef,
    ) -> Result<Option<AuthValue>, CredentialError> {
        Ok(self.0.clone())
    }
    async fn rejected(
        &self,
        _: &Connection,
        _: &ConnectorDef,
        _: &AuthValue,
    ) -> Result<(), CredentialError> {
        Err(CredentialError::Permanent(
            "the mock refused the test credentials (401)".into(),
        ))
    }
}

/// A shipped connector definition by name.
pub fn shipped(name: &str) -> Arc<ConnectorDef> {
    Registry::builtin()
        .get(name)
        .unwrap_or_else(|| panic!("no shipped connector {name}"))
}

/// `def` bound to a connection whose base URL is `base_url`, with `settings`
/// and the definition's kind of test credentials; one attempt per request
/// (a refusal or an unreadable answer fails at once).
pub fn bind(def: Arc<ConnectorDef>, base_url: &str, settings: &[(&str, &str)]) -> HttpConnector {
    let conn = Connection {
        id: ConnectionId::parse("c-provider-test").expect("id"),
        tenant: TenantId::parse("t1").expect("tenant"),
        provider: def.name.clone(),
        status: ConnectionStatus::Active,
        base_url: Some(base_url.to_owned()),
        webhook: None,
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        conflicts: Default::default(),
        created_at: Timestamp::EPOCH,
    };
    let creds = Arc::new(StaticAuth::for_def(&def));
    HttpConnector::new(
        reqwest::Client::new(),
        def,
        conn,
        Arc::new(Unlimited),
        creds,
        Arc::new(SystemClock),
        RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_inline_wait: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        },
    )
}

/// A page fetched and read the way an inbound run reads it: the records and
/// the next page token, or why the page is unusable.
pub async fn read_page(
    c: &HttpConnector,
    obj: &ObjectDef,
    req: &PageRequest,
    as_deletes: bool,
) -> Result<(ExtractedPage, Option<String>), String> {
    let page = c.fetch(obj, req).await.map_err(|e| e.to_string())?;
    let extracted = extract_page(obj, &page.body, as_deletes).map_err(|e| e.to_string())?;
    let next = next_page(
        &obj.pagination,
        &PageView {
            body: &page.body,
            records: &obj.records,
            link: page.link.as_deref(),
            current: req.page.as_deref(),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((
        extracted,
        match next {
            NextPage::Token(t) => Some(t),
            NextPage::Done => None,
        },
    ))
}

/// The object a deleted feed is listed as (its own endpoint, paging and
/// filter, as the inbound run builds it) and the query it adds; `None` when
/// the object has no deleted feed.
pub fn deleted_feed(obj: &ObjectDef) -> Option<(ObjectDef, BTreeMap<String, String>)> {
    let DeleteStrategy::DeletedFeed { query, .. } = &obj.deletes else {
        return None;
    };
    Some((feed_object(obj)?, query.clone()))
}

/// `target/prism`, where `scripts/prism` installs Prism.
fn prism_dir() -> PathBuf {
    repo_root().join("target").join("prism")
}

/// Installs Prism once per test process (`scripts/prism` is idempotent).
fn ensure_prism() -> PathBuf {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let bin = prism_dir().join("node_modules/.bin/prism");
    if !*done {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/prism"))
            .status()
            .expect("scripts/prism runs");
        assert!(status.success(), "scripts/prism failed: {status}");
        *done = true;
    }
    bin
}

/// A running Prism mock of one published description (killed on drop).
pub struct Prism {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// How Prism answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockAnswers {
    /// The description's own examples.
    Examples,
    /// Bodies generated from the schemas (fixed seed), for descriptions whose
    /// examples are null or not objects (Jira's are JSON inside a string).
    Generated,
}

impl Prism {
    /// Starts Prism on a free port against `../shared/specs/<spec>` with
    /// `connectors/spec-patches/<patch>` applied to a temp copy.
    pub fn start(spec: &str, patches: &[&str], answers: MockAnswers) -> Prism {
        let bin = ensure_prism();
        let source = repo_root()
            .join("..")
            .join("shared")
            .join("specs")
            .join(spec);
        assert!(
            source.is_file(),
            "{} not found: the provider descriptions are read from ../shared/specs/",
            source.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join(format!("{spec}.json"));
        let mut cmd = Command::new("node");
        cmd.current_dir(repo_root())
            .env("PRISM_DIR", prism_dir())
            .arg("scripts/spec-patch.cjs")
            .arg(&source)
            .arg(&copy);
        for p in patches {
            cmd.arg(repo_root().join("connectors/spec-patches").join(p));
        }
        let out = cmd.output().expect("node runs scripts/spec-patch.cjs");
        assert!(
            out.status.success(),
            "applying {patches:?} to {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prism.log")).expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(&copy)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if answers == MockAnswers::Generated {
            cmd.args(["-d", "--seed", "syncbridge"]);
        }
        let child = cmd.spawn().expect("prism starts");
        let prism = Prism {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        prism.wait_listening(port);
        prism
    }

    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prism did not listen on {port} within 180 s; its log:\n{}",
            self.log()
        );
    }

    /// What Prism logged (its validation messages name each violation).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prism.log")).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request the fixture server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// `content-type` header.
    pub content_type: Option<String>,
    /// Raw body.
    pub body: String,
}

/// One fixture route: method, path (exact, without query), file under
/// `tests/fixtures/providers/` (or an inline body), status.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path without query.
    pub path: String,
    /// A query parameter that must be present for this route (`cursor`), or
    /// absent (`!cursor`); `None` matches any query.
    pub when_query: Option<&'static str>,
    /// Response body.
    pub body: String,
    /// Response status.
    pub status: u16,
}

impl Route {
    /// A 200 answering fixture file `file`.
    pub fn file(method: &'static str, path: &str, file: &str) -> Route {
        let p = fixture_path(file);
        Route {
            method,
            path: path.into(),
            when_query: None,
            body: std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("fixture {}: {e}", p.display())),
            status: 200,
        }
    }

    /// A route answering `body` with `status`.
    pub fn inline(method: &'static str, path: &str, status: u16, body: Value) -> Route {
        Route {
            method,
            path: path.into(),
            when_query: None,
            body: body.to_string(),
            status,
        }
    }

    /// Only when the query has (or, with `!name`, lacks) parameter `name`.
    pub fn when(mut self, q: &'static str) -> Route {
        self.when_query = Some(q);
        self
    }
}

/// `tests/fixtures/providers/<file>`.
pub fn fixture_path(file: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/providers")
        .join(Path::new(file))
}

/// A loopback server answering fixed routes and recording every request;
/// an unknown route answers 404.
pub struct FixtureServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    /// Serves `routes` on a free loopback port.
    pub async fn start(routes: Vec<Route>) -> FixtureServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let routes = Arc::new(routes);
        let app = {
            let seen = seen.clone();
            axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (seen, routes) = (seen.clone(), routes.clone());
                async move { answer(req, &routes, &seen).await }
            })
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FixtureServer { base, seen, task }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: axum::extract::Request,
    routes: &[Route],
    seen: &Mutex<Vec<Seen>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = req.method().to_string();
    let uri = req.uri().clone();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    seen.lock().expect("lock").push(Seen {
        method: method.clone(),
        uri: uri.to_string(),
        content_type,
        body,
    });
    let query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split('=').next().map(str::to_owned))
        .collect();
    let matches = |r: &&Route| {
        r.method == method
            && r.path == uri.path()
            && match r.when_query {
                None => true,
                Some(q) => match q.strip_prefix('!') {
                    Some(absent) => !query.iter().any(|k| k == absent),
                    None => query.iter().any(|k| k == q),
                },
            }
    };
    match routes.iter().find(matches) {
        Some(r) => (
            axum::http::StatusCode::from_u16(r.status).expect("status"),
            [("content-type", "application/json")],
            r.body.clone(),
        )
            .into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "no fixture route").into_response(),
    }
}
