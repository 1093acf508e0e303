//! One inbound run.
//!
//! # Cursor
//!
//! The task's cursor is an [`InboundCursor`] (JSON). A *pass* lists the
//! object from `since` (inclusive) to the end; `page` is the provider's token
//! for the next page of the current pass. Each page's records are committed
//! together with the cursor that follows them, so a crash resumes at the first
//! uncommitted page. When a pass ends, the next one starts at the earlier of
//! the high-water mark and the time the ended pass started, minus the
//! connector's lookback window: records the provider stamped a little late
//! are fetched again and skipped by content hash, and a record edited during
//! a pass that does not list in `updatedAt` order (a first full listing by
//! id, page-number paging) is not skipped because a later page carried a
//! newer time. (Clock skew between us and the provider beyond the lookback
//! can still hide an edit made during a pass.)
//!
//! A cursor stream (Zendesk's incremental export) keeps `stream`: the
//! cursor its last complete pass ended on. The next pass starts from that
//! cursor instead of from a time.
//!
//! A deleted feed with its own filter (`deletes.incremental`) keeps
//! `deleted_since`: the start of its last complete listing. The next run asks
//! only for deletions from then on, minus the feed's lookback, so a pass with
//! nothing new costs one feed request however many records were ever
//! deleted. It moves with the run's last delete commit (or alone, when there
//! is nothing to delete), never when the mass-delete breaker refused them.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::connector::definition::{DeleteStrategy, ObjectDef};
use crate::connector::extract::{
    ExtractError, NextPage, PageView, extract_page, next_page, stream_resume,
};
use crate::connector::http::{FetchError, HttpConnector, PageRequest};
use crate::ids::ExternalId;
use crate::model::{RunCounts, SyncTask};
use crate::store::{PageCommit, Store, StoreError};

/// Resume point of an inbound task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundCursor {
    /// Lower bound of the current pass (`None` = full listing).
    pub since: Option<Timestamp>,
    /// Provider token of the next page of the current pass (`None` = start a new pass).
    pub page: Option<String>,
    /// Latest `updated_at` committed so far.
    pub high_water: Option<Timestamp>,
    /// When the current (or last) pass started, by our clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_start: Option<Timestamp>,
    /// When the last complete listing of an incremental deleted feed started,
    /// by our clock: the next listing asks only for deletions since then
    /// (minus the feed's lookback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_since: Option<Timestamp>,
    /// A cursor stream's position after its last complete pass (Zendesk's
    /// final `after_cursor`): the next pass starts there instead of at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

impl InboundCursor {
    /// Parses a stored cursor; an unreadable one restarts with a full pass.
    pub fn parse(s: Option<&str>) -> Self {
        s.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

/// Where an incremental pass starts: the high-water mark, but not later
/// than the start of the last pass, minus the lookback. `None` (a full
/// listing) until a pass has seen a record.
pub fn pass_since(
    high_water: Option<Timestamp>,
    last_pass_start: Option<Timestamp>,
    lookback: Duration,
) -> Option<Timestamp> {
    let hw = high_water?;
    Some(
        last_pass_start
            .map_or(hw, |start| hw.min(start))
            .sub(lookback),
    )
}

/// Whether deleting `deletes` of `total` records stays within `max_share`.
pub fn breaker_allows(deletes: u64, total: u64, max_share: f64) -> bool {
    deletes == 0 || (deletes as f64) <= max_share * total as f64
}

/// The mass-delete breaker refused a run's deletions.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerTrip {
    /// Deletions the provider reported.
    pub deletes: u64,
    /// Records in the store.
    pub total: u64,
    /// The configured limit.
    pub max_share: f64,
    /// Human explanation.
    pub message: String,
}

/// How a run ended.
#[derive(Debug)]
pub enum InboundOutcome {
    /// All pages done.
    Completed {
        /// Set when the mass-delete breaker refused this run's deletions.
        breaker: Option<BreakerTrip>,
    },
    /// Rate limited for long: resume after this wait from the committed cursor.
    Parked(Duration),
}

/// Why a run stopped early. Pages committed before the failure stay committed.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The provider failed.
    #[error(transparent)]
    Fetch(FetchError),
    /// The provider's page could not be used.
    #[error("bad page from provider: {0}")]
    BadPage(#[from] ExtractError),
    /// The store failed (or the lease was lost).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task names an object the connector does not define.
    #[error("connector {connector} has no object {object}")]
    UnknownObject {
        /// Connector name.
        connector: String,
        /// Object name.
        object: String,
    },
}

/// Runs one inbound sync of `task` under `lease_token`, adding to `counts` as it
/// goes and calling `progress` after every committed page.
///
/// Phases: [`start_pass`] (pure: where the listing starts), [`RunCtx::pull`]
/// (every page, each committed with its cursor), [`RunCtx::doomed`] (the
/// records the provider deleted) and [`RunCtx::delete`] (through the
/// mass-delete breaker).
pub async fn run_inbound(
    store: &dyn Store,
    connector: &HttpConnector,
    task: &SyncTask,
    lease_token: &str,
    counts: &mut RunCounts,
    progress: &(dyn Fn(&RunCounts) + Send + Sync),
) -> Result<InboundOutcome, InboundError> {
    let def = connector.def();
    let obj = def
        .object(task.object.as_str())
        .ok_or_else(|| InboundError::UnknownObject {
            connector: def.name.clone(),
            object: task.object.to_string(),
        })?;
    let ctx = RunCtx {
        store,
        connector,
        task,
        lease_token,
        obj,
        progress,
    };
    let (mut cur, listing) = start_pass(
        InboundCursor::parse(task.cursor.as_deref()),
        obj,
        connector.now(),
    );
    let seen = match ctx.pull(&mut cur, listing, counts).await? {
        Pulled::Done(seen) => seen,
        Pulled::Parked(d) => return Ok(InboundOutcome::Parked(d)),
    };
    let (doomed, after_deletes) = match ctx.doomed(&cur, listing, &seen).await? {
        Doomed::Ids { ids, after_deletes } => (ids, after_deletes),
        Doomed::Parked(d) => return Ok(InboundOutcome::Parked(d)),
    };
    if doomed.is_empty() {
        if after_deletes != cur {
            ctx.commit(Vec::new(), Vec::new(), &after_deletes).await?;
        }
        return Ok(InboundOutcome::Completed { breaker: None });
    }
    ctx.delete(&doomed, &cur, &after_deletes, counts).await
}

/// Whether this run lists every record, so that deletions can be found by
/// what the listing did not return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// A complete listing for full reconciliation: collect every live id.
    Reconcile,
    /// Anything else.
    Plain,
}

/// Where this run's listing starts: a fresh pass (no page token) starts at
/// [`pass_since`] and stamps its start with `now`; a pass in progress
/// resumes. Pure.
fn start_pass(mut cur: InboundCursor, obj: &ObjectDef, now: Timestamp) -> (InboundCursor, Listing) {
    let fresh_pass = cur.page.is_none();
    if fresh_pass {
        // Not past the start of the last pass: an edit made while it ran may
        // sit on a page it had already read.
        cur.since = obj.incremental.as_ref().and_then(|inc| {
            pass_since(
                cur.high_water,
                cur.pass_start,
                Duration::from_secs(inc.lookback_secs),
            )
        });
        cur.pass_start = Some(now);
        // A cursor stream goes on from where its last pass ended.
        if cur.stream.is_some() {
            cur.page = cur.stream.clone();
        }
    }
    // Full reconciliation needs every live id of a complete listing from this run.
    let listing = if matches!(obj.deletes, DeleteStrategy::FullReconciliation)
        && fresh_pass
        && cur.since.is_none()
        && cur.stream.is_none()
    {
        Listing::Reconcile
    } else {
        Listing::Plain
    };
    (cur, listing)
}

/// One run's borrowed context, shared by its phases.
struct RunCtx<'a> {
    store: &'a dyn Store,
    connector: &'a HttpConnector,
    task: &'a SyncTask,
    lease_token: &'a str,
    obj: &'a ObjectDef,
    progress: &'a (dyn Fn(&RunCounts) + Send + Sync),
}

/// How the page loop ended.
enum Pulled {
    /// Every page is committed; the live ids seen (a reconciling listing only).
    Done(HashSet<ExternalId>),
    /// Rate limited for long: resume from the committed cursor after this.
    Parked(Duration),
}

/// The records the provider deleted.
enum Doomed {
    /// These ids, and where the cursor goes once they are deleted.
    Ids {
        ids: Vec<ExternalId>,
        after_deletes: InboundCursor,
    },
    /// Rate limited for long while listing the deleted feed.
    Parked(Duration),
}

impl RunCtx<'_> {
    /// Commits `upserts` and `deletes` with `cursor` under the lease.
    async fn commit(
        &self,
        upserts: Vec<crate::store::RecordUpsert>,
        deletes: Vec<ExternalId>,
        cursor: &InboundCursor,
    ) -> Result<crate::store::PageOutcome, StoreError> {
        let task = self.task;
        self.store
            .commit_page(&PageCommit {
                task: task.id.clone(),
                lease_token: self.lease_token.into(),
                connection: task.connection.clone(),
                object: task.object.clone(),
                upserts,
                deletes,
                cursor: Some(serde_json::to_string(cursor).expect("cursor serializes")),
            })
            .await
    }

    /// Fetches and commits every page of the pass, from `cur` on.
    async fn pull(
        &self,
        cur: &mut InboundCursor,
        listing: Listing,
        counts: &mut RunCounts,
    ) -> Result<Pulled, InboundError> {
        let obj = self.obj;
        let mut seen: HashSet<ExternalId> = HashSet::new();
        loop {
            let req = PageRequest {
                since: cur.since,
                page: cur.page.clone(),
                ..Default::default()
            };
            let page = match self.connector.fetch(obj, &req).await {
                Ok(p) => p,
                Err(FetchError::Park(d)) => return Ok(Pulled::Parked(d)),
                Err(e) => return Err(InboundError::Fetch(e)),
            };
            let extracted = extract_page(obj, &page.body, false)?;
            let n = extracted.upserts.len() + extracted.deletes.len();
            let next = next_page(
                &obj.pagination,
                &PageView {
                    body: &page.body,
                    records: &obj.records,
                    link: page.link.as_deref(),
                    current: cur.page.as_deref(),
                },
            )?;
            if let Some(m) = extracted.max_updated {
                cur.high_water = Some(cur.high_water.map_or(m, |h| h.max(m)));
            }
            cur.page = match next {
                NextPage::Token(t) => Some(t),
                NextPage::Done => {
                    if let Some(s) = stream_resume(&obj.pagination, &page.body) {
                        cur.stream = Some(s);
                    }
                    None
                }
            };
            if listing == Listing::Reconcile {
                seen.extend(extracted.upserts.iter().map(|u| u.external_id.clone()));
            }
            counts.pages += 1;
            counts.fetched += n as u64;
            let out = self
                .commit(extracted.upserts, extracted.deletes, cur)
                .await?;
            counts.created += out.created;
            counts.updated += out.updated;
            counts.unchanged += out.unchanged;
            counts.deleted += out.deleted;
            (self.progress)(counts);
            if cur.page.is_none() {
                return Ok(Pulled::Done(seen));
            }
        }
    }

    /// The ids to delete: the deleted feed's (those still stored), or, after
    /// a reconciling listing, every stored id it did not return.
    async fn doomed(
        &self,
        cur: &InboundCursor,
        listing: Listing,
        seen: &HashSet<ExternalId>,
    ) -> Result<Doomed, InboundError> {
        let (store, task) = (self.store, self.task);
        // Where the cursor goes once this run's deletions are committed.
        let mut after_deletes = cur.clone();
        let ids = match &self.obj.deletes {
            DeleteStrategy::DeletedFeed {
                query,
                list,
                pagination,
                incremental,
            } => {
                // The feed's own endpoint, paging and filter, where it has them.
                let mut feed = self.obj.clone();
                if let Some(list) = list {
                    feed.list = list.clone();
                }
                if let Some(p) = pagination {
                    feed.pagination = (**p).clone();
                }
                feed.incremental = incremental.clone();
                let since = incremental.as_ref().and_then(|inc| {
                    cur.deleted_since
                        .map(|t| t.sub(Duration::from_secs(inc.lookback_secs)))
                });
                if incremental.is_some() {
                    after_deletes.deleted_since = Some(self.connector.now());
                }
                match deleted_feed(store, self.connector, &feed, task, query, since).await {
                    Ok(ids) => ids,
                    Err(InboundError::Fetch(FetchError::Park(d))) => {
                        return Ok(Doomed::Parked(d));
                    }
                    Err(e) => return Err(e),
                }
            }
            DeleteStrategy::FullReconciliation if listing == Listing::Reconcile => {
                let mut doomed = Vec::new();
                let mut after: Option<ExternalId> = None;
                loop {
                    let batch = store
                        .list_records(&task.connection, &task.object, after.as_ref(), 1000)
                        .await?;
                    let Some(last) = batch.last() else { break };
                    after = Some(last.external_id.clone());
                    doomed.extend(
                        batch
                            .into_iter()
                            .map(|r| r.external_id)
                            .filter(|id| !seen.contains(id)),
                    );
                }
                doomed
            }
            _ => Vec::new(),
        };
        Ok(Doomed::Ids { ids, after_deletes })
    }

    /// Deletes `doomed` in chunks, unless the mass-delete breaker refuses.
    async fn delete(
        &self,
        doomed: &[ExternalId],
        cur: &InboundCursor,
        after_deletes: &InboundCursor,
        counts: &mut RunCounts,
    ) -> Result<InboundOutcome, InboundError> {
        let (obj, task) = (self.obj, self.task);
        let total = self
            .store
            .count_records(&task.connection, &task.object)
            .await?;
        if !breaker_allows(doomed.len() as u64, total, obj.max_delete_share) {
            let why = format!(
                "mass-delete breaker tripped: provider reports {} of {} {} deleted ({:.1}%), above the {:.1}% limit; nothing was deleted",
                doomed.len(),
                total,
                task.object,
                100.0 * doomed.len() as f64 / total.max(1) as f64,
                100.0 * obj.max_delete_share
            );
            return Ok(InboundOutcome::Completed {
                breaker: Some(BreakerTrip {
                    deletes: doomed.len() as u64,
                    total,
                    max_share: obj.max_delete_share,
                    message: why,
                }),
            });
        }
        // The feed's own cursor moves with the last chunk: a crash before it
        // lists the same deletions again (deleting twice is a no-op).
        let chunks = doomed.chunks(500).count();
        for (i, chunk) in doomed.chunks(500).enumerate() {
            let cursor = if i + 1 == chunks { after_deletes } else { cur };
            let out = self.commit(Vec::new(), chunk.to_vec(), cursor).await?;
            counts.deleted += out.deleted;
            (self.progress)(counts);
        }
        Ok(InboundOutcome::Completed { breaker: None })
    }
}

/// Lists the deleted feed (only deletions since `since`, when the feed has a
/// filter) and returns the ids still present locally.
async fn deleted_feed(
    store: &dyn Store,
    connector: &HttpConnector,
    obj: &ObjectDef,
    task: &SyncTask,
    query: &std::collections::BTreeMap<String, String>,
    since: Option<Timestamp>,
) -> Result<Vec<ExternalId>, InboundError> {
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let req = PageRequest {
            since,
            page: page.clone(),
            extra_query: query.clone(),
        };
        let fetched = connector
            .fetch(obj, &req)
            .await
            .map_err(InboundError::Fetch)?;
        let extracted = extract_page(obj, &fetched.body, true)?;
        let next = next_page(
            &obj.pagination,
            &PageView {
                body: &fetched.body,
                records: &obj.records,
                link: fetched.link.as_deref(),
                current: page.as_deref(),
            },
        )?;
        for id in extracted.deletes {
            if store
                .get_record(&task.connection, &task.object, &id)
                .await?
                .is_some()
            {
                ids.push(id);
            }
        }
        match next {
            NextPage::Token(t) => page = Some(t),
            NextPage::Done => return Ok(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The breaker allows deletes up to the share and refuses above it.
    #[test]
    fn breaker_table() {
        for (deletes, total, share, ok) in [
            (0, 0, 0.1, true),
            (10, 100_000, 0.1, true),
            (10, 100, 0.1, true),
            (11, 100, 0.1, false),
            (1, 0, 0.1, false),
            (100, 100, 1.0, true),
            (1, 100, 0.0, false),
        ] {
            assert_eq!(
                breaker_allows(deletes, total, share),
                ok,
                "{deletes}/{total} at {share}"
            );
        }
    }

    /// Where the next pass starts: a pass that read an older edit on an
    /// early page and a newer one on a later page (a listing not in
    /// `updatedAt` order) starts again from before it began, not from the
    /// newest time it saw.
    #[test]
    fn pass_since_table() {
        let t = |s: i64| Timestamp::from_millis(s * 1000);
        let lookback = Duration::from_secs(60);
        let cases = [
            // (high water, last pass start, since)
            (None, None, None),
            (None, Some(t(1000)), None),
            (Some(t(1000)), None, Some(t(940))),
            // The pass started at 500 and saw an edit stamped 1000: an edit
            // at 520 on a page it had already read must still be fetched.
            (Some(t(1000)), Some(t(500)), Some(t(440))),
            // Nothing changed since the last pass began: the high-water mark.
            (Some(t(400)), Some(t(500)), Some(t(340))),
        ];
        for (hw, start, want) in cases {
            assert_eq!(pass_since(hw, start, lookback), want, "{hw:?} {start:?}");
        }
    }

    /// A missing or unreadable cursor starts a full pass.
    #[test]
    fn cursor_parse() {
        assert_eq!(InboundCursor::parse(None), InboundCursor::default());
        assert_eq!(
            InboundCursor::parse(Some("garbage")),
            InboundCursor::default()
        );
        let c = InboundCursor {
            since: None,
            page: Some("p".into()),
            high_water: Some(Timestamp::from_millis(5)),
            pass_start: Some(Timestamp::from_millis(3)),
            deleted_since: Some(Timestamp::from_millis(4)),
            stream: Some("after".into()),
        };
        assert_eq!(
            InboundCursor::parse(Some(&serde_json::to_string(&c).unwrap())),
            c
        );
    }
}
