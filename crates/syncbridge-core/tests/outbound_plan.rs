//! The push planner (`pipeline::outbound::plan`): a table of the decisions
//! one push makes, and properties over small, collision-prone records (three
//! fields, a handful of values, `null` mixed in).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use syncbridge_core::connector::http::{FetchError, RemoteRecord};
use syncbridge_core::merge::{ConnectionPolicies, Policy, Side};
use syncbridge_core::model::{CreateRequest, LocalState, Record, content_hash};
use syncbridge_core::pipeline::outbound::PushOutcome;
use syncbridge_core::pipeline::outbound::plan::{
    CreateStored, Failure, PushInput, PushPlan, Remote, StoredCreate, idempotency_key, on_failure,
    pending, plan_push, update_key,
};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, Timestamp};

const NAMES: [&str; 3] = ["a", "b", "c"];
const NOW: Timestamp = Timestamp::from_millis(5_000);

fn record(id: &str, data: Value, local: Option<LocalState>) -> Record {
    Record {
        connection: ConnectionId::parse("c1").unwrap(),
        object: ObjectType::parse("contacts").unwrap(),
        external_id: ExternalId::parse(id).unwrap(),
        hash: content_hash(&data),
        data,
        version: 7,
        remote_updated_at: Some(Timestamp::from_millis(1_000)),
        local,
    }
}

fn local(base: Value) -> LocalState {
    LocalState {
        base,
        deleted: false,
        local_updated_at: Timestamp::from_millis(2_000),
        push_due_at: Some(Timestamp::from_millis(2_000)),
        attempts: 0,
        last_error: None,
        conflicts: Vec::new(),
        resolutions: BTreeMap::new(),
        create: None,
    }
}

fn deleted(base: Value) -> LocalState {
    LocalState {
        deleted: true,
        ..local(base)
    }
}

fn remote(data: Value, updated_ms: i64) -> Remote {
    Remote::Found(RemoteRecord {
        id: ExternalId::parse("42").unwrap(),
        data,
        updated_at: Some(Timestamp::from_millis(updated_ms)),
    })
}

fn policies(policy: Option<Policy>) -> ConnectionPolicies {
    ConnectionPolicies {
        policy,
        ..Default::default()
    }
}

fn plan(rec: &Record, remote: Remote, policies: &ConnectionPolicies) -> PushPlan {
    plan_push(PushInput {
        record: rec,
        local: rec.local.as_ref().expect("a pending record"),
        remote,
        policies,
        now: NOW,
        create_nonce: 0xabc,
    })
}

fn decision(audit: &syncbridge_core::model::AuditRecord) -> (&str, &str) {
    (
        audit.entry["decision"].as_str().unwrap(),
        audit.entry["outcome"].as_str().unwrap(),
    )
}

/// Whether a record has a push to make.
#[test]
fn pending_table() {
    let synced = record("42", json!({"a": 1}), None);
    assert_eq!(pending(&synced), Err(PushOutcome::UpToDate));
    let parked = record(
        "42",
        json!({"a": 1}),
        Some(LocalState {
            push_due_at: None,
            ..local(json!({}))
        }),
    );
    assert_eq!(
        pending(&parked),
        Err(PushOutcome::Skipped(
            "record 42 has no push pending (parked)".into()
        ))
    );
    let due = record("42", json!({"a": 1}), Some(local(json!({}))));
    assert_eq!(pending(&due), Ok(due.local.as_ref().unwrap()));
}

/// A local create: sent as stored, or a new request (stored first), or
/// nothing at all when it was deleted before it was ever sent. The
/// provider's record plays no part.
#[test]
fn create_table() {
    let none = policies(None);
    let new = record(
        "local:r1",
        json!({"a": 1, "b": null}),
        Some(local(json!({}))),
    );
    let expected = CreateRequest {
        key: format!("sb:c1:contacts:local:r1:{:032x}", 0xabc),
        fields: json!({"a": 1}),
    };
    for remote in [Remote::Unread, Remote::Gone, remote(json!({"a": 2}), 9_000)] {
        assert_eq!(
            plan(&new, remote, &none),
            PushPlan::Create {
                request: expected.clone(),
                stored: CreateStored::NotYet
            }
        );
    }
    let stored = CreateRequest {
        key: "sb:c1:contacts:local:r1:0001".into(),
        fields: json!({"a": 0}),
    };
    let sent = record(
        "local:r1",
        json!({"a": 1}),
        Some(LocalState {
            create: Some(stored.clone()),
            ..deleted(json!({}))
        }),
    );
    assert_eq!(
        plan(&sent, Remote::Unread, &none),
        PushPlan::Create {
            request: stored,
            stored: CreateStored::Already
        },
        "a stored create is sent as stored, even when deleted since (the delete follows)"
    );
    let unsent = record("local:r1", json!({"a": 1}), Some(deleted(json!({}))));
    assert_eq!(
        plan(&unsent, Remote::Unread, &none),
        PushPlan::Remove { audit: Vec::new() }
    );
}

/// A record the provider has: read it first; gone there, our copy goes
/// (a dropped update is audited); an older answer than we hold is retried.
#[test]
fn read_gone_and_stale_table() {
    let none = policies(None);
    let edited = record("42", json!({"a": 2}), Some(local(json!({"a": 1}))));
    assert_eq!(plan(&edited, Remote::Unread, &none), PushPlan::ReadRemote);
    let PushPlan::Remove { audit } = plan(&edited, Remote::Gone, &none) else {
        panic!("gone: remove")
    };
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].key, "c1:contacts:42:deleted_remotely:2000");
    assert_eq!(audit[0].at, NOW);
    assert_eq!(
        decision(&audit[0]),
        (
            "deleted_remotely",
            "the provider deleted the record; the local change was dropped"
        )
    );
    let gone_too = record("42", json!({"a": 1}), Some(deleted(json!({"a": 1}))));
    assert_eq!(
        plan(&gone_too, Remote::Gone, &none),
        PushPlan::Remove { audit: Vec::new() }
    );
    for rec in [&edited, &gone_too] {
        assert_eq!(
            plan(rec, remote(json!({"a": 1}), 999), &none),
            PushPlan::Retry {
                error: "the provider answered an older version".into()
            }
        );
    }
}

/// A local delete against the provider's record, per policy.
#[test]
fn delete_table() {
    let base = json!({"a": 1});
    let rec = record("42", json!({"a": 1}), Some(deleted(base.clone())));
    // Unchanged at the provider: delete, nothing decided.
    for p in [None, Some(Policy::SourceWins), Some(Policy::TargetWins)] {
        assert_eq!(
            plan(&rec, remote(base.clone(), 1_500), &policies(p)),
            PushPlan::Delete { audit: Vec::new() }
        );
    }
    // Changed at the provider (at 1.5 s, before our delete at 2 s, or after at 3 s).
    let cases = [
        (None, 1_500, true, "manual"),
        (Some(Policy::SourceWins), 1_500, true, "source_wins"),
        (Some(Policy::TargetWins), 3_000, false, "target_wins"),
        (Some(Policy::Latest), 1_500, false, "latest"),
        (Some(Policy::Latest), 3_000, true, "latest"),
    ];
    for (p, at, keeps, name) in cases {
        let changed = json!({"a": 2});
        let planned = plan(&rec, remote(changed.clone(), at), &policies(p));
        let (audit, outcome) = match (&planned, keeps) {
            (PushPlan::KeepRemote { audit, remote }, true) => {
                assert_eq!(remote.data, changed);
                (audit, "the provider's update wins over the local delete")
            }
            (PushPlan::Delete { audit }, false) => {
                (audit, "the local delete wins over the provider's update")
            }
            _ => panic!("{p:?} at {at}: {planned:?}"),
        };
        assert_eq!(audit.len(), 1, "{p:?}");
        assert_eq!(
            audit[0].key,
            format!(
                "c1:contacts:42:delete_vs_update:2000:{}",
                content_hash(&changed)
            )
        );
        assert_eq!(
            decision(&audit[0]),
            (
                "delete_vs_update",
                format!("policy {name}: {outcome}").as_str()
            )
        );
    }
}

/// A local update against the provider's record: the three-way merge.
#[test]
fn merge_table() {
    let none = policies(None);
    let base = json!({"a": 1, "b": 1, "c": 1});
    // Each side changed its own field: push ours, apply theirs, nothing decided.
    let rec = record(
        "42",
        json!({"a": 2, "b": 1, "c": 1}),
        Some(local(base.clone())),
    );
    let PushPlan::Merge(m) = plan(&rec, remote(json!({"a": 1, "b": 3, "c": 1}), 1_500), &none)
    else {
        panic!("merge")
    };
    assert_eq!(m.push, [("a".to_owned(), json!(2))].into());
    assert_eq!(m.apply, [("b".to_owned(), json!(3))].into());
    assert_eq!(m.merged["a"], json!(2));
    assert_eq!(m.merged["b"], json!(3));
    assert!(m.audit.is_empty() && m.conflicts.is_empty() && m.parked.is_empty());
    assert_eq!(m.resolved, 0);

    // Both changed `a`: parked under `manual`, with its three values.
    let theirs = json!({"a": 3, "b": 1, "c": 1});
    let PushPlan::Merge(m) = plan(&rec, remote(theirs.clone(), 1_500), &none) else {
        panic!("merge")
    };
    assert!(m.push.is_empty() && m.apply.is_empty());
    assert_eq!(m.parked, ["a"]);
    assert_eq!(m.conflicts.len(), 1);
    let c = &m.conflicts[0];
    assert_eq!(
        (&c.field, &c.base, &c.local, &c.remote, c.parked_at),
        (&"a".to_owned(), &json!(1), &json!(2), &json!(3), NOW)
    );
    assert_eq!((m.audit.len(), m.resolved), (1, 0));

    // The person's resolution (ours) decides it: pushed, audited, resolved.
    let mut resolved = rec.clone();
    if let Some(l) = resolved.local.as_mut() {
        l.resolutions.insert("a".into(), Side::Local);
    }
    let PushPlan::Merge(m) = plan(&resolved, remote(theirs.clone(), 1_500), &none) else {
        panic!("merge")
    };
    assert_eq!(m.push, [("a".to_owned(), json!(2))].into());
    assert!(m.conflicts.is_empty());
    assert_eq!((m.audit.len(), m.resolved), (1, 1));

    // The connection's policy decides it the same way.
    let PushPlan::Merge(m) = plan(
        &rec,
        remote(theirs, 1_500),
        &policies(Some(Policy::SourceWins)),
    ) else {
        panic!("merge")
    };
    assert_eq!(m.apply, [("a".to_owned(), json!(3))].into());
    assert!(m.push.is_empty());
    assert_eq!((m.audit.len(), m.resolved), (1, 1));
}

/// What a failed provider call means.
#[test]
fn failure_table() {
    let rec = record("42", json!({}), Some(local(json!({}))));
    let new = record("local:r1", json!({}), Some(local(json!({}))));
    let rejected = |status, message: &str| FetchError::Rejected {
        status,
        message: message.into(),
    };
    assert_eq!(
        on_failure(&rec, rejected(412, "moved")),
        Failure::Retry {
            error: "provider answered 412: moved".into(),
            at_least: None
        }
    );
    assert_eq!(
        on_failure(&rec, rejected(422, "bad email")),
        Failure::Park {
            error: "provider answered 422: bad email".into(),
            create: StoredCreate::Keep
        }
    );
    assert_eq!(
        on_failure(&new, rejected(422, "bad email")),
        Failure::Park {
            error: "provider answered 422: bad email".into(),
            create: StoredCreate::Forget
        },
        "a refused create created nothing: its request is forgotten"
    );
    assert_eq!(
        on_failure(&rec, rejected(0, "no endpoint")),
        Failure::Park {
            error: "no endpoint".into(),
            create: StoredCreate::Keep
        }
    );
    let wait = Duration::from_secs(90);
    assert_eq!(
        on_failure(&rec, FetchError::Park(wait)),
        Failure::Retry {
            error: format!("rate limited for {wait:?}"),
            at_least: Some(wait)
        }
    );
    let down = FetchError::Unavailable {
        attempts: 3,
        last: "503".into(),
    };
    let error = down.to_string();
    assert_eq!(
        on_failure(&rec, down),
        Failure::Retry {
            error,
            at_least: None
        }
    );
}

/// Idempotency keys: a create's prefix has no version (its request adds a
/// random part), a write's names the version, an update's the changes too.
#[test]
fn idempotency_keys() {
    let rec = record("42", json!({}), None);
    assert_eq!(idempotency_key(&rec), "sb:c1:contacts:42:v7");
    let new = record("local:r1", json!({}), None);
    assert_eq!(idempotency_key(&new), "sb:c1:contacts:local:r1");
    let a = update_key(&rec, &[("a".to_owned(), json!(1))].into());
    let b = update_key(&rec, &[("a".to_owned(), json!(2))].into());
    assert!(a.starts_with("sb:c1:contacts:42:v7:") && a != b);
}

/// A canonical field value (`null` where absent).
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        3 => (0..3i64).prop_map(|n| json!(n)),
        1 => Just(json!("x")),
    ]
}

/// Base, ours and theirs: per field, each side keeps the base or has its own.
fn states() -> impl Strategy<Value = (Value, Value, Value)> {
    prop::array::uniform3((value(), any::<bool>(), value(), any::<bool>(), value())).prop_map(
        |cols| {
            let (mut base, mut ours, mut theirs) = (
                serde_json::Map::new(),
                serde_json::Map::new(),
                serde_json::Map::new(),
            );
            for (name, (b, ours_keeps, o, theirs_keeps, t)) in NAMES.iter().zip(cols) {
                let o = if ours_keeps { b.clone() } else { o };
                let t = if theirs_keeps { b.clone() } else { t };
                base.insert((*name).to_owned(), b);
                ours.insert((*name).to_owned(), o);
                theirs.insert((*name).to_owned(), t);
            }
            (base.into(), ours.into(), theirs.into())
        },
    )
}

fn policy() -> impl Strategy<Value = Option<Policy>> {
    prop::option::of(prop::sample::select(Policy::ALL.to_vec()))
}

fn side() -> impl Strategy<Value = Option<Side>> {
    prop::option::of(prop::sample::select(vec![Side::Local, Side::Remote]))
}

/// A pending record (provisional or not, deleted or not, with or without a
/// stored create request and resolutions), and what is known remotely.
fn case() -> impl Strategy<Value = (Record, Remote, ConnectionPolicies)> {
    (
        states(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::array::uniform3(side()),
        (0..4u8, 0..4_000i64),
        policy(),
    )
        .prop_map(
            |((base, ours, theirs), (provisional, is_deleted, stored), sides, (known, at), p)| {
                let mut state = if is_deleted {
                    deleted(base)
                } else {
                    local(base)
                };
                state.create = stored.then(|| CreateRequest {
                    key: "k".into(),
                    fields: ours.clone(),
                });
                for (name, side) in NAMES.iter().zip(sides) {
                    if let Some(side) = side {
                        state.resolutions.insert((*name).to_owned(), side);
                    }
                }
                let id = if provisional { "local:r1" } else { "42" };
                let remote = match known {
                    0 => Remote::Unread,
                    1 => Remote::Gone,
                    _ => remote(theirs, at),
                };
                (record(id, ours, Some(state)), remote, policies(p))
            },
        )
}

fn plan_at(rec: &Record, remote: &Remote, p: &ConnectionPolicies, now: Timestamp) -> PushPlan {
    plan_push(PushInput {
        record: rec,
        local: rec.local.as_ref().unwrap(),
        remote: remote.clone(),
        policies: p,
        now,
        create_nonce: 7,
    })
}

fn audit_of(plan: &PushPlan) -> Vec<&syncbridge_core::model::AuditRecord> {
    match plan {
        PushPlan::Remove { audit }
        | PushPlan::KeepRemote { audit, .. }
        | PushPlan::Delete { audit } => audit.iter().collect(),
        PushPlan::Merge(m) => m.audit.iter().collect(),
        PushPlan::ReadRemote | PushPlan::Create { .. } | PushPlan::Retry { .. } => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The same inputs plan the same push; a later decision of the same
    /// states (a retry, a redelivery) differs only in its time, so its audit
    /// entries have the same keys and an idempotent append stores them once.
    #[test]
    fn deterministic_and_idempotent((rec, remote, p) in case()) {
        let first = plan_at(&rec, &remote, &p, NOW);
        prop_assert_eq!(&first, &plan_at(&rec, &remote, &p, NOW));
        let later = plan_at(&rec, &remote, &p, NOW.add(Duration::from_secs(60)));
        let keys = |plan: &PushPlan| audit_of(plan).iter().map(|a| a.key.clone()).collect::<Vec<_>>();
        prop_assert_eq!(keys(&first), keys(&later));
        for a in audit_of(&first) {
            prop_assert_eq!(a.at, NOW);
            prop_assert_eq!(&a.external_id, &rec.external_id);
        }
    }

    /// Which kind of plan a record gets.
    #[test]
    fn plan_kinds((rec, remote, p) in case()) {
        let local = rec.local.clone().unwrap();
        let planned = plan_at(&rec, &remote, &p, NOW);
        let kind_ok = match (&planned, rec.is_provisional(), &remote) {
            // A create never reads, and is sent unless deleted before any send.
            (PushPlan::Create { stored, .. }, true, _) => {
                (*stored == CreateStored::Already) == local.create.is_some()
            }
            (PushPlan::Remove { audit }, true, _) => local.create.is_none() && local.deleted && audit.is_empty(),
            (PushPlan::ReadRemote, false, Remote::Unread) => true,
            (PushPlan::Remove { audit }, false, Remote::Gone) => audit.is_empty() == local.deleted,
            (PushPlan::Retry { .. }, false, Remote::Found(r)) => r.updated_at < rec.remote_updated_at,
            (PushPlan::KeepRemote { audit, remote: kept }, false, Remote::Found(r)) => {
                local.deleted && audit.len() == 1 && kept == r && kept.data != local.base
            }
            (PushPlan::Delete { audit }, false, Remote::Found(r)) => {
                local.deleted && audit.len() == usize::from(r.data != local.base)
            }
            (PushPlan::Merge(_), false, Remote::Found(_)) => !local.deleted,
            _ => false,
        };
        prop_assert!(kind_ok, "{:?} for {:?} against {:?}", planned, rec, remote);
    }

    /// A merge decides once per conflicting field: every decision is
    /// audited, a parked field is neither pushed nor applied, and what
    /// neither side changed is left alone.
    #[test]
    fn merge_decisions((rec, remote, p) in case()) {
        let PushPlan::Merge(m) = plan_at(&rec, &remote, &p, NOW) else {
            return Ok(());
        };
        let keys: std::collections::BTreeSet<_> = m.audit.iter().map(|a| &a.key).collect();
        prop_assert_eq!(keys.len(), m.audit.len(), "one key per decision");
        prop_assert_eq!(m.audit.len() as u64, m.resolved + m.conflicts.len() as u64);
        let parked: Vec<_> = m.conflicts.iter().map(|c| c.field.clone()).collect();
        prop_assert_eq!(&parked, &m.parked);
        for c in &m.conflicts {
            prop_assert!(!m.push.contains_key(&c.field) && !m.apply.contains_key(&c.field));
            prop_assert_eq!(c.parked_at, NOW);
        }
        let base = &rec.local.as_ref().unwrap().base;
        if m.remote.data == *base {
            prop_assert!(m.apply.is_empty() && m.audit.is_empty(), "an echo changes nothing here");
        }
        if rec.data == *base {
            prop_assert!(m.push.is_empty() && m.audit.is_empty(), "nothing of ours to send");
        }
    }
}
