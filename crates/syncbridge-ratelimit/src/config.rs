//! Limit configuration, as it sits in a connector definition:
//!
//! ```toml
//! rate_limits = [
//!   { name = "app",        limit = 95,     period_secs = 10,    burst = 5, scope = "app" },
//!   { name = "connection", limit = 90,     period_secs = 10,    scope = "connection" },
//!   { name = "search",     limit = 4,      period_secs = 1,     scope = "endpoint", endpoint = "search" },
//!   { name = "daily",      limit = 250000, period_secs = 86400, scope = "connection" },
//! ]
//! ```
//!
//! Each level is a GCRA bucket: `limit` units per `period_secs` sustained, at
//! most `burst` (default: `limit`) at once. In any interval of length `t` at
//! most `burst + t·limit/period_secs` units pass. Providers that count in
//! fixed or sliding windows (HubSpot: 100 per 10 s) are matched by keeping
//! `burst + limit ≤ window quota`, e.g. `limit = 95, burst = 5`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gcra::Gcra;

/// Most levels one provider may configure.
pub const MAX_LEVELS: usize = 16;

/// Level names the limiter uses itself (overrides, degraded mode).
pub const RESERVED_LEVEL_NAMES: &[&str] = &["override", "redis-unavailable"];

/// Whose budget a level counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Our provider app as a whole, across every tenant connection.
    App,
    /// One tenant connection (most provider quotas are per account/org/store).
    Connection,
    /// One endpoint class of one connection (search, bulk export, GraphQL cost).
    Endpoint,
}

impl From<syncbridge_core::ratelimit::LevelScope> for Scope {
    fn from(s: syncbridge_core::ratelimit::LevelScope) -> Self {
        use syncbridge_core::ratelimit::LevelScope as L;
        match s {
            L::App => Scope::App,
            L::Connection => Scope::Connection,
            L::Endpoint => Scope::Endpoint,
        }
    }
}

impl From<&syncbridge_core::ratelimit::RateLimitLevel> for LimitLevel {
    /// A level as written in a connector definition.
    fn from(l: &syncbridge_core::ratelimit::RateLimitLevel) -> Self {
        LimitLevel {
            name: l.name.clone(),
            limit: l.limit,
            period_secs: l.period_secs,
            burst: l.burst,
            scope: l.scope.into(),
            endpoint: l.endpoint.clone(),
        }
    }
}

/// One limit level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitLevel {
    /// Name reported when this level refuses (`connection`, `daily`, `search`).
    pub name: String,
    /// Units per period (sustained rate numerator).
    pub limit: u64,
    /// Period in seconds (fractions allowed: `0.2` = 200 ms).
    pub period_secs: f64,
    /// Units that may pass back to back; defaults to `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Whose budget this is.
    pub scope: Scope,
    /// For `scope = "endpoint"`: the endpoint class this level applies to.
    /// Without it, every endpoint class gets its own bucket of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl LimitLevel {
    /// A level of `limit` per `period`, burst = limit.
    pub fn new(name: impl Into<String>, limit: u64, period: Duration, scope: Scope) -> Self {
        LimitLevel {
            name: name.into(),
            limit,
            period_secs: period.as_secs_f64(),
            burst: None,
            scope,
            endpoint: None,
        }
    }

    /// With an explicit burst.
    pub fn with_burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Restricted to one endpoint class (implies `scope = endpoint`).
    pub fn for_endpoint(mut self, class: impl Into<String>) -> Self {
        self.scope = Scope::Endpoint;
        self.endpoint = Some(class.into());
        self
    }

    /// The period as a duration.
    pub fn period(&self) -> Duration {
        Duration::try_from_secs_f64(self.period_secs).unwrap_or(Duration::MAX)
    }

    /// The effective burst.
    pub fn effective_burst(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    /// The GCRA parameters of this level.
    pub fn gcra(&self) -> Gcra {
        Gcra::new(self.limit, self.period(), self.effective_burst())
    }

    /// Whether this level counts a request to `endpoint`.
    pub fn applies_to(&self, endpoint: Option<&str>) -> bool {
        match self.scope {
            Scope::App | Scope::Connection => true,
            Scope::Endpoint => match (&self.endpoint, endpoint) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(want), Some(got)) => want == got,
            },
        }
    }
}

/// All levels of one provider; serialises as a plain list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderLimits {
    /// The levels, checked together.
    pub levels: Vec<LimitLevel>,
}

impl ProviderLimits {
    /// From a list of levels.
    pub fn new(levels: Vec<LimitLevel>) -> Self {
        ProviderLimits { levels }
    }

    /// Checks names, numbers and scopes; `provider` is used in messages.
    ///
    /// # Errors
    /// The first problem found, with the level at fault.
    pub fn validate(&self, provider: &str) -> Result<(), ConfigError> {
        let err = |level: &str, message: String| ConfigError {
            provider: provider.to_owned(),
            level: level.to_owned(),
            message,
        };
        validate_name(provider).map_err(|m| err("", format!("provider name {m}")))?;
        if self.levels.len() > MAX_LEVELS {
            return Err(err(
                "",
                format!(
                    "{} levels configured; at most {MAX_LEVELS} are allowed",
                    self.levels.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for l in &self.levels {
            validate_name(&l.name).map_err(|m| err(&l.name, format!("name {m}")))?;
            if RESERVED_LEVEL_NAMES.contains(&l.name.as_str()) {
                return Err(err(&l.name, "name is reserved".into()));
            }
            if !seen.insert(l.name.as_str()) {
                return Err(err(&l.name, "name used twice".into()));
            }
            if l.limit == 0 {
                return Err(err(&l.name, "limit must be at least 1".into()));
            }
            if !(l.period_secs.is_finite() && l.period_secs >= 0.000_001) {
                return Err(err(
                    &l.name,
                    format!(
                        "period_secs must be a positive number, not {}",
                        l.period_secs
                    ),
                ));
            }
            if l.burst == Some(0) {
                return Err(err(&l.name, "burst must be at least 1".into()));
            }
            match (l.scope, &l.endpoint) {
                (Scope::Endpoint, Some(e)) => {
                    validate_name(e).map_err(|m| err(&l.name, format!("endpoint class {m}")))?
                }
                (Scope::Endpoint, None) => {}
                (_, Some(_)) => {
                    return Err(err(
                        &l.name,
                        "`endpoint` is only allowed with scope = \"endpoint\"".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether any level is app-wide.
    pub fn has_app_levels(&self) -> bool {
        self.levels.iter().any(|l| l.scope == Scope::App)
    }
}

/// Limits of every provider, by provider name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LimitsConfig {
    /// Provider name → levels.
    pub providers: BTreeMap<String, ProviderLimits>,
}

impl LimitsConfig {
    /// Adds (or replaces) one provider's levels.
    pub fn with_provider(mut self, provider: impl Into<String>, limits: ProviderLimits) -> Self {
        self.providers.insert(provider.into(), limits);
        self
    }

    /// Validates every provider.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.providers
            .iter()
            .try_for_each(|(name, p)| p.validate(name))
    }
}

/// A limit configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limits of provider {provider:?}, level {level:?}: {message}")]
pub struct ConfigError {
    /// Provider at fault.
    pub provider: String,
    /// Level at fault (empty for the provider itself).
    pub level: String,
    /// What is wrong.
    pub message: String,
}

/// Names end up inside Redis keys: letters, digits and `-_.` only, 1–64 chars.
fn validate_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("{s:?} must be 1 to 64 characters long"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!(
            "{s:?} contains {c:?}; only letters, digits and `-_.` are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML form of a connector definition's `rate_limits` parses into levels with defaults.
    #[test]
    fn parses_from_toml() {
        #[derive(Deserialize)]
        struct Def {
            rate_limits: ProviderLimits,
        }
        let def: Def = toml::from_str(
            r#"
rate_limits = [
  { name = "app", limit = 95, period_secs = 10, burst = 5, scope = "app" },
  { name = "connection", limit = 90, period_secs = 10, scope = "connection" },
  { name = "search", limit = 4, period_secs = 1, scope = "endpoint", endpoint = "search" },
  { name = "daily", limit = 250000, period_secs = 86400, scope = "connection" },
  { name = "fast", limit = 2, period_secs = 0.2, scope = "connection" },
]
"#,
        )
        .unwrap();
        let l = &def.rate_limits.levels;
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].scope, Scope::App);
        assert_eq!(l[0].effective_burst(), 5);
        assert_eq!(l[1].effective_burst(), 90);
        assert_eq!(l[2].endpoint.as_deref(), Some("search"));
        assert_eq!(l[4].period(), Duration::from_millis(200));
        def.rate_limits.validate("hubspot").unwrap();
        assert!(def.rate_limits.has_app_levels());
        // JSON round trip
        let json = serde_json::to_string(&def.rate_limits).unwrap();
        let back: ProviderLimits = serde_json::from_str(&json).unwrap();
        assert_eq!(back, def.rate_limits);
    }

    /// Bad levels are refused with the provider, level and reason.
    #[test]
    fn validation_table() {
        let ok = LimitLevel::new("c", 10, Duration::from_secs(1), Scope::Connection);
        let cases: Vec<(LimitLevel, &str)> = vec![
            (
                LimitLevel {
                    limit: 0,
                    ..ok.clone()
                },
                "limit must be at least 1",
            ),
            (
                LimitLevel {
                    period_secs: 0.0,
                    ..ok.clone()
                },
                "period_secs",
            ),
            (
                LimitLevel {
                    period_secs: f64::NAN,
                    ..ok.clone()
                },
                "period_secs",
            ),
            (
                LimitLevel {
                    burst: Some(0),
                    ..ok.clone()
                },
                "burst",
            ),
            (
                LimitLevel {
                    name: "a{b}".into(),
                    ..ok.clone()
                },
                "only letters",
            ),
            (
                LimitLevel {
                    name: "override".into(),
                    ..ok.clone()
                },
                "reserved",
            ),
            (
                LimitLevel {
                    endpoint: Some("x".into()),
                    ..ok.clone()
                },
                "only allowed with scope",
            ),
        ];
        for (level, want) in cases {
            let e = ProviderLimits::new(vec![level]).validate("p").unwrap_err();
            assert!(e.to_string().contains(want), "{e} should mention {want}");
        }
        let twice = ProviderLimits::new(vec![ok.clone(), ok.clone()]);
        assert!(twice.validate("p").unwrap_err().message.contains("twice"));
        assert!(
            ProviderLimits::new(vec![ok.clone()])
                .validate("a b")
                .is_err()
        );
        let many = ProviderLimits::new(
            (0..17)
                .map(|i| LimitLevel {
                    name: format!("l{i}"),
                    ..ok.clone()
                })
                .collect(),
        );
        assert!(many.validate("p").is_err());
        // unknown fields are refused
        assert!(
            serde_json::from_str::<LimitLevel>(
                r#"{"name":"a","limit":1,"period_secs":1,"scope":"app","typo":1}"#
            )
            .is_err()
        );
    }

    /// Endpoint levels apply to their class only (or to every class when unnamed); other scopes always apply.
    #[test]
    fn endpoint_applicability() {
        let any = LimitLevel::new("e", 1, Duration::from_secs(1), Scope::Endpoint);
        let search = any.clone().for_endpoint("search");
        let conn = LimitLevel::new("c", 1, Duration::from_secs(1), Scope::Connection);
        assert!(!any.applies_to(None));
        assert!(any.applies_to(Some("bulk")));
        assert!(search.applies_to(Some("search")));
        assert!(!search.applies_to(Some("bulk")));
        assert!(conn.applies_to(None) && conn.applies_to(Some("search")));
    }
}
