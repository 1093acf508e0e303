//! `syncbridge connections add|list|remove`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::model::{Connection, SyncTask, WebhookSettings};
use syncbridge_core::{Clock, ConnectionId, ObjectType, SecretString, SystemClock};
use syncbridge_functions::settings::ConnectionSecrets;

/// Connection subcommands.
#[derive(Debug, Subcommand)]
pub enum ConnectionsCmd {
    /// Add a connection and its inbound sync tasks (`--replace` to replace one).
    Add(Box<AddArgs>),
    /// List connections.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection with its tasks, runs and records.
    Remove {
        /// Connection id.
        #[arg(long)]
        id: String,
    },
}

/// `connections add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Owning tenant.
    #[arg(long)]
    pub tenant: String,
    /// Connection id (also the webhook URL segment).
    #[arg(long)]
    pub id: String,
    /// Connector definition name (sandbox, hubspot, github, …).
    #[arg(long)]
    pub provider: String,
    /// Override the connector's base URL.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Objects to sync (default: every object the connector defines).
    #[arg(long, value_delimiter = ',')]
    pub objects: Vec<String>,
    /// Seconds between scheduled pulls.
    #[arg(long, default_value_t = 300)]
    pub interval_secs: u32,
    /// Webhook signature scheme (github, stripe, standard-webhooks, …);
    /// default: the one the connector's definition names (`[webhooks]`).
    #[arg(long)]
    pub webhook_scheme: Option<String>,
    /// Webhook secret; repeat during a rotation.
    #[arg(long)]
    pub webhook_secret: Vec<String>,
    /// Connector setting `key=value` (e.g. owner=rust-lang); repeatable.
    #[arg(long = "setting", value_parser = parse_kv)]
    pub settings: Vec<(String, String)>,
    /// OAuth access token (read from the environment so it stays out of shell history).
    #[arg(skip = ConnectionSecrets::from_env().access_token)]
    pub access_token: Option<String>,
    /// OAuth refresh token (environment only).
    #[arg(skip = ConnectionSecrets::from_env().refresh_token)]
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    #[arg(long)]
    pub expires_in: Option<u64>,
    /// API key for `api_key` connectors (environment only).
    #[arg(skip = ConnectionSecrets::from_env().api_key)]
    pub api_key: Option<String>,
    /// Replace the connection if it exists (its tasks start over from scratch).
    #[arg(long)]
    pub replace: bool,
    /// Conflict policy (`source_wins`, `target_wins`, `latest`, `manual`):
    /// `*=POLICY` for the connection, `OBJECT=POLICY`, `OBJECT.FIELD=POLICY`;
    /// repeatable, the most specific wins. Default: `manual`.
    #[arg(long = "conflict", value_parser = parse_kv, value_name = "SCOPE=POLICY")]
    pub conflicts: Vec<(String, String)>,
}

/// Reads `--conflict` entries into the connection's policies.
fn conflict_policies(
    entries: &[(String, String)],
    objects: &BTreeMap<String, syncbridge_core::connector::ObjectDef>,
) -> anyhow::Result<syncbridge_core::merge::ConnectionPolicies> {
    use syncbridge_core::merge::{ConnectionPolicies, Policy};
    let mut out = ConnectionPolicies::default();
    for (scope, policy) in entries {
        let p = Policy::parse(policy).with_context(|| {
            format!("--conflict {scope}={policy}: policy must be source_wins, target_wins, latest or manual")
        })?;
        if scope == "*" {
            out.policy = Some(p);
            continue;
        }
        let (object, field) = match scope.split_once('.') {
            Some((o, f)) => (o, Some(f)),
            None => (scope.as_str(), None),
        };
        let Some(def) = objects.get(object) else {
            bail!("--conflict {scope}: the connector has no object {object}");
        };
        let slot = out
            .objects
            .entry(ObjectType::parse(object.to_string())?)
            .or_default();
        match field {
            Some(f) if !def.fields.contains_key(f) => {
                bail!("--conflict {scope}: {object} has no mapped field {f}")
            }
            Some(f) => {
                slot.fields.insert(f.to_string(), p);
            }
            None => slot.policy = Some(p),
        }
    }
    Ok(out)
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Works on the embedded store in `data_dir`, or on a deployment's store and
/// Key Vault when the Azure settings are set (see `ops::state`).
pub(crate) async fn run(data_dir: &Path, cmd: ConnectionsCmd) -> anyhow::Result<ExitCode> {
    let app = match cmd {
        ConnectionsCmd::Add(_) => crate::ops::state(data_dir).await?,
        _ => crate::ops::existing_state(data_dir).await?,
    };
    let store = &app.store;
    match cmd {
        ConnectionsCmd::Add(a) => {
            let a = *a;
            let now = SystemClock.now();
            let doc = credential_doc(&a, now)?;
            let replace = a.replace;
            let (mut conn, tasks, webhook) = build(a, &app.registry, now)?;
            if !replace && store.get_connection(&conn.id).await?.is_some() {
                bail!(
                    "--id: connection {} exists; pass --replace to replace it (its tasks start over)",
                    conn.id
                );
            }
            if let Some(w) = webhook {
                let sealed = syncbridge_credentials::seal_webhook_secrets(
                    app.credential_manager.sealer(),
                    &conn.id,
                    &w.secrets,
                )
                .await
                .context("sealing the webhook secrets")?;
                conn.webhook = Some(WebhookSettings {
                    scheme: w.scheme,
                    sealed_secrets: sealed,
                });
            }
            store.put_connection(&conn).await?;
            for t in &tasks {
                store.put_task(t).await?;
            }
            if let Some(doc) = doc {
                app.credential_manager.store_initial(&conn.id, doc).await?;
                println!("credentials sealed for {}", conn.id);
            }
            // Into the outbox; the handlers' delivery loop sends it.
            app.events
                .emit(syncbridge_core::events::Event::connection_created(&conn))
                .await;
            let objects: Vec<&str> = tasks.iter().map(|t| t.object.as_str()).collect();
            println!(
                "added connection {} (tenant {}, provider {}), syncing {}",
                conn.id,
                conn.tenant,
                conn.provider,
                objects.join(", ")
            );
            if conn.webhook.is_some() {
                println!("webhooks: POST /api/webhooks/{}", conn.id);
            }
        }
        ConnectionsCmd::List { json } => {
            let conns = store.list_connections(None).await?;
            if json {
                let rows: Vec<_> = conns
                    .iter()
                    .map(|c| serde_json::json!({"id": c.id, "tenant": c.tenant, "provider": c.provider,
                        "status": c.status, "webhook_scheme": c.webhook.as_ref().map(|w| &w.scheme)}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if conns.is_empty() {
                println!("no connections");
            } else {
                println!(
                    "{:<24} {:<16} {:<12} {:<14} webhook",
                    "ID", "TENANT", "PROVIDER", "STATUS"
                );
                for c in conns {
                    let wh = c.webhook.as_ref().map_or("-", |w| w.scheme.as_str());
                    println!(
                        "{:<24} {:<16} {:<12} {:<14} {wh}",
                        c.id,
                        c.tenant,
                        c.provider,
                        c.status.as_str()
                    );
                }
            }
        }
        ConnectionsCmd::Remove { id } => {
            let id = ConnectionId::parse(id)?;
            if !store.delete_connection(&id).await? {
                bail!("no connection {id}");
            }
            println!("removed connection {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The longest `--expires-in` accepted: ten years. Anything longer is a
/// mistake (or a wrapped-around number), not a token lifetime, and would be
/// stored as a token that never expires.
pub(crate) const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

/// The credential `connections add` seals, from the environment's tokens:
/// an access token (not empty; a refresh token only with one; `--expires-in`
/// at most [`MAX_EXPIRES_IN_SECS`]), else an API key (not empty), else none.
pub(crate) fn credential_doc(
    a: &AddArgs,
    now: syncbridge_core::Timestamp,
) -> anyhow::Result<Option<syncbridge_credentials::CredentialDoc>> {
    let blank = |v: &Option<String>| v.as_deref().is_some_and(|t| t.trim().is_empty());
    if blank(&a.access_token) {
        bail!("SYNCBRIDGE_ACCESS_TOKEN is empty: set the access token, or unset it");
    }
    if blank(&a.refresh_token) {
        bail!("SYNCBRIDGE_REFRESH_TOKEN is empty: set the refresh token, or unset it");
    }
    if blank(&a.api_key) {
        bail!("SYNCBRIDGE_API_KEY is empty: set the key, or unset it");
    }
    if let Some(secs) = a.expires_in
        && secs > MAX_EXPIRES_IN_SECS
    {
        bail!(
            "--expires-in {secs}: more than {MAX_EXPIRES_IN_SECS} seconds (ten years) is not a token lifetime"
        );
    }
    if a.access_token.is_none() && a.expires_in.is_some() {
        bail!("--expires-in needs an access token (SYNCBRIDGE_ACCESS_TOKEN)");
    }
    Ok(match (&a.access_token, &a.refresh_token, &a.api_key) {
        (Some(at), rt, _) => Some(syncbridge_credentials::CredentialDoc::oauth2(
            SecretString::new(at.clone()),
            rt.clone().map(SecretString::new),
            a.expires_in.map(std::time::Duration::from_secs),
            now,
        )),
        (None, Some(_), _) => bail!(
            "SYNCBRIDGE_REFRESH_TOKEN is set without SYNCBRIDGE_ACCESS_TOKEN: set both (the refresh token alone cannot call the provider)"
        ),
        (None, None, Some(key)) => Some(syncbridge_credentials::CredentialDoc::ApiKey {
            key: SecretString::new(key.clone()),
        }),
        (None, None, None) => None,
    })
}

/// Validated webhook settings, still to be sealed.
pub(crate) struct WebhookInput {
    pub scheme: String,
    pub secrets: Vec<SecretString>,
}

/// Validates `--webhook-scheme` / `--webhook-secret`: the scheme parses, and
/// every secret is one the scheme can verify with (a secret no delivery
/// could match is refused here, not by every later delivery).
fn webhook_input(
    scheme: Option<String>,
    secrets: Vec<String>,
) -> anyhow::Result<Option<WebhookInput>> {
    let scheme = match (scheme, secrets.is_empty()) {
        (None, true) => return Ok(None),
        (None, false) => bail!("--webhook-secret needs --webhook-scheme"),
        (Some(_), true) => bail!("--webhook-scheme needs at least one --webhook-secret"),
        (Some(scheme), false) => scheme,
    };
    let parsed = syncbridge_functions::webhook::parse_scheme(&scheme)
        .map_err(|e| anyhow::anyhow!("--webhook-scheme: {e}"))?;
    for (i, secret) in secrets.iter().enumerate() {
        let check = syncbridge_signatures::WebhookSecret::new(secret.as_str());
        if let Err(e) = syncbridge_signatures::check_secret(&parsed, &check) {
            bail!("--webhook-secret #{}: {e} for scheme {scheme}", i + 1);
        }
    }
    Ok(Some(WebhookInput {
        scheme,
        secrets: secrets.into_iter().map(SecretString::new).collect(),
    }))
}

/// Validates `connections add` arguments into a connection (its webhook
/// settings left for the caller to seal in), its tasks, and the webhook
/// settings.
pub(crate) fn build(
    a: AddArgs,
    registry: &Registry,
    now: syncbridge_core::Timestamp,
) -> anyhow::Result<(Connection, Vec<SyncTask>, Option<WebhookInput>)> {
    // Without `--webhook-scheme`, secrets verify with the scheme the
    // connector's definition names for its provider's webhooks.
    let scheme = match a.webhook_scheme {
        Some(s) => Some(s),
        None if !a.webhook_secret.is_empty() => registry
            .get(&a.provider)
            .and_then(|d| d.webhooks.as_ref().map(|w| w.scheme.clone())),
        None => None,
    };
    let webhook = webhook_input(scheme, a.webhook_secret)?;
    // The same validation as the API's POST /v1/connections; its field
    // names are this command's flags.
    let (mut conn, tasks) = syncbridge_api::connections::plan_connection(
        syncbridge_api::connections::NewConnection {
            id: a.id,
            tenant: a.tenant,
            provider: a.provider,
            base_url: a.base_url,
            objects: a.objects,
            interval_secs: a.interval_secs,
            settings: a.settings.into_iter().collect::<BTreeMap<_, _>>(),
        },
        registry,
        now,
    )
    .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
    let def = registry
        .get(&conn.provider)
        .context("the connector was just found")?;
    conn.conflicts = conflict_policies(&a.conflicts, &def.objects)?;
    Ok((conn, tasks, webhook))
}
