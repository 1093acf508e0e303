//! Connection credentials for syncbridge: sealed at rest, handed to the HTTP
//! adapter through the core [`CredentialProvider`] hook, and OAuth tokens
//! refreshed exactly once per credential at a time, across threads and
//! processes.
//!
//! # Layout
//!
//! - [`keyfile`]: [`LocalKeyFile`], the embedded default [`SecretStore`]
//!   (`<data_dir>/keys.json`, `0600`, versioned keys).
//! - [`sealer`]: [`Sealer`], AES-256-GCM envelope encryption with the data
//!   key `credentials-dek` from a secret store; random 96-bit nonces; the
//!   connection id as associated data; [`Sealer::rotate`].
//! - [`doc`]: [`CredentialDoc`] (OAuth tokens, API key, Basic), what lives
//!   inside the ciphertext. `Debug` never prints a secret.
//! - [`client`]: [`OAuthClient`] / [`ClientRegistry`]: our app registration
//!   per provider, from `SYNCBRIDGE_OAUTH_<PROVIDER>_CLIENT_ID` /
//!   `_CLIENT_SECRET` (optional `_TOKEN_URL`, `_AUTH_STYLE`) or code.
//! - [`margin`]: when a token is due (pure).
//! - [`manager`]: [`CredentialManager`], the `CredentialProvider`:
//!   `authorize`, `rejected`, [`refresh`](CredentialManager::refresh),
//!   [`store_initial`](CredentialManager::store_initial),
//!   [`reauthorize`](CredentialManager::reauthorize); the module docs spell
//!   out the locking protocol, the error classes and the crash window.
//! - [`sweep`]: [`CredentialManager::sweep`], the TokenRefresher timer's work.
//! - [`connect`]: the connect flow's side: PKCE pairs, the session's sealed
//!   verifier, [`CredentialManager::exchange_code`] (authorization code →
//!   [`CredentialDoc`], through the `oauth2` crate).
//! - [`webhook_secrets`]: a connection's webhook signing secrets, sealed with
//!   the same envelope under their own [`Purpose`].
//! - `token` (private): the token request through the `oauth2` crate over
//!   reqwest without redirects, classifying failures.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn wire(store: std::sync::Arc<dyn syncbridge_core::Store>, data_dir: &std::path::Path)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use syncbridge_credentials::{ClientRegistry, CredentialManager, Sealer};
//! let sealer = Arc::new(Sealer::local(data_dir)?);
//! let registry = syncbridge_core::connector::registry::Registry::builtin();
//! // `lookup` reads the settings (`SYNCBRIDGE_OAUTH_<P>_*`, see `client`).
//! # let lookup = |_: &str| None::<String>;
//! let clients = ClientRegistry::from_lookup(registry.names(), lookup)?;
//! let creds = CredentialManager::builder(store, sealer, clients)
//!     .connectors(registry)
//!     // .events(sink).clock(clock).rate_limiter(limiter).config(cfg)
//!     .build()?;
//! let provider: Arc<dyn syncbridge_core::credentials::CredentialProvider> = Arc::new(creds.clone());
//! # let _ = provider; Ok(()) }
//! ```
//!
//! [`CredentialProvider`]: syncbridge_core::credentials::CredentialProvider
//! [`SecretStore`]: syncbridge_core::SecretStore

pub mod client;
pub mod connect;
pub mod doc;
pub mod keyfile;
pub mod manager;
pub mod margin;
pub mod sealer;
pub mod sweep;
mod token;
pub mod webhook_secrets;

pub use client::{AuthStyle, ClientConfigError, ClientRegistry, OAuthClient};
pub use connect::{CodeExchange, ExchangeError, Pkce};
pub use doc::{CredentialDoc, OpenCredential, ReauthMark};
pub use keyfile::LocalKeyFile;
pub use manager::{
    CounterSnapshot, CredentialManager, CredentialManagerBuilder, RefreshConfig, RefreshOutcome,
    RefreshPhase, RefreshTrigger,
};
pub use sealer::{DEK_NAME, Purpose, SealError, Sealed, Sealer};
pub use sweep::SweepReport;
pub use webhook_secrets::{open_webhook_secrets, seal_webhook_secrets};
