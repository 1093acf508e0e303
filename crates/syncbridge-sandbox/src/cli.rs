//! The `syncbridge-sandbox` binary: flags → [`SandboxConfig`], bind, seed,
//! print `listening on http://HOST:PORT` as the first stdout line (flushed,
//! so a parent process can read the port), serve until Ctrl-C / SIGTERM.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use crate::config::{ConfigError, FaultConfig, RateLimit, SandboxConfig, WebhookConfig};
use crate::sandbox::Sandbox;

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "syncbridge-sandbox",
    version,
    about = "A HubSpot-like CRM provider with seeded data, OAuth, rate limits, faults and signed webhooks"
)]
pub struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "SANDBOX_HOST")]
    pub host: IpAddr,
    /// Port to bind (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8787, env = "SANDBOX_PORT")]
    pub port: u16,
    /// Records seeded per object (contacts, companies, deals).
    #[arg(long, default_value_t = 1000)]
    pub records: usize,
    /// Data seed (same seed and record count ⇒ identical data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// App-wide rate limit on /crm routes, e.g. 100/10s (default: none).
    #[arg(long)]
    pub rate_limit: Option<RateLimit>,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 1800.0)]
    pub token_ttl: f64,
    /// OAuth client id.
    #[arg(long, default_value = "sbx_client_demo")]
    pub client_id: String,
    /// OAuth client secret (sbx_cs_...).
    #[arg(
        long,
        default_value = "sbx_cs_demo_secret",
        env = "SANDBOX_CLIENT_SECRET"
    )]
    pub client_secret: String,
    /// An accepted authorization code (any sbx_code_... is accepted too).
    #[arg(long, default_value = "sbx_code_demo")]
    pub auth_code: String,
    /// `GET /oauth/authorize` approves at once instead of showing the consent page (headless tests).
    #[arg(long)]
    pub oauth_auto_approve: bool,
    /// A redirect URI registered for the client (repeat for more; none: any http://127.0.0.1 or localhost URI).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Serve /crm routes without bearer tokens.
    #[arg(long)]
    pub no_auth: bool,
    /// Largest list page (HubSpot: 100; raise for benchmarks).
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_PAGE_SIZE)]
    pub max_page_size: usize,
    /// Probability of an injected 5xx per /crm request.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Probability of a dropped connection (after handling).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Probability of a truncated body (after handling).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Probability of added latency.
    #[arg(long, default_value_t = 0.0)]
    pub latency_rate: f64,
    /// The added latency in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the fault sequence (default: --seed).
    #[arg(long)]
    pub fault_seed: Option<u64>,
    /// POST signed change events here.
    #[arg(long, requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// Standard Webhooks secret (whsec_<base64>).
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET")]
    pub webhook_secret: Option<String>,
}

impl Cli {
    /// The configuration these flags describe.
    ///
    /// # Errors
    /// A flag value is out of range or inconsistent.
    pub fn to_config(&self) -> Result<SandboxConfig, ConfigError> {
        let config = SandboxConfig {
            seed: self.seed,
            records_per_object: self.records,
            auth_enabled: !self.no_auth,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            auth_code: self.auth_code.clone(),
            token_ttl: Duration::try_from_secs_f64(self.token_ttl).map_err(|e| {
                ConfigError::Value {
                    field: "--token-ttl",
                    reason: e.to_string(),
                }
            })?,
            max_page_size: self.max_page_size,
            rate_limit: self.rate_limit,
            faults: FaultConfig {
                seed: self.fault_seed.unwrap_or(self.seed),
                error_rate: self.fail_rate,
                drop_rate: self.drop_rate,
                truncate_rate: self.truncate_rate,
                latency_rate: self.latency_rate,
                latency_ms: self.latency_ms,
            },
            webhook: match (&self.webhook_url, &self.webhook_secret) {
                (Some(url), Some(secret)) => Some(WebhookConfig::new(url, secret)),
                _ => None,
            },
            oauth_auto_approve: self.oauth_auto_approve,
            redirect_uris: self.redirect_uris.clone(),
            fail_token_requests: false,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Sets up logging to stderr (`RUST_LOG` overrides `syncbridge_sandbox=info`).
pub fn init_tracing() {
    let filter = syncbridge_env::Env::var(&syncbridge_env::ProcessEnv, "RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("syncbridge_sandbox=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

/// Runs the binary until Ctrl-C or SIGTERM.
///
/// # Errors
/// Invalid flags, or the port cannot be bound.
pub async fn run(cli: Cli) -> io::Result<()> {
    let config = cli
        .to_config()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind((cli.host, cli.port)).await?;
    let started = std::time::Instant::now();
    let sandbox = tokio::task::spawn_blocking(move || Sandbox::new(config))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let handle = crate::serve(listener, sandbox)?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", handle.base_url())?;
        out.flush()?;
    }
    tracing::info!(
        records_per_object = cli.records,
        seed = cli.seed,
        client_id = %cli.client_id,
        auth = !cli.no_auth,
        seeded_in_ms = started.elapsed().as_millis() as u64,
        "sandbox ready"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented flag set parses into the matching configuration.
    #[test]
    fn flags_to_config() {
        let cli = Cli::try_parse_from([
            "syncbridge-sandbox",
            "--port",
            "0",
            "--records",
            "100000",
            "--seed",
            "7",
            "--rate-limit",
            "100/10s",
            "--token-ttl",
            "60",
            "--client-id",
            "cid",
            "--client-secret",
            "sbx_cs_x",
            "--fail-rate",
            "0.05",
        ])
        .unwrap();
        let cfg = cli.to_config().unwrap();
        assert_eq!(cfg.records_per_object, 100_000);
        assert_eq!(
            cfg.rate_limit,
            Some(RateLimit::new(100, Duration::from_secs(10)))
        );
        assert_eq!(cfg.token_ttl, Duration::from_secs(60));
        assert_eq!(cfg.faults.error_rate, 0.05);
        assert_eq!(cfg.faults.seed, 7);
        assert!(cfg.auth_enabled);
        assert!(Cli::try_parse_from(["x", "--rate-limit", "lots"]).is_err());
        let bad = Cli::try_parse_from(["x", "--fail-rate", "2"]).unwrap();
        assert!(bad.to_config().is_err());
    }
}
