//! Canonical record fields and the pure operations on them.

use std::collections::BTreeMap;

use crate::model::content_hash;
use serde_json::Value;

use super::MergeError;

/// A record's canonical fields (after mapping), by field name.
///
/// A `null` value and a missing field mean the same thing: no value.
pub type FieldValues = BTreeMap<String, Value>;

/// A field's value as the merge sees it: `None` when the field is missing or
/// JSON `null`.
pub fn field<'a>(fields: &'a FieldValues, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

/// The same fields without the `null` ones (the canonical form).
pub fn normalize(fields: &FieldValues) -> FieldValues {
    fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether two field sets are equal once `null` and missing are identified.
pub fn same_fields(a: &FieldValues, b: &FieldValues) -> bool {
    a.keys()
        .chain(b.keys())
        .all(|name| field(a, name) == field(b, name))
}

/// Applies a change set (as in [`super::MergeOutcome::push_to_remote`] or
/// [`super::MergeOutcome::apply_locally`]): a `null` change clears the field,
/// any other value sets it. The result is normalized (contains no `null`).
pub fn apply_changes(fields: &FieldValues, changes: &FieldValues) -> FieldValues {
    let mut out = normalize(fields);
    for (name, value) in changes {
        if value.is_null() {
            out.remove(name);
        } else {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

/// Stable hash of a field set: [`content_hash`] of its normalized JSON object,
/// so `null` and missing fields hash alike and key order never matters. Use it
/// for both sides of an echo comparison.
pub fn fields_hash(fields: &FieldValues) -> String {
    content_hash(&fields_to_value(fields))
}

/// The normalized fields as a JSON object (a record's `data`).
pub fn fields_to_value(fields: &FieldValues) -> Value {
    Value::Object(normalize(fields).into_iter().collect())
}

/// Reads a record's `data` (a JSON object) as fields.
pub fn fields_from_value(data: &Value) -> Result<FieldValues, MergeError> {
    match data {
        Value::Object(map) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Null => Err(MergeError::NotAnObject { found: "null" }),
        Value::Bool(_) => Err(MergeError::NotAnObject { found: "a boolean" }),
        Value::Number(_) => Err(MergeError::NotAnObject { found: "a number" }),
        Value::String(_) => Err(MergeError::NotAnObject { found: "a string" }),
        Value::Array(_) => Err(MergeError::NotAnObject { found: "an array" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fv(v: Value) -> FieldValues {
        fields_from_value(&v).unwrap()
    }

    /// `null` and a missing field are the same value for equality and hashing.
    #[test]
    fn null_is_absent() {
        let a = fv(json!({"a": 1, "b": null}));
        let b = fv(json!({"a": 1}));
        assert!(same_fields(&a, &b));
        assert_eq!(fields_hash(&a), fields_hash(&b));
        assert_eq!(field(&a, "b"), None);
        assert_eq!(normalize(&a), b);
        assert!(!same_fields(&a, &fv(json!({"a": 2}))));
    }

    /// A change set sets values and clears fields given as `null`.
    #[test]
    fn apply_changes_sets_and_clears() {
        let base = fv(json!({"a": 1, "b": 2, "c": null}));
        let out = apply_changes(&base, &fv(json!({"a": null, "b": 3, "d": "x"})));
        assert_eq!(out, fv(json!({"b": 3, "d": "x"})));
    }

    /// Only a JSON object is accepted as record data, and the error names what was found.
    #[test]
    fn from_value_requires_object() {
        assert_eq!(
            fields_from_value(&json!([1])).unwrap_err().to_string(),
            "record data must be a JSON object of fields, found an array"
        );
        assert_eq!(
            fields_to_value(&fv(json!({"a": 1, "z": null}))),
            json!({"a": 1})
        );
    }
}
