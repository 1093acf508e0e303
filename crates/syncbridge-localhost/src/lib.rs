//! A local stand-in for the Azure Functions host, for syncbridge's five custom
//! handlers. It behaves like the real host where the handlers can tell
//! (functions-host.md §1–§5, §7): process launch and readiness, timer and
//! Service Bus triggers, HTTP proxying, output bindings, Service Bus REST sends.
//!
//! # Layout
//!
//! - [`app`]: reads `host.json` and every `<Function>/function.json` (through
//!   `syncbridge-protocol`'s models) into [`app::FunctionSpec`]s.
//! - [`supervisor`]: starts one handler process per function, waits for it,
//!   restarts it with backoff.
//! - `liveness`: which hosts on a data dir are alive (a `flock` per host).
//! - [`timers`] + [`ncrontab`]: timer triggers on 6-field NCRONTAB schedules.
//! - [`servicebus`]: queue triggers from the durable [`LocalQueue`].
//! - [`invoke`]: one invocation: POST, judge, log, apply output bindings.
//! - [`http`]: the front door: proxied and JSON-mode HTTP functions, plus
//!   [`sb_rest`], the Service Bus REST send endpoint.
//! - [`events`]: progress events and status for a CLI.
//! - [`payload`]: hands this crate's types to `syncbridge-protocol`'s payload
//!   builders and its `bindings` (output-binding conversion, `RetryContext`).
//! - [`route`]: HTTP route templates.
//!
//! # Differences from the real host (deliberate)
//!
//! - `enableForwardingHttpRequest` is served like `enableProxyingHttpRequest`
//!   (raw bytes, raw query); the legacy mode's query re-encoding and dropping of
//!   chunked bodies are not reproduced.
//! - Authorization levels and function keys are not enforced (as in Core Tools).
//! - A handler that was up and exits is restarted with a capped exponential
//!   delay, forever ([`supervisor::restart_delay`]); one that never comes up is
//!   reported failed after [`supervisor::MAX_START_ATTEMPTS`] starts
//!   ([`HostEvent::FunctionFailed`]), where the real host would restart itself.
//! - Handlers get a stdin pipe and `SYNCBRIDGE_EXIT_WITH_HOST=stdin`, so they
//!   end with the host even when it is killed.
//! - Peek-locks of a host that died are ended when the next host starts on the
//!   same data dir and no other host runs there (`liveness`): its in-flight
//!   messages are delivered again at once (Service Bus lets them lapse).
//! - Not supported (rejected at start with a clear error): topic triggers/outputs,
//!   batch (`cardinality: many`) triggers, TimeSpan timer schedules, other binding
//!   types. Sessions are accepted but not locked per session.
//!
//! # One binary per function
//!
//! In Azure each syncbridge function is packaged as its own Function App whose
//! host.json `customHandler.description.defaultExecutablePath` is that function's
//! binary. Locally one host.json serves all functions, so the executable for a
//! function is its name in kebab case inside [`HostConfig::bin_dir`]:
//! `SyncScheduler` → `sync-scheduler`, `SyncInboundWorker` → `sync-inbound-worker`,
//! `WebhookReceiver` → `webhook-receiver` (see [`app::executable_name`]). Each
//! function gets its own process and port; `description.arguments` and
//! `workingDirectory` from host.json still apply.
//!
//! # Environment given to every handler
//!
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, `FUNCTIONS_CUSTOMHANDLER_WORKER_ID` (and the
//! legacy `FUNCTIONS_HTTPWORKER_*`), `FUNCTIONS_APP_ROOT_PATH`, plus
//! [`ENV_LOCAL_QUEUE_PATH`] (the queue file, for binaries that send through
//! `LocalQueue`) and [`ENV_LOCAL_HOST_URL`] (the front door, for REST senders),
//! then [`HostConfig::env`] (which may override those two).
//!
//! # Time
//!
//! Schedules, locks, dedup windows and restart delays all read
//! [`HostConfig::clock`]; tests move a `ManualClock`. Only process readiness,
//! idle polling and the waits between settlement retries use real time.

pub mod app;
pub mod events;
pub mod http;
pub mod invoke;
mod liveness;
pub mod ncrontab;
pub mod payload;
pub mod route;
pub mod sb_rest;
pub mod servicebus;
pub mod supervisor;
pub mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncbridge_core::{Clock, SystemClock};
use syncbridge_localqueue::{DEFAULT_MAX_DELIVERY_COUNT, LocalQueueOptions};
pub use syncbridge_protocol::server::ServerLimits;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use app::{AppModel, FunctionSpec, OutputBinding, Trigger, executable_name};
pub use events::{ChildState, FunctionStatus, HostEvent, TriggerKind};
pub use invoke::{InvokeFailure, Invoked};
pub use ncrontab::{Schedule, ScheduleError};
pub use syncbridge_localqueue::LocalQueue;

/// Env var telling handlers where the queue file is.
pub const ENV_LOCAL_QUEUE_PATH: &str = "SYNCBRIDGE_LOCALQUEUE_PATH";
/// Env var telling handlers the host's front-door URL (`http://127.0.0.1:<port>`),
/// e.g. as the Service Bus REST endpoint.
pub const ENV_LOCAL_HOST_URL: &str = "SYNCBRIDGE_LOCALHOST_URL";
/// The queue file's name inside [`HostConfig::data_dir`] (the local queue's).
pub use syncbridge_localqueue::QUEUE_FILE;

/// How to run the local host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Folder with `host.json`; `FUNCTIONS_APP_ROOT_PATH` for the handlers.
    pub app_root: PathBuf,
    /// Folder with `<FunctionName>/function.json`; defaults to `app_root`
    /// (in this repo: `functions/`).
    pub functions_dir: Option<PathBuf>,
    /// Folder with the handler binaries (kebab-case function names).
    pub bin_dir: PathBuf,
    /// Folder for the queue file and other state (created if missing).
    pub data_dir: PathBuf,
    /// Front-door port on 127.0.0.1; 0 picks a free one.
    pub http_port: u16,
    /// Extra environment (app settings) for the handlers; also consulted first for
    /// `%AppSetting%` schedules.
    pub env: BTreeMap<String, String>,
    /// The host's own environment, consulted for `%AppSetting%` schedules
    /// after [`HostConfig::env`] (the handlers inherit it too). Default: this
    /// process's, as the Functions host's app settings are its environment;
    /// tests pass a `syncbridge_env::MapEnv`.
    pub process_env: Arc<dyn syncbridge_env::Env>,
    /// Time source for every time decision.
    pub clock: Arc<dyn Clock>,
    /// Run only these functions (all when `None`).
    pub only: Option<BTreeSet<String>>,
    /// The queues' `MaxDeliveryCount`.
    pub max_delivery_count: u32,
    /// How long a handler may take to answer its readiness probe (host: 30 s).
    pub startup_timeout: Duration,
    /// Peek-lock duration for delivered messages; default: the invocation
    /// timeout plus one minute, so a lock never lapses under a running invocation.
    pub lock_duration: Option<Duration>,
    /// How long the host's queue connection waits for another writer of the
    /// queue file before an operation fails (default 10 s).
    pub queue_busy_timeout: Duration,
    /// Where to publish [`HostEvent`]s (subscribe before `start` to see startup);
    /// a fresh channel when `None`.
    pub events: Option<broadcast::Sender<HostEvent>>,
    /// The front door's header and body read timeouts and connection bound.
    pub http_limits: ServerLimits,
    /// The largest request body the front door lets through (413 above);
    /// default [`http::MAX_BODY_BYTES`].
    pub max_body_bytes: u64,
}

impl HostConfig {
    /// Defaults: any port, system clock, all functions, MaxDeliveryCount 10,
    /// 30 s startup timeout.
    pub fn new(
        app_root: impl Into<PathBuf>,
        bin_dir: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        HostConfig {
            app_root: app_root.into(),
            functions_dir: None,
            bin_dir: bin_dir.into(),
            data_dir: data_dir.into(),
            http_port: 0,
            env: BTreeMap::new(),
            process_env: Arc::new(syncbridge_env::ProcessEnv),
            clock: Arc::new(SystemClock),
            only: None,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            startup_timeout: Duration::from_secs(30),
            lock_duration: None,
            queue_busy_timeout: Duration::from_secs(10),
            events: None,
            http_limits: ServerLimits::DEFAULT,
            max_body_bytes: http::MAX_BODY_BYTES,
        }
    }
}

/// Why the host could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// host.json / function.json missing or invalid, or an unsupported binding.
    #[error("configuration: {0}")]
    Config(String),
    /// File system or socket trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The queue file could not be opened or used.
    #[error("local queue: {0}")]
    Queue(#[from] syncbridge_localqueue::LocalQueueError),
    /// A handler did not come up.
    #[error("function {function} did not start: {reason}")]
    Startup {
        /// Function name.
        function: String,
        /// Why.
        reason: String,
    },
    /// No such function, or not of the needed trigger type.
    #[error("no {kind} function named {name}")]
    UnknownFunction {
        /// Requested name.
        name: String,
        /// Trigger kind required.
        kind: &'static str,
    },
    /// An invocation failed.
    #[error(transparent)]
    Invocation(#[from] InvokeFailure),
}

/// Shared state of a running host (internal).
pub(crate) struct HostState {
    pub specs: Vec<Arc<FunctionSpec>>,
    pub children: BTreeMap<String, watch::Receiver<ChildState>>,
    pub timer_locks: BTreeMap<String, tokio::sync::Mutex<()>>,
    pub queue: LocalQueue,
    pub client: reqwest::Client,
    pub events: broadcast::Sender<HostEvent>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: watch::Receiver<bool>,
    pub route_prefix: String,
    pub http_addr: SocketAddr,
    pub invocation_timeout: Duration,
    pub lock_duration: Duration,
    pub max_concurrent_calls: usize,
    pub startup_timeout: Duration,
    /// This host's mark as alive on the data dir (see [`liveness`]).
    pub _claim: liveness::HostClaim,
    pub max_body_bytes: u64,
}

impl HostState {
    /// Waits (up to the startup timeout) for `function`'s handler to be ready.
    pub(crate) async fn wait_ready(&self, function: &str) -> Result<u16, String> {
        let Some(rx) = self.children.get(function) else {
            return Err(format!("function {function} is not running"));
        };
        let mut rx = rx.clone();
        let wait = rx.wait_for(|s| {
            matches!(
                s,
                ChildState::Ready { .. } | ChildState::Failed { .. } | ChildState::Stopped
            )
        });
        match tokio::time::timeout(self.startup_timeout, wait).await {
            Ok(Ok(state)) => state
                .ready_port()
                .ok_or_else(|| format!("handler for {function} is {}", *state)),
            Ok(Err(_)) => Err(format!("handler for {function} is gone")),
            Err(_) => Err(format!("handler for {function} is not ready")),
        }
    }

    pub(crate) fn has_failed(&self, function: &str) -> bool {
        self.children.get(function).is_some_and(|rx| {
            matches!(
                *rx.borrow(),
                ChildState::Failed { .. } | ChildState::Stopped
            )
        })
    }

    pub(crate) fn timer_lock(&self, function: &str) -> &tokio::sync::Mutex<()> {
        &self.timer_locks[function]
    }
}

/// The local Functions host.
#[derive(Debug)]
pub struct LocalHost;

impl LocalHost {
    /// Loads the app, opens the queue, binds the front door, starts every handler
    /// and waits until each answers; then starts timers (running `runOnStartup`
    /// ones) and queue delivery. Fails if the config is invalid or a handler does
    /// not come up (everything started so far is stopped again).
    pub async fn start(config: HostConfig) -> Result<LocalHostHandle, HostError> {
        let app = app::load(&config)?;
        let (queue_path, queue) = open_queue(&config, &app)?;
        let claim = take_back_locks(&config.data_dir, &queue)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.http_port))
            .await
            .map_err(|source| HostError::Io {
                context: format!("binding 127.0.0.1:{}", config.http_port),
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| HostError::Io {
            context: "reading the bound address".into(),
            source,
        })?;
        let events = config
            .events
            .clone()
            .unwrap_or_else(|| broadcast::channel(1024).0);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let client = invoke::handler_client();

        let mut env = BTreeMap::from([
            (
                ENV_LOCAL_QUEUE_PATH.to_string(),
                queue_path.display().to_string(),
            ),
            (
                ENV_LOCAL_HOST_URL.to_string(),
                format!("http://{http_addr}"),
            ),
        ]);
        env.extend(config.env.clone());

        let Supervised {
            tasks,
            children,
            timer_locks,
            status_rows,
        } = supervise_all(&app, &config, &env, &client, &events, &shutdown_rx);
        let invocation_timeout = app.function_timeout + Duration::from_secs(60);
        let host = Arc::new(HostState {
            specs: app.functions.iter().cloned().map(Arc::new).collect(),
            children,
            timer_locks,
            queue: queue.clone(),
            client,
            events: events.clone(),
            clock: config.clock.clone(),
            shutdown: shutdown_rx.clone(),
            route_prefix: app.route_prefix.clone(),
            http_addr,
            invocation_timeout,
            lock_duration: config
                .lock_duration
                .unwrap_or(invocation_timeout + Duration::from_secs(60)),
            max_concurrent_calls: app.max_concurrent_calls,
            startup_timeout: config.startup_timeout,
            _claim: claim,
            max_body_bytes: config.max_body_bytes,
        });
        let mut handle = LocalHostHandle {
            http_addr,
            queue,
            host: host.clone(),
            shutdown_tx,
            tasks: Mutex::new(tasks),
            status_rows,
        };

        // Front door first, so handlers can call it while they start.
        let mut http_shutdown = shutdown_rx.clone();
        let server = syncbridge_protocol::server::serve(
            listener,
            http::router(host.clone()),
            config.http_limits,
            async move {
                crate::until_shutdown(&mut http_shutdown).await;
            },
        );
        handle.push_task(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("front door stopped: {e}");
            }
        }));
        let _ = events.send(HostEvent::HttpListening { addr: http_addr });
        tracing::info!(%http_addr, "local host listening");

        // Every handler must come up (or the start fails).
        for spec in &host.specs {
            if let Err(reason) = host.wait_ready(&spec.name).await {
                handle.shutdown().await;
                return Err(HostError::Startup {
                    function: spec.name.clone(),
                    reason,
                });
            }
        }
        start_triggers(&host, &mut handle);
        Ok(handle)
    }
}

/// Creates the data dir and opens the durable queue in it, declaring every
/// queue the app's triggers name.
fn open_queue(
    config: &HostConfig,
    app: &app::AppModel,
) -> Result<(PathBuf, LocalQueue), HostError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| HostError::Io {
        context: format!("creating {}", config.data_dir.display()),
        source,
    })?;
    let queue_path = syncbridge_localqueue::queue_path(&config.data_dir);
    let queue = LocalQueue::open_with(
        &queue_path,
        LocalQueueOptions {
            max_delivery_count: config.max_delivery_count,
            busy_timeout: config.queue_busy_timeout,
            ..LocalQueueOptions::with_clock(config.clock.clone())
        },
    )?;
    for name in app.queue_names() {
        queue.declare_queue(&name)?;
    }
    Ok((queue_path, queue))
}

/// Every function's supervisor task, its state channel, timer lock and status row.
struct Supervised {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    children: BTreeMap<String, watch::Receiver<ChildState>>,
    timer_locks: BTreeMap<String, tokio::sync::Mutex<()>>,
    status_rows: Vec<(String, String, PathBuf)>,
}

/// Starts one supervisor per function (each launches and restarts its handler).
fn supervise_all(
    app: &app::AppModel,
    config: &HostConfig,
    env: &BTreeMap<String, String>,
    client: &reqwest::Client,
    events: &broadcast::Sender<HostEvent>,
    shutdown_rx: &watch::Receiver<bool>,
) -> Supervised {
    let mut s = Supervised {
        tasks: Vec::new(),
        children: BTreeMap::new(),
        timer_locks: BTreeMap::new(),
        status_rows: Vec::new(),
    };
    for spec in &app.functions {
        let (state_tx, state_rx) = watch::channel(ChildState::Pending);
        let launch = supervisor::LaunchSpec {
            function: spec.name.clone(),
            executable: spec.executable.clone(),
            arguments: app.arguments.clone(),
            working_dir: app.working_dir.clone(),
            app_root: config.app_root.clone(),
            env: env.clone(),
            startup_timeout: config.startup_timeout,
        };
        s.tasks.push(tokio::spawn(supervisor::supervise(
            launch,
            config.clock.clone(),
            client.clone(),
            state_tx,
            events.clone(),
            shutdown_rx.clone(),
        )));
        s.status_rows.push((
            spec.name.clone(),
            spec.trigger_summary(&app.route_prefix),
            spec.executable.clone(),
        ));
        s.children.insert(spec.name.clone(), state_rx);
        s.timer_locks
            .insert(spec.name.clone(), tokio::sync::Mutex::new(()));
    }
    s
}

/// Starts the timers and the queue delivery, once every handler is up.
fn start_triggers(host: &Arc<HostState>, handle: &mut LocalHostHandle) {
    let started = host.clock.now();
    for spec in &host.specs {
        match spec.trigger {
            Trigger::Timer { .. } => handle.push_task(tokio::spawn(timers::run(
                host.clone(),
                spec.clone(),
                started,
            ))),
            Trigger::ServiceBus { .. } => {
                handle.push_task(tokio::spawn(servicebus::run(host.clone(), spec.clone())))
            }
            Trigger::Http { .. } => {}
        }
    }
}

/// Marks this host alive on `data_dir` and, when no other host is running
/// there, ends the locks a dead host left on its in-flight messages, so they
/// are delivered again now rather than when the locks would have expired.
fn take_back_locks(
    data_dir: &std::path::Path,
    queue: &LocalQueue,
) -> Result<liveness::HostClaim, HostError> {
    let id = syncbridge_localqueue::new_uuid();
    let (claim, others) = liveness::claim(data_dir, &id).map_err(|source| HostError::Io {
        context: format!(
            "registering the host in {}",
            data_dir.join(liveness::HOSTS_DIR).display()
        ),
        source,
    })?;
    if others.alive > 0 {
        tracing::info!(
            hosts = others.alive,
            "other local hosts run on this data dir; the messages they hold stay theirs"
        );
        return Ok(claim);
    }
    let taken = queue.expire_all_locks()?;
    if taken > 0 {
        tracing::warn!(
            messages = taken,
            "took back message(s) locked by a host that is no longer running; they are delivered again"
        );
    }
    Ok(claim)
}

/// A running host. Dropping it signals shutdown (children die with their
/// supervisors); prefer [`LocalHostHandle::shutdown`] to wait for it.
pub struct LocalHostHandle {
    /// The front door (`http://<http_addr>/api/...`, `POST /<queue>/messages`).
    pub http_addr: SocketAddr,
    /// The queue the host delivers from (send to it to trigger workers).
    pub queue: LocalQueue,
    host: Arc<HostState>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    status_rows: Vec<(String, String, PathBuf)>,
}

impl std::fmt::Debug for LocalHostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHostHandle")
            .field("http_addr", &self.http_addr)
            .field("queue", &self.queue)
            .finish()
    }
}

impl LocalHostHandle {
    fn push_task(&mut self, task: JoinHandle<()>) {
        self.tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Fires timer function `name` now (not past due) and waits for the outcome.
    pub async fn fire_timer(&self, name: &str) -> Result<Invoked, HostError> {
        let spec = self
            .host
            .specs
            .iter()
            .find(|s| s.name == name && matches!(s.trigger, Trigger::Timer { .. }))
            .ok_or_else(|| HostError::UnknownFunction {
                name: name.to_string(),
                kind: "timer",
            })?;
        Ok(timers::fire(&self.host, spec, false, None).await?)
    }

    /// A snapshot of every function: trigger, executable, process state and port.
    pub fn status(&self) -> Vec<FunctionStatus> {
        self.status_rows
            .iter()
            .map(|(name, trigger, exe)| FunctionStatus {
                name: name.clone(),
                trigger: trigger.clone(),
                executable: exe.clone(),
                state: self
                    .host
                    .children
                    .get(name)
                    .map_or(ChildState::Pending, |rx| rx.borrow().clone()),
            })
            .collect()
    }

    /// The handler port of `function` while it is up.
    pub fn function_port(&self, function: &str) -> Option<u16> {
        self.host
            .children
            .get(function)
            .and_then(|rx| rx.borrow().ready_port())
    }

    /// Subscribes to host events from now on.
    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.host.events.subscribe()
    }

    /// Stops delivery and timers, abandons in-flight messages, kills the handlers
    /// and closes the front door; returns when all of that is done.
    pub async fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for LocalHostHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub(crate) async fn until_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
