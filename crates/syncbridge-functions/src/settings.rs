//! Settings, read once from the environment at start. A missing or
//! contradictory setting fails the start with a message naming it.

use std::path::PathBuf;
use std::time::Duration;

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

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        let s = Settings {
            data_dir: var("SYNCBRIDGE_DATA_DIR")
                .map_or_else(|| PathBuf::from(".syncbridge"), PathBuf::from),
            connectors_dir: var("SYNCBRIDGE_CONNECTORS_DIR").map(PathBuf::from),
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
        if let Some(dir) = &s.connectors_dir
            && !dir.is_dir()
        {
            return Err(SettingsError {
                name: "SYNCBRIDGE_CONNECTORS_DIR",
                message: format!("{} is not a directory", dir.display()),
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
        }
    }
}
