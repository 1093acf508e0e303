//! Settings, read once from the environment at start. A missing or
//! contradictory setting fails the start with a message naming it.
//!
//! This module is where syncbridge's programs read environment variables:
//! the handlers ([`Settings`]), `syncbridge up` ([`LocalHostSettings`]), the
//! CLI ([`ConnectionSecrets`], [`AzureBackends`]) and logging
//! ([`LogSettings`]). Each reads through a [`syncbridge_env::Env`], the
//! process's ([`ProcessEnv`]) in the `*_from_env` functions, a [`MapEnv`] in
//! tests. Every variable is in README's settings table. `std::env::var` is
//! disallowed elsewhere (workspace `clippy.toml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use syncbridge_env::ProcessEnv;
pub use syncbridge_env::{Env, MapEnv};
pub use syncbridge_protocol::server::ServerLimits;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {message}")]
pub struct SettingsError {
    /// The environment variable.
    pub name: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Process settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SYNCBRIDGE_DATA_DIR`: where the embedded store, queue and key file live
    /// (default `./.syncbridge`).
    pub data_dir: PathBuf,
    /// `SYNCBRIDGE_CONNECTORS_DIR`: extra connector definitions.
    pub connectors_dir: Option<PathBuf>,
    /// `SYNCBRIDGE_WEBHOOK_TOLERANCE_SECS`: accepted clock skew of signed webhooks (default 300).
    pub webhook_tolerance: Duration,
    /// `SYNCBRIDGE_WEBHOOK_DEDUP_SECS`: duplicate-delivery window (default 86400).
    pub webhook_dedup_window: Duration,
    /// `SYNCBRIDGE_WEBHOOK_MAX_BYTES`: largest accepted webhook body (default 1 MiB).
    pub webhook_max_bytes: usize,
    /// `SYNCBRIDGE_LEASE_SECS`: how long a run's lease lasts (default 900).
    pub lease_for: Duration,
    /// `SYNCBRIDGE_NOTIFY_CONFIG`: notification routing file (TOML); none = events are only logged.
    pub notify_config: Option<PathBuf>,
    /// `SYNCBRIDGE_PRODUCT_WEBHOOK_URL` and `SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET`:
    /// where the product's webhook events go (none = not sent).
    pub product_webhook: Option<ProductWebhook>,
    /// `SYNCBRIDGE_REDIS_URL`: shared rate limiting across processes and
    /// instances (`redis://host:port`, `rediss://` for TLS: Azure Managed
    /// Redis is `rediss://<host>:10000`); none = an in-process limiter.
    pub redis_url: Option<String>,
    /// `SYNCBRIDGE_REDIS_AUTH`: how the limiter authenticates to Redis.
    pub redis_auth: RedisAuthMode,
    /// `SYNCBRIDGE_REDIS_CA_FILE`: PEM root certificates to trust for
    /// `rediss://` instead of the system's (a private CA; the tests').
    pub redis_ca_file: Option<PathBuf>,
    /// The Azure backends, when configured (each replaces its embedded default).
    pub azure: AzureBackends,
    /// `SYNCBRIDGE_EXIT_WITH_HOST`: whether the process ends with the host that
    /// started it (the local host sets `stdin`).
    pub exit_with_host: ExitWithHost,
    /// `SYNCBRIDGE_FAULT_STORE_MAX_PAGES`: fault injection for tests, never for
    /// production: caps the embedded store's file at this many pages on every
    /// connection of the process, so writes that would grow it fail with
    /// SQLite's "database or disk is full", as on a full disk.
    pub fault_store_max_pages: Option<u64>,
    /// `SYNCBRIDGE_HTTP_HEADER_TIMEOUT_SECS`, `SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS`,
    /// `SYNCBRIDGE_HTTP_MAX_CONNECTIONS`: what an HTTP client may cost the
    /// handler's server (defaults: 10 s, 30 s, 256; see [`ServerLimits`]).
    pub http: ServerLimits,
    /// `SYNCBRIDGE_WEBHOOK_CHECKPOINT_MS`: how often the webhook receiver
    /// checkpoints the embedded SQLite files in the background (default 20 ms;
    /// 0 leaves it to SQLite's automatic checkpoint on the writer's commit).
    pub webhook_checkpoint: Duration,
    /// `SYNCBRIDGE_PUBLIC_URL`, `SYNCBRIDGE_CONNECT_RETURN_URLS`: the connect flow's.
    pub connect: ConnectSettings,
    /// Where these settings were read from. Kept for the settings whose names
    /// depend on what is configured, read when the state is built at start:
    /// OAuth clients per connector (`SYNCBRIDGE_OAUTH_<P>_*`, see
    /// `syncbridge_credentials::client`), the notification file's `*_env`
    /// secrets and the Key Vault settings.
    pub env: Arc<dyn Env>,
}

/// `SYNCBRIDGE_REDIS_AUTH`: where the limiter's Redis credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisAuthMode {
    /// `url` (the default): the user and password in `SYNCBRIDGE_REDIS_URL`, if any.
    #[default]
    Url,
    /// `entra`: Microsoft Entra tokens of the app's identity (scope
    /// `https://redis.azure.com/.default`, `AZURE_CLIENT_ID` /
    /// `SYNCBRIDGE_AZURE_CREDENTIAL` as for the other Azure clients) as the
    /// password and the token's `oid` claim (the identity's object id) as the
    /// user, renewed before they expire (Azure Managed Redis).
    Entra,
}

impl RedisAuthMode {
    fn parse(v: Option<String>) -> Result<Self, SettingsError> {
        match v.as_deref().map(str::trim) {
            None | Some("url") => Ok(RedisAuthMode::Url),
            Some("entra") => Ok(RedisAuthMode::Entra),
            Some(other) => Err(SettingsError {
                name: "SYNCBRIDGE_REDIS_AUTH",
                message: format!("expected `url` or `entra`, got {other:?}"),
            }),
        }
    }
}

/// Entra tokens are accepted over TLS only, and a CA file must exist.
fn check_redis_tls(s: &Settings) -> Result<(), SettingsError> {
    let tls = s
        .redis_url
        .as_deref()
        .is_some_and(|u| u.starts_with("rediss://"));
    if s.redis_auth == RedisAuthMode::Entra && !tls {
        return Err(SettingsError {
            name: "SYNCBRIDGE_REDIS_AUTH",
            message: "Microsoft Entra authentication needs SYNCBRIDGE_REDIS_URL=rediss://…".into(),
        });
    }
    if let Some(f) = &s.redis_ca_file
        && !f.is_file()
    {
        return Err(SettingsError {
            name: "SYNCBRIDGE_REDIS_CA_FILE",
            message: format!("{} is not a file", f.display()),
        });
    }
    Ok(())
}

/// The product's webhook endpoint. `Debug` shows neither value (the URL
/// may carry a token, the secret signs).
#[derive(Debug, Clone)]
pub struct ProductWebhook {
    /// `SYNCBRIDGE_PRODUCT_WEBHOOK_URL`: an http(s) URL.
    pub url: syncbridge_core::SecretString,
    /// `SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET`: the Standard Webhooks secret (`whsec_…`).
    pub secret: syncbridge_signatures::WebhookSecret,
}

impl ProductWebhook {
    /// Reads the process environment (the CLI's embedded commands, which
    /// otherwise take their settings from arguments).
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        Self::from_source(&ProcessEnv)
    }

    /// Both variables or neither; the secret must be usable for signing.
    fn from_source(env: &dyn Env) -> Result<Option<Self>, SettingsError> {
        const URL: &str = "SYNCBRIDGE_PRODUCT_WEBHOOK_URL";
        const SECRET: &str = "SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET";
        let (url, secret) = match (var(env, URL), var(env, SECRET)) {
            (None, None) => return Ok(None),
            (Some(u), Some(s)) => (u, s),
            (Some(_), None) => {
                return Err(SettingsError {
                    name: SECRET,
                    message: format!("must be set when {URL} is (a whsec_… secret)"),
                });
            }
            (None, Some(_)) => {
                return Err(SettingsError {
                    name: URL,
                    message: format!("must be set when {SECRET} is"),
                });
            }
        };
        // Messages name the problem, never the value.
        match url::Url::parse(url.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(SettingsError {
                    name: URL,
                    message: "is not an http(s) URL with a host".into(),
                });
            }
        }
        let secret = syncbridge_signatures::WebhookSecret::new(secret.trim());
        syncbridge_signatures::check_secret(
            &syncbridge_signatures::Scheme::StandardWebhooks,
            &secret,
        )
        .map_err(|e| SettingsError {
            name: SECRET,
            message: format!("unusable Standard Webhooks secret: {e}"),
        })?;
        Ok(Some(ProductWebhook {
            url: syncbridge_core::SecretString::new(url.trim()),
            secret,
        }))
    }
}

/// How a handler notices that its host is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitWithHost {
    /// It does not (the Functions host in Azure stops its handlers itself).
    #[default]
    No,
    /// Exit when stdin reaches end-of-file: the host holds the pipe's other end,
    /// which the kernel closes when the host dies, however it dies.
    StdinEof,
}

impl ExitWithHost {
    fn parse(v: Option<String>) -> Result<Self, SettingsError> {
        match v.as_deref().map(str::trim) {
            None => Ok(ExitWithHost::No),
            Some("stdin") => Ok(ExitWithHost::StdinEof),
            Some(other) => Err(SettingsError {
                name: "SYNCBRIDGE_EXIT_WITH_HOST",
                message: format!("{other:?} is not a way to watch the host (use \"stdin\")"),
            }),
        }
    }
}

/// Which Azure backends are configured. Cosmos DB and Service Bus go
/// together: a Cosmos store with the machine-local queue (or the reverse) is
/// refused at start.
#[derive(Debug, Clone, Default)]
pub struct AzureBackends {
    /// `SYNCBRIDGE_COSMOS_ENDPOINT` (+ `_DATABASE`, `_CONTAINER`, `_REGION`).
    pub cosmos: Option<syncbridge_cosmos::CosmosSettings>,
    /// `ServiceBusConnection__fullyQualifiedNamespace` or `SYNCBRIDGE_SERVICEBUS_ENDPOINT`.
    pub service_bus: Option<syncbridge_servicebus::ServiceBusSettings>,
    /// `SYNCBRIDGE_KEY_VAULT_URI`: the data-encryption key lives in Key Vault.
    pub key_vault: bool,
    /// `SYNCBRIDGE_AZURE_CREDENTIAL`: the app's managed identity (default), or
    /// the operator's `az login` for the CLI.
    pub credential: syncbridge_servicebus::entra::CredentialKind,
    /// `AZURE_CLIENT_ID`: a user-assigned managed identity's client id (none:
    /// the system-assigned identity).
    pub client_id: Option<String>,
}

impl AzureBackends {
    /// Reads the Azure settings through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String> + Copy) -> Result<Self, SettingsError> {
        let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
        let credential =
            syncbridge_servicebus::entra::CredentialKind::from_vars(var).map_err(|message| {
                SettingsError {
                    name: syncbridge_servicebus::entra::SETTING_CREDENTIAL,
                    message,
                }
            })?;
        let cosmos = if set("SYNCBRIDGE_COSMOS_ENDPOINT") {
            Some(
                syncbridge_cosmos::CosmosSettings::from_vars(var).map_err(|message| {
                    SettingsError {
                        name: "SYNCBRIDGE_COSMOS_ENDPOINT",
                        message,
                    }
                })?,
            )
        } else {
            None
        };
        let sb_set = set(syncbridge_servicebus::SETTING_NAMESPACE)
            || set(syncbridge_servicebus::SETTING_ENDPOINT);
        let service_bus = if sb_set {
            Some(
                syncbridge_servicebus::ServiceBusSettings::from_vars(var).map_err(|message| {
                    SettingsError {
                        name: syncbridge_servicebus::SETTING_NAMESPACE,
                        message,
                    }
                })?,
            )
        } else {
            None
        };
        match (&cosmos, &service_bus) {
            (Some(_), None) => {
                return Err(SettingsError {
                    name: syncbridge_servicebus::SETTING_NAMESPACE,
                    message:
                        "SYNCBRIDGE_COSMOS_ENDPOINT is set, so the queues must be Service Bus too"
                            .into(),
                });
            }
            (None, Some(_)) if !set(syncbridge_servicebus::SETTING_ENDPOINT) => {
                return Err(SettingsError {
                    name: "SYNCBRIDGE_COSMOS_ENDPOINT",
                    message: "Service Bus is configured, so the store must be Cosmos DB too".into(),
                });
            }
            _ => {}
        }
        Ok(AzureBackends {
            cosmos,
            service_bus,
            key_vault: set("SYNCBRIDGE_KEY_VAULT_URI"),
            credential,
            client_id: var("AZURE_CLIENT_ID"),
        })
    }

    /// The Azure settings of this process (the CLI's operator commands).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(|k| ProcessEnv.var(k))
    }
}

/// A set, non-blank value.
fn var(env: &dyn Env, name: &'static str) -> Option<String> {
    env.var(name).filter(|v| !v.trim().is_empty())
}

fn number(env: &dyn Env, name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match var(env, name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| SettingsError {
            name,
            message: format!("{v:?} is not a whole number"),
        }),
    }
}

/// A whole number of at least 1.
fn positive(env: &dyn Env, name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match number(env, name, default)? {
        0 => Err(SettingsError {
            name,
            message: "must be at least 1".into(),
        }),
        n => Ok(n),
    }
}

/// The HTTP server limits every handler and the local host's front door
/// serve with.
pub fn http_limits(env: &dyn Env) -> Result<ServerLimits, SettingsError> {
    let d = ServerLimits::DEFAULT;
    Ok(ServerLimits {
        header_read_timeout: Duration::from_secs(positive(
            env,
            "SYNCBRIDGE_HTTP_HEADER_TIMEOUT_SECS",
            d.header_read_timeout.as_secs(),
        )?),
        body_read_timeout: Duration::from_secs(positive(
            env,
            "SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS",
            d.body_read_timeout.as_secs(),
        )?),
        max_connections: usize::try_from(positive(
            env,
            "SYNCBRIDGE_HTTP_MAX_CONNECTIONS",
            d.max_connections as u64,
        )?)
        .unwrap_or(usize::MAX),
    })
}

/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`, the address a handler binary
/// listens on (the variable is the host's: its name lives in
/// `syncbridge-protocol`).
pub fn listen_addr_from_env() -> Result<SocketAddr, syncbridge_protocol::ListenAddrError> {
    syncbridge_protocol::listen_addr_from(|name| ProcessEnv.var(name))
}

/// What the logging of a program is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `SYNCBRIDGE_LOG_FORMAT` (`json` or `text`; see
    /// [`crate::telemetry::LogFormat::from_vars`]).
    pub format: Option<String>,
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`: set when a Functions host started us
    /// (logs are JSON there unless the format says otherwise).
    pub handler_port: Option<String>,
    /// `RUST_LOG`: the log filter (each program has its own default).
    pub filter: Option<String>,
}

impl LogSettings {
    /// Reads `env`.
    pub fn from_source(env: &dyn Env) -> Self {
        LogSettings {
            format: env.var(crate::telemetry::LOG_FORMAT_VAR),
            handler_port: env.var(syncbridge_protocol::PORT_ENV),
            filter: env.var("RUST_LOG"),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_source(&ProcessEnv)
    }

    /// `RUST_LOG` as a filter, or `default` when it is unset or not a filter.
    pub fn env_filter(&self, default: &str) -> tracing_subscriber::EnvFilter {
        self.filter
            .as_deref()
            .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default))
    }
}

/// What `syncbridge up` passes on to the handlers it starts (app settings,
/// with the defaults the deployment's infra sets too) and its front door's limits.
#[derive(Debug, Clone)]
pub struct LocalHostSettings {
    /// `SYNC_SCHEDULER_SCHEDULE`: the scheduler's NCRONTAB (default every minute).
    pub scheduler_schedule: String,
    /// `TOKEN_REFRESHER_SCHEDULE`: the token refresher's NCRONTAB (default every 5 minutes).
    pub token_refresher_schedule: String,
    /// `RUST_LOG`, passed on when set.
    pub rust_log: Option<String>,
    /// `SYNCBRIDGE_LOG_FORMAT` for the handlers (default `text`: the local
    /// host forwards their lines to a person).
    pub log_format: String,
    /// The front door's limits (the `SYNCBRIDGE_HTTP_*` settings).
    pub http: ServerLimits,
    /// `SYNCBRIDGE_HOST_MAX_BODY_BYTES`: the largest request body the local
    /// host's front door lets through (default 100 MiB, Azure's limit).
    pub max_body_bytes: u64,
}

impl LocalHostSettings {
    /// The app setting naming the scheduler's schedule.
    pub const SCHEDULER_SCHEDULE: &str = "SYNC_SCHEDULER_SCHEDULE";
    /// The app setting naming the token refresher's schedule.
    pub const TOKEN_REFRESHER_SCHEDULE: &str = "TOKEN_REFRESHER_SCHEDULE";

    /// Reads `env`.
    pub fn from_source(env: &dyn Env) -> Result<Self, SettingsError> {
        Ok(LocalHostSettings {
            scheduler_schedule: env
                .var(Self::SCHEDULER_SCHEDULE)
                .unwrap_or_else(|| "0 * * * * *".into()),
            token_refresher_schedule: env
                .var(Self::TOKEN_REFRESHER_SCHEDULE)
                .unwrap_or_else(|| "0 */5 * * * *".into()),
            rust_log: env.var("RUST_LOG"),
            log_format: env
                .var(crate::telemetry::LOG_FORMAT_VAR)
                .unwrap_or_else(|| "text".into()),
            http: http_limits(env)?,
            max_body_bytes: positive(env, "SYNCBRIDGE_HOST_MAX_BODY_BYTES", 100 * 1024 * 1024)?,
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_source(&ProcessEnv)
    }
}

/// Credentials `syncbridge connections add` takes from the environment only,
/// so they stay out of shell history. `Debug` shows which are set, not their values.
#[derive(Clone, Default)]
pub struct ConnectionSecrets {
    /// `SYNCBRIDGE_ACCESS_TOKEN`: an OAuth access token.
    pub access_token: Option<String>,
    /// `SYNCBRIDGE_REFRESH_TOKEN`: an OAuth refresh token.
    pub refresh_token: Option<String>,
    /// `SYNCBRIDGE_API_KEY`: the key of an `api_key` connector.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecrets")
            .field("access_token", &self.access_token.as_ref().map(|_| "<set>"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<set>"),
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ConnectionSecrets {
    /// Reads `env`.
    pub fn from_source(env: &dyn Env) -> Self {
        ConnectionSecrets {
            access_token: env.var("SYNCBRIDGE_ACCESS_TOKEN"),
            refresh_token: env.var("SYNCBRIDGE_REFRESH_TOKEN"),
            api_key: env.var("SYNCBRIDGE_API_KEY"),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_source(&ProcessEnv)
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_source(Arc::new(ProcessEnv))
    }

    /// Reads `env` (tests pass a [`MapEnv`]).
    pub fn from_source(env: Arc<dyn Env>) -> Result<Self, SettingsError> {
        let e: &dyn Env = &*env;
        let s = Settings {
            data_dir: var(e, "SYNCBRIDGE_DATA_DIR")
                .map_or_else(|| PathBuf::from(".syncbridge"), PathBuf::from),
            connectors_dir: connectors_dir(e)?,
            webhook_tolerance: Duration::from_secs(number(
                e,
                "SYNCBRIDGE_WEBHOOK_TOLERANCE_SECS",
                300,
            )?),
            webhook_dedup_window: Duration::from_secs(number(
                e,
                "SYNCBRIDGE_WEBHOOK_DEDUP_SECS",
                86_400,
            )?),
            webhook_max_bytes: number(e, "SYNCBRIDGE_WEBHOOK_MAX_BYTES", 1 << 20)? as usize,
            lease_for: Duration::from_secs(number(e, "SYNCBRIDGE_LEASE_SECS", 900)?),
            notify_config: var(e, "SYNCBRIDGE_NOTIFY_CONFIG").map(PathBuf::from),
            product_webhook: ProductWebhook::from_source(e)?,
            redis_url: var(e, "SYNCBRIDGE_REDIS_URL"),
            redis_auth: RedisAuthMode::parse(var(e, "SYNCBRIDGE_REDIS_AUTH"))?,
            redis_ca_file: var(e, "SYNCBRIDGE_REDIS_CA_FILE").map(PathBuf::from),
            azure: AzureBackends::from_vars(|k| e.var(k))?,
            exit_with_host: ExitWithHost::parse(var(e, "SYNCBRIDGE_EXIT_WITH_HOST"))?,
            fault_store_max_pages: match var(e, "SYNCBRIDGE_FAULT_STORE_MAX_PAGES") {
                None => None,
                Some(_) => Some(number(e, "SYNCBRIDGE_FAULT_STORE_MAX_PAGES", 0)?),
            },
            http: http_limits(e)?,
            webhook_checkpoint: Duration::from_millis(number(
                e,
                "SYNCBRIDGE_WEBHOOK_CHECKPOINT_MS",
                20,
            )?),
            connect: ConnectSettings::from_source(e)?,
            env: env.clone(),
        };
        if let Some(u) = &s.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            return Err(SettingsError {
                name: "SYNCBRIDGE_REDIS_URL",
                message: "must start with redis:// or rediss://".into(),
            });
        }
        check_redis_tls(&s)?;
        if let Some(p) = &s.notify_config
            && !p.is_file()
        {
            return Err(SettingsError {
                name: "SYNCBRIDGE_NOTIFY_CONFIG",
                message: format!("{} is not a file", p.display()),
            });
        }
        if s.lease_for.is_zero() {
            return Err(SettingsError {
                name: "SYNCBRIDGE_LEASE_SECS",
                message: "must be at least 1".into(),
            });
        }
        Ok(s)
    }

    /// `SYNCBRIDGE_CONNECTORS_DIR` on its own: the CLI's embedded commands
    /// take the data dir from their arguments but load the same connector
    /// definitions as the handlers.
    pub fn connectors_dir_from_env() -> Result<Option<PathBuf>, SettingsError> {
        connectors_dir(&ProcessEnv)
    }

    /// Defaults rooted at `data_dir` (tests, the CLI). The settings read by
    /// name when the state is built ([`Settings::env`]: OAuth clients,
    /// notification secrets) still come from the process environment.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            data_dir: data_dir.into(),
            connectors_dir: None,
            webhook_tolerance: Duration::from_secs(300),
            webhook_dedup_window: Duration::from_secs(86_400),
            webhook_max_bytes: 1 << 20,
            lease_for: Duration::from_secs(900),
            notify_config: None,
            product_webhook: None,
            redis_url: None,
            redis_auth: RedisAuthMode::Url,
            redis_ca_file: None,
            azure: AzureBackends::default(),
            exit_with_host: ExitWithHost::No,
            fault_store_max_pages: None,
            http: ServerLimits::DEFAULT,
            webhook_checkpoint: Duration::from_millis(20),
            connect: ConnectSettings::default(),
            env: Arc::new(ProcessEnv),
        }
    }
}

/// The connect flow's settings (the OAuth authorization-code flow that
/// `POST /v1/connect/sessions` starts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectSettings {
    /// `SYNCBRIDGE_PUBLIC_URL`: the deployment's public base URL (the
    /// front door, `https://<app>.azurewebsites.net`; `syncbridge up` sets
    /// `http://127.0.0.1:<port>` when it is unset). The flow's one
    /// `redirect_uri` is `<it>/api/v1/connect/callback`, the URI to register
    /// with each provider app; none = no connect flow.
    pub public_url: Option<url::Url>,
    /// `SYNCBRIDGE_CONNECT_RETURN_URLS`: comma-separated URL prefixes a
    /// session's `return_url` must start with (none = every session refused).
    pub return_urls: Vec<String>,
}

impl ConnectSettings {
    /// `SYNCBRIDGE_PUBLIC_URL`.
    pub const PUBLIC_URL: &'static str = "SYNCBRIDGE_PUBLIC_URL";
    /// `SYNCBRIDGE_CONNECT_RETURN_URLS`.
    pub const RETURN_URLS: &'static str = "SYNCBRIDGE_CONNECT_RETURN_URLS";

    /// Reads the process environment (the CLI's `connect`).
    ///
    /// # Errors
    /// A value that is not an absolute http(s) URL.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_source(&ProcessEnv)
    }

    fn from_source(env: &dyn Env) -> Result<Self, SettingsError> {
        let http_url = |name: &'static str, v: &str| -> Result<url::Url, SettingsError> {
            match url::Url::parse(v.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
                _ => Err(SettingsError {
                    name,
                    message: format!("{v:?} is not an absolute http(s) URL"),
                }),
            }
        };
        let public_url = match var(env, Self::PUBLIC_URL) {
            None => None,
            Some(v) => {
                let u = http_url(Self::PUBLIC_URL, &v)?;
                if u.query().is_some() || u.fragment().is_some() {
                    return Err(SettingsError {
                        name: Self::PUBLIC_URL,
                        message: "must not carry a query or fragment".into(),
                    });
                }
                Some(u)
            }
        };
        let mut return_urls = Vec::new();
        for item in var(env, Self::RETURN_URLS)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            http_url(Self::RETURN_URLS, item)?;
            return_urls.push(item.to_owned());
        }
        Ok(ConnectSettings {
            public_url,
            return_urls,
        })
    }

    /// The flow's `redirect_uri`: `<public URL>/api/v1/connect/callback`.
    pub fn redirect_uri(&self) -> Option<url::Url> {
        let base = self.public_url.as_ref()?;
        let path = format!(
            "{}/api/v1/connect/callback",
            base.path().trim_end_matches('/')
        );
        let mut u = base.clone();
        u.set_path(&path);
        Some(u)
    }

    /// Whether `url` starts with an allowed prefix, ending at a boundary
    /// (`https://app.example` allows `https://app.example/x`, never
    /// `https://app.example.evil.com`), and is itself an http(s) URL.
    pub fn return_url_allowed(&self, url: &str) -> bool {
        let parsed = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        parsed
            && self.return_urls.iter().any(|p| {
                url.strip_prefix(p.as_str()).is_some_and(|rest| {
                    p.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
                })
            })
    }
}

/// `SYNCBRIDGE_CONNECTORS_DIR`: extra connector definitions, a directory.
fn connectors_dir(env: &dyn Env) -> Result<Option<PathBuf>, SettingsError> {
    let dir = var(env, "SYNCBRIDGE_CONNECTORS_DIR").map(PathBuf::from);
    if let Some(d) = &dir
        && !d.is_dir()
    {
        return Err(SettingsError {
            name: "SYNCBRIDGE_CONNECTORS_DIR",
            message: format!("{} is not a directory", d.display()),
        });
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + Copy {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn map(pairs: &[(&str, &str)]) -> Arc<dyn Env> {
        Arc::new(pairs.iter().copied().collect::<MapEnv>())
    }

    /// An empty environment gives the documented defaults; set values are
    /// read through the injected environment, not the process's.
    #[test]
    fn settings_from_a_map() {
        let s = Settings::from_source(map(&[])).unwrap();
        assert_eq!(s.data_dir, PathBuf::from(".syncbridge"));
        assert_eq!(s.webhook_checkpoint, Duration::from_millis(20));
        assert_eq!(s.lease_for, Duration::from_secs(900));
        assert_eq!(s.http, ServerLimits::DEFAULT);
        let s = Settings::from_source(map(&[
            ("SYNCBRIDGE_DATA_DIR", "/srv/sb"),
            ("SYNCBRIDGE_WEBHOOK_CHECKPOINT_MS", " 0 "),
            ("SYNCBRIDGE_LEASE_SECS", "60"),
            ("SYNCBRIDGE_HTTP_MAX_CONNECTIONS", "8"),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        ]))
        .unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/sb"));
        assert!(s.webhook_checkpoint.is_zero());
        assert_eq!(s.lease_for, Duration::from_secs(60));
        assert_eq!(s.http.max_connections, 8);
        assert_eq!(
            s.azure.client_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        assert_eq!(
            s.env.var("AZURE_CLIENT_ID").as_deref(),
            Some("00000000-0000-0000-0000-000000000001"),
            "the source is kept for the settings read by name at start"
        );
    }

    /// The product webhook needs both its URL and a usable secret; `Debug` shows neither.
    #[test]
    fn product_webhook_settings() {
        let url = "https://product.example.com/hooks?token=TOPSECRETURL";
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = Settings::from_source(map(&[
            ("SYNCBRIDGE_PRODUCT_WEBHOOK_URL", url),
            ("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET", secret),
        ]))
        .unwrap();
        let p = s.product_webhook.as_ref().expect("configured");
        assert_eq!(p.url.expose(), url);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("TOPSECRETURL") && !debug.contains("MfKQ9r8G"),
            "{debug}"
        );
        assert!(
            Settings::from_source(map(&[]))
                .unwrap()
                .product_webhook
                .is_none()
        );
        for (pairs, name) in [
            (
                vec![("SYNCBRIDGE_PRODUCT_WEBHOOK_URL", url)],
                "SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET",
            ),
            (
                vec![("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET", secret)],
                "SYNCBRIDGE_PRODUCT_WEBHOOK_URL",
            ),
            (
                vec![
                    ("SYNCBRIDGE_PRODUCT_WEBHOOK_URL", "ftp://x"),
                    ("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET", secret),
                ],
                "SYNCBRIDGE_PRODUCT_WEBHOOK_URL",
            ),
            (
                vec![
                    ("SYNCBRIDGE_PRODUCT_WEBHOOK_URL", url),
                    ("SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET", "whsec_!!notbase64!!"),
                ],
                "SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET",
            ),
        ] {
            let e = Settings::from_source(map(&pairs)).unwrap_err();
            assert_eq!(e.name, name);
            assert!(!e.to_string().contains("TOPSECRETURL"), "{e}");
        }
    }

    /// A value that is not usable stops the start with an error naming its variable.
    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("SYNCBRIDGE_WEBHOOK_CHECKPOINT_MS", "fast"),
            ("SYNCBRIDGE_LEASE_SECS", "0"),
            ("SYNCBRIDGE_WEBHOOK_DEDUP_SECS", "-1"),
            ("SYNCBRIDGE_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("SYNCBRIDGE_REDIS_URL", "http://cache:6379"),
            ("SYNCBRIDGE_REDIS_AUTH", "entra"),
            ("SYNCBRIDGE_REDIS_AUTH", "kerberos"),
            ("SYNCBRIDGE_REDIS_CA_FILE", "/surely/not/a/file/42"),
            ("SYNCBRIDGE_EXIT_WITH_HOST", "parent"),
            ("SYNCBRIDGE_CONNECTORS_DIR", "/surely/not/a/dir/42"),
        ] {
            let e = Settings::from_source(map(&[(name, value)])).unwrap_err();
            assert_eq!(e.name, name, "{value:?}: {e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = LocalHostSettings::from_source(
            &MapEnv::new().with("SYNCBRIDGE_HOST_MAX_BODY_BYTES", "0"),
        )
        .unwrap_err();
        assert_eq!(e.name, "SYNCBRIDGE_HOST_MAX_BODY_BYTES");
    }

    /// `syncbridge up` passes the schedules, the log filter and a text log
    /// format on; the defaults are the deployment's.
    #[test]
    fn local_host_settings_defaults_and_values() {
        let d = LocalHostSettings::from_source(&MapEnv::new()).unwrap();
        assert_eq!(d.scheduler_schedule, "0 * * * * *");
        assert_eq!(d.token_refresher_schedule, "0 */5 * * * *");
        assert_eq!((d.rust_log, d.log_format.as_str()), (None, "text"));
        assert_eq!(d.max_body_bytes, 100 * 1024 * 1024);
        let v = LocalHostSettings::from_source(
            &MapEnv::new()
                .with("SYNC_SCHEDULER_SCHEDULE", "*/5 * * * * *")
                .with("RUST_LOG", "debug")
                .with("SYNCBRIDGE_LOG_FORMAT", "json"),
        )
        .unwrap();
        assert_eq!(v.scheduler_schedule, "*/5 * * * * *");
        assert_eq!(v.rust_log.as_deref(), Some("debug"));
        assert_eq!(v.log_format, "json");
    }

    /// Tokens given to `connections add` through the environment never show in `Debug`.
    #[test]
    fn connection_secrets_do_not_print() {
        let s = ConnectionSecrets::from_source(
            &MapEnv::new()
                .with("SYNCBRIDGE_ACCESS_TOKEN", "at-secret-1")
                .with("SYNCBRIDGE_API_KEY", "key-secret-2"),
        );
        assert_eq!(s.access_token.as_deref(), Some("at-secret-1"));
        assert_eq!(s.refresh_token, None);
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    /// The log settings decide the format and the filter; a bad filter falls back to the default.
    #[test]
    fn log_settings_from_a_map() {
        let l = LogSettings::from_source(
            &MapEnv::new()
                .with(syncbridge_protocol::PORT_ENV, "7071")
                .with("RUST_LOG", "debug"),
        );
        assert_eq!(l.handler_port.as_deref(), Some("7071"));
        assert_eq!(l.env_filter("info").to_string(), "debug");
        let bad = LogSettings {
            filter: Some("sync=notalevel".into()),
            ..LogSettings::default()
        };
        assert_eq!(bad.env_filter("warn").to_string(), "warn");
    }

    /// The host lifeline is off by default, `stdin` turns it on, anything else is refused.
    #[test]
    fn exit_with_host_table() {
        assert_eq!(ExitWithHost::parse(None).unwrap(), ExitWithHost::No);
        assert_eq!(
            ExitWithHost::parse(Some(" stdin ".into())).unwrap(),
            ExitWithHost::StdinEof
        );
        let e = ExitWithHost::parse(Some("parent".into())).unwrap_err();
        assert_eq!(e.name, "SYNCBRIDGE_EXIT_WITH_HOST");
    }

    /// No Azure setting selects the embedded default; half an Azure setup is refused naming the missing setting.
    #[test]
    fn azure_backend_selection_table() {
        let none = AzureBackends::from_vars(vars(&[])).unwrap();
        assert!(none.cosmos.is_none() && none.service_bus.is_none() && !none.key_vault);
        let both = AzureBackends::from_vars(vars(&[
            (
                "SYNCBRIDGE_COSMOS_ENDPOINT",
                "https://acct.documents.azure.com:443/",
            ),
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "ns.servicebus.windows.net",
            ),
            ("SYNCBRIDGE_KEY_VAULT_URI", "https://kv.vault.azure.net/"),
        ]))
        .unwrap();
        assert!(both.cosmos.is_some() && both.service_bus.is_some() && both.key_vault);
        let e = AzureBackends::from_vars(vars(&[(
            "SYNCBRIDGE_COSMOS_ENDPOINT",
            "https://acct.documents.azure.com:443/",
        )]))
        .unwrap_err();
        assert_eq!(e.name, "ServiceBusConnection__fullyQualifiedNamespace");
        let e = AzureBackends::from_vars(vars(&[(
            "ServiceBusConnection__fullyQualifiedNamespace",
            "ns.servicebus.windows.net",
        )]))
        .unwrap_err();
        assert_eq!(e.name, "SYNCBRIDGE_COSMOS_ENDPOINT");
        let e =
            AzureBackends::from_vars(vars(&[("SYNCBRIDGE_AZURE_CREDENTIAL", "cli")])).unwrap_err();
        assert_eq!(e.name, "SYNCBRIDGE_AZURE_CREDENTIAL");
        // The local host's Service Bus REST endpoint may be used with the embedded store.
        assert!(
            AzureBackends::from_vars(vars(&[(
                "SYNCBRIDGE_SERVICEBUS_ENDPOINT",
                "http://127.0.0.1:7071/"
            )]))
            .is_ok()
        );
    }

    /// The connect settings: URLs are checked, return URLs match by prefix
    /// at a boundary only, and the redirect URI hangs off the public URL.
    #[test]
    fn connect_settings() {
        let env = MapEnv::new()
            .with("SYNCBRIDGE_PUBLIC_URL", "https://sb.example/base/")
            .with(
                "SYNCBRIDGE_CONNECT_RETURN_URLS",
                "https://app.example, http://127.0.0.1:9/done/",
            );
        let c = ConnectSettings::from_source(&env).unwrap();
        assert_eq!(
            c.redirect_uri().unwrap().as_str(),
            "https://sb.example/base/api/v1/connect/callback"
        );
        assert!(c.return_url_allowed("https://app.example"));
        assert!(c.return_url_allowed("https://app.example/settings?x=1"));
        assert!(!c.return_url_allowed("https://app.example.evil.com/"));
        assert!(!c.return_url_allowed("https://app.examplex/"));
        assert!(c.return_url_allowed("http://127.0.0.1:9/done/ok"));
        assert!(!c.return_url_allowed("http://127.0.0.1:9/other"));
        assert!(!c.return_url_allowed("javascript:alert(1)"));
        assert_eq!(ConnectSettings::default().redirect_uri(), None);
        assert!(!ConnectSettings::default().return_url_allowed("https://app.example/"));
        for (name, v) in [
            ("SYNCBRIDGE_PUBLIC_URL", "ftp://x"),
            ("SYNCBRIDGE_PUBLIC_URL", "https://x/?a=1"),
            (
                "SYNCBRIDGE_CONNECT_RETURN_URLS",
                "https://ok.example,not a url",
            ),
        ] {
            let err = ConnectSettings::from_source(&MapEnv::new().with(name, v)).unwrap_err();
            assert_eq!(err.name, name);
        }
    }
}
