//! Operator commands: `quarantine list|replay`, `runs`, `notify test`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use syncbridge_core::{SecretString, StoreError};
use syncbridge_functions::state::StateError;
use syncbridge_functions::{AppState, Settings};
use syncbridge_sqlite::OpenMode;

/// `quarantine` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// Messages and webhook events set aside, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-process one entry: webhook events are routed again, queue messages re-sent.
    Replay {
        /// The entry id from `quarantine list`.
        id: i64,
    },
}

/// `notify` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Send a sample message; exits non-zero with the channel's answer when delivery fails.
    Test {
        /// slack, teams or webhook.
        #[arg(long)]
        channel: String,
        /// Incoming-webhook URL (a secret: never printed).
        #[arg(long)]
        url: String,
        /// `whsec_…` signing secret for the generic webhook channel.
        #[arg(long)]
        secret: Option<String>,
    },
}

/// The backends operator commands work on: a deployment's (Cosmos DB,
/// Service Bus, Key Vault, from the same settings the Function Apps get) when
/// `SYNCBRIDGE_COSMOS_ENDPOINT` is set, with `SYNCBRIDGE_AZURE_CREDENTIAL=developer`
/// for the operator's `az login`; the embedded default in `data_dir` otherwise.
/// Creates the embedded store if `data_dir` has none; only `connections add`
/// and `api-keys create`
/// do (and `up` / `demo`, which open it themselves).
pub(crate) async fn state(data_dir: &Path) -> anyhow::Result<AppState> {
    state_with(data_dir, OpenMode::CreateIfMissing).await
}

/// For every command that reads or changes what is there: a data dir
/// without `state.db` is an error that says so, and nothing is created in it.
pub(crate) async fn existing_state(data_dir: &Path) -> anyhow::Result<AppState> {
    state_with(data_dir, OpenMode::ExistingOnly).await
}

async fn state_with(data_dir: &Path, mode: OpenMode) -> anyhow::Result<AppState> {
    let azure = syncbridge_functions::settings::AzureBackends::from_env()?;
    if azure.cosmos.is_none() {
        let mut settings = Settings::for_data_dir(data_dir);
        settings.connectors_dir = Settings::connectors_dir_from_env()?;
        // `connections add` announces the connection to the product.
        settings.product_webhook = syncbridge_functions::settings::ProductWebhook::from_env()?;
        return match AppState::embedded_with(settings, mode) {
            Err(StateError::Store(StoreError::NotFound(_))) => bail!(
                "no syncbridge state in {}: it has no {}. Point --data-dir (or SYNCBRIDGE_DATA_DIR) at the directory `syncbridge up` uses; `connections add` creates one",
                data_dir.display(),
                syncbridge_sqlite::STATE_FILE
            ),
            other => Ok(other?),
        };
    }
    let mut settings = Settings::from_env()?;
    settings.data_dir = data_dir.to_path_buf();
    Ok(AppState::from_settings(settings).await?)
}

pub(crate) async fn quarantine(data_dir: &Path, cmd: QuarantineCmd) -> anyhow::Result<ExitCode> {
    let app = existing_state(data_dir).await?;
    match cmd {
        QuarantineCmd::List { json, limit } => {
            let entries = app.store.list_quarantine(limit).await?;
            if json {
                let rows: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        serde_json::json!({"id": e.id, "source": e.message.source, "message_id": e.message.message_id,
                        "connection": e.message.connection, "reason": e.message.reason, "at": e.message.at.to_rfc3339(),
                        "bytes": e.message.body.len()})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if entries.is_empty() {
                println!("quarantine is empty");
            } else {
                for e in entries {
                    println!(
                        "#{:<5} {}  {:<26} {:<28} {}",
                        e.id,
                        e.message.at.to_rfc3339(),
                        e.message.source,
                        e.message.message_id.as_deref().unwrap_or("-"),
                        e.message.reason
                    );
                }
            }
        }
        QuarantineCmd::Replay { id } => {
            // The same replay as the API's POST /v1/quarantine/{id}/replay.
            use syncbridge_api::quarantine::{Replayed, replay};
            match replay(&app, id).await? {
                Replayed::Routed { jobs } => {
                    println!("#{id}: routed again, {jobs} follow-up job(s) enqueued")
                }
                Replayed::Resent { queue } => println!("#{id}: re-sent to {queue}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn runs(data_dir: &Path, json: bool, limit: usize) -> anyhow::Result<ExitCode> {
    let app = existing_state(data_dir).await?;
    let runs = app.store.list_runs(None, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in runs {
        let c = r.counts;
        println!(
            "{} {:<40} {:<11} fetched {:>7} created {:>7} updated {:>6} deleted {:>5}{}",
            r.started_at.to_rfc3339(),
            r.task.as_str(),
            r.status.as_str(),
            c.fetched,
            c.created,
            c.updated,
            c.deleted,
            r.error.map(|e| format!("  ({e})")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn notify(cmd: NotifyCmd) -> anyhow::Result<ExitCode> {
    let NotifyCmd::Test {
        channel,
        url,
        secret,
    } = cmd;
    let kind: syncbridge_notify::ChannelKind = channel
        .parse()
        .map_err(|e| anyhow::anyhow!("--channel: {e}"))?;
    let secret = secret.map(syncbridge_signatures::WebhookSecret::new);
    match syncbridge_notify::send_test(kind, &SecretString::new(url), secret.as_ref()).await {
        Ok(answer) => {
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("delivery failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
