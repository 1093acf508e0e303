//! `WebhookReceiver` (HTTP-only function, proxied so the raw body arrives byte
//! for byte): `POST /api/webhooks/{connectionId}`.
//!
//! The accept path does only this, in order: look up the connection's webhook
//! settings; verify the signature over the raw bytes (constant time, timestamp
//! tolerance from the injected clock, every active secret); answer provider
//! handshakes; dedup by the provider's event id (or the body hash) inside the
//! window while storing the event durably; enqueue one follow-up job per
//! routed task with a deterministic `MessageId`; answer 202. Everything else
//! happens behind the queue. The jobs carry the delivery's correlation id (the
//! provider's delivery id, else a new UUID; see [`crate::correlation`]).
//!
//! Bad input gets a 4xx with a message that never contains a secret, nothing is
//! stored or enqueued, and a counter is incremented. That includes the body:
//! past `SYNCBRIDGE_WEBHOOK_MAX_BYTES` it is 413 (after reading the rest and
//! throwing it away, see `read_body`), stalled past the body read timeout
//! 408. Stored settings no delivery could pass — a scheme that does not
//! parse, secrets that are unusable for it or do not open — answer 403
//! saying so: it is the operator's to fix, and a 5xx would only make the
//! provider retry. The secrets are stored sealed and opened with the
//! connection's settings (cached for [`CONFIG_TTL`]).
//!
//! # Throughput
//!
//! Two things keep the accept path short. Connection settings and the
//! connection's inbound tasks are cached in memory for [`CONFIG_TTL`] (a new
//! secret or task takes effect within that time). And accepted events are
//! written by one writer task that *group-commits*: every event waiting at that
//! moment is deduplicated and stored in one store transaction, and their
//! follow-up jobs are enqueued in one queue batch, before each request gets its
//! answer. Nothing is acknowledged before it is durable. The store and the
//! enqueue are two pipelined stages (the next batch is stored while the
//! previous one is enqueued; answers still go out in order, after the enqueue),
//! and on the embedded backends a background task checkpoints the SQLite WALs
//! so that commits rarely pay for a checkpoint's `fsync`s.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use syncbridge_core::model::{
    Connection, Direction, JobReason, Priority, QuarantinedMessage, SyncJob, WebhookEvent,
};
use syncbridge_core::{ConnectionId, ObjectType, OutboundMessage, StoreError, TaskId, Timestamp};
use syncbridge_signatures::{Request, Scheme, WebhookSecret};

use tokio::sync::{mpsc, oneshot};

use crate::state::AppState;

/// The function name.
pub const FUNCTION: &str = "WebhookReceiver";

/// Outcome counters, readable at `GET /api/webhooks/_stats`.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    counts: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    accepted: AtomicU64,
}

impl WebhookCounters {
    fn bump(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    /// Counts by outcome.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let mut m = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        m.insert("accepted", self.accepted.load(Ordering::Relaxed));
        m
    }
}

/// How long connection settings stay cached.
pub const CONFIG_TTL: Duration = Duration::from_secs(2);

/// What the accept path needs to know about a connection.
#[derive(Debug)]
struct ConnInfo {
    conn: Connection,
    scheme: Result<Scheme, String>,
    /// The opened secrets, or why the stored ones cannot be used.
    secrets: Result<Vec<WebhookSecret>, String>,
    inbound: Vec<(TaskId, ObjectType)>,
}

/// When it was loaded, and the connection's info (`None`: no such webhook connection).
type CachedInfo = (Instant, Option<Arc<ConnInfo>>);

#[derive(Debug, Default)]
struct ConfigCache {
    map: Mutex<HashMap<String, CachedInfo>>,
}

/// One accepted delivery waiting for the writer.
#[derive(Debug)]
struct Pending {
    event: WebhookEvent,
    messages: Vec<OutboundMessage>,
    /// `messages.len()` (the writer moves the messages out).
    jobs: usize,
    quarantine: Option<QuarantinedMessage>,
    reply: oneshot::Sender<Result<Written, String>>,
}

/// A batch the store stage has written, on its way to the enqueue stage.
#[derive(Debug)]
struct Stored {
    /// The events, in the order of `rest` (moved out of their [`Pending`]).
    events: Vec<WebhookEvent>,
    /// What is left of each delivery (its `event` field is emptied).
    rest: Vec<Pending>,
    /// Per event: new (`true`) or a duplicate; `Err` when the store failed.
    fresh: Result<Vec<bool>, String>,
}

#[derive(Debug)]
enum Written {
    Enqueued(usize),
    Quarantined,
    Duplicate,
}

#[derive(Clone, Debug)]
struct WebhookState {
    app: AppState,
    counters: Arc<WebhookCounters>,
    cache: Arc<ConfigCache>,
    writer: mpsc::Sender<Pending>,
}

/// `POST /api/webhooks/{connectionId}` and `GET /api/webhooks/_stats`.
pub fn router(state: AppState) -> Router {
    router_with_counters(state, Arc::default())
}

/// The router, sharing `counters` with the caller (tests, benchmarks). Must be
/// called inside a Tokio runtime (it starts the writer task).
pub fn router_with_counters(state: AppState, counters: Arc<WebhookCounters>) -> Router {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(writer(state.clone(), rx));
    spawn_checkpointer(&state, tx.downgrade());
    spawn_pruner(&state, tx.downgrade());
    Router::new()
        .route("/api/webhooks/_stats", get(stats))
        .route("/api/webhooks/{connection_id}", post(receive))
        .route(&format!("/{FUNCTION}"), any(envelope_refused))
        .with_state(WebhookState {
            app: state,
            counters,
            cache: Arc::default(),
            writer: tx,
        })
}

/// The host invokes `POST /<FunctionName>` with its JSON envelope when it does
/// not proxy the request (`enableProxyingHttpRequest` not honoured: an old
/// host, or a plan or setting that ignores it; see docs/azure.md). The
/// envelope carries a re-encoded body, over which no signature can be
/// verified, so nothing is accepted; a 500 and an error log make the
/// misconfiguration visible (the provider retries once it is fixed) instead
/// of a silent 404.
async fn envelope_refused(State(s): State<WebhookState>) -> Response {
    s.counters.bump("not_proxied");
    tracing::error!(
        function = FUNCTION,
        "invoked with the Functions host's JSON envelope instead of the proxied request: \
         customHandler.enableProxyingHttpRequest is not in effect on this host; \
         webhooks cannot be verified and are refused"
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({
            "error": "the Functions host is not proxying HTTP requests \
                      (host.json customHandler.enableProxyingHttpRequest not in effect); \
                      webhook deliveries cannot be verified"
        })),
    )
        .into_response()
}

/// Keeps the embedded store's and queue's WALs short from a background
/// thread ([`syncbridge_sqlite::WalCheckpointer`]), so the group commit rarely
/// pays for a checkpoint (a copy and two `fsync`s) while every delivery of the
/// batch waits. Stops when the router is dropped (`alive` can no longer be
/// upgraded). Files that do not exist (Azure backends, test stores) are skipped.
fn spawn_checkpointer(state: &AppState, alive: mpsc::WeakSender<Pending>) {
    // `Settings::webhook_checkpoint`: 0 leaves it to SQLite's automatic checkpoint.
    let every = state.settings.webhook_checkpoint;
    if every.is_zero() {
        return;
    }
    let azure = &state.settings.azure;
    let dir = &state.settings.data_dir;
    let files = [
        (azure.cosmos.is_none(), dir.join("state.db")),
        (azure.service_bus.is_none(), dir.join("queue.db")),
    ];
    let checkpointers: Arc<Vec<syncbridge_sqlite::WalCheckpointer>> = Arc::new(
        files
            .into_iter()
            .filter(|(embedded, path)| *embedded && path.exists())
            .filter_map(|(_, path)| syncbridge_sqlite::WalCheckpointer::open(path).ok())
            .collect(),
    );
    if checkpointers.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            let c = checkpointers.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for one in c.iter() {
                    if let Err(e) = one.checkpoint() {
                        tracing::debug!("background checkpoint: {e}");
                    }
                }
            })
            .await;
        }
    });
}

/// How often stored webhook events past the dedup window are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Events removed per store call: each call is one short transaction, so the
/// group commit waits for at most one batch, never for the whole backlog.
const PRUNE_BATCH: usize = 1000;

/// Removes stored events older than the dedup window, in batches, until none
/// are left, every [`PRUNE_EVERY`]; without it the embedded store's
/// `webhook_events` grows forever (Cosmos DB expires them by TTL and prunes
/// nothing here). An event inside the window is never removed, so acceptance
/// stays exactly-once within it. Stops with the router, like the checkpointer.
fn spawn_pruner(state: &AppState, alive: mpsc::WeakSender<Pending>) {
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let window = state.settings.webhook_dedup_window;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            let cutoff = clock.now().sub(window);
            loop {
                match store.prune_webhook_events(cutoff, PRUNE_BATCH).await {
                    Ok(n) if n as usize >= PRUNE_BATCH => tokio::task::yield_now().await,
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(pruned = n, "webhook events past the dedup window");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("pruning webhook events: {e}");
                        break;
                    }
                }
            }
        }
    });
}

async fn stats(State(s): State<WebhookState>) -> Response {
    axum::Json(s.counters.snapshot()).into_response()
}

/// A JSON answer from ready text.
fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn reject(s: &WebhookState, status: StatusCode, what: &'static str, message: String) -> Response {
    s.counters.bump(what);
    tracing::info!(
        status = status.as_u16(),
        outcome = what,
        "webhook rejected: {message}"
    );
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Parses a connection's scheme setting: a scheme name, or a JSON object for `hmac`.
pub fn parse_scheme(text: &str) -> Result<Scheme, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid scheme configuration: {e}"))
    } else {
        text.parse::<Scheme>().map_err(|e| e.to_string())
    }
}

/// Object types an event body names (`object`, `objectType`, `object_type`,
/// at the top level or in each element of a batch). Reads only those keys:
/// everything else is skipped without building a JSON tree. `"event"` names
/// the envelope, not a record type (every Stripe event says
/// `"object": "event"`), so it names nothing: such an event routes to all of
/// the connection's inbound tasks.
fn named_objects(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(default, alias = "objectType", alias = "object_type")]
        object: Option<String>,
    }
    // The first byte picks the shape, so the body is parsed once, straight
    // into `Names` (an untagged enum would first buffer the whole tree).
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let mut out: Vec<String> = match first {
        Some(b'{') => serde_json::from_slice::<Names>(body)
            .ok()
            .and_then(|n| n.object)
            .into_iter()
            .collect(),
        Some(b'[') => serde_json::from_slice::<Vec<Names>>(body)
            .map(|v| v.into_iter().filter_map(|n| n.object).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    out.retain(|n| n != "event");
    out.sort();
    out.dedup();
    out
}

async fn load_info(app: &AppState, id: &ConnectionId) -> Result<Option<Arc<ConnInfo>>, StoreError> {
    let Some(conn) = app.store.get_connection(id).await? else {
        return Ok(None);
    };
    let Some(settings) = conn.webhook.clone() else {
        return Ok(None);
    };
    let sealer = app.credential_manager.sealer();
    let secrets = match syncbridge_credentials::open_webhook_secrets(
        sealer,
        id,
        &settings.sealed_secrets,
    )
    .await
    {
        Ok(list) => Ok(list
            .iter()
            .map(|x| WebhookSecret::new(x.expose()))
            .collect()),
        Err(syncbridge_credentials::SealError::SecretStore(
            syncbridge_core::secrets::SecretStoreError::Unavailable(e),
        )) => {
            // The key store is down: a retry can succeed.
            return Err(StoreError::Unavailable(format!(
                "opening the webhook secrets: {e}"
            )));
        }
        Err(e) => Err(format!(
            "the stored webhook secrets cannot be used ({e}); set them again with `syncbridge connections add --replace`"
        )),
    };
    let inbound = app
        .store
        .list_tasks(Some(id))
        .await?
        .into_iter()
        .filter(|t| t.direction == Direction::Inbound)
        .map(|t| (t.id, t.object))
        .collect();
    Ok(Some(Arc::new(ConnInfo {
        scheme: parse_scheme(&settings.scheme),
        secrets,
        inbound,
        conn,
    })))
}

async fn cached_info(
    s: &WebhookState,
    id: &ConnectionId,
) -> Result<Option<Arc<ConnInfo>>, StoreError> {
    if let Some((at, info)) = s
        .cache
        .map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id.as_str())
        && at.elapsed() < CONFIG_TTL
    {
        return Ok(info.clone());
    }
    let info = load_info(&s.app, id).await?;
    let mut map = s.cache.map.lock().unwrap_or_else(|p| p.into_inner());
    // Anyone can post to any connection id: the cache stays bounded.
    if map.len() >= CACHE_CAP {
        map.retain(|_, (at, _)| at.elapsed() < CONFIG_TTL);
        if map.len() >= CACHE_CAP {
            map.clear();
        }
    }
    map.insert(id.to_string(), (Instant::now(), info.clone()));
    Ok(info)
}

/// Most connections whose settings are cached at once.
const CACHE_CAP: usize = 10_000;

/// What to do with a verified event: the follow-up jobs for the connection's
/// inbound tasks the body names (all of them when it names none), each
/// carrying `correlation_id`, or a quarantine entry when it names only
/// objects nobody syncs.
fn route(
    conn: &Connection,
    inbound: &[(TaskId, ObjectType)],
    dedup_key: &str,
    correlation_id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<Vec<OutboundMessage>, Box<QuarantinedMessage>> {
    let named = named_objects(body);
    let routed: Vec<_> = inbound
        .iter()
        .filter(|(_, o)| named.is_empty() || named.iter().any(|n| n == o.as_str()))
        .collect();
    if routed.is_empty() {
        return Err(Box::new(QuarantinedMessage {
            source: FUNCTION.into(),
            message_id: Some(dedup_key.to_string()),
            connection: Some(conn.id.clone()),
            reason: format!(
                "verified event for {} matches no sync task (objects named: {named:?})",
                conn.id
            ),
            body: body.to_vec(),
            at: now,
        }));
    }
    Ok(routed
        .into_iter()
        .map(|(task, object)| {
            let job = SyncJob {
                task: task.clone(),
                connection: conn.id.clone(),
                object: object.clone(),
                priority: Priority::WebhookFollowUp,
                reason: JobReason::Webhook {
                    event: dedup_key.to_string(),
                },
                lease_token: String::new(),
            };
            let digest = Sha256::digest(format!("{}\n{}\n{}", conn.id, dedup_key, task));
            crate::correlation::inbound_message(
                job,
                format!("wh-{}", hex::encode(&digest[..16])),
                correlation_id,
            )
        })
        .collect())
}

/// Re-routes a quarantined webhook event (after its tasks were fixed): the
/// follow-up jobs are enqueued, or `Ok(None)` if it still matches no task.
pub async fn replay(
    app: &AppState,
    q: &QuarantinedMessage,
) -> Result<Option<usize>, crate::HandlerError> {
    let conn_id = q
        .connection
        .clone()
        .ok_or_else(|| crate::HandlerError::Other("the entry names no connection".into()))?;
    let Some(info) = load_info(app, &conn_id).await? else {
        return Err(crate::HandlerError::Other(format!(
            "connection {conn_id} no longer accepts webhooks"
        )));
    };
    let key = q.message_id.clone().unwrap_or_default();
    let correlation_id = crate::correlation::new_id();
    match route(
        &info.conn,
        &info.inbound,
        &key,
        &correlation_id,
        &q.body,
        app.clock.now(),
    ) {
        Ok(messages) => {
            let n = messages.len();
            app.queue.send(messages).await?;
            tracing::info!(connection = %conn_id, event = %key, correlation_id = %correlation_id, jobs = n, "quarantined webhook event replayed");
            Ok(Some(n))
        }
        Err(_) => Ok(None),
    }
}

/// Largest group commit.
const MAX_BATCH: usize = 512;

/// The group-commit writer, two stages in a pipeline so the store transaction
/// of one batch overlaps the queue transaction of the previous one:
///
/// 1. *store*: drains every waiting delivery, dedups and stores them in one
///    transaction;
/// 2. *enqueue*: enqueues the new events' jobs in one batch (several stored
///    batches at once when they are waiting), then answers each delivery.
///
/// Every answer — duplicates included — is given by stage 2, in batch order,
/// after the enqueue of every earlier batch finished: no delivery is
/// acknowledged (not even as a duplicate of one still in flight) before the
/// event is stored and its jobs are enqueued.
///
/// A duplicate's jobs are enqueued again (the queue drops those it holds, by
/// `MessageId`): a process that died between the two stages stored the event
/// without its jobs, and the provider's redelivery is what brings them back.
/// A redelivery that comes after the queue's duplicate-detection window
/// (10 minutes locally, the queue's setting on Service Bus) costs one extra
/// follow-up sync, never a lost one.
async fn writer(app: AppState, mut rx: mpsc::Receiver<Pending>) {
    let (stored_tx, stored_rx) = mpsc::channel::<Stored>(4);
    let enqueue = tokio::spawn(enqueue_stage(app.clone(), stored_rx));
    let mut rest = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut rest, MAX_BATCH).await > 0 {
        let events: Vec<WebhookEvent> = rest
            .iter_mut()
            .map(|p: &mut Pending| take_event(&mut p.event))
            .collect();
        let fresh = app
            .store
            .insert_webhook_events(&events, app.settings.webhook_dedup_window)
            .await
            .map_err(|e| format!("store unavailable: {e}"));
        let batch = Stored {
            events,
            rest: std::mem::replace(&mut rest, Vec::with_capacity(MAX_BATCH)),
            fresh,
        };
        if stored_tx.send(batch).await.is_err() {
            break;
        }
    }
    drop(stored_tx);
    let _ = enqueue.await;
}

fn take_event(e: &mut WebhookEvent) -> WebhookEvent {
    WebhookEvent {
        connection: e.connection.clone(),
        dedup_key: std::mem::take(&mut e.dedup_key),
        received_at: e.received_at,
        body: std::mem::take(&mut e.body),
    }
}

/// Stage 2 of [`writer`].
async fn enqueue_stage(app: AppState, mut rx: mpsc::Receiver<Stored>) {
    let mut batches = Vec::with_capacity(4);
    while rx.recv_many(&mut batches, 4).await > 0 {
        // Duplicates are sent too: their first delivery may have been stored
        // by a process that died before its enqueue. The deterministic
        // `MessageId` makes the queue drop every job it already holds.
        let mut messages = Vec::new();
        for b in &mut batches {
            if b.fresh.is_ok() {
                for p in &mut b.rest {
                    messages.append(&mut p.messages);
                }
            }
        }
        let sent = if messages.is_empty() {
            Ok(())
        } else {
            app.queue.send(messages).await
        };
        for b in batches.drain(..) {
            answer(&app, b, &sent).await;
        }
    }
}

/// Answers every delivery of a stored batch.
async fn answer(app: &AppState, b: Stored, sent: &Result<(), syncbridge_core::QueueError>) {
    let fresh = match b.fresh {
        Ok(f) => f,
        Err(e) => {
            for p in b.rest {
                let _ = p.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    for ((p, event), new) in b.rest.into_iter().zip(b.events).zip(fresh) {
        let answer = if let Some(q) = p.quarantine {
            // A duplicate is quarantined again too: its first delivery may
            // have died between storing the event and quarantining it (an
            // entry more, never one less).
            match app.store.quarantine(&q).await {
                Ok(_) => {
                    app.events
                        .emit(syncbridge_core::events::Event::MessageQuarantined {
                            source: q.source,
                            message_id: q.message_id,
                            reason: q.reason,
                        })
                        .await;
                    Ok(if new {
                        Written::Quarantined
                    } else {
                        Written::Duplicate
                    })
                }
                Err(e) => Err(e.to_string()),
            }
        } else if !new {
            match sent {
                Ok(()) => Ok(Written::Duplicate),
                // Nothing new is stored; the provider retries later.
                Err(_) => Err("queue unavailable; retry later".to_string()),
            }
        } else if let Err(e) = sent {
            // The event is stored (a retry would be a duplicate): keep it replayable.
            let q = QuarantinedMessage {
                source: format!("{FUNCTION}/enqueue"),
                message_id: Some(event.dedup_key),
                connection: Some(event.connection),
                reason: format!("follow-up enqueue failed: {e}"),
                body: event.body,
                at: event.received_at,
            };
            let _ = app.store.quarantine(&q).await;
            Err("queue unavailable; event kept for replay".to_string())
        } else {
            Ok(Written::Enqueued(p.jobs))
        };
        let _ = p.reply.send(answer);
    }
}

/// Why a delivery's body could not be read.
#[derive(Debug)]
enum BodyFault {
    /// Larger than `SYNCBRIDGE_WEBHOOK_MAX_BYTES`.
    TooLarge(usize),
    /// Not all there within `SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS`.
    TimedOut(String),
    /// The connection broke while it was being read.
    Broken(String),
}

/// How much of an oversized body is read (and thrown away) before the 413:
/// enough for anything the local host's front door lets through.
const DRAIN_CAP: u64 = 128 * 1024 * 1024;

/// Reads a delivery's body, at most `limit` bytes. A larger body is still
/// read to its end (up to [`DRAIN_CAP`], within the body read timeout) and
/// thrown away before the 413 goes out, without being kept in memory:
/// closing a connection with unread bytes resets it, and a proxy in front
/// (the local host's front door) that is still sending would then lose the
/// answer and report the handler unreachable.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyFault> {
    use http_body_util::BodyExt as _;
    let limit64 = limit as u64;
    if axum::body::HttpBody::size_hint(&body).lower() > limit64.saturating_add(DRAIN_CAP) {
        return Err(BodyFault::TooLarge(limit));
    }
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if syncbridge_protocol::server::is_body_timeout(&e) {
                BodyFault::TimedOut(e.to_string())
            } else {
                BodyFault::Broken(e.to_string())
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit64.saturating_add(DRAIN_CAP) {
            return Err(BodyFault::TooLarge(limit));
        }
        if seen > limit64 {
            kept = bytes::BytesMut::new();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit64 {
        return Err(BodyFault::TooLarge(limit));
    }
    Ok(kept.freeze())
}

fn reject_body(s: &WebhookState, fault: BodyFault) -> Response {
    match fault {
        BodyFault::TooLarge(limit) => reject(
            s,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {limit} bytes (SYNCBRIDGE_WEBHOOK_MAX_BYTES)"),
        ),
        BodyFault::TimedOut(e) => reject(s, StatusCode::REQUEST_TIMEOUT, "body_timeout", e),
        BodyFault::Broken(e) => reject(
            s,
            StatusCode::BAD_REQUEST,
            "broken_body",
            format!("the body could not be read: {e}"),
        ),
    }
}

/// The first (client-side) value of an `X-Forwarded-*` header.
fn forwarded<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    let first = v.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

async fn receive(
    State(s): State<WebhookState>,
    Path(connection_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let app = &s.app;
    let body = match read_body(body, app.settings.webhook_max_bytes).await {
        Ok(b) => b,
        Err(fault) => return reject_body(&s, fault),
    };
    let Ok(conn_id) = ConnectionId::parse(connection_id) else {
        return reject(
            &s,
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "unknown connection".into(),
        );
    };
    tracing::Span::current().record("connection", conn_id.as_str());
    let info = match cached_info(&s, &conn_id).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return reject(
                &s,
                StatusCode::NOT_FOUND,
                "unknown_connection",
                "unknown connection".into(),
            );
        }
        Err(e) => {
            return reject(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            );
        }
    };
    // Settings no delivery could ever pass are the operator's to fix: a
    // 4xx that says so (a 5xx would only make the provider retry).
    let scheme = match &info.scheme {
        Ok(sc) => sc,
        Err(e) => {
            return reject(
                &s,
                StatusCode::FORBIDDEN,
                "bad_scheme",
                format!("this connection's webhook scheme cannot be used: {e}"),
            );
        }
    };
    let secrets = match &info.secrets {
        Ok(list) => list,
        Err(e) => return reject(&s, StatusCode::FORBIDDEN, "bad_configuration", e.clone()),
    };
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    // The URL the provider called (signed by Twilio, Square, HubSpot v2/v3
    // and `{url}` templates). Behind the Functions host's proxy (and the
    // local host's) `Host` names this handler; the caller's host and scheme
    // arrive as `X-Forwarded-Host` / `X-Forwarded-Proto`.
    let host = forwarded(&headers, "x-forwarded-host")
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    let proto = forwarded(&headers, "x-forwarded-proto").unwrap_or("http");
    let url = format!("{proto}://{host}{uri}");
    let req = Request {
        method: method.as_str(),
        url: &url,
        headers: &header_list,
        body: &body,
    };
    let now = app.clock.now();
    let tolerance = app.settings.webhook_tolerance.as_secs() as i64;
    let verified =
        match syncbridge_signatures::verify(scheme, secrets, &req, now.as_unix_secs(), tolerance) {
            Ok(v) => v,
            Err(e) => {
                use syncbridge_signatures::VerifyError as V;
                let (status, what) = match &e {
                    V::MissingHeader(_)
                    | V::MalformedHeader { .. }
                    | V::NoSupportedSignature(_) => {
                        (StatusCode::BAD_REQUEST, "malformed_signature")
                    }
                    V::UnsupportedContent(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content")
                    }
                    V::TimestampOutsideTolerance { .. } => {
                        (StatusCode::UNAUTHORIZED, "stale_timestamp")
                    }
                    V::NoSecrets | V::InvalidSecret(_) | V::InvalidConfig(_) => {
                        let message = format!(
                            "this connection's webhook settings cannot verify any delivery ({e}); \
                         set them again with `syncbridge connections add --replace`"
                        );
                        return reject(&s, StatusCode::FORBIDDEN, "bad_configuration", message);
                    }
                    _ => (StatusCode::UNAUTHORIZED, "bad_signature"),
                };
                return reject(&s, status, what, e.to_string());
            }
        };
    // A handshake answer (Zoom's) is keyed with the secret the provider
    // signed with: during a rotation, the one that verified.
    let signer = || {
        secrets
            .iter()
            .find(|s| {
                syncbridge_signatures::verify(
                    scheme,
                    std::slice::from_ref(*s),
                    &req,
                    now.as_unix_secs(),
                    tolerance,
                )
                .is_ok()
            })
            .or(secrets.first())
    };
    if let Some(first) = secrets.first()
        && syncbridge_signatures::handshake(scheme, first, &body).is_some()
        && let Some(h) = signer().and_then(|s| syncbridge_signatures::handshake(scheme, s, &body))
    {
        s.counters.bump("handshake");
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, h.content_type)],
            h.body,
        )
            .into_response();
    }
    // The provider's delivery id correlates the follow-up jobs' logs with the
    // delivery (and with the provider's own delivery log); else a new id.
    let correlation_id = verified
        .event_id
        .clone()
        .unwrap_or_else(crate::correlation::new_id);
    tracing::Span::current().record("correlation_id", correlation_id.as_str());
    let dedup_key = verified
        .event_id
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let (messages, quarantine) = match route(
        &info.conn,
        &info.inbound,
        &dedup_key,
        &correlation_id,
        &body,
        now,
    ) {
        Ok(m) => (m, None),
        Err(q) => (Vec::new(), Some(*q)),
    };
    let event = WebhookEvent {
        connection: conn_id,
        dedup_key,
        received_at: now,
        body: body.to_vec(),
    };
    let (reply, answer) = oneshot::channel();
    if s.writer
        .send(Pending {
            event,
            jobs: messages.len(),
            messages,
            quarantine,
            reply,
        })
        .await
        .is_err()
    {
        return reject(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "event writer stopped".into(),
        );
    }
    match answer.await {
        Ok(Ok(Written::Enqueued(jobs))) => {
            s.counters.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(jobs, "webhook accepted");
            // What `Json(json!({"status": "accepted", "jobs": jobs}))` writes, without the tree.
            json_text(
                StatusCode::ACCEPTED,
                format!(r#"{{"jobs":{jobs},"status":"accepted"}}"#),
            )
        }
        Ok(Ok(Written::Duplicate)) => {
            s.counters.bump("duplicate");
            json_text(StatusCode::OK, r#"{"status":"duplicate"}"#.to_owned())
        }
        Ok(Ok(Written::Quarantined)) => {
            s.counters.bump("quarantined");
            tracing::warn!(
                reason = "names no object a sync task covers",
                "webhook event quarantined"
            );
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "status": "quarantined" })),
            )
                .into_response()
        }
        Ok(Err(e)) => reject(&s, StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
        Err(_) => reject(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "event writer stopped".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Object names are found at the top level and in batches; other bodies name none.
    #[test]
    fn named_objects_table() {
        assert_eq!(named_objects(br#"{"object":"contacts"}"#), ["contacts"]);
        assert_eq!(
            named_objects(br#"[{"object":"deals"},{"objectType":"contacts"},{"object":"deals"}]"#),
            ["contacts", "deals"]
        );
        assert!(named_objects(b"not json").is_empty());
        assert!(named_objects(br#"{"type":"ping"}"#).is_empty());
        // Stripe's envelope: names no record type (routes to every task).
        assert!(
            named_objects(br#"{"id":"evt_1","object":"event","type":"customer.updated"}"#)
                .is_empty()
        );
    }

    /// What was tried: deliveries to 10,050 distinct connection ids nobody
    /// configured (no signature needed to get this far). What must hold: the
    /// settings cache stays within its bound.
    #[tokio::test]
    async fn the_settings_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppState::embedded(crate::Settings::for_data_dir(dir.path())).unwrap();
        let (writer, _rx) = mpsc::channel(1);
        let s = WebhookState {
            app,
            counters: Arc::default(),
            cache: Arc::default(),
            writer,
        };
        for n in 0..CACHE_CAP + 50 {
            let id = ConnectionId::parse(format!("nobody{n}")).unwrap();
            assert!(cached_info(&s, &id).await.unwrap().is_none());
        }
        let len = s.cache.map.lock().unwrap().len();
        assert!(len <= CACHE_CAP, "{len} entries");
    }
}
