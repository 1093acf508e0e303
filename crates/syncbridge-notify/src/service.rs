//! [`NotificationService`]: the [`EventSink`] that routes, groups and
//! durably delivers events, and [`send_test`].

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use syncbridge_core::events::{Event, EventSink, ProductEvent};
use syncbridge_core::notify_rules::NotificationRules;
use syncbridge_core::{Clock, SecretString, Store, SystemClock, Timestamp};
use syncbridge_signatures::WebhookSecret;

use crate::channel::{self, Attempt};
use crate::config::{ChannelKind, NotifyConfig, check_secret, check_url};
use crate::error::NotifyError;
use crate::outbox::{self, Claimed, DeadMessage, EnqueueOutcome, OutboxStats, Outcome};
use crate::render::{Notification, Occurrence};

/// What one [`NotificationService::deliver_due`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages the channel accepted.
    pub delivered: usize,
    /// Messages that failed and will be retried.
    pub retrying: usize,
    /// Messages given up on (permanent answer, attempts exhausted, channel removed).
    pub dead: usize,
}

/// Routes events to channels, folds repeats, and delivers through a durable
/// SQLite outbox with retries. Cheap to clone (one shared handle).
#[derive(Clone)]
pub struct NotificationService {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    config: NotifyConfig,
    stored: OnceLock<StoredRules>,
    db: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    wake: tokio::sync::Notify,
}

/// How often a process re-reads the dashboard's stored rules, at most: 10 s.
/// A save reaches every binary within that (the API's own process at once:
/// it forgets its cache when it saves), which is well inside how fast an
/// operator expects an edited rule to apply; and it costs at most one
/// point read (1 RU on Cosmos DB) per process per 10 s, only while events
/// flow, however many events a burst routes.
pub const STORED_RULES_REFRESH: Duration = Duration::from_secs(10);

/// The dashboard's rules in the store, and the process's one cache of them.
struct StoredRules {
    store: Arc<dyn Store>,
    refresh: Duration,
    cache: tokio::sync::Mutex<RulesCache>,
}

#[derive(Default)]
struct RulesCache {
    /// When the store was last read (monotonic; `None`: read at the next event).
    read_at: Option<Instant>,
    /// The stored rules as of that read, when usable.
    rules: Option<Arc<NotificationRules>>,
}

impl fmt::Debug for NotificationService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .inner
            .config
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        f.debug_struct("NotificationService")
            .field("path", &self.inner.path)
            .field("channels", &names)
            .field("rules", &self.inner.config.rules.len())
            .finish_non_exhaustive()
    }
}

impl NotificationService {
    /// The outbox file name inside a data directory.
    pub const FILE_NAME: &'static str = "notify.db";

    /// Opens (creating if needed) the outbox at `path` with a validated config.
    pub fn open(
        path: impl AsRef<Path>,
        config: NotifyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NotifyError> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        let conn = outbox::open(&path)?;
        let client = channel::client(config.delivery.timeout());
        Ok(NotificationService {
            inner: Arc::new(Inner {
                path,
                config,
                stored: OnceLock::new(),
                db: Arc::new(Mutex::new(conn)),
                clock,
                client,
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Opens `<data_dir>/notify.db`.
    pub fn open_in_dir(
        data_dir: impl AsRef<Path>,
        config: NotifyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NotifyError> {
        Self::open(data_dir.as_ref().join(Self::FILE_NAME), config, clock)
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The configuration in force.
    pub fn config(&self) -> &NotifyConfig {
        &self.inner.config
    }

    /// Routes with the rules the dashboard saved in `store` whenever there
    /// are any (they replace the file's rules and default route as a
    /// whole), else with the file's. The store is read lazily, when an event
    /// is routed and the last read is older than `refresh`: one cache per
    /// process, not a query per event, and an idle process reads nothing.
    /// Set once; later calls are ignored (the binaries call it at start).
    pub fn use_stored_rules(&self, store: Arc<dyn Store>, refresh: Duration) {
        let _ = self.inner.stored.set(StoredRules {
            store,
            refresh,
            cache: tokio::sync::Mutex::new(RulesCache::default()),
        });
    }

    /// Forgets the cached stored rules, so the next event reads the store
    /// (the API calls it after saving rules, so its own process routes with
    /// them at once).
    pub async fn forget_stored_rules(&self) {
        if let Some(s) = self.inner.stored.get() {
            s.cache.lock().await.read_at = None;
        }
    }

    /// The stored rules in force: the cached ones while fresh, else read
    /// again. Rules that no longer fit the config (a channel was removed
    /// from the file since they were saved) are not used: the file's rules
    /// route instead, and an error says why. A failed read keeps what was
    /// cached until the next refresh.
    async fn stored_rules(&self) -> Option<Arc<NotificationRules>> {
        let s = self.inner.stored.get()?;
        let mut cache = s.cache.lock().await;
        if cache.read_at.is_some_and(|at| at.elapsed() < s.refresh) {
            return cache.rules.clone();
        }
        cache.read_at = Some(Instant::now());
        match s.store.get_notification_rules().await {
            Ok(Some(r)) => match self
                .inner
                .config
                .validate_rules(&r.rules, r.default.as_ref())
            {
                Ok(()) => cache.rules = Some(Arc::new(r)),
                Err(e) => {
                    tracing::error!(version = r.version, error = %e,
                        "the stored notification rules do not fit the config; routing with the file's rules");
                    cache.rules = None;
                }
            },
            Ok(None) => cache.rules = None,
            Err(e) => {
                tracing::warn!(error = %e, "reading the stored notification rules failed; keeping the last ones");
            }
        }
        cache.rules.clone()
    }

    async fn with_db<T, F>(&self, f: F) -> Result<T, NotifyError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, NotifyError> + Send + 'static,
    {
        let db = Arc::clone(&self.inner.db);
        let run = move || {
            // A panic mid-transaction rolled the transaction back; the
            // connection itself is still usable.
            let mut conn = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => h
                .spawn_blocking(run)
                .await
                .map_err(|e| NotifyError::Store(format!("outbox task failed: {e}")))?,
            Err(_) => run(),
        }
    }

    /// Routes and records one event (at the service clock's time). Once this
    /// returns `Ok`, the resulting message survives a crash.
    pub async fn enqueue(&self, event: Event) -> Result<EnqueueOutcome, NotifyError> {
        let stored = self.stored_rules().await;
        let cfg = &self.inner.config;
        let routed = match &stored {
            Some(r) => cfg.route_with(&r.rules, r.default.as_ref(), &event),
            None => cfg.route(&event),
        };
        let channels = match routed {
            Ok(c) => c,
            Err(reason) => return Ok(EnqueueOutcome::Dropped(reason)),
        };
        let now = self.inner.clock.now().as_millis();
        let key = format!(
            "{}|{}",
            event.tenant().map_or("-", |t| t.as_str()),
            event.group_key()
        );
        let json = serde_json::to_string(&event)
            .map_err(|e| NotifyError::Store(format!("cannot serialize the event: {e}")))?;
        let g = self.inner.config.grouping;
        let wait = millis(hold(&event, g.wait()));
        let window = millis(g.window());
        let outcome = self
            .with_db(move |c| outbox::record(c, now, &key, &channels, &json, wait, window))
            .await?;
        if matches!(outcome, EnqueueOutcome::Queued { .. }) {
            self.inner.wake.notify_one();
        }
        Ok(outcome)
    }

    /// One delivery pass at `now`: closes grouping windows that ended (queuing
    /// their follow-ups), sends every due message (concurrently, in batches),
    /// records each outcome (delivered, retry at capped exponential backoff,
    /// or dead), and prunes old finished messages.
    pub async fn deliver_due(&self, now: Timestamp) -> Result<DeliveryReport, NotifyError> {
        let cfg = &self.inner.config;
        let now_ms = now.as_millis();
        let window = millis(cfg.grouping.window());
        self.with_db(move |c| outbox::close_windows(c, now_ms, window))
            .await?;
        let lease = millis(cfg.delivery.timeout() + Duration::from_secs(30));
        let batch = cfg.delivery.batch;
        let mut report = DeliveryReport::default();
        loop {
            let claimed = self
                .with_db(move |c| outbox::claim(c, now_ms, lease, batch))
                .await?;
            let n = claimed.len();
            if n == 0 {
                break;
            }
            let outcomes =
                futures::future::join_all(claimed.into_iter().map(|row| self.attempt(row, now)))
                    .await;
            for (_, o) in &outcomes {
                match o {
                    Outcome::Delivered => report.delivered += 1,
                    Outcome::Retry { .. } => report.retrying += 1,
                    Outcome::Dead { .. } => report.dead += 1,
                }
            }
            self.with_db(move |c| outbox::finish(c, now_ms, &outcomes))
                .await?;
            if n < batch as usize {
                break;
            }
        }
        let cutoff = now_ms.saturating_sub(
            i64::try_from(cfg.delivery.retention_days.saturating_mul(86_400_000))
                .unwrap_or(i64::MAX),
        );
        self.with_db(move |c| outbox::prune(c, cutoff)).await?;
        Ok(report)
    }

    async fn attempt(&self, row: Claimed, now: Timestamp) -> (String, Outcome) {
        let cfg = &self.inner.config;
        let Some(channel) = cfg.channel(&row.channel) else {
            let error = format!("channel {:?} is no longer configured", row.channel);
            tracing::error!(message = %row.id, channel = %row.channel, "notification dropped: {error}");
            return (row.id, Outcome::Dead { error });
        };
        let event: Event = match serde_json::from_str(&row.event) {
            Ok(e) => e,
            Err(e) => {
                let error = format!("stored event does not decode: {e}");
                tracing::error!(message = %row.id, channel = %row.channel, "notification dropped: {error}");
                return (row.id, Outcome::Dead { error });
            }
        };
        let n = Notification {
            id: row.id.clone(),
            occurrence: if row.occurrence == "repeated" {
                Occurrence::Repeated
            } else {
                Occurrence::First
            },
            count: u64::try_from(row.count).unwrap_or(1),
            first_at: Timestamp::from_millis(row.first_at),
            last_at: Timestamp::from_millis(row.last_at),
            test: false,
            event,
        };
        let kind = n.event.kind();
        match channel::send(&self.inner.client, channel, &n, now.as_unix_secs()).await {
            Attempt::Delivered { status, .. } => {
                tracing::info!(message = %row.id, channel = %row.channel, kind, status, count = n.count, "notification delivered");
                (row.id, Outcome::Delivered)
            }
            Attempt::Failed {
                retryable,
                retry_after,
                error,
            } => {
                let error = error.to_string();
                if retryable && row.attempts < cfg.delivery.max_attempts {
                    let delay = cfg.delivery.backoff(row.attempts, retry_after);
                    let due_at = now.add(delay).as_millis();
                    tracing::warn!(message = %row.id, channel = %row.channel, kind, attempt = row.attempts,
                        retry_in_secs = delay.as_secs(), "notification delivery failed, will retry: {error}");
                    (row.id, Outcome::Retry { due_at, error })
                } else {
                    tracing::error!(message = %row.id, channel = %row.channel, kind, attempt = row.attempts,
                        "notification delivery given up: {error}");
                    (row.id, Outcome::Dead { error })
                }
            }
        }
    }

    /// When the next pass has work (a due message or a closing window).
    pub async fn next_due(&self) -> Result<Option<Timestamp>, NotifyError> {
        Ok(self
            .with_db(|c| outbox::next_due(c))
            .await?
            .map(Timestamp::from_millis))
    }

    /// Message counts by state and open groups.
    pub async fn stats(&self) -> Result<OutboxStats, NotifyError> {
        self.with_db(|c| outbox::stats(c)).await
    }

    /// The most recent dead messages (for an operator).
    pub async fn dead_messages(&self, limit: u32) -> Result<Vec<DeadMessage>, NotifyError> {
        self.with_db(move |c| outbox::dead(c, limit)).await
    }

    /// The worker loop: runs [`deliver_due`](Self::deliver_due) at the
    /// service clock's time, then sleeps until the next due message or window
    /// (at most `delivery.poll_secs`, woken early by a new message) until
    /// `shutdown` completes. Failures are logged and retried on the next pass.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let poll = Duration::from_secs(self.inner.config.delivery.poll_secs);
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.deliver_due(self.inner.clock.now()).await {
                tracing::error!(error = %e, "notification delivery pass failed");
            }
            let sleep = match self.next_due().await {
                Ok(Some(t)) => t
                    .since(self.inner.clock.now())
                    .clamp(Duration::from_millis(50), poll),
                _ => poll,
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(sleep) => {}
                () = self.inner.wake.notified() => {}
            }
        }
    }
}

/// How long an event's first message is held to collect a burst: not at
/// all for events that never repeat (each run, each new connection is its
/// own news; the product hears of it at once).
fn hold(event: &Event, wait: Duration) -> Duration {
    match event {
        Event::SyncCompleted { .. }
        | Event::ConnectionCreated { .. }
        | Event::ConnectionReauthorized { .. } => Duration::ZERO,
        _ => wait,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl EventSink for NotificationService {
    /// Records the event in the outbox; never fails the caller (a failure
    /// to record is logged).
    async fn emit(&self, event: Event) {
        let kind = event.kind();
        match self.enqueue(event).await {
            Ok(EnqueueOutcome::Dropped(reason)) => {
                tracing::debug!(kind, "event not notified: {reason}");
            }
            Ok(outcome) => tracing::debug!(kind, ?outcome, "event recorded for notification"),
            Err(e) => {
                tracing::error!(kind, error = %e, "event could not be recorded for notification")
            }
        }
    }
}

/// Sends one sample message (a failed sync run, marked as a test) to `url`
/// and returns the channel's answer, e.g. `slack answered HTTP 200: ok`.
/// For the CLI's `syncbridge notify test`.
///
/// # Errors
///
/// [`NotifyError::Config`] for an unusable URL or a webhook without a usable
/// secret; [`NotifyError::Rejected`] with the status and the start of the
/// body when the channel answered non-2xx; [`NotifyError::Unreachable`] when
/// it could not be reached. No error contains the URL or the secret.
pub async fn send_test(
    channel: ChannelKind,
    url: &SecretString,
    secret: Option<&WebhookSecret>,
) -> Result<String, NotifyError> {
    check_url("test", url)?;
    match (channel, secret) {
        (kind, None) if kind.signed() => {
            return Err(NotifyError::Config(format!(
                "the {kind} channel needs a Standard Webhooks signing secret (whsec_…)"
            )));
        }
        (kind, Some(s)) if kind.signed() => check_secret("test", s)?,
        _ => {}
    }
    let now = SystemClock.now();
    // A product channel renders only product events: send it one of those.
    let event = crate::samples::sample_events_for("acme")
        .into_iter()
        .find(|e| channel != ChannelKind::Product || e.product() != ProductEvent::No)
        .ok_or_else(|| NotifyError::Config("no sample event".into()))?;
    let n = Notification {
        id: format!("ntf_test_{:032x}", rand::random::<u128>()),
        event,
        occurrence: Occurrence::First,
        count: 1,
        first_at: now,
        last_at: now,
        test: true,
    };
    let client = channel::client(Duration::from_secs(10));
    match channel::post(&client, channel, url, secret, &n, now.as_unix_secs()).await {
        Attempt::Delivered { status, body } => {
            Ok(format!("{channel} answered HTTP {status}: {body}"))
        }
        Attempt::Failed { error, .. } => Err(error),
    }
}
