//! The authorization side of the sandbox's OAuth 2.0 (RFC 6749 §4.1 with
//! PKCE, RFC 7636): what `/oauth/authorize` checks, the consent requests
//! waiting for Approve or Deny, and the authorization codes they turn into.
//! Pure bookkeeping (no HTTP): `http::authorize` renders the page and
//! redirects; `http::oauth` redeems codes at the token endpoint.
//!
//! Rules, as a strict provider applies them:
//! - the `client_id` must be the configured client and the `redirect_uri`
//!   one registered for it ([`redirect_allowed`]); otherwise the page shows
//!   the error and never redirects (§4.1.2.1);
//! - `code_challenge_method` may only be `S256` (plain is refused);
//! - a code lives 10 minutes, is redeemed once, only by the client it was
//!   issued to, with the same `redirect_uri`, and — when it was issued with
//!   a challenge — with the verifier whose S256 is that challenge.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Prefix of codes issued by the consent page.
pub const ISSUED_CODE_PREFIX: &str = "sbx_ac_";

/// How long a consent request or a code may be used.
pub const CODE_TTL: Duration = Duration::from_secs(600);

/// A checked authorization request (`GET /oauth/authorize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// Requested scopes (space-separated, as sent).
    pub scope: String,
    /// The client's `state`, sent back unchanged.
    pub state: Option<String>,
    /// The S256 challenge, if the client uses PKCE.
    pub code_challenge: Option<String>,
}

/// Whether `uri` is registered for the client: one of `registered`
/// exactly, or — when none is registered — any `http://127.0.0.1…` /
/// `http://localhost…` URI (a local sandbox's permissive default).
pub fn redirect_allowed(registered: &[String], uri: &str) -> bool {
    if registered.is_empty() {
        return url::Url::parse(uri).is_ok_and(|u| {
            u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost"))
        });
    }
    registered.iter().any(|r| r == uri)
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Why a code was refused (`invalid_grant` on the wire, with this description).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Never issued, already redeemed or expired.
    #[error("unknown, used or expired authorization code")]
    Unknown,
    /// Issued to another client.
    #[error("authorization code was issued to another client")]
    WrongClient,
    /// The token request's `redirect_uri` is not the authorization request's.
    #[error("redirect_uri does not match the authorization request")]
    RedirectMismatch,
    /// PKCE: no verifier, or one whose S256 is not the challenge.
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
}

#[derive(Debug)]
struct Entry {
    req: AuthRequest,
    at: Instant,
}

/// Consent requests awaiting a decision and issued codes.
#[derive(Debug, Default)]
pub struct Consents {
    pending: HashMap<String, Entry>,
    codes: HashMap<String, Entry>,
    /// Every `code_verifier` presented, for tests that check where it went.
    verifiers_seen: Vec<String>,
}

fn random_text(prefix: &str) -> String {
    let n: u128 = rand::rng().random();
    let m: u64 = rand::rng().random();
    format!("{prefix}{n:032x}{m:016x}")
}

impl Consents {
    fn expire(&mut self, now: Instant) {
        self.pending
            .retain(|_, e| now.duration_since(e.at) < CODE_TTL);
        self.codes
            .retain(|_, e| now.duration_since(e.at) < CODE_TTL);
    }

    /// The `code_verifier`s presented at the token endpoint (the first 1,000).
    pub fn verifiers_seen(&self) -> Vec<String> {
        self.verifiers_seen.clone()
    }

    /// Keeps a request for the consent page; returns its id (the form's hidden field).
    pub fn hold(&mut self, req: AuthRequest, now: Instant) -> String {
        self.expire(now);
        let id = random_text("sbx_req_");
        self.pending.insert(id.clone(), Entry { req, at: now });
        id
    }

    /// Takes a held request (once).
    pub fn take(&mut self, id: &str, now: Instant) -> Option<AuthRequest> {
        self.expire(now);
        self.pending.remove(id).map(|e| e.req)
    }

    /// Issues a code for an approved request.
    pub fn issue(&mut self, req: AuthRequest, now: Instant) -> String {
        self.expire(now);
        let code = random_text(ISSUED_CODE_PREFIX);
        self.codes.insert(code.clone(), Entry { req, at: now });
        code
    }

    /// Redeems a code once: a refused attempt uses it up too (RFC 6749
    /// §10.5: a code is used once; a wrong verifier may be an attacker's).
    ///
    /// # Errors
    /// [`CodeError`].
    pub fn redeem(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now: Instant,
    ) -> Result<AuthRequest, CodeError> {
        self.expire(now);
        if let Some(v) = verifier
            && self.verifiers_seen.len() < 1000
        {
            self.verifiers_seen.push(v.to_owned());
        }
        let req = self.codes.remove(code).ok_or(CodeError::Unknown)?.req;
        if req.client_id != client_id {
            return Err(CodeError::WrongClient);
        }
        if redirect_uri != Some(req.redirect_uri.as_str()) {
            return Err(CodeError::RedirectMismatch);
        }
        if let Some(challenge) = &req.code_challenge
            && verifier.map(s256).as_deref() != Some(challenge.as_str())
        {
            return Err(CodeError::VerifierMismatch);
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(challenge: Option<&str>) -> AuthRequest {
        AuthRequest {
            client_id: "cid".into(),
            redirect_uri: "http://127.0.0.1:7071/api/v1/connect/callback".into(),
            scope: "crm.objects.contacts.read".into(),
            state: Some("st".into()),
            code_challenge: challenge.map(str::to_owned),
        }
    }

    /// RFC 7636 Appendix B: the verifier's S256 is the challenge.
    #[test]
    fn s256_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    /// Registered redirect URIs match exactly; with none registered only loopback http passes.
    #[test]
    fn redirect_uris() {
        let reg = vec!["https://app.example/cb".to_owned()];
        assert!(redirect_allowed(&reg, "https://app.example/cb"));
        assert!(!redirect_allowed(&reg, "https://app.example/cb2"));
        assert!(redirect_allowed(&[], "http://127.0.0.1:9/cb"));
        assert!(redirect_allowed(&[], "http://localhost/cb"));
        assert!(!redirect_allowed(&[], "https://evil.example/cb"));
        assert!(!redirect_allowed(&[], "not a url"));
    }

    /// A code is redeemed once, with its verifier, client and redirect URI;
    /// every refusal uses it up.
    #[test]
    fn codes_are_single_use_and_pkce_bound() {
        let now = Instant::now();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let mut c = Consents::default();
        let r = req(Some(&s256(verifier)));
        let uri = r.redirect_uri.clone();
        let code = c.issue(r.clone(), now);
        assert!(code.starts_with(ISSUED_CODE_PREFIX));
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), Some(verifier), now),
            Ok(r.clone())
        );
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), Some(verifier), now),
            Err(CodeError::Unknown),
            "a code is redeemed once"
        );
        let code = c.issue(r.clone(), now);
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), Some("wrong-verifier"), now),
            Err(CodeError::VerifierMismatch)
        );
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), Some(verifier), now),
            Err(CodeError::Unknown),
            "a refused attempt uses the code up"
        );
        let code = c.issue(r.clone(), now);
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), None, now),
            Err(CodeError::VerifierMismatch)
        );
        let code = c.issue(r.clone(), now);
        assert_eq!(
            c.redeem(&code, "other", Some(&uri), Some(verifier), now),
            Err(CodeError::WrongClient)
        );
        let code = c.issue(r.clone(), now);
        assert_eq!(
            c.redeem(
                &code,
                "cid",
                Some("http://127.0.0.1:1/x"),
                Some(verifier),
                now
            ),
            Err(CodeError::RedirectMismatch)
        );
        let code = c.issue(req(None), now);
        assert!(c.redeem(&code, "cid", Some(&uri), None, now).is_ok());
        let code = c.issue(r, now);
        assert_eq!(
            c.redeem(&code, "cid", Some(&uri), Some(verifier), now + CODE_TTL),
            Err(CodeError::Unknown),
            "codes expire"
        );
    }

    /// A held request is taken once.
    #[test]
    fn held_requests_are_taken_once() {
        let now = Instant::now();
        let mut c = Consents::default();
        let id = c.hold(req(None), now);
        assert_eq!(c.take(&id, now), Some(req(None)));
        assert_eq!(c.take(&id, now), None);
        let id = c.hold(req(None), now);
        assert_eq!(c.take(&id, now + CODE_TTL), None);
    }
}
