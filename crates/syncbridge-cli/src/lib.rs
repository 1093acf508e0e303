//! The `syncbridge` command line.
//!
//! # Layout
//!
//! - [`Cli`]: the clap definition of every subcommand.
//! - `connections`: `syncbridge connections add|list|remove`.
//! - `up`: `syncbridge up`, the local Functions host in the foreground.
//! - [`demo`]: `syncbridge demo`, a real sync against the bundled sandbox.
//! - `webhooks`: `syncbridge webhooks verify`, offline signature checks.
//! - `changes`: `syncbridge changes submit|list|resolve|audit`, the product's
//!   local changes, their pushes, parked conflicts and the audit log.
//! - `ops`: operator commands: `quarantine list|replay`, `runs`, `notify test`.
//! - `paths`: where the app root (host.json, functions/) and the handler
//!   binaries are.
//! - `apikeys`: `syncbridge api-keys create|list|revoke` (the product API's keys).
//! - `connect`: `syncbridge connect`, a tenant's account connected through
//!   the connect flow (prints the link, waits until the connection is active).
//! - [`providers`]: `syncbridge providers list|show NAME`, the connector catalog.

mod apikeys;
mod changes;
mod connect;
mod connections;
pub mod demo;
mod ops;
mod paths;
pub mod providers;
mod up;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// syncbridge: keep your records in sync with your customers' CRMs and help desks.
#[derive(Debug, Parser)]
#[command(name = "syncbridge", version, about)]
pub struct Cli {
    /// State directory of the embedded default (store, queue, keys).
    #[arg(
        long,
        global = true,
        env = "SYNCBRIDGE_DATA_DIR",
        default_value = ".syncbridge"
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the six handlers under the local Functions host (Ctrl-C or SIGTERM stops).
    Up(up::UpArgs),
    /// Manage tenants' connections.
    #[command(subcommand)]
    Connections(connections::ConnectionsCmd),
    /// Sync the bundled sandbox CRM into the embedded store, end to end.
    Demo(demo::DemoArgs),
    /// Webhook tools.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCmd),
    /// Inspect and replay quarantined messages and webhook events.
    #[command(subcommand)]
    Quarantine(ops::QuarantineCmd),
    /// Recent sync runs, newest first.
    Runs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Notification tools.
    #[command(subcommand)]
    Notify(ops::NotifyCmd),
    /// Local changes: submit, list pending pushes and conflicts, resolve, audit.
    #[command(subcommand)]
    Changes(changes::ChangesCmd),
    /// Keys of the product API (SyncApi): create (prints the key once), list, revoke.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(apikeys::ApiKeysCmd),
    /// Connect a tenant's account through the connect flow: prints the link
    /// to open in a browser and waits until the connection is active.
    Connect(connect::ConnectArgs),
    /// The connector catalog: objects, auth, writes, deletes, webhooks, rate limits.
    #[command(subcommand)]
    Providers(providers::ProvidersCmd),
}

/// Runs a parsed command line; errors are printed once, here.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Up(a) => up::run(&cli.data_dir, a).await,
        Command::Connections(c) => connections::run(&cli.data_dir, c).await,
        Command::Demo(a) => demo::run(&cli.data_dir, a).await.map(|_| ExitCode::SUCCESS),
        Command::Webhooks(w) => webhooks::run(w),
        Command::Quarantine(q) => ops::quarantine(&cli.data_dir, q).await,
        Command::Runs { json, limit } => ops::runs(&cli.data_dir, json, limit).await,
        Command::Notify(n) => ops::notify(n).await,
        Command::Changes(c) => changes::run(&cli.data_dir, c).await,
        Command::ApiKeys(k) => apikeys::run(&cli.data_dir, k).await,
        Command::Connect(a) => connect::run(&cli.data_dir, a).await,
        Command::Providers(p) => providers::run(p),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
