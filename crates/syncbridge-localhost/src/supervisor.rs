//! Starting, watching and restarting one handler process, the way the Functions
//! host does (functions-host.md §2):
//!
//! - a free TCP port per start, passed as `FUNCTIONS_CUSTOMHANDLER_PORT` (and the
//!   legacy `FUNCTIONS_HTTPWORKER_PORT`), with `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`,
//!   `FUNCTIONS_APP_ROOT_PATH` and the configured extra environment;
//! - readiness = polling `http://127.0.0.1:<port>/` every 25 ms until *any* HTTP
//!   response; socket errors mean "keep waiting"; a start that does not answer
//!   within the initialization timeout counts as an error;
//! - an exited process is restarted; more than 3 errors inside 30 minutes (by the
//!   injected clock) and the supervisor gives up and reports the function failed;
//! - children are spawned with `kill_on_drop` and killed on shutdown.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use syncbridge_core::{Clock, Timestamp};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{broadcast, watch};

use crate::events::{ChildState, HostEvent};

/// Readiness polling interval (the host's `IsWorkerReady` loop).
pub const READINESS_POLL: Duration = Duration::from_millis(25);
/// Errors tolerated inside [`ERROR_WINDOW`] before giving up (the host's limit).
pub const MAX_ERRORS: usize = 3;
/// The window in which process errors are counted.
pub const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Everything needed to launch one handler process.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    pub function: String,
    pub executable: PathBuf,
    pub arguments: Vec<String>,
    pub working_dir: PathBuf,
    pub app_root: PathBuf,
    pub env: BTreeMap<String, String>,
    pub startup_timeout: Duration,
}

/// Picks a currently free loopback port (the host does the same; a race with
/// another process grabbing it in between is possible and ends as a start error).
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Runs the supervision loop until shutdown or give-up; publishes state changes
/// on `state` and `events`.
pub(crate) async fn supervise(
    spec: LaunchSpec,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    state: watch::Sender<ChildState>,
    events: broadcast::Sender<HostEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = spec.function.clone();
    let mut errors: VecDeque<Timestamp> = VecDeque::new();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let failure = match run_once(&spec, attempt, &client, &state, &events, &mut shutdown).await
        {
            RunEnd::Shutdown => {
                let _ = state.send(ChildState::Stopped);
                return;
            }
            RunEnd::Fatal(reason) => {
                fail(&name, reason, &state, &events);
                return;
            }
            RunEnd::Error(reason) => reason,
        };
        let now = clock.now();
        errors.push_back(now);
        while errors
            .front()
            .is_some_and(|t| now.since(*t) >= ERROR_WINDOW)
        {
            errors.pop_front();
        }
        if errors.len() > MAX_ERRORS {
            fail(
                &name,
                format!(
                    "{failure}; more than {MAX_ERRORS} errors within {} minutes, giving up",
                    ERROR_WINDOW.as_secs() / 60
                ),
                &state,
                &events,
            );
            return;
        }
        tracing::warn!(function = %name, attempt, "{failure}; restarting");
        let _ = state.send(ChildState::Restarting { reason: failure });
        if *shutdown.borrow() {
            let _ = state.send(ChildState::Stopped);
            return;
        }
    }
}

fn fail(
    name: &str,
    reason: String,
    state: &watch::Sender<ChildState>,
    events: &broadcast::Sender<HostEvent>,
) {
    tracing::error!(function = %name, "handler failed: {reason}");
    let _ = state.send(ChildState::Failed {
        reason: reason.clone(),
    });
    let _ = events.send(HostEvent::FunctionFailed {
        function: name.to_string(),
        reason,
    });
}

enum RunEnd {
    Shutdown,
    /// Counts towards the restart limit.
    Error(String),
    /// Restarting cannot help (e.g. the executable does not exist).
    Fatal(String),
}

async fn run_once(
    spec: &LaunchSpec,
    attempt: u32,
    client: &reqwest::Client,
    state: &watch::Sender<ChildState>,
    events: &broadcast::Sender<HostEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> RunEnd {
    let name = &spec.function;
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return RunEnd::Error(format!("no free port: {e}")),
    };
    let worker_id = syncbridge_localqueue::new_uuid();
    let mut cmd = Command::new(&spec.executable);
    cmd.args(&spec.arguments)
        .current_dir(&spec.working_dir)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &spec.app_root)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if attempt == 1 && e.kind() == std::io::ErrorKind::NotFound => {
            return RunEnd::Fatal(format!(
                "executable {} not found (build it, or point bin_dir at it)",
                spec.executable.display()
            ));
        }
        Err(e) => {
            return RunEnd::Error(format!(
                "could not start {}: {e}",
                spec.executable.display()
            ));
        }
    };
    let pid = child.id().unwrap_or(0);
    let _ = state.send(ChildState::Starting { port, pid, attempt });
    let _ = events.send(HostEvent::FunctionStarting {
        function: name.clone(),
        port,
        pid,
        attempt,
    });
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(name.clone(), out, false));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(name.clone(), err, true));
    }

    // Readiness: any HTTP answer on `/`.
    let url = format!("http://127.0.0.1:{port}/");
    let ready = async {
        loop {
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok() {
                return;
            }
            tokio::time::sleep(READINESS_POLL).await;
        }
    };
    tokio::select! {
        r = tokio::time::timeout(spec.startup_timeout, ready) => {
            if r.is_err() {
                let _ = child.kill().await;
                return RunEnd::Error(format!(
                    "handler did not answer on {url} within {:?}",
                    spec.startup_timeout
                ));
            }
        }
        status = child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let _ = events.send(HostEvent::FunctionExited { function: name.clone(), status: status.clone() });
            return RunEnd::Error(format!("handler exited before it listened on port {port} ({status})"));
        }
        _ = crate::until_shutdown(shutdown) => {
            let _ = child.kill().await;
            return RunEnd::Shutdown;
        }
    }
    let _ = state.send(ChildState::Ready { port, pid });
    let _ = events.send(HostEvent::FunctionReady {
        function: name.clone(),
        port,
        pid,
    });
    tracing::info!(function = %name, port, pid, "handler ready");

    tokio::select! {
        status = child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let _ = events.send(HostEvent::FunctionExited { function: name.clone(), status: status.clone() });
            RunEnd::Error(format!("handler process exited ({status})"))
        }
        _ = crate::until_shutdown(shutdown) => {
            let _ = child.kill().await;
            RunEnd::Shutdown
        }
    }
}

async fn forward_lines(function: String, stream: impl tokio::io::AsyncRead + Unpin, stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if stderr {
            tracing::warn!(target: "syncbridge_localhost::handler", function = %function, "{line}");
        } else {
            tracing::info!(target: "syncbridge_localhost::handler", function = %function, "{line}");
        }
    }
}
