//! The records feed on Cosmos DB (core's `store::feed` rules).
//!
//! Each connection's partition holds a counter document (`seq`, type
//! `seq_counter`). A write that stamps records reads it, draws the next
//! numbers, and replaces it under its ETag **in the same transactional
//! batch** (or creates it, when absent): two concurrent writers that read
//! the same counter cannot both commit — the loser's batch fails with
//! 412/409, rolls back whole, and re-reads. So no two records share a
//! sequence and the sequence only grows.
//!
//! The feed read is a partition-scoped query ordered by the single
//! property `seq` (the range index serves it; no composite index needed),
//! filtered by object, action and time.

use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::BatchReplaceOptions;
use syncbridge_core::store::{FeedEntry, FeedQuery};
use syncbridge_core::{ExternalId, StoreError, Timestamp};

use crate::docs::{self, CounterDoc, RecordDoc};
use crate::{CosmosStore, corrupt, if_match, query};

/// A connection's change-sequence counter as one batch uses it.
pub(crate) struct SeqCounter {
    doc: CounterDoc,
    /// `None` = the counter does not exist yet (the batch creates it).
    etag: Option<String>,
    drawn: bool,
}

impl SeqCounter {
    /// A counter of partition `pk` that does not exist yet, handing out `next` first.
    fn unread(pk: &str, next: i64) -> Self {
        SeqCounter {
            doc: CounterDoc {
                id: docs::SEQ_COUNTER_ID.into(),
                pk: pk.to_owned(),
                kind: "seq_counter".into(),
                next,
            },
            etag: None,
            drawn: false,
        }
    }

    /// Reads the counter of partition `pk`.
    pub(crate) async fn read(store: &CosmosStore, pk: &str) -> Result<Self, StoreError> {
        Ok(
            match store.read::<CounterDoc>(pk, docs::SEQ_COUNTER_ID).await? {
                Some((doc, etag)) => SeqCounter {
                    doc,
                    etag: Some(etag),
                    drawn: false,
                },
                None => Self::unread(pk, 1),
            },
        )
    }

    /// [`SeqCounter::read`] when `needed`; otherwise a counter that must
    /// not be drawn from (saves the read for writes that stamp nothing).
    pub(crate) async fn read_if(
        store: &CosmosStore,
        pk: &str,
        needed: bool,
    ) -> Result<Self, StoreError> {
        if needed {
            return Self::read(store, pk).await;
        }
        Ok(Self::unread(pk, 0))
    }

    /// The next sequence number.
    pub(crate) fn draw(&mut self) -> i64 {
        debug_assert!(self.doc.next > 0, "drawn from a counter that was not read");
        let n = self.doc.next;
        self.doc.next += 1;
        self.drawn = true;
        n
    }

    /// Adds the counter's write to `batch` if a number was drawn.
    pub(crate) fn add_to(
        self,
        batch: TransactionalBatch,
    ) -> Result<TransactionalBatch, StoreError> {
        if !self.drawn {
            return Ok(batch);
        }
        let what = |e| corrupt("sequence counter", e);
        match self.etag {
            None => batch.create_item(self.doc).map_err(what),
            Some(etag) => batch
                .replace_item(
                    docs::SEQ_COUNTER_ID.to_owned(),
                    self.doc,
                    Some(BatchReplaceOptions::default().with_precondition(if_match(&etag))),
                )
                .map_err(what),
        }
    }
}

/// See `Store::records_feed`: one partition, `ORDER BY c.seq`, at most `limit`.
pub(crate) async fn records_feed(
    store: &CosmosStore,
    q: &FeedQuery,
) -> Result<Vec<FeedEntry>, StoreError> {
    let actions = q.actions.allowed();
    if q.limit == 0 || actions.is_empty() {
        return Ok(Vec::new());
    }
    let after = i64::try_from(q.after_seq.unwrap_or(0)).unwrap_or(i64::MAX);
    let mut text = format!(
        "SELECT TOP {} * FROM c WHERE c.type = 'record' AND c.object = @o \
         AND c.seq > @after AND ARRAY_CONTAINS(@actions, c.last_action)",
        q.limit
    );
    let mut params = vec![
        ("@o", q.object.as_str().into()),
        ("@after", after.into()),
        ("@actions", serde_json::json!(actions)),
    ];
    if let Some(t) = q.modified_after {
        text.push_str(" AND c.last_modified_at > @since");
        params.push(("@since", t.as_millis().into()));
    }
    text.push_str(" ORDER BY c.seq ASC");
    let docs: Vec<RecordDoc> = store
        .query_all(query(text, &params), Some(q.connection.as_str()))
        .await?;
    docs.into_iter().map(feed_entry).collect()
}

fn feed_entry(d: RecordDoc) -> Result<FeedEntry, StoreError> {
    let missing = |what: &str| corrupt(&format!("record {}", d.id), format!("no {what}"));
    Ok(FeedEntry {
        seq: d
            .seq
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| missing("seq"))?,
        first_seen_at: Timestamp::from_millis(
            d.first_seen_at.ok_or_else(|| missing("first_seen_at"))?,
        ),
        last_modified_at: Timestamp::from_millis(
            d.last_modified_at
                .ok_or_else(|| missing("last_modified_at"))?,
        ),
        last_action: d.last_action.ok_or_else(|| missing("last_action"))?,
        deleted_at: d.deleted_at.map(Timestamp::from_millis),
        external_id: ExternalId::parse(d.external_id).map_err(|e| corrupt("record id", e))?,
        data: d.data,
    })
}
