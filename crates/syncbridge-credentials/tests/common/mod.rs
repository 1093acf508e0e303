//! Shared fixtures: a real SQLite store and key file in a temp dir, the real
//! sandbox on loopback, a recording event sink, and a scripted raw-HTTP
//! token endpoint for answers the sandbox never gives.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::events::{Event, EventSink};
use syncbridge_core::model::{Connection, ConnectionStatus};
use syncbridge_core::{Clock, ConnectionId, SecretString, Store, SystemClock, TenantId, Timestamp};
use syncbridge_credentials::{
    ClientRegistry, CredentialDoc, CredentialManager, LocalKeyFile, OAuthClient, RefreshConfig,
    Sealer,
};
use syncbridge_sandbox::{SandboxConfig, SandboxHandle};
use syncbridge_sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Records every event.
#[derive(Debug, Default)]
pub struct Recording(pub Mutex<Vec<Event>>);

#[async_trait::async_trait]
impl EventSink for Recording {
    async fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recording {
    pub fn kinds(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|e| e.kind()).collect()
    }
    pub fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

/// One test world.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub sealer: Arc<Sealer>,
    pub sandbox: SandboxHandle,
    pub events: Arc<Recording>,
    pub def: ConnectorDef,
}

pub fn sandbox_config(ttl: Duration) -> SandboxConfig {
    SandboxConfig {
        records_per_object: 5,
        auth_enabled: true,
        token_ttl: ttl,
        ..SandboxConfig::default()
    }
}

/// Fast settings for tests (lease 3 s > 2 × 1 s timeout).
pub fn test_config() -> RefreshConfig {
    RefreshConfig {
        lock_lease: Duration::from_secs(3),
        lock_wait: Duration::from_secs(15),
        poll_interval: Duration::from_millis(20),
        http_timeout: Duration::from_secs(1),
        sweep_jitter: Duration::from_millis(50),
        ..RefreshConfig::default()
    }
}

pub fn conn_id(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

impl World {
    pub async fn new(ttl: Duration) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
        let sealer = Arc::new(Sealer::new(Arc::new(
            LocalKeyFile::open_in(dir.path()).unwrap(),
        )));
        let sandbox = syncbridge_sandbox::spawn(sandbox_config(ttl))
            .await
            .unwrap();
        let def = (*Registry::builtin().get("sandbox").unwrap()).clone();
        World {
            dir,
            store,
            sealer,
            sandbox,
            events: Arc::new(Recording::default()),
            def,
        }
    }

    pub fn clients(&self) -> ClientRegistry {
        let cfg = self.sandbox.sandbox().config();
        ClientRegistry::new().with(OAuthClient::new(
            "sandbox",
            cfg.client_id,
            SecretString::new(cfg.client_secret),
        ))
    }

    pub fn manager(&self) -> CredentialManager {
        self.manager_with(self.clients(), test_config())
    }

    pub fn manager_with(&self, clients: ClientRegistry, cfg: RefreshConfig) -> CredentialManager {
        CredentialManager::builder(self.store.clone(), self.sealer.clone(), clients)
            .events(self.events.clone())
            .config(cfg)
            .rng_seed(7)
            .build()
            .unwrap()
    }

    pub fn connection(&self, id: &str) -> Connection {
        Connection {
            id: conn_id(id),
            tenant: TenantId::parse("tenant-1").unwrap(),
            provider: "sandbox".into(),
            status: ConnectionStatus::Active,
            base_url: Some(self.sandbox.base_url()),
            webhook: None,
            settings: BTreeMap::new(),
            conflicts: Default::default(),
            created_at: SystemClock.now(),
        }
    }

    /// Creates the connection and stores fresh sandbox tokens whose
    /// recorded lifetime is `lifetime`, issued `age` ago.
    pub async fn add(
        &self,
        m: &CredentialManager,
        id: &str,
        lifetime: Duration,
        age: Duration,
    ) -> (Connection, SecretString, SecretString) {
        let conn = self.connection(id);
        self.store.put_connection(&conn).await.unwrap();
        let pair = self.sandbox.sandbox().issue_tokens();
        let issued = SystemClock.now().sub(age);
        let (at, rt) = (
            SecretString::new(pair.access_token),
            SecretString::new(pair.refresh_token),
        );
        let doc = CredentialDoc::oauth2(at.clone(), Some(rt.clone()), Some(lifetime), issued);
        m.store_initial(&conn.id, doc).await.unwrap();
        (conn, at, rt)
    }

    pub fn token_requests(&self) -> u64 {
        self.sandbox.stats().token_requests
    }

    pub async fn status(&self, id: &str) -> ConnectionStatus {
        self.store
            .get_connection(&conn_id(id))
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Revokes a refresh token through the sandbox's admin route.
    pub async fn revoke(&self, rt: &SecretString) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/revoke", self.sandbox.base_url()))
            .json(&serde_json::json!({ "refresh_token": rt.expose() }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Whether the sandbox accepts this access token on a CRM route.
    pub async fn accepts(&self, at: &SecretString) -> bool {
        reqwest::Client::new()
            .get(format!(
                "{}/crm/v3/objects/contacts?limit=1",
                self.sandbox.base_url()
            ))
            .bearer_auth(at.expose())
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    }
}

/// A scripted HTTP/1.1 endpoint on loopback: answers every request with the
/// next scripted response (the last one repeats) and counts requests.
pub struct Scripted {
    pub url: String,
    pub hits: Arc<AtomicU64>,
}

/// One scripted answer: status, headers, body.
pub type Answer = (u16, Vec<(&'static str, String)>, String);

pub async fn scripted(responses: Vec<Answer>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = h.fetch_add(1, Ordering::SeqCst) as usize;
            let (status, headers, body) = responses[n.min(responses.len() - 1)].clone();
            tokio::spawn(async move {
                // Read the request head and its body (Content-Length).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
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
                            break;
                        }
                    }
                }
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Scripted { url, hits }
}

pub fn now() -> Timestamp {
    SystemClock.now()
}
