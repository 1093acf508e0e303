//! The sync pipeline: what the workers do with a job.
//!
//! - [`inbound`]: one inbound run: pages in, records and cursor committed per
//!   page, deletions with a mass-delete breaker.
//! - [`worker`]: a queue job end to end: lease check, run record, outcome,
//!   lease release.
//! - [`outbound`]: local changes in (outbox), pushes out, three-way merge and
//!   conflict policies, audit, manual resolution.
//! - [`webhook`]: what a verified webhook event becomes: routing to the
//!   connection's inbound tasks, dedup keys and follow-up message ids, and
//!   the replay of a quarantined event.

pub mod inbound;
pub mod outbound;
pub mod webhook;
pub mod worker;
