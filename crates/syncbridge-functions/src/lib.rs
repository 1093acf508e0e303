//! The five custom handlers, as libraries the binaries (and tests) call.
//!
//! # Layout
//!
//! - [`settings`]: configuration from the environment, validated at start;
//!   the only module that reads environment variables.
//! - [`state`]: [`AppState`], the backends built from the settings, and the
//!   part each handler takes of them.
//! - [`telemetry`]: log format (JSON on stdout under the host), the
//!   per-invocation span (invocation id, correlation id).
//! - [`correlation`]: correlation ids on `sync-inbound` jobs, webhook or
//!   scheduler to worker.
//! - `queue_job`: decoding a queue-triggered job, with the poison handling
//!   both workers share; `error`: [`HandlerError`], what the host sees when
//!   an invocation fails.
//! - [`scheduler`], [`inbound`], [`outbound`], [`token_refresher`],
//!   [`webhook`]: one module per function, each exposing `router(state)`.
//! - [`app`]: a function's router inside its invocation span; [`serve`] /
//!   [`run_function`]: bind `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` and
//!   serve until SIGTERM/Ctrl-C.
//!
//! Every handler answers the host per the protocol crate: `{Outputs, Logs,
//! ReturnValue}` with 2xx for success; non-2xx only for failures a redelivery
//! can fix; undecodable messages are quarantined and acknowledged.

pub mod correlation;
pub mod inbound;
pub mod outbound;
pub mod scheduler;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod token_refresher;
pub mod webhook;

mod error;
mod queue_job;
mod serve;

pub use error::{FailureKind, HandlerError};
pub use serve::{app, run_function, serve};
pub use settings::Settings;
pub use state::AppState;
