//! Connector definitions by name: the ones shipped in `connectors/` (compiled
//! in) plus any `*.toml` in a directory the deployment names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::definition::{ConnectorDef, DefinitionError};

/// The definitions shipped with syncbridge.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "sandbox.toml",
        include_str!("../../../../connectors/sandbox.toml"),
    ),
    (
        "hubspot.toml",
        include_str!("../../../../connectors/hubspot.toml"),
    ),
    (
        "github.toml",
        include_str!("../../../../connectors/github.toml"),
    ),
    (
        "intercom.toml",
        include_str!("../../../../connectors/intercom.toml"),
    ),
    (
        "asana.toml",
        include_str!("../../../../connectors/asana.toml"),
    ),
    (
        "stripe.toml",
        include_str!("../../../../connectors/stripe.toml"),
    ),
    (
        "pipedrive.toml",
        include_str!("../../../../connectors/pipedrive.toml"),
    ),
    (
        "zendesk.toml",
        include_str!("../../../../connectors/zendesk.toml"),
    ),
    (
        "jira.toml",
        include_str!("../../../../connectors/jira.toml"),
    ),
    (
        "msgraph.toml",
        include_str!("../../../../connectors/msgraph.toml"),
    ),
    (
        "salesforce.toml",
        include_str!("../../../../connectors/salesforce.toml"),
    ),
];

/// The shipped sandbox definition with an app-wide limit that stays inside a
/// provider window of `limit` requests per `period_secs`: 95% of the window
/// as sustained rate, the remaining 5% as burst, and the sandbox's headers
/// read as app-wide. Used by the demo's `--sandbox-rate-limit` and tests.
pub fn sandbox_with_limit(limit: u64, period_secs: f64) -> String {
    let text = BUILTIN
        .iter()
        .find(|(f, _)| *f == "sandbox.toml")
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let sustained = (limit * 95 / 100).max(1);
    let burst = (limit - sustained).max(1);
    let text = text.replacen(
        "\n[auth]",
        "\nrate_limit_headers_app_wide = true\n\n[auth]",
        1,
    );
    format!(
        "{text}\n[[rate_limits]]\nname = \"app\"\nlimit = {sustained}\nperiod_secs = {period_secs}\nburst = {burst}\nscope = \"app\"\n"
    )
}

/// Loaded definitions.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: BTreeMap<String, Arc<ConnectorDef>>,
}

impl Registry {
    /// The built-in definitions. They are validated by tests, so this cannot fail.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for (file, text) in BUILTIN {
            r.insert(
                ConnectorDef::from_toml(file, text)
                    .expect("built-in connector definitions are valid"),
            );
        }
        r
    }

    /// What every binary loads: the built-ins, plus every `*.toml` in `dir`
    /// when one is configured (`SYNCBRIDGE_CONNECTORS_DIR`). The handlers,
    /// the CLI and the token refresh all call this, so a custom definition
    /// (or a replaced built-in, e.g. with another `token_url`) means the same
    /// everywhere.
    pub fn load(dir: Option<&Path>) -> Result<Self, DefinitionError> {
        match dir {
            Some(d) => Self::with_dir(d),
            None => Ok(Self::builtin()),
        }
    }

    /// Built-ins plus every `*.toml` in `dir` (a file may replace a built-in by name).
    pub fn with_dir(dir: &Path) -> Result<Self, DefinitionError> {
        let mut r = Self::builtin();
        let entries = std::fs::read_dir(dir).map_err(|e| DefinitionError {
            source_name: dir.display().to_string(),
            field: "(directory)".into(),
            message: e.to_string(),
        })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(&p).map_err(|e| DefinitionError {
                source_name: name.clone(),
                field: "(file)".into(),
                message: e.to_string(),
            })?;
            r.insert(ConnectorDef::from_toml(&name, &text)?);
        }
        Ok(r)
    }

    /// Adds or replaces a definition.
    pub fn insert(&mut self, def: ConnectorDef) {
        self.defs.insert(def.name.clone(), Arc::new(def));
    }

    /// A definition by name.
    pub fn get(&self, name: &str) -> Option<Arc<ConnectorDef>> {
        self.defs.get(name).cloned()
    }

    /// Every definition, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ConnectorDef> {
        self.defs.values().map(|d| &**d)
    }

    /// Every name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped definition parses and validates.
    #[test]
    fn builtins_are_valid() {
        for (file, text) in BUILTIN {
            ConnectorDef::from_toml(file, text).unwrap_or_else(|e| panic!("{e}"));
        }
        let r = Registry::builtin();
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            [
                "asana",
                "github",
                "hubspot",
                "intercom",
                "jira",
                "msgraph",
                "pipedrive",
                "salesforce",
                "sandbox",
                "stripe",
                "zendesk"
            ]
        );
        let limited = ConnectorDef::from_toml("limited", &sandbox_with_limit(100, 10.0)).unwrap();
        assert!(limited.rate_limit_headers_app_wide);
        assert_eq!(
            (limited.rate_limits[0].limit, limited.rate_limits[0].burst),
            (95, Some(5))
        );
    }
}
