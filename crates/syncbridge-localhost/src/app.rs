//! The app as the host sees it: `host.json` plus one `<FunctionName>/function.json`
//! per function (§1, §3), turned into [`FunctionSpec`]s the rest of the host runs.
//! The JSON shapes themselves are `syncbridge-protocol`'s models
//! ([`HostJson`], [`FunctionJson`]); `%AppSetting%` references (schedules, queue
//! names, arguments) resolve from [`HostConfig::env`], then the process environment.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use syncbridge_env::Env as _;

use syncbridge_protocol::{
    Binding, BindingKind, Cardinality, DataType, Direction, FunctionJson, HostJson, HttpMode,
    RetryPolicy, expand_app_settings,
};

use crate::ncrontab::Schedule;
use crate::route::RouteTemplate;
use crate::{HostConfig, HostError};

/// What starts a function.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// `timerTrigger`.
    Timer {
        /// Binding name (the `Data` key).
        binding: String,
        /// Parsed schedule (app-setting references resolved).
        schedule: Schedule,
        /// `runOnStartup`.
        run_on_startup: bool,
        /// The function-level `retry` policy (runtime retries exist for timers, §1b).
        retry: Option<RetryPolicy>,
    },
    /// `serviceBusTrigger` on a queue.
    ServiceBus {
        /// Binding name (the `Data` key).
        binding: String,
        /// `queueName`.
        queue: String,
        /// `dataType` (`None` = omitted, which the host treats as string).
        data_type: Option<DataType>,
    },
    /// `httpTrigger`.
    Http {
        /// Binding name (the `Data` key).
        binding: String,
        /// `route`, or the function name.
        route: RouteTemplate,
        /// Allowed methods, upper case; empty = all.
        methods: Vec<String>,
    },
}

/// An output binding the host applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputBinding {
    /// `serviceBus` out: each value becomes a message on `queue`.
    ServiceBus {
        /// Binding name (`Outputs` key, or `$return`).
        name: String,
        /// `queueName`.
        queue: String,
    },
    /// `http` out: the response of a non-forwarded HTTP function.
    Http {
        /// Binding name (`res` by convention, or `$return`).
        name: String,
    },
}

/// One function, ready to run.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Folder name = function name = invocation path.
    pub name: String,
    /// The handler binary for it.
    pub executable: PathBuf,
    /// Its trigger.
    pub trigger: Trigger,
    /// Its output bindings (other than the HTTP one).
    pub outputs: Vec<OutputBinding>,
    /// Name of its `http` output binding, if any.
    pub http_output: Option<String>,
    /// HTTP-only with forwarding/proxying on (§4d): requests are proxied raw.
    pub http_only: bool,
}

impl FunctionSpec {
    /// One-line description of the trigger, for status output.
    pub fn trigger_summary(&self, route_prefix: &str) -> String {
        match &self.trigger {
            Trigger::Timer {
                schedule,
                run_on_startup,
                ..
            } => {
                format!(
                    "timer {schedule}{}",
                    if *run_on_startup {
                        " (runOnStartup)"
                    } else {
                        ""
                    }
                )
            }
            Trigger::ServiceBus { queue, .. } => format!("serviceBus queue {queue}"),
            Trigger::Http { route, methods, .. } => {
                let prefix = route_prefix.trim_matches('/');
                let path = if prefix.is_empty() {
                    format!("/{}", route.as_str())
                } else {
                    format!("/{prefix}/{}", route.as_str())
                };
                let methods = if methods.is_empty() {
                    "ANY".to_string()
                } else {
                    methods.join(",")
                };
                let mode = if self.http_only {
                    "proxied"
                } else {
                    "JSON payload"
                };
                format!("http {methods} {path} ({mode})")
            }
        }
    }
}

/// The whole app.
#[derive(Debug, Clone)]
pub struct AppModel {
    /// Functions to run (after [`HostConfig::only`]).
    pub functions: Vec<FunctionSpec>,
    /// `extensions.http.routePrefix` (default `api`).
    pub route_prefix: String,
    /// `extensions.serviceBus.maxConcurrentCalls` (default 16 × cores).
    pub max_concurrent_calls: usize,
    /// `functionTimeout` (default 30 min, the Premium/Flex default).
    pub function_timeout: Duration,
    /// `customHandler.description.arguments` (`%Setting%` expanded).
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory` resolved against the app root.
    pub working_dir: PathBuf,
}

impl AppModel {
    /// Every queue a function triggers on or outputs to.
    pub fn queue_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for f in &self.functions {
            if let Trigger::ServiceBus { queue, .. } = &f.trigger {
                names.insert(queue.clone());
            }
            for o in &f.outputs {
                if let OutputBinding::ServiceBus { queue, .. } = o {
                    names.insert(queue.clone());
                }
            }
        }
        names
    }
}

/// The local executable name for a function: its name in kebab case
/// (`SyncInboundWorker` → `sync-inbound-worker`; `HTTPThing` → `http-thing`).
pub fn executable_name(function: &str) -> String {
    let chars: Vec<char> = function.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == ' ' || c == '-' {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if (prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower))
                && !out.ends_with('-')
            {
                out.push('-');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn lookup_setting(config: &HostConfig, name: &str) -> Option<String> {
    config
        .env
        .get(name)
        .cloned()
        .or_else(|| config.process_env.var(name))
}

fn expand(config: &HostConfig, text: &str) -> Result<String, String> {
    expand_app_settings(text, |k| lookup_setting(config, k)).map_err(|e| e.to_string())
}

/// Reads host.json and the function folders.
pub fn load(config: &HostConfig) -> Result<AppModel, HostError> {
    let host_path = config.app_root.join(HostJson::FILE_NAME);
    let host_text = std::fs::read_to_string(&host_path)
        .map_err(|e| HostError::Config(format!("reading {}: {e}", host_path.display())))?;
    let host = HostJson::parse(&host_text)
        .map_err(|e| HostError::Config(format!("{}: {e}", host_path.display())))?;
    let functions_dir = config
        .functions_dir
        .clone()
        .unwrap_or_else(|| config.app_root.clone());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&functions_dir)
        .map_err(|e| HostError::Config(format!("reading {}: {e}", functions_dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(FunctionJson::FILE_NAME).is_file())
        .collect();
    dirs.sort();
    let mut functions = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if config
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name))
        {
            continue;
        }
        let path = dir.join(FunctionJson::FILE_NAME);
        let fail = |e: String| HostError::Config(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        let fj = FunctionJson::parse(&text).map_err(|e| fail(e.to_string()))?;
        if fj.disabled == Some(true) {
            tracing::info!(function = %name, "function is disabled; not started");
            continue;
        }
        functions.push(function_spec(config, &host, &name, &fj).map_err(fail)?);
    }
    if let Some(only) = &config.only {
        for wanted in only {
            if !functions.iter().any(|f| &f.name == wanted) {
                return Err(HostError::Config(format!(
                    "no function {wanted} under {}",
                    functions_dir.display()
                )));
            }
        }
    }
    let handler = host.custom_handler.clone().unwrap_or_default();
    let working_dir = match handler
        .description
        .working_directory
        .as_deref()
        .filter(|w| !w.is_empty())
    {
        Some(w) => config.app_root.join(w),
        None => config.app_root.clone(),
    };
    let arguments = handler
        .description
        .expanded_arguments(|k| lookup_setting(config, k))
        .map_err(|e| HostError::Config(format!("{}: {e}", host_path.display())))?;
    let function_timeout = host
        .function_timeout()
        .map_err(|e| HostError::Config(format!("{}: {e}", host_path.display())))?
        .unwrap_or(Duration::from_secs(30 * 60));
    let max_concurrent_calls = host
        .extensions
        .as_ref()
        .and_then(|e| e.service_bus.as_ref())
        .and_then(|s| s.max_concurrent_calls);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(AppModel {
        functions,
        route_prefix: host.route_prefix().to_string(),
        max_concurrent_calls: max_concurrent_calls.map_or(16 * cores, |n| n.max(1) as usize),
        function_timeout,
        arguments,
        working_dir,
    })
}

fn function_spec(
    config: &HostConfig,
    host: &HostJson,
    name: &str,
    fj: &FunctionJson,
) -> Result<FunctionSpec, String> {
    let triggers: Vec<&Binding> = fj.bindings.iter().filter(|b| b.kind.is_trigger()).collect();
    let [t] = triggers.as_slice() else {
        return Err(format!(
            "expected exactly one trigger binding, found {}",
            triggers.len()
        ));
    };
    let trigger = match &t.kind {
        BindingKind::TimerTrigger(timer) => {
            let text = expand(config, &timer.schedule)?;
            Trigger::Timer {
                binding: t.name.clone(),
                schedule: Schedule::parse(&text).map_err(|e| {
                    format!("{e} (TimeSpan schedules are not supported by the local host)")
                })?,
                run_on_startup: timer.run_on_startup.unwrap_or(false),
                retry: fj.retry.clone(),
            }
        }
        BindingKind::ServiceBusTrigger(sb) => {
            let queue = sb.queue_name.as_deref().ok_or(
                "serviceBusTrigger without queueName (topic subscriptions are not supported by the local host)",
            )?;
            if sb.cardinality == Some(Cardinality::Many) {
                return Err(
                    "cardinality \"many\" (batch) is not supported by the local host".into(),
                );
            }
            if sb.is_sessions_enabled == Some(true) {
                tracing::warn!(function = %name, "isSessionsEnabled is ignored by the local host (no session locks)");
            }
            Trigger::ServiceBus {
                binding: t.name.clone(),
                queue: expand(config, queue)?,
                data_type: sb.data_type,
            }
        }
        BindingKind::HttpTrigger(http) => Trigger::Http {
            binding: t.name.clone(),
            route: RouteTemplate::parse(http.route.as_deref().unwrap_or(name))?,
            methods: http
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
        },
        other => {
            return Err(format!(
                "trigger type {:?} is not supported by the local host",
                other.type_name()
            ));
        }
    };
    if fj.retry.is_some() && !matches!(trigger, Trigger::Timer { .. }) {
        tracing::warn!(
            function = %name,
            "function-level retry is only honoured for timer triggers (functions-host.md §1b); ignored"
        );
    }
    let mut outputs = Vec::new();
    let mut http_output = None;
    for b in fj.bindings.iter().filter(|b| b.direction == Direction::Out) {
        match &b.kind {
            BindingKind::ServiceBus(out) => {
                let queue = out.queue_name.as_deref().ok_or(
                    "serviceBus output without queueName (topics are not supported by the local host)",
                )?;
                outputs.push(OutputBinding::ServiceBus {
                    name: b.name.clone(),
                    queue: expand(config, queue)?,
                });
            }
            BindingKind::Http(_) => http_output = Some(b.name.clone()),
            other => {
                return Err(format!(
                    "output binding type {:?} is not supported by the local host",
                    other.type_name()
                ));
            }
        }
    }
    Ok(FunctionSpec {
        name: name.to_string(),
        executable: config.bin_dir.join(executable_name(name)),
        trigger,
        outputs,
        http_output,
        http_only: host.http_mode(fj) != HttpMode::Envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Function names map to kebab-case executables as documented.
    #[test]
    fn kebab_case_executables() {
        for (name, exe) in [
            ("SyncScheduler", "sync-scheduler"),
            ("SyncInboundWorker", "sync-inbound-worker"),
            ("SyncOutboundWorker", "sync-outbound-worker"),
            ("TokenRefresher", "token-refresher"),
            ("WebhookReceiver", "webhook-receiver"),
            ("HTTPThing", "http-thing"),
            ("Job2Runner", "job2-runner"),
            ("already-kebab", "already-kebab"),
            ("snake_case_name", "snake-case-name"),
        ] {
            assert_eq!(executable_name(name), exe, "{name}");
        }
    }

    /// The repository's own host.json and functions/ load into the five documented functions.
    #[test]
    fn repository_app_loads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        if !root.join("host.json").is_file() {
            return;
        }
        let mut config = HostConfig::new(&root, "/nonexistent-bin", "/tmp/unused");
        config.functions_dir = Some(root.join("functions"));
        config
            .env
            .insert("SYNC_SCHEDULER_SCHEDULE".into(), "0 * * * * *".into());
        config
            .env
            .insert("TOKEN_REFRESHER_SCHEDULE".into(), "0 */5 * * * *".into());
        let app = load(&config).unwrap();
        let summary: Vec<(String, String, bool)> = app
            .functions
            .iter()
            .map(|f| {
                let exe = f
                    .executable
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (f.name.clone(), exe, f.http_only)
            })
            .collect();
        let expect = |n: &str, e: &str, h: bool| (n.to_string(), e.to_string(), h);
        assert_eq!(
            summary,
            vec![
                expect("SyncApi", "sync-api", true),
                expect("SyncInboundWorker", "sync-inbound-worker", false),
                expect("SyncOutboundWorker", "sync-outbound-worker", false),
                expect("SyncScheduler", "sync-scheduler", false),
                expect("TokenRefresher", "token-refresher", false),
                expect("WebhookReceiver", "webhook-receiver", true),
            ]
        );
        assert_eq!(app.route_prefix, "api");
        assert_eq!(
            app.queue_names().into_iter().collect::<Vec<_>>(),
            vec!["sync-inbound", "sync-outbound"]
        );
        // Neither the extra settings nor the (injected) process environment
        // name the schedule: the start fails naming it.
        let missing = HostConfig {
            env: Default::default(),
            process_env: std::sync::Arc::new(syncbridge_env::MapEnv::new()),
            ..config
        };
        let err = load(&missing).unwrap_err().to_string();
        assert!(err.contains("SYNC_SCHEDULER_SCHEDULE"), "{err}");
    }
}
