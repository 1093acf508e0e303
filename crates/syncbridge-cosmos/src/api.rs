//! The product API's part of the store (`SyncApi`): API keys (only their
//! hashes, in the global `~apikey` partition, point-read by hash) and keyset
//! pages of connections (cross-partition, ordered by the partition key) and
//! runs (one connection's partition when the query names it); the function
//! heartbeats (`~beats`, one document per function, merged under its
//! ETag). Kept apart
//! from the sync engine's queries in `lib.rs`; the trait methods there
//! delegate here.

use serde::{Deserialize, Serialize};
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::connect::ConnectSession;
use syncbridge_core::model::{Connection, SyncRun};
use syncbridge_core::notify_rules::NotificationRules;
use syncbridge_core::store::{ConnectionQuery, RunBucket, RunQuery, RunStatsQuery};
use syncbridge_core::{RunId, StoreError, Timestamp};

use crate::docs::{ConnectionDoc, RunDoc};
use crate::{CosmosStore, query};

/// Partition of the API keys.
pub(crate) const API_KEY_PK: &str = "~apikey";

/// The partition of the function heartbeats (one document per function).
pub(crate) const BEATS_PK: &str = "~beats";

/// A function's heartbeat: id `beat.<function>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BeatDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub doc: syncbridge_core::heartbeat::FunctionBeat,
}

/// An API key document: id `key.<hash>`, so authentication is a point read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiKeyDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key_id: String,
    pub doc: ApiKey,
    /// Seconds until Cosmos DB drops it: set for keys that expire
    /// (sessions, sign-in links), a day past their end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

/// Partition of deployment-wide settings documents.
pub(crate) const SETTINGS_PK: &str = "~settings";
/// Id of the notification rules document.
const RULES_ID: &str = "notification_rules";

/// The dashboard's notification rules: one document, replaced under its ETag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RulesDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub doc: NotificationRules,
}

/// Partition of the connect sessions.
pub(crate) const CONNECT_PK: &str = "~connect";

/// A connect session document, id `cs.<session id>`; advanced under its ETag.
/// `ttl` (seconds) lets Cosmos DB drop it a day after it expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConnectSessionDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl: i64,
    pub doc: ConnectSession,
}

fn session_doc(s: &ConnectSession) -> ConnectSessionDoc {
    ConnectSessionDoc {
        id: format!("cs.{}", s.id),
        pk: CONNECT_PK.into(),
        kind: "connect_session".into(),
        ttl: (s.expires_at.as_unix_secs() - s.created_at.as_unix_secs()).max(0) + 86_400,
        doc: s.clone(),
    }
}

fn key_doc_id(hash: &str) -> String {
    format!("key.{hash}")
}

/// `WHERE` clauses with their named parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<(String, serde_json::Value)>,
}

impl Filter {
    fn and(&mut self, clause: impl Into<String>, params: &[(&str, serde_json::Value)]) {
        self.clauses.push(clause.into());
        self.params
            .extend(params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
    }

    fn query(&self, head: &str, tail: &str) -> azure_data_cosmos::Query {
        let text = format!("{head} WHERE {} {tail}", self.clauses.join(" AND "));
        let params: Vec<(&str, serde_json::Value)> = self
            .params
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        query(text, &params)
    }
}

impl CosmosStore {
    pub(crate) async fn api_create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let taken: Vec<String> = self
            .query_all(
                query(
                    "SELECT VALUE c.id FROM c WHERE c.type = 'api_key' AND c.key_id = @k",
                    &[("@k", key.id.clone().into())],
                ),
                Some(API_KEY_PK),
            )
            .await?;
        let doc = ApiKeyDoc {
            id: key_doc_id(&key.hash),
            pk: API_KEY_PK.into(),
            kind: "api_key".into(),
            key_id: key.id.clone(),
            doc: key.clone(),
            ttl: key
                .expires_at
                .map(|end| (end.as_unix_secs() - key.created_at.as_unix_secs()).max(0) + 86_400),
        };
        if !taken.is_empty() || !self.create(API_KEY_PK, &doc.id, &doc).await? {
            return Err(StoreError::Conflict(format!("api key {}", key.id)));
        }
        Ok(())
    }

    pub(crate) async fn api_find_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .read::<ApiKeyDoc>(API_KEY_PK, &key_doc_id(hash))
            .await?
            .map(|(d, _)| d.doc))
    }

    pub(crate) async fn api_list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let docs: Vec<ApiKeyDoc> = self
            .query_all(
                query(
                    "SELECT * FROM c WHERE c.type = 'api_key' ORDER BY c.key_id",
                    &[],
                ),
                Some(API_KEY_PK),
            )
            .await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    pub(crate) async fn api_revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        for _ in 0..self.options.cas_attempts {
            let found: Vec<ApiKeyDoc> = self
                .query_all(
                    query(
                        "SELECT * FROM c WHERE c.type = 'api_key' AND c.key_id = @k",
                        &[("@k", id.into())],
                    ),
                    Some(API_KEY_PK),
                )
                .await?;
            let Some(doc) = found.into_iter().next() else {
                return Ok(false);
            };
            let Some((mut doc, etag)) = self.read::<ApiKeyDoc>(API_KEY_PK, &doc.id).await? else {
                continue;
            };
            if doc.doc.revoked_at.is_some() {
                return Ok(true);
            }
            doc.doc.revoked_at = Some(at);
            if self.replace_if(API_KEY_PK, &doc.id, &doc, &etag).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!("revoking api key {id}")))
    }

    /// Expiring keys that are expired or revoked, deleted one by one. The
    /// `~apikey` partition holds the API keys and the live sessions only
    /// (TTL drops the rest), so reading it whole is one small query.
    pub(crate) async fn api_prune_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
        let docs: Vec<ApiKeyDoc> = self
            .query_all(
                query("SELECT * FROM c WHERE c.type = 'api_key'", &[]),
                Some(API_KEY_PK),
            )
            .await?;
        let mut n = 0;
        for d in docs {
            let dead = d
                .doc
                .expires_at
                .is_some_and(|end| end <= now || d.doc.revoked_at.is_some());
            if dead && self.delete(API_KEY_PK, &d.id, None).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    pub(crate) async fn rules_get(&self) -> Result<Option<NotificationRules>, StoreError> {
        Ok(self
            .read::<RulesDoc>(SETTINGS_PK, RULES_ID)
            .await?
            .map(|(d, _)| d.doc))
    }

    /// Create for version 1 (409: someone saved first), else read, compare
    /// the version, replace under the read's ETag.
    pub(crate) async fn rules_put(&self, next: &NotificationRules) -> Result<bool, StoreError> {
        let doc = RulesDoc {
            id: RULES_ID.into(),
            pk: SETTINGS_PK.into(),
            kind: "notification_rules".into(),
            doc: next.clone(),
        };
        if next.version <= 1 {
            return self.create(SETTINGS_PK, RULES_ID, &doc).await;
        }
        let Some((cur, etag)) = self.read::<RulesDoc>(SETTINGS_PK, RULES_ID).await? else {
            return Ok(false);
        };
        if cur.doc.version + 1 != next.version {
            return Ok(false);
        }
        self.replace_if(SETTINGS_PK, RULES_ID, &doc, &etag).await
    }

    pub(crate) async fn connect_create(&self, s: &ConnectSession) -> Result<(), StoreError> {
        let doc = session_doc(s);
        if !self.create(CONNECT_PK, &doc.id, &doc).await? {
            return Err(StoreError::Conflict(format!("connect session {}", s.id)));
        }
        Ok(())
    }

    pub(crate) async fn connect_get(&self, id: &str) -> Result<Option<ConnectSession>, StoreError> {
        Ok(self
            .read::<ConnectSessionDoc>(CONNECT_PK, &format!("cs.{id}"))
            .await?
            .map(|(d, _)| d.doc))
    }

    /// Read, compare the version, replace under the read's ETag: a writer
    /// that advanced the session in between makes the replace fail.
    pub(crate) async fn connect_advance(&self, next: &ConnectSession) -> Result<bool, StoreError> {
        let doc = session_doc(next);
        let Some((cur, etag)) = self.read::<ConnectSessionDoc>(CONNECT_PK, &doc.id).await? else {
            return Ok(false);
        };
        if cur.doc.version != next.version - 1 {
            return Ok(false);
        }
        self.replace_if(CONNECT_PK, &doc.id, &doc, &etag).await
    }

    pub(crate) async fn api_connections_page(
        &self,
        q: &ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut f = Filter::default();
        f.and("c.type = 'connection'", &[]);
        if let Some(t) = &q.tenant {
            f.and("c.tenant = @t", &[("@t", t.as_str().into())]);
        }
        if let Some(after) = &q.after {
            f.and("c.pk > @after", &[("@after", after.as_str().into())]);
        }
        if let Some(s) = q.status {
            f.and("c.doc.status = @s", &[("@s", s.as_str().into())]);
        }
        if let Some(p) = &q.provider {
            f.and("c.doc.provider = @p", &[("@p", p.as_str().into())]);
        }
        let head = format!("SELECT TOP {} * FROM c", q.limit);
        // With a status (equal on every row) leading the ORDER BY, the
        // composite index (/doc/status, /pk) serves filter and order.
        let order = if q.status.is_some() {
            "ORDER BY c.doc.status ASC, c.pk ASC"
        } else {
            "ORDER BY c.pk"
        };
        let docs: Vec<ConnectionDoc> = self.query_all(f.query(&head, order), None).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    pub(crate) async fn api_runs_page(&self, q: &RunQuery) -> Result<Vec<SyncRun>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut f = Filter::default();
        f.and("c.type = 'run'", &[]);
        if let Some(since) = q.since {
            f.and(
                "c.started_at >= @since",
                &[("@since", since.as_millis().into())],
            );
        }
        if let Some(after) = &q.after {
            f.and(
                "(c.started_at < @at OR (c.started_at = @at AND c.run_id < @id))",
                &[
                    ("@at", after.started_at.as_millis().into()),
                    ("@id", after.id.as_str().into()),
                ],
            );
        }
        if !q.statuses.is_empty() {
            let names: Vec<String> = (0..q.statuses.len()).map(|i| format!("@s{i}")).collect();
            let clause = names
                .iter()
                .map(|n| format!("c.doc.status = {n}"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let values: Vec<(&str, serde_json::Value)> = names
                .iter()
                .zip(&q.statuses)
                .map(|(n, s)| (n.as_str(), s.as_str().into()))
                .collect();
            f.and(format!("({clause})"), &values);
        }
        let head = format!("SELECT TOP {} * FROM c", q.limit);
        // One status (equal on every row) leads the ORDER BY, so the
        // composite index (/doc/status, /started_at, /run_id) serves filter
        // and order; several keep the plain order (its own composite index).
        let tail = if q.statuses.len() == 1 {
            "ORDER BY c.doc.status DESC, c.started_at DESC, c.run_id DESC"
        } else {
            "ORDER BY c.started_at DESC, c.run_id DESC"
        };
        let pk = q.connection.as_ref().map(|c| c.as_str());
        let docs: Vec<RunDoc> = self.query_all(f.query(&head, tail), pk).await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    /// Per-bucket sums of the runs started in `[since, until)`. Not a
    /// `GROUP BY`: runs are partitioned by connection, and the SDK's query
    /// pipeline (azure_data_cosmos_driver 1.1.0-beta.1, which the in-memory
    /// emulator of the contract suite runs through) refuses `GROUP BY` in
    /// cross-partition queries ("unsupported query feature"). So one
    /// cross-partition query projects only the five summed fields (never a
    /// whole run document; a range on `started_at`, indexed like every path) and the
    /// buckets are summed here.
    pub(crate) async fn api_run_stats(
        &self,
        q: &RunStatsQuery,
    ) -> Result<Vec<RunBucket>, StoreError> {
        let rows: Vec<RunStatRow> = self
            .query_all(
                query(
                    "SELECT c.started_at AS s, c.doc.status AS st, c.doc.finished_at AS f, \
                     c.doc.counts.created AS cr, c.doc.counts.updated AS up, c.doc.counts.deleted AS de \
                     FROM c WHERE c.type = 'run' AND c.started_at >= @since AND c.started_at < @until",
                    &[
                        ("@since", q.since.as_millis().into()),
                        ("@until", q.until.as_millis().into()),
                    ],
                ),
                None,
            )
            .await?;
        Ok(sum_buckets(q, &rows))
    }

    pub(crate) async fn api_get_run(&self, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        let docs: Vec<RunDoc> = self
            .query_all(
                query(
                    "SELECT * FROM c WHERE c.type = 'run' AND c.run_id = @id",
                    &[("@id", id.as_str().into())],
                ),
                None,
            )
            .await?;
        Ok(docs.into_iter().next().map(|d| d.doc))
    }

    /// Merges a heartbeat into its function's document: read, merge,
    /// replace under the ETag (or create), again on a lost race.
    pub(crate) async fn api_put_function_beat(
        &self,
        beat: &syncbridge_core::heartbeat::FunctionBeat,
    ) -> Result<(), StoreError> {
        let id = format!("beat.{}", beat.function);
        for _ in 0..16 {
            let done = match self.read::<BeatDoc>(BEATS_PK, &id).await? {
                Some((stored, etag)) => {
                    let doc = BeatDoc {
                        doc: stored.doc.merge(beat),
                        ..stored
                    };
                    self.replace_if(BEATS_PK, &id, &doc, &etag).await?
                }
                None => {
                    let doc = BeatDoc {
                        id: id.clone(),
                        pk: BEATS_PK.into(),
                        kind: "function_beat".into(),
                        doc: beat.clone(),
                    };
                    self.create(BEATS_PK, &id, &doc).await?
                }
            };
            if done {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(format!(
            "heartbeat of {}: kept losing to concurrent writers",
            beat.function
        )))
    }

    pub(crate) async fn api_list_function_beats(
        &self,
    ) -> Result<Vec<syncbridge_core::heartbeat::FunctionBeat>, StoreError> {
        let docs: Vec<BeatDoc> = self
            .query_all(
                query(
                    "SELECT * FROM c WHERE c.type = 'function_beat' ORDER BY c.id",
                    &[],
                ),
                Some(BEATS_PK),
            )
            .await?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }
}

/// The fields of a run that [`CosmosStore::api_run_stats`] sums.
#[derive(Debug, Deserialize)]
struct RunStatRow {
    s: i64,
    #[serde(default)]
    st: Option<String>,
    #[serde(default)]
    f: Option<i64>,
    #[serde(default)]
    cr: u64,
    #[serde(default)]
    up: u64,
    #[serde(default)]
    de: u64,
}

fn sum_buckets(q: &RunStatsQuery, rows: &[RunStatRow]) -> Vec<RunBucket> {
    let width = i64::from(q.bucket_ms.get());
    let since = q.since.as_millis();
    let mut buckets: std::collections::BTreeMap<i64, RunBucket> = Default::default();
    for r in rows {
        let k = (r.s - since).div_euclid(width);
        let b = buckets.entry(k).or_insert(RunBucket {
            start: Timestamp::from_millis(since + k * width),
            runs: 0,
            failed: 0,
            records: 0,
            finished: 0,
            duration_ms: 0,
        });
        b.runs += 1;
        if r.st.as_deref() == Some("failed") {
            b.failed += 1;
        }
        b.records += r.cr + r.up + r.de;
        if let Some(f) = r.f {
            b.finished += 1;
            b.duration_ms += u64::try_from(f - r.s).unwrap_or(0);
        }
    }
    buckets.into_values().collect()
}
