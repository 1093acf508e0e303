//! Model-based convergence test of the merge core, without any I/O.
//!
//! # What is modelled
//!
//! One record with three fields, held twice: in our store (*local*) and at a
//! provider (*remote*). The provider keeps a version counter and a
//! modification time, applies a push only when `If-Match` equals its current
//! version, remembers idempotency keys (a repeated push returns the first
//! answer without writing again), and may send a webhook snapshot after every
//! write, including our own (the echo). Our side is the sync engine the crate
//! docs describe, built from this crate's functions only: the ordering guard
//! ([`should_apply_remote`]), echo suppression (a merge with nothing to do), the merge
//! ([`three_way_merge`]), a two-phase commit around the push (T1: local apply +
//! interim base + audit + outbox entry; T2 after the provider's answer: base =
//! merged), idempotent audit appends by [`AuditEntry::key`], and inbound
//! deliveries waiting while an outbox entry is pending.
//!
//! A case is a random policy configuration (default, connection, object and
//! per-field levels) and a few *epochs*. An epoch is a random interleaving of
//! local edits, remote edits (with or without a webhook), polls, deliveries
//! (in any order, optionally kept for redelivery), lost deliveries, outbound
//! runs and push retries, each of which may "crash" (stop after T1, or after
//! the provider applied the push but before T2) or send the same push twice.
//! A *concurrent* epoch has only edits, so every field edited on both sides is
//! a true conflict. Each epoch ends with a drain (finish pushes, deliver
//! everything, read fresh until nothing moves), a person resolving any parked
//! field towards one side, and another drain. Then it checks:
//!
//! - both sides and the base are equal (convergence);
//! - a field edited on one side only in the epoch ends with that side's last
//!   value on both sides (no lost update), an unedited field is unchanged, and
//!   a field edited on both sides ends with one of the two last values;
//! - in a concurrent epoch the policy's exact answer (`source_wins` → remote,
//!   `target_wins` → local, `latest` → the later record, `manual` → the
//!   person's choice) and exactly one audit entry per decision (two for a
//!   `manual` field: parked, then resolved);
//! - every audit entry is for a field edited on both sides, agrees with its
//!   policy, and no key repeats; an accepted snapshot is never older than the
//!   last one, and an echo never hides a remote change.
//!
//! # What it does NOT cover
//!
//! No real HTTP, provider, queue or store: "transactions" are blocks of model
//! code, crashes are steps cut short, and the provider is a struct. Only one
//! record, one connection and one worker at a time (per-record serial
//! processing is assumed, not tested); record creation and deletion; providers
//! without versions, `If-Match` or idempotency keys (a blind write has a race
//! window this model would not tolerate); clock skew between the two sides;
//! field mapping, partial payloads and providers that rewrite the values they
//! receive; rate limits, backoff timing and dead-lettering.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use syncbridge_core::merge::{
    AuditEntry, Chosen, FieldValues, Policy, PolicyConfig, RemoteVersion, Side, Version,
    apply_changes, audit_entries, field, normalize, should_apply_remote, three_way_merge,
};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, Timestamp};

const FIELDS: [&str; 3] = ["email", "name", "phone"];

thread_local! {
    /// How often each interesting path ran, to prove the generator reaches them.
    static SEEN: RefCell<BTreeMap<String, u64>> = RefCell::default();
}

fn seen(what: impl Into<String>) {
    SEEN.with(|s| *s.borrow_mut().entry(what.into()).or_default() += 1);
}

/// Where a sync step is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Runs to the end.
    No,
    /// Stops after T1 (outbox written, nothing sent).
    AfterCommit,
    /// Stops after the provider applied the push, before T2 (the ack is lost).
    AfterSend,
}

#[derive(Debug, Clone)]
enum Op {
    /// The product changes (or clears) a field in our store.
    LocalEdit { field: usize, delete: bool },
    /// Someone changes (or clears) a field at the provider.
    RemoteEdit {
        field: usize,
        delete: bool,
        webhook: bool,
    },
    /// A poll reads the provider and queues the snapshot.
    Poll,
    /// One queued snapshot is processed; `redeliver` keeps it queued.
    Deliver { pick: usize, redeliver: bool },
    /// One queued snapshot is lost (a crashed inbound worker, a missed poll).
    Lose { pick: usize },
    /// The outbound worker reads the provider fresh, merges and pushes.
    Outbound { crash: Crash },
    /// The outbound job is (re)delivered: retry a pending push.
    RetryPush { crash: Crash, duplicate: bool },
}

impl Op {
    fn is_edit(&self) -> bool {
        matches!(self, Op::LocalEdit { .. } | Op::RemoteEdit { .. })
    }
}

#[derive(Debug, Clone)]
struct Epoch {
    concurrent: bool,
    resolve_towards: Side,
    ops: Vec<Op>,
}

#[derive(Debug, Clone)]
struct Policies {
    default: Policy,
    connection: Option<Policy>,
    object: Option<Policy>,
    fields: [Option<Policy>; 3],
}

impl Policies {
    fn config(&self) -> PolicyConfig {
        let mut cfg = PolicyConfig::new(self.default);
        if let Some(p) = self.connection {
            cfg = cfg.with_connection(&conn(), p);
        }
        if let Some(p) = self.object {
            cfg = cfg.with_object(&conn(), &obj(), p);
        }
        for (name, p) in FIELDS.iter().zip(self.fields) {
            if let Some(p) = p {
                cfg = cfg.with_field(&conn(), &obj(), name, p);
            }
        }
        cfg
    }

    /// The expected policy of field `i`, computed independently of `PolicyConfig::resolve`.
    fn of(&self, i: usize) -> Policy {
        self.fields[i]
            .or(self.object)
            .or(self.connection)
            .unwrap_or(self.default)
    }
}

fn conn() -> ConnectionId {
    ConnectionId::parse("sandbox-1").unwrap()
}

fn obj() -> ObjectType {
    ObjectType::parse("contacts").unwrap()
}

fn record() -> ExternalId {
    ExternalId::parse("contact-1").unwrap()
}

fn ts(t: i64) -> Timestamp {
    Timestamp::from_millis(t)
}

#[derive(Debug, Clone)]
struct Snapshot {
    fields: FieldValues,
    version: i64,
    updated_at: i64,
}

#[derive(Debug, Default)]
struct Provider {
    fields: FieldValues,
    version: i64,
    updated_at: i64,
    answered: BTreeMap<String, (i64, i64)>,
}

#[derive(Debug, Clone)]
struct Pending {
    key: String,
    if_match: i64,
    push: FieldValues,
    merged: FieldValues,
}

#[derive(Debug, Default)]
struct Engine {
    local: FieldValues,
    local_version: i64,
    local_updated_at: Option<i64>,
    base: FieldValues,
    /// Remote stamps of the last accepted snapshot.
    accepted: Version,
    outbox: Option<Pending>,
    audit: Vec<AuditEntry>,
    pushes: u64,
    parked: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Deferred,
    Stale,
    Echo,
    Merged,
}

#[derive(Debug, Default)]
struct World {
    clock: i64,
    serial: u64,
    provider: Provider,
    engine: Engine,
    inbox: Vec<Snapshot>,
}

impl World {
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn fresh(&mut self, side: &str) -> Value {
        self.serial += 1;
        json!(format!("{side}{}", self.serial))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            fields: self.provider.fields.clone(),
            version: self.provider.version,
            updated_at: self.provider.updated_at,
        }
    }

    fn local_edit(&mut self, f: usize, delete: bool) {
        let t = self.tick();
        let name = FIELDS[f].to_owned();
        if delete {
            self.engine.local.remove(&name);
        } else {
            let v = self.fresh("L");
            self.engine.local.insert(name, v);
        }
        self.engine.local_version += 1;
        self.engine.local_updated_at = Some(t);
    }

    fn remote_edit(&mut self, f: usize, delete: bool, webhook: bool) {
        let t = self.tick();
        // The provider reports a cleared field as an explicit null.
        let v = if delete { Value::Null } else { self.fresh("R") };
        self.provider.fields.insert(FIELDS[f].to_owned(), v);
        self.provider.version += 1;
        self.provider.updated_at = t;
        if webhook {
            self.inbox.push(self.snapshot());
        }
    }

    /// One sync step for a remote snapshot (the crate docs' steps 1–4).
    fn sync_step(&mut self, snap: &Snapshot, cfg: &PolicyConfig, check_echo: bool) -> Step {
        let e = &mut self.engine;
        if e.outbox.is_some() {
            seen("step: deferred behind a pending push");
            return Step::Deferred;
        }
        let incoming = Version {
            remote_version: Some(RemoteVersion::Number(snap.version)),
            remote_updated_at: Some(ts(snap.updated_at)),
            local_version: e.local_version,
            local_updated_at: e.local_updated_at.map(ts),
        };
        if !should_apply_remote(&e.accepted, &incoming) {
            let Some(RemoteVersion::Number(cur)) = e.accepted.remote_version else {
                panic!("refused without a current version")
            };
            assert!(snap.version < cur, "only older snapshots are refused");
            seen("step: stale snapshot dropped");
            return Step::Stale;
        }
        let merge = |e: &Engine| {
            three_way_merge(
                &e.base,
                &e.local,
                &snap.fields,
                &incoming,
                cfg,
                &obj(),
                &conn(),
            )
        };
        let out = merge(e);
        // Echo suppression is the base: our own write coming back equals the
        // base on every field, so the merge has nothing to do. (A hash of the
        // last push was tried first and lost a concurrent remote change.)
        if check_echo && out.is_noop() {
            e.accepted.remote_version = incoming.remote_version;
            e.accepted.remote_updated_at = incoming.remote_updated_at;
            seen("step: echo suppressed");
            return Step::Echo;
        }
        // T1, one transaction.
        if !out.apply_locally.is_empty() {
            e.local = out.local_after_apply(&e.local);
            e.local_version += 1;
        }
        e.base = out.interim_base(&e.base);
        e.accepted.remote_version = incoming.remote_version.clone();
        e.accepted.remote_updated_at = incoming.remote_updated_at;
        for entry in audit_entries(&conn(), &obj(), &record(), &incoming, &out) {
            if e.audit.iter().any(|a| a.key == entry.key) {
                seen("audit: known decision not appended again");
            } else {
                seen(format!(
                    "decision: {:?} -> {:?}",
                    entry.policy, entry.chosen
                ));
                e.audit.push(entry);
            }
        }
        e.parked = out.parked.clone();
        if !out.push_to_remote.is_empty() {
            e.pushes += 1;
            e.outbox = Some(Pending {
                key: format!("{}:push:{}", record(), e.pushes),
                if_match: snap.version,
                push: out.push_to_remote.clone(),
                merged: out.merged.clone(),
            });
        }
        Step::Merged
    }

    /// The provider's push endpoint: idempotency key first, then If-Match.
    fn provider_push(&mut self, p: &Pending) -> Option<(i64, i64)> {
        if let Some(&answer) = self.provider.answered.get(&p.key) {
            seen("push: idempotency key replayed");
            return Some(answer);
        }
        if self.provider.version != p.if_match {
            seen("push: refused, record moved");
            return None;
        }
        let t = self.tick();
        self.provider.fields = apply_changes(&self.provider.fields, &p.push);
        self.provider.version += 1;
        self.provider.updated_at = t;
        let answer = (self.provider.version, t);
        self.provider.answered.insert(p.key.clone(), answer);
        self.inbox.push(self.snapshot());
        Some(answer)
    }

    /// Sends the pending push, if any (the crate docs' step 5).
    fn push(&mut self, crash: Crash, duplicate: bool) {
        let Some(p) = self.engine.outbox.clone() else {
            return;
        };
        if crash == Crash::AfterCommit {
            seen("crash: after T1");
            return;
        }
        let answer = self.provider_push(&p);
        if duplicate {
            assert_eq!(self.provider_push(&p), answer, "idempotent push");
        }
        if crash == Crash::AfterSend {
            seen("crash: after the provider applied the push");
            return;
        }
        let e = &mut self.engine;
        match answer {
            Some((version, at)) => {
                // T2.
                e.base = p.merged;
                e.accepted.remote_version = Some(RemoteVersion::Number(version));
                e.accepted.remote_updated_at = Some(ts(at));
                e.outbox = None;
            }
            None => e.outbox = None,
        }
    }

    /// The outbound worker: a fresh read, then always a merge (echo suppression
    /// is for the inbound path; here it would hide local edits made after the
    /// last push, whose fresh read is exactly the echo).
    fn outbound(&mut self, cfg: &PolicyConfig, crash: Crash) {
        if self.engine.outbox.is_some() {
            return self.push(crash, false);
        }
        let snap = self.snapshot();
        self.sync_step(&snap, cfg, false);
        self.push(crash, false);
    }

    fn apply(&mut self, op: &Op, cfg: &PolicyConfig) {
        match *op {
            Op::LocalEdit { field, delete } => self.local_edit(field, delete),
            Op::RemoteEdit {
                field,
                delete,
                webhook,
            } => self.remote_edit(field, delete, webhook),
            Op::Poll => self.inbox.push(self.snapshot()),
            Op::Deliver { pick, redeliver } => {
                if self.inbox.is_empty() {
                    return;
                }
                let i = pick % self.inbox.len();
                let snap = self.inbox[i].clone();
                let step = self.sync_step(&snap, cfg, true);
                if step != Step::Deferred && !redeliver {
                    self.inbox.remove(i);
                }
            }
            Op::Lose { pick } => {
                if !self.inbox.is_empty() {
                    let i = pick % self.inbox.len();
                    self.inbox.remove(i);
                }
            }
            Op::Outbound { crash } => self.outbound(cfg, crash),
            Op::RetryPush { crash, duplicate } => self.push(crash, duplicate),
        }
    }

    /// Whether a fresh merge would change nothing and nothing is in flight.
    fn settled(&self, cfg: &PolicyConfig) -> bool {
        let e = &self.engine;
        let out = three_way_merge(
            &e.base,
            &e.local,
            &self.provider.fields,
            &Version::default(),
            cfg,
            &obj(),
            &conn(),
        );
        e.outbox.is_none()
            && self.inbox.is_empty()
            && out.push_to_remote.is_empty()
            && out.apply_locally.is_empty()
    }

    /// Finishes pushes, delivers everything queued and reads fresh until nothing moves.
    fn drain(&mut self, cfg: &PolicyConfig) {
        for _ in 0..6 {
            self.push(Crash::No, false);
            self.outbound(cfg, Crash::No);
            while !self.inbox.is_empty() {
                let snap = self.inbox.remove(0);
                self.push(Crash::No, false);
                self.sync_step(&snap, cfg, true);
                self.push(Crash::No, false);
            }
            if self.settled(cfg) {
                return;
            }
        }
        panic!("did not settle: {self:#?}");
    }
}

/// What one side did to one field during an epoch: its last value (`None` = cleared).
type Last = Option<Option<Value>>;

#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
fn check_epoch(w: &mut World, pol: &Policies, epoch: &Epoch) {
    let cfg = pol.config();
    let start = normalize(&w.engine.local);
    assert_eq!(
        start,
        normalize(&w.provider.fields),
        "epoch starts converged"
    );
    assert_eq!(start, w.engine.base, "epoch starts with base = both sides");
    let audit_before = w.engine.audit.len();

    let mut last_local: [Last; 3] = Default::default();
    let mut last_remote: [Last; 3] = Default::default();
    let (mut local_time, mut remote_time) = (0, 0);
    for op in epoch
        .ops
        .iter()
        .filter(|op| !epoch.concurrent || op.is_edit())
    {
        let before = w.engine.accepted.remote_version.clone().map(|v| match v {
            RemoteVersion::Number(n) => n,
            RemoteVersion::Text(_) => unreachable!(),
        });
        w.apply(op, &cfg);
        match *op {
            Op::LocalEdit { field: f, .. } => {
                last_local[f] = Some(field(&w.engine.local, FIELDS[f]).cloned());
                local_time = w.clock;
            }
            Op::RemoteEdit { field: f, .. } => {
                last_remote[f] = Some(field(&w.provider.fields, FIELDS[f]).cloned());
                remote_time = w.clock;
            }
            _ => {}
        }
        if let (Some(b), Some(RemoteVersion::Number(a))) =
            (before, &w.engine.accepted.remote_version)
        {
            assert!(*a >= b, "accepted remote version went back from {b} to {a}");
        }
    }

    w.drain(&cfg);
    let parked = w.engine.parked.clone();
    if !parked.is_empty() {
        let mut resolve = cfg.clone();
        for name in &parked {
            resolve = resolve.with_field(
                &conn(),
                &obj(),
                name,
                Policy::favouring(epoch.resolve_towards),
            );
        }
        // A person's resolution runs like an outbound step with overrides.
        w.outbound(&resolve, Crash::No);
        w.drain(&cfg);
        assert!(
            w.engine.parked.is_empty(),
            "resolved: {:?}",
            w.engine.parked
        );
    }

    // Convergence.
    let local = normalize(&w.engine.local);
    assert_eq!(local, normalize(&w.provider.fields), "converged");
    assert_eq!(local, w.engine.base, "base = both sides");

    // Per field: no lost update, and the policy's answer for concurrent conflicts.
    let mut expected_entries = 0;
    let mut both_edited = BTreeSet::new();
    for (i, name) in FIELDS.iter().enumerate() {
        let fin = field(&local, name).cloned();
        let was = field(&start, name).cloned();
        match (&last_local[i], &last_remote[i]) {
            (None, None) => assert_eq!(fin, was, "{name}: untouched field unchanged"),
            (Some(l), None) => assert_eq!(&fin, l, "{name}: local-only edit survives"),
            (None, Some(r)) => assert_eq!(&fin, r, "{name}: remote-only edit survives"),
            (Some(l), Some(r)) => {
                both_edited.insert(name.to_string());
                assert!(
                    fin == *l || fin == *r,
                    "{name}: {fin:?} is neither {l:?} nor {r:?}"
                );
                if epoch.concurrent {
                    let (cl, cr) = (*l != was, *r != was);
                    let want = if cl && cr && l != r {
                        let policy = pol.of(i);
                        expected_entries += if policy == Policy::Manual { 2 } else { 1 };
                        let local_wins = match policy {
                            Policy::SourceWins => false,
                            Policy::TargetWins => true,
                            Policy::Latest => local_time > remote_time,
                            Policy::Manual => epoch.resolve_towards == Side::Local,
                        };
                        if local_wins { l } else { r }
                    } else if cr {
                        r
                    } else {
                        l
                    };
                    assert_eq!(&fin, want, "{name}: policy {:?}", pol.of(i));
                }
            }
        }
    }

    // Audit: one entry per decision, only for fields edited on both sides, each agreeing with its policy.
    let new = &w.engine.audit[audit_before..];
    if epoch.concurrent {
        assert_eq!(
            new.len(),
            expected_entries,
            "one audit entry per decision: {new:#?}"
        );
    }
    for e in new {
        assert!(
            both_edited.contains(&e.field),
            "decision on a field not edited on both sides: {e:#?}"
        );
        let ok = match e.policy {
            Policy::SourceWins => e.chosen == Chosen::Remote,
            Policy::TargetWins => e.chosen == Chosen::Local,
            Policy::Manual => e.chosen == Chosen::Parked,
            Policy::Latest => {
                let local_later = e.versions.local_updated_at > e.versions.remote_updated_at;
                e.chosen
                    == if local_later {
                        Chosen::Local
                    } else {
                        Chosen::Remote
                    }
            }
        };
        assert!(ok, "decision disagrees with its policy: {e:#?}");
    }
    let keys: BTreeSet<_> = w.engine.audit.iter().map(|e| &e.key).collect();
    assert_eq!(keys.len(), w.engine.audit.len(), "no audit key repeats");
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(Policy::ALL.to_vec())
}

fn policies() -> impl Strategy<Value = Policies> {
    (
        policy(),
        prop::option::weighted(0.3, policy()),
        prop::option::weighted(0.3, policy()),
        prop::array::uniform3(prop::option::weighted(0.4, policy())),
    )
        .prop_map(|(default, connection, object, fields)| Policies {
            default,
            connection,
            object,
            fields,
        })
}

fn crash() -> impl Strategy<Value = Crash> {
    prop_oneof![6 => Just(Crash::No), 1 => Just(Crash::AfterCommit), 1 => Just(Crash::AfterSend)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, prop::bool::weighted(0.2))
            .prop_map(|(field, delete)| Op::LocalEdit { field, delete }),
        4 => (0..3usize, prop::bool::weighted(0.2), prop::bool::weighted(0.8))
            .prop_map(|(field, delete, webhook)| Op::RemoteEdit { field, delete, webhook }),
        1 => Just(Op::Poll),
        3 => (any::<usize>(), prop::bool::weighted(0.3))
            .prop_map(|(pick, redeliver)| Op::Deliver { pick, redeliver }),
        1 => any::<usize>().prop_map(|pick| Op::Lose { pick }),
        3 => crash().prop_map(|crash| Op::Outbound { crash }),
        2 => (crash(), prop::bool::weighted(0.3))
            .prop_map(|(crash, duplicate)| Op::RetryPush { crash, duplicate }),
    ]
}

fn epoch() -> impl Strategy<Value = Epoch> {
    (
        prop::bool::weighted(0.3),
        prop::sample::select(vec![Side::Local, Side::Remote]),
        prop::collection::vec(op(), 0..30),
    )
        .prop_map(|(concurrent, resolve_towards, ops)| Epoch {
            concurrent,
            resolve_towards,
            ops,
        })
}

/// Runs one case: every epoch, then its checks.
fn run_case(pol: &Policies, epochs: &[Epoch]) {
    let mut w = World::default();
    // A shared starting record, agreed on both sides.
    let start: FieldValues = FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), json!(format!("{f}-0"))))
        .collect();
    w.engine.local = start.clone();
    w.engine.base = start.clone();
    w.provider.fields = start;
    w.provider.version = 1;
    w.provider.updated_at = w.tick();
    w.engine.accepted.remote_version = Some(RemoteVersion::Number(1));
    for epoch in epochs {
        check_epoch(&mut w, pol, epoch);
    }
}

/// Random interleavings of edits, pushes, pulls, redeliveries and crashes converge to what the policy dictates, with no lost update and one audit entry per decision.
#[test]
fn sync_converges_without_lost_updates() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4000,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let cases = (policies(), prop::collection::vec(epoch(), 1..5));
    if let Err(e) = runner.run(&cases, |(pol, epochs)| {
        run_case(&pol, &epochs);
        Ok(())
    }) {
        panic!("{e}");
    }
    // The generator must reach every interesting path, many times.
    let seen = SEEN.with(|s| s.borrow().clone());
    eprintln!("paths exercised: {seen:#?}");
    let mut want: Vec<String> = [
        "step: stale snapshot dropped",
        "step: echo suppressed",
        "step: deferred behind a pending push",
        "audit: known decision not appended again",
        "push: idempotency key replayed",
        "push: refused, record moved",
        "crash: after T1",
        "crash: after the provider applied the push",
    ]
    .map(String::from)
    .to_vec();
    for (policy, chosen) in [
        (Policy::SourceWins, Chosen::Remote),
        (Policy::TargetWins, Chosen::Local),
        (Policy::Latest, Chosen::Local),
        (Policy::Latest, Chosen::Remote),
        (Policy::Manual, Chosen::Parked),
    ] {
        want.push(format!("decision: {policy:?} -> {chosen:?}"));
    }
    for w in want {
        let n = seen.get(&w).copied().unwrap_or(0);
        assert!(n >= 100, "path {w:?} ran only {n} times");
    }
}

/// A hand-written run: a conflict under each policy, with a crash after the provider applied the push, resolves once and converges.
#[test]
fn scripted_conflict_with_lost_ack() {
    for policy in Policy::ALL {
        let pol = Policies {
            default: policy,
            connection: None,
            object: None,
            fields: [None; 3],
        };
        let epochs = [
            Epoch {
                concurrent: false,
                resolve_towards: Side::Local,
                ops: vec![
                    Op::LocalEdit {
                        field: 0,
                        delete: false,
                    },
                    Op::RemoteEdit {
                        field: 0,
                        delete: false,
                        webhook: true,
                    },
                    Op::LocalEdit {
                        field: 1,
                        delete: false,
                    },
                    Op::Outbound {
                        crash: Crash::AfterSend,
                    },
                    Op::Deliver {
                        pick: 0,
                        redeliver: true,
                    },
                    Op::RetryPush {
                        crash: Crash::No,
                        duplicate: true,
                    },
                    Op::Deliver {
                        pick: 0,
                        redeliver: false,
                    },
                ],
            },
            Epoch {
                concurrent: true,
                resolve_towards: Side::Remote,
                ops: vec![
                    Op::RemoteEdit {
                        field: 2,
                        delete: true,
                        webhook: true,
                    },
                    Op::LocalEdit {
                        field: 2,
                        delete: false,
                    },
                ],
            },
        ];
        run_case(&pol, &epochs);
    }
}

/// The echo of our own push, delivered late and twice, writes nothing locally.
#[test]
fn echo_creates_no_local_change() {
    let cfg = PolicyConfig::new(Policy::Manual);
    let mut w = World::default();
    w.provider.version = 1;
    w.engine.accepted.remote_version = Some(RemoteVersion::Number(1));
    w.local_edit(0, false);
    w.outbound(&cfg, Crash::No);
    assert_eq!(w.inbox.len(), 1, "the provider sent the echo");
    let echo = w.inbox[0].clone();
    let (local, version) = (w.engine.local.clone(), w.engine.local_version);
    assert_eq!(w.sync_step(&echo, &cfg, true), Step::Echo);
    assert_eq!(w.sync_step(&echo, &cfg, true), Step::Echo);
    assert_eq!(
        (w.engine.local.clone(), w.engine.local_version),
        (local, version)
    );
    assert!(w.engine.audit.is_empty());
}

/// A snapshot older than the accepted one is refused and leaves our record alone.
#[test]
fn older_remote_never_overwrites_newer() {
    let cfg = PolicyConfig::new(Policy::SourceWins);
    let mut w = World::default();
    w.provider.version = 1;
    w.engine.accepted.remote_version = Some(RemoteVersion::Number(1));
    w.remote_edit(0, false, true);
    let old = w.inbox[0].clone();
    w.remote_edit(0, false, true);
    let new = w.inbox[1].clone();
    assert_eq!(w.sync_step(&new, &cfg, true), Step::Merged);
    let after_new = w.engine.local.clone();
    assert_eq!(w.sync_step(&old, &cfg, true), Step::Stale);
    assert_eq!(w.engine.local, after_new);
    assert_eq!(field(&after_new, FIELDS[0]), field(&new.fields, FIELDS[0]));
}
