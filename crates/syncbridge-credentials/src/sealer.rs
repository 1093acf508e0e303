//! [`Sealer`]: AES-256-GCM envelope encryption of credential documents with
//! a data-encryption key (DEK) held in a [`SecretStore`].
//!
//! - The DEK is the secret-store key named [`DEK_NAME`]. Sealing uses its
//!   current version (created on first use); opening fetches whichever
//!   version the sealed blob records, so keys rotate without downtime:
//!   [`Sealer::rotate`] adds a version, new seals use it, old blobs still open
//!   (and are re-sealed under the new key at their next save).
//! - Every seal draws a fresh random 96-bit nonce from the OS.
//! - The connection id is bound as associated data: a blob copied to another
//!   connection's row fails to open, exactly like a tampered one.
//! - Keys are cached in memory; the current version is re-read from the
//!   secret store every [`CURRENT_KEY_TTL`] so a rotation done by another
//!   process is picked up.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use syncbridge_core::ConnectionId;
use syncbridge_core::secrets::{SecretStore, SecretStoreError};

use crate::keyfile::LocalKeyFile;

/// Name of the credentials data-encryption key in the secret store.
pub const DEK_NAME: &str = "credentials-dek";

/// How long the sealer trusts its idea of the current key version.
pub const CURRENT_KEY_TTL: Duration = Duration::from_secs(300);

/// What a sealed blob holds. Each purpose has its own associated-data
/// prefix, so a blob of one kind cannot be passed off as the other (a
/// credential blob copied into a webhook-secrets field fails to open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A credential document (OAuth tokens, API key, Basic).
    Credential,
    /// A connection's webhook signing secrets.
    WebhookSecrets,
    /// A connect session's PKCE verifier (bound to the session id).
    ConnectVerifier,
}

impl Purpose {
    /// Associated-data prefix (format version of the envelope).
    fn aad_prefix(self) -> &'static [u8] {
        match self {
            Purpose::Credential => b"syncbridge/credential/v1/",
            Purpose::WebhookSecrets => b"syncbridge/webhook-secrets/v1/",
            Purpose::ConnectVerifier => b"syncbridge/connect-verifier/v1/",
        }
    }
}

/// Why sealing or opening failed. Never carries plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The blob names a key version the secret store does not have.
    #[error("data key {name:?} version {version:?} not found in the secret store")]
    KeyMissing {
        /// Key name.
        name: String,
        /// Version the blob was sealed with.
        version: String,
    },
    /// The key in the secret store is not 32 bytes of base64.
    #[error("data key {name:?} version {version:?} is malformed (want 32 bytes, base64)")]
    BadKey {
        /// Key name.
        name: String,
        /// Version.
        version: String,
    },
    /// Authentication failed: the ciphertext or nonce was altered, the blob
    /// belongs to another connection, or the key version holds another key.
    #[error(
        "sealed credential of connection {connection} failed authentication \
         (tampered, moved from another connection, or sealed with a different key)"
    )]
    Tampered {
        /// The connection whose blob failed.
        connection: ConnectionId,
    },
    /// The nonce is not 12 bytes.
    #[error("sealed credential of connection {connection} has a malformed nonce ({len} bytes)")]
    BadNonce {
        /// The connection.
        connection: ConnectionId,
        /// Its length.
        len: usize,
    },
    /// The blob opened but does not hold what its purpose says (a list of
    /// webhook secrets).
    #[error("sealed webhook secrets of connection {connection} do not decode")]
    Undecodable {
        /// The connection.
        connection: ConnectionId,
    },
    /// The secret store failed.
    #[error(transparent)]
    SecretStore(#[from] SecretStoreError),
}

/// The result of sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// DEK version used.
    pub key_version: String,
    /// 96-bit random nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with the 128-bit tag appended.
    pub ciphertext: Vec<u8>,
}

#[derive(Default)]
struct KeyCache {
    current: Option<(String, Instant)>,
    keys: HashMap<String, Arc<Aes256Gcm>>,
}

/// Seals and opens credential documents. Share it (`Arc<Sealer>`).
pub struct Sealer {
    secrets: Arc<dyn SecretStore>,
    name: String,
    cache: Mutex<KeyCache>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Sealer")
            .field("secrets", &self.secrets)
            .field("key", &self.name)
            .field("current", &cache.current.as_ref().map(|c| &c.0))
            .field("cached_versions", &cache.keys.len())
            .finish()
    }
}

fn aad(purpose: Purpose, connection: &ConnectionId) -> Vec<u8> {
    let mut v = purpose.aad_prefix().to_vec();
    v.extend_from_slice(connection.as_str().as_bytes());
    v
}

impl Sealer {
    /// A sealer using the key named [`DEK_NAME`] in `secrets`.
    pub fn new(secrets: Arc<dyn SecretStore>) -> Self {
        Self::with_key_name(secrets, DEK_NAME)
    }

    /// A sealer using another key name (tests, multiple key families).
    pub fn with_key_name(secrets: Arc<dyn SecretStore>, name: impl Into<String>) -> Self {
        Sealer {
            secrets,
            name: name.into(),
            cache: Mutex::new(KeyCache::default()),
        }
    }

    /// The embedded default: a [`LocalKeyFile`] in `data_dir`.
    ///
    /// # Errors
    /// The key file cannot be created or read.
    pub fn local(data_dir: impl AsRef<std::path::Path>) -> Result<Self, SecretStoreError> {
        Ok(Self::new(Arc::new(LocalKeyFile::open_in(data_dir)?)))
    }

    /// The key name.
    pub fn key_name(&self) -> &str {
        &self.name
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cipher(
        &self,
        version: &str,
        value: &syncbridge_core::SecretString,
    ) -> Result<Arc<Aes256Gcm>, SealError> {
        let bad = || SealError::BadKey {
            name: self.name.clone(),
            version: version.to_owned(),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(value.expose().trim())
            .map_err(|_| bad())?;
        let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| bad())?;
        Ok(Arc::new(cipher))
    }

    /// The current key version and its cipher, creating the first key if the
    /// secret store has none.
    async fn current(&self) -> Result<(String, Arc<Aes256Gcm>), SealError> {
        {
            let c = self.cache();
            if let Some((v, at)) = &c.current
                && at.elapsed() < CURRENT_KEY_TTL
                && let Some(k) = c.keys.get(v)
            {
                return Ok((v.clone(), k.clone()));
            }
        }
        let (version, value) = match self.secrets.get_key(&self.name, None).await? {
            Some(kv) => kv,
            None => {
                // First use. Concurrent creators each add a version; every
                // version stays readable, so whichever ends up current is fine.
                let v = self
                    .secrets
                    .put_key(&self.name, &LocalKeyFile::generate_key())
                    .await?;
                match self.secrets.get_key(&self.name, Some(&v)).await? {
                    Some(kv) => kv,
                    None => {
                        return Err(SealError::KeyMissing {
                            name: self.name.clone(),
                            version: v,
                        });
                    }
                }
            }
        };
        let cipher = self.cipher(&version, &value)?;
        let mut c = self.cache();
        c.keys.insert(version.clone(), cipher.clone());
        c.current = Some((version.clone(), Instant::now()));
        Ok((version, cipher))
    }

    /// The current key version (creating the first key if needed). Callers
    /// that must seal right after an irreversible step (a token refresh) call
    /// this first so the seal cannot fail on a cold cache.
    ///
    /// # Errors
    /// The secret store failed or holds a malformed key.
    pub async fn current_version(&self) -> Result<String, SealError> {
        Ok(self.current().await?.0)
    }

    async fn by_version(&self, version: &str) -> Result<Arc<Aes256Gcm>, SealError> {
        if let Some(k) = self.cache().keys.get(version) {
            return Ok(k.clone());
        }
        let Some((_, value)) = self.secrets.get_key(&self.name, Some(version)).await? else {
            return Err(SealError::KeyMissing {
                name: self.name.clone(),
                version: version.to_owned(),
            });
        };
        let cipher = self.cipher(version, &value)?;
        self.cache().keys.insert(version.to_owned(), cipher.clone());
        Ok(cipher)
    }

    /// Encrypts `plaintext` for `connection` under the current key.
    ///
    /// # Errors
    /// The secret store failed or holds a malformed key.
    pub async fn seal(
        &self,
        connection: &ConnectionId,
        plaintext: &[u8],
    ) -> Result<Sealed, SealError> {
        self.seal_as(Purpose::Credential, connection, plaintext)
            .await
    }

    /// Encrypts `plaintext` of kind `purpose` for `connection` under the current key.
    ///
    /// # Errors
    /// The secret store failed or holds a malformed key.
    pub async fn seal_as(
        &self,
        purpose: Purpose,
        connection: &ConnectionId,
        plaintext: &[u8],
    ) -> Result<Sealed, SealError> {
        let (key_version, cipher) = self.current().await?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(purpose, connection);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered {
                connection: connection.clone(),
            })?;
        Ok(Sealed {
            key_version,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts a blob of `connection` sealed under `key_version`.
    ///
    /// # Errors
    /// [`SealError::Tampered`] when authentication fails; a missing or
    /// malformed key; a secret-store failure.
    pub async fn open(
        &self,
        connection: &ConnectionId,
        key_version: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.open_as(
            Purpose::Credential,
            connection,
            key_version,
            nonce,
            ciphertext,
        )
        .await
    }

    /// Decrypts a blob of kind `purpose` of `connection` sealed under `key_version`.
    ///
    /// # Errors
    /// As [`Sealer::open`]; a blob sealed for another purpose fails authentication.
    pub async fn open_as(
        &self,
        purpose: Purpose,
        connection: &ConnectionId,
        key_version: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if nonce.len() != 12 {
            return Err(SealError::BadNonce {
                connection: connection.clone(),
                len: nonce.len(),
            });
        }
        let cipher = self.by_version(key_version).await?;
        let aad = aad(purpose, connection);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered {
                connection: connection.clone(),
            })
    }

    /// Creates a new key version and makes it current for this sealer at
    /// once (other processes pick it up within [`CURRENT_KEY_TTL`]). Returns
    /// the new version.
    ///
    /// # Errors
    /// The secret store failed.
    pub async fn rotate(&self) -> Result<String, SealError> {
        let value = LocalKeyFile::generate_key();
        let version = self.secrets.put_key(&self.name, &value).await?;
        let cipher = self.cipher(&version, &value)?;
        let mut c = self.cache();
        c.keys.insert(version.clone(), cipher);
        c.current = Some((version.clone(), Instant::now()));
        tracing::info!(key = %self.name, version = %version, "rotated data key");
        Ok(version)
    }
}
