//! What is inside the ciphertext: the [`CredentialDoc`] and, once the
//! provider has refused the refresh token, a [`ReauthMark`].
//!
//! Every secret field is a [`SecretString`], so the derived `Debug` prints
//! `SecretString(***)` for it: a document can be logged by accident and
//! still reveal nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncbridge_core::{ConnectionId, SecretString, Timestamp};

/// A connection's secrets, serialized (JSON, tagged by `type`) and sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialDoc {
    /// OAuth 2.0 tokens.
    #[serde(rename = "oauth2")]
    OAuth2 {
        /// Bearer token for provider requests.
        access_token: SecretString,
        /// Token for the next `grant_type=refresh_token` (may rotate).
        #[serde(default)]
        refresh_token: Option<SecretString>,
        /// When the access token expires (`issued_at + expires_in`), if the
        /// provider said.
        #[serde(default)]
        expires_at: Option<Timestamp>,
        /// When the access token was obtained.
        issued_at: Timestamp,
        /// Granted scopes, space-separated, if the provider said.
        #[serde(default)]
        scope: Option<String>,
        /// The API base URL the token response named (the connector's
        /// `auth.base_url_from`, Salesforce `instance_url`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
    },
    /// A static API key.
    ApiKey {
        /// The key.
        key: SecretString,
    },
    /// HTTP Basic credentials.
    Basic {
        /// User name (not secret).
        user: String,
        /// Password.
        password: SecretString,
    },
}

impl CredentialDoc {
    /// OAuth tokens obtained at `now`, expiring `expires_in` later if given.
    pub fn oauth2(
        access_token: SecretString,
        refresh_token: Option<SecretString>,
        expires_in: Option<Duration>,
        now: Timestamp,
    ) -> Self {
        CredentialDoc::OAuth2 {
            access_token,
            refresh_token,
            expires_at: expires_in.map(|d| now.add(d)),
            issued_at: now,
            scope: None,
            base_url: None,
        }
    }

    /// `oauth2`, `api_key` or `basic`.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialDoc::OAuth2 { .. } => "oauth2",
            CredentialDoc::ApiKey { .. } => "api_key",
            CredentialDoc::Basic { .. } => "basic",
        }
    }

    /// The access token, for OAuth documents.
    pub fn access_token(&self) -> Option<&SecretString> {
        match self {
            CredentialDoc::OAuth2 { access_token, .. } => Some(access_token),
            _ => None,
        }
    }

    /// The API base URL stored with OAuth tokens, when the token response named one.
    pub fn base_url(&self) -> Option<&str> {
        match self {
            CredentialDoc::OAuth2 { base_url, .. } => base_url.as_deref(),
            _ => None,
        }
    }

    /// Access-token expiry, for OAuth documents that have one.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            CredentialDoc::OAuth2 { expires_at, .. } => *expires_at,
            _ => None,
        }
    }
}

/// Recorded inside the sealed document when the provider refused the
/// refresh token: nothing calls the provider for this credential until a
/// person re-authorizes (a new credential replaces this one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReauthMark {
    /// When it was marked.
    pub at: Timestamp,
    /// The provider's error code (`invalid_grant`) or ours (`no_refresh_token`).
    pub reason: String,
}

/// The sealed plaintext: the document plus the re-authorization mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub(crate) doc: CredentialDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reauth: Option<ReauthMark>,
}

/// A stored credential, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCredential {
    /// Owning connection.
    pub connection: ConnectionId,
    /// Compare-and-swap version in the store.
    pub version: i64,
    /// DEK version that sealed it.
    pub key_version: String,
    /// The secrets.
    pub doc: CredentialDoc,
    /// Set when the provider refused the refresh token.
    pub needs_reauth: Option<ReauthMark>,
    /// The store's plaintext sweep metadata (see [`sweep_expiry`]).
    pub meta_expires_at: Option<Timestamp>,
    /// When it was last refreshed (or created).
    pub refreshed_at: Timestamp,
}

/// The plaintext `expires_at` stored next to the ciphertext, which is what
/// the sweep selects on:
///
/// - OAuth with an expiry: the access token's expiry;
/// - OAuth with a refresh token but no expiry: `issued_at + idle_after`, so
///   the sweep still refreshes it at least that often (keeps refresh tokens
///   that die of disuse alive);
/// - marked for re-authorization, OAuth without a refresh token, API keys and
///   Basic: `None` (the sweep never touches them).
pub(crate) fn sweep_expiry(p: &Payload, idle_after: Duration) -> Option<Timestamp> {
    if p.reauth.is_some() {
        return None;
    }
    match &p.doc {
        CredentialDoc::OAuth2 {
            expires_at: Some(e),
            ..
        } => Some(*e),
        CredentialDoc::OAuth2 {
            refresh_token: Some(_),
            issued_at,
            ..
        } => Some(issued_at.add(idle_after)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debug of every document kind hides its secret values.
    #[test]
    fn debug_hides_secrets() {
        let docs = [
            CredentialDoc::oauth2(
                SecretString::new("sbx_at_secret1"),
                Some(SecretString::new("sbx_rt_secret2")),
                Some(Duration::from_secs(60)),
                Timestamp::from_millis(1000),
            ),
            CredentialDoc::ApiKey {
                key: SecretString::new("key_secret3"),
            },
            CredentialDoc::Basic {
                user: "me".into(),
                password: SecretString::new("pw_secret4"),
            },
        ];
        for d in docs {
            let text = format!(
                "{d:?} {:?}",
                Payload {
                    doc: d.clone(),
                    reauth: None
                }
            );
            assert!(!text.contains("secret"), "{text}");
        }
    }

    /// The JSON form is tagged by `type` and round-trips.
    #[test]
    fn json_round_trip() {
        let d = CredentialDoc::oauth2(
            SecretString::new("a"),
            None,
            None,
            Timestamp::from_millis(5),
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["type"], "oauth2");
        assert_eq!(serde_json::from_value::<CredentialDoc>(v).unwrap(), d);
    }
}
