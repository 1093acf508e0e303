//! The Azure Functions custom-handler protocol: the **only** crate in syncbridge that
//! knows the Functions host's JSON.
//!
//! The host starts our binary with `FUNCTIONS_CUSTOMHANDLER_PORT` set (§2) and POSTs
//! every invocation to `http://127.0.0.1:<port>/<FunctionName>` as a
//! `{"Data": {...}, "Metadata": {...}}` envelope (§4); the handler answers
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}` with HTTP 200 (§5). HTTP-only
//! functions may instead receive the original request, forwarded or proxied (§4d).
//! Section numbers (§N) refer to `docs/functions-host.md` in this repository.
//!
//! # Layout
//!
//! - [`request`]: the raw [`InvocationRequest`] envelope, [`InvocationContext`] (invocation
//!   id header, function name), `sys`/`RetryContext` metadata, the [`FromInvocation`]
//!   trait and [`PayloadError`].
//! - [`timer`]: [`TimerInvocation`] / [`ScheduleStatus`] (§4a).
//! - [`service_bus`]: [`ServiceBusInvocation`] / [`ServiceBusMetadata`] (§4b), decoded
//!   defensively against every trap the note lists (double-quoted strings, ints as
//!   strings, absent nulls, body fields clobbering metadata).
//! - [`http`]: [`HttpInvocation`] for non-forwarded HTTP (§4c).
//! - [`encoding`]: the §4 value-encoding rules and the robust decoders behind all views.
//! - [`extract`]: the axum extractor [`Invocation<T>`], [`ProtocolError`], and the poison
//!   vs. retry failure semantics (§5, §11.5) — read its module docs.
//! - [`response`]: [`InvocationResponse`] and [`HttpOutput`] (§5).
//! - [`host`]: the host's side — builders for the exact payloads the real host sends
//!   and [`host::parse_invocation_response`], for our local host and for tests.
//! - [`bindings`]: the host's side of bindings — Service Bus output values to
//!   message bodies (§5), a timer trigger under its function.json name, the
//!   `RetryContext` of a re-run (§1b).
//! - [`env`](mod@env): header and environment variable names and [`listen_addr_from`] (§2).
//! - [`server`]: the HTTP/1.1 server handlers and the local host's front door
//!   run (header and body read timeouts, a bound on open connections that
//!   sheds the oldest idle one, answers to half-closed clients).
//! - [`host_json`] / [`function_json`]: `host.json` (§1) and `function.json` (§3, §1b)
//!   models, `%AppSetting%` expansion and [`FunctionJson::is_http_only`] (§4d).
//!
//! # Architecture invariants
//!
//! - No other crate parses or builds the host's JSON; domain types are never serialized
//!   directly for the host.
//! - Decoding never panics. Metadata problems become [`DecodeWarning`]s with a sensible
//!   fallback; only a missing/garbled trigger value is a [`PayloadError`], and a body
//!   that is not JSON at all is a [`ProtocolError`].

pub mod bindings;
pub mod encoding;
pub mod env;
pub mod extract;
pub mod function_json;
pub mod host;
pub mod host_json;
pub mod http;
pub mod request;
pub mod response;
pub mod server;
pub mod service_bus;
pub mod timer;

pub use encoding::{BodySource, DataType, DecodeWarning};
pub use env::{
    HOST_VERSION_HEADER, INVOCATION_ID_HEADER, ListenAddrError, PORT_ENV, listen_addr_from,
};
pub use extract::{Invocation, ProtocolError, RECOMMENDED_BODY_LIMIT};
pub use function_json::{
    AuthLevel, Binding, BindingKind, Cardinality, Direction, FunctionJson, HttpOutputBinding,
    HttpTrigger, RetryPolicy, ServiceBusOutput, ServiceBusTrigger, TimerTrigger,
};
pub use host::{
    BrokerMessage, HttpRequestSpec, http_request, parse_invocation_response, service_bus_request,
    timer_request,
};
pub use host_json::{ConfigError, CustomHandler, HostJson, HttpMode, expand_app_settings};
pub use http::{HttpBodyEncoding, HttpInvocation};
pub use request::{
    FromInvocation, InvocationContext, InvocationRequest, PayloadError, RetryContext, SysMetadata,
};
pub use response::{HttpOutput, InvocationResponse, ResponseParseError};
pub use service_bus::{ServiceBusInvocation, ServiceBusMetadata};
pub use timer::{ScheduleStatus, TimerInvocation};
