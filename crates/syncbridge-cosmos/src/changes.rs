//! The product API's change calls: idempotency keys and the keyset pages of
//! parked conflicts and of a connection's audit.
//!
//! An idempotency key is one document in its scope's partition
//! (`~idem.<scope>`, id `idem.<hash(key)>`) holding core's
//! `IdempotencyEntry`. A claim reads it and applies
//! `IdempotencyEntry::decide`: a new key is a create (409: someone else
//! created it first — read again), a lapsed or expired one a replace under
//! the ETag read (412: read again). Complete and release re-read and
//! replace/delete under the ETag, only while the claim's token is the
//! stored one. Documents carry `ttl` (the rest of the day they are kept), so
//! Cosmos DB removes them; a claim treats an expired one as absent anyway.

use serde::{Deserialize, Serialize};
use syncbridge_core::StoreError;
use syncbridge_core::model::Record;
use syncbridge_core::store::changes::{Decision, IdempotencyEntry};
use syncbridge_core::store::{
    AuditEntry, AuditKey, AuditQuery, ClaimOutcome, ConflictQuery, IdempotencyClaim, StoredAnswer,
};

use crate::docs::{AuditDoc, RecordDoc, digest, local_key};
use crate::{CosmosStore, query, to_record};

/// The partition of a scope's idempotency keys.
fn idem_pk(scope: &str) -> String {
    format!("~idem.{scope}")
}

fn idem_id(key: &str) -> String {
    format!("idem.{}", digest(&[key]))
}

/// An idempotency key's document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdemDoc {
    id: String,
    pk: String,
    #[serde(rename = "type")]
    kind: String,
    /// Seconds until Cosmos DB removes it (per-item TTL).
    ttl: i64,
    entry: IdempotencyEntry,
}

impl IdemDoc {
    fn new(entry: IdempotencyEntry, now: syncbridge_core::Timestamp) -> Self {
        IdemDoc {
            id: idem_id(&entry.key),
            pk: idem_pk(&entry.scope),
            kind: "idempotency_key".into(),
            ttl: (entry.expires_at.as_millis() - now.as_millis()).max(1000) / 1000,
            entry,
        }
    }
}

impl CosmosStore {
    pub(crate) async fn idem_claim(
        &self,
        c: &IdempotencyClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        let (pk, id) = (idem_pk(&c.scope), idem_id(&c.key));
        for _ in 0..self.options.cas_attempts {
            let stored = self.read::<IdemDoc>(&pk, &id).await?;
            let entry = match IdempotencyEntry::decide(stored.as_ref().map(|(d, _)| &d.entry), c) {
                Decision::Answer(a) => return Ok(a),
                Decision::Take(entry) => *entry,
            };
            let doc = IdemDoc::new(entry, c.now);
            let written = match &stored {
                None => self.create(&pk, &id, &doc).await?,
                Some((_, etag)) => self.replace_if(&pk, &id, &doc, etag).await?,
            };
            if written {
                return Ok(ClaimOutcome::Claimed);
            }
        }
        Err(StoreError::Conflict(format!("idempotency key {}", c.key)))
    }

    /// Completes (`Some`) or releases (`None`) a claim still held by `c`.
    pub(crate) async fn idem_finish(
        &self,
        c: &IdempotencyClaim,
        answer: Option<&StoredAnswer>,
    ) -> Result<bool, StoreError> {
        let (pk, id) = (idem_pk(&c.scope), idem_id(&c.key));
        for _ in 0..self.options.cas_attempts {
            let Some((mut doc, etag)) = self.read::<IdemDoc>(&pk, &id).await? else {
                return Ok(false);
            };
            if doc.entry.token != c.token || doc.entry.answer.is_some() {
                return Ok(false);
            }
            let done = match answer {
                Some(a) => {
                    doc.entry.answer = Some(a.clone());
                    self.replace_if(&pk, &id, &doc, &etag).await?
                }
                None => self.delete(&pk, &id, Some(&etag)).await?,
            };
            if done {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!("idempotency key {}", c.key)))
    }

    /// Records with parked conflicts after the cursor, by `conflict_key`
    /// (one property, ordered like (connection, object, id)).
    pub(crate) async fn conflicts_page(
        &self,
        q: &ConflictQuery,
    ) -> Result<Vec<Record>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let after = q.after.as_ref().map_or(String::new(), |a| {
            local_key(
                a.connection.as_str(),
                a.object.as_str(),
                a.external_id.as_str(),
            )
        });
        let text = format!(
            "SELECT TOP {} * FROM c WHERE c.type = 'record' AND IS_STRING(c.conflict_key) \
             AND NOT IS_DEFINED(c.deleted_at) AND c.conflict_key > @after \
             ORDER BY c.conflict_key ASC",
            q.limit
        );
        let docs: Vec<RecordDoc> = self
            .query_all(
                query(text, &[("@after", after.into())]),
                q.connection.as_ref().map(|c| c.as_str()),
            )
            .await?;
        docs.into_iter().map(to_record).collect()
    }

    /// A connection's audit after the cursor: its partition, ordered by
    /// (`log_order`, `id`) (a composite index in Azure).
    pub(crate) async fn audit_page(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let (mut clause, mut params) = (String::new(), Vec::new());
        if let Some(k) = &q.after {
            clause = " AND (c.log_order > @o OR (c.log_order = @o AND c.id > @id))".into();
            params.push(("@o", serde_json::Value::from(k.order)));
            params.push(("@id", serde_json::Value::from(k.tie.as_str())));
        }
        let text = format!(
            "SELECT TOP {} * FROM c WHERE c.type = 'audit'{clause} \
             ORDER BY c.log_order ASC, c.id ASC",
            q.limit
        );
        let docs: Vec<AuditDoc> = self
            .query_all(query(text, &params), Some(q.connection.as_str()))
            .await?;
        Ok(docs
            .into_iter()
            .map(|d| AuditEntry {
                key: AuditKey {
                    order: d.log_order,
                    tie: d.id,
                },
                record: d.doc,
            })
            .collect())
    }
}
