//! Connect sessions: the short-lived, single-use record behind a customer's
//! "Connect HubSpot" (OAuth 2.0 authorization code + PKCE, or a key form).
//!
//! A session is created by the product (`POST /v1/connect/sessions`) and
//! moves forward only, each step one compare-and-swap on its `version`
//! (`Store::advance_connect_session`), so two browsers racing on one link or
//! one `state` cannot both win:
//!
//! ```text
//! Created ──open connect_url──▶ Opened ──callback (state)──▶ Redeemed ──▶ Done(connected | failed)
//!    └──────── key form posted ───────────────────────────────▶ Redeemed ──▶ Done
//! ```
//!
//! `Redeemed` is taken before the code is exchanged (or the key stored), so a
//! replayed `state` loses the compare-and-swap and is refused, whatever the
//! provider would say about the code.
//!
//! The store keeps no secret in plain text: the link's and the `state`'s
//! random parts only as SHA-256 hashes, the PKCE verifier sealed (the
//! credentials crate's envelope, bound to the session id). Deciding is pure
//! ([`ConnectSession::check_link`], [`ConnectSession::check_state`]); the API
//! does the I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, TenantId};
use crate::model::SealedSecrets;

/// How long a session may be used after it is created.
pub const SESSION_TTL: Duration = Duration::from_secs(600);

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ConnectStage {
    /// Created; its `connect_url` not opened yet.
    Created,
    /// The browser opened the link and was sent to the provider; the
    /// `state` (its hash) and the sealed PKCE verifier are bound to it.
    Opened {
        /// SHA-256 (hex) of the `state` sent to the provider.
        state_hash: String,
        /// The PKCE verifier, sealed; `None` for providers without PKCE.
        verifier: Option<SealedSecrets>,
        /// The `redirect_uri` of the authorization request.
        redirect_uri: String,
        /// SHA-256 (hex) of the cookie the opening browser was given: the
        /// callback must come from that browser (RFC 6749 §10.12), so a
        /// consent URL forwarded to someone else connects nothing. `None`
        /// for a session opened before this check existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        browser_hash: Option<String>,
    },
    /// Its `state` (or key form) was used; the code is being exchanged.
    Redeemed,
    /// Used up: connected, or failed with an error code. Never used again.
    Done {
        /// What came of it.
        outcome: ConnectOutcome,
    },
}

/// The end of a session, what its `return_url` is sent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    /// The connection was created or re-authorized.
    Connected {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// Refused; nothing was stored.
    Failed {
        /// A [`ConnectError`] code.
        error: String,
    },
}

/// Why a connect attempt ends without a connection: the `error` code the
/// browser comes back to `return_url` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The customer denied access at the provider.
    AccessDenied,
    /// Unknown, tampered or already used `state` (or link).
    StateInvalid,
    /// The session is older than [`SESSION_TTL`].
    SessionExpired,
    /// The provider refused to exchange the code (or its token endpoint failed).
    ExchangeFailed,
    /// The provider sent another error back.
    ProviderError,
    /// Storing the connection failed.
    ServerError,
    /// The callback came from another browser than the one that opened
    /// the link (its cookie is missing or differs).
    BrowserMismatch,
}

impl ConnectError {
    /// The code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            ConnectError::AccessDenied => "access_denied",
            ConnectError::StateInvalid => "state_invalid",
            ConnectError::SessionExpired => "session_expired",
            ConnectError::ExchangeFailed => "exchange_failed",
            ConnectError::ProviderError => "provider_error",
            ConnectError::ServerError => "server_error",
            ConnectError::BrowserMismatch => "browser_mismatch",
        }
    }
}

/// A connect session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSession {
    /// `cs_` + 32 hex characters; the public part of the link and of the `state`.
    pub id: String,
    /// Owner of the connection.
    pub tenant: TenantId,
    /// Connector name.
    pub provider: String,
    /// The connection to create, or the existing one to re-authorize.
    pub connection_id: ConnectionId,
    /// Whether `connection_id` exists already (re-authorization).
    pub reconnect: bool,
    /// Where the browser goes at the end (allow-listed when the session was made).
    pub return_url: String,
    /// The connection's base URL (providers whose host varies).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The new connection's settings, checked when the session was made
    /// (empty for a re-authorization, which keeps the connection's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it can no longer be used.
    pub expires_at: Timestamp,
    /// SHA-256 (hex) of the link's secret part.
    pub link_hash: String,
    /// Where it stands.
    pub stage: ConnectStage,
    /// Compare-and-swap version, 1 when created, +1 per step.
    pub version: i64,
}

/// Why a step on a session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong secret, wrong stage (a replay) or unknown.
    Invalid,
    /// Too late.
    Expired,
    /// Not the browser that opened the link.
    OtherBrowser,
}

impl Refusal {
    /// The matching browser error.
    pub fn error(self) -> ConnectError {
        match self {
            Refusal::Invalid => ConnectError::StateInvalid,
            Refusal::Expired => ConnectError::SessionExpired,
            Refusal::OtherBrowser => ConnectError::BrowserMismatch,
        }
    }
}

/// Constant-time equality of two hex digests.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl ConnectSession {
    /// Whether a link whose secret hashes to `link_hash` may open this
    /// session at `now` (only once: the session must still be `Created`).
    ///
    /// # Errors
    /// [`Refusal`].
    pub fn check_link(&self, link_hash: &str, now: Timestamp) -> Result<(), Refusal> {
        if !same_hash(&self.link_hash, link_hash) || self.stage != ConnectStage::Created {
            return Err(Refusal::Invalid);
        }
        if now >= self.expires_at {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// Whether a callback whose `state` hashes to `state_hash` may finish
    /// this session at `now` (only once: it must be `Opened` with that state).
    ///
    /// # Errors
    /// [`Refusal`].
    pub fn check_state(&self, state_hash: &str, now: Timestamp) -> Result<(), Refusal> {
        let ConnectStage::Opened { state_hash: h, .. } = &self.stage else {
            return Err(Refusal::Invalid);
        };
        if !same_hash(h, state_hash) {
            return Err(Refusal::Invalid);
        }
        if now >= self.expires_at {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// Whether the callback's browser, whose cookie hashes to
    /// `cookie_hash` (`None`: it sent none), is the one that opened the
    /// link. Call after [`Self::check_state`].
    ///
    /// # Errors
    /// [`Refusal::OtherBrowser`].
    pub fn check_browser(&self, cookie_hash: Option<&str>) -> Result<(), Refusal> {
        match (&self.stage, cookie_hash) {
            (
                ConnectStage::Opened {
                    browser_hash: Some(want),
                    ..
                },
                got,
            ) if !got.is_some_and(|g| same_hash(want, g)) => Err(Refusal::OtherBrowser),
            _ => Ok(()),
        }
    }

    /// The next version of this session at `stage`.
    pub fn advanced(&self, stage: ConnectStage) -> ConnectSession {
        ConnectSession {
            stage,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&ConnectOutcome> {
        match &self.stage {
            ConnectStage::Done { outcome } => Some(outcome),
            _ => None,
        }
    }
}

/// A session id or a secret's text: `<prefix>` + 32 hex characters from `bytes`.
pub fn token_text(prefix: &str, bytes: &[u8; 16]) -> String {
    format!("{prefix}{}", hex::encode(bytes))
}

/// Splits `<session id>.<secret>` (the link token and the `state`).
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (id.strip_prefix("cs_").is_some_and(|h| hex(h, 32)) && hex(secret, 64)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: Timestamp) -> ConnectSession {
        ConnectSession {
            id: token_text("cs_", &[7; 16]),
            tenant: TenantId::parse("acme").unwrap(),
            provider: "sandbox".into(),
            connection_id: ConnectionId::parse("c1").unwrap(),
            reconnect: false,
            return_url: "https://app.example/done".into(),
            base_url: None,
            settings: BTreeMap::new(),
            created_at: now,
            expires_at: now.add(SESSION_TTL),
            link_hash: "ab".repeat(32),
            stage: ConnectStage::Created,
            version: 1,
        }
    }

    /// A link opens a session once, before it expires, with its own secret only;
    /// the state finishes it once, with its own hash only.
    #[test]
    fn steps_are_single_use_and_expire() {
        let now = Timestamp::from_millis(1_000_000);
        let s = session(now);
        assert_eq!(s.check_link(&"ab".repeat(32), now), Ok(()));
        assert_eq!(s.check_link(&"ac".repeat(32), now), Err(Refusal::Invalid));
        assert_eq!(
            s.check_link(&"ab".repeat(32), now.add(SESSION_TTL)),
            Err(Refusal::Expired)
        );
        assert_eq!(s.check_state(&"cd".repeat(32), now), Err(Refusal::Invalid));
        let opened = s.advanced(ConnectStage::Opened {
            state_hash: "cd".repeat(32),
            verifier: None,
            redirect_uri: "http://127.0.0.1/api/v1/connect/callback".into(),
            browser_hash: Some("ef".repeat(32)),
        });
        assert_eq!(opened.check_browser(Some(&"ef".repeat(32))), Ok(()));
        for other in [None, Some("ee".repeat(32)), Some(String::new())] {
            assert_eq!(
                opened.check_browser(other.as_deref()),
                Err(Refusal::OtherBrowser),
                "a callback without the opening browser's cookie: {other:?}"
            );
        }
        assert_eq!(Refusal::OtherBrowser.error().code(), "browser_mismatch");
        assert_eq!(opened.version, 2);
        assert_eq!(
            opened.check_link(&"ab".repeat(32), now),
            Err(Refusal::Invalid),
            "a link opens once"
        );
        assert_eq!(opened.check_state(&"cd".repeat(32), now), Ok(()));
        assert_eq!(
            opened.check_state(&"ce".repeat(32), now),
            Err(Refusal::Invalid)
        );
        assert_eq!(Refusal::Expired.error().code(), "session_expired");
        let done = opened.advanced(ConnectStage::Done {
            outcome: ConnectOutcome::Failed {
                error: "access_denied".into(),
            },
        });
        assert_eq!(
            done.check_state(&"cd".repeat(32), now),
            Err(Refusal::Invalid),
            "a state is used once"
        );
    }

    /// Tokens are `cs_<32 hex>.<64 hex>`; anything else is refused.
    #[test]
    fn tokens_split_strictly() {
        let id = token_text("cs_", &[0xab; 16]);
        let secret = "0f".repeat(32);
        let t = format!("{id}.{secret}");
        assert_eq!(split_token(&t), Some((id.as_str(), secret.as_str())));
        assert_eq!(split_token(&id), None);
        assert_eq!(split_token(&format!("{id}.zz")), None);
        assert_eq!(
            split_token(&format!("xx_{}.{secret}", "0".repeat(32))),
            None
        );
    }
}
