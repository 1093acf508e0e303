//! The in-memory CRM: one [`Table`] per [`ObjectKind`], each split into live
//! and archived [`Partition`]s, plus the mutation clock and the
//! idempotency-key cache.
//!
//! Every partition keeps two indexes over the same records: `by_id`
//! (a `BTreeMap`, for gets and id-ordered pages) and `by_updated` (a
//! `BTreeSet<(updated_ms, id)>`, for modified-since pages). A page is a range
//! scan from a keyset [`Cursor`], so serving a page costs
//! `O(log N + page)` whatever the table size; only filters on arbitrary
//! properties scan.
//!
//! **Invariant:** a record is in exactly one partition, and its
//! `(updated_ms, id)` is in that partition's `by_updated` exactly when its id
//! is in `by_id`. All mutation goes through [`Table`] methods that keep this.
//!
//! The store holds no locks itself; the sandbox wraps it in one `RwLock` so a
//! multi-record mutation is atomic with respect to readers.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::clock::MutationClock;
use crate::seed;

/// The CRM objects the sandbox serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// `/crm/v3/objects/contacts`
    Contacts = 0,
    /// `/crm/v3/objects/companies`
    Companies = 1,
    /// `/crm/v3/objects/deals`
    Deals = 2,
}

impl ObjectKind {
    /// Every kind, in table order.
    pub const ALL: [ObjectKind; 3] = [Self::Contacts, Self::Companies, Self::Deals];

    /// The path segment (`contacts`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
        }
    }

    /// The singular used in webhook event types (`contact.updated`).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Contacts => "contact",
            Self::Companies => "company",
            Self::Deals => "deal",
        }
    }

    /// The property HubSpot reports the modification time under
    /// (`lastmodifieddate` for contacts, `hs_lastmodifieddate` otherwise).
    pub fn modified_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contacts" | "contact" | "0-1" => Ok(Self::Contacts),
            "companies" | "company" | "0-2" => Ok(Self::Companies),
            "deals" | "deal" | "0-3" => Ok(Self::Deals),
            other => Err(StoreError::UnknownObject(other.to_owned())),
        }
    }
}

/// Why a store operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The path named an object type the sandbox does not have.
    #[error("unknown object type {0:?}")]
    UnknownObject(String),
    /// No record with that id (in the requested partition).
    #[error("object not found")]
    NotFound,
    /// A contact with that email already exists.
    #[error("contact already exists. Existing ID: {existing}")]
    Conflict {
        /// The id of the contact that owns the email.
        existing: u64,
    },
    /// A client tried to write a system property.
    #[error("property {0:?} is read-only")]
    ReadOnly(String),
    /// An `after` value this kind of page did not issue.
    #[error("invalid paging cursor {0:?}")]
    InvalidCursor(String),
}

// === impl Props ===

/// A record's properties, sorted by name. Names are shared `Arc<str>`s so
/// 100,000 records do not hold 100,000 copies of `"email"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props(Vec<(Arc<str>, String)>);

impl Props {
    /// From pairs already sorted by name (as the seed generator produces).
    pub fn from_sorted(pairs: Vec<(Arc<str>, String)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Self(pairs)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: String) {
        match self.0.binary_search_by(|(k, _)| (**k).cmp(name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (Arc::from(name), value)),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| (**k).cmp(name)) {
            self.0.remove(i);
        }
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, v.as_str()))
    }
}

/// One CRM record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Numeric id (served as a string, like HubSpot).
    pub id: u64,
    /// User-visible properties (system properties are derived when rendering).
    pub props: Props,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Last modification time, epoch ms (archiving counts as a modification).
    pub updated_ms: i64,
    /// When archived, epoch ms.
    pub archived_ms: Option<i64>,
}

/// System properties a client may not write.
const READ_ONLY: &[&str] = &[
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_createdate",
];

/// A property change from a request: `None` clears the property.
pub type PropChange = (String, Option<String>);

// === impl Partition ===

#[derive(Debug, Default)]
struct Partition {
    by_id: BTreeMap<u64, Record>,
    by_updated: BTreeSet<(i64, u64)>,
}

impl Partition {
    fn insert(&mut self, rec: Record) {
        self.by_updated.insert((rec.updated_ms, rec.id));
        if let Some(old) = self.by_id.insert(rec.id, rec) {
            self.by_updated.remove(&(old.updated_ms, old.id));
        }
    }

    fn remove(&mut self, id: u64) -> Option<Record> {
        let rec = self.by_id.remove(&id)?;
        self.by_updated.remove(&(rec.updated_ms, id));
        Some(rec)
    }

    /// Applies `f` to record `id` and moves it to `updated_ms` in the index.
    fn touch<R>(
        &mut self,
        id: u64,
        updated_ms: i64,
        f: impl FnOnce(&mut Record) -> R,
    ) -> Option<R> {
        let rec = self.by_id.get_mut(&id)?;
        self.by_updated.remove(&(rec.updated_ms, id));
        rec.updated_ms = updated_ms;
        let out = f(rec);
        self.by_updated.insert((updated_ms, id));
        Some(out)
    }
}

// === impl Cursor / Query ===

/// Where the next page starts (exclusive). Rendered into `paging.next.after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// After this id (id-ordered pages; HubSpot-like plain number).
    Id(u64),
    /// After this `(updated_ms, id)` (modification-ordered pages), `t<ms>.<id>`.
    Updated(i64, u64),
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Id(id) => write!(f, "{id}"),
            Cursor::Updated(ms, id) => write!(f, "t{ms}.{id}"),
        }
    }
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::InvalidCursor(s.to_owned());
        if let Some(rest) = s.strip_prefix('t') {
            let (ms, id) = rest.split_once('.').ok_or_else(bad)?;
            Ok(Cursor::Updated(
                ms.parse().map_err(|_| bad())?,
                id.parse().map_err(|_| bad())?,
            ))
        } else {
            s.parse().map(Cursor::Id).map_err(|_| bad())
        }
    }
}

/// Page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By id (creation order), the default.
    Id,
    /// By `(updatedAt, id)`, the modified-since order.
    Updated,
}

/// Inclusive bounds on `updated_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest `updated_ms` included.
    pub lo: i64,
    /// Latest `updated_ms` included.
    pub hi: i64,
}

impl Default for TimeRange {
    fn default() -> Self {
        Self::ALL
    }
}

impl TimeRange {
    /// No bound.
    pub const ALL: TimeRange = TimeRange {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    /// Narrows to the intersection with `other`.
    pub fn intersect(self, other: TimeRange) -> TimeRange {
        TimeRange {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        }
    }

    /// The smallest range covering both.
    pub fn hull(self, other: TimeRange) -> TimeRange {
        TimeRange {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }

    /// Whether `ms` is inside.
    pub fn contains(self, ms: i64) -> bool {
        self.lo <= ms && ms <= self.hi
    }
}

/// A record predicate beyond the time range (search filters on other properties).
pub type Filter<'a> = &'a (dyn Fn(&Record) -> bool + Sync);

/// What page to read.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// Read the archived partition instead of the live one.
    pub archived: bool,
    /// Page order.
    pub sort: SortKey,
    /// Reverse the order.
    pub descending: bool,
    /// Only records whose `updated_ms` is inside.
    pub range: TimeRange,
    /// Extra predicate (applied after the range).
    pub filter: Option<Filter<'a>>,
    /// Exclusive start.
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: usize,
}

impl Default for Query<'_> {
    fn default() -> Self {
        Self {
            archived: false,
            sort: SortKey::Id,
            descending: false,
            range: TimeRange::ALL,
            filter: None,
            after: None,
            limit: 10,
        }
    }
}

/// One page of records and where the next one starts (`None` on the last page).
#[derive(Debug)]
pub struct Page<'a> {
    /// The records, in query order.
    pub records: Vec<&'a Record>,
    /// Cursor for the next page.
    pub next: Option<Cursor>,
}

fn successor((ms, id): (i64, u64)) -> (i64, u64) {
    if id == u64::MAX {
        (ms.saturating_add(1), 0)
    } else {
        (ms, id + 1)
    }
}

fn predecessor((ms, id): (i64, u64)) -> (i64, u64) {
    if id == 0 {
        (ms.saturating_sub(1), u64::MAX)
    } else {
        (ms, id - 1)
    }
}

// === impl Table ===

/// All records of one object kind.
#[derive(Debug)]
pub struct Table {
    kind: ObjectKind,
    live: Partition,
    archived: Partition,
    /// Live ids in arbitrary order plus each id's position, so
    /// `/_sandbox/mutate` can sample K distinct live records in O(K).
    live_ids: Vec<u64>,
    live_pos: HashMap<u64, usize>,
    /// Lower-cased email → contact id (contacts only), for HubSpot's
    /// "contact already exists" conflict.
    emails: HashMap<String, u64>,
    next_id: u64,
    /// Bumped by every mutation; keys the search-total cache.
    version: u64,
    /// `(version, query key, total)` of the last search total computed.
    /// A `Mutex` because totals are computed under the store's *read* lock.
    total_cache: Mutex<Option<(u64, String, usize)>>,
}

impl Table {
    fn new(kind: ObjectKind, records: Vec<Record>) -> Self {
        let mut t = Table {
            kind,
            live: Partition::default(),
            archived: Partition::default(),
            live_ids: Vec::with_capacity(records.len()),
            live_pos: HashMap::with_capacity(records.len()),
            emails: HashMap::new(),
            next_id: 1,
            version: 0,
            total_cache: Mutex::new(None),
        };
        for rec in records {
            t.next_id = t.next_id.max(rec.id + 1);
            t.insert_live(rec);
        }
        t
    }

    /// The object kind.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// Number of live records.
    pub fn live_len(&self) -> usize {
        self.live.by_id.len()
    }

    /// Number of archived records.
    pub fn archived_len(&self) -> usize {
        self.archived.by_id.len()
    }

    /// A record by id from the live (or archived) partition.
    pub fn get(&self, id: u64, archived: bool) -> Option<&Record> {
        self.part(archived).by_id.get(&id)
    }

    /// All records of a partition in id order.
    pub fn all(&self, archived: bool) -> impl Iterator<Item = &Record> {
        self.part(archived).by_id.values()
    }

    fn part(&self, archived: bool) -> &Partition {
        if archived { &self.archived } else { &self.live }
    }

    fn insert_live(&mut self, rec: Record) {
        if self.kind == ObjectKind::Contacts
            && let Some(email) = rec.props.get("email")
        {
            self.emails.insert(email.to_lowercase(), rec.id);
        }
        self.live_pos.insert(rec.id, self.live_ids.len());
        self.live_ids.push(rec.id);
        self.live.insert(rec);
    }

    fn remove_live(&mut self, id: u64) -> Option<Record> {
        let rec = self.live.remove(id)?;
        if let Some(pos) = self.live_pos.remove(&id) {
            self.live_ids.swap_remove(pos);
            if let Some(&moved) = self.live_ids.get(pos) {
                self.live_pos.insert(moved, pos);
            }
        }
        if let Some(email) = rec.props.get("email") {
            let key = email.to_lowercase();
            if self.emails.get(&key) == Some(&id) {
                self.emails.remove(&key);
            }
        }
        Some(rec)
    }

    /// Reads one page. `O(log N + limit)` for range-only queries; a `filter`
    /// scans until it has found `limit + 1` matches.
    ///
    /// # Errors
    /// [`StoreError::InvalidCursor`] when `after` belongs to the other sort order.
    pub fn page<'a>(&'a self, q: &Query<'_>) -> Result<Page<'a>, StoreError> {
        let mut it = self.scan(q)?;
        let records: Vec<&Record> = it.by_ref().take(q.limit).collect();
        let next = match (records.last(), it.next()) {
            (Some(last), Some(_)) => Some(match q.sort {
                SortKey::Id => Cursor::Id(last.id),
                SortKey::Updated => Cursor::Updated(last.updated_ms, last.id),
            }),
            _ => None,
        };
        Ok(Page { records, next })
    }

    /// How many records the query matches, ignoring `after` and `limit`.
    /// Cached under `key` until the next mutation of this table, so paging
    /// through one search pays the count once.
    pub fn total(&self, q: &Query<'_>, key: &str) -> usize {
        let mut cache = self.total_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, k, n)) = cache.as_ref()
            && *v == self.version
            && k == key
        {
            return *n;
        }
        let q = Query { after: None, ..*q };
        let n = self.scan(&q).map(Iterator::count).unwrap_or(0);
        *cache = Some((self.version, key.to_owned(), n));
        n
    }

    fn scan<'a: 'q, 'q>(
        &'a self,
        q: &Query<'q>,
    ) -> Result<Box<dyn Iterator<Item = &'a Record> + 'q>, StoreError> {
        let part = self.part(q.archived);
        let filter = q.filter;
        let range = q.range;
        let keep = move |r: &&Record| filter.is_none_or(|f| f(r));
        match q.sort {
            SortKey::Updated => {
                let mut lo = (range.lo, 0u64);
                let mut hi = (range.hi, u64::MAX);
                match q.after {
                    None => {}
                    Some(Cursor::Updated(ms, id)) if q.descending => {
                        hi = hi.min(predecessor((ms, id)));
                    }
                    Some(Cursor::Updated(ms, id)) => lo = lo.max(successor((ms, id))),
                    Some(c @ Cursor::Id(_)) => {
                        return Err(StoreError::InvalidCursor(c.to_string()));
                    }
                }
                if lo > hi {
                    return Ok(Box::new(std::iter::empty()));
                }
                let keys = part.by_updated.range(lo..=hi);
                let by_id = &part.by_id;
                let lookup = move |&(_, id): &(i64, u64)| by_id.get(&id);
                if q.descending {
                    Ok(Box::new(keys.rev().filter_map(lookup).filter(keep)))
                } else {
                    Ok(Box::new(keys.filter_map(lookup).filter(keep)))
                }
            }
            SortKey::Id => {
                let (lo, hi) = match (q.after, q.descending) {
                    (None, _) => (Bound::Unbounded, Bound::Unbounded),
                    (Some(Cursor::Id(id)), false) => (Bound::Excluded(id), Bound::Unbounded),
                    (Some(Cursor::Id(id)), true) => (Bound::Unbounded, Bound::Excluded(id)),
                    (Some(c @ Cursor::Updated(..)), _) => {
                        return Err(StoreError::InvalidCursor(c.to_string()));
                    }
                };
                let in_range = move |r: &&Record| range.contains(r.updated_ms);
                let recs = part.by_id.range((lo, hi)).map(|(_, r)| r);
                if q.descending {
                    Ok(Box::new(recs.rev().filter(in_range).filter(keep)))
                } else {
                    Ok(Box::new(recs.filter(in_range).filter(keep)))
                }
            }
        }
    }

    fn check_email(&self, props: &[PropChange], own_id: Option<u64>) -> Result<(), StoreError> {
        if self.kind != ObjectKind::Contacts {
            return Ok(());
        }
        for (name, value) in props {
            if name == "email"
                && let Some(email) = value
                && let Some(&existing) = self.emails.get(&email.to_lowercase())
                && Some(existing) != own_id
            {
                return Err(StoreError::Conflict { existing });
            }
        }
        Ok(())
    }

    fn create(&mut self, props: &[PropChange], now: i64) -> Result<u64, StoreError> {
        check_writable(props)?;
        self.check_email(props, None)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Props::default();
        for (name, value) in props {
            if let Some(v) = value {
                p.set(name, v.clone());
            }
        }
        self.insert_live(Record {
            id,
            props: p,
            created_ms: now,
            updated_ms: now,
            archived_ms: None,
        });
        self.version += 1;
        Ok(id)
    }

    fn update(&mut self, id: u64, props: &[PropChange], now: i64) -> Result<(), StoreError> {
        check_writable(props)?;
        if !self.live.by_id.contains_key(&id) {
            return Err(StoreError::NotFound);
        }
        self.check_email(props, Some(id))?;
        let kind = self.kind;
        let mut email_change = None;
        self.live.touch(id, now, |rec| {
            for (name, value) in props {
                if kind == ObjectKind::Contacts && name == "email" {
                    email_change =
                        Some((rec.props.get("email").map(str::to_lowercase), value.clone()));
                }
                match value {
                    Some(v) => rec.props.set(name, v.clone()),
                    None => rec.props.remove(name),
                }
            }
        });
        if let Some((old, new)) = email_change {
            if let Some(old) = old {
                self.emails.remove(&old);
            }
            if let Some(new) = new {
                self.emails.insert(new.to_lowercase(), id);
            }
        }
        self.version += 1;
        Ok(())
    }

    fn archive(&mut self, id: u64, now: i64) -> Result<bool, StoreError> {
        if let Some(mut rec) = self.remove_live(id) {
            rec.updated_ms = now;
            rec.archived_ms = Some(now);
            self.archived.insert(rec);
            self.version += 1;
            Ok(true)
        } else if self.archived.by_id.contains_key(&id) {
            Ok(false)
        } else {
            Err(StoreError::NotFound)
        }
    }
}

fn check_writable(props: &[PropChange]) -> Result<(), StoreError> {
    match props.iter().find(|(n, _)| READ_ONLY.contains(&n.as_str())) {
        Some((n, _)) => Err(StoreError::ReadOnly(n.clone())),
        None => Ok(()),
    }
}

// === impl Store ===

/// What a mutation did, for the webhook emitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A record was created.
    Created,
    /// A record's properties changed.
    Updated,
    /// A record was archived.
    Deleted,
}

/// One applied change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Which table.
    pub kind: ObjectKind,
    /// Which record.
    pub id: u64,
    /// What happened.
    pub change: Change,
    /// The mutation's timestamp (epoch ms).
    pub at_ms: i64,
}

/// The result of a `/_sandbox/mutate` batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MutateOutcome {
    /// Ids whose properties changed.
    pub updated: Vec<String>,
    /// Ids archived.
    pub deleted: Vec<String>,
    /// Ids created.
    pub created: Vec<String>,
    /// The batch's single timestamp (epoch ms).
    #[serde(rename = "updatedAtMs")]
    pub at_ms: i64,
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// Hash of method, path and body of the first request.
    pub fingerprint: u64,
    /// Status of the first response.
    pub status: u16,
    /// Body of the first response.
    pub body: Bytes,
}

/// Remembered idempotency keys, oldest evicted first.
#[derive(Debug, Default)]
struct IdempotencyCache {
    map: HashMap<String, StoredResponse>,
    order: VecDeque<String>,
}

/// How many idempotency keys are remembered.
pub const IDEMPOTENCY_CAPACITY: usize = 100_000;

/// The whole dataset.
#[derive(Debug)]
pub struct Store {
    tables: [Table; 3],
    clock: MutationClock,
    idempotency: IdempotencyCache,
    seed: u64,
    /// Random source for `/_sandbox/mutate` calls without their own seed.
    rng: StdRng,
}

impl Store {
    /// Seeds `records_per_object` records in every table from `seed`.
    pub fn seeded(seed: u64, records_per_object: usize) -> Self {
        let tables = ObjectKind::ALL
            .map(|kind| Table::new(kind, seed::seed_records(kind, seed, records_per_object)));
        let floor = tables
            .iter()
            .filter_map(|t| t.live.by_updated.last().map(|&(ms, _)| ms))
            .max()
            .unwrap_or(seed::SEED_EPOCH_MS);
        Store {
            tables,
            clock: MutationClock::new(floor),
            idempotency: IdempotencyCache::default(),
            seed,
            rng: StdRng::seed_from_u64(seed ^ 0x5EED_0F4D),
        }
    }

    /// One table.
    pub fn table(&self, kind: ObjectKind) -> &Table {
        &self.tables[kind as usize]
    }

    fn table_mut(&mut self, kind: ObjectKind) -> &mut Table {
        &mut self.tables[kind as usize]
    }

    /// The timestamp of the latest mutation (or of the newest seeded record).
    pub fn last_mutation_ms(&self) -> i64 {
        self.clock.last()
    }

    /// Creates a record. (A refused mutation still consumes a clock tick; the
    /// clock only promises order, not density.)
    ///
    /// # Errors
    /// `ReadOnly` for system properties, `Conflict` for a duplicate contact email.
    pub fn create(
        &mut self,
        kind: ObjectKind,
        props: &[PropChange],
    ) -> Result<ChangeEvent, StoreError> {
        let now = self.clock.tick();
        let id = self.table_mut(kind).create(props, now)?;
        Ok(ChangeEvent {
            kind,
            id,
            change: Change::Created,
            at_ms: now,
        })
    }

    /// Sets (or with `None`, clears) properties of a live record and bumps its `updatedAt`.
    ///
    /// # Errors
    /// `NotFound`, `ReadOnly`, `Conflict`.
    pub fn update(
        &mut self,
        kind: ObjectKind,
        id: u64,
        props: &[PropChange],
    ) -> Result<ChangeEvent, StoreError> {
        let now = self.clock.tick();
        self.table_mut(kind).update(id, props, now)?;
        Ok(ChangeEvent {
            kind,
            id,
            change: Change::Updated,
            at_ms: now,
        })
    }

    /// Archives a live record. `Ok(None)` when it was already archived.
    ///
    /// # Errors
    /// `NotFound` when no such id ever existed.
    pub fn archive(
        &mut self,
        kind: ObjectKind,
        id: u64,
    ) -> Result<Option<ChangeEvent>, StoreError> {
        let now = self.clock.tick();
        let archived = self.table_mut(kind).archive(id, now)?;
        Ok(archived.then_some(ChangeEvent {
            kind,
            id,
            change: Change::Deleted,
            at_ms: now,
        }))
    }

    /// Updates `update` random live records (one property each), archives
    /// `delete` other random live records and creates `create` new ones, all
    /// with one timestamp. With `seed`, the choice is reproducible.
    pub fn mutate(
        &mut self,
        kind: ObjectKind,
        update: usize,
        delete: usize,
        create: usize,
        seed: Option<u64>,
        events: &mut Vec<ChangeEvent>,
    ) -> MutateOutcome {
        let mut rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_rng(&mut self.rng),
        };
        let now = self.clock.tick();
        let companies = self.table(ObjectKind::Companies).next_id.saturating_sub(1);
        let base_seed = self.seed;
        let table = self.table_mut(kind);
        let live = table.live_ids.len();
        let update = update.min(live);
        let delete = delete.min(live - update);
        // Sample by position, then resolve to ids before anything moves.
        let picked: Vec<u64> = rand::seq::index::sample(&mut rng, live, update + delete)
            .into_iter()
            .map(|i| table.live_ids[i])
            .collect();
        let (to_update, to_delete) = picked.split_at(update);
        let mut out = MutateOutcome {
            at_ms: now,
            ..MutateOutcome::default()
        };
        let mut push = |id: u64, change: Change, list: &mut Vec<String>| {
            list.push(id.to_string());
            events.push(ChangeEvent {
                kind,
                id,
                change,
                at_ms: now,
            });
        };
        for &id in to_update {
            let (name, value) = seed::changed_prop(kind, &mut rng);
            table.live.touch(id, now, |rec| rec.props.set(name, value));
            push(id, Change::Updated, &mut out.updated);
        }
        for &id in to_delete {
            // Cannot fail: the id was sampled from the live set.
            let _ = table.archive(id, now);
            push(id, Change::Deleted, &mut out.deleted);
        }
        for _ in 0..create {
            let id = table.next_id;
            table.next_id += 1;
            let props = seed::new_props(kind, &mut rng, base_seed, companies.max(1), id);
            table.insert_live(Record {
                id,
                props,
                created_ms: now,
                updated_ms: now,
                archived_ms: None,
            });
            push(id, Change::Created, &mut out.created);
        }
        table.version += 1;
        out
    }

    /// The stored response for `key`, if any.
    pub fn idempotent_response(&self, key: &str) -> Option<&StoredResponse> {
        self.idempotency.map.get(key)
    }

    /// Remembers the response sent for `key` (the first one wins).
    pub fn remember_response(&mut self, key: String, response: StoredResponse) {
        let cache = &mut self.idempotency;
        if let Entry::Vacant(slot) = cache.map.entry(key.clone()) {
            slot.insert(response);
            cache.order.push_back(key);
            if cache.order.len() > IDEMPOTENCY_CAPACITY
                && let Some(old) = cache.order.pop_front()
            {
                cache.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(table: &Table, mut q: Query<'_>) -> Vec<u64> {
        let mut out = Vec::new();
        loop {
            let page = table.page(&q).unwrap();
            out.extend(page.records.iter().map(|r| r.id));
            match page.next {
                Some(c) => q.after = Some(c),
                None => return out,
            }
        }
    }

    /// Keyset walks in both orders and both directions visit every record once, ties included.
    #[test]
    fn keyset_walks_are_complete() {
        let mut store = Store::seeded(1, 97);
        let mut events = Vec::new();
        store.mutate(ObjectKind::Deals, 40, 0, 0, Some(1), &mut events);
        let table = store.table(ObjectKind::Deals);
        for sort in [SortKey::Id, SortKey::Updated] {
            for descending in [false, true] {
                let q = Query {
                    sort,
                    descending,
                    limit: 6,
                    ..Query::default()
                };
                let ids = walk(table, q);
                assert_eq!(ids.len(), 97, "{sort:?} desc={descending}");
                let mut unique = ids.clone();
                unique.sort_unstable();
                unique.dedup();
                assert_eq!(unique.len(), 97);
                let keys: Vec<(i64, u64)> = ids
                    .iter()
                    .map(|id| {
                        let r = table.get(*id, false).unwrap();
                        match sort {
                            SortKey::Id => (0, r.id),
                            SortKey::Updated => (r.updated_ms, r.id),
                        }
                    })
                    .collect();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                if descending {
                    sorted.reverse();
                }
                assert_eq!(keys, sorted);
            }
        }
    }

    /// Cursors round-trip through text, and a cursor of the other order is refused.
    #[test]
    fn cursors() {
        for c in [Cursor::Id(42), Cursor::Updated(1_700_000_000_000, 7)] {
            assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
        assert!("t12".parse::<Cursor>().is_err());
        let store = Store::seeded(1, 5);
        let q = Query {
            sort: SortKey::Updated,
            after: Some(Cursor::Id(2)),
            ..Query::default()
        };
        assert!(matches!(
            store.table(ObjectKind::Contacts).page(&q),
            Err(StoreError::InvalidCursor(_))
        ));
    }

    /// Filters and totals agree with a brute-force count, and the total cache follows mutations.
    #[test]
    fn filtered_pages_and_totals() {
        let mut store = Store::seeded(3, 200);
        let even = |r: &Record| r.id.is_multiple_of(2);
        let q = Query {
            sort: SortKey::Updated,
            filter: Some(&even),
            limit: 7,
            ..Query::default()
        };
        let table = store.table(ObjectKind::Companies);
        assert_eq!(walk(table, q).len(), 100);
        assert_eq!(table.total(&q, "even"), 100);
        let mut events = Vec::new();
        let out = store.mutate(ObjectKind::Companies, 0, 0, 2, None, &mut events);
        assert_eq!(out.created, ["201", "202"]);
        let q = Query {
            filter: Some(&even),
            ..Query::default()
        };
        assert_eq!(store.table(ObjectKind::Companies).total(&q, "even"), 101);
    }

    /// The email index follows updates and archiving, so a freed email can be reused.
    #[test]
    fn email_uniqueness_follows_changes() {
        let mut store = Store::seeded(1, 3);
        let email = store
            .table(ObjectKind::Contacts)
            .get(1, false)
            .unwrap()
            .props
            .get("email")
            .unwrap()
            .to_owned();
        let take = vec![("email".to_owned(), Some(email.clone()))];
        assert_eq!(
            store.update(ObjectKind::Contacts, 2, &take),
            Err(StoreError::Conflict { existing: 1 })
        );
        store
            .update(
                ObjectKind::Contacts,
                1,
                &[("email".to_owned(), Some("x@y.example".to_owned()))],
            )
            .unwrap();
        store.update(ObjectKind::Contacts, 2, &take).unwrap();
        store.archive(ObjectKind::Contacts, 2).unwrap();
        assert!(store.create(ObjectKind::Contacts, &take).is_ok());
        assert_eq!(store.archive(ObjectKind::Contacts, 2), Ok(None));
        assert_eq!(
            store.archive(ObjectKind::Contacts, 99),
            Err(StoreError::NotFound)
        );
    }

    /// Mutate clamps to the live set, and every change in a batch shares one strictly newer timestamp.
    #[test]
    fn mutate_clamps_and_shares_a_timestamp() {
        let mut store = Store::seeded(1, 4);
        let before = store.last_mutation_ms();
        let mut events = Vec::new();
        let out = store.mutate(ObjectKind::Deals, 3, 3, 1, Some(5), &mut events);
        assert_eq!(
            (out.updated.len(), out.deleted.len(), out.created.len()),
            (3, 1, 1)
        );
        assert!(out.at_ms > before);
        assert!(events.iter().all(|e| e.at_ms == out.at_ms));
        assert_eq!(store.table(ObjectKind::Deals).live_len(), 4);
        assert_eq!(store.table(ObjectKind::Deals).archived_len(), 1);
    }
}
