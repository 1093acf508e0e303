//! `KeyVaultSecretStore` with the **real** `azure_identity::ManagedIdentityCredential`
//! against two **fakes** on loopback (nothing real can run here):
//!
//! - the managed-identity endpoint (shared helper from syncbridge-servicebus's
//!   tests: App Service protocol, `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`);
//! - a Key Vault secrets endpoint: `PUT /secrets/{name}` creates a version,
//!   `GET /secrets/{name}[/{version}]` reads, `api-version=7.4` and a Bearer
//!   token for the vault resource required, names case-insensitive, and the
//!   first requests can be scripted to answer `429` with `Retry-After`.

#[path = "../../syncbridge-servicebus/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncbridge_env::{Env as _, ProcessEnv};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{FakeIdentity, in_child, run_child};
use syncbridge_core::{SecretStore, SecretString};
use syncbridge_keyvault::{KeyVaultSecretStore, SETTING_VAULT_URI};

#[derive(Debug, Default)]
struct Vault {
    /// name (lower case) → versions in order (version, value).
    secrets: Mutex<HashMap<String, Vec<(String, String)>>>,
    gets: AtomicUsize,
    puts: AtomicUsize,
    /// Names starting `slow-` answer their first request with 429 + Retry-After.
    throttled: Mutex<std::collections::HashSet<String>>,
    base: Mutex<String>,
}

fn check(v: &Vault, name: &str, q: &BTreeMap<String, String>, h: &HeaderMap) -> Option<Response> {
    let auth = h
        .get("authorization")
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    if !auth.starts_with("Bearer fake-token-") || !auth.ends_with("https://vault.azure.net") {
        return Some((StatusCode::UNAUTHORIZED, "bad token").into_response());
    }
    if q.get("api-version").map(String::as_str) != Some("7.4") {
        return Some((StatusCode::BAD_REQUEST, "api-version").into_response());
    }
    if name.starts_with("slow-") && v.throttled.lock().unwrap().insert(name.to_string()) {
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "throttled",
            )
                .into_response(),
        );
    }
    None
}

fn bundle(v: &Vault, name: &str, version: &str, value: &str) -> Response {
    let base = v.base.lock().unwrap().clone();
    axum::Json(serde_json::json!({
        "value": value,
        "id": format!("{base}/secrets/{name}/{version}"),
        "attributes": { "enabled": true },
    }))
    .into_response()
}

async fn put_secret(
    State(v): State<Arc<Vault>>,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if let Some(r) = check(&v, &name, &q, &h) {
        return r;
    }
    v.puts.fetch_add(1, Ordering::SeqCst);
    let value = body["value"].as_str().unwrap_or_default().to_string();
    let mut secrets = v.secrets.lock().unwrap();
    let versions = secrets.entry(name.to_ascii_lowercase()).or_default();
    let version = format!("{:032x}", versions.len() + 1);
    versions.push((version.clone(), value.clone()));
    drop(secrets);
    bundle(&v, &name, &version, &value)
}

async fn get_secret(
    State(v): State<Arc<Vault>>,
    Path(parts): Path<Vec<String>>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let name = &parts[0];
    if let Some(r) = check(&v, name, &q, &h) {
        return r;
    }
    v.gets.fetch_add(1, Ordering::SeqCst);
    let secrets = v.secrets.lock().unwrap();
    let found = secrets
        .get(&name.to_ascii_lowercase())
        .and_then(|versions| match parts.get(1) {
            Some(ver) => versions.iter().find(|(x, _)| x == ver).cloned(),
            None => versions.last().cloned(),
        });
    drop(secrets);
    match found {
        Some((ver, value)) => bundle(&v, name, &ver, &value),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": {"code": "SecretNotFound"}})),
        )
            .into_response(),
    }
}

async fn get_latest(
    s: State<Arc<Vault>>,
    Path(name): Path<String>,
    q: Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    get_secret(s, Path(vec![name]), q, h).await
}

async fn get_version(
    s: State<Arc<Vault>>,
    Path((name, ver)): Path<(String, String)>,
    q: Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    get_secret(s, Path(vec![name, ver]), q, h).await
}

async fn fake_vault() -> (String, Arc<Vault>) {
    let vault = Arc::new(Vault::default());
    let app = axum::Router::new()
        .route(
            "/secrets/{name}",
            axum::routing::put(put_secret).get(get_latest),
        )
        .route("/secrets/{name}/{version}", axum::routing::get(get_version))
        .with_state(vault.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");
    *vault.base.lock().unwrap() = base.clone();
    (format!("{base}/"), vault)
}

/// The child half: everything a process with a managed identity would do.
async fn child_uses_the_vault() {
    let store = KeyVaultSecretStore::from_vars(|k| ProcessEnv.var(k)).unwrap();
    assert_eq!(store.get_key("dek", None).await.unwrap(), None, "absent");
    let v1 = store
        .put_key("dek", &SecretString::new("key-material-1"))
        .await
        .unwrap();
    let v2 = store
        .put_key("dek", &SecretString::new("key-material-2"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    // Served from the cache: the parent checks the vault saw no further GETs.
    for _ in 0..5 {
        let (ver, value) = store.get_key("dek", None).await.unwrap().unwrap();
        assert_eq!(
            (ver.as_str(), value.expose()),
            (v2.as_str(), "key-material-2")
        );
        let (_, old) = store.get_key("dek", Some(&v2)).await.unwrap().unwrap();
        assert_eq!(old.expose(), "key-material-2");
    }
    // An old version this instance wrote is cached too.
    for _ in 0..3 {
        let (_, old) = store.get_key("DEK", Some(&v1)).await.unwrap().unwrap();
        assert_eq!(old.expose(), "key-material-1");
    }
    // A fresh store (another instance) reads the latest version once.
    let other = KeyVaultSecretStore::from_vars(|k| ProcessEnv.var(k)).unwrap();
    let (_, latest) = other.get_key("dek", None).await.unwrap().unwrap();
    assert_eq!(latest.expose(), "key-material-2");
    // The fake vault answers the first request for `slow-*` with 429 and
    // Retry-After: 1; the store waits that long and retries.
    let started = Instant::now();
    other
        .put_key("slow-key", &SecretString::new("k"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    // Invalid names never reach the vault.
    assert!(store.get_key("bad_name", None).await.is_err());
}

/// Real managed-identity credential (fake identity endpoint) + fake vault:
/// one token for the vault resource, values cached, 404 → None, versions
/// returned from the id, 429 + Retry-After waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_and_cached_secrets() {
    if in_child() {
        child_uses_the_vault().await;
        return;
    }
    let identity = FakeIdentity::start().await;
    let (vault_url, vault) = fake_vault().await;
    let id = identity.clone();
    tokio::task::spawn_blocking(move || {
        run_child(
            "managed_identity_and_cached_secrets",
            &id,
            &[(SETTING_VAULT_URI, vault_url)],
        )
    })
    .await
    .unwrap();

    let requests = identity.requests();
    assert_eq!(
        requests.len(),
        2,
        "one token per store instance (two instances): {requests:?}"
    );
    for r in &requests {
        assert_eq!(
            r.query.get("resource").map(String::as_str),
            Some("https://vault.azure.net")
        );
    }
    assert_eq!(vault.puts.load(Ordering::SeqCst), 3);
    assert_eq!(vault.throttled.lock().unwrap().len(), 1, "one 429 served");
    assert_eq!(
        vault.gets.load(Ordering::SeqCst),
        2,
        "the miss and the second instance's latest; versions this instance wrote are cached"
    );
}
