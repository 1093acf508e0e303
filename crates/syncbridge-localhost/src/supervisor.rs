//! Starting, watching and restarting one handler process, the way the Functions
//! host does (functions-host.md §2):
//!
//! - a free TCP port per start, passed as `FUNCTIONS_CUSTOMHANDLER_PORT` (and the
//!   legacy `FUNCTIONS_HTTPWORKER_PORT`), with `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`,
//!   `FUNCTIONS_APP_ROOT_PATH` and the configured extra environment;
//! - readiness = polling `http://127.0.0.1:<port>/` every 25 ms until *any* HTTP
//!   response; socket errors mean "keep waiting"; a start that does not answer
//!   within the initialization timeout counts as an error;
//! - a handler that never came up is started [`MAX_START_ATTEMPTS`] times, then
//!   reported failed (a broken build or setting: restarting cannot help);
//! - a handler that was up and exits is restarted, forever, after a capped
//!   exponential delay ([`restart_delay`], measured on the injected clock), with
//!   a log line and a [`HostEvent::FunctionRestarting`] per restart; the delay
//!   starts over once a handler stayed up for [`HEALTHY_AFTER`];
//! - children are spawned with `kill_on_drop`, killed on shutdown, and get a
//!   stdin pipe with [`ENV_EXIT_WITH_HOST`]`=stdin`: the pipe closes when the
//!   host dies however it dies (`kill -9` too), and a handler that honours the
//!   setting exits on that end-of-file instead of living on as an orphan.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use syncbridge_protocol::env as host_env;

use syncbridge_core::{Clock, Timestamp};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, watch};

use crate::events::{ChildState, HostEvent};

/// Readiness polling interval (the host's `IsWorkerReady` loop).
pub const READINESS_POLL: Duration = Duration::from_millis(25);
/// Starts of a handler that never became ready before it is reported failed.
pub const MAX_START_ATTEMPTS: u32 = 4;
/// Delay before the first restart of a handler that was up.
pub const RESTART_BASE: Duration = Duration::from_secs(1);
/// Longest delay between restarts.
pub const RESTART_MAX: Duration = Duration::from_secs(60);
/// A handler up for this long counts as healthy: its next crash restarts after [`RESTART_BASE`].
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10 * 60);
/// Env var given to every handler: `stdin` = exit when stdin reaches end-of-file
/// (the host holds the other end of the pipe).
pub const ENV_EXIT_WITH_HOST: &str = "SYNCBRIDGE_EXIT_WITH_HOST";
/// Longest real-time wait between looks at the clock while a restart waits.
const SLICE: Duration = Duration::from_millis(100);

/// The delay before restart number `restart` (1 = the first after a crash) of a
/// handler that was up: 1 s, 2 s, 4 s … doubling, at most [`RESTART_MAX`]. Pure.
pub fn restart_delay(restart: u32) -> Duration {
    let doublings = restart.saturating_sub(1).min(16);
    (RESTART_BASE * 2u32.pow(doublings)).min(RESTART_MAX)
}

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
    let mut attempt = 0u32;
    let mut ever_ready = false;
    // Restarts since the handler last counted as healthy.
    let mut restarts = 0u32;
    loop {
        attempt += 1;
        let (failure, ready_at) = match run_once(
            &spec,
            attempt,
            &client,
            &clock,
            &state,
            &events,
            &mut shutdown,
        )
        .await
        {
            RunEnd::Shutdown => {
                let _ = state.send(ChildState::Stopped);
                return;
            }
            RunEnd::Fatal(reason) => {
                fail(&name, reason, &state, &events);
                return;
            }
            RunEnd::Error { reason, ready_at } => (reason, ready_at),
        };
        ever_ready |= ready_at.is_some();
        if !ever_ready && attempt >= MAX_START_ATTEMPTS {
            fail(
                &name,
                format!("{failure}; it never came up in {attempt} starts, giving up"),
                &state,
                &events,
            );
            return;
        }
        let now = clock.now();
        let (restart, delay) = next_restart(restarts, ever_ready, ready_at, now);
        restarts = restart;
        announce_restart(&name, failure, restarts, delay, &state, &events);
        if !wait_until(&*clock, now.add(delay), &mut shutdown).await {
            let _ = state.send(ChildState::Stopped);
            return;
        }
    }
}

/// The restart count and delay after a process ended at `now`, which became
/// ready at `ready_at` (if it did): a handler that never came up is retried
/// at once (start-up is waiting on it); one that was up waits
/// [`restart_delay`], counted from 1 again if it had stayed up for
/// [`HEALTHY_AFTER`]. Pure.
fn next_restart(
    restarts: u32,
    ever_ready: bool,
    ready_at: Option<Timestamp>,
    now: Timestamp,
) -> (u32, Duration) {
    let healthy = ready_at.is_some_and(|t| now.since(t) >= HEALTHY_AFTER);
    let restarts = if healthy { 1 } else { restarts + 1 };
    let delay = if ever_ready {
        restart_delay(restarts)
    } else {
        Duration::ZERO
    };
    (restarts, delay)
}

/// One log line, the state and an event per restart.
fn announce_restart(
    name: &str,
    failure: String,
    restart: u32,
    delay: Duration,
    state: &watch::Sender<ChildState>,
    events: &broadcast::Sender<HostEvent>,
) {
    tracing::warn!(
        function = %name, restart, delay_secs = delay.as_secs_f64(),
        "{failure}; restart #{restart} in {delay:?}"
    );
    let _ = state.send(ChildState::Restarting {
        reason: failure.clone(),
        restart,
        delay,
    });
    let _ = events.send(HostEvent::FunctionRestarting {
        function: name.to_string(),
        reason: failure,
        restart,
        delay,
    });
}

/// Waits until `clock` reaches `t`; false on shutdown.
async fn wait_until(clock: &dyn Clock, t: Timestamp, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let now = clock.now();
        if now >= t {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(t.since(now).min(SLICE)) => {}
            _ = crate::until_shutdown(shutdown) => return false,
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
    /// The process exited or never became ready; it is restarted.
    Error {
        reason: String,
        /// When it became ready, if it did.
        ready_at: Option<Timestamp>,
    },
    /// Restarting cannot help (e.g. the executable does not exist).
    Fatal(String),
}

impl RunEnd {
    fn before_ready(reason: String) -> Self {
        RunEnd::Error {
            reason,
            ready_at: None,
        }
    }
}

async fn run_once(
    spec: &LaunchSpec,
    attempt: u32,
    client: &reqwest::Client,
    clock: &Arc<dyn Clock>,
    state: &watch::Sender<ChildState>,
    events: &broadcast::Sender<HostEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> RunEnd {
    let name = &spec.function;
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return RunEnd::before_ready(format!("no free port: {e}")),
    };
    let mut child = match spawn_child(spec, attempt, port) {
        Ok(c) => c,
        Err(end) => return end,
    };
    // The host's end of the lifeline: held for the child's life, closed by the
    // kernel if the host dies.
    let _lifeline = child.stdin.take();
    let pid = child.id().unwrap_or(0);
    let _ = state.send(ChildState::Starting { port, pid, attempt });
    let _ = events.send(HostEvent::FunctionStarting {
        function: name.clone(),
        port,
        pid,
        attempt,
    });
    let last_words = Arc::new(std::sync::Mutex::new(LastWords::default()));
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(name.clone(), out, None));
    }
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(forward_lines(name.clone(), err, Some(last_words.clone()))));
    let mut running = Running {
        child,
        port,
        stderr,
        last_words,
    };
    if let Err(end) = await_ready(spec, client, events, shutdown, &mut running).await {
        return end;
    }
    let mut child = running.child;
    let ready_at = clock.now();
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
            RunEnd::Error { reason: format!("handler process exited ({status})"), ready_at: Some(ready_at) }
        }
        _ = crate::until_shutdown(shutdown) => {
            let _ = child.kill().await;
            RunEnd::Shutdown
        }
    }
}

/// Starts the handler process on `port`, as the Functions host would.
fn spawn_child(spec: &LaunchSpec, attempt: u32, port: u16) -> Result<Child, RunEnd> {
    let worker_id = syncbridge_localqueue::new_uuid();
    let mut cmd = Command::new(&spec.executable);
    cmd.args(&spec.arguments)
        .current_dir(&spec.working_dir)
        .env(host_env::PORT_ENV, port.to_string())
        .env(host_env::WORKER_ID_ENV, &worker_id)
        .env(host_env::HTTPWORKER_PORT_ENV, port.to_string())
        .env(host_env::HTTPWORKER_ID_ENV, &worker_id)
        .env(host_env::APP_ROOT_ENV, &spec.app_root)
        .envs(&spec.env)
        .env(ENV_EXIT_WITH_HOST, "stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match cmd.spawn() {
        Ok(c) => Ok(c),
        Err(e) if attempt == 1 && e.kind() == std::io::ErrorKind::NotFound => {
            Err(RunEnd::Fatal(format!(
                "executable {} not found (build it, or point bin_dir at it)",
                spec.executable.display()
            )))
        }
        Err(e) => Err(RunEnd::before_ready(format!(
            "could not start {}: {e}",
            spec.executable.display()
        ))),
    }
}

/// A started handler process, before it is ready.
struct Running {
    child: Child,
    port: u16,
    /// The task forwarding its stderr.
    stderr: Option<tokio::task::JoinHandle<()>>,
    last_words: Arc<std::sync::Mutex<LastWords>>,
}

/// Waits until the handler answers any HTTP request on `/`; `Err` with how
/// the run ends when it does not within the start-up timeout, exits first
/// (quoting its own start-up error) or the host shuts down.
async fn await_ready(
    spec: &LaunchSpec,
    client: &reqwest::Client,
    events: &broadcast::Sender<HostEvent>,
    shutdown: &mut watch::Receiver<bool>,
    r: &mut Running,
) -> Result<(), RunEnd> {
    let (name, port) = (&spec.function, r.port);
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
        t = tokio::time::timeout(spec.startup_timeout, ready) => {
            if t.is_err() {
                let _ = r.child.kill().await;
                return Err(RunEnd::before_ready(format!(
                    "handler did not answer on {url} within {:?}",
                    spec.startup_timeout
                )));
            }
            Ok(())
        }
        status = r.child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let _ = events.send(HostEvent::FunctionExited { function: name.clone(), status: status.clone() });
            // The handler's own start-up error (e.g. a setting it refused)
            // is what the person needs: quote it in the reason.
            if let Some(reader) = r.stderr.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            }
            let said = r.last_words.lock().unwrap_or_else(|p| p.into_inner()).quote();
            let tail = if said.is_empty() { String::new() } else { format!(": {said}") };
            Err(RunEnd::before_ready(format!("handler exited before it listened on port {port} ({status}){tail}")))
        }
        _ = crate::until_shutdown(shutdown) => {
            let _ = r.child.kill().await;
            Err(RunEnd::Shutdown)
        }
    }
}

/// How many lines a start-up failure quotes.
const QUOTED: usize = 4;

/// What a handler said on stderr, for a start-up failure to quote: its
/// error as `main` printed it (`Error: …` and the lines after it, up to a
/// backtrace), else its last few lines.
#[derive(Debug, Default)]
struct LastWords {
    recent: VecDeque<String>,
    error: Vec<String>,
    in_error: bool,
}

impl LastWords {
    fn push(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if line.starts_with("Error: ") {
            self.error = vec![line.to_string()];
            self.in_error = true;
        } else if self.in_error {
            if line.trim_start().starts_with("Stack backtrace:") || self.error.len() == QUOTED {
                self.in_error = false;
            } else {
                self.error.push(line.to_string());
            }
        }
        if self.recent.len() == QUOTED {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_string());
    }

    fn quote(&self) -> String {
        let lines: Vec<&str> = if self.error.is_empty() {
            self.recent.iter().map(String::as_str).collect()
        } else {
            self.error.iter().map(String::as_str).collect()
        };
        lines.join(" | ")
    }
}

/// Forwards a handler's output lines to the log; stderr lines (`keep`) are
/// also kept, the last [`LAST_WORDS`], for a start-up failure to quote.
async fn forward_lines(
    function: String,
    stream: impl tokio::io::AsyncRead + Unpin,
    keep: Option<Arc<std::sync::Mutex<LastWords>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(keep) = &keep {
            tracing::warn!(target: "syncbridge_localhost::handler", function = %function, "{line}");
            keep.lock().unwrap_or_else(|p| p.into_inner()).push(&line);
        } else {
            tracing::info!(target: "syncbridge_localhost::handler", function = %function, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restart delays double from 1 s and stop at 60 s.
    #[test]
    fn restart_delays() {
        let secs: Vec<u64> = (1..=9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_delay(u32::MAX), RESTART_MAX);
    }

    /// Never up: at once; up briefly: the count grows; up for HEALTHY_AFTER: back to 1 s.
    #[test]
    fn next_restart_table() {
        let t0 = Timestamp::from_millis(1_000_000);
        let brief = Some(t0);
        let later = t0.add(Duration::from_secs(5));
        assert_eq!(next_restart(0, false, None, t0), (1, Duration::ZERO));
        assert_eq!(
            next_restart(0, true, brief, later),
            (1, Duration::from_secs(1))
        );
        assert_eq!(
            next_restart(3, true, brief, later),
            (4, Duration::from_secs(8))
        );
        assert_eq!(
            next_restart(3, true, None, later),
            (4, Duration::from_secs(8))
        );
        let long = t0.add(HEALTHY_AFTER);
        assert_eq!(
            next_restart(9, true, brief, long),
            (1, Duration::from_secs(1))
        );
    }

    /// A handler's `Error:` line is quoted without the backtrace after it
    /// (however long); without one, the last lines are.
    #[test]
    fn the_handlers_error_is_quoted() {
        let mut w = LastWords::default();
        w.push("a log line");
        w.push("Error: setting SYNCBRIDGE_LEASE_SECS: \"abc\" is not a whole number");
        w.push("");
        w.push("Stack backtrace:");
        for i in 0..100 {
            w.push(&format!("   {i}: frame"));
        }
        assert_eq!(
            w.quote(),
            "Error: setting SYNCBRIDGE_LEASE_SECS: \"abc\" is not a whole number"
        );
        let mut plain = LastWords::default();
        for i in 0..6 {
            plain.push(&format!("line {i}"));
        }
        assert_eq!(plain.quote(), "line 2 | line 3 | line 4 | line 5");
    }
}
