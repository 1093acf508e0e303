//! A connection's conflict policies as `PATCH /v1/connections/{id}` takes
//! them (`conflicts`): the whole document, checked against the connection's
//! connector before anything is written.

use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::merge::ConnectionPolicies;

use crate::problem::ApiError;

/// Reads and checks a `conflicts` document (pure): it must parse as
/// [`ConnectionPolicies`] (known policy names, no unknown keys, valid object
/// ids), name only objects `def` has, and per-field entries only fields
/// those objects map (the canonical fields a record carries, as
/// `syncbridge connections add --conflict` checks them). Refusals are
/// `InvalidPolicies` (422) naming the bad entry.
pub fn read_policies(
    value: serde_json::Value,
    def: &ConnectorDef,
) -> Result<ConnectionPolicies, ApiError> {
    let policies: ConnectionPolicies = serde_json::from_value(value).map_err(|e| {
        ApiError::InvalidPolicies(format!(
            "conflicts: {e} (policies: source_wins, target_wins, latest, manual)"
        ))
    })?;
    for (object, o) in &policies.objects {
        let Some(obj) = def.object(object.as_str()) else {
            return Err(ApiError::InvalidPolicies(format!(
                "conflicts.objects.{object}: connector {} has no object {:?} (its objects: {})",
                def.name,
                object.as_str(),
                def.objects.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if let Some(field) = o.fields.keys().find(|f| !obj.fields.contains_key(*f)) {
            let what = if field.trim().is_empty() {
                "a field name must not be empty".to_owned()
            } else {
                format!("{object} of connector {} maps no field {field:?}", def.name)
            };
            return Err(ApiError::InvalidPolicies(format!(
                "conflicts.objects.{object}.fields: {what} (its fields: {})",
                obj.fields.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use syncbridge_core::connector::registry::Registry;
    use syncbridge_core::merge::Policy;

    fn sandbox() -> std::sync::Arc<ConnectorDef> {
        Registry::builtin().get("sandbox").unwrap()
    }

    fn refused(v: serde_json::Value) -> String {
        match read_policies(v, &sandbox()) {
            Err(ApiError::InvalidPolicies(d)) => d,
            other => panic!("expected a 422 refusal, got {other:?}"),
        }
    }

    /// Every level parses; `{}` is "manual everywhere" (the default).
    #[test]
    fn accepts_every_level() {
        let p = read_policies(
            json!({"policy": "latest", "objects": {"contacts": {"policy": "source_wins", "fields": {"phone": "target_wins"}}}}),
            &sandbox(),
        )
        .unwrap();
        assert_eq!(p.policy, Some(Policy::Latest));
        let contacts = &p.objects.values().next().unwrap();
        assert_eq!(contacts.policy, Some(Policy::SourceWins));
        assert_eq!(contacts.fields["phone"], Policy::TargetWins);
        assert!(read_policies(json!({}), &sandbox()).unwrap().is_empty());
    }

    /// Tried: a misspelt policy, an unknown key, an object the connector
    /// lacks, a field it does not map, an empty field name. Each is refused
    /// with the bad entry named.
    #[test]
    fn refuses_bad_entries_naming_them() {
        assert!(refused(json!({"policy": "newest"})).contains("newest"));
        assert!(refused(json!({"polcy": "latest"})).contains("polcy"));
        let d = refused(json!({"objects": {"widgets": {"policy": "latest"}}}));
        assert!(d.contains("\"widgets\"") && d.contains("contacts"), "{d}");
        let d = refused(json!({"objects": {"contacts": {"fields": {"phnoe": "latest"}}}}));
        assert!(d.contains("\"phnoe\"") && d.contains("phone"), "{d}");
        let d = refused(json!({"objects": {"contacts": {"fields": {" ": "latest"}}}}));
        assert!(d.contains("must not be empty"), "{d}");
    }
}
