//! Process-level contract with the host: header names and the listen port (§2).

use std::net::{Ipv4Addr, SocketAddr};

/// Header carrying the invocation id on every request from the host (§2).
pub const INVOCATION_ID_HEADER: &str = "X-Azure-Functions-InvocationId";

/// Header carrying the host version on every request from the host (§2).
pub const HOST_VERSION_HEADER: &str = "X-Azure-Functions-HostVersion";

/// Prefix of the `User-Agent` the host sends (`Azure-Functions-Host/<ver>`, §2).
pub const USER_AGENT_PREFIX: &str = "Azure-Functions-Host/";

/// Environment variable holding the port the handler must listen on (§2).
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// Environment variable holding the worker id (§2).
pub const WORKER_ID_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_WORKER_ID";

/// Environment variable holding the app root (`/home/site/wwwroot` on Linux, §2).
pub const APP_ROOT_ENV: &str = "FUNCTIONS_APP_ROOT_PATH";

/// The legacy name of [`PORT_ENV`] the host still sets (HTTP worker era, §2).
pub const HTTPWORKER_PORT_ENV: &str = "FUNCTIONS_HTTPWORKER_PORT";

/// The legacy name of [`WORKER_ID_ENV`] the host still sets (§2).
pub const HTTPWORKER_ID_ENV: &str = "FUNCTIONS_HTTPWORKER_ID";

/// Why the listen address could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddrError {
    /// The variable is not set.
    #[error(
        "{PORT_ENV} is not set: the Functions host sets it when it starts the custom \
         handler; set it yourself to run the handler standalone (e.g. {PORT_ENV}=7071)"
    )]
    Missing,
    /// The variable is not a port number in 1..=65535.
    #[error("{PORT_ENV}={value:?} is not a TCP port (expected 1-65535)")]
    Invalid {
        /// The offending value.
        value: String,
    },
}

/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`: the host always calls 127.0.0.1 (§2).
/// The variable is read through `lookup`: the handlers' settings pass the
/// process environment (`syncbridge_functions::settings::listen_addr_from_env`),
/// tests a map, so this crate never reads the environment itself.
///
/// # Errors
/// [`ListenAddrError`] when the variable is missing or not a port.
pub fn listen_addr_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, ListenAddrError> {
    let raw = lookup(PORT_ENV).ok_or(ListenAddrError::Missing)?;
    let port = raw
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ListenAddrError::Invalid { value: raw.clone() })?;
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves a valid port yields 127.0.0.1:<port> and bad values give clear errors.
    #[test]
    fn listen_addr_parsing() {
        let addr = listen_addr_from(|_| Some("7071".into())).unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:7071");
        assert_eq!(listen_addr_from(|_| None), Err(ListenAddrError::Missing));
        for bad in ["", "0", "70000", "http"] {
            let err = listen_addr_from(|_| Some(bad.into())).unwrap_err();
            assert!(err.to_string().contains(PORT_ENV), "{err}");
        }
        assert!(ListenAddrError::Missing.to_string().contains("not set"));
    }
}
