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
//!
//! A provider with delta links (`pagination.delta_path`, Graph's
//! `@odata.deltaLink`) keeps the last complete listing's link in `delta`; the
//! next pass starts there and lists only changes. When the provider answers
//! 410 Gone (it expired the link), the run starts over with a full listing
//! that also reconciles: stored records it does not list are deleted
//! (through the mass-delete breaker), since deletions made while the link
//! was dead are reported nowhere else.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::connector::definition::{DeleteStrategy, ObjectDef};
use crate::connector::extract::{
    ExtractError, NextPage, PageView, delta_link, extract_page, lookup, next_page, parse_time,
    stream_resume,
};
use crate::connector::http::{FetchError, HttpConnector, PageRequest, format_time};
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
    /// The delta link the last complete listing ended with: the next pass
    /// starts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// Keyset restarts (`keyset`): records the current listing has returned.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub listed: u64,
    /// Keyset restarts: the greatest `updated_at` of the current listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_max: Option<Timestamp>,
    /// Keyset restarts: the pass goes on with a new listing from `since`
    /// (the page token is `None`, but the pass is not over).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// A windowed deleted feed's answer does not say up to when it is
    /// complete (at this dotted path); nothing was deleted and the window
    /// does not move.
    #[error("bad page from provider: the deleted feed's answer has no `{0}`")]
    MissingCoverage(String),
    /// A capped listing cannot move on by keyset restarts.
    #[error("keyset restart impossible: {0}")]
    KeysetStuck(String),
    /// The task names an object the connector does not define.
    #[error("connector {connector} has no object {object}")]
    UnknownObject {
        /// Connector name.
        connector: String,
        /// Object name.
        object: String,
    },
}

/// A capped listing (`keyset`) that has returned its cap and has more goes
/// on as a new listing from the greatest `updated_at` it returned. Fails
/// when that is where the listing started: more than `cap` records share
/// one instant and no restart can pass them.
fn keyset_restart(obj: &ObjectDef, cur: &mut InboundCursor) -> Result<(), InboundError> {
    let Some(k) = &obj.keyset else { return Ok(()) };
    if cur.page.is_none() || cur.listed < k.cap {
        return Ok(());
    }
    let Some(from) = cur.listed_max else {
        return Err(InboundError::KeysetStuck(format!(
            "the listing returned {} records without an updated_at to restart from",
            cur.listed
        )));
    };
    if cur.since.is_some_and(|s| s >= from) {
        return Err(InboundError::KeysetStuck(format!(
            "more than {} records have updated_at {from}; a restart from there cannot pass them",
            k.cap
        )));
    }
    cur.since = Some(from);
    cur.page = None;
    cur.restart = true;
    cur.listed = 0;
    cur.listed_max = None;
    Ok(())
}

/// Whether the object's listing ends with a delta link.
fn has_delta(obj: &ObjectDef) -> bool {
    matches!(
        obj.pagination,
        crate::connector::definition::Pagination::NextUrl {
            delta_path: Some(_),
            ..
        }
    )
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
    let (mut cur, mut listing) = start_pass(
        InboundCursor::parse(task.cursor.as_deref()),
        obj,
        connector.now(),
    );
    let mut restarted = false;
    let seen = loop {
        match ctx.pull(&mut cur, listing, counts).await? {
            Pulled::Done(seen) => break seen,
            Pulled::Parked(d) => return Ok(InboundOutcome::Parked(d)),
            // Once per run: a full listing's own links do not expire.
            Pulled::DeltaGone(e) if restarted => return Err(InboundError::Fetch(e)),
            Pulled::DeltaGone(_) => {
                restarted = true;
                cur.page = None;
                cur.delta = None;
                cur.since = None;
                cur.listed = 0;
                cur.listed_max = None;
                cur.restart = false;
                listing = Listing::Reconcile;
            }
        }
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
    let fresh_pass = cur.page.is_none() && !cur.restart;
    if fresh_pass {
        cur.listed = 0;
        cur.listed_max = None;
    }
    if fresh_pass && cur.delta.is_some() {
        // Changes since the last complete listing, from its delta link.
        cur.since = None;
        cur.page = cur.delta.clone();
        cur.pass_start = Some(now);
        return (cur, Listing::Plain);
    }
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
    /// The provider answered 410 Gone to a page of a delta listing (this
    /// error): start over with a full, reconciling listing.
    DeltaGone(FetchError),
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
                Err(e @ FetchError::Rejected { status: 410, .. }) if has_delta(obj) => {
                    return Ok(Pulled::DeltaGone(e));
                }
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
                cur.listed_max = Some(cur.listed_max.map_or(m, |h| h.max(m)));
            }
            cur.listed += n as u64;
            cur.restart = false;
            cur.page = match next {
                NextPage::Token(t) => Some(t),
                NextPage::Done => {
                    if let Some(s) = stream_resume(&obj.pagination, &page.body) {
                        cur.stream = Some(s);
                    }
                    if has_delta(obj) {
                        cur.delta = delta_link(&obj.pagination, &page.body);
                    }
                    None
                }
            };
            // A next link elsewhere fails the page before it is committed.
            for link in cur.page.iter().chain(cur.delta.iter()) {
                self.connector
                    .check_next(obj, link)
                    .await
                    .map_err(InboundError::Fetch)?;
            }
            keyset_restart(obj, cur)?;
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
            if cur.page.is_none() && !cur.restart {
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
        // Where the cursor goes once this run's deletions are committed.
        let mut after_deletes = cur.clone();
        if listing == Listing::Reconcile {
            return Ok(Doomed::Ids {
                ids: self.unlisted(seen).await?,
                after_deletes,
            });
        }
        let ids = match &self.obj.deletes {
            DeleteStrategy::DeletedFeed { .. } => {
                match self.feed_deletions(cur, &mut after_deletes).await {
                    Ok(ids) => ids,
                    Err(InboundError::Fetch(FetchError::Park(d))) => {
                        return Ok(Doomed::Parked(d));
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => Vec::new(),
        };
        Ok(Doomed::Ids { ids, after_deletes })
    }

    /// Lists the deleted feed for the window or filter this run asks for and
    /// sets where the next run's asks from in `after_deletes`.
    async fn feed_deletions(
        &self,
        cur: &InboundCursor,
        after_deletes: &mut InboundCursor,
    ) -> Result<Vec<ExternalId>, InboundError> {
        let (
            Some(feed),
            DeleteStrategy::DeletedFeed {
                query,
                incremental,
                window,
                ..
            },
        ) = (feed_object(self.obj), &self.obj.deletes)
        else {
            return Ok(Vec::new());
        };
        let since = incremental.as_ref().and_then(|inc| {
            cur.deleted_since
                .map(|t| t.sub(Duration::from_secs(inc.lookback_secs)))
        });
        let now = self.connector.now();
        if incremental.is_some() {
            after_deletes.deleted_since = Some(now);
        }
        let mut query = query.clone();
        if let Some(w) = window {
            // From where the last listing's coverage ended (the first: this
            // pass's start), minus the lookback, to now.
            let start = cur
                .deleted_since
                .or(cur.pass_start)
                .unwrap_or(now)
                .sub(Duration::from_secs(w.lookback_secs));
            query.insert(w.start.clone(), format_time(start, w.format));
            query.insert(w.end.clone(), format_time(now, w.format));
        }
        let listed =
            deleted_feed(self.store, self.connector, &feed, self.task, &query, since).await?;
        if let Some(w) = window {
            after_deletes.deleted_since = match &w.covered_path {
                None => Some(now),
                Some(path) => Some(
                    lookup(&listed.last_body, path)
                        .and_then(parse_time)
                        .ok_or_else(|| InboundError::MissingCoverage(path.clone()))?,
                ),
            };
        }
        Ok(listed.ids)
    }

    /// After a complete, reconciling listing: every stored id it did not list.
    async fn unlisted(&self, seen: &HashSet<ExternalId>) -> Result<Vec<ExternalId>, StoreError> {
        let task = self.task;
        let mut doomed = Vec::new();
        let mut after: Option<ExternalId> = None;
        loop {
            let batch = self
                .store
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
        Ok(doomed)
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

/// The ids of a deleted-feed page not listed on an earlier page of the same
/// listing, in page order: a feed may repeat an id across pages (a record
/// deleted, restored and deleted again; a time window's pages overlapping),
/// and the mass-delete breaker must count each deletion once.
fn first_sightings(seen: &mut HashSet<ExternalId>, page: Vec<ExternalId>) -> Vec<ExternalId> {
    page.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// What a deleted feed listed.
struct FeedListing {
    /// Ids still present locally, each once.
    ids: Vec<ExternalId>,
    /// The last page's body (where a window's coverage is read).
    last_body: serde_json::Value,
}

/// The object a deleted feed is listed as: the object with the feed's own
/// endpoint, paging, record shape and filter where it has them; `None` when
/// the object has no deleted feed.
pub fn feed_object(obj: &ObjectDef) -> Option<ObjectDef> {
    let DeleteStrategy::DeletedFeed {
        list,
        pagination,
        incremental,
        records,
        id,
        ..
    } = &obj.deletes
    else {
        return None;
    };
    let mut feed = obj.clone();
    if let Some(list) = list {
        feed.list = list.clone();
    }
    if let Some(p) = pagination {
        feed.pagination = (**p).clone();
    }
    if let Some(r) = records {
        feed.records = r.clone();
    }
    if let Some(i) = id {
        feed.id = i.clone();
    }
    feed.incremental = incremental.clone();
    feed.keyset = None;
    Some(feed)
}

/// Lists the deleted feed (only deletions since `since`, when the feed has a
/// filter) and returns the ids still present locally, each once.
async fn deleted_feed(
    store: &dyn Store,
    connector: &HttpConnector,
    obj: &ObjectDef,
    task: &SyncTask,
    query: &std::collections::BTreeMap<String, String>,
    since: Option<Timestamp>,
) -> Result<FeedListing, InboundError> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
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
        for id in first_sightings(&mut seen, extracted.deletes) {
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
            NextPage::Done => {
                return Ok(FeedListing {
                    ids,
                    last_body: fetched.body,
                });
            }
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

    /// What was tried: a deleted feed whose second page repeats an id of the
    /// first (and one within itself). What holds: every id is doomed once,
    /// in first-seen order, so the mass-delete breaker counts 3 deletions,
    /// not 5 — 3 of 30 records stays within a 10% share, 5 would trip it.
    #[test]
    fn deleted_feed_ids_are_counted_once_across_pages() {
        let id = |s: &str| ExternalId::parse(s.to_string()).unwrap();
        let mut seen = HashSet::new();
        let mut doomed = first_sightings(&mut seen, vec![id("1"), id("2")]);
        doomed.extend(first_sightings(&mut seen, vec![id("2"), id("3"), id("3")]));
        assert_eq!(doomed, vec![id("1"), id("2"), id("3")]);
        assert!(breaker_allows(doomed.len() as u64, 30, 0.1));
        assert!(!breaker_allows(5, 30, 0.1), "counted twice, it would trip");
    }

    /// Keyset restarts: below the cap or on the last page nothing happens;
    /// at the cap with more to come the pass goes on from the greatest
    /// `updated_at` listed; a restart that would start where the listing
    /// started (more than `cap` records at one instant) is refused.
    #[test]
    fn keyset_restart_table() {
        let text = r#"name = "t"
base_url = "http://x"
[objects.o]
list = { path = "/o", query = { since = "{{since}}" } }
records = "results"
id = "id"
updated_at = "u"
pagination = { type = "body_cursor", cursor_path = "next", param = "after" }
incremental = { format = "epoch_ms" }
keyset = { cap = 100 }
fields = { a = "a" }
"#;
        let def = crate::connector::ConnectorDef::from_toml("t", text).unwrap();
        let obj = def.object("o").unwrap();
        let t = Timestamp::from_millis;
        let at = |listed, page: Option<&str>, since| InboundCursor {
            listed,
            listed_max: Some(t(50)),
            page: page.map(str::to_owned),
            since,
            ..Default::default()
        };
        let mut below = at(99, Some("p"), None);
        keyset_restart(obj, &mut below).unwrap();
        assert_eq!((below.page.as_deref(), below.restart), (Some("p"), false));
        let mut last = at(100, None, None);
        keyset_restart(obj, &mut last).unwrap();
        assert!(!last.restart);
        let mut capped = at(100, Some("p"), Some(t(10)));
        keyset_restart(obj, &mut capped).unwrap();
        assert_eq!(
            (capped.page, capped.restart, capped.since, capped.listed),
            (None, true, Some(t(50)), 0)
        );
        let mut stuck = at(100, Some("p"), Some(t(50)));
        assert!(matches!(
            keyset_restart(obj, &mut stuck),
            Err(InboundError::KeysetStuck(_))
        ));
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
            delta: Some("https://graph.microsoft.com/v1.0/x?$deltatoken=1".into()),
            listed: 7,
            listed_max: Some(Timestamp::from_millis(6)),
            restart: true,
        };
        assert_eq!(
            InboundCursor::parse(Some(&serde_json::to_string(&c).unwrap())),
            c
        );
    }
}
