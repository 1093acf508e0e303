//! Secret values and where keys live.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string. `Debug` and `Display` print `***`, so a secret cannot reach
/// a log line or an error message by accident; read it with [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret text. Call only where the value is sent to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Errors of a secret store.
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// The backend could not be reached or refused the call.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The stored value is unreadable.
    #[error("secret store corrupt: {0}")]
    Corrupt(String),
}

/// Holds data-encryption keys (never one secret per connection: Key Vault's
/// create limit and Microsoft's guidance say keys, not a database).
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug + 'static {
    /// The key with this name and version, if it exists.
    async fn get_key(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(String, SecretString)>, SecretStoreError>;
    /// Stores a new version of the key and returns its version id.
    async fn put_key(&self, name: &str, value: &SecretString) -> Result<String, SecretStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neither Debug nor Display reveals the value.
    #[test]
    fn secret_is_never_printed() {
        let s = SecretString::new("sbx_cs_topsecret");
        assert_eq!(format!("{s:?}"), "SecretString(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "sbx_cs_topsecret");
    }
}
