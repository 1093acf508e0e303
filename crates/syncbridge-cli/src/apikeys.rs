//! `syncbridge api-keys create|list|revoke`: the product API's keys, made
//! and revoked by the same library code the API's own routes use
//! (`syncbridge_api::keys`).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use syncbridge_core::apikeys::ApiScope;

/// `api-keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCmd {
    /// Make a key; prints the key alone on stdout (it is shown only once).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// What it may do: read, write or admin (admin ⊃ write ⊃ read).
        #[arg(long, value_parser = parse_scope)]
        scope: ApiScope,
    },
    /// List the keys (never the key text).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (`key_…`).
    Revoke {
        /// The key id from `api-keys list`.
        id: String,
    },
}

/// `--scope`: the stored names (`read`, `write`, `admin`).
fn parse_scope(text: &str) -> Result<ApiScope, String> {
    ApiScope::parse(text).ok_or_else(|| format!("{text:?}: must be read, write or admin"))
}

pub(crate) async fn run(data_dir: &Path, cmd: ApiKeysCmd) -> anyhow::Result<ExitCode> {
    let app = match cmd {
        ApiKeysCmd::Create { .. } => crate::ops::state(data_dir).await?,
        _ => crate::ops::existing_state(data_dir).await?,
    };
    let store = app.store.as_ref();
    let now = app.clock.now();
    match cmd {
        ApiKeysCmd::Create { name, scope } => {
            let made = syncbridge_api::keys::create(store, &name, scope, now).await?;
            eprintln!(
                "created API key {} ({}, scope {}); it is shown only now",
                made.record.id,
                made.record.name,
                made.record.scope.as_str()
            );
            println!("{}", made.key.expose());
        }
        ApiKeysCmd::List { json } => {
            let keys = syncbridge_api::keys::list(store).await?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(syncbridge_api::views::ApiKeyView::from)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if keys.is_empty() {
                println!("no API keys");
            } else {
                for k in keys {
                    let state = k
                        .revoked_at
                        .map_or("active".to_owned(), |t| format!("revoked {t}"));
                    println!(
                        "{:<22} {:<6} {:<28} {}  {state}",
                        k.id,
                        k.scope.as_str(),
                        k.name,
                        k.created_at
                    );
                }
            }
        }
        ApiKeysCmd::Revoke { id } => {
            syncbridge_api::keys::revoke(store, &id, now).await?;
            println!("revoked API key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
