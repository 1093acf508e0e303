//! Our OAuth client registrations ("provider apps"), one per provider.
//!
//! # Environment
//!
//! [`ClientRegistry::from_lookup`] reads (the handlers' settings pass their
//! environment: `syncbridge-functions`' `settings`), for each provider name `P` it is
//! given (`P` upper-cased, every character other than `A-Z0-9` turned into
//! `_`, so `sandbox` → `SANDBOX`, `hub-spot` → `HUB_SPOT`):
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `SYNCBRIDGE_OAUTH_<P>_CLIENT_ID` | yes | the client id |
//! | `SYNCBRIDGE_OAUTH_<P>_CLIENT_SECRET` | yes | the client secret |
//! | `SYNCBRIDGE_OAUTH_<P>_TOKEN_URL` | no | overrides the connector's `auth.token_url` (absolute, or relative to the connection's base URL) |
//! | `SYNCBRIDGE_OAUTH_<P>_AUTH_STYLE` | no | `basic` (HTTP Basic, RFC 6749 §2.3.1) or `body` (`client_id`/`client_secret` form fields); default: the connector's `auth.token_auth`, else `basic` |
//!
//! A provider with only one of id/secret set is a configuration error.

use std::collections::BTreeMap;

use syncbridge_core::SecretString;
use syncbridge_core::connector::ConnectorDef;
use syncbridge_core::connector::definition::{AuthDef, TokenAuth};
use syncbridge_core::model::Connection;

/// Prefix of every variable [`ClientRegistry::from_lookup`] reads.
pub const ENV_PREFIX: &str = "SYNCBRIDGE_OAUTH_";

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthStyle {
    /// HTTP Basic with the url-encoded id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    RequestBody,
}

/// One provider app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Connector name this client is for.
    pub provider: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (never printed).
    pub client_secret: SecretString,
    /// Overrides the connector's token URL; absolute or relative to the
    /// connection's base URL.
    pub token_url: Option<String>,
    /// Token-endpoint authentication; `None`: the connector's
    /// `auth.token_auth`, else HTTP Basic (see [`auth_style_for`](Self::auth_style_for)).
    pub auth_style: Option<AuthStyle>,
}

impl OAuthClient {
    /// A client using HTTP Basic and the connector's token URL.
    pub fn new(
        provider: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        OAuthClient {
            provider: provider.into(),
            client_id: client_id.into(),
            client_secret,
            token_url: None,
            auth_style: None,
        }
    }

    /// Sets the token URL override.
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Sets the authentication style.
    pub fn with_auth_style(mut self, style: AuthStyle) -> Self {
        self.auth_style = Some(style);
        self
    }

    /// Identifies the provider app (for `invalid_client` de-duplication).
    pub fn app_key(&self) -> String {
        format!("{}/{}", self.provider, self.client_id)
    }

    /// How this client authenticates at `def`'s token endpoint: its own
    /// setting, else the connector's `auth.token_auth`, else HTTP Basic.
    pub fn auth_style_for(&self, def: &ConnectorDef) -> AuthStyle {
        if let Some(s) = self.auth_style {
            return s;
        }
        match &def.auth {
            AuthDef::Oauth2 {
                token_auth: Some(TokenAuth::Body),
                ..
            } => AuthStyle::RequestBody,
            _ => AuthStyle::Basic,
        }
    }

    /// The absolute token URL for `conn`: this client's override or the
    /// connector's `auth.token_url`, resolved against the connection's base
    /// URL (its override, else the connector's) when relative. A relative
    /// URL follows RFC 3986: `/oauth/v1/token` replaces the base's path.
    ///
    /// # Errors
    /// No token URL anywhere, or one that does not resolve to http(s).
    pub fn token_url_for(&self, conn: &Connection, def: &ConnectorDef) -> Result<url::Url, String> {
        self.token_url_at(conn.base_url.as_deref(), def)
    }

    /// [`token_url_for`](Self::token_url_for) a connection whose base URL
    /// override is `base_url` (the connect flow, before the connection exists).
    ///
    /// # Errors
    /// As `token_url_for`.
    pub fn token_url_at(
        &self,
        base_url: Option<&str>,
        def: &ConnectorDef,
    ) -> Result<url::Url, String> {
        let raw = match (&self.token_url, &def.auth) {
            (Some(u), _) => u.as_str(),
            (None, AuthDef::Oauth2 { token_url, .. }) => token_url.as_str(),
            (None, _) => {
                return Err(format!(
                    "connector {} has no OAuth token URL and none is configured",
                    def.name
                ));
            }
        };
        let base = base_url.unwrap_or(&def.base_url);
        let url = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(url::ParseError::RelativeUrlWithoutBase) => url::Url::parse(base)
                .and_then(|b| b.join(raw))
                .map_err(|e| format!("token URL {raw:?} relative to {base:?}: {e}"))?,
            Err(e) => return Err(format!("token URL {raw:?}: {e}")),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("token URL {url} is not http(s)"));
        }
        Ok(url)
    }
}

/// The provider apps, by connector name.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: BTreeMap<String, OAuthClient>,
}

/// A provider whose environment is half configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OAuth client for provider {provider:?} is incomplete: set {missing}")]
pub struct ClientConfigError {
    /// The provider.
    pub provider: String,
    /// The variable that is missing or invalid.
    pub missing: String,
}

/// `sandbox` → `SANDBOX`, `hub-spot` → `HUB_SPOT`.
pub fn env_provider_segment(provider: &str) -> String {
    provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl ClientRegistry {
    /// No clients.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a client (builder style).
    pub fn with(mut self, client: OAuthClient) -> Self {
        self.insert(client);
        self
    }

    /// Adds or replaces a client.
    pub fn insert(&mut self, client: OAuthClient) {
        self.clients.insert(client.provider.clone(), client);
    }

    /// The client for a provider.
    pub fn get(&self, provider: &str) -> Option<&OAuthClient> {
        self.clients.get(provider)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Reads the settings of each of `providers` through `lookup` (see the
    /// module docs for the variable names). Providers without variables are
    /// skipped.
    ///
    /// # Errors
    /// A provider has an id without a secret (or the reverse), or a bad auth style.
    pub fn from_lookup<'a>(
        providers: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ClientConfigError> {
        let mut reg = ClientRegistry::new();
        for provider in providers {
            let p = format!("{ENV_PREFIX}{}", env_provider_segment(provider));
            let var =
                |suffix: &str| lookup(&format!("{p}_{suffix}")).filter(|v| !v.trim().is_empty());
            let (id, secret) = (var("CLIENT_ID"), var("CLIENT_SECRET"));
            let missing = |s: &str| ClientConfigError {
                provider: provider.to_owned(),
                missing: format!("{p}_{s}"),
            };
            let (id, secret) = match (id, secret) {
                (None, None) => continue,
                (Some(_), None) => return Err(missing("CLIENT_SECRET")),
                (None, Some(_)) => return Err(missing("CLIENT_ID")),
                (Some(i), Some(s)) => (i, SecretString::new(s)),
            };
            let mut client = OAuthClient::new(provider, id.trim(), secret);
            if let Some(u) = var("TOKEN_URL") {
                client.token_url = Some(u.trim().to_owned());
            }
            client.auth_style = match var("AUTH_STYLE").as_deref().map(str::trim) {
                None => None,
                Some("basic") => Some(AuthStyle::Basic),
                Some("body") => Some(AuthStyle::RequestBody),
                Some(_) => return Err(missing("AUTH_STYLE (basic or body)")),
            };
            reg.insert(client);
        }
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Variables are read per provider; half-configured providers are refused.
    #[test]
    fn from_lookup_reads_documented_names() {
        let env: HashMap<&str, &str> = [
            ("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID", "sbx_client_demo"),
            ("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET", "sbx_cs_x"),
            ("SYNCBRIDGE_OAUTH_HUB_SPOT_CLIENT_ID", "h"),
            ("SYNCBRIDGE_OAUTH_HUB_SPOT_CLIENT_SECRET", "hs"),
            ("SYNCBRIDGE_OAUTH_HUB_SPOT_AUTH_STYLE", "body"),
            ("SYNCBRIDGE_OAUTH_HUB_SPOT_TOKEN_URL", "https://x/token"),
        ]
        .into_iter()
        .collect();
        let look = |k: &str| env.get(k).map(|v| v.to_string());
        let reg = ClientRegistry::from_lookup(["sandbox", "hub-spot", "github"], look).unwrap();
        assert_eq!(reg.len(), 2);
        let s = reg.get("sandbox").unwrap();
        assert_eq!(s.client_id, "sbx_client_demo");
        assert_eq!(s.client_secret.expose(), "sbx_cs_x");
        assert!(!format!("{reg:?}").contains("sbx_cs_x"));
        let h = reg.get("hub-spot").unwrap();
        assert_eq!(h.auth_style, Some(AuthStyle::RequestBody));
        assert_eq!(s.auth_style, None);
        assert_eq!(h.token_url.as_deref(), Some("https://x/token"));
        let half = |k: &str| (k == "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID").then(|| "x".to_owned());
        let err = ClientRegistry::from_lookup(["sandbox"], half).unwrap_err();
        assert_eq!(err.missing, "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET");
    }
}
