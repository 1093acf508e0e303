//! What the host reports while it runs: a stream of [`HostEvent`]s (subscribe with
//! [`crate::LocalHostHandle::events`]) and a [`FunctionStatus`] snapshot per
//! function (from [`crate::LocalHostHandle::status`]), so a CLI can print which
//! functions are up and on which ports.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Life-cycle of one handler process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// Not started yet.
    Pending,
    /// Process spawned, waiting for it to answer HTTP on `port`.
    Starting {
        /// `FUNCTIONS_CUSTOMHANDLER_PORT` given to it.
        port: u16,
        /// OS process id.
        pid: u32,
        /// 1 for the first start, +1 per restart.
        attempt: u32,
    },
    /// Answering on `http://127.0.0.1:<port>/`.
    Ready {
        /// Its port.
        port: u16,
        /// OS process id.
        pid: u32,
    },
    /// It exited or never became ready; a new process starts after `delay`.
    Restarting {
        /// What went wrong with the last one.
        reason: String,
        /// Restarts since it last counted as healthy (1 = the first).
        restart: u32,
        /// How long the host waits before starting it again.
        delay: Duration,
    },
    /// Given up (it never came up, or the executable is missing).
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by shutdown.
    Stopped,
}

impl ChildState {
    /// The port while ready.
    pub fn ready_port(&self) -> Option<u16> {
        match self {
            ChildState::Ready { port, .. } => Some(*port),
            _ => None,
        }
    }
}

impl fmt::Display for ChildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildState::Pending => f.write_str("pending"),
            ChildState::Starting { port, pid, attempt } => {
                write!(f, "starting (pid {pid}, port {port}, attempt {attempt})")
            }
            ChildState::Ready { port, pid } => {
                write!(f, "up (pid {pid}, http://127.0.0.1:{port}/)")
            }
            ChildState::Restarting {
                reason,
                restart,
                delay,
            } => write!(f, "restarting in {delay:?} (restart #{restart}): {reason}"),
            ChildState::Failed { reason } => write!(f, "FAILED: {reason}"),
            ChildState::Stopped => f.write_str("stopped"),
        }
    }
}

/// One function as the host runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionStatus {
    /// Function (folder) name, e.g. `SyncInboundWorker`.
    pub name: String,
    /// Human summary of the trigger, e.g. `timer 0 */5 * * * *`,
    /// `serviceBus queue sync-inbound`, `http POST /api/webhooks/{connectionId} (proxied)`.
    pub trigger: String,
    /// The handler binary started for it.
    pub executable: PathBuf,
    /// Its process state.
    pub state: ChildState,
}

/// Which trigger started an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// Timer (scheduled, on startup, or fired by hand).
    Timer,
    /// A Service Bus queue message.
    ServiceBus,
    /// An HTTP request (JSON payload mode; proxied requests are not invocations).
    Http,
}

/// Something that happened in the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// The HTTP front door is listening.
    HttpListening {
        /// Bound address.
        addr: SocketAddr,
    },
    /// A handler process was spawned.
    FunctionStarting {
        /// Function name.
        function: String,
        /// Its port.
        port: u16,
        /// OS process id.
        pid: u32,
        /// 1 for the first start.
        attempt: u32,
    },
    /// A handler answered its readiness probe.
    FunctionReady {
        /// Function name.
        function: String,
        /// Its port.
        port: u16,
        /// OS process id.
        pid: u32,
    },
    /// A handler process exited.
    FunctionExited {
        /// Function name.
        function: String,
        /// Exit status text.
        status: String,
    },
    /// A handler exited (or did not come up) and is started again after `delay`.
    FunctionRestarting {
        /// Function name.
        function: String,
        /// What went wrong.
        reason: String,
        /// Restarts since it last counted as healthy (1 = the first).
        restart: u32,
        /// The wait before the new process starts.
        delay: Duration,
    },
    /// The host gave up on a function.
    FunctionFailed {
        /// Function name.
        function: String,
        /// Why.
        reason: String,
    },
    /// An invocation finished.
    Invocation {
        /// Function name.
        function: String,
        /// `X-Azure-Functions-InvocationId`.
        invocation_id: String,
        /// Trigger kind.
        trigger: TriggerKind,
        /// Handler answered 2xx with a parsable body and outputs were applied.
        succeeded: bool,
        /// Failure text, or a short success note.
        detail: String,
    },
    /// A queue message was dead-lettered after its last failed delivery.
    DeadLettered {
        /// Function name.
        function: String,
        /// Queue.
        queue: String,
        /// `MessageId`.
        message_id: String,
    },
}
