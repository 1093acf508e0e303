//! `syncbridge connect`: a connect session for one tenant's account, as
//! `gh auth login` does it: prints the link to open in a browser, then waits
//! until the flow ends (the connection active, or the error it ended with).
//! The session is made by the API's own library code
//! (`syncbridge_api::connect::create_session`); the browser comes back to the
//! deployment's built-in `/api/v1/connect/done` page.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use syncbridge_api::connect::{DONE_PATH, SessionBody, SessionCreated, create_session};
use syncbridge_core::connect::{ConnectOutcome, ConnectStage};
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::{ConnectionId, Store};
use syncbridge_functions::AppState;
use syncbridge_functions::settings::ConnectSettings;

/// `connect` arguments.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The tenant whose account is connected.
    #[arg(long)]
    pub tenant: String,
    /// Connector name (sandbox, hubspot, github, …).
    #[arg(long)]
    pub provider: String,
    /// Re-authorize this existing connection instead of creating one.
    #[arg(long = "connection")]
    pub connection: Option<String>,
    /// The provider's base URL (providers whose host varies, e.g. the sandbox).
    #[arg(long)]
    pub base_url: Option<String>,
    /// A setting of the new connection `key=value` (`syncbridge providers show` lists them,
    /// e.g. owner=rust-lang); repeatable.
    #[arg(long = "setting", value_parser = crate::connections::parse_kv)]
    pub settings: Vec<(String, String)>,
    /// Where `syncbridge up` (or the deployment) serves, when `SYNCBRIDGE_PUBLIC_URL` is unset.
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    pub api_url: String,
    /// Give up after this many seconds (the session itself lasts 10 minutes).
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// The app state with the connect settings of this process (`--api-url`
/// standing in for an unset `SYNCBRIDGE_PUBLIC_URL`).
pub(crate) fn with_connect_settings(mut app: AppState, api_url: &str) -> anyhow::Result<AppState> {
    let mut connect = ConnectSettings::from_env()?;
    if connect.public_url.is_none() {
        let u = url::Url::parse(api_url).with_context(|| format!("--api-url {api_url:?}"))?;
        connect.public_url = Some(u);
    }
    let mut settings = (*app.settings).clone();
    settings.connect = connect;
    app.settings = Arc::new(settings);
    Ok(app)
}

/// Makes the session whose browser side ends on the built-in done page.
pub(crate) async fn start(app: &AppState, a: &ConnectArgs) -> anyhow::Result<SessionCreated> {
    let public = app
        .settings
        .connect
        .public_url
        .as_ref()
        .context("no public URL")?;
    let body = SessionBody {
        tenant: a.tenant.clone(),
        provider: a.provider.clone(),
        return_url: format!("{}{DONE_PATH}", public.as_str().trim_end_matches('/')),
        connection_id: a.connection.clone(),
        base_url: a.base_url.clone(),
        settings: (!a.settings.is_empty()).then(|| a.settings.iter().cloned().collect()),
    };
    Ok(create_session(app, body).await?)
}

/// Waits until the session `id` ends; the connection id on success.
pub(crate) async fn wait(
    store: &dyn Store,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<ConnectionId> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = store
            .get_connect_session(id)
            .await?
            .with_context(|| format!("connect session {id} is gone"))?;
        match &s.stage {
            ConnectStage::Done {
                outcome: ConnectOutcome::Connected { connection_id },
            } => {
                let conn = store.get_connection(connection_id).await?;
                if conn.is_some_and(|c| c.status == ConnectionStatus::Active) {
                    return Ok(connection_id.clone());
                }
            }
            ConnectStage::Done {
                outcome: ConnectOutcome::Failed { error },
            } => bail!("the connect flow ended without a connection: {error}"),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("gave up waiting for the connect flow after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) async fn run(data_dir: &Path, a: ConnectArgs) -> anyhow::Result<ExitCode> {
    let app = with_connect_settings(crate::ops::existing_state(data_dir).await?, &a.api_url)?;
    let made = start(&app, &a).await?;
    eprintln!(
        "Open this link in a browser to connect {} for tenant {} (valid until {}):",
        a.provider, a.tenant, made.expires_at
    );
    println!("{}", made.connect_url);
    eprintln!("Waiting for the connection… (Ctrl-C stops waiting)");
    let id = wait(
        app.store.as_ref(),
        &made.id,
        Duration::from_secs(a.timeout_secs),
    )
    .await?;
    eprintln!("Connected: {id} is active.");
    Ok(ExitCode::SUCCESS)
}
