//! Outbound sync end to end, in process: the real SQLite store, the real
//! durable local queue, the real sandbox CRM over loopback, and the pipeline
//! functions the SyncOutboundWorker and SyncInboundWorker run.

#[path = "outbound_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use support::{QueueDown, World, contacts, world, world_on};
use syncbridge_core::merge::{ConnectionPolicies, ObjectPolicies, Policy, Side};
use syncbridge_core::model::PushJob;
use syncbridge_core::pipeline::outbound::{
    ChangeError, ChangeOp, Choice, LocalChange, PushOutcome, Target, handle_push_job,
    requeue_due_pushes, resolve_conflict, submit_change,
};
use syncbridge_core::{
    Clock, ConnectionId, ExternalId, ManualClock, QueueName, Store, SystemClock,
};
use syncbridge_sandbox::ObjectKind;
use syncbridge_tests::pipeline::run_once;

fn policy(object: Option<Policy>, fields: &[(&str, Policy)]) -> ConnectionPolicies {
    ConnectionPolicies {
        policy: None,
        objects: [(
            contacts(),
            ObjectPolicies {
                policy: object,
                fields: fields.iter().map(|(f, p)| (f.to_string(), *p)).collect(),
            },
        )]
        .into(),
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

impl World {
    async fn submit(&self, op: ChangeOp) -> Result<ExternalId, ChangeError> {
        let change = LocalChange {
            connection: self.conn.clone(),
            object: contacts(),
            op,
        };
        submit_change(&self.deps, &*self.queue, &change)
            .await
            .map(|s| s.external_id)
    }

    async fn update(&self, id: u64, v: Value) {
        self.submit(ChangeOp::Update {
            id: ExternalId::parse(id.to_string()).unwrap(),
            fields: fields(v),
        })
        .await
        .unwrap();
    }

    /// Someone edits the record in the provider's own UI.
    fn remote_edit(&self, id: u64, props: &[(&str, Option<&str>)]) {
        let props: Vec<(String, Option<String>)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        self.sandbox
            .sandbox()
            .update_record(ObjectKind::Contacts, id, &props)
            .unwrap();
    }

    fn remote(&self, id: u64) -> BTreeMap<String, String> {
        self.sandbox
            .sandbox()
            .record_props(ObjectKind::Contacts, id)
            .unwrap_or_default()
    }

    async fn local(&self, id: &str) -> Option<syncbridge_core::model::Record> {
        self.store
            .get_record(&self.conn, &contacts(), &ExternalId::parse(id).unwrap())
            .await
            .unwrap()
    }

    /// Runs the next `sync-outbound` message in a worker that dies after
    /// `writes` record writes (the provider may already have applied the
    /// push), then hands the message back for redelivery.
    async fn crash_next_push(&self, writes: i64) {
        let m = self
            .queue
            .receive(QueueName::SYNC_OUTBOUND, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let job: PushJob = serde_json::from_slice(&m.message.body).unwrap();
        self.store.crash_after_writes(writes);
        let first = handle_push_job(&self.deps, &*self.queue, &job).await;
        self.store.recover();
        assert!(first.is_err(), "the worker crashed: {first:?}");
        self.queue.abandon(&m.lock_token).unwrap();
    }

    /// Creates a contact with `email` under `reference`; the worker stores
    /// the create request (first write), the provider creates the record,
    /// and the worker dies before its commit. Returns the provisional id.
    async fn create_then_crash(&self, reference: &str, email: &str) -> ExternalId {
        let id = self
            .submit(ChangeOp::Create {
                reference: reference.into(),
                fields: fields(json!({ "email": email })),
            })
            .await
            .unwrap();
        self.crash_next_push(1).await;
        id
    }

    /// Delivers every ready message on `sync-outbound` once, as the host would.
    async fn deliver_all(&self) -> Vec<PushOutcome> {
        let mut out = Vec::new();
        while let Some(m) = self
            .queue
            .receive(QueueName::SYNC_OUTBOUND, Duration::from_secs(60))
            .unwrap()
        {
            let job: PushJob = serde_json::from_slice(&m.message.body).unwrap();
            match handle_push_job(&self.deps, &*self.queue, &job).await {
                Ok(r) => {
                    self.queue.complete(&m.lock_token).unwrap();
                    out.push(r.outcome);
                }
                Err(_) => {
                    self.queue.abandon(&m.lock_token).unwrap();
                }
            }
        }
        out
    }

    async fn audit(&self) -> Vec<Value> {
        self.store
            .list_audit(Some(&self.conn), 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.entry)
            .collect()
    }
}

fn prop<'a>(m: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    m.get(k).map(String::as_str)
}

/// A local update is pushed to the provider; the echo that comes back by
/// the next pull changes nothing (no update, no new push).
#[tokio::test]
async fn local_update_is_pushed_and_its_echo_changes_nothing() {
    let w = world(5, ConnectionPolicies::default()).await;
    w.update(1, json!({"phone": "+1 555 0100", "last_name": null}))
        .await;
    let before = w.local("1").await.unwrap();
    assert!(before.local.is_some(), "pending until pushed");
    let out = w.deliver_all().await;
    assert!(
        matches!(out[..], [PushOutcome::Pushed { fields: 2, .. }]),
        "{out:?}"
    );
    let remote = w.remote(1);
    assert_eq!(prop(&remote, "phone"), Some("+1 555 0100"));
    assert_eq!(prop(&remote, "lastname"), None, "cleared at the provider");
    let after = w.local("1").await.unwrap();
    assert!(after.local.is_none(), "in sync after the push: {after:?}");
    // The echo: a pull sees our own write and writes nothing.
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!((run.counts.updated, run.counts.created), (0, 0), "{run:?}");
    assert_eq!(w.local("1").await.unwrap().hash, after.hash);
    assert!(
        w.store
            .list_local_changes(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.audit().await.is_empty(), "no conflict, no decision");
}

/// A local create gets the provider's id; the provisional record is gone and
/// the next pull finds the created record unchanged.
#[tokio::test]
async fn local_create_moves_to_the_provider_id() {
    let w = world(2, ConnectionPolicies::default()).await;
    let id = w
        .submit(ChangeOp::Create {
            reference: "signup-77".into(),
            fields: fields(json!({"email": "new@example.com", "first_name": "Nova"})),
        })
        .await
        .unwrap();
    assert_eq!(id.as_str(), "local:signup-77");
    let out = w.deliver_all().await;
    let PushOutcome::Pushed {
        created: Some(new_id),
        ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert!(w.local("local:signup-77").await.is_none());
    let rec = w.local(new_id.as_str()).await.unwrap();
    assert!(rec.local.is_none());
    assert_eq!(rec.data["email"], "new@example.com");
    let remote = w.remote(new_id.as_str().parse().unwrap());
    assert_eq!(prop(&remote, "firstname"), Some("Nova"));
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!((run.counts.created, run.counts.updated), (0, 0), "{run:?}");
}

/// A local delete is pushed; the record is archived at the provider and gone locally.
#[tokio::test]
async fn local_delete_is_pushed() {
    let w = world(3, ConnectionPolicies::default()).await;
    w.submit(ChangeOp::Delete {
        id: ExternalId::parse("2").unwrap(),
    })
    .await
    .unwrap();
    let out = w.deliver_all().await;
    assert_eq!(out, [PushOutcome::Deleted]);
    assert!(w.remote(2).is_empty(), "archived at the provider");
    assert!(w.local("2").await.is_none());
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.created, 0, "not resurrected by the pull");
}

/// While a local change waits, a pull holds the record (a remote edit is
/// not written over it); the push then merges both: fields changed on one
/// side merge cleanly, each policy decides its conflicting field, and every
/// decision is audited once.
#[tokio::test]
async fn conflicts_resolve_by_policy_field_by_field() {
    let w = world(
        3,
        policy(
            Some(Policy::Manual),
            &[
                ("first_name", Policy::SourceWins),
                ("last_name", Policy::TargetWins),
                ("company", Policy::Latest),
            ],
        ),
    )
    .await;
    w.remote_edit(
        1,
        &[
            ("firstname", Some("R-first")),
            ("lastname", Some("R-last")),
            ("phone", Some("R-phone")),
            ("email", Some("r@example.com")),
        ],
    );
    w.update(
        1,
        json!({"first_name": "L-first", "last_name": "L-last", "phone": "L-phone", "company": "L-co"}),
    )
    .await;
    // The pull leaves the held record alone.
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.updated, 0, "{run:?}");
    assert_eq!(w.local("1").await.unwrap().data["first_name"], "L-first");
    let out = w.deliver_all().await;
    assert!(matches!(out[..], [PushOutcome::Pushed { .. }]), "{out:?}");
    let local = w.local("1").await.unwrap();
    let remote = w.remote(1);
    // source_wins: the provider's value, applied locally.
    assert_eq!(local.data["first_name"], "R-first");
    assert_eq!(prop(&remote, "firstname"), Some("R-first"));
    // target_wins: ours, pushed.
    assert_eq!(local.data["last_name"], "L-last");
    assert_eq!(prop(&remote, "lastname"), Some("L-last"));
    // latest: only we changed company: a clean merge, pushed.
    assert_eq!(prop(&remote, "company"), Some("L-co"));
    // one side only (email, remote): applied locally.
    assert_eq!(local.data["email"], "r@example.com");
    // manual (phone): parked, both sides keep their values.
    assert_eq!(local.data["phone"], "L-phone");
    assert_eq!(prop(&remote, "phone"), Some("R-phone"));
    let parked = &local.local.as_ref().unwrap().conflicts;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (
            parked[0].field.as_str(),
            &parked[0].local,
            &parked[0].remote
        ),
        ("phone", &json!("L-phone"), &json!("R-phone"))
    );
    let audit = w.audit().await;
    let decided: Vec<(String, String)> = audit
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["chosen"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("first_name".to_owned(), "remote".to_owned()),
            ("last_name".to_owned(), "local".to_owned()),
            ("phone".to_owned(), "parked".to_owned()),
        ]
    );
    // A redelivered job decides nothing new and changes nothing.
    let job = PushJob {
        connection: w.conn.clone(),
        object: contacts(),
        external_id: ExternalId::parse("1").unwrap(),
        version: local.version,
        attempt: 0,
    };
    let again = handle_push_job(&w.deps, &*w.queue, &job).await.unwrap();
    assert!(
        matches!(again.outcome, PushOutcome::Skipped(_)),
        "{again:?}"
    );
    assert_eq!(w.audit().await.len(), 3);
    // A person resolves the parked field for the local side: pushed, audited.
    resolve_conflict(
        &w.deps,
        &*w.queue,
        Target {
            connection: &w.conn,
            object: &contacts(),
            id: &ExternalId::parse("1").unwrap(),
        },
        &Choice::one("phone", Choice::Take(Side::Local)),
    )
    .await
    .unwrap();
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("L-phone"));
    let local = w.local("1").await.unwrap();
    assert!(local.local.is_none(), "{local:?}");
    let audit = w.audit().await;
    assert_eq!(audit.len(), 4);
    assert_eq!(audit[3]["policy"], "target_wins");
    assert_eq!(audit[3]["policy_source"], "field");
}

/// `latest`: the side whose record changed last wins its conflicting field.
#[tokio::test]
async fn latest_picks_the_later_side() {
    let w = world(3, policy(Some(Policy::Latest), &[])).await;
    // Remote first, then us: ours is later.
    w.remote_edit(1, &[("phone", Some("R1"))]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    w.update(1, json!({"phone": "L1"})).await;
    // Us first, then remote: theirs is later.
    w.update(2, json!({"phone": "L2"})).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    w.remote_edit(2, &[("phone", Some("R2"))]);
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("L1"));
    assert_eq!(w.local("1").await.unwrap().data["phone"], "L1");
    assert_eq!(prop(&w.remote(2), "phone"), Some("R2"));
    assert_eq!(w.local("2").await.unwrap().data["phone"], "R2");
    let chosen: Vec<String> = w
        .audit()
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(chosen, ["local_is_later", "remote_is_later"]);
}

/// Bad changes are refused with a clear error and write nothing: an unmapped
/// field, an unknown record, a read-only object, an unknown connection.
#[tokio::test]
async fn bad_changes_are_refused_and_write_nothing() {
    let w = world(2, ConnectionPolicies::default()).await;
    let e = w
        .submit(ChangeOp::Update {
            id: ExternalId::parse("1").unwrap(),
            fields: fields(json!({"shoe_size": "44"})),
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`shoe_size` is not mapped"), "{e}");
    let e = w
        .submit(ChangeOp::Update {
            id: ExternalId::parse("999").unwrap(),
            fields: fields(json!({"phone": "1"})),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ChangeError::NotFound(_)), "{e}");
    let e = submit_change(
        &w.deps,
        &*w.queue,
        &LocalChange {
            connection: ConnectionId::parse("nope").unwrap(),
            object: contacts(),
            op: ChangeOp::Delete {
                id: ExternalId::parse("1").unwrap(),
            },
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ChangeError::UnknownConnection(_)), "{e}");
    assert!(
        w.store
            .list_local_changes(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.queue.counts(QueueName::SYNC_OUTBOUND).unwrap().active,
        0,
        "nothing queued"
    );
}

/// A crash after the provider applied the push and before our commit: the
/// redelivered job finds the provider already holding our change, pushes
/// nothing twice, and ends in sync with the decision audited once.
#[tokio::test]
async fn crash_after_the_push_reached_the_provider_loses_nothing() {
    let w = world(3, policy(Some(Policy::TargetWins), &[])).await;
    w.remote_edit(1, &[("phone", Some("R"))]);
    w.update(1, json!({"phone": "L", "company": "L-co"})).await;
    // The decision is stored (first write), the provider gets the push, then
    // the process dies before the final commit.
    w.crash_next_push(1).await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("L"), "the push landed");
    let out = w.deliver_all().await;
    assert_eq!(out, [PushOutcome::UpToDate], "nothing pushed twice");
    let rec = w.local("1").await.unwrap();
    assert!(rec.local.is_none(), "{rec:?}");
    assert_eq!(rec.data["company"], "L-co");
    assert_eq!(w.audit().await.len(), 1, "one decision, audited once");
}

/// What was tried: a local delete conflicts with a remote update, the
/// policy lets the delete win, and the worker dies after the provider
/// applied the DELETE and before its commit. What must hold: the redelivered
/// job (the provider now answers 404) removes the record, and the decision
/// is audited exactly once: it was appended before the DELETE was sent.
#[tokio::test]
async fn crash_after_a_conflicting_delete_reached_the_provider_keeps_its_audit() {
    let w = world(3, policy(Some(Policy::TargetWins), &[])).await;
    w.remote_edit(2, &[("phone", Some("R"))]);
    w.submit(ChangeOp::Delete {
        id: ExternalId::parse("2").unwrap(),
    })
    .await
    .unwrap();
    w.crash_next_push(1).await;
    assert!(w.remote(2).is_empty(), "the DELETE landed");
    let out = w.deliver_all().await;
    assert_eq!(out, [PushOutcome::Deleted]);
    assert!(w.local("2").await.is_none());
    let audit = w.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["decision"], "delete_vs_update");
}

/// The queue is down when the product submits a change: the change is kept
/// (the caller hears that queueing failed) and the outbox relay the
/// scheduler runs sends the push once the queue is back.
#[tokio::test]
async fn the_outbox_relay_sends_a_push_the_queue_refused() {
    let w = world(2, ConnectionPolicies::default()).await;
    let change = LocalChange {
        connection: w.conn.clone(),
        object: contacts(),
        op: ChangeOp::Update {
            id: ExternalId::parse("1").unwrap(),
            fields: fields(json!({"phone": "X"})),
        },
    };
    let e = submit_change(&w.deps, &QueueDown, &change)
        .await
        .unwrap_err();
    assert!(matches!(e, ChangeError::Queue(_)), "{e}");
    assert_eq!(
        w.store.list_local_changes(None, 10).await.unwrap().len(),
        1,
        "kept"
    );
    let n = requeue_due_pushes(&*w.store, &*w.queue, SystemClock.now(), 100)
        .await
        .unwrap();
    assert_eq!(n, 1);
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("X"));
    assert_eq!(
        requeue_due_pushes(&*w.store, &*w.queue, SystemClock.now(), 100)
            .await
            .unwrap(),
        0,
        "nothing left to relay"
    );
}

/// A provider outage: the push is retried by a scheduled message with
/// backoff (not redelivered hot), and lands once the provider is back.
#[tokio::test]
async fn provider_outage_retries_with_a_scheduled_message() {
    let w = world(2, ConnectionPolicies::default()).await;
    let fail_all = json!({"faults": {"error_rate": 1.0}});
    syncbridge_tests::pipeline::admin(&w.sandbox.base_url(), "config", fail_all).await;
    w.update(1, json!({"phone": "Y"})).await;
    let out = w.deliver_all().await;
    let [PushOutcome::Retry { at, error }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(*at > SystemClock.now(), "scheduled for later");
    assert!(error.contains("unavailable"), "{error}");
    let rec = w.local("1").await.unwrap();
    let l = rec.local.as_ref().unwrap();
    assert_eq!((l.attempts, l.push_due_at), (1, Some(*at)));
    assert!(
        w.queue
            .receive(QueueName::SYNC_OUTBOUND, Duration::from_secs(60))
            .unwrap()
            .is_none(),
        "the retry is not deliverable before its time"
    );
    syncbridge_tests::pipeline::admin(
        &w.sandbox.base_url(),
        "config",
        json!({"faults": {"error_rate": 0.0}}),
    )
    .await;
    // Time passes: the relay sends the due push (same id as the scheduled one).
    tokio::time::sleep(Duration::from_millis(
        (at.as_millis() - SystemClock.now().as_millis()).max(0) as u64 + 50,
    ))
    .await;
    requeue_due_pushes(&*w.store, &*w.queue, SystemClock.now(), 10)
        .await
        .unwrap();
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("Y"));
    assert!(w.local("1").await.unwrap().local.is_none());
}

/// A push the provider refuses (400: a property value it cannot store) is
/// parked with the provider's answer — not retried, not lost — and a later
/// change of the record tries again.
#[tokio::test]
async fn a_refused_push_is_parked_with_the_providers_answer() {
    let w = world(2, ConnectionPolicies::default()).await;
    w.update(1, json!({"phone": {"not": "a string"}})).await;
    let out = w.deliver_all().await;
    let [PushOutcome::Parked { error }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(error.contains("400"), "{error}");
    let rec = w.local("1").await.unwrap();
    let l = rec.local.as_ref().expect("the change is kept");
    assert_eq!(l.push_due_at, None, "parked: no retry");
    assert_eq!(l.last_error.as_deref(), Some(error.as_str()));
    assert!(
        requeue_due_pushes(&*w.store, &*w.queue, SystemClock.now(), 10)
            .await
            .unwrap()
            == 0,
        "the relay leaves a parked push alone"
    );
    // The product fixes the value: pushed.
    w.update(1, json!({"phone": "+1 555 0111"})).await;
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("+1 555 0111"));
    assert!(w.local("1").await.unwrap().local.is_none());
}

/// The worker dies right after the provider created our record; a pull then
/// stores the created record under the provider's id. The redelivered create
/// is answered from the idempotency key (no duplicate at the provider), and
/// the pulled record is kept while the provisional one goes.
#[tokio::test]
async fn a_create_pulled_before_its_commit_is_adopted_not_duplicated() {
    let w = world(2, ConnectionPolicies::default()).await;
    w.create_then_crash("r1", "once@example.com").await;
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.created, 1, "the pull found the created record");
    w.deliver_all().await;
    assert!(
        w.local("local:r1").await.is_none(),
        "provisional record gone"
    );
    let all = w
        .store
        .list_records(&w.conn, &contacts(), None, 100)
        .await
        .unwrap();
    let mine: Vec<_> = all
        .iter()
        .filter(|r| r.data["email"] == "once@example.com")
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(mine[0].local.is_none());
    assert_eq!(
        w.sandbox
            .sandbox()
            .read_store()
            .table(ObjectKind::Contacts)
            .live_len(),
        3,
        "one record created at the provider, not two"
    );
}

/// What was tried: the worker dies right after the provider created our
/// record, a pull stores it under the provider's id, and the product then
/// edits both the provisional record and the pulled one (different fields).
/// What must hold: the redelivered create adopts the pulled record and
/// carries the provisional edit over, so the provider ends with both edits,
/// one record, and nothing left to push.
#[tokio::test]
async fn an_adopted_create_keeps_edits_made_under_both_ids() {
    let w = world(2, ConnectionPolicies::default()).await;
    let provisional = w.create_then_crash("r2", "both@example.com").await;
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.created, 1, "the pull found the created record");
    let pulled = w
        .store
        .list_records(&w.conn, &contacts(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.data["email"] == "both@example.com" && !r.is_provisional())
        .expect("pulled under the provider's id");
    w.submit(ChangeOp::Update {
        id: provisional.clone(),
        fields: fields(json!({"company": "From-provisional"})),
    })
    .await
    .unwrap();
    w.submit(ChangeOp::Update {
        id: pulled.external_id.clone(),
        fields: fields(json!({"phone": "+1 555 0142"})),
    })
    .await
    .unwrap();
    w.deliver_all().await;
    assert!(
        w.local(provisional.as_str()).await.is_none(),
        "provisional gone"
    );
    let id: u64 = pulled.external_id.as_str().parse().unwrap();
    let remote = w.remote(id);
    assert_eq!(
        prop(&remote, "company"),
        Some("From-provisional"),
        "{remote:?}"
    );
    assert_eq!(prop(&remote, "phone"), Some("+1 555 0142"), "{remote:?}");
    let rec = w.local(pulled.external_id.as_str()).await.unwrap();
    assert!(rec.local.is_none(), "nothing left to push: {rec:?}");
    assert_eq!(
        w.sandbox
            .sandbox()
            .read_store()
            .table(ObjectKind::Contacts)
            .live_len(),
        3,
        "one record created at the provider"
    );
}

/// What was tried: the worker dies on its first create attempt, after the
/// provider created the record (no failure was recorded), and the product
/// then deletes the record it created. What must hold: the delete is not
/// taken as "never sent": the same create is sent again (the idempotency
/// key answers it with the record that landed), then deleted, so the
/// provider keeps no orphan and no record is left locally.
#[tokio::test]
async fn a_create_that_landed_before_a_crash_then_a_delete_leaves_no_orphan() {
    let w = world(2, ConnectionPolicies::default()).await;
    let provisional = w.create_then_crash("r3", "gone@example.com").await;
    let live = |w: &World| {
        w.sandbox
            .sandbox()
            .read_store()
            .table(ObjectKind::Contacts)
            .live_len()
    };
    assert_eq!(live(&w), 3, "the create landed");
    w.submit(ChangeOp::Delete {
        id: provisional.clone(),
    })
    .await
    .unwrap();
    w.deliver_all().await;
    assert_eq!(live(&w), 2, "created, then deleted: no orphan");
    let left = w
        .store
        .list_records(&w.conn, &contacts(), None, 100)
        .await
        .unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|r| r.local.is_none()), "{left:?}");
}

/// What was tried: the worker dies after the provider created our record,
/// a pull stores it under the provider's id, and the product deletes the
/// provisional record. What must hold: the adopted record carries the
/// delete, which is pushed: nothing is left at the provider or locally.
#[tokio::test]
async fn an_adopted_create_keeps_a_delete_of_the_provisional_record() {
    let w = world(2, ConnectionPolicies::default()).await;
    let provisional = w.create_then_crash("r4", "del@example.com").await;
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.created, 1, "the pull found the created record");
    w.submit(ChangeOp::Delete { id: provisional })
        .await
        .unwrap();
    w.deliver_all().await;
    let live = w
        .sandbox
        .sandbox()
        .read_store()
        .table(ObjectKind::Contacts)
        .live_len();
    assert_eq!(live, 2, "created, then deleted");
    let left = w
        .store
        .list_records(&w.conn, &contacts(), None, 100)
        .await
        .unwrap();
    assert!(
        left.iter().all(|r| r.data["email"] != "del@example.com"),
        "{left:?}"
    );
}

/// What was tried: the provider refuses a create (400: a value it cannot
/// store); the product then fixes the value. What must hold: the refused
/// request is not repeated: the fix is sent as a new create, which lands,
/// and nothing is left to push. A refused create deleted afterwards goes
/// locally without a provider call.
#[tokio::test]
async fn a_refused_create_is_sent_fresh_after_the_fix() {
    let w = world(2, ConnectionPolicies::default()).await;
    let id = w
        .submit(ChangeOp::Create {
            reference: "bad".into(),
            fields: fields(json!({"email": "fix@example.com", "phone": {"not": "a string"}})),
        })
        .await
        .unwrap();
    let out = w.deliver_all().await;
    assert!(matches!(&out[..], [PushOutcome::Parked { .. }]), "{out:?}");
    w.submit(ChangeOp::Update {
        id: id.clone(),
        fields: fields(json!({"phone": "+1 555 0111"})),
    })
    .await
    .unwrap();
    let out = w.deliver_all().await;
    assert!(
        matches!(
            &out[..],
            [PushOutcome::Pushed {
                created: Some(_),
                ..
            }]
        ),
        "{out:?}"
    );
    assert!(w.local(id.as_str()).await.is_none());
    let changes = w.store.list_local_changes(Some(&w.conn), 10).await.unwrap();
    assert!(changes.is_empty(), "{changes:?}");

    let id = w
        .submit(ChangeOp::Create {
            reference: "bad2".into(),
            fields: fields(json!({"phone": {"not": "a string"}})),
        })
        .await
        .unwrap();
    w.deliver_all().await;
    w.submit(ChangeOp::Delete { id: id.clone() }).await.unwrap();
    w.deliver_all().await;
    assert!(
        w.local(id.as_str()).await.is_none(),
        "the refused record is gone"
    );
}

/// What was tried: the product creates a record, deletes it, then creates
/// one with the same reference and the same fields. What must hold: the
/// second create is a new request (its own idempotency key), so the
/// provider creates a second record instead of answering the first.
#[tokio::test]
async fn a_reused_create_reference_is_a_new_create() {
    let w = world(2, ConnectionPolicies::default()).await;
    let create = || ChangeOp::Create {
        reference: "again".into(),
        fields: fields(json!({"email": "again@example.com"})),
    };
    w.submit(create()).await.unwrap();
    let out = w.deliver_all().await;
    let [
        PushOutcome::Pushed {
            created: Some(first),
            ..
        },
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    w.submit(ChangeOp::Delete { id: first.clone() })
        .await
        .unwrap();
    w.deliver_all().await;
    w.submit(create()).await.unwrap();
    let out = w.deliver_all().await;
    let [
        PushOutcome::Pushed {
            created: Some(second),
            ..
        },
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_ne!(first, second, "a new record at the provider");
    assert_eq!(
        prop(&w.remote(second.as_str().parse().unwrap()), "email"),
        Some("again@example.com")
    );
}

/// What was tried: a person resolves a parked conflict while a push of the
/// record holds its lock. What must hold: the resolution is refused as
/// busy and changes nothing (the push's commit would otherwise undo it);
/// once the lock is free it goes through.
#[tokio::test]
async fn a_resolution_waits_for_a_running_push() {
    let w = world(3, policy(Some(Policy::Manual), &[])).await;
    w.remote_edit(1, &[("phone", Some("R"))]);
    w.update(1, json!({"phone": "L"})).await;
    w.deliver_all().await;
    let before = w.local("1").await.unwrap();
    assert_eq!(
        before.local.as_ref().unwrap().conflicts.len(),
        1,
        "{before:?}"
    );
    let now = SystemClock.now();
    let name = format!("push:{}:contacts:1", w.conn);
    assert!(
        w.store
            .try_lock(&name, "a-push", now.add(Duration::from_secs(60)), now)
            .await
            .unwrap()
    );
    let id = ExternalId::parse("1").unwrap();
    let busy = resolve_conflict(
        &w.deps,
        &*w.queue,
        Target {
            connection: &w.conn,
            object: &contacts(),
            id: &id,
        },
        &Choice::one("phone", Choice::Take(Side::Local)),
    )
    .await;
    assert!(
        matches!(
            busy,
            Err(syncbridge_core::pipeline::outbound::ResolveError::Busy(_))
        ),
        "{busy:?}"
    );
    assert_eq!(w.local("1").await.unwrap(), before, "nothing changed");
    w.store.unlock(&name, "a-push").await.unwrap();
    resolve_conflict(
        &w.deps,
        &*w.queue,
        Target {
            connection: &w.conn,
            object: &contacts(),
            id: &id,
        },
        &Choice::one("phone", Choice::Take(Side::Local)),
    )
    .await
    .unwrap();
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("L"));
}

/// Someone deletes a record at the provider while our change to it waits:
/// the pull leaves it alone (held), the push finds it gone, drops the local
/// change with an audit entry saying so (we do not resurrect records), and
/// the record is gone on both sides.
#[tokio::test]
async fn a_remote_delete_wins_over_a_pending_local_change_and_is_audited() {
    let w = world(3, ConnectionPolicies::default()).await;
    w.update(2, json!({"phone": "L"})).await;
    w.sandbox
        .sandbox()
        .archive_record(ObjectKind::Contacts, 2)
        .unwrap();
    let run = run_once(&w.deps, &w.task).await;
    assert_eq!(run.counts.deleted, 0, "held: {run:?}");
    assert!(w.local("2").await.is_some());
    let out = w.deliver_all().await;
    assert_eq!(out, [PushOutcome::Deleted]);
    assert!(w.local("2").await.is_none());
    assert!(w.remote(2).is_empty(), "not resurrected");
    let audit = w.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["decision"], "deleted_remotely");
}

/// Two pushes of one record never run at once: while another worker holds
/// the record's push lock, a job queues itself again for a few seconds later
/// (a new scheduled message) and pushes nothing; once the lock is free the
/// push goes through.
#[tokio::test]
async fn a_second_push_of_the_same_record_waits_for_the_first() {
    // Injected time: the job comes back as a message scheduled a few seconds
    // on, which comes due when the test moves the clock, not after a sleep.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let w = world_on(2, ConnectionPolicies::default(), clock.clone()).await;
    w.update(1, json!({"phone": "Z"})).await;
    let now = clock.now();
    let lock = "push:c1:contacts:1";
    assert!(
        w.store
            .try_lock(lock, "other-worker", now.add(Duration::from_secs(60)), now)
            .await
            .unwrap()
    );
    let out = w.deliver_all().await;
    assert!(matches!(out[..], [PushOutcome::Skipped(_)]), "{out:?}");
    assert_ne!(prop(&w.remote(1), "phone"), Some("Z"), "nothing pushed");
    let waiting = w.queue.peek(QueueName::SYNC_OUTBOUND).unwrap();
    assert_eq!(waiting.len(), 1, "the job comes back later");
    w.store.unlock(lock, "other-worker").await.unwrap();
    assert!(w.deliver_all().await.is_empty(), "not due yet");
    clock.advance(Duration::from_millis(3100));
    w.deliver_all().await;
    assert_eq!(prop(&w.remote(1), "phone"), Some("Z"));
}

/// A create whose answer was lost (the provider applied it; the connection
/// dropped) is retried under the same idempotency key, and a delete the
/// product makes meanwhile deletes the created record: no duplicate, no
/// orphan at the provider.
#[tokio::test]
async fn a_lost_create_answer_then_a_delete_leaves_no_orphan() {
    let w = world(2, ConnectionPolicies::default()).await;
    let base = w.sandbox.base_url();
    let admin = syncbridge_tests::pipeline::admin;
    admin(&base, "config", json!({"faults": {"drop_rate": 1.0}})).await;
    w.submit(ChangeOp::Create {
        reference: "lost".into(),
        fields: fields(json!({"email": "lost@example.com"})),
    })
    .await
    .unwrap();
    let out = w.deliver_all().await;
    let [PushOutcome::Retry { at, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    let live = || {
        w.sandbox
            .sandbox()
            .read_store()
            .table(ObjectKind::Contacts)
            .live_len()
    };
    assert_eq!(live(), 3, "the provider applied the create");
    admin(&base, "config", json!({"faults": {"drop_rate": 0.0}})).await;
    w.submit(ChangeOp::Delete {
        id: ExternalId::parse("local:lost").unwrap(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(
        (at.as_millis() - SystemClock.now().as_millis()).max(0) as u64 + 50,
    ))
    .await;
    for _ in 0..3 {
        requeue_due_pushes(&*w.store, &*w.queue, SystemClock.now(), 10)
            .await
            .unwrap();
        w.deliver_all().await;
    }
    assert_eq!(live(), 2, "created once, then deleted: {}", live());
    assert!(
        w.store
            .list_local_changes(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.local("local:lost").await.is_none());
}
