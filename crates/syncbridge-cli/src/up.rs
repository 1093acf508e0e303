//! `syncbridge up`: the local Functions host in the foreground.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use syncbridge_functions::settings::LocalHostSettings;
use syncbridge_localhost::{HostConfig, HostEvent, LocalHost, LocalHostHandle};

use crate::paths;

/// `up` arguments.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port of the front door (`http://127.0.0.1:<port>/api/...`).
    #[arg(long, default_value_t = 7071)]
    pub http_port: u16,
    /// Folder with host.json and functions/.
    #[arg(long)]
    pub app_root: Option<PathBuf>,
}

/// App settings every handler gets under the local host, with the defaults the
/// deployment's infra sets too (`settings::LocalHostSettings`).
pub(crate) fn host_env(
    data_dir: &Path,
    local: &LocalHostSettings,
) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    let abs = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    env.insert("SYNCBRIDGE_DATA_DIR".into(), abs.display().to_string());
    env.insert(
        LocalHostSettings::SCHEDULER_SCHEDULE.into(),
        local.scheduler_schedule.clone(),
    );
    env.insert(
        LocalHostSettings::TOKEN_REFRESHER_SCHEDULE.into(),
        local.token_refresher_schedule.clone(),
    );
    if let Some(v) = &local.rust_log {
        env.insert("RUST_LOG".into(), v.clone());
    }
    // Handlers log JSON under a Functions host (for Application Insights);
    // here the local host forwards their lines to a person: text, unless
    // asked otherwise.
    env.insert(
        syncbridge_functions::telemetry::LOG_FORMAT_VAR.into(),
        local.log_format.clone(),
    );
    env
}

/// Starts the local host for `data_dir`.
pub(crate) async fn start(
    data_dir: &Path,
    http_port: u16,
    app_root: Option<&Path>,
) -> anyhow::Result<LocalHostHandle> {
    start_with(data_dir, http_port, app_root, Default::default()).await
}

/// Starts the local host for `data_dir` with extra app settings.
pub(crate) async fn start_with(
    data_dir: &Path,
    http_port: u16,
    app_root: Option<&Path>,
    extra_env: std::collections::BTreeMap<String, String>,
) -> anyhow::Result<LocalHostHandle> {
    let root = paths::app_root(app_root)?;
    let mut cfg = HostConfig::new(&root, paths::bin_dir()?, data_dir);
    cfg.functions_dir = Some(root.join("functions"));
    cfg.http_port = http_port;
    let local = LocalHostSettings::from_env()?;
    cfg.env = host_env(data_dir, &local);
    // The connect flow's redirect URI hangs off the public URL: here, the
    // front door, unless the operator set one (or the port is picked later).
    if http_port != 0
        && syncbridge_functions::settings::ConnectSettings::from_env()?
            .public_url
            .is_none()
    {
        cfg.env.insert(
            syncbridge_functions::settings::ConnectSettings::PUBLIC_URL.into(),
            format!("http://127.0.0.1:{http_port}"),
        );
    }
    cfg.env.extend(extra_env);
    cfg.http_limits = local.http;
    cfg.max_body_bytes = local.max_body_bytes;
    Ok(LocalHost::start(cfg).await?)
}

pub(crate) async fn run(data_dir: &Path, a: UpArgs) -> anyhow::Result<ExitCode> {
    let host = start(data_dir, a.http_port, a.app_root.as_deref()).await?;
    println!("syncbridge local host on {}", host.url());
    for f in host.status() {
        println!("  {:<20} {:<28} {}", f.name, f.trigger, f.state);
    }
    println!(
        "webhooks: POST {}/api/webhooks/<connection-id>   (Ctrl-C or SIGTERM stops)",
        host.url()
    );
    print_sign_in_link(data_dir, &host.url()).await;
    let events = host.events();
    tokio::select! {
        r = stop_signal() => r?,
        () = print_handler_states(events) => {}
    }
    println!("stopping…");
    host.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The dashboard's one-time sign-in link (as Jupyter prints one): good for
/// one sign-in within a day; an API key signs in too.
async fn print_sign_in_link(data_dir: &Path, url: &str) {
    let made = match crate::ops::state(data_dir).await {
        Ok(app) => syncbridge_api::session::create_login(app.store.as_ref(), app.clock.now())
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match made {
        Ok(link) => println!(
            "dashboard: {url}{}?login={}   (one-time sign-in link)",
            syncbridge_api::session::DASHBOARD_PATH,
            link.expose()
        ),
        Err(e) => eprintln!(
            "dashboard: {url}{} (no sign-in link: {e:#}; sign in with an API key)",
            syncbridge_api::session::DASHBOARD_PATH
        ),
    }
}

/// Ctrl-C or SIGTERM (what `kill`, systemd and container runtimes send).
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// One status line per handler restart, recovery or give-up, so a person
/// watching `up` sees a crashing handler and when it comes back.
async fn print_handler_states(mut events: tokio::sync::broadcast::Receiver<HostEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    // Handlers being restarted: their next "up" is news (the first one was in the table).
    let mut down = std::collections::BTreeSet::new();
    loop {
        match events.recv().await {
            Ok(ev) => {
                match &ev {
                    HostEvent::FunctionRestarting { function, .. } => {
                        down.insert(function.clone());
                    }
                    HostEvent::FunctionReady { function, .. } if !down.remove(function) => {
                        continue;
                    }
                    _ => {}
                }
                if let Some(line) = handler_state_line(&ev) {
                    println!("{line}");
                }
            }
            Err(RecvError::Lagged(_)) => {}
            // The host is gone; keep waiting for the signal.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The status line for a host event, if it is one a person should see. Pure.
pub(crate) fn handler_state_line(ev: &HostEvent) -> Option<String> {
    match ev {
        HostEvent::FunctionRestarting {
            function,
            reason,
            restart,
            delay,
        } => Some(format!(
            "  {function:<20} restarting in {delay:?} (restart #{restart}): {reason}"
        )),
        HostEvent::FunctionReady {
            function,
            port,
            pid,
        } => Some(format!(
            "  {function:<20} up (pid {pid}, http://127.0.0.1:{port}/)"
        )),
        HostEvent::FunctionFailed { function, reason } => {
            Some(format!("  {function:<20} FAILED: {reason}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A restart names the function, the delay and the restart number; a give-up says FAILED;
    /// other events print nothing.
    #[test]
    fn handler_state_lines() {
        let restarting = HostEvent::FunctionRestarting {
            function: "SyncInboundWorker".into(),
            reason: "handler process exited (signal: 9)".into(),
            restart: 5,
            delay: Duration::from_secs(16),
        };
        assert_eq!(
            handler_state_line(&restarting).unwrap(),
            "  SyncInboundWorker    restarting in 16s (restart #5): handler process exited (signal: 9)"
        );
        let failed = HostEvent::FunctionFailed {
            function: "TokenRefresher".into(),
            reason: "never came up".into(),
        };
        assert!(
            handler_state_line(&failed)
                .unwrap()
                .contains("FAILED: never came up")
        );
        let exited = HostEvent::FunctionExited {
            function: "TokenRefresher".into(),
            status: "exit status: 1".into(),
        };
        assert_eq!(handler_state_line(&exited), None);
    }
}
