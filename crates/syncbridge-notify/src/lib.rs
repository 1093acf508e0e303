//! Notifications for syncbridge: the [`Event`]s the core raises, rendered
//! for Slack, Microsoft Teams and a signed generic webhook, routed by rules,
//! folded when they repeat, and delivered through a durable outbox.
//!
//! # Pieces
//!
//! - [`config`]: [`NotifyConfig`] (TOML): channels, ordered routing rules
//!   with a default route, grouping and delivery settings.
//! - [`render`](mod@render): pure renderers: Slack Block Kit, Teams Adaptive
//!   Card 1.4 in the message envelope, Standard Webhooks JSON.
//! - [`NotificationService`]: implements the core's [`EventSink`]; records
//!   each routed event in `<data_dir>/notify.db` (SQLite, WAL) and sends due
//!   messages in [`deliver_due`](NotificationService::deliver_due) /
//!   [`run`](NotificationService::run).
//! - [`send_test`]: one sample message, for `syncbridge notify test`.
//! - [`samples`]: every event kind by name and one sample of each.
//!
//! Private modules: `service` (the [`NotificationService`] and [`send_test`]),
//! `outbox` (groups of repeating events and waiting messages in one SQLite
//! file), `channel` (sending one rendered message and classifying the
//! answer); [`error`] holds [`NotifyError`], safe to print.
//!
//! # Configuration
//!
//! ```toml
//! [grouping]
//! wait_secs = 30       # hold a group's first message this long to collect a burst
//! window_secs = 900    # later repeats are summarized once per window
//!
//! [delivery]
//! initial_backoff_secs = 5
//! max_backoff_secs = 900
//! max_attempts = 16
//! timeout_secs = 10
//!
//! [[channels]]
//! name = "ops-slack"
//! type = "slack"                  # slack | teams | webhook
//! url_env = "NOTIFY_OPS_SLACK_URL" # or url = "https://hooks.slack.com/services/…"
//!
//! [[channels]]
//! name = "acme-teams"
//! type = "teams"
//! url_env = "NOTIFY_ACME_TEAMS_URL"
//!
//! [[channels]]
//! name = "product"
//! type = "webhook"
//! url = "https://product.example.com/hooks/syncbridge"
//! secret_env = "NOTIFY_PRODUCT_SECRET"   # whsec_…
//!
//! [[rules]]                       # first match (tenant and kind) decides
//! tenant = "acme"
//! kinds = ["connection_needs_reauth", "conflict_parked"]
//! channels = ["acme-teams", "product"]
//!
//! [[rules]]
//! tenant = "acme"
//! min_severity = "warning"        # info | warning | critical; lower is dropped
//! channels = ["acme-teams"]
//!
//! [default]                       # events no rule matches
//! min_severity = "warning"
//! channels = ["ops-slack", "product"]
//! ```
//!
//! # Rules saved from the dashboard
//!
//! The rules (not the channels, which hold secrets) can also be edited in
//! the dashboard (`PUT /v1/notifications/rules`); they are stored as one
//! versioned document in the store (core's `notify_rules`) and, while one
//! is stored, replace the file's `[[rules]]` and `[default]` as a whole.
//! [`NotificationService::use_stored_rules`] turns this on (every binary
//! does); the store is re-read at most every [`STORED_RULES_REFRESH`].
//!
//! # Product webhooks
//!
//! A `product` channel (`type = "product"`, or the one
//! [`NotifyConfig::with_product_webhook`] adds from the handlers' settings)
//! receives every product event ([`Event::product`]: `sync.completed`,
//! `connection.created`, `connection.needs_reauth`) besides the rules'
//! routing, rendered by [`render::product`] and signed like the generic
//! webhook; rules cannot name it. Events that never repeat
//! (`sync_completed`, `connection_created`) are not held for grouping.
//!
//! # Grouping
//!
//! Events with the same tenant and [`Event::group_key`] are one group. The
//! first occurrence's message is held `wait_secs` and sent with the count of
//! occurrences seen by then (a burst of 100 identical failures is one
//! message "(×100)"). Repeats after that are counted; when the window
//! (`window_secs` from the first occurrence) closes, one follow-up says
//! "Still happening … repeated N more times", and the group rolls into
//! another window. A window without repeats ends the group.
//!
//! # Delivery
//!
//! At least once. A message row is claimed before its request and marked
//! delivered after the answer, so a crash can send it twice but never loses
//! it; receivers dedupe by the stable message id (the generic webhook's
//! `webhook-id` header and `data.id`; shown in Slack's and Teams' footer).
//! Failures retry with capped exponential backoff; 4xx answers other than
//! 408/425/429 are permanent. Channel URLs and secrets are never stored in
//! the outbox (rows name the channel), logged, or put in errors.
//!
//! [`Event`]: syncbridge_core::events::Event
//! [`Event::group_key`]: syncbridge_core::events::Event::group_key
//! [`Event::product`]: syncbridge_core::events::Event::product
//! [`EventSink`]: syncbridge_core::events::EventSink

mod channel;
pub mod config;
pub mod error;
mod outbox;
pub mod render;
pub mod samples;
mod service;

pub use config::{
    ChannelConfig, ChannelKind, DefaultRoute, DeliveryConfig, GroupingConfig, NotifyConfig,
    PRODUCT_CHANNEL, Rule,
};
pub use error::NotifyError;
pub use outbox::{DeadMessage, EnqueueOutcome, OutboxStats};
pub use render::{Notification, Occurrence};
pub use service::{DeliveryReport, NotificationService, STORED_RULES_REFRESH, send_test};
