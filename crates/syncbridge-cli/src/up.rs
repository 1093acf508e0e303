//! `syncbridge up`: the local Functions host in the foreground.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use syncbridge_localhost::{HostConfig, LocalHost, LocalHostHandle};

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
/// deployment's infra sets too.
pub(crate) fn host_env(data_dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    let abs = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    env.insert("SYNCBRIDGE_DATA_DIR".into(), abs.display().to_string());
    for (k, default) in [
        ("SYNC_SCHEDULER_SCHEDULE", "0 * * * * *"),
        ("TOKEN_REFRESHER_SCHEDULE", "0 */5 * * * *"),
    ] {
        env.insert(
            k.into(),
            std::env::var(k).unwrap_or_else(|_| default.into()),
        );
    }
    if let Ok(v) = std::env::var("RUST_LOG") {
        env.insert("RUST_LOG".into(), v);
    }
    // Handlers log JSON under a Functions host (for Application Insights);
    // here the local host forwards their lines to a person: text, unless
    // asked otherwise.
    let format = syncbridge_functions::telemetry::LOG_FORMAT_VAR;
    env.insert(
        format.into(),
        std::env::var(format).unwrap_or_else(|_| "text".into()),
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
    cfg.env = host_env(data_dir);
    cfg.env.extend(extra_env);
    Ok(LocalHost::start(cfg).await?)
}

pub(crate) async fn run(data_dir: &Path, a: UpArgs) -> anyhow::Result<ExitCode> {
    let host = start(data_dir, a.http_port, a.app_root.as_deref()).await?;
    println!("syncbridge local host on {}", host.url());
    for f in host.status() {
        println!("  {:<20} {:<28} {:?}", f.name, f.trigger, f.state);
    }
    println!(
        "webhooks: POST {}/api/webhooks/<connection-id>   (Ctrl-C stops)",
        host.url()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    host.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
