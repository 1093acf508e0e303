//! Table tests of the three-way merge for every policy: pure functions, no I/O.

use serde_json::{Value, json};
use syncbridge_core::merge::{
    Chosen, FieldValues, MergeOutcome, Policy, PolicyConfig, PolicySource, Reason, RemoteVersion,
    Side, Version, audit_entries, fields_from_value, fields_hash, three_way_merge,
};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, Timestamp};

fn fv(v: Value) -> FieldValues {
    fields_from_value(&v).expect("object")
}

fn conn() -> ConnectionId {
    ConnectionId::parse("hubspot-acme").unwrap()
}

fn obj() -> ObjectType {
    ObjectType::parse("contacts").unwrap()
}

/// Versions with the given modification times (milliseconds).
fn times(local: Option<i64>, remote: Option<i64>) -> Version {
    Version {
        remote_version: Some(RemoteVersion::Number(7)),
        remote_updated_at: remote.map(Timestamp::from_millis),
        local_version: 3,
        local_updated_at: local.map(Timestamp::from_millis),
    }
}

fn merge_with(
    cfg: &PolicyConfig,
    versions: &Version,
    base: Value,
    local: Value,
    remote: Value,
) -> MergeOutcome {
    three_way_merge(
        &fv(base),
        &fv(local),
        &fv(remote),
        versions,
        cfg,
        &obj(),
        &conn(),
    )
}

fn merge(policy: Policy, base: Value, local: Value, remote: Value) -> MergeOutcome {
    merge_with(
        &PolicyConfig::new(policy),
        &times(Some(100), Some(200)),
        base,
        local,
        remote,
    )
}

/// (name, base, local, remote, merged, push_to_remote, apply_locally): merges with no conflict.
type CleanCase = (&'static str, Value, Value, Value, Value, Value, Value);

fn clean_cases() -> Vec<CleanCase> {
    vec![
        (
            "unchanged on both sides keeps the base",
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "x"}),
            json!({"b": "x", "a": 1}),
            json!({"a": 1, "b": "x"}),
            json!({}),
            json!({}),
        ),
        (
            "local-only change is pushed",
            json!({"a": 1, "b": "x"}),
            json!({"a": 2, "b": "x"}),
            json!({"a": 1, "b": "x"}),
            json!({"a": 2, "b": "x"}),
            json!({"a": 2}),
            json!({}),
        ),
        (
            "remote-only change is applied locally",
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "y"}),
            json!({"a": 1, "b": "y"}),
            json!({}),
            json!({"b": "y"}),
        ),
        (
            "changes to different fields on each side both survive",
            json!({"a": 1, "b": "x"}),
            json!({"a": 2, "b": "x"}),
            json!({"a": 1, "b": "y"}),
            json!({"a": 2, "b": "y"}),
            json!({"a": 2}),
            json!({"b": "y"}),
        ),
        (
            "local delete is pushed as null",
            json!({"a": 1, "b": "x"}),
            json!({"b": "x"}),
            json!({"a": 1, "b": "x"}),
            json!({"b": "x"}),
            json!({"a": null}),
            json!({}),
        ),
        (
            "remote delete (as null) is applied locally as a clear",
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "x"}),
            json!({"a": null, "b": "x"}),
            json!({"b": "x"}),
            json!({}),
            json!({"a": null}),
        ),
        (
            "field added locally is pushed",
            json!({}),
            json!({"c": [1, 2]}),
            json!({}),
            json!({"c": [1, 2]}),
            json!({"c": [1, 2]}),
            json!({}),
        ),
        (
            "field added remotely is applied",
            json!({"a": 1}),
            json!({"a": 1}),
            json!({"a": 1, "c": {"n": true}}),
            json!({"a": 1, "c": {"n": true}}),
            json!({}),
            json!({"c": {"n": true}}),
        ),
        (
            "changed on both sides to the same value is not a conflict",
            json!({"a": 1}),
            json!({"a": 5}),
            json!({"a": 5}),
            json!({"a": 5}),
            json!({}),
            json!({}),
        ),
        (
            "deleted on both sides (absent vs null) is not a conflict",
            json!({"a": 1, "b": 2}),
            json!({"b": 2}),
            json!({"a": null, "b": 2}),
            json!({"b": 2}),
            json!({}),
            json!({}),
        ),
        (
            "null vs absent on one side is no change at all",
            json!({"a": null}),
            json!({}),
            json!({"a": null}),
            json!({}),
            json!({}),
            json!({}),
        ),
        (
            "the same value added on both sides without a base is not a conflict",
            json!({}),
            json!({"a": "same"}),
            json!({"a": "same"}),
            json!({"a": "same"}),
            json!({}),
            json!({}),
        ),
    ]
}

/// Under every policy, clean merges and same-value changes give the same result and no decision.
#[test]
fn clean_merges_under_every_policy() {
    for policy in Policy::ALL {
        for (name, base, local, remote, merged, push, apply) in clean_cases() {
            let out = merge(policy, base, local, remote);
            let ctx = format!("{policy:?}: {name}");
            assert_eq!(out.merged, fv(merged), "{ctx}: merged");
            assert_eq!(out.push_to_remote, fv(push), "{ctx}: push");
            assert_eq!(out.apply_locally, fv(apply), "{ctx}: apply");
            assert!(out.decisions.is_empty(), "{ctx}: no decision");
            assert!(out.parked.is_empty(), "{ctx}: nothing parked");
        }
    }
}

/// A true conflict: `a` changed to different values on both sides; `b` changed on one side only.
fn conflict(policy: Policy, versions: &Version) -> MergeOutcome {
    merge_with(
        &PolicyConfig::new(policy),
        versions,
        json!({"a": "base", "b": 1}),
        json!({"a": "local", "b": 2}),
        json!({"a": "remote", "b": 1}),
    )
}

/// source_wins: the remote value wins the conflict and is applied locally; the clean local change is still pushed.
#[test]
fn source_wins_conflict() {
    let out = conflict(Policy::SourceWins, &times(Some(900), Some(100)));
    assert_eq!(out.merged, fv(json!({"a": "remote", "b": 2})));
    assert_eq!(out.push_to_remote, fv(json!({"b": 2})));
    assert_eq!(out.apply_locally, fv(json!({"a": "remote"})));
    assert_eq!(out.decisions.len(), 1);
    let d = &out.decisions[0];
    assert_eq!(
        (d.field.as_str(), d.policy, d.chosen, d.reason),
        ("a", Policy::SourceWins, Chosen::Remote, Reason::SourceWins)
    );
    assert_eq!(d.policy_source, PolicySource::Default);
    assert!(out.parked.is_empty());
}

/// target_wins: the local value wins the conflict and is pushed with the clean change.
#[test]
fn target_wins_conflict() {
    let out = conflict(Policy::TargetWins, &times(Some(100), Some(900)));
    assert_eq!(out.merged, fv(json!({"a": "local", "b": 2})));
    assert_eq!(out.push_to_remote, fv(json!({"a": "local", "b": 2})));
    assert!(out.apply_locally.is_empty());
    let d = &out.decisions[0];
    assert_eq!((d.chosen, d.reason), (Chosen::Local, Reason::TargetWins));
}

/// latest: the side with the later modification time wins; ties and unknown times go to the remote.
#[test]
fn latest_conflict_table() {
    // (local_updated_at, remote_updated_at, chosen, reason)
    let cases = [
        (Some(200), Some(100), Chosen::Local, Reason::LocalIsLater),
        (Some(100), Some(200), Chosen::Remote, Reason::RemoteIsLater),
        (Some(150), Some(150), Chosen::Remote, Reason::TieRemoteWins),
        (
            None,
            Some(150),
            Chosen::Remote,
            Reason::UnknownTimeRemoteWins,
        ),
        (
            Some(150),
            None,
            Chosen::Remote,
            Reason::UnknownTimeRemoteWins,
        ),
        (None, None, Chosen::Remote, Reason::UnknownTimeRemoteWins),
    ];
    for (l, r, chosen, reason) in cases {
        let out = conflict(Policy::Latest, &times(l, r));
        let d = &out.decisions[0];
        assert_eq!((d.chosen, d.reason), (chosen, reason), "{l:?} vs {r:?}");
        let winner = if chosen == Chosen::Local {
            "local"
        } else {
            "remote"
        };
        assert_eq!(out.merged["a"], json!(winner), "{l:?} vs {r:?}");
        assert_eq!(out.merged["b"], json!(2), "clean change survives");
    }
}

/// latest: the provider version does not decide a local-vs-remote conflict, only the times do.
#[test]
fn latest_ignores_provider_version() {
    let mut v = times(Some(300), Some(200));
    v.remote_version = Some(RemoteVersion::Number(i64::MAX));
    let out = conflict(Policy::Latest, &v);
    assert_eq!(out.decisions[0].chosen, Chosen::Local);
}

/// manual: the conflicting field is parked with base/local/remote kept, merged keeps the base, nothing is pushed or applied for it.
#[test]
fn manual_parks_conflict() {
    let out = conflict(Policy::Manual, &times(Some(100), Some(200)));
    assert_eq!(out.parked, vec!["a".to_owned()]);
    assert_eq!(out.merged, fv(json!({"a": "base", "b": 2})));
    assert_eq!(
        out.push_to_remote,
        fv(json!({"b": 2})),
        "clean change still pushed"
    );
    assert!(out.apply_locally.is_empty());
    let d = &out.decisions[0];
    assert_eq!(d.base, Some(json!("base")));
    assert_eq!(d.local, Some(json!("local")));
    assert_eq!(d.remote, Some(json!("remote")));
    assert_eq!((d.chosen, d.reason), (Chosen::Parked, Reason::ManualParked));
}

/// A parked field stays parked on the next merge, and an override towards a side resolves it.
#[test]
fn manual_resolution_by_override() {
    let v = times(Some(100), Some(200));
    let first = conflict(Policy::Manual, &v);
    // Store merged as the new base; both sides keep their values.
    let again = three_way_merge(
        &first.merged,
        &fv(json!({"a": "local", "b": 2})),
        &fv(json!({"a": "remote", "b": 2})),
        &v,
        &PolicyConfig::new(Policy::Manual),
        &obj(),
        &conn(),
    );
    assert_eq!(again.parked, vec!["a".to_owned()]);
    assert_eq!(
        again.decisions, first.decisions,
        "same conflict, same decision"
    );
    let resolve = PolicyConfig::new(Policy::Manual).with_field(
        &conn(),
        &obj(),
        "a",
        Policy::favouring(Side::Local),
    );
    let resolved = three_way_merge(
        &first.merged,
        &fv(json!({"a": "local", "b": 2})),
        &fv(json!({"a": "remote", "b": 2})),
        &v,
        &resolve,
        &obj(),
        &conn(),
    );
    assert!(resolved.parked.is_empty());
    assert_eq!(resolved.push_to_remote, fv(json!({"a": "local"})));
    assert_eq!(resolved.decisions[0].policy_source, PolicySource::Field);
}

/// Delete against edit is a conflict like any other; the winner may be the deletion.
#[test]
fn delete_vs_edit_conflict() {
    let base = json!({"a": 1});
    let local = json!({});
    let remote = json!({"a": 2});
    let src = merge(
        Policy::SourceWins,
        base.clone(),
        local.clone(),
        remote.clone(),
    );
    assert_eq!(src.merged, fv(json!({"a": 2})));
    assert_eq!(src.apply_locally, fv(json!({"a": 2})));
    let tgt = merge(
        Policy::TargetWins,
        base.clone(),
        local.clone(),
        remote.clone(),
    );
    assert_eq!(tgt.merged, fv(json!({})));
    assert_eq!(tgt.push_to_remote, fv(json!({"a": null})));
    let man = merge(Policy::Manual, base, local, remote);
    assert_eq!(man.decisions[0].local, None);
    assert_eq!(man.merged, fv(json!({"a": 1})));
}

/// Field-level overrides beat the object policy, which beats the connection policy, within one merge.
#[test]
fn per_field_policy_override() {
    let cfg = PolicyConfig::new(Policy::Manual)
        .with_connection(&conn(), Policy::Latest)
        .with_object(&conn(), &obj(), Policy::SourceWins)
        .with_field(&conn(), &obj(), "email", Policy::TargetWins)
        .with_field(&conn(), &obj(), "notes", Policy::Manual);
    let out = merge_with(
        &cfg,
        &times(Some(100), Some(200)),
        json!({"email": "e0", "name": "n0", "notes": "t0"}),
        json!({"email": "e-local", "name": "n-local", "notes": "t-local"}),
        json!({"email": "e-remote", "name": "n-remote", "notes": "t-remote"}),
    );
    let got: Vec<_> = out
        .decisions
        .iter()
        .map(|d| (d.field.as_str(), d.policy, d.policy_source, d.chosen))
        .collect();
    assert_eq!(
        got,
        [
            (
                "email",
                Policy::TargetWins,
                PolicySource::Field,
                Chosen::Local
            ),
            (
                "name",
                Policy::SourceWins,
                PolicySource::Object,
                Chosen::Remote
            ),
            ("notes", Policy::Manual, PolicySource::Field, Chosen::Parked),
        ]
    );
    assert_eq!(
        out.merged,
        fv(json!({"email": "e-local", "name": "n-remote", "notes": "t0"}))
    );
    assert_eq!(out.push_to_remote, fv(json!({"email": "e-local"})));
    assert_eq!(out.apply_locally, fv(json!({"name": "n-remote"})));
    // Another object of the same connection falls back to the connection policy.
    let other = three_way_merge(
        &fv(json!({"x": 0})),
        &fv(json!({"x": 1})),
        &fv(json!({"x": 2})),
        &times(Some(300), Some(200)),
        &cfg,
        &ObjectType::parse("deals").unwrap(),
        &conn(),
    );
    assert_eq!(other.decisions[0].policy, Policy::Latest);
    assert_eq!(other.decisions[0].chosen, Chosen::Local);
}

/// The interim base keeps pushed fields at their old base until the push is acknowledged; the rest moves to merged.
#[test]
fn interim_base_and_remote_after_push() {
    let base = fv(json!({"a": "base", "b": 1, "c": "gone"}));
    let out = three_way_merge(
        &base,
        &fv(json!({"a": "local", "b": 1})),
        &fv(json!({"a": "remote", "b": 5, "c": "gone"})),
        &times(None, None),
        &PolicyConfig::new(Policy::TargetWins),
        &obj(),
        &conn(),
    );
    assert_eq!(out.push_to_remote, fv(json!({"a": "local", "c": null})));
    assert_eq!(out.apply_locally, fv(json!({"b": 5})));
    assert_eq!(
        out.interim_base(&base),
        fv(json!({"a": "base", "b": 5, "c": "gone"}))
    );
    let remote_after = out.remote_after_push(&fv(json!({"a": "remote", "b": 5, "c": "gone"})));
    assert_eq!(remote_after, out.merged);
    assert_eq!(
        out.local_after_apply(&fv(json!({"a": "local", "b": 1}))),
        out.merged
    );
}

/// One audit entry per decision, carrying record, field values, versions, policy and outcome; the key ignores versions.
#[test]
fn audit_entries_one_per_decision() {
    let record = ExternalId::parse("contact/42").unwrap();
    let cfg =
        PolicyConfig::new(Policy::Manual).with_field(&conn(), &obj(), "b", Policy::SourceWins);
    let base = json!({"a": 0, "b": 0, "c": 0});
    let local = json!({"a": 1, "b": 1, "c": 0});
    let remote = json!({"a": 2, "b": 2, "c": 9});
    let v1 = times(Some(1), Some(2));
    let out = merge_with(&cfg, &v1, base.clone(), local.clone(), remote.clone());
    let entries = audit_entries(&conn(), &obj(), &record, &v1, &out);
    assert_eq!(entries.len(), out.decisions.len());
    assert_eq!(entries.len(), 2, "c changed on one side only: no decision");
    assert_eq!(entries[0].field, "a");
    assert_eq!(entries[0].chosen, Chosen::Parked);
    assert_eq!(entries[1].field, "b");
    assert_eq!(entries[1].chosen, Chosen::Remote);
    assert_eq!(entries[1].record, record);
    assert_eq!(entries[1].versions, v1);
    assert_eq!(
        (entries[1].local.clone(), entries[1].remote.clone()),
        (Some(json!(1)), Some(json!(2)))
    );
    assert_ne!(entries[0].key, entries[1].key);
    // The same conflict seen with other versions is the same decision (same key).
    let v2 = times(Some(5), Some(6));
    let again = merge_with(&cfg, &v2, base, local, remote);
    let keys2: Vec<_> = audit_entries(&conn(), &obj(), &record, &v2, &again)
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys2,
        entries.iter().map(|e| e.key.clone()).collect::<Vec<_>>()
    );
    // A different record gives different keys.
    let other = ExternalId::parse("contact/43").unwrap();
    assert_ne!(
        audit_entries(&conn(), &obj(), &other, &v1, &out)[0].key,
        entries[0].key
    );
    // Entries serialize with readable names.
    let text = serde_json::to_string(&entries[1]).unwrap();
    assert!(text.contains("\"policy\":\"source_wins\""), "{text}");
    assert!(text.contains("\"chosen\":\"remote\""), "{text}");
}

/// A push's echo (our pushed fields back from the provider, in any key order, with `null` for absent) merges to nothing once the base is the merged state: echo suppression is the base.
#[test]
fn echo_of_push_merges_to_nothing() {
    let remote = fv(json!({"a": 1, "b": "x"}));
    let out = three_way_merge(
        &fv(json!({"a": 1, "b": "x"})),
        &fv(json!({"a": 2, "b": "x"})),
        &remote,
        &times(None, None),
        &PolicyConfig::default(),
        &obj(),
        &conn(),
    );
    let pushed = out.remote_after_push(&remote);
    let webhook_body = fv(json!({"b": "x", "a": 2, "extra": null}));
    assert_eq!(fields_hash(&pushed), fields_hash(&webhook_body));
    let local = out.local_after_apply(&fv(json!({"a": 2, "b": "x"})));
    let echo = three_way_merge(
        &out.merged,
        &local,
        &webhook_body,
        &times(None, None),
        &PolicyConfig::default(),
        &obj(),
        &conn(),
    );
    assert!(echo.is_noop(), "{echo:?}");
    let other = three_way_merge(
        &out.merged,
        &local,
        &fv(json!({"a": 2, "b": "y"})),
        &times(None, None),
        &PolicyConfig::default(),
        &obj(),
        &conn(),
    );
    assert!(!other.is_noop(), "a real remote change is not an echo");
}
