//! Test helpers shared by this crate's integration tests.
//!
//! **A fake managed-identity endpoint.** No Azure endpoint can run here, so
//! [`FakeIdentity`] is a small axum server on 127.0.0.1 that speaks the App
//! Service / Functions managed-identity protocol as documented: `GET
//! <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=<resource>` with header
//! `X-IDENTITY-HEADER: <IDENTITY_HEADER>`, answering
//! `{"access_token", "expires_on" (unix seconds, as a string), "resource",
//! "token_type"}`. It refuses a request without the right header or API
//! version, and records every request so tests can check what the real
//! `azure_identity::ManagedIdentityCredential` sent and how often.
//!
//! **Child processes.** `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT`
//! and `IDENTITY_HEADER` from the process environment, and setting
//! environment variables in a running test process needs `unsafe` (forbidden
//! in this workspace). So a test that needs them re-runs *itself* — the same
//! test binary, `--exact <test name>` — as a child process with those
//! variables set, and [`in_child`] tells the two roles apart.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;

/// Marks the child role.
pub const CHILD_ENV: &str = "SYNCBRIDGE_TEST_CHILD";
/// The secret the fake endpoint expects in `X-IDENTITY-HEADER`.
pub const IDENTITY_SECRET: &str = "fake-identity-header-4f1c";

/// One request the fake identity endpoint received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// `X-IDENTITY-HEADER`, if sent.
    pub identity_header: Option<String>,
}

/// The fake managed-identity endpoint (see the module docs).
#[derive(Debug, Clone)]
pub struct FakeIdentity {
    /// `http://127.0.0.1:<port>/msi/token`: the `IDENTITY_ENDPOINT` value.
    pub endpoint: String,
    /// Every request so far.
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
}

async fn token(
    State(requests): State<Arc<Mutex<Vec<TokenRequest>>>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let identity_header = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    requests.lock().unwrap().push(TokenRequest {
        query: query.clone(),
        identity_header: identity_header.clone(),
    });
    if identity_header.as_deref() != Some(IDENTITY_SECRET) {
        return (StatusCode::UNAUTHORIZED, "missing X-IDENTITY-HEADER".into());
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (StatusCode::BAD_REQUEST, "unsupported api-version".into());
    }
    let Some(resource) = query.get("resource") else {
        return (StatusCode::BAD_REQUEST, "resource is required".into());
    };
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let n = requests.lock().unwrap().len();
    (
        StatusCode::OK,
        serde_json::json!({
            "access_token": format!("fake-token-{n}-for-{resource}"),
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

impl FakeIdentity {
    /// Starts the server on 127.0.0.1 (it lives as long as the runtime).
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/msi/token", get(token))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeIdentity {
            endpoint: format!("http://{addr}/msi/token"),
            requests,
        }
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Whether this process is the child role of a re-run test.
pub fn in_child() -> bool {
    syncbridge_env::Env::var_os(&syncbridge_env::ProcessEnv, CHILD_ENV).is_some()
}

/// Re-runs test `name` of this binary as a child with the managed-identity
/// variables pointing at `identity` plus `env`; returns its combined output
/// and panics (showing it) if the child failed.
pub fn run_child(name: &str, identity: &FakeIdentity, env: &[(&str, String)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("IDENTITY_ENDPOINT", &identity.endpoint)
        .env("IDENTITY_HEADER", IDENTITY_SECRET)
        // Make sure no other identity source is picked up.
        .env_remove("IDENTITY_SERVER_THUMBPRINT")
        .env_remove("MSI_ENDPOINT")
        .env_remove("MSI_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {name} did not run its test:\n{text}"
    );
    text
}
