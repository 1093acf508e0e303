//! The Azure Functions custom-handler protocol: the **only** place in syncbridge that
//! knows the host's JSON.
//!
//! Facts come from `shared/notes/functions-host.md` (cited below as §N).

pub mod encoding;
pub mod env;
pub mod extract;
pub mod http;
pub mod request;
pub mod response;
pub mod service_bus;
pub mod timer;

pub use encoding::{BodySource, DataType, DecodeWarning};
pub use env::{
    HOST_VERSION_HEADER, INVOCATION_ID_HEADER, ListenAddrError, PORT_ENV, listen_addr_from,
    listen_addr_from_env,
};
pub use extract::{Invocation, ProtocolError};
pub use http::{HttpBodyEncoding, HttpInvocation};
pub use request::{
    FromInvocation, InvocationContext, InvocationRequest, PayloadError, RetryContext, SysMetadata,
};
pub use response::{HttpOutput, InvocationResponse, ResponseParseError};
pub use service_bus::{ServiceBusInvocation, ServiceBusMetadata};
pub use timer::{ScheduleStatus, TimerInvocation};
