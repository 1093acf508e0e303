//! [`Sandbox`]: the shared state behind every route (config, data, tokens,
//! limiter, fault sequence, stats, webhook emitter), cheap to clone.
//!
//! Lock discipline: every lock is a `std::sync` lock held only for in-memory
//! work and never across an `.await`. The store's `RwLock` makes each
//! mutation (including a whole `/_sandbox/mutate` batch) atomic to readers;
//! webhook events are queued while it is still held, so their order is the
//! mutation order.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::time::Instant;

use crate::config::{ConfigError, ConfigPatch, SandboxConfig};
use crate::consent::Consents;
use crate::faults::{FaultInjector, Plan};
use crate::limits::{Limiter, RateInfo};
use crate::oauth::{AccessCheck, GrantError, TokenPair, TokenStore};
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{ChangeEvent, MutateOutcome, ObjectKind, Store};
use crate::webhooks::Emitter;

/// A running sandbox's state. Clones share it.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: RwLock<SandboxConfig>,
    store: RwLock<Store>,
    tokens: Mutex<TokenStore>,
    consents: Mutex<Consents>,
    limiter: Mutex<Limiter>,
    faults: Mutex<FaultInjector>,
    pub(crate) stats: Stats,
    webhooks: Emitter,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(crate) fn config(&self) -> SandboxConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sandbox {
    /// Seeds the data and builds the state.
    ///
    /// # Errors
    /// The configuration does not validate.
    pub fn new(config: SandboxConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let store = Store::seeded(config.seed, config.records_per_object);
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: Mutex::new(TokenStore::new(config.seed)),
                consents: Mutex::new(Consents::default()),
                limiter: Mutex::new(Limiter::default()),
                faults: Mutex::new(FaultInjector::new(&config.faults)),
                store: RwLock::new(store),
                config: RwLock::new(config),
                stats: Stats::default(),
                webhooks: Emitter::new(),
            }),
        })
    }

    /// The current configuration.
    pub fn config(&self) -> SandboxConfig {
        self.inner.config()
    }

    /// Applies a runtime change (same as `POST /_sandbox/config`).
    ///
    /// # Errors
    /// The patched configuration does not validate; nothing changed.
    pub fn update_config(&self, patch: ConfigPatch) -> Result<SandboxConfig, ConfigError> {
        let mut cfg = self.inner.config.write().unwrap_or_else(|e| e.into_inner());
        cfg.apply(patch)?;
        Ok(cfg.clone())
    }

    /// Mints an access/refresh pair for the configured client, as if it had
    /// completed the authorization-code flow.
    pub fn issue_tokens(&self) -> TokenPair {
        let cfg = self.config();
        lock(&self.inner.tokens).issue(&cfg.client_id, cfg.token_ttl, Instant::now())
    }

    /// The PKCE `code_verifier`s clients presented with codes from
    /// `/oauth/authorize` (tests check that they leak nowhere).
    pub fn code_verifiers_seen(&self) -> Vec<String> {
        lock(&self.inner.consents).verifiers_seen()
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Re-seeds the data (optionally with another seed / size) and clears the
    /// idempotency keys, the rate-limit window, the fault sequence and the
    /// counters. Tokens and configuration stay.
    pub fn reset(&self, seed: Option<u64>, records_per_object: Option<usize>) {
        let cfg = {
            let mut cfg = self.inner.config.write().unwrap_or_else(|e| e.into_inner());
            cfg.seed = seed.unwrap_or(cfg.seed);
            cfg.records_per_object = records_per_object.unwrap_or(cfg.records_per_object);
            cfg.clone()
        };
        let fresh = Store::seeded(cfg.seed, cfg.records_per_object);
        *self.write_store() = fresh;
        lock(&self.inner.limiter).reset();
        *lock(&self.inner.faults) = FaultInjector::new(&cfg.faults);
        self.inner.stats.reset();
    }

    /// Randomly updates, archives and creates records in one batch (same as
    /// `POST /_sandbox/mutate`); emits webhook events.
    pub fn mutate(
        &self,
        kind: ObjectKind,
        update: usize,
        delete: usize,
        create: usize,
        seed: Option<u64>,
    ) -> MutateOutcome {
        let mut events = Vec::new();
        let mut store = self.write_store();
        let outcome = store.mutate(kind, update, delete, create, seed, &mut events);
        self.emit(&events);
        outcome
    }

    /// Changes a live record as someone using the provider's own UI would
    /// (webhooks fire as for an API write). `None` clears a property.
    ///
    /// # Errors
    /// When the record does not exist or a property is read-only.
    pub fn update_record(
        &self,
        kind: ObjectKind,
        id: u64,
        props: &[(String, Option<String>)],
    ) -> Result<(), crate::store::StoreError> {
        let mut store = self.write_store();
        let ev = store.update(kind, id, props)?;
        self.emit(&[ev]);
        Ok(())
    }

    /// Archives (deletes) a record as someone using the provider's own UI
    /// would; `false` when it was already archived.
    ///
    /// # Errors
    /// When no such record ever existed.
    pub fn archive_record(
        &self,
        kind: ObjectKind,
        id: u64,
    ) -> Result<bool, crate::store::StoreError> {
        let mut store = self.write_store();
        let ev = store.archive(kind, id)?;
        if let Some(ev) = ev {
            self.emit(&[ev]);
        }
        Ok(ev.is_some())
    }

    /// A live record's properties (`None` when there is no such live record).
    pub fn record_props(
        &self,
        kind: ObjectKind,
        id: u64,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let store = self.read_store();
        let rec = store.table(kind).get(id, false)?;
        Some(
            rec.props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A live record's last modification time, epoch ms.
    pub fn record_updated_ms(&self, kind: ObjectKind, id: u64) -> Option<i64> {
        Some(self.read_store().table(kind).get(id, false)?.updated_ms)
    }

    /// Read access to the data.
    pub fn read_store(&self) -> RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_store(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues webhook events for applied changes (call with the store lock held).
    pub(crate) fn emit(&self, events: &[ChangeEvent]) {
        if !events.is_empty() && self.config_has_webhook() {
            self.inner
                .webhooks
                .emit(events, Arc::downgrade(&self.inner));
        }
    }

    fn config_has_webhook(&self) -> bool {
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .webhook
            .is_some()
    }

    pub(crate) fn stats_ref(&self) -> &Stats {
        &self.inner.stats
    }

    pub(crate) fn check_access(&self, token: &str) -> AccessCheck {
        lock(&self.inner.tokens).check_access(token, Instant::now())
    }

    pub(crate) fn with_consents<R>(&self, f: impl FnOnce(&mut Consents) -> R) -> R {
        f(&mut lock(&self.inner.consents))
    }

    pub(crate) fn with_tokens<R>(&self, f: impl FnOnce(&mut TokenStore) -> R) -> R {
        f(&mut lock(&self.inner.tokens))
    }

    pub(crate) fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
    ) -> Result<TokenPair, GrantError> {
        let ttl = self.config().token_ttl;
        lock(&self.inner.tokens).refresh(refresh_token, client_id, ttl, Instant::now())
    }

    /// Counts a request against the rate limit; `None` when unlimited.
    pub(crate) fn rate_check(&self, cfg: &SandboxConfig) -> Option<Result<RateInfo, RateInfo>> {
        let rule = cfg.rate_limit?;
        Some(lock(&self.inner.limiter).check(rule, Instant::now()))
    }

    pub(crate) fn draw_fault(&self, cfg: &SandboxConfig) -> Plan {
        lock(&self.inner.faults).draw(&cfg.faults)
    }
}
