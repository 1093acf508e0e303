//! Connection settings a definition needs: what fills its `{name}`
//! placeholders (GitHub's `owner` and `repo`, Zendesk's `subdomain`).
//!
//! A definition declares each one under `[settings.<name>]` with what to ask
//! the customer. The declaration is checked against the placeholders the
//! definition uses when it is loaded, and a connection's settings are checked
//! against the declaration when the connection is planned (API, CLI, connect
//! session): a missing setting would otherwise be sent to the provider as a
//! literal `{owner}` in the URL, and fail far from its cause.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Placeholders the adapter fills itself, not from settings.
const RESERVED: [&str; 3] = ["id", "cursor", "since"];

/// One setting a connection of this connector carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettingDef {
    /// What to ask for (a form's label).
    pub label: String,
    /// Where the customer finds the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A value shown as an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// Used when the connection sets none; a setting without one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Why a connection's settings do not fit its connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Required settings without a value.
    #[error("connector {connector} needs the settings {}", .missing.join(", "))]
    Missing {
        /// The connector's name.
        connector: String,
        /// The settings not given (sorted).
        missing: Vec<String>,
    },
    /// A setting the connector does not declare (a typo, most likely).
    #[error("connector {connector} has no setting {name:?} (known: {})", known_list(.known))]
    Unknown {
        /// The connector's name.
        connector: String,
        /// The setting given.
        name: String,
        /// The declared ones.
        known: Vec<String>,
    },
    /// A value that is empty or would change the URL's shape.
    #[error("setting {name}: {reason}")]
    Invalid {
        /// The setting given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

/// The settings a connection gets: `given` checked against `declared`, with
/// the declared defaults filled in. Pure; the caller names the connector.
pub fn resolve(
    connector: &str,
    declared: &BTreeMap<String, SettingDef>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    if let Some(name) = given.keys().find(|k| !declared.contains_key(*k)) {
        return Err(SettingsError::Unknown {
            connector: connector.into(),
            name: name.clone(),
            known: declared.keys().cloned().collect(),
        });
    }
    for (name, value) in given {
        check_value(value).map_err(|reason| SettingsError::Invalid {
            name: name.clone(),
            reason,
        })?;
    }
    let mut out = given.clone();
    let mut missing = Vec::new();
    for (name, def) in declared {
        if out.contains_key(name) {
            continue;
        }
        match &def.default {
            Some(d) => {
                out.insert(name.clone(), d.clone());
            }
            None => missing.push(name.clone()),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SettingsError::Missing {
            connector: connector.into(),
            missing,
        })
    }
}

/// A value goes into URL paths and host names: it must be non-empty and
/// must not carry characters that change the URL's structure.
fn check_value(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("must not be empty");
    }
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '?' | '#' | '@' | '\\' | ' ' | '{' | '}'))
    {
        return Err("must not contain spaces, control characters or / ? # @ \\ { }");
    }
    Ok(())
}

/// The `{name}` placeholders in every string of a definition's TOML that
/// are not the adapter's own (`{id}`, `{cursor}`, `{since}`) nor a query
/// template's `{{…}}`: the settings the definition needs.
pub fn placeholders(doc: &toml::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect(doc, &mut out);
    out
}

fn collect(v: &toml::Value, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::String(s) => scan(s, out),
        toml::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn scan(s: &str, out: &mut BTreeSet<String>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
            // A template's `{{…}}`: skip to its end.
            i = s[i..].find("}}").map_or(b.len(), |e| i + e + 2);
            continue;
        }
        if b[i] == b'{' {
            let rest = &s[i + 1..];
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len > 0 && rest[len..].starts_with('}') && !RESERVED.contains(&&rest[..len]) {
                out.insert(rest[..len].to_string());
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, SettingDef> {
        entries
            .iter()
            .map(|(n, d)| {
                let def = SettingDef {
                    label: n.to_string(),
                    description: None,
                    example: None,
                    default: d.map(str::to_string),
                };
                (n.to_string(), def)
            })
            .collect()
    }

    fn given(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn required_settings_must_be_given_and_defaults_fill_the_rest() {
        let d = declared(&[("owner", None), ("repo", None), ("state", Some("all"))]);
        let err = resolve("github", &d, &given(&[("owner", "octo")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connector github needs the settings repo",
            "only the missing required one is named"
        );
        let ok = resolve(
            "github",
            &d,
            &given(&[("owner", "octo"), ("repo", "hello")]),
        )
        .unwrap();
        assert_eq!(
            ok,
            given(&[("owner", "octo"), ("repo", "hello"), ("state", "all")])
        );
    }

    #[test]
    fn unknown_and_url_breaking_values_are_refused() {
        let d = declared(&[("owner", None)]);
        let err = resolve("github", &d, &given(&[("ownr", "octo")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connector github has no setting \"ownr\" (known: owner)"
        );
        for bad in [
            "",
            " ",
            "a/b",
            "x?y=1",
            "evil.com#",
            "me@evil.com",
            "{repo}",
        ] {
            let err = resolve("github", &d, &given(&[("owner", bad)])).unwrap_err();
            assert!(
                matches!(err, SettingsError::Invalid { ref name, .. } if name == "owner"),
                "{bad:?} accepted: {err:?}"
            );
        }
        let none = resolve("sandbox", &BTreeMap::new(), &given(&[("x", "1")])).unwrap_err();
        assert!(none.to_string().ends_with("(known: none)"), "{none}");
    }

    #[test]
    fn placeholders_are_the_settings_not_the_adapters_own_nor_templates() {
        let doc: toml::Value = toml::from_str(
            r#"
            base_url = "https://{site}.atlassian.net"
            [objects.issues]
            list = { path = "/repos/{owner}/{repo}/issues/{id}", query = { jql = 'project = "{project}"{{#since}} AND updated >= "{{since}}"{{/since}}', c = "{cursor}" } }
            push = { create_fields = { projects = ["{team}"] } }
            "#,
        )
        .unwrap();
        let got: Vec<_> = placeholders(&doc).into_iter().collect();
        assert_eq!(got, ["owner", "project", "repo", "site", "team"]);
    }
}
