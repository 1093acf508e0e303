//! OAuth 2.0 tokens the way HubSpot issues them: short-lived bearer access
//! tokens and refresh tokens that **rotate and are single-use** (zero reuse
//! grace), which is exactly what makes concurrent refreshes race in real
//! integrations.
//!
//! [`TokenStore`] is pure bookkeeping (no HTTP); `http::oauth` maps its
//! results onto `POST /oauth/v1/token` and RFC 6749 §5.2 error bodies.
//! Expired access tokens are remembered for a while so a request can be told
//! "expired" rather than "unknown".

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Prefix of every access token.
pub const ACCESS_PREFIX: &str = "sbx_at_";
/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "sbx_rt_";
/// Prefix of accepted authorization codes.
pub const CODE_PREFIX: &str = "sbx_code_";

/// How long an expired access token is still recognised as "expired".
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);

/// A token endpoint response (HubSpot/RFC 6749 field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Bearer token for `/crm` requests.
    pub access_token: String,
    /// Single-use token for the next `grant_type=refresh_token`.
    pub refresh_token: String,
    /// Access-token lifetime in whole seconds (rounded up).
    pub expires_in: u64,
    /// Always `bearer`.
    pub token_type: String,
}

/// What a bearer token is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessCheck {
    /// Issued, not expired, not revoked.
    Valid,
    /// Issued but past its lifetime.
    Expired,
    /// Never issued, revoked, or long forgotten.
    Unknown,
}

/// Why a refresh was refused (`invalid_grant` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The refresh token was never issued (or was forgotten).
    #[error("unknown refresh token")]
    Unknown,
    /// The refresh token was already exchanged once (rotation).
    #[error("refresh token already used")]
    Used,
    /// The refresh token was revoked through `/_sandbox/revoke`.
    #[error("refresh token revoked")]
    Revoked,
    /// The refresh token belongs to another client.
    #[error("refresh token was issued to another client")]
    WrongClient,
}

#[derive(Debug)]
struct AccessEntry {
    client_id: String,
    expires_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Active,
    Used,
    Revoked,
}

#[derive(Debug)]
struct RefreshEntry {
    client_id: String,
    state: RefreshState,
}

/// Issued tokens and their states.
#[derive(Debug)]
pub struct TokenStore {
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, RefreshEntry>,
    rng: StdRng,
    issued: u64,
}

impl TokenStore {
    /// An empty store whose token strings come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            access: HashMap::new(),
            refresh: HashMap::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x0A07_5EED),
            issued: 0,
        }
    }

    fn token(&mut self, prefix: &str) -> String {
        self.issued += 1;
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        format!("{prefix}{:06}{a:016x}{b:016x}", self.issued)
    }

    /// Issues a fresh access/refresh pair to `client_id`.
    pub fn issue(&mut self, client_id: &str, ttl: Duration, now: Instant) -> TokenPair {
        if self.issued.is_multiple_of(1024) {
            self.access
                .retain(|_, e| e.expires_at + EXPIRED_MEMORY > now);
        }
        let access_token = self.token(ACCESS_PREFIX);
        let refresh_token = self.token(REFRESH_PREFIX);
        self.access.insert(
            access_token.clone(),
            AccessEntry {
                client_id: client_id.to_owned(),
                expires_at: now + ttl,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshEntry {
                client_id: client_id.to_owned(),
                state: RefreshState::Active,
            },
        );
        TokenPair {
            access_token,
            refresh_token,
            expires_in: ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0),
            token_type: "bearer".to_owned(),
        }
    }

    /// Classifies a bearer token.
    pub fn check_access(&self, token: &str, now: Instant) -> AccessCheck {
        match self.access.get(token) {
            Some(e) if now < e.expires_at => AccessCheck::Valid,
            Some(_) => AccessCheck::Expired,
            None => AccessCheck::Unknown,
        }
    }

    /// Exchanges a refresh token: marks it used and issues a new pair.
    ///
    /// # Errors
    /// The token is unknown, used, revoked or belongs to another client.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<TokenPair, GrantError> {
        let entry = self
            .refresh
            .get_mut(refresh_token)
            .ok_or(GrantError::Unknown)?;
        if entry.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        match entry.state {
            RefreshState::Used => return Err(GrantError::Used),
            RefreshState::Revoked => return Err(GrantError::Revoked),
            RefreshState::Active => entry.state = RefreshState::Used,
        }
        Ok(self.issue(client_id, ttl, now))
    }

    /// Revokes one refresh token; returns how many were active (0 or 1).
    pub fn revoke_refresh(&mut self, refresh_token: &str) -> usize {
        match self.refresh.get_mut(refresh_token) {
            Some(e) if e.state == RefreshState::Active => {
                e.state = RefreshState::Revoked;
                1
            }
            _ => 0,
        }
    }

    /// Revokes every active refresh token of a client and forgets its access
    /// tokens (the app was "uninstalled"); returns how many tokens died.
    pub fn revoke_client(&mut self, client_id: &str) -> usize {
        let mut n = 0;
        for e in self.refresh.values_mut() {
            if e.client_id == client_id && e.state == RefreshState::Active {
                e.state = RefreshState::Revoked;
                n += 1;
            }
        }
        let before = self.access.len();
        self.access.retain(|_, e| e.client_id != client_id);
        n + (before - self.access.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refresh token works once; its successor works; the first one then fails as Used.
    #[test]
    fn rotation_is_single_use() {
        let mut s = TokenStore::new(1);
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        let first = s.issue("c", ttl, now);
        assert!(first.access_token.starts_with(ACCESS_PREFIX));
        assert!(first.refresh_token.starts_with(REFRESH_PREFIX));
        let second = s.refresh(&first.refresh_token, "c", ttl, now).unwrap();
        assert_eq!(
            s.refresh(&first.refresh_token, "c", ttl, now),
            Err(GrantError::Used)
        );
        assert_eq!(
            s.refresh(&second.refresh_token, "other", ttl, now),
            Err(GrantError::WrongClient)
        );
        assert!(s.refresh(&second.refresh_token, "c", ttl, now).is_ok());
        assert_eq!(
            s.refresh("sbx_rt_nope", "c", ttl, now),
            Err(GrantError::Unknown)
        );
    }

    /// Access tokens are valid until their lifetime ends, then "expired", and unknown otherwise.
    #[test]
    fn access_expiry() {
        let mut s = TokenStore::new(1);
        let now = Instant::now();
        let pair = s.issue("c", Duration::from_millis(1500), now);
        assert_eq!(pair.expires_in, 2);
        assert_eq!(s.check_access(&pair.access_token, now), AccessCheck::Valid);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            s.check_access(&pair.access_token, later),
            AccessCheck::Expired
        );
        assert_eq!(s.check_access("sbx_at_x", now), AccessCheck::Unknown);
    }

    /// Revoking a client kills its refresh and access tokens.
    #[test]
    fn revoke_client() {
        let mut s = TokenStore::new(1);
        let now = Instant::now();
        let pair = s.issue("c", Duration::from_secs(60), now);
        assert_eq!(s.revoke_client("c"), 2);
        assert_eq!(
            s.check_access(&pair.access_token, now),
            AccessCheck::Unknown
        );
        assert_eq!(
            s.refresh(&pair.refresh_token, "c", Duration::from_secs(1), now),
            Err(GrantError::Revoked)
        );
    }
}
