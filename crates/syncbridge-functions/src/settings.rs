//! Settings, read once from the environment at start. A missing or
//! contradictory setting fails the start with a message naming it.

use std::path::PathBuf;
use std::time::Duration;

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
    /// `SYNCBRIDGE_REDIS_URL`: shared rate limiting across processes and
    /// instances (`redis://host:port`); none = an in-process limiter.
    pub redis_url: Option<String>,
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
        })
    }
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| SettingsError {
            name,
            message: format!("{v:?} is not a whole number"),
        }),
    }
}

/// A whole number of at least 1.
fn positive(name: &'static str, default: u64) -> Result<u64, SettingsError> {
    match number(name, default)? {
        0 => Err(SettingsError {
            name,
            message: "must be at least 1".into(),
        }),
        n => Ok(n),
    }
}

/// The HTTP server limits every handler and the local host's front door
/// serve with.
pub fn http_limits_from_env() -> Result<ServerLimits, SettingsError> {
    let d = ServerLimits::DEFAULT;
    Ok(ServerLimits {
        header_read_timeout: Duration::from_secs(positive(
            "SYNCBRIDGE_HTTP_HEADER_TIMEOUT_SECS",
            d.header_read_timeout.as_secs(),
        )?),
        body_read_timeout: Duration::from_secs(positive(
            "SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS",
            d.body_read_timeout.as_secs(),
        )?),
        max_connections: usize::try_from(positive(
            "SYNCBRIDGE_HTTP_MAX_CONNECTIONS",
            d.max_connections as u64,
        )?)
        .unwrap_or(usize::MAX),
    })
}

/// `SYNCBRIDGE_HOST_MAX_BODY_BYTES`: the largest request body the local
/// host's front door lets through (default 100 MiB, Azure's limit).
pub fn host_max_body_bytes_from_env() -> Result<u64, SettingsError> {
    positive("SYNCBRIDGE_HOST_MAX_BODY_BYTES", 100 * 1024 * 1024)
}

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Settings {
            data_dir: var("SYNCBRIDGE_DATA_DIR")
                .map_or_else(|| PathBuf::from(".syncbridge"), PathBuf::from),
            connectors_dir: Self::connectors_dir_from_env()?,
            webhook_tolerance: Duration::from_secs(number(
                "SYNCBRIDGE_WEBHOOK_TOLERANCE_SECS",
                300,
            )?),
            webhook_dedup_window: Duration::from_secs(number(
                "SYNCBRIDGE_WEBHOOK_DEDUP_SECS",
                86_400,
            )?),
            webhook_max_bytes: number("SYNCBRIDGE_WEBHOOK_MAX_BYTES", 1 << 20)? as usize,
            lease_for: Duration::from_secs(number("SYNCBRIDGE_LEASE_SECS", 900)?),
            notify_config: var("SYNCBRIDGE_NOTIFY_CONFIG").map(PathBuf::from),
            redis_url: var("SYNCBRIDGE_REDIS_URL"),
            azure: AzureBackends::from_vars(|k| std::env::var(k).ok())?,
            exit_with_host: ExitWithHost::parse(var("SYNCBRIDGE_EXIT_WITH_HOST"))?,
            fault_store_max_pages: match var("SYNCBRIDGE_FAULT_STORE_MAX_PAGES") {
                None => None,
                Some(_) => Some(number("SYNCBRIDGE_FAULT_STORE_MAX_PAGES", 0)?),
            },
            http: http_limits_from_env()?,
        };
        if let Some(u) = &s.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            return Err(SettingsError {
                name: "SYNCBRIDGE_REDIS_URL",
                message: "must start with redis:// or rediss://".into(),
            });
        }
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
        let dir = var("SYNCBRIDGE_CONNECTORS_DIR").map(PathBuf::from);
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

    /// Defaults rooted at `data_dir` (tests, the CLI).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            data_dir: data_dir.into(),
            connectors_dir: None,
            webhook_tolerance: Duration::from_secs(300),
            webhook_dedup_window: Duration::from_secs(86_400),
            webhook_max_bytes: 1 << 20,
            lease_for: Duration::from_secs(900),
            notify_config: None,
            redis_url: None,
            azure: AzureBackends::default(),
            exit_with_host: ExitWithHost::No,
            fault_store_max_pages: None,
            http: ServerLimits::DEFAULT,
        }
    }
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
}
