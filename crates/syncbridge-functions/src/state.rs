//! The backends, built once per process from the settings, and what each
//! handler takes of them: [`SchedulerState`], [`WorkerState`] (the inbound
//! and outbound workers), [`RefresherState`]; the webhook receiver keeps the
//! whole [`AppState`] (its own module says what it uses).

use std::sync::Arc;

use syncbridge_core::connector::http::RetryPolicy;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::credentials::CredentialProvider;
use syncbridge_core::events::{EventSink, NoEvents};
use syncbridge_core::pipeline::worker::WorkerDeps;
use syncbridge_core::{Clock, QueueSender, RateLimiter, Store, SystemClock};
use syncbridge_localqueue::LocalQueue;
use syncbridge_sqlite::{OpenMode, SqliteStore};

use crate::settings::Settings;

/// Every backend of the process. Cheap to clone. A handler's router takes
/// the part it uses ([`AppState::scheduler`], [`AppState::worker`],
/// [`AppState::refresher`]).
#[derive(Debug, Clone)]
pub struct AppState {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Queue sends.
    pub queue: Arc<dyn QueueSender>,
    /// Connector definitions.
    pub registry: Arc<Registry>,
    /// Provider budget.
    pub limiter: Arc<dyn RateLimiter>,
    /// Provider authorization.
    pub credentials: Arc<dyn CredentialProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// HTTP client for provider calls.
    pub http: reqwest::Client,
    /// Where operational events go (the notification service when configured).
    pub events: Arc<dyn EventSink>,
    /// The notification service, when configured (its delivery loop runs in every binary).
    pub notify: Option<syncbridge_notify::NotificationService>,
    /// Sealed credentials and token refresh (also behind `credentials`).
    pub credential_manager: syncbridge_credentials::CredentialManager,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] syncbridge_core::StoreError),
    /// The local queue could not be opened.
    #[error("opening the local queue: {0}")]
    Queue(String),
    /// A connector definition is unusable.
    #[error(transparent)]
    Connector(#[from] syncbridge_core::connector::DefinitionError),
    /// An Azure backend could not be set up.
    #[error("azure: {0}")]
    Azure(String),
    /// The credentials configuration is unusable.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The rate-limit configuration is unusable.
    #[error("rate limits: {0}")]
    RateLimit(String),
    /// The notification configuration is unusable.
    #[error("SYNCBRIDGE_NOTIFY_CONFIG: {0}")]
    Notify(String),
}

/// The embedded store of the data dir, with the fault-injection page cap when set.
fn open_sqlite(settings: &Settings, mode: OpenMode) -> Result<SqliteStore, StateError> {
    let store = SqliteStore::open_in_with(&settings.data_dir, mode)?;
    if let Some(pages) = settings.fault_store_max_pages {
        let cap = store.cap_pages_for_fault_injection(pages)?;
        tracing::warn!(
            pages = cap,
            "fault injection: the store is capped (SYNCBRIDGE_FAULT_STORE_MAX_PAGES)"
        );
    }
    Ok(store)
}

/// The notification service when there is somewhere to send events: the
/// operators' routing file, the product's webhook, or both (one outbox).
fn notification_service(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Option<syncbridge_notify::NotificationService>, StateError> {
    let notify_err = |e: syncbridge_notify::NotifyError| StateError::Notify(e.to_string());
    let mut cfg = match &settings.notify_config {
        Some(path) => syncbridge_notify::NotifyConfig::load(path, |k| settings.env.var(k))
            .map_err(notify_err)?,
        None if settings.product_webhook.is_some() => syncbridge_notify::NotifyConfig::default(),
        None => return Ok(None),
    };
    if let Some(p) = &settings.product_webhook {
        cfg = cfg.with_product_webhook(p.url.clone(), p.secret.clone());
    }
    syncbridge_notify::NotificationService::open_in_dir(&settings.data_dir, cfg, clock)
        .map(Some)
        .map_err(notify_err)
}

impl AppState {
    /// The backends the settings select: Cosmos DB, Service Bus and Key Vault
    /// through the app's managed identity (or, for the operator CLI, the
    /// `az login` account: `SYNCBRIDGE_AZURE_CREDENTIAL=developer`) where
    /// configured, the embedded default (SQLite store, local queue, local key
    /// file) otherwise.
    pub async fn from_settings(settings: Settings) -> Result<Self, StateError> {
        let azure = settings.azure.clone();
        let store: Arc<dyn Store> = match &azure.cosmos {
            Some(cs) => {
                let credential =
                    syncbridge_servicebus::entra::credential(azure.credential, azure.client_id)
                        .map_err(|e| StateError::Azure(e.to_string()))?;
                Arc::new(syncbridge_cosmos::CosmosStore::connect(cs, credential).await?)
            }
            None => Arc::new(open_sqlite(&settings, OpenMode::CreateIfMissing)?),
        };
        let queue: Arc<dyn QueueSender> = match &azure.service_bus {
            Some(sb) => Arc::new(
                syncbridge_servicebus::ServiceBusSender::from_settings(sb)
                    .map_err(|e| StateError::Azure(e.to_string()))?,
            ),
            None => Arc::new(
                LocalQueue::open(syncbridge_localqueue::queue_path(&settings.data_dir))
                    .map_err(|e| StateError::Queue(e.to_string()))?,
            ),
        };
        let keys: Option<Arc<dyn syncbridge_core::SecretStore>> = if azure.key_vault {
            Some(Arc::new(
                syncbridge_keyvault::KeyVaultSecretStore::from_vars(|k| settings.env.var(k))
                    .map_err(StateError::Azure)?,
            ))
        } else {
            None
        };
        Self::assemble(settings, store, queue, keys)
    }

    /// The embedded default: SQLite store and local queue under the data dir.
    pub fn embedded(settings: Settings) -> Result<Self, StateError> {
        Self::embedded_with(settings, OpenMode::CreateIfMissing)
    }

    /// The embedded default, creating the store only if `mode` allows: with
    /// [`OpenMode::ExistingOnly`] a data dir without `state.db` is
    /// `StateError::Store(StoreError::NotFound)` and nothing is created.
    pub fn embedded_with(settings: Settings, mode: OpenMode) -> Result<Self, StateError> {
        let store: Arc<dyn Store> = Arc::new(open_sqlite(&settings, mode)?);
        let queue: Arc<dyn QueueSender> = Arc::new(
            LocalQueue::open(syncbridge_localqueue::queue_path(&settings.data_dir))
                .map_err(|e| StateError::Queue(e.to_string()))?,
        );
        Self::assemble(settings, store, queue, None)
    }

    fn assemble(
        settings: Settings,
        store: Arc<dyn Store>,
        queue: Arc<dyn QueueSender>,
        keys: Option<Arc<dyn syncbridge_core::SecretStore>>,
    ) -> Result<Self, StateError> {
        let registry = Registry::load(settings.connectors_dir.as_deref())?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let notify = notification_service(&settings, clock.clone())?;
        if let Some(n) = &notify {
            n.use_stored_rules(store.clone(), syncbridge_notify::STORED_RULES_REFRESH);
        }
        let limits = syncbridge_ratelimit::limits_from_definitions(registry.iter());
        let limiter: Arc<dyn RateLimiter> = match &settings.redis_url {
            Some(url) => {
                let cfg = redis_config(&settings, url)?;
                let l = Arc::new(
                    syncbridge_ratelimit::RedisLimiter::new(&limits, cfg, clock.clone())
                        .map_err(|e| StateError::RateLimit(e.to_string()))?,
                );
                l.spawn_heartbeat(std::time::Duration::from_secs(5));
                l
            }
            None => Arc::new(
                syncbridge_ratelimit::InProcessLimiter::new(&limits, clock.clone())
                    .map_err(|e| StateError::RateLimit(e.to_string()))?,
            ),
        };
        let events: Arc<dyn EventSink> = match &notify {
            Some(n) => Arc::new(n.clone()),
            None => Arc::new(NoEvents),
        };
        let cred = |e: &dyn std::fmt::Display| StateError::Credentials(e.to_string());
        let sealer = Arc::new(match keys {
            Some(k) => syncbridge_credentials::Sealer::new(k),
            None => {
                syncbridge_credentials::Sealer::local(&settings.data_dir).map_err(|e| cred(&e))?
            }
        });
        let clients = syncbridge_credentials::ClientRegistry::from_lookup(registry.names(), |k| {
            settings.env.var(k)
        })
        .map_err(|e| cred(&e))?;
        let credential_manager =
            syncbridge_credentials::CredentialManager::builder(store.clone(), sealer, clients)
                .connectors(registry.clone())
                .events(events.clone())
                .clock(clock.clone())
                .rate_limiter(limiter.clone())
                .build()
                .map_err(|e| cred(&e))?;
        Ok(AppState {
            settings: Arc::new(settings),
            store,
            queue,
            registry: Arc::new(registry),
            limiter,
            credentials: Arc::new(credential_manager.clone()),
            credential_manager,
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the HTTP client builds"),
            events,
            notify,
        })
    }

    /// What the scheduler uses.
    pub fn scheduler(&self) -> SchedulerState {
        SchedulerState {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            events: self.events.clone(),
            lease_for: self.settings.lease_for,
        }
    }

    /// What the inbound and outbound workers use.
    pub fn worker(&self) -> WorkerState {
        WorkerState {
            deps: self.worker_deps(),
            queue: self.queue.clone(),
        }
    }

    /// What the token refresher uses.
    pub fn refresher(&self) -> RefresherState {
        RefresherState {
            credentials: self.credential_manager.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The pieces the sync pipeline needs.
    pub fn worker_deps(&self) -> WorkerDeps {
        WorkerDeps {
            store: self.store.clone(),
            registry: self.registry.clone(),
            limiter: self.limiter.clone(),
            credentials: self.credentials.clone(),
            clock: self.clock.clone(),
            http: self.http.clone(),
            retry: RetryPolicy::default(),
            lease_for: self.settings.lease_for,
            events: self.events.clone(),
        }
    }
}

/// What the scheduler uses: the store, the queue it enqueues jobs on, time,
/// events, and how long the leases it grants last.
#[derive(Debug, Clone)]
pub struct SchedulerState {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Where jobs go.
    pub queue: Arc<dyn QueueSender>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Operational events.
    pub events: Arc<dyn EventSink>,
    /// `SYNCBRIDGE_LEASE_SECS`.
    pub lease_for: std::time::Duration,
}

/// What the inbound and outbound workers use: the pipeline's dependencies
/// and the queue their scheduled retries and follow-up pushes go to.
#[derive(Debug, Clone)]
pub struct WorkerState {
    /// Store, connectors, limiter, credentials, clock, HTTP client, events.
    pub deps: WorkerDeps,
    /// Where retries go.
    pub queue: Arc<dyn QueueSender>,
}

/// What the token refresher uses.
#[derive(Clone)]
pub struct RefresherState {
    /// Sealed credentials and token refresh.
    pub credentials: syncbridge_credentials::CredentialManager,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The limiter's Redis settings: TLS roots from `SYNCBRIDGE_REDIS_CA_FILE`,
/// and Entra tokens of the app's identity as the password with
/// `SYNCBRIDGE_REDIS_AUTH=entra`.
fn redis_config(
    settings: &Settings,
    url: &str,
) -> Result<syncbridge_ratelimit::RedisLimiterConfig, StateError> {
    let mut cfg = syncbridge_ratelimit::RedisLimiterConfig::new(url);
    if let Some(f) = &settings.redis_ca_file {
        cfg.tls_roots_pem = Some(
            std::fs::read(f).map_err(|e| StateError::RateLimit(format!("{}: {e}", f.display())))?,
        );
    }
    if settings.redis_auth == crate::settings::RedisAuthMode::Entra {
        let azure = &settings.azure;
        let credential =
            syncbridge_servicebus::entra::credential(azure.credential, azure.client_id.clone())
                .map_err(|e| StateError::Azure(e.to_string()))?;
        cfg.credentials = Some(Arc::new(EntraRedisCredentials {
            object_id: std::sync::Mutex::new(None),
            tokens: syncbridge_servicebus::entra::TokenCache::new(
                credential,
                syncbridge_servicebus::entra::REDIS_SCOPE,
            ),
        }));
    }
    Ok(cfg)
}

/// Redis credentials from Microsoft Entra: a token for
/// [`syncbridge_servicebus::entra::REDIS_SCOPE`], renewed by the cache five
/// minutes before it expires (the limiter then re-authenticates its live
/// connection with `AUTH`), and as the user the identity's object id, read
/// from the token's `oid` claim (the site's own principal id cannot be
/// passed to it as a setting: the template would refer to itself).
#[derive(Debug)]
struct EntraRedisCredentials {
    /// The last token's object id, with a digest of that token.
    object_id: std::sync::Mutex<Option<(u64, String)>>,
    tokens: syncbridge_servicebus::entra::TokenCache,
}

/// The `oid` claim of a JWT access token (its signature is Entra's and
/// Redis's business: this only picks the user name).
fn token_object_id(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("oid")?.as_str().map(str::to_owned)
}

impl EntraRedisCredentials {
    fn object_id(&self, token: &str) -> Option<String> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut h);
        let digest = h.finish();
        let mut cached = self.object_id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, oid)) = cached.as_ref()
            && *d == digest
        {
            return Some(oid.clone());
        }
        let oid = token_object_id(token)?;
        *cached = Some((digest, oid.clone()));
        Some(oid)
    }
}

#[async_trait::async_trait]
impl syncbridge_ratelimit::RedisCredentials for EntraRedisCredentials {
    async fn current(
        &self,
    ) -> Result<syncbridge_ratelimit::RedisAuth, syncbridge_ratelimit::CredentialsError> {
        let password = self
            .tokens
            .bearer()
            .await
            .map_err(|e| syncbridge_ratelimit::CredentialsError(e.to_string()))?;
        let username = self.object_id(&password).ok_or_else(|| {
            syncbridge_ratelimit::CredentialsError(
                "the Microsoft Entra token has no `oid` claim to use as the Redis user".into(),
            )
        })?;
        Ok(syncbridge_ratelimit::RedisAuth { username, password })
    }
}
