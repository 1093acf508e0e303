//! Credentials for Redis that change while connections stay open.
//!
//! Azure Managed Redis with Microsoft Entra ID authentication takes an access
//! token of the app's identity as the password (the user name is the
//! identity's object id), and closes a connection whose token expires unless
//! the client sends `AUTH <user> <new token>` on it first. The limiter asks a
//! [`RedisCredentials`] for the current pair before each use of its
//! connection; when the pair changed it re-authenticates the live connection
//! (the heartbeat runs every few seconds, so that happens soon after a
//! refresh even without traffic) and uses the new pair for every new
//! connection. The Azure side (managed identity, token cache) lives outside
//! this crate, so it does not depend on Azure crates.

use std::fmt;

/// A user name and password for `AUTH`. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAuth {
    /// The ACL user (for Entra: the identity's object id).
    pub username: String,
    /// The password (for Entra: the access token).
    pub password: String,
}

impl fmt::Debug for RedisAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why no credentials could be had (the message never contains a secret).
#[derive(Debug, thiserror::Error)]
#[error("redis credentials: {0}")]
pub struct CredentialsError(pub String);

/// The source of the current Redis credentials. Implementations cache: it
/// is called before every use of the connection, and must return a fresh
/// pair early enough before the old one stops working.
#[async_trait::async_trait]
pub trait RedisCredentials: Send + Sync + fmt::Debug {
    /// The pair to use now.
    async fn current(&self) -> Result<RedisAuth, CredentialsError>;
}
