//! The Azure Cosmos DB (NoSQL API) [`Store`], over the official
//! `azure_data_cosmos` SDK.
//!
//! # Data layout
//!
//! One container (default `state`) with partition key path **`/pk`**. Every
//! document that belongs to a connection — the connection itself, its tasks,
//! records, runs, sealed credential and webhook events — has `pk` = the
//! connection id, so a page of records **and** its task's cursor live in one
//! logical partition and commit in one transactional batch. Locks and
//! quarantined messages live in their own `~`-prefixed partitions (see the
//! `docs` module for every document shape). The product API's part (API
//! keys by hash in `~apikey`, keyset pages of connections and runs, the
//! function heartbeats in `~beats`) is in the `api` module; its change
//! calls' idempotency keys (`~idem.<scope>` partitions) and the pages of
//! parked conflicts and of the audit in `changes`.
//!
//! Consequences, documented for operators:
//! - a logical partition holds at most 20 GB, so one connection's records are
//!   limited to roughly that (hierarchical partition keys `/pk` + `/object`
//!   would lift it but make a task and its records span two levels — a later
//!   change, not needed for the sizes the product targets);
//! - cross-connection queries (`due_tasks`, `list_connections`, `list_runs`,
//!   `credentials_due`, `stall_candidates`, `due_pushes`, `list_local_changes` and
//!   `list_audit` of all connections, and locating a task by id) are
//!   cross-partition; the multi-column `ORDER BY`s need the composite indexes
//!   declared in `infra/main.bicep` (see [`COMPOSITE_INDEXES`]). The outbound
//!   queries order by one property each (`push_due_at`, `local_key`,
//!   `log_order`, see the `docs` module) and need none.
//!
//! # Page commits
//!
//! [`Store::commit_page`] reads the task (and its ETag) and the page's
//! existing records, then writes in transactional batches (≤ 100 operations,
//! ≤ [`MAX_BATCH_BYTES`]):
//! - a page that fits is **one** batch: record creates/replaces/deletes plus
//!   the task replace with `If-Match: <task etag>`, all or nothing;
//! - a larger page is split: every batch but the last carries, instead of the
//!   task write, a **guard** — a read of the task with `If-Match: <task etag>` —
//!   so it commits only while the task is unchanged (the lease cannot have
//!   been taken over: taking a lease rewrites the task). The last batch
//!   carries the cursor. A crash between batches leaves records *ahead* of the
//!   cursor, never behind: the resumed run re-fetches the page, finds the
//!   content hashes equal, skips those records and bumps no version — so the
//!   invariant "a record's version grows by one exactly when its hash changes"
//!   survives, and no committed page is lost. Only the per-page counts of a
//!   re-fetched page differ (already-written records count as unchanged).
//!
//! A `412` on any batch (the task changed: watchdog, `request_run`, or a
//! lease take-over) re-reads the task: lease gone → [`StoreError::LeaseLost`],
//! otherwise the remaining operations are retried under the new ETag.
//!
//! Records with a local state (outbound sync) are **held**: the plan counts
//! them `held` and writes nothing for them, upserts and deletes alike. An
//! upsert older than the stored record (`remote_updated_at`, checked after the
//! unchanged-hash check) is `stale` and skipped (core's `store::classify`
//! decides, as in the SQLite store). If a record gains a local
//! state between the read and the batch, its `If-Match` (or create) fails and
//! the re-read holds it.
//!
//! Records feed: every batch that writes records also replaces the
//! connection's sequence counter under its ETag (see the `feed` module) and
//! stamps each written document with the numbers it drew; a delete replaces
//! the document with a tombstone (its data read just before the batch)
//! instead of deleting it. A batch therefore holds at most 98 record
//! operations (counter and task guard/write take two slots).
//!
//! # Record writes
//!
//! [`Store::write_record`] reads the record (version and ETag), checks the
//! expected version (`Conflict` if it differs), checks that a move's target
//! id is free, looks up which of the audit keys are already stored, and then
//! sends **one** transactional batch in the connection's partition:
//! - the record: replace under `If-Match`; or a tombstone over it under
//!   `If-Match` (removal); or, for a move, a tombstone at the old id + the
//!   new id (created, or replacing a tombstone there); or create when it must
//!   not exist yet (replacing a tombstone under its ETag if there is one);
//! - the connection's sequence counter, when the write stamps the feed
//!   (creates, content changes, moves, removals — not a local-state-only write);
//! - one create per audit entry whose key is not stored yet (id derived from
//!   the key: `audit.<hash(key)>`).
//!
//! Audit entries are **created**, not upserted: an upsert keyed by the key
//! would be idempotent only if a key always came with the same content, but a
//! redelivered decision carries a later `at` (and may word its entry
//! differently), so an upsert would rewrite the first entry and reorder the
//! log. Instead stored keys are left out of the batch; a key that appears
//! concurrently makes its create fail with 409, the whole batch rolls back
//! (nothing written), and the retry re-reads and skips it. A 412/404 on the
//! record (a concurrent write) likewise rolls back and re-reads: the version
//! check then answers `Conflict`, or the write is retried under the new ETag
//! if the version is still the expected one; a concurrent stamp of the
//! counter likewise. Limits: the record and its audit
//! entries must fit one batch (≤ 98 audit entries, ≤ [`MAX_BATCH_BYTES`]);
//! a larger write is refused before anything is sent (97 for a move). Audit keys are unique
//! per connection (the partition), and an entry must belong to the write's
//! connection.
//!
//! # Concurrency and throttling
//!
//! - Read-modify-write (leases, credentials, locks, the quarantine counter)
//!   is ETag compare-and-swap: `If-Match`, and on `412` re-read and retry.
//! - Insert-if-absent (credential create, webhook dedup, locks) is a plain
//!   create: `409` means it exists.
//! - `429`: the SDK already retries throttled requests honouring
//!   `x-ms-retry-after-ms`; if it gives up, this store waits the advertised
//!   `x-ms-retry-after-ms` itself and retries up to
//!   [`CosmosStoreOptions::throttle_retries`] times before answering
//!   [`StoreError::Unavailable`].

mod api;
mod changes;
mod docs;
mod feed;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::Etag;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::{TransactionalBatch, TransactionalBatchResponse};
use azure_data_cosmos::options::{
    BatchReadOptions, BatchReplaceOptions, ItemWriteOptions, Precondition, Region,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosError, FeedScope, Query, RoutingStrategy,
};
use base64::Engine as _;
use futures::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::model::{
    AuditRecord, Connection, Lease, Priority, QuarantinedMessage, Record, SyncRun, SyncTask,
    TaskChange, WebhookEvent,
};
use syncbridge_core::store::feed::action_of_write;
use syncbridge_core::store::{
    AuditEntry, AuditQuery, ClaimOutcome, ConflictQuery, IdempotencyClaim, StoredAnswer,
};
use syncbridge_core::store::{
    ConnectionQuery, DeleteAction, FeedEntry, FeedQuery, LastAction, PageAction, PageCommit,
    PageOutcome, QuarantineEntry, RecordUpsert, RecordWrite, RunQuery, SealedCredential,
    StoredHead, classify, classify_delete,
};
use syncbridge_core::{
    Clock, ConnectionId, ExternalId, ObjectType, RunId, Store, StoreError, SystemClock, TaskId,
    TenantId, Timestamp,
};

use docs::{
    AuditDoc, ConnectionDoc, CounterDoc, CredentialDoc, LockDoc, QUARANTINE_PK, QuarantineDoc,
    RecordDoc, RecordHead, RunDoc, TaskDoc, WebhookDoc,
};

/// Largest transactional batch this store sends (the service limit is 2 MB;
/// the margin covers the operation envelope and request headers).
pub const MAX_BATCH_BYTES: usize = 1_800_000;
/// Most operations in one transactional batch (service limit).
pub const MAX_BATCH_OPS: usize = 100;
/// Largest single document (service limit: 2 MB).
pub const MAX_ITEM_BYTES: usize = 2 * 1024 * 1024;

/// The composite indexes the container's indexing policy must declare for the
/// cross-partition `ORDER BY`s, the records feed's object filter with
/// `ORDER BY seq` (which runs without it, but reads fewer index entries with
/// it) and the API's status filters (`/doc/status`, the one path under the
/// excluded `/doc/*` the policy includes again) — mirrored in
/// `infra/main.bicep` (a test below checks).
pub const COMPOSITE_INDEXES: &[&[(&str, &str)]] = &[
    &[("/priority", "ascending"), ("/eligible_at", "ascending")],
    &[("/started_at", "descending"), ("/run_id", "descending")],
    &[("/object", "ascending"), ("/seq", "ascending")],
    &[("/doc/status", "ascending"), ("/pk", "ascending")],
    &[
        ("/doc/status", "descending"),
        ("/started_at", "descending"),
        ("/run_id", "descending"),
    ],
    &[("/log_order", "ascending"), ("/id", "ascending")],
];

/// Paths under an excluded path that the indexing policy includes again
/// (the more precise path wins) — mirrored in `infra/main.bicep`.
pub const INCLUDED_PATHS: &[&str] = &["/*", "/doc/status/?"];

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosSettings {
    /// Account endpoint, `https://<account>.documents.azure.com:443/`.
    pub endpoint: String,
    /// Database name (infra default `syncbridge`).
    pub database: String,
    /// Container name (infra default `state`), partition key path `/pk`.
    pub container: String,
    /// Azure region the app runs in (e.g. `East US`), for the SDK's routing.
    pub region: String,
}

impl CosmosSettings {
    /// Reads `SYNCBRIDGE_COSMOS_ENDPOINT` (required), `SYNCBRIDGE_COSMOS_DATABASE`
    /// (default `syncbridge`), `SYNCBRIDGE_COSMOS_CONTAINER` (default `state`)
    /// and `SYNCBRIDGE_COSMOS_REGION` (default: App Service's `REGION_NAME`,
    /// else `East US`) through `var`. A missing endpoint is `Err` naming it.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let endpoint = var("SYNCBRIDGE_COSMOS_ENDPOINT")
            .filter(|v| !v.trim().is_empty())
            .ok_or("SYNCBRIDGE_COSMOS_ENDPOINT is not set (the Cosmos DB account endpoint)")?;
        Ok(CosmosSettings {
            endpoint,
            database: var("SYNCBRIDGE_COSMOS_DATABASE").unwrap_or_else(|| "syncbridge".into()),
            container: var("SYNCBRIDGE_COSMOS_CONTAINER").unwrap_or_else(|| "state".into()),
            region: var("SYNCBRIDGE_COSMOS_REGION")
                .or_else(|| var("REGION_NAME"))
                .unwrap_or_else(|| "East US".into()),
        })
    }
}

/// Tuning knobs (defaults suit production).
#[derive(Debug, Clone)]
pub struct CosmosStoreOptions {
    /// Extra retries of a `429` after the SDK's own throttling retries gave up.
    pub throttle_retries: u32,
    /// Longest wait honoured from `x-ms-retry-after-ms`.
    pub max_throttle_wait: Duration,
    /// Compare-and-swap attempts before answering [`StoreError::Conflict`].
    pub cas_attempts: u32,
    /// Largest batch payload (see [`MAX_BATCH_BYTES`]); lower it to exercise splitting.
    pub max_batch_bytes: usize,
    /// Most operations per batch (see [`MAX_BATCH_OPS`]).
    pub max_batch_ops: usize,
}

impl Default for CosmosStoreOptions {
    fn default() -> Self {
        CosmosStoreOptions {
            throttle_retries: 5,
            max_throttle_wait: Duration::from_secs(10),
            cas_attempts: 16,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_batch_ops: MAX_BATCH_OPS,
        }
    }
}

/// The Cosmos DB store. Cheap to clone.
#[derive(Clone)]
pub struct CosmosStore {
    container: ContainerClient,
    options: CosmosStoreOptions,
    /// Task id → partition (connection id): point reads instead of a
    /// cross-partition lookup. Only a hint; a miss or stale entry falls back
    /// to a query.
    task_pk: Arc<RwLock<HashMap<String, String>>>,
    /// Stamps the records feed's `last_modified_at` (the wall clock unless
    /// a test injects one, see [`CosmosStore::with_clock`]).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

type CResult<T> = Result<T, CosmosError>;

fn status(e: &CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

fn retry_after(e: &CosmosError) -> Option<Duration> {
    e.response()
        .and_then(|r| r.headers().retry_after_ms)
        .map(Duration::from_millis)
}

/// Maps an SDK error to the store's error vocabulary.
fn map_err(what: &str, e: CosmosError) -> StoreError {
    match status(&e) {
        400 | 413 => StoreError::Corrupt(format!("{what}: rejected by Cosmos DB: {e}")),
        409 | 412 => StoreError::Conflict(format!("{what}: {e}")),
        404 => StoreError::NotFound(format!("{what}: {e}")),
        _ => StoreError::Unavailable(format!("{what}: {e}")),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn query(text: impl Into<String>, params: &[(&str, serde_json::Value)]) -> Query {
    let mut q = Query::from(text.into());
    for (name, value) in params {
        q = q
            .with_parameter(*name, value)
            .expect("a JSON value always serializes");
    }
    q
}

fn if_match(etag: &str) -> Precondition {
    Precondition::if_match(Etag::from(etag))
}

impl CosmosStore {
    /// Connects with a Microsoft Entra credential (in Azure: the Function
    /// App's managed identity, `azure_identity::ManagedIdentityCredential`;
    /// the identity needs the *Cosmos DB Built-in Data Contributor* role).
    /// The database and container must exist (infra creates them).
    pub async fn connect(
        settings: &CosmosSettings,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, StoreError> {
        let endpoint: AccountEndpoint = settings.endpoint.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "SYNCBRIDGE_COSMOS_ENDPOINT {:?} is not an account endpoint: {e}",
                settings.endpoint
            ))
        })?;
        let client = CosmosClient::builder()
            .build(
                AccountReference::with_credential(endpoint, credential),
                RoutingStrategy::ProximityTo(Region::from(settings.region.clone())),
            )
            .await
            .map_err(|e| map_err("connecting to Cosmos DB", e))?;
        Self::from_client(
            &client,
            &settings.database,
            &settings.container,
            CosmosStoreOptions::default(),
        )
        .await
    }

    /// A store over an already built client (tests, custom wiring).
    pub async fn from_client(
        client: &CosmosClient,
        database: &str,
        container: &str,
        options: CosmosStoreOptions,
    ) -> Result<Self, StoreError> {
        let container = client
            .database_client(database)
            .container_client(container, None)
            .await
            .map_err(|e| map_err(&format!("opening container {database}/{container}"), e))?;
        Ok(CosmosStore {
            container,
            options,
            task_pk: Arc::new(RwLock::new(HashMap::new())),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store, stamping record changes with `clock`'s time (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The container client underneath (diagnostics, tests).
    pub fn container(&self) -> &ContainerClient {
        &self.container
    }

    // ---- plumbing ----------------------------------------------------------

    /// Runs `f`, waiting out `429`s the SDK could not absorb.
    async fn throttled<T, F, Fut>(&self, mut f: F) -> CResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CResult<T>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e) if e.status().is_throttled() && attempt < self.options.throttle_retries => {
                    attempt += 1;
                    let wait = retry_after(&e)
                        .unwrap_or(Duration::from_millis(100 << attempt.min(6)))
                        .min(self.options.max_throttle_wait);
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Cosmos DB throttled (429); waiting"
                    );
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Point read; `None` on 404. Returns the document with its ETag.
    async fn read<T: DeserializeOwned>(
        &self,
        pk: &str,
        id: &str,
    ) -> Result<Option<(T, String)>, StoreError> {
        let r = self
            .throttled(|| self.container.read_item(pk.to_owned(), id, None))
            .await;
        match r {
            Ok(resp) => {
                let etag = resp
                    .headers()
                    .etag()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let doc = resp.into_model::<T>().map_err(|e| corrupt(id, e))?;
                Ok(Some((doc, etag)))
            }
            Err(e) if status(&e) == 404 => Ok(None),
            Err(e) => Err(map_err(&format!("reading {id}"), e)),
        }
    }

    async fn upsert<T: Serialize>(&self, pk: &str, id: &str, doc: &T) -> Result<(), StoreError> {
        self.throttled(|| self.container.upsert_item(pk.to_owned(), id, doc, None))
            .await
            .map(|_| ())
            .map_err(|e| map_err(&format!("writing {id}"), e))
    }

    /// Create; `Ok(false)` on 409 (already exists).
    async fn create<T: Serialize>(&self, pk: &str, id: &str, doc: &T) -> Result<bool, StoreError> {
        match self
            .throttled(|| self.container.create_item(pk.to_owned(), id, doc, None))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == 409 => Ok(false),
            Err(e) => Err(map_err(&format!("creating {id}"), e)),
        }
    }

    /// Replace under `If-Match`; `Ok(false)` on 412 (or 404: it vanished).
    async fn replace_if<T: Serialize>(
        &self,
        pk: &str,
        id: &str,
        doc: &T,
        etag: &str,
    ) -> Result<bool, StoreError> {
        let r = self
            .throttled(|| {
                self.container.replace_item(
                    pk.to_owned(),
                    id,
                    doc,
                    Some(ItemWriteOptions::default().with_precondition(if_match(etag))),
                )
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if matches!(status(&e), 412 | 404) => Ok(false),
            Err(e) => Err(map_err(&format!("replacing {id}"), e)),
        }
    }

    /// Delete, optionally under `If-Match`; `Ok(false)` if absent or changed.
    async fn delete(&self, pk: &str, id: &str, etag: Option<&str>) -> Result<bool, StoreError> {
        let r = self
            .throttled(|| {
                let options =
                    etag.map(|etag| ItemWriteOptions::default().with_precondition(if_match(etag)));
                self.container.delete_item(pk.to_owned(), id, options)
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if matches!(status(&e), 412 | 404) => Ok(false),
            Err(e) => Err(map_err(&format!("deleting {id}"), e)),
        }
    }

    /// Runs a query to the end. `pk` = `None` is cross-partition.
    async fn query_all<T: DeserializeOwned + Send + 'static>(
        &self,
        q: Query,
        pk: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let text = format!("{q:?}");
        self.throttled(|| {
            let q = q.clone();
            async move {
                let scope = match pk {
                    Some(pk) => FeedScope::partition(pk.to_owned()),
                    None => FeedScope::full_container(),
                };
                let stream = self.container.query_items::<T>(q, scope, None).await?;
                stream.try_collect::<Vec<T>>().await
            }
        })
        .await
        .map_err(|e| map_err(&format!("query {text}"), e))
    }

    /// Executes a batch. `Ok(Ok(()))` committed; `Ok(Err(status))` rolled
    /// back because an operation failed with `status` (409/412/404);
    /// `Err` for everything else.
    async fn run_batch(&self, batch: TransactionalBatch) -> Result<Result<(), u16>, StoreError> {
        let r = self
            .throttled(|| {
                self.container
                    .execute_transactional_batch(batch.clone(), None)
            })
            .await;
        match r {
            Ok(resp) => {
                let results: TransactionalBatchResponse = resp
                    .into_model()
                    .map_err(|e| corrupt("batch response", e))?;
                match results
                    .results()
                    .iter()
                    .find(|r| !r.is_success() && r.status_code() != 424)
                {
                    None => Ok(Ok(())),
                    Some(failed) if matches!(failed.status_code(), 404 | 409 | 412) => {
                        Ok(Err(failed.status_code()))
                    }
                    Some(failed) if failed.status_code() == 429 => Err(StoreError::Unavailable(
                        "transactional batch throttled (429)".into(),
                    )),
                    Some(failed) => Err(StoreError::Unavailable(format!(
                        "transactional batch operation failed with {}",
                        failed.status_code()
                    ))),
                }
            }
            Err(e) if matches!(status(&e), 404 | 409 | 412) => Ok(Err(status(&e))),
            Err(e) => Err(map_err("transactional batch", e)),
        }
    }

    // ---- tasks -------------------------------------------------------------

    fn remember_task(&self, task: &str, pk: &str) {
        self.task_pk
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_owned(), pk.to_owned());
    }

    fn forget_task(&self, task: &str) {
        self.task_pk
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
    }

    /// Reads a task with its ETag, finding its partition (cache, then a
    /// cross-partition lookup).
    async fn load_task(&self, id: &TaskId) -> Result<Option<(TaskDoc, String)>, StoreError> {
        let cached = self
            .task_pk
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.as_str())
            .cloned();
        let doc_id = docs::task_id(id.as_str());
        if let Some(pk) = cached {
            if let Some(found) = self.read::<TaskDoc>(&pk, &doc_id).await? {
                return Ok(Some(found));
            }
            self.forget_task(id.as_str());
        }
        let pks: Vec<String> = self
            .query_all(
                query(
                    "SELECT VALUE c.pk FROM c WHERE c.type = 'task' AND c.task_id = @id",
                    &[("@id", id.as_str().into())],
                ),
                None,
            )
            .await?;
        for pk in pks {
            if let Some(found) = self.read::<TaskDoc>(&pk, &doc_id).await? {
                self.remember_task(id.as_str(), &pk);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Read-modify-write of a task under `If-Match`: `change` (one of
    /// [`SyncTask`]'s store operations) decides whether to write.
    async fn update_task<R>(
        &self,
        id: &TaskId,
        mut change: impl FnMut(&mut SyncTask) -> TaskChange<R>,
    ) -> Result<R, StoreError> {
        for _ in 0..self.options.cas_attempts {
            let Some((doc, etag)) = self.load_task(id).await? else {
                return Err(StoreError::NotFound(format!("task {id}")));
            };
            let mut task = doc.doc.clone();
            match change(&mut task) {
                TaskChange::Keep(stop) => return Ok(stop),
                TaskChange::Write(result) => {
                    let new = TaskDoc::new(&task);
                    if self.replace_if(&doc.pk, &new.id, &new, &etag).await? {
                        return Ok(result);
                    }
                    tracing::debug!(task = %id, "task changed concurrently (412); re-reading");
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "task {id}: compare-and-swap kept failing"
        )))
    }

    // ---- page commit -------------------------------------------------------

    async fn record_heads(
        &self,
        pk: &str,
        ids: &[String],
    ) -> Result<HashMap<String, RecordHead>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(256) {
            let heads: Vec<RecordHead> = self
                .query_all(
                    query(
                        "SELECT c.id, c.hash, c.version, c._etag, c.remote_updated_at, \
                         c.local_key, c.first_seen_at, c.deleted_at FROM c \
                         WHERE c.type = 'record' AND ARRAY_CONTAINS(@ids, c.id)",
                        &[("@ids", serde_json::json!(chunk))],
                    ),
                    Some(pk),
                )
                .await?;
            out.extend(heads.into_iter().map(|h| (h.id.clone(), h)));
        }
        Ok(out)
    }
}

/// What a page commit does to one record document.
#[derive(Debug, Clone)]
enum RecordOp {
    /// Write `doc` (create when `etag` is `None`, else replace under
    /// `If-Match`), stamped for the records feed as `action`.
    Put {
        doc: Box<RecordDoc>,
        etag: Option<String>,
        action: LastAction,
    },
    /// Turn the stored live document (read under this ETag) into a
    /// tombstone; its data is read before the batch ([`CosmosStore::bury`]).
    Bury(String),
}

impl RecordOp {
    fn size(&self) -> usize {
        match self {
            RecordOp::Put { doc, .. } => {
                serde_json::to_vec(doc).map(|v| v.len()).unwrap_or(0) + 256
            }
            RecordOp::Bury(_) => 256,
        }
    }

    /// Adds the op to `batch`, stamped with the next sequence of `seq`.
    fn add_to(
        self,
        id: String,
        batch: TransactionalBatch,
        seq: &mut feed::SeqCounter,
        now: Timestamp,
    ) -> Result<TransactionalBatch, StoreError> {
        let RecordOp::Put {
            mut doc,
            etag,
            action,
        } = self
        else {
            return Err(StoreError::Corrupt(format!(
                "record {id}: a burial reached the batch unresolved"
            )));
        };
        doc.stamp(seq.draw(), now.as_millis(), action);
        Ok(match etag {
            None => batch.create_item(*doc).map_err(|e| corrupt(&id, e))?,
            Some(etag) => batch
                .replace_item(
                    id.clone(),
                    *doc,
                    Some(BatchReplaceOptions::default().with_precondition(if_match(&etag))),
                )
                .map_err(|e| corrupt(&id, e))?,
        })
    }
}

/// The operations of a page (one per record document) and how each input counts.
type PagePlan = (Vec<(String, RecordOp)>, Vec<(String, Counted)>);

/// How one input of a page counts ([`classify`]'s answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Upsert(PageAction),
    Delete(DeleteAction),
}

/// The state a page leaves one record document in.
#[derive(Debug, Clone)]
enum Final {
    /// Live, last written by an upsert that was `action`.
    Live(Box<RecordDoc>, LastAction),
    /// Deleted: the document an upsert of this page wrote, or `None` to
    /// bury the stored one.
    Gone(Option<Box<RecordDoc>>),
}

impl CosmosStore {
    /// Plans the page against the stored heads: one op per record document
    /// (sequential semantics within the page, like SQLite's loop), plus how
    /// each input counts. [`classify`] decides; tombstones count as absent.
    fn plan_page(
        page: &PageCommit,
        heads: &HashMap<String, RecordHead>,
    ) -> Result<PagePlan, StoreError> {
        let (pk, object) = (page.connection.as_str(), page.object.as_str());
        // Current state as the page is applied: id → the record, or `None` once deleted.
        let mut state: HashMap<String, Option<StoredHead>> = HashMap::new();
        let mut finals: HashMap<String, Final> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut counted = Vec::new();
        let current = |state: &HashMap<String, Option<StoredHead>>, id: &str| {
            state.get(id).cloned().unwrap_or_else(|| {
                heads.get(id).filter(|h| h.is_live()).map(|h| StoredHead {
                    hash: h.hash.clone(),
                    version: h.version,
                    remote_updated_at: h.remote_updated_at.map(Timestamp::from_millis),
                    held: h.local_key.is_some(),
                })
            })
        };
        for u in &page.upserts {
            let id = docs::record_id(object, u.external_id.as_str());
            let stored = current(&state, &id);
            let action = classify(u, stored.as_ref());
            counted.push((id.clone(), Counted::Upsert(action)));
            let Some(version) = action.version() else {
                continue;
            };
            let doc = page_doc(pk, object, u, version, heads.get(&id))?;
            state.insert(
                id.clone(),
                Some(StoredHead {
                    hash: u.hash.clone(),
                    version,
                    remote_updated_at: u.remote_updated_at,
                    held: false,
                }),
            );
            if !finals.contains_key(&id) {
                order.push(id.clone());
            }
            let last = action_of_write(stored.is_some());
            finals.insert(id, Final::Live(Box::new(doc), last));
        }
        for d in &page.deletes {
            let id = docs::record_id(object, d.as_str());
            let action = classify_delete(current(&state, &id).as_ref());
            counted.push((id.clone(), Counted::Delete(action)));
            if action != DeleteAction::Delete {
                continue;
            }
            state.insert(id.clone(), None);
            let written = match finals.remove(&id) {
                Some(Final::Live(doc, _)) => Some(doc),
                Some(Final::Gone(_)) | None => {
                    order.push(id.clone());
                    None
                }
            };
            finals.insert(id, Final::Gone(written));
        }
        let mut ops = Vec::new();
        for id in order {
            let etag = heads.get(&id).map(|h| h.etag.clone());
            let op = match finals.remove(&id) {
                Some(Final::Live(doc, action)) => RecordOp::Put { doc, etag, action },
                // Written and deleted within the page: a tombstone of what was written.
                Some(Final::Gone(Some(doc))) => RecordOp::Put {
                    doc: Box::new(doc.into_tombstone()),
                    etag,
                    action: LastAction::Deleted,
                },
                Some(Final::Gone(None)) => match etag {
                    Some(etag) => RecordOp::Bury(etag),
                    None => continue,
                },
                None => continue,
            };
            ops.push((id, op));
        }
        Ok((ops, counted))
    }
}

/// The document an applied page upsert writes (feed stamp added at batch
/// time); a live record keeps its `first_seen_at`.
fn page_doc(
    pk: &str,
    object: &str,
    u: &RecordUpsert,
    version: i64,
    head: Option<&RecordHead>,
) -> Result<RecordDoc, StoreError> {
    let doc = RecordDoc {
        id: docs::record_id(object, u.external_id.as_str()),
        pk: pk.to_owned(),
        kind: "record".into(),
        object: object.to_owned(),
        external_id: u.external_id.to_string(),
        data: u.data.clone(),
        hash: u.hash.clone(),
        version,
        remote_updated_at: u.remote_updated_at.map(|t| t.as_millis()),
        local: None,
        push_due_at: None,
        local_key: None,
        conflict_key: None,
        seq: None,
        first_seen_at: head.filter(|h| h.is_live()).and_then(|h| h.first_seen_at),
        last_modified_at: None,
        last_action: None,
        deleted_at: None,
    };
    let size = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::Corrupt(format!(
            "record {} of {object} is {size} bytes; Cosmos DB items are limited to 2 MB",
            u.external_id
        )));
    }
    Ok(doc)
}

/// The record document ids a page touches that no earlier batch of the call committed.
fn page_ids(page: &PageCommit, done: &HashSet<String>) -> Vec<String> {
    let object = page.object.as_str();
    let mut ids: Vec<String> = page
        .upserts
        .iter()
        .map(|u| docs::record_id(object, u.external_id.as_str()))
        .chain(
            page.deletes
                .iter()
                .map(|d| docs::record_id(object, d.as_str())),
        )
        .filter(|id| !done.contains(id))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The page's outcome: each input counted once.
fn page_outcome(counted: Vec<(String, Counted)>) -> PageOutcome {
    let mut out = PageOutcome::default();
    for (_, c) in counted {
        match c {
            Counted::Upsert(a) => out.count(a),
            Counted::Delete(d) => out.count_delete(d),
        }
    }
    out
}

/// The task write that ends a page commit: its new state, under the ETag read.
struct TaskWrite {
    doc_id: String,
    doc: TaskDoc,
    etag: String,
}

impl CosmosStore {
    /// Reads a page's task and checks the lease.
    async fn page_task(&self, page: &PageCommit) -> Result<(SyncTask, String), StoreError> {
        let pk = page.connection.as_str();
        let Some((task_doc, etag)) = self
            .read::<TaskDoc>(pk, &docs::task_id(page.task.as_str()))
            .await?
        else {
            return Err(StoreError::NotFound(format!(
                "task {} in connection {pk}",
                page.task
            )));
        };
        let task = task_doc.doc;
        if task.lease.as_ref().map(|l| l.token.as_str()) != Some(page.lease_token.as_str()) {
            return Err(StoreError::LeaseLost(page.task.clone()));
        }
        Ok((task, etag))
    }

    /// Resolves [`RecordOp::Bury`]: reads the stored documents and makes
    /// each a tombstone write under the ETag the plan read (a document that
    /// changed since fails its `If-Match` and the page is re-planned).
    async fn bury(
        &self,
        pk: &str,
        ops: Vec<(String, RecordOp)>,
    ) -> Result<Vec<(String, RecordOp)>, StoreError> {
        let ids: Vec<&String> = ops
            .iter()
            .filter(|(_, op)| matches!(op, RecordOp::Bury(_)))
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return Ok(ops);
        }
        let mut stored: HashMap<String, RecordDoc> = HashMap::new();
        for chunk in ids.chunks(256) {
            let docs: Vec<RecordDoc> = self
                .query_all(
                    query(
                        "SELECT * FROM c WHERE c.type = 'record' AND ARRAY_CONTAINS(@ids, c.id)",
                        &[("@ids", serde_json::json!(chunk))],
                    ),
                    Some(pk),
                )
                .await?;
            stored.extend(docs.into_iter().map(|d| (d.id.clone(), d)));
        }
        Ok(ops
            .into_iter()
            .filter_map(|(id, op)| match op {
                // Gone since the plan read it: nothing left to bury.
                RecordOp::Bury(etag) => stored.remove(&id).map(|doc| {
                    let op = RecordOp::Put {
                        doc: Box::new(doc.into_tombstone()),
                        etag: Some(etag),
                        action: LastAction::Deleted,
                    };
                    (id, op)
                }),
                put => Some((id, put)),
            })
            .collect())
    }

    /// Greedy chunks of at most one transactional batch each; every chunk
    /// keeps two slots: the sequence counter and the task guard/write.
    fn chunk_page(
        &self,
        ops: Vec<(String, RecordOp)>,
        task_bytes: usize,
    ) -> Vec<Vec<(String, RecordOp)>> {
        let reserved = task_bytes + 256;
        let mut chunks: Vec<Vec<(String, RecordOp)>> = vec![Vec::new()];
        let mut bytes = reserved;
        for (id, op) in ops {
            let size = op.size();
            let last = chunks.last_mut().expect("non-empty");
            if !last.is_empty()
                && (last.len() + 2 >= self.options.max_batch_ops
                    || bytes + size > self.options.max_batch_bytes)
            {
                chunks.push(Vec::new());
                bytes = reserved;
            }
            bytes += size;
            chunks.last_mut().expect("non-empty").push((id, op));
        }
        chunks
    }

    /// Sends the chunks in order, each stamped from the connection's counter
    /// (read per batch, replaced under its ETag in the batch); all but the
    /// last carry a guard on the task, the last the task write. `Ok(false)`:
    /// a batch rolled back (the caller re-plans); ids of committed batches
    /// are added to `done`.
    async fn run_page_batches(
        &self,
        pk: &str,
        chunks: Vec<Vec<(String, RecordOp)>>,
        task: &TaskWrite,
        done: &mut HashSet<String>,
    ) -> Result<bool, StoreError> {
        let (n, now) = (chunks.len(), self.clock.now());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut batch = TransactionalBatch::new(pk.to_owned());
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            if !chunk.is_empty() {
                let mut seq = feed::SeqCounter::read(self, pk).await?;
                for (id, op) in chunk {
                    batch = op.add_to(id, batch, &mut seq, now)?;
                }
                batch = seq.add_to(batch)?;
            }
            let guard = if_match(&task.etag);
            batch = if i + 1 == n {
                batch
                    .replace_item(
                        task.doc_id.clone(),
                        &task.doc,
                        Some(BatchReplaceOptions::default().with_precondition(guard)),
                    )
                    .map_err(|e| corrupt("task", e))?
            } else {
                batch.read_item(
                    task.doc_id.clone(),
                    Some(BatchReadOptions::default().with_precondition(guard)),
                )
            };
            if let Err(code) = self.run_batch(batch).await? {
                tracing::debug!(
                    batch = i,
                    of = n,
                    code,
                    "page batch rolled back; re-reading"
                );
                return Ok(false);
            }
            done.extend(ids);
        }
        Ok(true)
    }

    async fn commit_page_inner(&self, page: &PageCommit) -> Result<PageOutcome, StoreError> {
        let pk = page.connection.as_str();
        // Inputs already committed by an earlier batch of this call.
        let mut done: HashSet<String> = HashSet::new();
        let mut outcome_by_input: Option<Vec<(String, Counted)>> = None;
        for _ in 0..self.options.cas_attempts {
            let (mut task, etag) = self.page_task(page).await?;
            let heads = self.record_heads(pk, &page_ids(page, &done)).await?;
            let (ops, counted) = Self::plan_page(page, &heads)?;
            // An input keeps the count of the plan its batch committed under
            // (a re-plan sees it as already written); the others take the
            // latest plan's: a record may have changed meanwhile, e.g. gained
            // a local state (now held) — the plans list the inputs in the
            // same order, one entry each.
            match &mut outcome_by_input {
                None => outcome_by_input = Some(counted),
                Some(prev) => {
                    for (slot, (id, c)) in prev.iter_mut().zip(counted) {
                        if !done.contains(&id) {
                            *slot = (id, c);
                        }
                    }
                }
            }
            let ops = ops
                .into_iter()
                .filter(|(id, _)| !done.contains(id))
                .collect();
            let ops = self.bury(pk, ops).await?;
            task.cursor = page.cursor.clone();
            task.version += 1;
            let task = TaskWrite {
                doc_id: docs::task_id(page.task.as_str()),
                doc: TaskDoc::new(&task),
                etag,
            };
            let task_bytes = serde_json::to_vec(&task.doc).map(|v| v.len()).unwrap_or(0) + 256;
            let chunks = self.chunk_page(ops, task_bytes);
            if self.run_page_batches(pk, chunks, &task, &mut done).await? {
                self.remember_task(page.task.as_str(), pk);
                return Ok(page_outcome(outcome_by_input.unwrap_or_default()));
            }
            tracing::debug!(task = %page.task, "page commit re-planned after a rollback");
        }
        Err(StoreError::Conflict(format!(
            "page commit for task {}: kept losing to concurrent writers",
            page.task
        )))
    }
}

/// The audit documents a record write creates: the first entry of each
/// key, all of the write's connection.
fn audit_docs(w: &RecordWrite) -> Result<Vec<AuditDoc>, StoreError> {
    let mut keys = HashSet::new();
    let mut audit: Vec<AuditDoc> = Vec::new();
    for a in &w.audit {
        if a.connection != w.connection {
            return Err(StoreError::Corrupt(format!(
                "audit entry {:?} belongs to connection {}, but the write is in {}; \
                 an entry commits with its own connection's record",
                a.key, a.connection, w.connection
            )));
        }
        if keys.insert(a.key.as_str()) {
            audit.push(AuditDoc::new(a, audit.len()));
        }
    }
    Ok(audit)
}

/// Whether a record write stamps the feed: it creates, removes, moves, or
/// changes the content hash (a write of the local state alone does not).
fn write_stamps(live: Option<&RecordDoc>, next: Option<&RecordDoc>, moved: bool) -> bool {
    match (live, next) {
        (None, None) => false,
        (Some(l), Some(n)) if !moved => l.hash != n.hash,
        _ => true,
    }
}

/// What a record write found stored, read in one compare-and-swap attempt.
struct WriteSeen {
    /// The document at the write's id (live or a tombstone) and its ETag.
    current: Option<(RecordDoc, String)>,
    /// For a move: the ETag of a tombstone at the target id (a live record
    /// there is a conflict, found before this is built).
    target_etag: Option<String>,
    /// Audit ids already stored (skipped).
    stored_audit: HashSet<String>,
}

impl WriteSeen {
    fn live(&self) -> Option<&(RecordDoc, String)> {
        self.current
            .as_ref()
            .filter(|(d, _)| d.deleted_at.is_none())
    }
}

impl CosmosStore {
    /// Checks, before anything is sent, that the write is one batch: the
    /// record within the item limit, its audit entries and the record ops
    /// (a move: tombstone + create; plus the sequence counter) within the
    /// batch limits.
    fn check_write_fits(
        &self,
        w: &RecordWrite,
        next: Option<&RecordDoc>,
        moved: bool,
        audit: &[AuditDoc],
    ) -> Result<(), StoreError> {
        let what = || format!("record {}/{} of {}", w.object, w.external_id, w.connection);
        let record_bytes = next
            .map(|n| serde_json::to_vec(n).map(|v| v.len()).unwrap_or(0))
            .unwrap_or(0);
        if record_bytes > MAX_ITEM_BYTES {
            return Err(StoreError::Corrupt(format!(
                "{} is {record_bytes} bytes; Cosmos DB items are limited to 2 MB",
                what()
            )));
        }
        let audit_bytes: usize = audit
            .iter()
            .map(|a| serde_json::to_vec(a).map(|v| v.len()).unwrap_or(0) + 256)
            .sum();
        let record_ops = if moved { 3 } else { 2 };
        // Without audit entries the batch is the record alone, like a page's
        // single-record batch: only the item limit above applies.
        if audit.len() + record_ops > self.options.max_batch_ops
            || (!audit.is_empty()
                && record_bytes + 768 + audit_bytes > self.options.max_batch_bytes)
        {
            return Err(StoreError::Corrupt(format!(
                "{}: {} audit entries ({audit_bytes} bytes) do not fit one transactional \
                 batch with the record ({} operations, {} bytes at most)",
                what(),
                audit.len(),
                self.options.max_batch_ops,
                self.options.max_batch_bytes
            )));
        }
        Ok(())
    }

    /// Builds the write's batch from what was read; `None` if there is
    /// nothing to send (nothing to remove, no new audit entry).
    async fn record_write_batch(
        &self,
        w: &RecordWrite,
        next: Option<&RecordDoc>,
        seen: &WriteSeen,
        audit: &[AuditDoc],
    ) -> Result<Option<TransactionalBatch>, StoreError> {
        let pk = w.connection.as_str();
        let from_id = docs::record_id(w.object.as_str(), w.external_id.as_str());
        let moved = next.is_some_and(|n| n.id != from_id);
        let live = seen.live();
        let now = self.clock.now().as_millis();
        let stamps = write_stamps(live.map(|(d, _)| d), next, moved);
        let mut seq = feed::SeqCounter::read_if(self, pk, stamps).await?;
        let mut batch = TransactionalBatch::new(pk.to_owned());
        let mut ops = 0;
        if let Some((doc, etag)) = live
            && (next.is_none() || moved)
        {
            let mut t = doc.clone().into_tombstone();
            t.stamp(seq.draw(), now, LastAction::Deleted);
            batch = batch
                .replace_item(
                    from_id.clone(),
                    t,
                    Some(BatchReplaceOptions::default().with_precondition(if_match(etag))),
                )
                .map_err(|e| corrupt(&from_id, e))?;
            ops += 1;
        }
        if let Some(n) = next {
            let mut n = n.clone();
            let prior = live.filter(|_| !moved).map(|(d, _)| d);
            match prior {
                Some(p) if p.hash == n.hash => n.keep_feed_of(p),
                _ => {
                    n.first_seen_at = prior.and_then(|p| p.first_seen_at);
                    n.stamp(seq.draw(), now, action_of_write(prior.is_some()));
                }
            }
            // Over the stored document (live, or a tombstone at the id or
            // the move's target) under its ETag; else a create (409 if one
            // appeared meanwhile).
            let over = if moved {
                seen.target_etag.as_ref()
            } else {
                seen.current.as_ref().map(|(_, e)| e)
            };
            batch = match over {
                Some(etag) => batch.replace_item(
                    n.id.clone(),
                    &n,
                    Some(BatchReplaceOptions::default().with_precondition(if_match(etag))),
                ),
                None => batch.create_item(&n),
            }
            .map_err(|e| corrupt(&n.id, e))?;
            ops += 1;
        }
        for a in audit.iter().filter(|a| !seen.stored_audit.contains(&a.id)) {
            batch = batch.create_item(a).map_err(|e| corrupt(&a.id, e))?;
            ops += 1;
        }
        if ops == 0 {
            return Ok(None);
        }
        Ok(Some(seq.add_to(batch)?))
    }

    /// See [`Store::write_record`] and the crate docs ("Record writes").
    async fn write_record_inner(&self, w: &RecordWrite) -> Result<(), StoreError> {
        let pk = w.connection.as_str();
        let object = w.object.as_str();
        let from_id = docs::record_id(object, w.external_id.as_str());
        let what = || format!("record {object}/{} of {pk}", w.external_id);
        let audit = audit_docs(w)?;
        let next = w.next.as_ref().map(|r| RecordDoc::new(pk, object, r));
        let moved = next.as_ref().is_some_and(|n| n.id != from_id);
        self.check_write_fits(w, next.as_ref(), moved, &audit)?;
        let audit_ids: Vec<&str> = audit.iter().map(|a| a.id.as_str()).collect();

        for _ in 0..self.options.cas_attempts {
            let current = self.read::<RecordDoc>(pk, &from_id).await?;
            let live_version = current
                .as_ref()
                .filter(|(d, _)| d.deleted_at.is_none())
                .map(|(d, _)| d.version);
            if live_version != w.expect_version {
                return Err(StoreError::Conflict(format!(
                    "{}: expected version {:?}, found {live_version:?}",
                    what(),
                    w.expect_version,
                )));
            }
            let mut target_etag = None;
            if let Some(n) = next.as_ref().filter(|_| moved)
                && let Some((t, etag)) = self.read::<RecordHead>(pk, &n.id).await?
            {
                if t.is_live() {
                    return Err(StoreError::Conflict(format!(
                        "{}: cannot move to {:?}, which exists",
                        what(),
                        n.external_id
                    )));
                }
                target_etag = Some(etag);
            }
            let stored_audit: HashSet<String> = if audit_ids.is_empty() {
                HashSet::new()
            } else {
                self.query_all::<String>(
                    query(
                        "SELECT VALUE c.id FROM c WHERE c.type = 'audit' \
                         AND ARRAY_CONTAINS(@ids, c.id)",
                        &[("@ids", serde_json::json!(audit_ids))],
                    ),
                    Some(pk),
                )
                .await?
                .into_iter()
                .collect()
            };
            let seen = WriteSeen {
                current,
                target_etag,
                stored_audit,
            };
            let Some(batch) = self
                .record_write_batch(w, next.as_ref(), &seen, &audit)
                .await?
            else {
                return Ok(()); // nothing to remove, no new audit entry
            };
            match self.run_batch(batch).await? {
                Ok(()) => return Ok(()),
                Err(code) => {
                    // 412/404: the record (or the sequence counter) changed
                    // since it was read; 409: the move target, an audit key
                    // or the counter appeared. Re-read: the version check or
                    // the skip decides.
                    tracing::debug!(record = %w.external_id, object, code, "record write rolled back; re-reading");
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "{}: kept losing to concurrent writers",
            what()
        )))
    }
}

#[async_trait]
impl Store for CosmosStore {
    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let doc = ConnectionDoc::new(c);
        self.upsert(&doc.pk, &doc.id, &doc).await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .read::<ConnectionDoc>(id.as_str(), "connection")
            .await?
            .map(|(d, _)| d.doc))
    }

    async fn get_connection_tagged(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<(Connection, String)>, StoreError> {
        Ok(self
            .read::<ConnectionDoc>(id.as_str(), "connection")
            .await?
            .map(|(d, etag)| (d.doc, etag.trim_matches('"').to_owned())))
    }

    async fn replace_connection(
        &self,
        c: &Connection,
        expected: &str,
    ) -> Result<String, StoreError> {
        // The tag is the document's ETag without its quotes: compare, then
        // replace under the ETag just read, so a write in between loses.
        let pk = c.id.as_str();
        let Some((_, etag)) = self.read::<ConnectionDoc>(pk, "connection").await? else {
            return Err(StoreError::NotFound(format!("connection {}", c.id)));
        };
        let changed = || {
            StoreError::Conflict(format!(
                "connection {} changed since version {expected}",
                c.id
            ))
        };
        if etag.trim_matches('"') != expected {
            return Err(changed());
        }
        if !self
            .replace_if(pk, "connection", &ConnectionDoc::new(c), &etag)
            .await?
        {
            return Err(changed());
        }
        match self.read::<ConnectionDoc>(pk, "connection").await? {
            Some((_, now)) => Ok(now.trim_matches('"').to_owned()),
            None => Err(StoreError::NotFound(format!("connection {}", c.id))),
        }
    }

    async fn list_connections(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Connection>, StoreError> {
        let q = match tenant {
            Some(t) => query(
                "SELECT * FROM c WHERE c.type = 'connection' AND c.tenant = @t ORDER BY c.pk",
                &[("@t", t.as_str().into())],
            ),
            None => query(
                "SELECT * FROM c WHERE c.type = 'connection' ORDER BY c.pk",
                &[],
            ),
        };
        let docs: Vec<ConnectionDoc> = self.query_all(q, None).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let pk = id.as_str();
        let existed = self
            .read::<ConnectionDoc>(pk, "connection")
            .await?
            .is_some();
        // The audit log outlives the connection, as in the SQLite store; so
        // does the change-sequence counter (see core's `store::feed`).
        let ids: Vec<String> = self
            .query_all(
                query(
                    "SELECT VALUE c.id FROM c WHERE c.type != 'audit' AND c.type != 'seq_counter'",
                    &[],
                ),
                Some(pk),
            )
            .await?;
        // Everything else first, the connection document last: a crash half
        // way leaves the connection visible and a retry finishes the job.
        let rest: Vec<&String> = ids.iter().filter(|i| *i != "connection").collect();
        for chunk in rest.chunks(self.options.max_batch_ops) {
            let mut batch = TransactionalBatch::new(pk.to_owned());
            for id in chunk {
                batch = batch.delete_item((*id).clone(), None);
            }
            if let Err(code) = self.run_batch(batch).await? {
                // Something vanished concurrently: delete one by one instead.
                tracing::debug!(code, "connection delete batch rolled back; deleting singly");
                for id in chunk {
                    self.delete(pk, id, None).await?;
                }
            }
        }
        self.delete(pk, "connection", None).await?;
        self.task_pk
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, v| v != pk);
        Ok(existed)
    }

    async fn put_task(&self, t: &SyncTask) -> Result<(), StoreError> {
        let doc = TaskDoc::new(t);
        // A task that moved to another connection must not stay behind in the old partition.
        if let Some((old, _)) = self.load_task(&t.id).await?
            && old.pk != doc.pk
        {
            self.delete(&old.pk, &old.id, None).await?;
        }
        self.upsert(&doc.pk, &doc.id, &doc).await?;
        self.remember_task(t.id.as_str(), &doc.pk);
        Ok(())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<SyncTask>, StoreError> {
        Ok(self.load_task(id).await?.map(|(d, _)| d.doc))
    }

    async fn list_tasks(
        &self,
        connection: Option<&ConnectionId>,
    ) -> Result<Vec<SyncTask>, StoreError> {
        let q = query(
            "SELECT * FROM c WHERE c.type = 'task' ORDER BY c.task_id",
            &[],
        );
        let docs: Vec<TaskDoc> = self.query_all(q, connection.map(|c| c.as_str())).await?;
        for d in &docs {
            self.remember_task(&d.task_id, &d.pk);
        }
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn due_tasks(&self, now: Timestamp, limit: usize) -> Result<Vec<SyncTask>, StoreError> {
        // One query per priority class, most urgent class first: an equality
        // on `priority` and a range on `eligible_at` (composite index), so
        // each reads only the eligible tasks of its class, never every task.
        let mut out: Vec<TaskDoc> = Vec::new();
        for class in Priority::ALL {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                break;
            }
            let q = query(
                format!(
                    "SELECT TOP {left} * FROM c WHERE c.type = 'task' AND c.priority = @p \
                     AND c.eligible_at <= @now ORDER BY c.priority ASC, c.eligible_at ASC"
                ),
                &[
                    ("@p", (class as i64).into()),
                    ("@now", now.as_millis().into()),
                ],
            );
            out.extend(self.query_all::<TaskDoc>(q, None).await?);
        }
        for d in &out {
            self.remember_task(&d.task_id, &d.pk);
        }
        let mut tasks: Vec<SyncTask> = out.into_iter().map(|d| d.doc).collect();
        tasks.sort_by(|a, b| {
            (a.priority, a.next_run_at, &a.id).cmp(&(b.priority, b.next_run_at, &b.id))
        });
        Ok(tasks)
    }

    async fn stall_candidates(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SyncTask>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = query(
            format!(
                "SELECT TOP {limit} * FROM c WHERE c.type = 'task' AND IS_NUMBER(c.stall_at) \
                 AND c.stall_at < @now ORDER BY c.stall_at ASC"
            ),
            &[("@now", now.as_millis().into())],
        );
        let docs: Vec<TaskDoc> = self.query_all(q, None).await?;
        for d in &docs {
            self.remember_task(&d.task_id, &d.pk);
        }
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn lease_task(
        &self,
        id: &TaskId,
        expected_version: i64,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        self.update_task(id, |t| t.lease_at(expected_version, lease))
            .await
    }

    async fn release_task(
        &self,
        id: &TaskId,
        lease_token: &str,
        next_run_at: Timestamp,
        finished_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_task(id, |t| t.release(lease_token, next_run_at, finished_at))
            .await
    }

    async fn request_run(
        &self,
        id: &TaskId,
        priority: Priority,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_task(id, |t| t.ask_for_run(priority, at)).await
    }

    async fn set_task_stalled(&self, id: &TaskId, stalled: bool) -> Result<(), StoreError> {
        self.update_task(id, |t| t.flag_stalled(stalled)).await
    }

    async fn commit_page(&self, page: &PageCommit) -> Result<PageOutcome, StoreError> {
        self.commit_page_inner(page).await
    }

    async fn write_record(&self, w: &RecordWrite) -> Result<(), StoreError> {
        self.write_record_inner(w).await
    }

    async fn due_pushes(&self, now: Timestamp, limit: usize) -> Result<Vec<Record>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Single-property ORDER BY: the range index on /push_due_at serves it
        // across partitions. Records due at the same millisecond come in no
        // particular order (the SQLite store breaks ties by id).
        let q = query(
            format!(
                "SELECT TOP {limit} * FROM c WHERE c.type = 'record' \
                 AND IS_NUMBER(c.push_due_at) AND c.push_due_at <= @now \
                 AND NOT IS_DEFINED(c.deleted_at) \
                 ORDER BY c.push_due_at ASC"
            ),
            &[("@now", now.as_millis().into())],
        );
        let docs: Vec<RecordDoc> = self.query_all(q, None).await?;
        docs.into_iter().map(to_record).collect()
    }

    async fn list_local_changes(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `local_key` is present exactly on records with a local state and
        // sorts like (connection, object, id); see `docs::RecordDoc`.
        let q = query(
            format!(
                "SELECT TOP {limit} * FROM c WHERE c.type = 'record' \
                 AND IS_STRING(c.local_key) AND NOT IS_DEFINED(c.deleted_at) \
                 ORDER BY c.local_key ASC"
            ),
            &[],
        );
        let docs: Vec<RecordDoc> = self.query_all(q, connection.map(|c| c.as_str())).await?;
        docs.into_iter().map(to_record).collect()
    }

    async fn list_audit(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = query(
            format!("SELECT TOP {limit} * FROM c WHERE c.type = 'audit' ORDER BY c.log_order ASC"),
            &[],
        );
        let docs: Vec<AuditDoc> = self.query_all(q, connection.map(|c| c.as_str())).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn get_record(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        id: &ExternalId,
    ) -> Result<Option<Record>, StoreError> {
        let doc_id = docs::record_id(object.as_str(), id.as_str());
        self.read::<RecordDoc>(connection.as_str(), &doc_id)
            .await?
            .filter(|(d, _)| d.deleted_at.is_none())
            .map(|(d, _)| to_record(d))
            .transpose()
    }

    async fn count_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
    ) -> Result<u64, StoreError> {
        let counts: Vec<u64> = self
            .query_all(
                query(
                    "SELECT VALUE COUNT(1) FROM c WHERE c.type = 'record' AND c.object = @o \
                     AND NOT IS_DEFINED(c.deleted_at)",
                    &[("@o", object.as_str().into())],
                ),
                Some(connection.as_str()),
            )
            .await?;
        Ok(counts.into_iter().sum())
    }

    async fn list_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        after: Option<&ExternalId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = match after {
            Some(a) => query(
                format!(
                    "SELECT TOP {limit} * FROM c WHERE c.type = 'record' AND c.object = @o \
                     AND c.external_id > @after AND NOT IS_DEFINED(c.deleted_at) \
                     ORDER BY c.external_id"
                ),
                &[
                    ("@o", object.as_str().into()),
                    ("@after", a.as_str().into()),
                ],
            ),
            None => query(
                format!(
                    "SELECT TOP {limit} * FROM c WHERE c.type = 'record' AND c.object = @o \
                     AND NOT IS_DEFINED(c.deleted_at) ORDER BY c.external_id"
                ),
                &[("@o", object.as_str().into())],
            ),
        };
        let docs: Vec<RecordDoc> = self.query_all(q, Some(connection.as_str())).await?;
        docs.into_iter().map(to_record).collect()
    }

    // ---- records feed (issue 17; see the `feed` module) ---------------------

    async fn records_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEntry>, StoreError> {
        feed::records_feed(self, q).await
    }

    async fn feed_position(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        // The counter holds the next number to hand out.
        Ok(self
            .read::<CounterDoc>(connection.as_str(), docs::SEQ_COUNTER_ID)
            .await?
            .map_or(0, |(c, _)| (c.next - 1).max(0) as u64))
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let doc = RunDoc::new(run);
        self.upsert(&doc.pk, &doc.id, &doc).await
    }

    async fn list_runs(
        &self,
        task: Option<&TaskId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let order = "ORDER BY c.started_at DESC, c.run_id DESC";
        let q = match task {
            Some(t) => query(
                format!("SELECT TOP {limit} * FROM c WHERE c.type = 'run' AND c.task = @t {order}"),
                &[("@t", t.as_str().into())],
            ),
            None => query(
                format!("SELECT TOP {limit} * FROM c WHERE c.type = 'run' {order}"),
                &[],
            ),
        };
        let docs: Vec<RunDoc> = self.query_all(q, None).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn get_credential(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<SealedCredential>, StoreError> {
        Ok(self
            .read::<CredentialDoc>(connection.as_str(), "credential")
            .await?
            .map(|(d, _)| d.doc))
    }

    async fn put_credential(
        &self,
        c: &SealedCredential,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        let doc = CredentialDoc::new(c);
        let Some(expected) = expected_version else {
            return self.create(&doc.pk, &doc.id, &doc).await;
        };
        for _ in 0..self.options.cas_attempts {
            let Some((stored, etag)) = self.read::<CredentialDoc>(&doc.pk, &doc.id).await? else {
                return Ok(false);
            };
            if stored.version != expected {
                return Ok(false);
            }
            if self.replace_if(&doc.pk, &doc.id, &doc, &etag).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!(
            "credential of {}: compare-and-swap kept failing",
            c.connection
        )))
    }

    async fn credentials_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SealedCredential>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = query(
            format!(
                "SELECT TOP {limit} * FROM c WHERE c.type = 'credential' \
                 AND IS_NUMBER(c.sweep_at) AND c.sweep_at <= @now ORDER BY c.sweep_at ASC"
            ),
            &[("@now", now.as_millis().into())],
        );
        let docs: Vec<CredentialDoc> = self.query_all(q, None).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let doc = LockDoc {
            id: "lock".into(),
            pk: docs::lock_pk(name),
            kind: "lock".into(),
            name: name.to_owned(),
            owner: owner.to_owned(),
            until: until.as_millis(),
        };
        for _ in 0..self.options.cas_attempts {
            match self.read::<LockDoc>(&doc.pk, &doc.id).await? {
                None => {
                    if self.create(&doc.pk, &doc.id, &doc).await? {
                        return Ok(true);
                    }
                }
                Some((held, etag)) => {
                    if held.until > now.as_millis() && held.owner != owner {
                        return Ok(false);
                    }
                    if self.replace_if(&doc.pk, &doc.id, &doc, &etag).await? {
                        return Ok(true);
                    }
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "lock {name}: compare-and-swap kept failing"
        )))
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let pk = docs::lock_pk(name);
        for _ in 0..self.options.cas_attempts {
            let Some((held, etag)) = self.read::<LockDoc>(&pk, "lock").await? else {
                return Ok(());
            };
            if held.owner != owner {
                return Ok(());
            }
            if self.delete(&pk, "lock", Some(&etag)).await? {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(format!(
            "lock {name}: compare-and-swap kept failing"
        )))
    }

    async fn insert_webhook_event(
        &self,
        e: &WebhookEvent,
        dedup_since: Timestamp,
    ) -> Result<bool, StoreError> {
        let window_secs = e.received_at.since(dedup_since).as_secs() as i64;
        let doc = WebhookDoc {
            id: docs::webhook_id(&e.dedup_key),
            pk: e.connection.to_string(),
            kind: "webhook".into(),
            dedup_key: e.dedup_key.clone(),
            received_at: e.received_at.as_millis(),
            body: base64::engine::general_purpose::STANDARD.encode(&e.body),
            // Kept twice the window (at least an hour) so the TTL sweep never
            // removes an entry dedup still needs.
            ttl: Some((window_secs * 2).max(3600)),
        };
        for _ in 0..self.options.cas_attempts {
            if self.create(&doc.pk, &doc.id, &doc).await? {
                return Ok(true);
            }
            let Some((stored, etag)) = self.read::<WebhookDoc>(&doc.pk, &doc.id).await? else {
                continue; // expired between create and read: try again
            };
            if stored.received_at >= dedup_since.as_millis() {
                return Ok(false);
            }
            if self.replace_if(&doc.pk, &doc.id, &doc, &etag).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!(
            "webhook event {}: compare-and-swap kept failing",
            e.dedup_key
        )))
    }

    async fn quarantine(&self, m: &QuarantinedMessage) -> Result<i64, StoreError> {
        // Sequence numbers from a counter document under compare-and-swap.
        let mut seq = None;
        for _ in 0..self.options.cas_attempts {
            match self.read::<CounterDoc>(QUARANTINE_PK, "counter").await? {
                None => {
                    let doc = CounterDoc {
                        id: "counter".into(),
                        pk: QUARANTINE_PK.into(),
                        kind: "counter".into(),
                        next: 2,
                    };
                    if self.create(QUARANTINE_PK, "counter", &doc).await? {
                        seq = Some(1);
                        break;
                    }
                }
                Some((mut doc, etag)) => {
                    let mine = doc.next;
                    doc.next += 1;
                    if self
                        .replace_if(QUARANTINE_PK, "counter", &doc, &etag)
                        .await?
                    {
                        seq = Some(mine);
                        break;
                    }
                }
            }
        }
        let seq = seq.ok_or_else(|| {
            StoreError::Conflict("quarantine counter: compare-and-swap kept failing".into())
        })?;
        let doc = QuarantineDoc {
            id: docs::quarantine_id(seq),
            pk: QUARANTINE_PK.into(),
            kind: "quarantine".into(),
            seq,
            doc: m.clone(),
        };
        if !self.create(QUARANTINE_PK, &doc.id, &doc).await? {
            return Err(StoreError::Corrupt(format!(
                "quarantine entry {seq} already exists (counter reset?)"
            )));
        }
        Ok(seq)
    }

    async fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = query(
            format!("SELECT TOP {limit} * FROM c WHERE c.type = 'quarantine' ORDER BY c.seq"),
            &[],
        );
        let docs: Vec<QuarantineDoc> = self.query_all(q, Some(QUARANTINE_PK)).await?;
        Ok(docs
            .into_iter()
            .map(|d| QuarantineEntry {
                id: d.seq,
                message: d.doc,
            })
            .collect())
    }

    /// Webhook events carry a per-item TTL past the dedup window (see
    /// `docs::WebhookEventDoc::ttl`): Cosmos DB expires them itself.
    async fn prune_webhook_events(
        &self,
        _received_before: Timestamp,
        _limit: usize,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn take_quarantined(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError> {
        let doc_id = docs::quarantine_id(id);
        let Some((doc, etag)) = self.read::<QuarantineDoc>(QUARANTINE_PK, &doc_id).await? else {
            return Ok(None);
        };
        // The delete decides who took it: only one caller's delete succeeds.
        Ok(self
            .delete(QUARANTINE_PK, &doc_id, Some(&etag))
            .await?
            .then_some(doc.doc))
    }

    // ---- product API (SyncApi): API keys and pages (see `api.rs`) ----------

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.api_create_key(key).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_find_key(hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.api_list_keys().await
    }

    async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        self.api_revoke_key(id, at).await
    }

    async fn prune_api_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.api_prune_keys(now).await
    }

    async fn get_notification_rules(
        &self,
    ) -> Result<Option<syncbridge_core::notify_rules::NotificationRules>, StoreError> {
        self.rules_get().await
    }

    async fn put_notification_rules(
        &self,
        rules: &syncbridge_core::notify_rules::NotificationRules,
    ) -> Result<bool, StoreError> {
        self.rules_put(rules).await
    }

    async fn create_connect_session(
        &self,
        s: &syncbridge_core::connect::ConnectSession,
    ) -> Result<(), StoreError> {
        self.connect_create(s).await
    }

    async fn get_connect_session(
        &self,
        id: &str,
    ) -> Result<Option<syncbridge_core::connect::ConnectSession>, StoreError> {
        self.connect_get(id).await
    }

    async fn advance_connect_session(
        &self,
        next: &syncbridge_core::connect::ConnectSession,
    ) -> Result<bool, StoreError> {
        self.connect_advance(next).await
    }

    async fn list_connections_page(
        &self,
        q: &ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        self.api_connections_page(q).await
    }

    async fn list_runs_page(&self, q: &RunQuery) -> Result<Vec<SyncRun>, StoreError> {
        self.api_runs_page(q).await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        self.api_get_run(id).await
    }

    async fn run_stats(
        &self,
        q: &syncbridge_core::store::RunStatsQuery,
    ) -> Result<Vec<syncbridge_core::store::RunBucket>, StoreError> {
        self.api_run_stats(q).await
    }

    async fn claim_idempotency_key(
        &self,
        c: &IdempotencyClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        self.idem_claim(c).await
    }

    async fn complete_idempotency_key(
        &self,
        c: &IdempotencyClaim,
        answer: &StoredAnswer,
    ) -> Result<bool, StoreError> {
        self.idem_finish(c, Some(answer)).await
    }

    async fn release_idempotency_key(&self, c: &IdempotencyClaim) -> Result<bool, StoreError> {
        self.idem_finish(c, None).await
    }

    async fn list_conflicts_page(&self, q: &ConflictQuery) -> Result<Vec<Record>, StoreError> {
        self.conflicts_page(q).await
    }

    async fn list_audit_page(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_page(q).await
    }

    async fn put_function_beat(
        &self,
        beat: &syncbridge_core::heartbeat::FunctionBeat,
    ) -> Result<(), StoreError> {
        self.api_put_function_beat(beat).await
    }

    async fn list_function_beats(
        &self,
    ) -> Result<Vec<syncbridge_core::heartbeat::FunctionBeat>, StoreError> {
        self.api_list_function_beats().await
    }
}

fn to_record(d: RecordDoc) -> Result<Record, StoreError> {
    Ok(Record {
        connection: ConnectionId::parse(d.pk).map_err(|e| corrupt("record connection", e))?,
        object: ObjectType::parse(d.object).map_err(|e| corrupt("record object", e))?,
        external_id: ExternalId::parse(d.external_id).map_err(|e| corrupt("record id", e))?,
        data: d.data,
        hash: d.hash,
        version: d.version,
        remote_updated_at: d.remote_updated_at.map(Timestamp::from_millis),
        local: d.local,
    })
}

#[cfg(test)]
mod tests {
    /// `infra/main.bicep` declares every composite index and included path
    /// the queries need, in order: a query whose index is missing fails on
    /// the service (multi-property ORDER BY) or scans.
    #[test]
    fn bicep_declares_the_indexes() {
        let bicep = include_str!("../../../infra/main.bicep");
        let lines: Vec<String> = bicep
            .lines()
            .map(|l| l.split("//").next().unwrap_or("").trim().to_owned())
            .collect();
        for composite in super::COMPOSITE_INDEXES {
            let want: Vec<String> = composite
                .iter()
                .map(|(p, o)| format!("{{ path: '{p}', order: '{o}' }}"))
                .collect();
            assert!(
                lines.windows(want.len()).any(|w| w == want.as_slice()),
                "main.bicep lacks the composite index {want:?}"
            );
        }
        for path in super::INCLUDED_PATHS {
            assert!(
                bicep.contains(&format!("{{ path: '{path}' }}")),
                "main.bicep does not include {path}"
            );
        }
    }

    use super::*;

    /// The endpoint is required and named in the error; the rest has defaults,
    /// the region falling back to App Service's `REGION_NAME`.
    #[test]
    fn settings_from_vars() {
        let err = CosmosSettings::from_vars(|_| None).unwrap_err();
        assert!(err.contains("SYNCBRIDGE_COSMOS_ENDPOINT"), "{err}");
        let s = CosmosSettings::from_vars(|k| match k {
            "SYNCBRIDGE_COSMOS_ENDPOINT" => Some("https://a.documents.azure.com:443/".into()),
            "REGION_NAME" => Some("West Europe".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (s.database.as_str(), s.container.as_str(), s.region.as_str()),
            ("syncbridge", "state", "West Europe")
        );
    }
}
