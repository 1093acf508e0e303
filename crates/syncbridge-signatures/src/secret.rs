//! [`WebhookSecret`]: a shared secret (or, for Standard Webhooks `v1a`, a key)
//! that never shows up in logs.

use std::fmt;

use serde::Deserialize;

/// A webhook signing secret, exactly as the provider shows it (for example
/// `whsec_...` for Standard Webhooks, the raw signing secret for Slack).
///
/// `Debug` prints `WebhookSecret(***)`; there is no `Display` and no
/// `Serialize`, so the value only leaves through [`WebhookSecret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookSecret(secret.into())
    }

    /// The secret itself. Call sites are easy to grep for.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl From<String> for WebhookSecret {
    fn from(secret: String) -> Self {
        WebhookSecret(secret)
    }
}

impl From<&str> for WebhookSecret {
    fn from(secret: &str) -> Self {
        WebhookSecret(secret.to_owned())
    }
}
