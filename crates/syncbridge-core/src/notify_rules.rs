//! Notification routing rules: which events go to which channels.
//!
//! The channels themselves (URLs, signing secrets) live in the deployment's
//! notification config file and never in the store. The rules may live in
//! either: the file's `[[rules]]` and `[default]`, or a
//! [`NotificationRules`] document the dashboard saved through the store
//! (`Store::get_notification_rules` / `put_notification_rules`), which then
//! replaces the file's rules as a whole. `syncbridge-notify` routes with
//! them; validation against the configured channels lives there too.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::events::{Event, Severity};
use crate::ids::TenantId;

/// Routes events of some tenants and kinds to channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Only events of this tenant; `None` matches every event, including
    /// events that belong to no tenant.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Only these kinds (`sync_run_failed`, …); empty matches every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Events below this severity are dropped (they do not fall through to
    /// later rules).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Channel names.
    pub channels: Vec<String>,
}

impl Rule {
    /// A rule for every tenant and kind with minimum severity `info`.
    pub fn new(channels: &[&str]) -> Self {
        Rule {
            tenant: None,
            kinds: Vec::new(),
            min_severity: Severity::Info,
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// Restricts the rule to one tenant.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Restricts the rule to these kinds.
    pub fn kinds(mut self, kinds: &[&str]) -> Self {
        self.kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        self
    }

    /// Sets the minimum severity.
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = severity;
        self
    }

    /// Whether the rule applies to the event (tenant and kind; not severity).
    pub fn matches(&self, event: &Event) -> bool {
        let tenant_ok = match &self.tenant {
            None => true,
            Some(t) => event.tenant() == Some(t),
        };
        tenant_ok && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == event.kind()))
    }
}

/// The route of events that no rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRoute {
    /// Events below this severity are dropped.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Channel names.
    pub channels: Vec<String>,
}

fn default_min_severity() -> Severity {
    Severity::Info
}

/// The rules the dashboard saved: one versioned document per deployment.
/// While one is stored it replaces the config file's rules and default
/// route as a whole (an empty list with no default drops every operator
/// notification; product channels are not routed by rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRules {
    /// Starts at 1 and grows by one with each save: the compare-and-swap
    /// token (`Store::put_notification_rules`) and the API's `ETag`.
    pub version: u64,
    /// Ordered rules; the first that matches an event decides.
    pub rules: Vec<Rule>,
    /// Where events no rule matches go (`None`: dropped).
    #[serde(default)]
    pub default: Option<DefaultRoute>,
    /// When it was saved.
    pub updated_at: Timestamp,
}
