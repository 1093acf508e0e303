//! The syncbridge domain: what a tenant's connection is, what a sync task and a
//! sync run are, what a synced record looks like, and the traits every backend
//! (SQLite, Cosmos DB, Service Bus, Key Vault, Redis…) implements.
//!
//! # Layout
//!
//! - [`ids`]: newtypes for every identifier, parsed once at the edge.
//! - [`clock`]: the injected [`Clock`] (tests never sleep).
//! - [`model`]: connections, tasks, runs, records, webhook events, queue jobs.
//! - [`store`]: the [`Store`] trait: all durable state goes through it.
//! - [`queue`]: the [`QueueSender`] trait: every enqueue goes through it.
//! - [`secrets`]: [`SecretString`] (never printed) and the [`SecretStore`] trait.
//! - [`ratelimit`]: the [`RateLimiter`] trait the workers consult before each provider call.
//! - [`apikeys`]: what the store keeps of the product API's keys (their hash).
//! - [`merge`]: the pure conflict-resolution core: three-way field merge, policies, audit entries.
//!
//! Nothing in this crate performs I/O by itself; binaries wire concrete backends
//! behind these traits.

pub mod apikeys;
pub mod clock;
pub mod connector;
pub mod credentials;
pub mod events;
pub mod ids;
pub mod merge;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod ratelimit;
pub mod scheduler;
pub mod secrets;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use ids::{ConnectionId, ExternalId, IdError, ObjectType, RunId, TaskId, TenantId};
pub use queue::{OutboundMessage, QueueError, QueueName, QueueSender};
pub use ratelimit::{Decision, RateLimiter};
pub use secrets::{SecretStore, SecretString};
pub use store::{Store, StoreError};
