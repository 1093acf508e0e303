//! The credential side of the connect flow (OAuth 2.0 authorization code
//! grant, RFC 6749 §4.1, with PKCE, RFC 7636): a fresh verifier and its S256
//! challenge, the verifier sealed while the customer is at the provider, and
//! the code exchanged for tokens through the `oauth2` crate over the same
//! no-redirect client as refreshes. The tokens come back as a
//! [`CredentialDoc`], which the caller stores with
//! [`CredentialManager::store_initial`] or
//! [`CredentialManager::reauthorize`]. Nothing here logs or returns a code,
//! verifier or token in an error.

use oauth2::PkceCodeChallenge;
use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::{ConnectionId, SecretString};

use crate::client::ENV_PREFIX;
use crate::client::env_provider_segment;
use crate::doc::CredentialDoc;
use crate::manager::CredentialManager;
use crate::sealer::{Purpose, SealError, Sealed};
use crate::token::{self, CodeGrant, Endpoint, TokenError};

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    /// The verifier (43 characters of base64url), kept sealed until the exchange.
    pub verifier: SecretString,
    /// `BASE64URL(SHA256(verifier))`, sent as `code_challenge`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair (32 random bytes, `code_challenge_method=S256`).
    pub fn generate() -> Self {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        Pkce {
            verifier: SecretString::new(verifier.secret().clone()),
            challenge: challenge.as_str().to_owned(),
        }
    }

    /// The S256 challenge of `verifier`.
    pub fn challenge_of(verifier: &SecretString) -> String {
        PkceCodeChallenge::from_code_verifier_sha256(&oauth2::PkceCodeVerifier::new(
            verifier.expose().to_owned(),
        ))
        .as_str()
        .to_owned()
    }
}

/// What a code is exchanged with.
pub struct CodeExchange<'a> {
    /// The connector (its token URL and `token_auth`).
    pub def: &'a ConnectorDef,
    /// The connection's base URL override, if any (relative token URLs).
    pub base_url: Option<&'a str>,
    /// The code the provider sent to the callback.
    pub code: &'a SecretString,
    /// The `redirect_uri` the authorization request carried.
    pub redirect_uri: &'a url::Url,
    /// The PKCE verifier, when the authorization request carried a challenge.
    pub verifier: Option<&'a SecretString>,
}

/// Why a code could not be exchanged. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// No OAuth client is configured for the provider, or its token URL does not resolve.
    #[error("{0}")]
    Config(String),
    /// The provider refused the code (`invalid_grant`: unknown, used,
    /// expired, another redirect URI or a wrong PKCE verifier), or our client.
    #[error("the provider refused the authorization code: {0}")]
    Refused(String),
    /// The token endpoint failed or could not be reached.
    #[error("the token endpoint failed: {0}")]
    Unavailable(String),
}

impl CredentialManager {
    /// The client id of `provider`'s OAuth app, if one is configured.
    pub fn client_id(&self, provider: &str) -> Option<&str> {
        self.inner
            .clients
            .get(provider)
            .map(|c| c.client_id.as_str())
    }

    /// Exchanges an authorization code for tokens (issued now, by the manager's clock).
    ///
    /// # Errors
    /// See [`ExchangeError`].
    pub async fn exchange_code(&self, x: CodeExchange<'_>) -> Result<CredentialDoc, ExchangeError> {
        let i = &self.inner;
        let Some(client) = i.clients.get(&x.def.name) else {
            let p = format!("{ENV_PREFIX}{}", env_provider_segment(&x.def.name));
            return Err(ExchangeError::Config(format!(
                "no OAuth client configured for provider {} (set {p}_CLIENT_ID and {p}_CLIENT_SECRET)",
                x.def.name
            )));
        };
        let url = client
            .token_url_at(x.base_url, x.def)
            .map_err(ExchangeError::Config)?;
        let at = Endpoint {
            client,
            url: &url,
            style: client.auth_style_for(x.def),
        };
        let base_url_from = match &x.def.auth {
            syncbridge_core::connector::definition::AuthDef::Oauth2 { base_url_from, .. } => {
                base_url_from.as_deref()
            }
            _ => None,
        };
        let grant = CodeGrant {
            code: x.code,
            redirect_uri: x.redirect_uri,
            verifier: x.verifier,
            base_url_from,
        };
        let now = i.clock.now();
        match token::exchange_code(&i.http, at, grant).await {
            Ok(t) => {
                let mut doc =
                    CredentialDoc::oauth2(t.access_token, t.refresh_token, t.expires_in, now);
                if let CredentialDoc::OAuth2 {
                    scope, base_url, ..
                } = &mut doc
                {
                    *scope = t.scope;
                    *base_url = t.base_url;
                }
                Ok(doc)
            }
            Err(TokenError::InvalidGrant) => Err(ExchangeError::Refused("invalid_grant".into())),
            Err(TokenError::InvalidClient(w) | TokenError::Refused(w)) => {
                Err(ExchangeError::Refused(w))
            }
            Err(TokenError::NotOAuth(w)) => Err(ExchangeError::Config(w)),
            Err(TokenError::Transient { what, .. }) => Err(ExchangeError::Unavailable(what)),
        }
    }

    /// Seals a connect session's PKCE verifier under the current data key,
    /// bound to the session (its id, as associated data), for the store.
    ///
    /// # Errors
    /// The secret store failed.
    pub async fn seal_verifier(
        &self,
        session: &ConnectionId,
        verifier: &SecretString,
    ) -> Result<Sealed, SealError> {
        self.inner
            .sealer
            .seal_as(
                Purpose::ConnectVerifier,
                session,
                verifier.expose().as_bytes(),
            )
            .await
    }

    /// Opens what [`seal_verifier`](Self::seal_verifier) sealed for `session`.
    ///
    /// # Errors
    /// A tampered or moved blob, a missing key.
    pub async fn open_verifier(
        &self,
        session: &ConnectionId,
        sealed: &Sealed,
    ) -> Result<SecretString, SealError> {
        let plain = self
            .inner
            .sealer
            .open_as(
                Purpose::ConnectVerifier,
                session,
                &sealed.key_version,
                &sealed.nonce,
                &sealed.ciphertext,
            )
            .await?;
        String::from_utf8(plain)
            .map(SecretString::new)
            .map_err(|_| SealError::Undecodable {
                connection: session.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The challenge is the RFC 7636 S256 of the verifier (Appendix B's vector).
    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        let v = SecretString::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            Pkce::challenge_of(&v),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        assert_eq!(Pkce::challenge_of(&p.verifier), p.challenge);
        assert_ne!(Pkce::generate().verifier, p.verifier);
    }
}
