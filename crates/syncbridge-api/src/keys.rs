//! API keys: made, checked and revoked here, for the API's own routes and
//! for `syncbridge api-keys` (the CLI calls these functions, not a copy).
//!
//! A key is `sbk_` + 32 random bytes in base64url (no padding). The store
//! keeps only the SHA-256 of the key text ([`ApiKey::hash`]) and finds a
//! presented key by it; the stored hash is compared again in constant time.
//! The key text exists once, in [`NewKey::key`], whose `Debug` is redacted.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use syncbridge_core::apikeys::{ApiKey, ApiScope};
use syncbridge_core::{SecretString, Store, StoreError, Timestamp};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "sbk_";

/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The name is empty, too long, or has control characters.
    #[error("key name must be 1 to {MAX_NAME_LEN} printable characters")]
    BadName,
    /// No key has this id.
    #[error("no API key {0}")]
    NoSuchKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key just made: the stored record and the key text, shown once.
#[derive(Debug)]
pub struct NewKey {
    /// What the store keeps.
    pub record: ApiKey,
    /// The key itself (`Debug` and `Display` redacted).
    pub key: SecretString,
}

/// Lower-case hex SHA-256 of a key's text.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Id prefix of API keys (sessions and sign-in links, stored beside them,
/// have their own: [`crate::session`]).
pub const ID_PREFIX: &str = "key_";

/// A random secret: `prefix` + 32 random bytes in base64url.
pub(crate) fn random_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn random_key() -> String {
    random_secret(KEY_PREFIX)
}

/// A random record id: `prefix` + 8 random bytes in hex.
pub(crate) fn random_id_with(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

fn random_id() -> String {
    random_id_with(ID_PREFIX)
}

/// Makes a key named `name` with `scope` and stores its hash.
pub async fn create(
    store: &dyn Store,
    name: &str,
    scope: ApiScope,
    now: Timestamp,
) -> Result<NewKey, KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(KeyError::BadName);
    }
    let key = random_key();
    let record = ApiKey {
        id: random_id(),
        name: name.to_owned(),
        scope,
        hash: hash(&key),
        created_at: now,
        revoked_at: None,
        expires_at: None,
    };
    store.create_api_key(&record).await?;
    Ok(NewKey {
        record,
        key: SecretString::new(key),
    })
}

/// Every key (revoked ones too), by id; dashboard sessions and sign-in
/// links, stored beside them, are not keys and are left out.
pub async fn list(store: &dyn Store) -> Result<Vec<ApiKey>, KeyError> {
    let mut keys = store.list_api_keys().await?;
    keys.retain(|k| k.id.starts_with(ID_PREFIX));
    Ok(keys)
}

/// Revokes key `id` (idempotent).
pub async fn revoke(store: &dyn Store, id: &str, now: Timestamp) -> Result<(), KeyError> {
    if store.revoke_api_key(id, now).await? {
        Ok(())
    } else {
        Err(KeyError::NoSuchKey(id.to_owned()))
    }
}

/// The live key whose text is `presented`, if any: `Ok(None)` for a text
/// that is not a key, an unknown key, or a revoked one.
pub async fn authenticate(
    store: &dyn Store,
    presented: &str,
) -> Result<Option<ApiKey>, StoreError> {
    find_live(store, presented, KEY_PREFIX, ID_PREFIX).await
}

/// The live (unrevoked) record whose secret is `presented`, when the text
/// starts with `prefix` and the record's id with `id_prefix`.
pub(crate) async fn find_live(
    store: &dyn Store,
    presented: &str,
    prefix: &str,
    id_prefix: &str,
) -> Result<Option<ApiKey>, StoreError> {
    if !presented.starts_with(prefix) || presented.len() > 128 {
        return Ok(None);
    }
    let digest = hash(presented);
    let Some(key) = store.find_api_key(&digest).await? else {
        return Ok(None);
    };
    let same: bool = key.hash.as_bytes().ct_eq(digest.as_bytes()).into();
    Ok((same && key.revoked_at.is_none() && key.id.starts_with(id_prefix)).then_some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are `sbk_` + 43 base64url characters (32 bytes), all different.
    #[test]
    fn key_shape() {
        let a = random_key();
        let b = random_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert!(
            a[KEY_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    /// The key text never shows in `Debug`.
    #[test]
    fn new_key_debug_is_redacted() {
        let k = NewKey {
            record: ApiKey {
                id: "key_1".into(),
                name: "n".into(),
                scope: ApiScope::Read,
                hash: "h".into(),
                created_at: Timestamp::EPOCH,
                revoked_at: None,
                expires_at: None,
            },
            key: SecretString::new("sbk_secretvalue"),
        };
        assert!(!format!("{k:?}").contains("secretvalue"));
    }
}
