//! Microsoft Entra access tokens for the REST clients (Service Bus, Key Vault).
//!
//! In Azure the token comes from the Function App's managed identity:
//! [`managed_identity`] builds `azure_identity`'s `ManagedIdentityCredential`,
//! which on App Service / Functions reads `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` and asks the local identity endpoint
//! (`GET …?api-version=2019-08-01&resource=<scope without /.default>` with the
//! `X-IDENTITY-HEADER` header). [`TokenCache`] keeps one token per scope until
//! shortly before it expires, so a send costs no token round trip.
//!
//! An operator running the `syncbridge` CLI against a deployment has no
//! managed identity: with `SYNCBRIDGE_AZURE_CREDENTIAL=developer`
//! ([`CredentialKind::Developer`]) the same clients use the signed-in Azure
//! CLI / Azure Developer CLI account instead (`azure_identity`'s
//! `DeveloperToolsCredential`, which runs `az account get-access-token`).

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// Token scope for Service Bus data-plane calls.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";
/// Token scope for Key Vault data-plane calls.
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// Token scope for Azure Managed Redis / Azure Cache for Redis with
/// Microsoft Entra authentication (the token is the `AUTH` password).
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// A token is renewed once it expires within this margin.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[error("could not get a Microsoft Entra token for {scope}: {message}")]
pub struct TokenError {
    /// The scope asked for.
    pub scope: String,
    /// The credential's error (never contains a token).
    pub message: String,
}

/// The setting that picks the credential ([`CredentialKind::from_vars`]).
pub const SETTING_CREDENTIAL: &str = "SYNCBRIDGE_AZURE_CREDENTIAL";

/// Whose Microsoft Entra tokens the Azure clients use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CredentialKind {
    /// The app's managed identity (`managed-identity`, the default).
    #[default]
    ManagedIdentity,
    /// The developer tools' signed-in account (`developer`: `az login` or
    /// `azd auth login`), for operators running the CLI against a deployment.
    Developer,
}

impl CredentialKind {
    /// Reads [`SETTING_CREDENTIAL`] through `var`: unset or `managed-identity`,
    /// or `developer`. The error names the setting.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        match var(SETTING_CREDENTIAL).as_deref().map(str::trim) {
            None | Some("") | Some("managed-identity") => Ok(CredentialKind::ManagedIdentity),
            Some("developer") => Ok(CredentialKind::Developer),
            Some(other) => Err(format!(
                "{SETTING_CREDENTIAL}: expected `managed-identity` or `developer`, got {other:?}"
            )),
        }
    }
}

/// The credential `kind` names; `client_id` picks a user-assigned managed
/// identity (ignored for [`CredentialKind::Developer`]).
pub fn credential(
    kind: CredentialKind,
    client_id: Option<String>,
) -> Result<Arc<dyn TokenCredential>, TokenError> {
    match kind {
        CredentialKind::ManagedIdentity => managed_identity(client_id),
        CredentialKind::Developer => DeveloperToolsCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| TokenError {
                scope: "(developer tools)".into(),
                message: e.to_string(),
            }),
    }
}

/// The managed identity of this app: system-assigned, or user-assigned when
/// `client_id` is given (the `AZURE_CLIENT_ID` / `<Connection>__clientId`
/// convention).
pub fn managed_identity(client_id: Option<String>) -> Result<Arc<dyn TokenCredential>, TokenError> {
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        ..Default::default()
    };
    ManagedIdentityCredential::new(Some(options))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| TokenError {
            scope: "(managed identity)".into(),
            message: e.to_string(),
        })
}

/// One scope's token, fetched from a credential and reused until
/// `expires_on - refresh_margin`.
#[derive(Debug)]
pub struct TokenCache {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    refresh_margin: Duration,
    current: tokio::sync::Mutex<Option<AccessToken>>,
}

impl TokenCache {
    /// A cache for `scope` over `credential` with [`DEFAULT_REFRESH_MARGIN`].
    pub fn new(credential: Arc<dyn TokenCredential>, scope: impl Into<String>) -> Self {
        Self::with_margin(credential, scope, DEFAULT_REFRESH_MARGIN)
    }

    /// Same, with an explicit refresh margin.
    pub fn with_margin(
        credential: Arc<dyn TokenCredential>,
        scope: impl Into<String>,
        refresh_margin: Duration,
    ) -> Self {
        TokenCache {
            credential,
            scope: scope.into(),
            refresh_margin,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The scope this cache serves.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// A valid token's secret text (for an `Authorization: Bearer` header).
    /// Concurrent callers share one fetch.
    pub async fn bearer(&self) -> Result<String, TokenError> {
        let mut current = self.current.lock().await;
        let fresh_until = time::OffsetDateTime::now_utc()
            + time::Duration::try_from(self.refresh_margin).unwrap_or(time::Duration::ZERO);
        if let Some(t) = current.as_ref()
            && t.expires_on > fresh_until
        {
            return Ok(t.token.secret().to_owned());
        }
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| TokenError {
                scope: self.scope.clone(),
                message: e.to_string(),
            })?;
        let text = token.token.secret().to_owned();
        *current = Some(token);
        Ok(text)
    }

    /// Drops the cached token (after a 401: it may have been revoked).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setting's values; anything else is refused naming the setting.
    #[test]
    fn credential_kind_from_setting() {
        let with = |v: Option<&str>| {
            let v = v.map(str::to_owned);
            CredentialKind::from_vars(move |k| {
                (k == SETTING_CREDENTIAL).then(|| v.clone()).flatten()
            })
        };
        assert_eq!(with(None), Ok(CredentialKind::ManagedIdentity));
        assert_eq!(
            with(Some("managed-identity")),
            Ok(CredentialKind::ManagedIdentity)
        );
        assert_eq!(with(Some(" developer ")), Ok(CredentialKind::Developer));
        let err = with(Some("cli")).unwrap_err();
        assert!(err.contains(SETTING_CREDENTIAL), "{err}");
        assert!(credential(CredentialKind::Developer, None).is_ok());
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        lifetime: time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, [SERVICE_BUS_SCOPE]);
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                format!("t{n}"),
                time::OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    /// A long-lived token is fetched once; one inside the refresh margin is
    /// fetched again on every use; invalidate forces a fetch.
    #[tokio::test]
    async fn caches_until_near_expiry() {
        let long = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: time::Duration::hours(1),
        });
        let cache = TokenCache::new(long.clone(), SERVICE_BUS_SCOPE);
        for _ in 0..5 {
            assert_eq!(cache.bearer().await.unwrap(), "t0");
        }
        assert_eq!(long.calls.load(Ordering::SeqCst), 1);
        cache.invalidate().await;
        assert_eq!(cache.bearer().await.unwrap(), "t1");

        let short = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: time::Duration::minutes(2),
        });
        let cache = TokenCache::new(short.clone(), SERVICE_BUS_SCOPE);
        cache.bearer().await.unwrap();
        cache.bearer().await.unwrap();
        assert_eq!(
            short.calls.load(Ordering::SeqCst),
            2,
            "a token expiring within the 5-minute margin is renewed"
        );
    }
}
