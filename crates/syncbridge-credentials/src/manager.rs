//! [`CredentialManager`]: opens credentials for requests and refreshes OAuth
//! tokens, exactly once per credential at a time across threads and
//! processes.
//!
//! # One refresh at a time
//!
//! A refresh of connection `C` goes through four gates:
//!
//! 1. **In-process single-flight**: a per-connection async mutex. Callers
//!    queue behind it and, once in, re-read the credential: if the one ahead
//!    of them refreshed, they use its token (no token request).
//! 2. **Cross-process lock**: `Store::try_lock("refresh:C", owner, now + lease)`
//!    with a short lease (longer than the token request's timeout). Losers
//!    poll: every `poll_interval` they re-read the credential (done as soon as
//!    the holder saved) and retry the lock (taken over once the lease of a
//!    crashed holder runs out), for at most `lock_wait`.
//! 3. **Re-read after acquiring**: a sibling may have refreshed between our
//!    read and our lock; then we use its token.
//! 4. **Compare-and-swap save**: `put_credential(new, Some(old.version))`.
//!
//! The locked section (token request, seal, save, unlock) runs in a spawned
//! task, so a caller that gives up (its future is dropped) never abandons a
//! refresh between the provider's answer and the save.
//!
//! # The crash window
//!
//! With rotating single-use refresh tokens, the new refresh token exists
//! only in the holder's memory from the moment the provider processes the
//! request until the CAS save commits. A process killed inside that window
//! (network round trip + seal + one SQLite write: milliseconds) loses it:
//! the store still holds the old, now used, refresh token; the next refresh
//! gets `invalid_grant`, finds the credential unchanged, and marks the
//! connection `needs_reauth` with an event. No client-side design can close
//! this window without the provider's help (a reuse grace period); this one
//! keeps it minimal: the data key is loaded before the request, nothing but
//! sealing happens between the response and the save, and a save that fails
//! on a busy store is retried. A kill anywhere else (waiting for the lock,
//! before the request, after the save) loses nothing: the lock's lease
//! expires and the next caller refreshes normally.
//!
//! # Answers that never come
//!
//! A token request whose answer is lost (timeout, connection dropped, a
//! gateway's 5xx) has an unknown outcome: the provider may have rotated the
//! refresh token and the answer never reached us, the same window as a kill.
//! So token requests get a generous timeout of their own (`http_timeout`,
//! 60 s, apart from the provider API's): a slow provider's answer is waited
//! for, not abandoned. After an unknown outcome the credential is re-read from
//! the store before anything else (a sibling may have saved newer tokens), and
//! only then is the request repeated, at once and still under the lock: a
//! provider with a reuse grace period (Okta; Auth0's reuse interval) answers a
//! prompt repeat with the new tokens. A provider with strict reuse detection
//! revokes the grant on the repeat, but there the grant was lost with the
//! answer: the repeat finds out now (`needs_reauth`, an event) rather than at
//! the next refresh. What remains is an answer later than `http_timeout`, or
//! lost on the way, from a provider without a grace period.
//!
//! # Errors
//!
//! - `invalid_grant` → re-read (twice, a poll apart): if the credential moved
//!   on, a sibling rotated and we use its token; otherwise the credential is
//!   marked (inside the ciphertext, and its sweep metadata cleared), the
//!   connection set to `needs_reauth`, [`Event::ConnectionNeedsReauth`]
//!   raised, and from then on `authorize` answers `NeedsReauth` without any
//!   network call.
//! - 5xx, 429, timeouts → [`CredentialError::Transient`];
//!   that connection's on-demand and sweep refreshes back off for the
//!   provider's `Retry-After` (else `transient_backoff`), and `authorize`
//!   keeps handing out the current token while it is unexpired.
//! - `invalid_client` / `unauthorized_client`, and answers that are not
//!   OAuth at all (a 404, an HTML page: a wrong token URL) → one
//!   [`Event::ProviderCredentialsRejected`] per provider app per process,
//!   [`CredentialError::Permanent`], and no token requests for that app for
//!   `client_backoff`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::connector::definition::AuthDef;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::credentials::{AuthValue, CredentialError, CredentialProvider};
use syncbridge_core::events::{Event, EventSink, NoEvents};
use syncbridge_core::model::{Connection, ConnectionStatus};
use syncbridge_core::store::SealedCredential;
use syncbridge_core::{
    Clock, ConnectionId, Decision, RateLimiter, SecretString, Store, StoreError, SystemClock,
    Timestamp,
};

use crate::client::{ClientRegistry, ENV_PREFIX, OAuthClient, env_provider_segment};
use crate::doc::{CredentialDoc, OpenCredential, Payload, ReauthMark, sweep_expiry};
use crate::margin;
use crate::sealer::{SealError, Sealer};
use crate::token::{self, Outcome, TokenError};

/// Tunables. `Default` is the production setting.
#[derive(Clone)]
pub struct RefreshConfig {
    /// Cross-process refresh lock lease. Must exceed `http_timeout` by a
    /// wide margin: a holder outliving its lease lets a sibling in.
    pub lock_lease: Duration,
    /// How long a caller waits for another holder before giving up
    /// (it still gets the current token if that is unexpired).
    pub lock_wait: Duration,
    /// Re-read / lock retry interval while waiting (plus up to 50 % jitter).
    pub poll_interval: Duration,
    /// Token request timeout (connect + response), apart from the provider
    /// API's: generous, because a provider that answers after we gave up may
    /// have spent the refresh token we still hold (module docs).
    pub http_timeout: Duration,
    /// Longest wait for the rate limiter before one token request.
    pub limiter_wait: Duration,
    /// Idle credentials are refreshed at least this often by the sweep.
    pub idle_refresh_after: Duration,
    /// After `invalid_client`, no token requests for that app for this long.
    pub client_backoff: Duration,
    /// After a transient failure, no on-demand or sweep refresh of that
    /// connection for this long (or the provider's `Retry-After`, up to
    /// `max_transient_backoff`); `authorize` keeps the unexpired token.
    /// Forced refreshes ([`RefreshTrigger::StaleVersion`]) ignore it.
    pub transient_backoff: Duration,
    /// Upper bound on a `Retry-After` honoured as backoff.
    pub max_transient_backoff: Duration,
    /// A token is "usable" while it has this much life left.
    pub expiry_skew: Duration,
    /// Sweep: refreshes running at once.
    pub sweep_concurrency: usize,
    /// Sweep: each refresh starts after a random delay in `[0, sweep_jitter)`.
    pub sweep_jitter: Duration,
    /// Test hook: called at each [`RefreshPhase`]; may ask for a pause.
    #[doc(hidden)]
    pub phase_hook: Option<PhaseHook>,
}

/// Test hook type: `(connection, phase) -> pause`.
pub type PhaseHook = Arc<dyn Fn(&ConnectionId, RefreshPhase) -> Option<Duration> + Send + Sync>;

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            lock_lease: Duration::from_secs(150),
            lock_wait: Duration::from_secs(20),
            poll_interval: Duration::from_millis(50),
            http_timeout: Duration::from_secs(60),
            limiter_wait: Duration::from_secs(10),
            idle_refresh_after: margin::IDLE_REFRESH,
            client_backoff: Duration::from_secs(300),
            transient_backoff: Duration::from_secs(30),
            max_transient_backoff: Duration::from_secs(600),
            expiry_skew: Duration::from_secs(30),
            sweep_concurrency: 8,
            sweep_jitter: Duration::from_secs(2),
            phase_hook: None,
        }
    }
}

impl fmt::Debug for RefreshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshConfig")
            .field("lock_lease", &self.lock_lease)
            .field("lock_wait", &self.lock_wait)
            .field("poll_interval", &self.poll_interval)
            .field("http_timeout", &self.http_timeout)
            .field("limiter_wait", &self.limiter_wait)
            .field("idle_refresh_after", &self.idle_refresh_after)
            .field("client_backoff", &self.client_backoff)
            .field("transient_backoff", &self.transient_backoff)
            .field("max_transient_backoff", &self.max_transient_backoff)
            .field("expiry_skew", &self.expiry_skew)
            .field("sweep_concurrency", &self.sweep_concurrency)
            .field("sweep_jitter", &self.sweep_jitter)
            .field("phase_hook", &self.phase_hook.is_some())
            .finish()
    }
}

/// Points inside a refresh where the test hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPhase {
    /// The cross-process lock is held; the token request is next.
    BeforeRequest,
    /// The provider answered with new tokens; the save is next (the crash window).
    TokenReceived,
    /// The new credential is saved.
    Saved,
}

/// What asks for a refresh; decides whether one is still needed after
/// waiting for the locks (another caller may have done it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTrigger {
    /// The access token is within its margin (the on-demand backstop).
    Due,
    /// The provider answered 401 to this access token.
    Rejected(SecretString),
    /// Refresh unless the stored credential moved past this version.
    StaleVersion(i64),
    /// The sweep at `now`: due by margin, or idle for `idle_refresh_after`.
    Sweep {
        /// The sweep's instant.
        now: Timestamp,
    },
}

impl RefreshTrigger {
    /// Triggers that need not wait for another holder while the current
    /// token still works.
    fn may_skip_when_busy(&self) -> bool {
        matches!(self, RefreshTrigger::Due | RefreshTrigger::Sweep { .. })
    }
}

/// The token a refresh call ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// The connection.
    pub connection: ConnectionId,
    /// The access token to use.
    pub access_token: SecretString,
    /// The stored credential version it came from.
    pub version: i64,
    /// Its expiry.
    pub expires_at: Option<Timestamp>,
    /// Whether this call made the token request (false: someone else had
    /// refreshed already, or no refresh was needed).
    pub performed: bool,
}

/// Whether the token an outcome reports came from this call's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// This call made the token request.
    Performed,
    /// Someone else had refreshed already, or no refresh was needed.
    Adopted,
}

/// A refresh that passed every check before its token request
/// (`Inner::preflight`).
struct Ready<'a> {
    /// The credential as read under the lock.
    cur: OpenCredential,
    /// The connection as stored.
    stored: Connection,
    refresh_token: SecretString,
    scope: Option<String>,
    /// The stored API base URL (kept when the answer names none).
    base_url: Option<String>,
    /// The token-response field naming the API base URL (`auth.base_url_from`).
    base_url_from: Option<String>,
    client: &'a OAuthClient,
    url: url::Url,
    style: crate::client::AuthStyle,
    /// The key a token URL that is no OAuth endpoint is suspended under.
    url_key: String,
}

impl Ready<'_> {
    fn endpoint(&self) -> token::Endpoint<'_> {
        token::Endpoint {
            client: self.client,
            url: &self.url,
            style: self.style,
        }
    }
}

/// What `Inner::preflight` decided.
enum Preflight<'a> {
    /// Send the token request.
    Ready(Box<Ready<'a>>),
    /// No request: this is the answer.
    Done(RefreshOutcome),
}

/// What the token request brought.
enum Requested {
    /// The provider's answer.
    Answer(Result<token::Tokens, TokenError>),
    /// A sibling's refresh, saved while our request's outcome was unknown.
    Adopted(RefreshOutcome),
}

/// Counters since the manager was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CounterSnapshot {
    /// Requests sent to token endpoints.
    pub token_requests: u64,
    /// Refreshes saved (new tokens persisted).
    pub refreshes: u64,
    /// Refresh calls satisfied by someone else's refresh (no request).
    pub adopted: u64,
    /// Refresh calls that found another holder of the cross-process lock.
    pub lock_waits: u64,
    /// Connections this manager marked `needs_reauth`.
    pub needs_reauth: u64,
    /// `ProviderCredentialsRejected` events raised.
    pub invalid_client_alerts: u64,
    /// Token requests that failed transiently.
    pub transient_failures: u64,
    /// New tokens that could not be saved (CAS lost or store down).
    pub lost_saves: u64,
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    refreshes: AtomicU64,
    adopted: AtomicU64,
    lock_waits: AtomicU64,
    needs_reauth: AtomicU64,
    invalid_client_alerts: AtomicU64,
    transient_failures: AtomicU64,
    lost_saves: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Builds a [`CredentialManager`].
pub struct CredentialManagerBuilder {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    clients: ClientRegistry,
    connectors: Option<Registry>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<dyn RateLimiter>>,
    config: RefreshConfig,
    rng: Option<StdRng>,
}

impl CredentialManagerBuilder {
    /// Connector definitions, for the sweep (default: the built-ins).
    pub fn connectors(mut self, r: Registry) -> Self {
        self.connectors = Some(r);
        self
    }
    /// Where `ConnectionNeedsReauth` / `ProviderCredentialsRejected` go (default: discarded).
    pub fn events(mut self, e: Arc<dyn EventSink>) -> Self {
        self.events = e;
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }
    /// A rate limiter every token request is counted against (one unit of
    /// the connection's budget for its provider).
    pub fn rate_limiter(mut self, l: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(l);
        self
    }
    /// Tunables.
    pub fn config(mut self, c: RefreshConfig) -> Self {
        self.config = c;
        self
    }
    /// Seeds the jitter generator (default: from the OS).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng = Some(StdRng::seed_from_u64(seed));
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    /// The HTTP client cannot be built, or the lease is not comfortably
    /// longer than the HTTP timeout.
    pub fn build(self) -> Result<CredentialManager, CredentialError> {
        let c = &self.config;
        if c.lock_lease < c.http_timeout * 2 {
            return Err(CredentialError::Permanent(format!(
                "lock_lease ({:?}) must be at least twice http_timeout ({:?})",
                c.lock_lease, c.http_timeout
            )));
        }
        let http = token::http_client(c.http_timeout)
            .map_err(|e| CredentialError::Permanent(format!("HTTP client: {e}")))?;
        let owner = format!(
            "{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        );
        Ok(CredentialManager {
            inner: Arc::new(Inner {
                store: self.store,
                sealer: self.sealer,
                clients: self.clients,
                connectors: self.connectors.unwrap_or_else(Registry::builtin),
                events: self.events,
                clock: self.clock,
                limiter: self.limiter,
                http,
                owner,
                attempts: AtomicU64::new(0),
                gates: Mutex::new(HashMap::new()),
                alerted: Mutex::new(HashSet::new()),
                suspended: Mutex::new(HashMap::new()),
                backoff: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                rng: Mutex::new(
                    self.rng
                        .unwrap_or_else(|| StdRng::from_rng(&mut rand::rng())),
                ),
                config: self.config,
            }),
        })
    }
}

/// Opens credentials and refreshes tokens. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CredentialManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) clients: ClientRegistry,
    pub(crate) connectors: Registry,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) clock: Arc<dyn Clock>,
    limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) http: reqwest::Client,
    owner: String,
    attempts: AtomicU64,
    gates: Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>,
    alerted: Mutex<HashSet<String>>,
    suspended: Mutex<HashMap<String, Instant>>,
    backoff: Mutex<HashMap<ConnectionId, Instant>>,
    counters: Counters,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) config: RefreshConfig,
}

impl fmt::Debug for CredentialManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialManager")
            .field("owner", &self.inner.owner)
            .field("store", &self.inner.store)
            .field("sealer", &self.inner.sealer)
            .field("clients", &self.inner.clients)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_err(e: StoreError) -> CredentialError {
    match e {
        StoreError::Unavailable(_) | StoreError::Conflict(_) => {
            CredentialError::Transient(e.to_string())
        }
        _ => CredentialError::Permanent(e.to_string()),
    }
}

fn seal_err(e: SealError) -> CredentialError {
    match e {
        SealError::SecretStore(syncbridge_core::secrets::SecretStoreError::Unavailable(_)) => {
            CredentialError::Transient(e.to_string())
        }
        _ => CredentialError::Permanent(e.to_string()),
    }
}

fn not_found(id: &ConnectionId) -> CredentialError {
    CredentialError::Permanent(format!("no credentials stored for connection {id}"))
}

impl CredentialManager {
    /// Starts a builder. Everything else has defaults: built-in connector
    /// definitions, no events, the system clock, no rate limiter,
    /// [`RefreshConfig::default`].
    pub fn builder(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        clients: ClientRegistry,
    ) -> CredentialManagerBuilder {
        CredentialManagerBuilder {
            store,
            sealer,
            clients,
            connectors: None,
            events: Arc::new(NoEvents),
            clock: Arc::new(SystemClock),
            limiter: None,
            config: RefreshConfig::default(),
            rng: None,
        }
    }

    /// Counters since the manager was built.
    pub fn counters(&self) -> CounterSnapshot {
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            token_requests: g(&c.token_requests),
            refreshes: g(&c.refreshes),
            adopted: g(&c.adopted),
            lock_waits: g(&c.lock_waits),
            needs_reauth: g(&c.needs_reauth),
            invalid_client_alerts: g(&c.invalid_client_alerts),
            transient_failures: g(&c.transient_failures),
            lost_saves: g(&c.lost_saves),
        }
    }

    /// The sealer.
    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.inner.sealer
    }

    /// Seals and saves a connection's credential (a new connection, or a
    /// person re-authorizing: an existing credential is replaced, and any
    /// re-authorization mark with it). Returns the stored version. Does not
    /// change the connection's status: see [`reauthorize`](Self::reauthorize).
    ///
    /// # Errors
    /// Store or secret store failures; a concurrent writer (retry).
    pub async fn store_initial(
        &self,
        connection: &ConnectionId,
        doc: CredentialDoc,
    ) -> Result<i64, CredentialError> {
        let i = &self.inner;
        let existing = i
            .store
            .get_credential(connection)
            .await
            .map_err(store_err)?;
        let refreshed_at = match &doc {
            CredentialDoc::OAuth2 { issued_at, .. } => *issued_at,
            _ => i.clock.now(),
        };
        let version = existing.as_ref().map_or(1, |e| e.version + 1);
        let payload = Payload { doc, reauth: None };
        let sealed = i.seal(connection, &payload, version, refreshed_at).await?;
        let ok = i
            .store
            .put_credential(&sealed, existing.as_ref().map(|e| e.version))
            .await
            .map_err(store_err)?;
        if !ok {
            return Err(CredentialError::Transient(format!(
                "credential of {connection} changed concurrently"
            )));
        }
        tracing::info!(connection = %connection, version, "stored credential");
        Ok(version)
    }

    /// [`store_initial`](Self::store_initial), then sets the connection back
    /// to `Active` if it was `NeedsReauth`.
    ///
    /// # Errors
    /// As `store_initial`; the connection does not exist.
    pub async fn reauthorize(
        &self,
        connection: &ConnectionId,
        doc: CredentialDoc,
    ) -> Result<i64, CredentialError> {
        let store = &self.inner.store;
        let Some(mut conn) = store.get_connection(connection).await.map_err(store_err)? else {
            return Err(CredentialError::Permanent(format!(
                "unknown connection {connection}"
            )));
        };
        let v = self.store_initial(connection, doc).await?;
        if conn.status == ConnectionStatus::NeedsReauth {
            conn.status = ConnectionStatus::Active;
            store.put_connection(&conn).await.map_err(store_err)?;
        }
        Ok(v)
    }

    /// The stored credential, opened (`None` if there is none).
    ///
    /// # Errors
    /// Store or secret-store failures; a tampered blob.
    pub async fn open(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<OpenCredential>, CredentialError> {
        self.inner.load(connection).await
    }

    /// Refreshes the OAuth credential of `conn` if `trigger` still calls for
    /// it once the locks are held; see the module docs. Runs in its own task:
    /// dropping this future does not interrupt a refresh in flight.
    ///
    /// # Errors
    /// [`CredentialError::NeedsReauth`] (marked now or before),
    /// [`CredentialError::Transient`] (try later), or
    /// [`CredentialError::Permanent`] (no client configured, not OAuth, …).
    pub async fn refresh(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
        trigger: RefreshTrigger,
    ) -> Result<RefreshOutcome, CredentialError> {
        let inner = self.inner.clone();
        let (conn, def) = (conn.clone(), def.clone());
        tokio::spawn(async move { inner.refresh(&conn, &def, trigger).await })
            .await
            .map_err(|e| CredentialError::Transient(format!("refresh task failed: {e}")))?
    }
}

impl Inner {
    pub(crate) async fn seal(
        &self,
        connection: &ConnectionId,
        payload: &Payload,
        version: i64,
        refreshed_at: Timestamp,
    ) -> Result<SealedCredential, CredentialError> {
        let json = serde_json::to_vec(payload).expect("credential payload serializes");
        let s = self
            .sealer
            .seal(connection, &json)
            .await
            .map_err(seal_err)?;
        Ok(SealedCredential {
            connection: connection.clone(),
            version,
            key_version: s.key_version,
            nonce: s.nonce,
            ciphertext: s.ciphertext,
            expires_at: sweep_expiry(payload, self.config.idle_refresh_after),
            refreshed_at,
            sweep_at: margin::sweep_at(
                sweep_expiry(payload, self.config.idle_refresh_after),
                refreshed_at,
                self.config.idle_refresh_after,
            ),
        })
    }

    pub(crate) async fn open_sealed(
        &self,
        sc: SealedCredential,
    ) -> Result<OpenCredential, CredentialError> {
        let plain = self
            .sealer
            .open(&sc.connection, &sc.key_version, &sc.nonce, &sc.ciphertext)
            .await
            .map_err(|e| {
                tracing::error!(connection = %sc.connection, error = %e, "cannot open credential");
                seal_err(e)
            })?;
        // serde_json's messages can quote values: report only the position.
        let p: Payload = serde_json::from_slice(&plain).map_err(|e| {
            CredentialError::Permanent(format!(
                "credential of {} is not a credential document (line {}, column {})",
                sc.connection,
                e.line(),
                e.column()
            ))
        })?;
        Ok(OpenCredential {
            connection: sc.connection,
            version: sc.version,
            key_version: sc.key_version,
            doc: p.doc,
            needs_reauth: p.reauth,
            meta_expires_at: sc.expires_at,
            refreshed_at: sc.refreshed_at,
        })
    }

    pub(crate) async fn load(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<OpenCredential>, CredentialError> {
        match self.store.get_credential(id).await.map_err(store_err)? {
            Some(sc) => self.open_sealed(sc).await.map(Some),
            None => Ok(None),
        }
    }

    async fn load_required(&self, id: &ConnectionId) -> Result<OpenCredential, CredentialError> {
        self.load(id).await?.ok_or_else(|| not_found(id))
    }

    fn wants(&self, cur: &OpenCredential, trigger: &RefreshTrigger, now: Timestamp) -> bool {
        match trigger {
            RefreshTrigger::Due => match &cur.doc {
                CredentialDoc::OAuth2 {
                    issued_at,
                    expires_at,
                    ..
                } => margin::is_due(*issued_at, *expires_at, now),
                _ => false,
            },
            RefreshTrigger::Rejected(tok) => cur
                .doc
                .access_token()
                .is_some_and(|a| a.expose() == tok.expose()),
            RefreshTrigger::StaleVersion(v) => cur.version <= *v,
            RefreshTrigger::Sweep { now } => margin::sweep_due(
                cur.meta_expires_at,
                cur.refreshed_at,
                *now,
                self.config.idle_refresh_after,
            ),
        }
    }

    fn usable(&self, cur: &OpenCredential, now: Timestamp) -> bool {
        margin::usable(cur.doc.expires_at(), now, self.config.expiry_skew)
    }

    fn outcome(
        &self,
        cur: &OpenCredential,
        refresh: Refresh,
    ) -> Result<RefreshOutcome, CredentialError> {
        let performed = refresh == Refresh::Performed;
        if cur.needs_reauth.is_some() {
            return Err(CredentialError::NeedsReauth);
        }
        let Some(access_token) = cur.doc.access_token() else {
            return Err(CredentialError::Permanent(format!(
                "credential of {} is {}, not OAuth",
                cur.connection,
                cur.doc.kind()
            )));
        };
        if !performed {
            bump(&self.counters.adopted);
        }
        Ok(RefreshOutcome {
            connection: cur.connection.clone(),
            access_token: access_token.clone(),
            version: cur.version,
            expires_at: cur.doc.expires_at(),
            performed,
        })
    }

    fn gate(&self, id: &ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut g = lock(&self.gates);
        if g.len() > 4096 {
            g.retain(|_, m| Arc::strong_count(m) > 1);
        }
        g.entry(id.clone()).or_default().clone()
    }

    fn poll_delay(&self) -> Duration {
        let p = self.config.poll_interval;
        let extra = lock(&self.rng).random_range(0.0..0.5);
        p + p.mul_f64(extra)
    }

    async fn phase(&self, id: &ConnectionId, phase: RefreshPhase) {
        if let Some(hook) = &self.config.phase_hook
            && let Some(pause) = hook(id, phase)
        {
            tokio::time::sleep(pause).await;
        }
    }

    async fn refresh(
        self: &Arc<Self>,
        conn: &Connection,
        def: &ConnectorDef,
        trigger: RefreshTrigger,
    ) -> Result<RefreshOutcome, CredentialError> {
        if !matches!(trigger, RefreshTrigger::StaleVersion(_))
            && let Some(left) = self.backoff_left(&conn.id)
        {
            return Err(CredentialError::Transient(format!(
                "token endpoint of {} failed recently; next refresh of {} in {} s",
                conn.provider,
                conn.id,
                left.as_secs().max(1)
            )));
        }
        let gate = self.gate(&conn.id);
        let _in_process = match gate.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) => {
                if trigger.may_skip_when_busy() {
                    let cur = self.load_required(&conn.id).await?;
                    if cur.needs_reauth.is_none() && self.usable(&cur, self.clock.now()) {
                        return self.outcome(&cur, Refresh::Adopted);
                    }
                }
                gate.lock_owned().await
            }
        };
        let mut cur = self.load_required(&conn.id).await?;
        if !matches!(cur.doc, CredentialDoc::OAuth2 { .. }) {
            return self.outcome(&cur, Refresh::Adopted);
        }
        if cur.needs_reauth.is_some() || !self.wants(&cur, &trigger, self.clock.now()) {
            return self.outcome(&cur, Refresh::Adopted);
        }
        let lock_name = format!("refresh:{}", conn.id);
        let owner = format!(
            "{}:{}",
            self.owner,
            self.attempts.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        let mut waited = false;
        loop {
            let now = self.clock.now();
            let got = self
                .store
                .try_lock(&lock_name, &owner, now.add(self.config.lock_lease), now)
                .await
                .map_err(store_err)?;
            if got {
                break;
            }
            if !waited {
                waited = true;
                bump(&self.counters.lock_waits);
                tracing::debug!(connection = %conn.id, "refresh lock held elsewhere; waiting");
            }
            if trigger.may_skip_when_busy() && self.usable(&cur, now) {
                return self.outcome(&cur, Refresh::Adopted);
            }
            if started.elapsed() >= self.config.lock_wait {
                return if self.usable(&cur, now) {
                    self.outcome(&cur, Refresh::Adopted)
                } else {
                    Err(CredentialError::Transient(format!(
                        "refresh of {} is held by another instance",
                        conn.id
                    )))
                };
            }
            tokio::time::sleep(self.poll_delay()).await;
            cur = self.load_required(&conn.id).await?;
            if cur.needs_reauth.is_some() || !self.wants(&cur, &trigger, self.clock.now()) {
                return self.outcome(&cur, Refresh::Adopted);
            }
        }
        let result = self.refresh_locked(conn, def, &trigger).await;
        if let Err(e) = self.store.unlock(&lock_name, &owner).await {
            tracing::warn!(connection = %conn.id, error = %e, "could not release refresh lock; its lease will expire");
        }
        result
    }

    /// The part under the cross-process lock, in phases: [`Self::preflight`]
    /// (everything that can refuse before the request), [`Self::request`]
    /// (the token request, repeated once when its outcome is unknown), then
    /// [`Self::keep_tokens`] or [`Self::on_token_error`].
    async fn refresh_locked(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
        trigger: &RefreshTrigger,
    ) -> Result<RefreshOutcome, CredentialError> {
        let ready = match self.preflight(conn, def, trigger).await? {
            Preflight::Ready(r) => r,
            Preflight::Done(outcome) => return Ok(outcome),
        };
        match self.request(&ready).await? {
            Requested::Answer(Ok(t)) => self.keep_tokens(&ready, t).await,
            Requested::Answer(Err(e)) => self.on_token_error(&ready, e).await,
            Requested::Adopted(outcome) => Ok(outcome),
        }
    }

    /// Re-reads the credential and checks everything that can refuse a
    /// refresh before the token request: the connection's status, the
    /// credential's kind, the refresh token, the OAuth client and its token
    /// URL (and whether either was rejected before), the data key and the
    /// provider's budget.
    async fn preflight<'a>(
        &'a self,
        conn: &Connection,
        def: &ConnectorDef,
        trigger: &RefreshTrigger,
    ) -> Result<Preflight<'a>, CredentialError> {
        // Re-read after acquiring: a sibling may have refreshed meanwhile.
        let cur = self.load_required(&conn.id).await?;
        if cur.needs_reauth.is_some() || !self.wants(&cur, trigger, self.clock.now()) {
            return self.outcome(&cur, Refresh::Adopted).map(Preflight::Done);
        }
        let Some(stored) = self
            .store
            .get_connection(&conn.id)
            .await
            .map_err(store_err)?
        else {
            return Err(CredentialError::Permanent(format!(
                "unknown connection {}",
                conn.id
            )));
        };
        match stored.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::NeedsReauth => return Err(CredentialError::NeedsReauth),
            ConnectionStatus::Disabled => {
                return Err(CredentialError::Permanent(format!(
                    "connection {} is disabled",
                    conn.id
                )));
            }
        }
        let CredentialDoc::OAuth2 {
            refresh_token,
            scope,
            base_url,
            ..
        } = &cur.doc
        else {
            return self.outcome(&cur, Refresh::Adopted).map(Preflight::Done);
        };
        let Some(refresh_token) = refresh_token.clone() else {
            self.mark_needs_reauth(&stored, &cur, "no_refresh_token")
                .await?;
            return Err(CredentialError::NeedsReauth);
        };
        let scope = scope.clone();
        let base_url = base_url.clone();
        let base_url_from = match &def.auth {
            AuthDef::Oauth2 { base_url_from, .. } => base_url_from.clone(),
            _ => None,
        };
        let client = self.usable_client(&stored)?;
        let url = client
            .token_url_for(&stored, def)
            .map_err(CredentialError::Permanent)?;
        // A wrong token URL may be one connection's (relative to its base URL).
        let url_key = format!("{}@{url}", client.app_key());
        if self.suspended(&url_key) {
            return Err(CredentialError::Permanent(format!(
                "token endpoint of provider {} at {url} is not an OAuth endpoint; refreshes there paused",
                stored.provider
            )));
        }
        // Everything that could fail after the provider rotates the refresh
        // token is done before the request: the data key is loaded now.
        self.sealer.current_version().await.map_err(seal_err)?;
        self.wait_for_budget(&stored).await?;
        Ok(Preflight::Ready(Box::new(Ready {
            cur,
            stored,
            refresh_token,
            scope,
            base_url,
            base_url_from,
            client,
            url,
            style: client.auth_style_for(def),
            url_key,
        })))
    }

    /// The provider's OAuth client, unless none is configured or the token
    /// endpoint rejected it.
    fn usable_client(&self, stored: &Connection) -> Result<&OAuthClient, CredentialError> {
        let Some(client) = self.clients.get(&stored.provider) else {
            let p = format!("{ENV_PREFIX}{}", env_provider_segment(&stored.provider));
            return Err(CredentialError::Permanent(format!(
                "no OAuth client configured for provider {} (set {p}_CLIENT_ID and {p}_CLIENT_SECRET)",
                stored.provider
            )));
        };
        if self.suspended(&client.app_key()) {
            return Err(CredentialError::Permanent(format!(
                "OAuth client of provider {} was rejected (invalid_client); refreshes paused",
                stored.provider
            )));
        }
        Ok(client)
    }

    /// The token request. When its outcome is unknown the provider may have
    /// rotated the token and lost us the answer: the store first (a sibling's
    /// saved result is adopted), then one prompt repeat (module docs).
    async fn request(&self, r: &Ready<'_>) -> Result<Requested, CredentialError> {
        let id = &r.cur.connection;
        self.phase(id, RefreshPhase::BeforeRequest).await;
        bump(&self.counters.token_requests);
        let from = r.base_url_from.as_deref();
        let result = token::refresh(&self.http, r.endpoint(), &r.refresh_token, from).await;
        let Err(TokenError::Transient {
            outcome: Outcome::Unknown,
            what,
            ..
        }) = &result
        else {
            return Ok(Requested::Answer(result));
        };
        let again = self.load_required(id).await?;
        if again.version != r.cur.version {
            return self
                .outcome(&again, Refresh::Adopted)
                .map(Requested::Adopted);
        }
        tracing::warn!(connection = %id, reason = %what, "token request outcome unknown; repeating it at once");
        self.wait_for_budget(&r.stored).await?;
        bump(&self.counters.token_requests);
        let result = token::refresh(&self.http, r.endpoint(), &r.refresh_token, from).await;
        Ok(Requested::Answer(result))
    }

    /// Seals and saves (compare-and-swap) the tokens a refresh returned.
    async fn keep_tokens(
        &self,
        r: &Ready<'_>,
        t: token::Tokens,
    ) -> Result<RefreshOutcome, CredentialError> {
        let id = &r.cur.connection;
        self.phase(id, RefreshPhase::TokenReceived).await;
        let now = self.clock.now();
        let rotated = t.refresh_token.is_some();
        let payload = Payload {
            doc: CredentialDoc::OAuth2 {
                access_token: t.access_token,
                // A response without a refresh token keeps the old one.
                refresh_token: t.refresh_token.or_else(|| Some(r.refresh_token.clone())),
                expires_at: t.expires_in.map(|d| now.add(d)),
                issued_at: now,
                scope: t.scope.or_else(|| r.scope.clone()),
                base_url: t.base_url.or_else(|| r.base_url.clone()),
            },
            reauth: None,
        };
        let sealed = self.seal(id, &payload, r.cur.version + 1, now).await?;
        if !self.save(&sealed, r.cur.version).await? {
            bump(&self.counters.lost_saves);
            tracing::warn!(connection = %id, "credential changed during the refresh; the new tokens were not saved");
            let again = self.load_required(id).await?;
            return self.outcome(&again, Refresh::Adopted);
        }
        bump(&self.counters.refreshes);
        self.clear_rejection(r.client);
        lock(&self.backoff).remove(id);
        tracing::info!(connection = %id, version = sealed.version, rotated, "refreshed access token");
        self.phase(id, RefreshPhase::Saved).await;
        let opened = OpenCredential {
            connection: id.clone(),
            version: sealed.version,
            key_version: sealed.key_version,
            doc: payload.doc,
            needs_reauth: None,
            meta_expires_at: sealed.expires_at,
            refreshed_at: now,
        };
        self.outcome(&opened, Refresh::Performed)
    }

    /// What a refused or failed token request means for the credential,
    /// the client and the caller.
    async fn on_token_error(
        &self,
        r: &Ready<'_>,
        e: TokenError,
    ) -> Result<RefreshOutcome, CredentialError> {
        let (id, provider) = (&r.cur.connection, &r.stored.provider);
        match e {
            TokenError::InvalidGrant => {
                // A sibling may have rotated the token under a stale view
                // (its lease ran out mid-refresh): look twice before giving up.
                for attempt in 0..2 {
                    if attempt > 0 {
                        tokio::time::sleep(self.poll_delay()).await;
                    }
                    let again = self.load_required(id).await?;
                    if again.version != r.cur.version {
                        tracing::info!(connection = %id, "invalid_grant, but a sibling had rotated the token; using it");
                        return self.outcome(&again, Refresh::Adopted);
                    }
                }
                self.mark_needs_reauth(&r.stored, &r.cur, "invalid_grant")
                    .await?;
                Err(CredentialError::NeedsReauth)
            }
            TokenError::InvalidClient(code) => {
                self.reject_client(r.client, &r.client.app_key(), &code)
                    .await;
                Err(CredentialError::Permanent(format!(
                    "OAuth client of provider {provider} rejected by the token endpoint ({code})"
                )))
            }
            TokenError::NotOAuth(what) => {
                self.reject_client(r.client, &r.url_key, &format!("token_url: {what}"))
                    .await;
                Err(CredentialError::Permanent(format!(
                    "token endpoint of {provider} at {}: {what}",
                    r.url
                )))
            }
            TokenError::Transient {
                status,
                retry_after,
                what,
                ..
            } => {
                bump(&self.counters.transient_failures);
                let pause = retry_after
                    .unwrap_or(self.config.transient_backoff)
                    .min(self.config.max_transient_backoff);
                lock(&self.backoff).insert(id.clone(), Instant::now() + pause);
                tracing::warn!(connection = %id, status, retry_after_ms = retry_after.map(|d| d.as_millis() as u64), reason = %what, "token refresh failed; will retry");
                Err(CredentialError::Transient(format!(
                    "token endpoint of {provider}: {what}"
                )))
            }
            TokenError::Refused(code) => {
                tracing::error!(connection = %id, code = %code, "token endpoint refused the refresh");
                Err(CredentialError::Permanent(format!(
                    "token endpoint of {provider} refused the refresh ({code})"
                )))
            }
        }
    }

    /// CAS save of freshly obtained tokens, retried while the store is busy
    /// (the new refresh token exists nowhere else).
    async fn save(
        &self,
        sealed: &SealedCredential,
        expected: i64,
    ) -> Result<bool, CredentialError> {
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.put_credential(sealed, Some(expected)).await {
                Ok(true) => return Ok(true),
                Ok(false) => {
                    // A retried write may have landed before its error.
                    let now = self
                        .store
                        .get_credential(&sealed.connection)
                        .await
                        .map_err(store_err)?;
                    return Ok(now.is_some_and(|n| {
                        n.version == sealed.version && n.ciphertext == sealed.ciphertext
                    }));
                }
                Err(StoreError::Unavailable(e)) if attempt < 8 => {
                    tracing::warn!(connection = %sealed.connection, error = %e, attempt, "store busy while saving refreshed tokens; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    bump(&self.counters.lost_saves);
                    tracing::error!(connection = %sealed.connection, error = %e, "could not save refreshed tokens");
                    return Err(store_err(e));
                }
            }
        }
    }

    async fn wait_for_budget(&self, conn: &Connection) -> Result<(), CredentialError> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        let deadline = Instant::now() + self.config.limiter_wait;
        loop {
            match l.check(&conn.provider, &conn.id, 1).await {
                Decision::Allowed => return Ok(()),
                Decision::Denied { level, retry_after } => {
                    if Instant::now() + retry_after > deadline {
                        return Err(CredentialError::Transient(format!(
                            "token refresh for {} rate limited ({level})",
                            conn.id
                        )));
                    }
                    tokio::time::sleep(retry_after.max(Duration::from_millis(1))).await;
                }
            }
        }
    }

    /// Marks the credential and the connection; raises the event.
    async fn mark_needs_reauth(
        &self,
        conn: &Connection,
        cur: &OpenCredential,
        reason: &str,
    ) -> Result<(), CredentialError> {
        let now = self.clock.now();
        let mut doc = cur.doc.clone();
        if let CredentialDoc::OAuth2 { refresh_token, .. } = &mut doc {
            *refresh_token = None; // dead: keep no copy
        }
        let payload = Payload {
            doc,
            reauth: Some(ReauthMark {
                at: now,
                reason: reason.to_owned(),
            }),
        };
        let sealed = self
            .seal(&conn.id, &payload, cur.version + 1, cur.refreshed_at)
            .await?;
        if !self
            .store
            .put_credential(&sealed, Some(cur.version))
            .await
            .map_err(store_err)?
        {
            // Someone else wrote (a re-authorization): theirs stands.
            tracing::info!(connection = %conn.id, "credential replaced concurrently; not marking it");
            return Ok(());
        }
        if let Some(mut c) = self
            .store
            .get_connection(&conn.id)
            .await
            .map_err(store_err)?
            && c.status == ConnectionStatus::Active
        {
            c.status = ConnectionStatus::NeedsReauth;
            self.store.put_connection(&c).await.map_err(store_err)?;
        }
        bump(&self.counters.needs_reauth);
        tracing::warn!(connection = %conn.id, provider = %conn.provider, reason, "connection needs re-authorization");
        self.events
            .emit(Event::ConnectionNeedsReauth {
                tenant: conn.tenant.clone(),
                connection: conn.id.clone(),
                provider: conn.provider.clone(),
                reason: reason.to_owned(),
            })
            .await;
        Ok(())
    }

    fn backoff_left(&self, id: &ConnectionId) -> Option<Duration> {
        let mut b = lock(&self.backoff);
        let until = *b.get(id)?;
        let now = Instant::now();
        if now < until {
            Some(until - now)
        } else {
            b.remove(id);
            None
        }
    }

    /// Whether token requests under `key` (a provider app, or an app at one
    /// token URL) are paused.
    fn suspended(&self, key: &str) -> bool {
        lock(&self.suspended)
            .get(key)
            .is_some_and(|until| Instant::now() < *until)
    }

    fn clear_rejection(&self, client: &OAuthClient) {
        let key = client.app_key();
        let at_url = format!("{key}@");
        lock(&self.suspended).retain(|k, _| *k != key && !k.starts_with(&at_url));
        lock(&self.alerted).retain(|k| *k != key && !k.starts_with(&at_url));
    }

    /// Pauses token requests under `key` for `client_backoff`; the first
    /// time per key, logs and raises [`Event::ProviderCredentialsRejected`].
    async fn reject_client(&self, client: &OAuthClient, key: &str, code: &str) {
        lock(&self.suspended).insert(key.to_owned(), Instant::now() + self.config.client_backoff);
        let first = lock(&self.alerted).insert(key.to_owned());
        if first {
            tracing::error!(provider = %client.provider, client_id = %client.client_id, code, "token endpoint rejected our OAuth client or is no OAuth endpoint; token requests for this provider app pause");
            bump(&self.counters.invalid_client_alerts);
            self.events
                .emit(Event::ProviderCredentialsRejected {
                    provider: client.provider.clone(),
                    reason: code.to_owned(),
                })
                .await;
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for CredentialManager {
    async fn authorize(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
    ) -> Result<Option<AuthValue>, CredentialError> {
        if def.auth == AuthDef::None {
            return Ok(None);
        }
        match conn.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::NeedsReauth => return Err(CredentialError::NeedsReauth),
            ConnectionStatus::Disabled => {
                return Err(CredentialError::Permanent(format!(
                    "connection {} is disabled",
                    conn.id
                )));
            }
        }
        let i = &self.inner;
        // No stored credential: the request goes out unauthenticated and the
        // provider's 401 fails the run with a clear message (a connection
        // created before its authorization, or a provider that needs none).
        let Some(cur) = i.load(&conn.id).await? else {
            tracing::debug!(connection = %conn.id, "no stored credentials; sending the request without authorization");
            return Ok(None);
        };
        if cur.needs_reauth.is_some() {
            return Err(CredentialError::NeedsReauth);
        }
        match (&def.auth, &cur.doc) {
            (
                AuthDef::Oauth2 { .. },
                CredentialDoc::OAuth2 {
                    access_token,
                    expires_at,
                    issued_at,
                    ..
                },
            ) => {
                let now = i.clock.now();
                if !margin::is_due(*issued_at, *expires_at, now) {
                    return Ok(Some(AuthValue::Bearer(access_token.clone())));
                }
                match self.refresh(conn, def, RefreshTrigger::Due).await {
                    Ok(o) => Ok(Some(AuthValue::Bearer(o.access_token))),
                    Err(CredentialError::NeedsReauth) => Err(CredentialError::NeedsReauth),
                    // The backstop failed, but the token still works: use it.
                    Err(e) if i.usable(&cur, i.clock.now()) => {
                        tracing::warn!(connection = %conn.id, error = %e, "refresh failed; using the unexpired token");
                        Ok(Some(AuthValue::Bearer(access_token.clone())))
                    }
                    Err(e) => Err(e),
                }
            }
            (
                AuthDef::ApiKey {
                    header,
                    prefix,
                    query,
                },
                CredentialDoc::ApiKey { key },
            ) => Ok(Some(match query {
                Some(q) => AuthValue::Query {
                    name: q.clone(),
                    value: key.clone(),
                },
                None => AuthValue::Header {
                    name: header.clone().unwrap_or_else(|| "Authorization".to_owned()),
                    value: SecretString::new(format!(
                        "{}{}",
                        prefix.as_deref().unwrap_or(""),
                        key.expose()
                    )),
                },
            })),
            (AuthDef::Basic, CredentialDoc::Basic { user, password }) => {
                Ok(Some(AuthValue::Basic {
                    user: user.clone(),
                    password: password.clone(),
                }))
            }
            (_, doc) => Err(CredentialError::Permanent(format!(
                "connection {} holds a {} credential, which connector {} cannot use",
                conn.id,
                doc.kind(),
                def.name
            ))),
        }
    }

    async fn rejected(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
        used: &AuthValue,
    ) -> Result<(), CredentialError> {
        match (&def.auth, used) {
            (AuthDef::Oauth2 { .. }, AuthValue::Bearer(token)) => {
                if conn.status == ConnectionStatus::NeedsReauth {
                    return Err(CredentialError::NeedsReauth);
                }
                self.refresh(conn, def, RefreshTrigger::Rejected(token.clone()))
                    .await
                    .map(|_| ())
            }
            // A static credential the provider refuses cannot be refreshed.
            _ => Err(CredentialError::NeedsReauth),
        }
    }

    async fn base_url(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
    ) -> Result<Option<String>, CredentialError> {
        if !matches!(
            &def.auth,
            AuthDef::Oauth2 {
                base_url_from: Some(_),
                ..
            }
        ) {
            return Ok(None);
        }
        let cur = self.inner.load(&conn.id).await?;
        Ok(cur.and_then(|c| c.doc.base_url().map(str::to_owned)))
    }
}
