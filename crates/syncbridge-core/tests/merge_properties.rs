//! Property tests of the three-way merge over small, collision-prone inputs
//! (four field names, a handful of values, `null` and absent mixed in).

use proptest::prelude::*;
use serde_json::{Value, json};
use syncbridge_core::merge::{
    Chosen, FieldValues, MergeOutcome, Policy, PolicyConfig, RemoteVersion, Side, Version,
    apply_changes, field, normalize, same_fields, three_way_merge,
};
use syncbridge_core::{ConnectionId, ObjectType, Timestamp};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn conn() -> ConnectionId {
    ConnectionId::parse("c1").unwrap()
}

fn obj() -> ObjectType {
    ObjectType::parse("contacts").unwrap()
}

/// A field value; `None` is "absent", `Some(Null)` an explicit null.
fn value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        3 => (0..3i64).prop_map(|n| Some(json!(n))),
        2 => prop::sample::select(vec!["x", "y"]).prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!({"nested": null}))),
    ]
}

/// Per field: the base value, then whether each side keeps it or has its own.
fn triple() -> impl Strategy<Value = (FieldValues, FieldValues, FieldValues)> {
    prop::array::uniform4((value(), any::<bool>(), value(), any::<bool>(), value())).prop_map(
        |cols| {
            let (mut base, mut local, mut remote) =
                (FieldValues::new(), FieldValues::new(), FieldValues::new());
            for (name, (b, l_keeps, l, r_keeps, r)) in NAMES.iter().zip(cols) {
                let l = if l_keeps { b.clone() } else { l };
                let r = if r_keeps { b.clone() } else { r };
                for (map, v) in [(&mut base, b), (&mut local, l), (&mut remote, r)] {
                    if let Some(v) = v {
                        map.insert((*name).to_owned(), v);
                    }
                }
            }
            (base, local, remote)
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(Policy::ALL.to_vec())
}

/// A configuration with a default and optional object- and field-level entries.
fn config() -> impl Strategy<Value = PolicyConfig> {
    (
        policy(),
        prop::option::of(policy()),
        prop::array::uniform4(prop::option::of(policy())),
    )
        .prop_map(|(default, object, fields)| {
            let mut cfg = PolicyConfig::new(default);
            if let Some(p) = object {
                cfg = cfg.with_object(&conn(), &obj(), p);
            }
            for (name, p) in NAMES.iter().zip(fields) {
                if let Some(p) = p {
                    cfg = cfg.with_field(&conn(), &obj(), name, p);
                }
            }
            cfg
        })
}

fn versions() -> impl Strategy<Value = Version> {
    (
        prop::option::of(0..3i64),
        prop::option::of(0..3i64),
        prop::option::of(0..5i64),
    )
        .prop_map(|(l, r, v)| Version {
            remote_version: v.map(RemoteVersion::Number),
            remote_updated_at: r.map(Timestamp::from_millis),
            local_version: 1,
            local_updated_at: l.map(Timestamp::from_millis),
        })
}

fn run(
    b: &FieldValues,
    l: &FieldValues,
    r: &FieldValues,
    v: &Version,
    cfg: &PolicyConfig,
) -> MergeOutcome {
    three_way_merge(b, l, r, v, cfg, &obj(), &conn())
}

/// The same fields with an explicit `null` for every name they lack.
fn with_nulls(f: &FieldValues) -> FieldValues {
    let mut out = f.clone();
    for n in NAMES {
        out.entry(n.to_owned()).or_insert(Value::Null);
    }
    out
}

/// Restricts a field set to the given names.
fn only(f: &FieldValues, keep: impl Fn(&str) -> bool) -> FieldValues {
    normalize(f).into_iter().filter(|(k, _)| keep(k)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// (a) Determinism: the same inputs give an identical outcome, down to its serialized bytes.
    #[test]
    fn deterministic((b, l, r) in triple(), v in versions(), cfg in config()) {
        let one = run(&b, &l, &r, &v, &cfg);
        let two = run(&b.clone(), &l.clone(), &r.clone(), &v.clone(), &cfg.clone());
        prop_assert_eq!(serde_json::to_string(&one).unwrap(), serde_json::to_string(&two).unwrap());
        prop_assert_eq!(one, two);
    }

    /// Writing an absent field as an explicit `null` (in any input) never changes the outcome.
    #[test]
    fn null_and_absent_are_interchangeable((b, l, r) in triple(), v in versions(), cfg in config()) {
        let plain = run(&normalize(&b), &normalize(&l), &normalize(&r), &v, &cfg);
        let nulls = run(&with_nulls(&b), &with_nulls(&l), &with_nulls(&r), &v, &cfg);
        prop_assert_eq!(plain, nulls);
    }

    /// (b) When local equals the base the result is the remote, with nothing decided or pushed.
    #[test]
    fn local_unchanged_takes_remote((b, _l, r) in triple(), v in versions(), cfg in config()) {
        let out = run(&b, &b, &r, &v, &cfg);
        prop_assert_eq!(&out.merged, &normalize(&r));
        prop_assert!(out.decisions.is_empty());
        prop_assert!(out.push_to_remote.is_empty());
        prop_assert_eq!(apply_changes(&b, &out.apply_locally), normalize(&r));
    }

    /// (b) When remote equals the base the result is the local, with nothing decided or applied.
    #[test]
    fn remote_unchanged_takes_local((b, l, _r) in triple(), v in versions(), cfg in config()) {
        let out = run(&b, &l, &b, &v, &cfg);
        prop_assert_eq!(&out.merged, &normalize(&l));
        prop_assert!(out.decisions.is_empty());
        prop_assert!(out.apply_locally.is_empty());
        prop_assert_eq!(apply_changes(&b, &out.push_to_remote), normalize(&l));
    }

    /// (c) Idempotence: merging the merged result with itself as base decides nothing and changes nothing.
    #[test]
    fn merged_with_itself_is_noop((b, l, r) in triple(), v in versions(), cfg in config()) {
        let m = run(&b, &l, &r, &v, &cfg).merged;
        let again = run(&m, &m, &m, &v, &cfg);
        prop_assert!(again.is_noop());
        prop_assert_eq!(again.merged, m);
    }

    /// (c) Idempotence after applying: re-merging from the new base decides nothing new except the same parked fields.
    #[test]
    fn applying_the_outcome_settles((b, l, r) in triple(), v in versions(), cfg in config()) {
        let out = run(&b, &l, &r, &v, &cfg);
        let l2 = out.local_after_apply(&l);
        let r2 = out.remote_after_push(&r);
        let again = run(&out.merged, &l2, &r2, &v, &cfg);
        prop_assert!(again.push_to_remote.is_empty());
        prop_assert!(again.apply_locally.is_empty());
        prop_assert_eq!(&again.merged, &out.merged);
        prop_assert_eq!(&again.parked, &out.parked);
        let parked_before: Vec<_> =
            out.decisions.iter().filter(|d| d.chosen == Chosen::Parked).cloned().collect();
        prop_assert_eq!(again.decisions, parked_before);
    }

    /// Soundness: a decision exists exactly for fields changed on both sides to different values; every other field merges cleanly; both sides end equal to merged outside parked fields.
    #[test]
    fn decisions_exactly_for_true_conflicts((b, l, r) in triple(), v in versions(), cfg in config()) {
        let out = run(&b, &l, &r, &v, &cfg);
        for name in NAMES {
            let (fb, fl, fr) = (field(&b, name), field(&l, name), field(&r, name));
            let conflict = fl != fb && fr != fb && fl != fr;
            let decision = out.decisions.iter().find(|d| d.field == name);
            prop_assert_eq!(decision.is_some(), conflict, "field {}", name);
            let m = field(&out.merged, name);
            match decision {
                Some(d) => {
                    prop_assert_eq!((d.base.as_ref(), d.local.as_ref(), d.remote.as_ref()), (fb, fl, fr));
                    prop_assert_eq!(d.policy, cfg.resolve(&conn(), &obj(), name).policy);
                    let want = match d.chosen { Chosen::Local => fl, Chosen::Remote => fr, Chosen::Parked => fb };
                    prop_assert_eq!(m, want);
                    prop_assert_eq!(d.chosen == Chosen::Parked, d.policy == Policy::Manual);
                }
                None if fl == fr => prop_assert_eq!(m, fl),
                None if fl == fb => prop_assert_eq!(m, fr),
                None => prop_assert_eq!(m, fl),
            }
        }
        let open = |k: &str| !out.parked.iter().any(|p| p == k);
        prop_assert!(same_fields(&only(&out.local_after_apply(&l), open), &only(&out.merged, open)));
        prop_assert!(same_fields(&only(&out.remote_after_push(&r), open), &only(&out.merged, open)));
        prop_assert!(!out.merged.values().any(Value::is_null));
    }

    /// Symmetry: swapping local and remote while swapping source_wins and target_wins mirrors the outcome.
    #[test]
    fn sides_are_symmetric((b, l, r) in triple(), v in versions(), p in prop::sample::select(vec![Policy::SourceWins, Policy::TargetWins, Policy::Manual])) {
        let mirror = |p: Policy| match p {
            Policy::SourceWins => Policy::favouring(Side::Local),
            Policy::TargetWins => Policy::favouring(Side::Remote),
            other => other,
        };
        let out = run(&b, &l, &r, &v, &PolicyConfig::new(p));
        let swapped = run(&b, &r, &l, &v, &PolicyConfig::new(mirror(p)));
        prop_assert_eq!(&out.merged, &swapped.merged);
        prop_assert_eq!(&out.push_to_remote, &swapped.apply_locally);
        prop_assert_eq!(&out.apply_locally, &swapped.push_to_remote);
        prop_assert_eq!(&out.parked, &swapped.parked);
    }
}
