//! The syncbridge domain: what a tenant's connection is, what a sync task and a
//! sync run are, what a synced record looks like, and the traits every backend
//! (SQLite, Cosmos DB, Service Bus, Key Vault, Redis…) implements.
//!
//! # Layout
//!
//! - [`ids`]: newtypes for every identifier, parsed once at the edge.
//! - [`clock`]: the injected [`Clock`] (tests move a [`ManualClock`]; [`SystemClock`]
//!   reads the wall clock).
//! - [`model`]: connections, tasks, runs, records, webhook events, queue jobs.
//! - [`store`]: the [`Store`] trait: all durable state goes through it.
//! - [`queue`]: the [`QueueSender`] trait: every enqueue goes through it
//!   (and health reads queue depths through it).
//! - [`heartbeat`]: function heartbeats (last invocation, failures) the
//!   handlers record in the store for the health report.
//! - [`secrets`]: [`SecretString`] (never printed) and the [`SecretStore`] trait.
//! - [`ratelimit`]: the [`RateLimiter`] trait the workers consult before each provider call.
//! - [`credentials`]: the [`credentials::CredentialProvider`] hook a provider
//!   request gets its authorization from.
//! - [`events`]: operational events and the [`events::EventSink`] they go to.
//! - [`notify_rules`]: notification routing rules and the versioned document
//!   of them the dashboard saves in the store.
//! - [`heartbeat`]: the functions' heartbeats in the store (the API's health).
//! - [`connector`]: connector definitions, pure extraction, the HTTP adapter
//!   for provider reads and writes, the registry of definitions.
//! - [`apikeys`]: what the store keeps of the product API's keys (their hash).
//! - [`connect`]: connect sessions (the OAuth authorization-code flow's
//!   single-use, expiring record) and their pure checks.
//! - [`merge`]: the pure conflict-resolution core: three-way field merge, policies, audit entries.
//! - [`pipeline`]: what the workers do with a job: inbound runs, the job
//!   lifecycle, outbound submit / push / resolve.
//! - [`scheduler`]: fair planning of due tasks, the tick, the watchdog.
//!
//! # I/O
//!
//! Durable state, queues, secrets, rate limits and credentials go through the
//! traits above, which the binaries implement with concrete backends. The
//! crate's own I/O is in three places (ARCHITECTURE.md's invariant lists
//! them; the tidy test `crates/xtask/tests/tidy.rs` checks it):
//! [`connector::http`] calls providers (reqwest) and sleeps between its
//! retries (tokio time, which tests can pause), [`connector::registry`] reads
//! connector definition files, and [`SystemClock`] reads the wall clock.
//! [`pipeline::worker`] carries the HTTP client to the adapter.

pub mod apikeys;
pub mod clock;
pub mod connect;
pub mod connector;
pub mod credentials;
pub mod events;
pub mod heartbeat;
pub mod ids;
pub mod merge;
pub mod model;
pub mod notify_rules;
pub mod pipeline;
pub mod queue;
pub mod ratelimit;
pub mod scheduler;
pub mod secrets;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use ids::{ConnectionId, ExternalId, IdError, ObjectType, RunId, TaskId, TenantId};
pub use queue::{
    ChunksError, MessageCounts, OutboundMessage, QueueDepth, QueueError, QueueName, QueueSender,
};
pub use ratelimit::{Decision, RateLimiter};
pub use secrets::{SecretStore, SecretString};
pub use store::{Store, StoreError};
