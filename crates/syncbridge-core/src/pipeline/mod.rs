//! The sync pipeline: what the workers do with a job.
//!
//! - [`inbound`]: one inbound run: pages in, records and cursor committed per
//!   page, deletions with a mass-delete breaker.
//! - [`worker`]: a queue job end to end: lease check, run record, outcome,
//!   lease release.

pub mod inbound;
pub mod worker;
