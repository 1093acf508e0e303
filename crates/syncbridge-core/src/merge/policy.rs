//! Conflict policies and their configuration per connection, object and field.

use std::collections::BTreeMap;

use crate::{ConnectionId, ObjectType};
use serde::{Deserialize, Serialize};

use super::MergeError;
use super::three_way::Side;

/// How a field changed on both sides to different values is resolved.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The provider (remote, the source of the data) wins.
    SourceWins,
    /// Our store (local, the sync target) wins.
    TargetWins,
    /// The side whose record changed last wins (`local_updated_at` against
    /// `remote_updated_at`); the remote wins a tie or when a time is unknown.
    Latest,
    /// Nobody wins: the field is parked with its base, local and remote
    /// values until a person resolves it. The default: nothing is ever lost
    /// silently unless a policy says so.
    #[default]
    Manual,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 4] = [
        Policy::SourceWins,
        Policy::TargetWins,
        Policy::Latest,
        Policy::Manual,
    ];

    /// The configuration text.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::SourceWins => "source_wins",
            Policy::TargetWins => "target_wins",
            Policy::Latest => "latest",
            Policy::Manual => "manual",
        }
    }

    /// Parses the configuration text.
    pub fn parse(s: &str) -> Option<Self> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The policy under which `side` wins: how a person's manual resolution
    /// of a parked field is expressed (`Local` → `target_wins`, `Remote` →
    /// `source_wins`).
    pub fn favouring(side: Side) -> Self {
        match side {
            Side::Local => Policy::TargetWins,
            Side::Remote => Policy::SourceWins,
        }
    }
}

/// Which configuration level a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// A field-level entry.
    Field,
    /// An object-level entry.
    Object,
    /// A connection-level entry.
    Connection,
    /// The configuration's default.
    Default,
}

/// A policy and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResolvedPolicy {
    /// The policy to apply.
    pub policy: Policy,
    /// The level that set it.
    pub source: PolicySource,
}

/// Policies for the objects and fields of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConnectionPolicies {
    /// The connection-wide policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Per object type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, ObjectPolicies>))]
    pub objects: BTreeMap<ObjectType, ObjectPolicies>,
}

impl ConnectionPolicies {
    /// No policy configured at any level.
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.objects.is_empty()
    }
}

/// Policies for one object type of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectPolicies {
    /// The object-wide policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Per canonical field name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Policy>,
}

/// Conflict policies per connection, object and field; the most specific
/// entry wins: field > object > connection > default.
///
/// In TOML:
///
/// ```toml
/// default = "manual"
///
/// [connections.hubspot-acme]
/// policy = "latest"
///
/// [connections.hubspot-acme.objects.contacts]
/// policy = "source_wins"
/// fields = { email = "target_wins", notes = "manual" }
/// ```
///
/// Unknown keys are refused (a misspelt `polcy` must not silently fall back
/// to the default), and connection and object names are validated ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Used when nothing more specific is configured (default: `manual`).
    #[serde(default)]
    pub default: Policy,
    /// Per connection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<ConnectionId, ConnectionPolicies>,
}

impl PolicyConfig {
    /// A configuration with only a default.
    pub fn new(default: Policy) -> Self {
        PolicyConfig {
            default,
            connections: BTreeMap::new(),
        }
    }

    /// Reads the JSON form.
    pub fn from_json(text: &str) -> Result<Self, MergeError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Sets a connection-wide policy.
    pub fn with_connection(mut self, connection: &ConnectionId, policy: Policy) -> Self {
        self.connections
            .entry(connection.clone())
            .or_default()
            .policy = Some(policy);
        self
    }

    /// Sets an object-wide policy.
    pub fn with_object(
        mut self,
        connection: &ConnectionId,
        object: &ObjectType,
        policy: Policy,
    ) -> Self {
        self.object_mut(connection, object).policy = Some(policy);
        self
    }

    /// Sets a field's policy.
    pub fn with_field(
        mut self,
        connection: &ConnectionId,
        object: &ObjectType,
        field: &str,
        policy: Policy,
    ) -> Self {
        self.object_mut(connection, object)
            .fields
            .insert(field.to_owned(), policy);
        self
    }

    fn object_mut(
        &mut self,
        connection: &ConnectionId,
        object: &ObjectType,
    ) -> &mut ObjectPolicies {
        self.connections
            .entry(connection.clone())
            .or_default()
            .objects
            .entry(object.clone())
            .or_default()
    }

    /// The policy for one field of one object of one connection.
    pub fn resolve(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        field: &str,
    ) -> ResolvedPolicy {
        let conn = self.connections.get(connection);
        let obj = conn.and_then(|c| c.objects.get(object));
        if let Some(&policy) = obj.and_then(|o| o.fields.get(field)) {
            return ResolvedPolicy {
                policy,
                source: PolicySource::Field,
            };
        }
        if let Some(policy) = obj.and_then(|o| o.policy) {
            return ResolvedPolicy {
                policy,
                source: PolicySource::Object,
            };
        }
        if let Some(policy) = conn.and_then(|c| c.policy) {
            return ResolvedPolicy {
                policy,
                source: PolicySource::Connection,
            };
        }
        ResolvedPolicy {
            policy: self.default,
            source: PolicySource::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ConnectionId, ObjectType) {
        (
            ConnectionId::parse("c1").unwrap(),
            ObjectType::parse("contacts").unwrap(),
        )
    }

    /// The most specific level wins: field > object > connection > default.
    #[test]
    fn most_specific_wins() {
        let (c, o) = ids();
        let other_c = ConnectionId::parse("c2").unwrap();
        let other_o = ObjectType::parse("deals").unwrap();
        let cfg = PolicyConfig::new(Policy::Manual)
            .with_connection(&c, Policy::Latest)
            .with_object(&c, &o, Policy::SourceWins)
            .with_field(&c, &o, "email", Policy::TargetWins);
        let r = |c: &ConnectionId, o: &ObjectType, f: &str| {
            let r = cfg.resolve(c, o, f);
            (r.policy, r.source)
        };
        assert_eq!(
            r(&c, &o, "email"),
            (Policy::TargetWins, PolicySource::Field)
        );
        assert_eq!(
            r(&c, &o, "name"),
            (Policy::SourceWins, PolicySource::Object)
        );
        assert_eq!(
            r(&c, &other_o, "email"),
            (Policy::Latest, PolicySource::Connection)
        );
        assert_eq!(
            r(&other_c, &o, "email"),
            (Policy::Manual, PolicySource::Default)
        );
    }

    /// Policy names round-trip through their configuration text.
    #[test]
    fn policy_text() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        assert_eq!(Policy::parse("newest"), None);
        assert_eq!(Policy::default(), Policy::Manual);
    }

    /// The JSON form parses, defaults to manual, and refuses unknown keys and bad ids.
    #[test]
    fn json_form() {
        let (c, o) = ids();
        let cfg = PolicyConfig::from_json(
            r#"{"connections":{"c1":{"policy":"latest","objects":{"contacts":{"fields":{"email":"source_wins"}}}}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.default, Policy::Manual);
        assert_eq!(cfg.resolve(&c, &o, "email").policy, Policy::SourceWins);
        assert_eq!(cfg.resolve(&c, &o, "name").policy, Policy::Latest);
        assert!(PolicyConfig::from_json(r#"{"defualt":"latest"}"#).is_err());
        assert!(PolicyConfig::from_json(r#"{"connections":{"bad id":{}}}"#).is_err());
        assert!(PolicyConfig::from_json(r#"{"default":"newest"}"#).is_err());
        let back: PolicyConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    /// The TOML form documented on `PolicyConfig` parses to the expected policies.
    #[test]
    fn toml_form() {
        let (c, o) = ids();
        let cfg: PolicyConfig = toml::from_str(
            r#"
            default = "target_wins"

            [connections.c1]
            policy = "latest"

            [connections.c1.objects.contacts]
            policy = "source_wins"
            fields = { email = "target_wins", notes = "manual" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.resolve(&c, &o, "email").policy, Policy::TargetWins);
        assert_eq!(cfg.resolve(&c, &o, "notes").policy, Policy::Manual);
        assert_eq!(cfg.resolve(&c, &o, "phone").policy, Policy::SourceWins);
        let other = ConnectionId::parse("c9").unwrap();
        assert_eq!(cfg.resolve(&other, &o, "x").policy, Policy::TargetWins);
        assert!(toml::from_str::<PolicyConfig>("[connections.c1]\npolcy = \"latest\"").is_err());
    }

    /// A manual resolution towards a side is the policy under which that side wins.
    #[test]
    fn favouring_sides() {
        assert_eq!(Policy::favouring(Side::Local), Policy::TargetWins);
        assert_eq!(Policy::favouring(Side::Remote), Policy::SourceWins);
    }
}
