//! A connection's webhook signing secrets, sealed at rest with the same
//! envelope as its credentials ([`Sealer`]: AES-256-GCM under the versioned
//! data key, a fresh nonce per seal, the connection id bound as associated
//! data) under their own [`Purpose`], so neither kind of blob opens as the
//! other. Inside the ciphertext: the secrets as a JSON array of strings.
//!
//! A data-key rotation ([`Sealer::rotate`]) leaves stored secrets readable
//! (the blob names its key version); the next `connections add` of the
//! connection seals them under the new key.

use syncbridge_core::model::SealedSecrets;
use syncbridge_core::{ConnectionId, SecretString};

use crate::sealer::{Purpose, SealError, Sealer};

/// Seals `secrets` for `connection` under the current data key.
///
/// # Errors
/// The secret store failed or holds a malformed key.
pub async fn seal_webhook_secrets(
    sealer: &Sealer,
    connection: &ConnectionId,
    secrets: &[SecretString],
) -> Result<SealedSecrets, SealError> {
    let plain: Vec<&str> = secrets.iter().map(SecretString::expose).collect();
    let json = serde_json::to_vec(&plain).expect("strings serialize");
    let sealed = sealer
        .seal_as(Purpose::WebhookSecrets, connection, &json)
        .await?;
    Ok(SealedSecrets {
        key_version: sealed.key_version,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
    })
}

/// Opens the webhook secrets of `connection`.
///
/// # Errors
/// [`SealError::Tampered`] when the blob fails authentication (altered,
/// moved from another connection, or a credential blob);
/// [`SealError::Undecodable`] when it opens but holds no list of secrets;
/// a missing or malformed key; a secret-store failure.
pub async fn open_webhook_secrets(
    sealer: &Sealer,
    connection: &ConnectionId,
    sealed: &SealedSecrets,
) -> Result<Vec<SecretString>, SealError> {
    let plain = sealer
        .open_as(
            Purpose::WebhookSecrets,
            connection,
            &sealed.key_version,
            &sealed.nonce,
            &sealed.ciphertext,
        )
        .await?;
    let list: Vec<String> = serde_json::from_slice(&plain).map_err(|_| SealError::Undecodable {
        connection: connection.clone(),
    })?;
    Ok(list.into_iter().map(SecretString::new).collect())
}
