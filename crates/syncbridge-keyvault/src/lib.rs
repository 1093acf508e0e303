//! [`KeyVaultSecretStore`]: the core [`SecretStore`] over Azure Key Vault's
//! secrets REST API (api-version 7.4), authenticated with a Microsoft Entra
//! token for `https://vault.azure.net/.default` from the app's managed identity
//! (RBAC role *Key Vault Secrets User* to read, *Key Vault Secrets Officer* to
//! write new versions).
//!
//! It holds syncbridge's data-encryption keys — a handful of secrets, read
//! often, written on rotation — never one secret per connection (Key Vault
//! allows 300 creates / 4,000 other secret operations per 10 s per vault).
//!
//! - `get_key(name, Some(version))` → `GET {vault}/secrets/{name}/{version}`;
//!   a version never changes, so it is cached for the life of the process.
//! - `get_key(name, None)` → `GET {vault}/secrets/{name}` (latest); cached for
//!   [`KeyVaultOptions::latest_ttl`] so another instance's rotation is seen.
//! - `put_key` → `PUT {vault}/secrets/{name}`: a new version; its id's last
//!   segment is the version returned. The new value is cached.
//! - `404` → `None`. `429` (and 500/502/503/504) → wait the `Retry-After`
//!   seconds (or exponential back-off) and retry, up to
//!   [`KeyVaultOptions::retries`]; then [`SecretStoreError::Unavailable`].
//!   `401` → fresh token, one retry. Names must match `[0-9A-Za-z-]{1,127}`
//!   (checked before any call).
//!
//! Setting: [`SETTING_VAULT_URI`] (e.g. `https://kv-sync.vault.azure.net/`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde::Deserialize;
use syncbridge_core::secrets::SecretStoreError;
use syncbridge_core::{SecretStore, SecretString};
use syncbridge_servicebus::entra::{self, TokenCache};
use url::Url;

/// Key Vault REST API version used.
pub const API_VERSION: &str = "7.4";
/// App setting with the vault URI.
pub const SETTING_VAULT_URI: &str = "SYNCBRIDGE_KEY_VAULT_URI";
/// Optional user-assigned identity client id.
pub const SETTING_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Largest secret value Key Vault stores.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;

/// Tuning knobs.
#[derive(Debug, Clone)]
pub struct KeyVaultOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long a "latest version" read is reused.
    pub latest_ttl: Duration,
    /// Retries of 429/5xx/timeouts before giving up.
    pub retries: u32,
    /// Longest single wait honoured from `Retry-After`.
    pub max_wait: Duration,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        KeyVaultOptions {
            timeout: Duration::from_secs(30),
            latest_ttl: Duration::from_secs(300),
            retries: 4,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Checks a secret name against Key Vault's rule `[0-9A-Za-z-]{1,127}`.
pub fn validate_name(name: &str) -> Result<(), SecretStoreError> {
    if (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(SecretStoreError::Unavailable(format!(
            "{name:?} is not a Key Vault secret name (1-127 of [0-9A-Za-z-])"
        )))
    }
}

#[derive(Debug, Clone)]
struct Cached {
    version: String,
    value: SecretString,
    fetched: Instant,
}

#[derive(Debug, Deserialize)]
struct SecretBundle {
    value: Option<String>,
    id: String,
}

/// The Key Vault secret store. Cheap to clone.
#[derive(Clone)]
pub struct KeyVaultSecretStore {
    vault: Url,
    http: reqwest::Client,
    token: Arc<TokenCache>,
    options: KeyVaultOptions,
    /// (name lower-cased, version or "" for latest) → value. Names are case-insensitive.
    cache: Arc<std::sync::Mutex<HashMap<(String, String), Cached>>>,
}

impl std::fmt::Debug for KeyVaultSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultSecretStore")
            .field("vault", &self.vault.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SecretStoreError {
    SecretStoreError::Unavailable(format!("{what}: {e}"))
}

impl KeyVaultSecretStore {
    /// A store for the vault at `vault` (`https://<name>.vault.azure.net/`).
    pub fn new(
        vault: Url,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self, SecretStoreError> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| unavailable("building the HTTP client", e))?;
        Ok(KeyVaultSecretStore {
            vault,
            http,
            token: Arc::new(TokenCache::new(credential, entra::KEY_VAULT_SCOPE)),
            options,
            cache: Arc::default(),
        })
    }

    /// From app settings ([`SETTING_VAULT_URI`], optional
    /// [`SETTING_CLIENT_ID`]) with the app's managed identity, or the
    /// developer's login when [`entra::SETTING_CREDENTIAL`] says so. Errors
    /// name the setting.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let uri = var(SETTING_VAULT_URI)
            .filter(|v| !v.trim().is_empty())
            .ok_or(format!(
                "{SETTING_VAULT_URI} is not set (e.g. https://kv-sync.vault.azure.net/)"
            ))?;
        let mut vault = Url::parse(&uri)
            .map_err(|e| format!("{SETTING_VAULT_URI} {uri:?} is not a URL: {e}"))?;
        if !vault.path().ends_with('/') {
            vault.set_path(&format!("{}/", vault.path()));
        }
        let kind = entra::CredentialKind::from_vars(&var)?;
        let credential =
            entra::credential(kind, var(SETTING_CLIENT_ID)).map_err(|e| e.to_string())?;
        Self::new(vault, credential, KeyVaultOptions::default()).map_err(|e| e.to_string())
    }

    fn url(&self, name: &str, version: Option<&str>) -> Result<Url, SecretStoreError> {
        let path = match version {
            Some(v) => format!("secrets/{name}/{v}"),
            None => format!("secrets/{name}"),
        };
        let mut url = self
            .vault
            .join(&path)
            .map_err(|e| unavailable("vault URL", e))?;
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// Sends with retries; `Ok(None)` for 404.
    async fn call(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Option<SecretBundle>, SecretStoreError> {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            let token = self
                .token
                .bearer()
                .await
                .map_err(|e| unavailable(what, e))?;
            let wait = match build(&self.http, &token).send().await {
                Err(e) if attempt < self.options.retries && (e.is_timeout() || e.is_connect()) => {
                    None
                }
                Err(e) => return Err(unavailable(what, e.without_url())),
                Ok(r) => {
                    let status = r.status().as_u16();
                    match status {
                        200..=299 => {
                            let bundle: SecretBundle = r
                                .json()
                                .await
                                .map_err(|e| SecretStoreError::Corrupt(format!("{what}: {e}")))?;
                            return Ok(Some(bundle));
                        }
                        404 => return Ok(None),
                        401 if !refreshed => {
                            refreshed = true;
                            self.token.invalidate().await;
                            continue;
                        }
                        429 | 500 | 502 | 503 | 504 if attempt < self.options.retries => r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                        _ => {
                            let body: String = r
                                .text()
                                .await
                                .unwrap_or_default()
                                .chars()
                                .take(300)
                                .collect();
                            let hint = if status == 403 {
                                " (the identity needs the Key Vault Secrets User/Officer role)"
                            } else {
                                ""
                            };
                            return Err(SecretStoreError::Unavailable(format!(
                                "{what}: HTTP {status}{hint}: {body}"
                            )));
                        }
                    }
                }
            };
            attempt += 1;
            let wait = wait
                .unwrap_or(Duration::from_millis(500 << attempt.min(6)))
                .min(self.options.max_wait);
            tracing::warn!(
                what,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Key Vault busy; backing off"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn cached(&self, name: &str, version: Option<&str>) -> Option<Cached> {
        let key = (name.to_ascii_lowercase(), version.unwrap_or("").to_owned());
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&key)
            .filter(|c| version.is_some() || c.fetched.elapsed() < self.options.latest_ttl)
            .cloned()
    }

    fn remember(&self, name: &str, latest: bool, c: Cached) {
        let name = name.to_ascii_lowercase();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if latest {
            cache.insert((name.clone(), String::new()), c.clone());
        }
        cache.insert((name, c.version.clone()), c);
    }
}

fn version_of(id: &str) -> Result<String, SecretStoreError> {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SecretStoreError::Corrupt(format!("secret id {id:?} has no version")))
}

#[async_trait]
impl SecretStore for KeyVaultSecretStore {
    async fn get_key(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(String, SecretString)>, SecretStoreError> {
        validate_name(name)?;
        if let Some(v) = version
            && !v.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SecretStoreError::Unavailable(format!(
                "{v:?} is not a Key Vault secret version"
            )));
        }
        if let Some(c) = self.cached(name, version) {
            return Ok(Some((c.version, c.value)));
        }
        let url = self.url(name, version)?;
        let what = format!("reading secret {name}");
        let Some(bundle) = self
            .call(&what, |http, token| {
                http.get(url.clone()).bearer_auth(token)
            })
            .await?
        else {
            return Ok(None);
        };
        let value = bundle
            .value
            .ok_or_else(|| SecretStoreError::Corrupt(format!("{what}: no value")))?;
        let c = Cached {
            version: version_of(&bundle.id)?,
            value: SecretString::new(value),
            fetched: Instant::now(),
        };
        self.remember(name, version.is_none(), c.clone());
        Ok(Some((c.version, c.value)))
    }

    async fn put_key(&self, name: &str, value: &SecretString) -> Result<String, SecretStoreError> {
        validate_name(name)?;
        if value.expose().len() > MAX_VALUE_BYTES {
            return Err(SecretStoreError::Unavailable(format!(
                "secret {name} is {} bytes; Key Vault stores at most {MAX_VALUE_BYTES}",
                value.expose().len()
            )));
        }
        let url = self.url(name, None)?;
        let body = serde_json::json!({
            "value": value.expose(),
            "contentType": "application/vnd.syncbridge.key",
        });
        let what = format!("writing secret {name}");
        let bundle = self
            .call(&what, |http, token| {
                http.put(url.clone()).bearer_auth(token).json(&body)
            })
            .await?
            .ok_or_else(|| SecretStoreError::Unavailable(format!("{what}: HTTP 404")))?;
        let version = version_of(&bundle.id)?;
        self.remember(
            name,
            true,
            Cached {
                version: version.clone(),
                value: value.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names follow Key Vault's rule; versions come from the id's last segment.
    #[test]
    fn names_and_versions() {
        assert!(validate_name("dek-2026-01").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("has_underscore").is_err());
        assert!(validate_name(&"a".repeat(128)).is_err());
        assert_eq!(
            version_of("https://kv.vault.azure.net/secrets/dek/0f3c9a").unwrap(),
            "0f3c9a"
        );
    }
}
