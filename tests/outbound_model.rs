//! Model-based test of bidirectional sync against the real system: the
//! sandbox CRM over loopback, the SQLite store, the durable local queue and
//! the pipeline functions the two workers run.
//!
//! Each case draws a conflict policy and a few epochs. In an epoch the
//! product edits records (local edits), someone edits them in the
//! provider's UI (remote edits), and pulls run, in a random interleaving.
//! Some submits find the queue down (the outbox relay must send those
//! pushes). Then the queue drains as the host would, with random
//! redeliveries and worker crashes after
//! the provider applied a push but before our commit; parked conflicts are
//! resolved by a person; a final pull runs.
//!
//! An independent model (per field: base, ours, theirs; the three-way rule
//! and the policies restated) says what each side must hold afterwards. The
//! test checks that both sides converge to exactly that (no lost update),
//! that nothing is left pending, and that the audit log holds one entry per
//! decision.

#[path = "outbound_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use support::{QueueDown, World, contacts};
use syncbridge_core::merge::{ConnectionPolicies, Policy, Side};
use syncbridge_core::model::PushJob;
use syncbridge_core::pipeline::outbound::{
    ChangeError, ChangeOp, Choice, LocalChange, Target, handle_push_job, requeue_due_pushes,
    resolve_conflict, submit_change,
};
use syncbridge_core::{Clock, ExternalId, QueueName, QueueSender, Store, SystemClock};
use syncbridge_sandbox::ObjectKind;
use syncbridge_tests::pipeline::run_once;

/// Canonical field → sandbox property.
const FIELDS: [(&str, &str); 3] = [
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("phone", "phone"),
];
const RECORDS: u64 = 2;

#[derive(Debug, Clone)]
enum Op {
    /// `queue_down`: the push could not be queued (the relay must send it).
    Local {
        rec: u64,
        field: usize,
        clear: bool,
        queue_down: bool,
    },
    Remote {
        rec: u64,
        field: usize,
        clear: bool,
    },
    Pull,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    Redeliver,
    /// The process dies after this many record writes of the job.
    Crash(i64),
}

#[derive(Debug, Clone)]
struct Epoch {
    ops: Vec<Op>,
    faults: Vec<Fault>,
    resolve_local: Vec<bool>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..=RECORDS, 0..FIELDS.len(), prop::bool::weighted(0.2), prop::bool::weighted(0.15))
            .prop_map(|(rec, field, clear, queue_down)| Op::Local { rec, field, clear, queue_down }),
        4 => (1..=RECORDS, 0..FIELDS.len(), prop::bool::weighted(0.2))
            .prop_map(|(rec, field, clear)| Op::Remote { rec, field, clear }),
        1 => Just(Op::Pull),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        5 => Just(Fault::None),
        1 => Just(Fault::Redeliver),
        2 => (0i64..3).prop_map(Fault::Crash),
    ]
}

fn epoch() -> impl Strategy<Value = Epoch> {
    (
        prop::collection::vec(op(), 1..8),
        prop::collection::vec(fault(), 8),
        prop::collection::vec(any::<bool>(), 8),
    )
        .prop_map(|(ops, faults, resolve_local)| Epoch {
            ops,
            faults,
            resolve_local,
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(Policy::ALL.to_vec())
}

/// The model's view of one record: per field, the agreed value and each side's.
#[derive(Debug, Clone, Default)]
struct ModelRecord {
    base: BTreeMap<usize, Option<String>>,
    ours: BTreeMap<usize, Option<String>>,
    theirs: BTreeMap<usize, Option<String>>,
    /// A local change is pending (the record is held from pulls).
    held: bool,
}

impl ModelRecord {
    fn get(m: &BTreeMap<usize, Option<String>>, f: usize) -> Option<String> {
        m.get(&f).cloned().flatten()
    }
}

async fn world(p: Policy) -> World {
    let mut w = support::world(
        RECORDS as usize,
        ConnectionPolicies {
            policy: Some(p),
            objects: BTreeMap::new(),
        },
    )
    .await;
    w.deps.retry.max_attempts = 2;
    w
}

impl World {
    fn remote_field(&self, rec: u64, f: usize) -> Option<String> {
        self.sandbox
            .sandbox()
            .record_props(ObjectKind::Contacts, rec)
            .unwrap()
            .get(FIELDS[f].1)
            .cloned()
    }

    async fn local_field(&self, rec: u64, f: usize) -> Option<String> {
        let r = self
            .store
            .get_record(
                &self.conn,
                &contacts(),
                &ExternalId::parse(rec.to_string()).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        r.data[FIELDS[f].0].as_str().map(str::to_owned)
    }

    async fn local_time(&self, rec: u64) -> i64 {
        let r = self
            .store
            .get_record(
                &self.conn,
                &contacts(),
                &ExternalId::parse(rec.to_string()).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        r.local.map_or(i64::MIN, |l| l.local_updated_at.as_millis())
    }

    fn remote_time(&self, rec: u64) -> i64 {
        self.sandbox
            .sandbox()
            .record_updated_ms(ObjectKind::Contacts, rec)
            .unwrap()
    }

    /// Delivers everything on the queue, applying `faults` in turn; pushes
    /// the queue refused come through the outbox relay.
    async fn drain(&self, faults: &[Fault]) {
        let mut n = 0;
        for _round in 0..50 {
            while let Some(m) = self
                .queue
                .receive(QueueName::SYNC_OUTBOUND, Duration::from_secs(60))
                .unwrap()
            {
                let job: PushJob = serde_json::from_slice(&m.message.body).unwrap();
                let fault = faults.get(n).copied().unwrap_or(Fault::None);
                n += 1;
                match fault {
                    Fault::Crash(k) => {
                        self.store.crash_after_writes(k);
                        let r = handle_push_job(&self.deps, &*self.queue, &job).await;
                        self.store.recover();
                        if r.is_err() {
                            self.queue.abandon(&m.lock_token).unwrap();
                            continue;
                        }
                    }
                    Fault::Redeliver => {
                        handle_push_job(&self.deps, &*self.queue, &job)
                            .await
                            .unwrap();
                    }
                    Fault::None => {}
                }
                handle_push_job(&self.deps, &*self.queue, &job)
                    .await
                    .unwrap();
                self.queue.complete(&m.lock_token).unwrap();
            }
            let resent = requeue_due_pushes(&*self.store, &*self.queue, SystemClock.now(), 100)
                .await
                .unwrap();
            if resent == 0 {
                return;
            }
        }
        panic!("the queue never drained");
    }
}

#[derive(Debug, Default)]
struct Expect {
    audit: usize,
}

#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
async fn run_case(p: Policy, epochs: Vec<Epoch>) {
    let w = world(p).await;
    let mut model: BTreeMap<u64, ModelRecord> = BTreeMap::new();
    for rec in 1..=RECORDS {
        let mut m = ModelRecord::default();
        for f in 0..FIELDS.len() {
            let v = w.remote_field(rec, f);
            m.base.insert(f, v.clone());
            m.ours.insert(f, v.clone());
            m.theirs.insert(f, v);
        }
        model.insert(rec, m);
    }
    let mut expect = Expect::default();
    let mut serial = 0;
    for (e, epoch) in epochs.iter().enumerate() {
        for op in &epoch.ops {
            serial += 1;
            match *op {
                Op::Local {
                    rec,
                    field,
                    clear,
                    queue_down,
                } => {
                    let v = (!clear).then(|| format!("L{e}.{serial}"));
                    let m = model.get_mut(&rec).unwrap();
                    let mut fields = Map::new();
                    fields.insert(
                        FIELDS[field].0.into(),
                        v.clone().map_or(Value::Null, Value::String),
                    );
                    let change = LocalChange {
                        connection: w.conn.clone(),
                        object: contacts(),
                        op: ChangeOp::Update {
                            id: ExternalId::parse(rec.to_string()).unwrap(),
                            fields,
                        },
                    };
                    let changes = ModelRecord::get(&m.ours, field) != v;
                    let queue: &dyn QueueSender = if queue_down { &QueueDown } else { &*w.queue };
                    match submit_change(&w.deps, queue, &change).await {
                        Ok(done) => assert_eq!(done.queued, changes),
                        Err(ChangeError::Queue(_)) => assert!(queue_down && changes),
                        Err(e) => panic!("{e}"),
                    }
                    if changes {
                        m.held = true;
                    }
                    m.ours.insert(field, v);
                }
                Op::Remote { rec, field, clear } => {
                    let v = (!clear).then(|| format!("R{e}.{serial}"));
                    // The sandbox stores a cleared property as absent.
                    w.sandbox
                        .sandbox()
                        .update_record(
                            ObjectKind::Contacts,
                            rec,
                            &[(FIELDS[field].1.to_string(), v.clone())],
                        )
                        .unwrap();
                    model.get_mut(&rec).unwrap().theirs.insert(field, v);
                }
                Op::Pull => {
                    run_once(&w.deps, &w.task).await;
                    for m in model.values_mut() {
                        if !m.held {
                            m.ours = m.theirs.clone();
                            m.base = m.theirs.clone();
                        }
                    }
                }
            }
        }
        // The merge each held record must see, restated from its definition.
        let mut times = BTreeMap::new();
        for (&rec, m) in &model {
            if m.held {
                times.insert(rec, (w.local_time(rec).await, w.remote_time(rec)));
            }
        }
        let mut parked: Vec<(u64, usize)> = Vec::new();
        for (&rec, m) in model.iter_mut() {
            if !m.held {
                continue;
            }
            let (lt, rt) = times[&rec];
            for f in 0..FIELDS.len() {
                let (b, l, r) = (
                    ModelRecord::get(&m.base, f),
                    ModelRecord::get(&m.ours, f),
                    ModelRecord::get(&m.theirs, f),
                );
                let v = if l == r || l == b {
                    r
                } else if r == b {
                    l
                } else {
                    expect.audit += 1;
                    match p {
                        Policy::SourceWins => r,
                        Policy::TargetWins => l,
                        Policy::Latest if lt > rt => l,
                        Policy::Latest => r,
                        Policy::Manual => {
                            parked.push((rec, f));
                            continue;
                        }
                    }
                };
                m.base.insert(f, v.clone());
                m.ours.insert(f, v.clone());
                m.theirs.insert(f, v);
            }
            m.held = false;
        }
        w.drain(&epoch.faults).await;
        // A person resolves what was parked; each resolution is a decision too.
        for (i, &(rec, f)) in parked.iter().enumerate() {
            let local = epoch.resolve_local.get(i).copied().unwrap_or(true);
            resolve_conflict(
                &w.deps,
                &*w.queue,
                Target {
                    connection: &w.conn,
                    object: &contacts(),
                    id: &ExternalId::parse(rec.to_string()).unwrap(),
                },
                &Choice::one(
                    FIELDS[f].0,
                    Choice::Take(if local { Side::Local } else { Side::Remote }),
                ),
            )
            .await
            .unwrap();
            expect.audit += 1;
            let m = model.get_mut(&rec).unwrap();
            let v = if local {
                ModelRecord::get(&m.ours, f)
            } else {
                ModelRecord::get(&m.theirs, f)
            };
            m.base.insert(f, v.clone());
            m.ours.insert(f, v.clone());
            m.theirs.insert(f, v);
        }
        w.drain(&[]).await;
        run_once(&w.deps, &w.task).await;
        for m in model.values_mut() {
            m.ours = m.theirs.clone();
            m.base = m.theirs.clone();
        }
        // Both sides hold exactly what the model says; nothing is pending.
        for (&rec, m) in &model {
            for (f, (name, _)) in FIELDS.iter().enumerate() {
                let want = ModelRecord::get(&m.theirs, f);
                assert_eq!(
                    w.remote_field(rec, f),
                    want,
                    "epoch {e}: provider record {rec} field {name}"
                );
                assert_eq!(
                    w.local_field(rec, f).await,
                    want,
                    "epoch {e}: our record {rec} field {name}"
                );
            }
        }
        let pending = w.store.list_local_changes(None, 100).await.unwrap();
        assert!(pending.is_empty(), "epoch {e}: left pending: {pending:?}");
        let audit = w.store.list_audit(None, 10_000).await.unwrap();
        assert_eq!(
            audit.len(),
            expect.audit,
            "epoch {e}: one audit entry per decision: {audit:#?}"
        );
    }
}

/// Random interleavings of local edits, remote edits, pulls, pushes,
/// redeliveries, lost messages and worker crashes converge to what the
/// policy dictates, with no lost update and one audit entry per decision.
/// `OUTBOUND_MODEL_CASES` sets the number of cases (default 2000).
#[test]
fn bidirectional_sync_converges_to_the_policy() {
    let cases = syncbridge_env::Env::var(&syncbridge_env::ProcessEnv, "OUTBOUND_MODEL_CASES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (policy(), prop::collection::vec(epoch(), 1..4));
    let result = runner.run(&strategy, |(p, epochs)| {
        rt.block_on(run_case(p, epochs));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
