//! API keys of the product API (`SyncApi`): what the store keeps of a key.
//!
//! The key itself (`sbk_` + 32 random bytes, base64url) is shown once when it
//! is created and never stored: the store keeps only [`ApiKey::hash`], the
//! SHA-256 of the key text, and finds a presented key by that hash. Making,
//! checking and revoking keys lives in `syncbridge-api::keys`, which the CLI
//! and the API both call.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// What a key may do; each scope includes the ones below it
/// (`admin` ⊃ `write` ⊃ `read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiScope {
    /// Read connections, runs, tasks, the catalog, health.
    Read,
    /// Also change connections, ask for syncs, replay or discard quarantine.
    Write,
    /// Also manage API keys.
    Admin,
}

impl ApiScope {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Write => "write",
            ApiScope::Admin => "admin",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(ApiScope::Read),
            "write" => Some(ApiScope::Write),
            "admin" => Some(ApiScope::Admin),
            _ => None,
        }
    }

    /// Whether a key of this scope may do what `needed` allows.
    pub fn allows(self, needed: ApiScope) -> bool {
        self >= needed
    }
}

/// An API key as stored: never the key, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id (`key_<hex>`), for listing and revoking.
    pub id: String,
    /// A person's name for it.
    pub name: String,
    /// What it may do.
    pub scope: ApiScope,
    /// Lower-case hex SHA-256 of the key text; unique.
    pub hash: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked; a revoked key authenticates nothing.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// When it stops working by itself (dashboard sessions and sign-in
    /// links; `None` for API keys). Expired or revoked, such a key is
    /// deleted by `Store::prune_api_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// admin ⊃ write ⊃ read, and the texts round-trip.
    #[test]
    fn scopes_nest() {
        assert!(ApiScope::Admin.allows(ApiScope::Write));
        assert!(ApiScope::Write.allows(ApiScope::Read));
        assert!(!ApiScope::Read.allows(ApiScope::Write));
        assert!(!ApiScope::Write.allows(ApiScope::Admin));
        for s in [ApiScope::Read, ApiScope::Write, ApiScope::Admin] {
            assert_eq!(ApiScope::parse(s.as_str()), Some(s));
        }
        assert_eq!(ApiScope::parse("root"), None);
    }
}
