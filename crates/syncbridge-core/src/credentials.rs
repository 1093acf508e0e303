//! The credential hook: how a provider request gets its authorization.
//!
//! The HTTP adapter asks a [`CredentialProvider`] before every request and
//! tells it when the provider answered 401, so the provider can refresh (the
//! on-demand backstop to the TokenRefresher's schedule).

use std::fmt;

use crate::connector::ConnectorDef;
use crate::model::Connection;
use crate::secrets::SecretString;

/// What to put on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthValue {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// A named header.
    Header {
        /// Header name.
        name: String,
        /// Full header value.
        value: SecretString,
    },
    /// A query parameter.
    Query {
        /// Parameter name.
        name: String,
        /// Its value.
        value: SecretString,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: SecretString,
    },
}

/// Why no authorization could be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A person must re-authorize the connection; do not call the provider.
    #[error("connection needs re-authorization")]
    NeedsReauth,
    /// Try again later (token endpoint down, throttled, lock busy).
    #[error("credentials temporarily unavailable: {0}")]
    Transient(String),
    /// Misconfiguration (missing client, unknown connection).
    #[error("credentials unusable: {0}")]
    Permanent(String),
}

/// Produces request authorization for connections.
#[async_trait::async_trait]
pub trait CredentialProvider: Send + Sync + fmt::Debug + 'static {
    /// Authorization for the next request, `None` when the connector needs none.
    async fn authorize(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
    ) -> Result<Option<AuthValue>, CredentialError>;
    /// The provider refused `used` (401): refresh before the next `authorize`.
    async fn rejected(
        &self,
        conn: &Connection,
        def: &ConnectorDef,
        used: &AuthValue,
    ) -> Result<(), CredentialError>;
    /// The API base URL the connection's credential names, when the
    /// definition takes it from the token response (`auth.base_url_from`,
    /// Salesforce's `instance_url`); `None` otherwise.
    async fn base_url(
        &self,
        _conn: &Connection,
        _def: &ConnectorDef,
    ) -> Result<Option<String>, CredentialError> {
        Ok(None)
    }
}

/// For connectors without authentication.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCredentials;

#[async_trait::async_trait]
impl CredentialProvider for NoCredentials {
    async fn authorize(
        &self,
        _: &Connection,
        _: &ConnectorDef,
    ) -> Result<Option<AuthValue>, CredentialError> {
        Ok(None)
    }
    async fn rejected(
        &self,
        _: &Connection,
        _: &ConnectorDef,
        _: &AuthValue,
    ) -> Result<(), CredentialError> {
        Err(CredentialError::NeedsReauth)
    }
}
