//! One module per provider family, each with a `verify` and a `sign` holding
//! the exact algorithm (see `shared/notes/webhook-schemes.md`).
//!
//! Every `verify` follows the same order: read and parse the headers, check
//! the timestamp against the clock, then try each secret against each received
//! signature in constant time, and only then look up the delivery id.

pub(crate) mod generic;
pub(crate) mod github;
pub(crate) mod hubspot;
pub(crate) mod shopify;
pub(crate) mod slack;
pub(crate) mod square;
pub(crate) mod standard_webhooks;
pub(crate) mod stripe;
pub(crate) mod twilio;
pub(crate) mod zendesk;
