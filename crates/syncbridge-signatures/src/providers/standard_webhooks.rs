//! Standard Webhooks and Svix: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (Svix: `svix-*`, and its libraries accept both sets).
//!
//! The signed content is `"{id}.{timestamp}.{body}"`. The signature header is
//! a space-separated list of `<version>,<base64>` entries, which is how
//! rotation works: the sender signs with both the old and the new key.
//!
//! - `v1`: HMAC-SHA256 keyed with base64-decode(secret without `whsec_`).
//! - `v1a`: ed25519, verified with a `whpk_<base64 public key>` secret, or
//!   signed (and verified) with a `whsk_<base64 secret key>` secret.
//!
//! Entries of other versions are skipped.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::crypto::{Clock, ct_eq, from_base64, hmac_sha256, parse_timestamp, to_base64};
use crate::error::{SignError, VerifyError};
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Variant {
    Standard,
    Svix,
}

/// The three header names of one header set.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// A secret, interpreted.
enum Key {
    /// `whsec_…` or bare base64: the HMAC key bytes.
    Hmac(Vec<u8>),
    /// `whpk_…`: an ed25519 public key, verify-only.
    Public(VerifyingKey),
    /// `whsk_…`: an ed25519 secret key (32-byte seed or 64-byte keypair).
    Secret(Box<SigningKey>),
}

fn parse_key(secret: &WebhookSecret) -> Result<Key, &'static str> {
    let text = secret.expose().trim();
    if let Some(public) = text.strip_prefix("whpk_") {
        let bytes = from_base64(public).ok_or("`whpk_` key is not base64")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "`whpk_` key is not 32 bytes")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "`whpk_` key is not ed25519")?;
        return Ok(Key::Public(key));
    }
    if let Some(private) = text.strip_prefix("whsk_") {
        let bytes = from_base64(private).ok_or("`whsk_` key is not base64")?;
        let key = match bytes.len() {
            32 => {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&bytes);
                SigningKey::from_bytes(&seed)
            }
            64 => {
                let mut pair = [0u8; 64];
                pair.copy_from_slice(&bytes);
                SigningKey::from_keypair_bytes(&pair)
                    .map_err(|_| "`whsk_` keypair halves do not match")?
            }
            _ => return Err("`whsk_` key is not 32 or 64 bytes"),
        };
        return Ok(Key::Secret(Box::new(key)));
    }
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    match from_base64(encoded) {
        Some(key) if !key.is_empty() => Ok(Key::Hmac(key)),
        Some(_) => Err("secret is empty"),
        None => Err("secret is not base64 (after the optional `whsec_` prefix)"),
    }
}

/// Whether `secret` is a usable key: `whsec_` (or bare) base64 of at least
/// one byte, a `whpk_` ed25519 public key or a `whsk_` secret key.
pub(crate) fn check_key(secret: &WebhookSecret) -> Result<(), &'static str> {
    parse_key(secret).map(|_| ())
}

fn hmac_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// The header set a delivery uses: Svix accepts `webhook-*` when `svix-*` is absent.
fn names_for(variant: Variant, req: &Request<'_>) -> &'static Names {
    match variant {
        Variant::Standard => &WEBHOOK,
        Variant::Svix if req.header(SVIX.id).is_none() && req.header(WEBHOOK.id).is_some() => {
            &WEBHOOK
        }
        Variant::Svix => &SVIX,
    }
}

pub(crate) fn verify(
    variant: Variant,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let names = names_for(variant, req);
    let id = req.require(names.id)?;
    let timestamp = parse_timestamp(names.timestamp, req.require(names.timestamp)?.trim())?;
    let header = req.require(names.signature)?;

    let mut v1 = Vec::new();
    let mut v1a = Vec::new();
    for entry in header.split(' ').filter(|entry| !entry.is_empty()) {
        match entry.split_once(',') {
            Some(("v1", sig)) => v1.extend(from_base64(sig)),
            Some(("v1a", sig)) => {
                v1a.extend(from_base64(sig).and_then(|bytes| Signature::from_slice(&bytes).ok()))
            }
            _ => {}
        }
    }
    if v1.is_empty() && v1a.is_empty() {
        return Err(VerifyError::NoSupportedSignature(
            names.signature.to_owned(),
        ));
    }
    clock.check(timestamp)?;

    // An unusable secret is skipped while another one works (a bad entry in
    // a rotation must not refuse deliveries signed with the good one); it is
    // an error only when no secret is usable.
    let mut unusable = None;
    for secret in secrets {
        let key = match parse_key(secret) {
            Ok(key) => key,
            Err(why) => {
                unusable.get_or_insert(why);
                continue;
            }
        };
        let matched = match key {
            Key::Hmac(key) => {
                let mac = hmac_signature(&key, id, timestamp, req.body);
                v1.iter().any(|candidate| ct_eq(candidate, &mac))
            }
            Key::Public(public) => verify_ed25519(&public, &v1a, id, timestamp, req.body),
            Key::Secret(private) => {
                verify_ed25519(&private.verifying_key(), &v1a, id, timestamp, req.body)
            }
        };
        if matched {
            return Ok(Verified {
                event_id: Some(id.to_owned()),
                timestamp: Some(timestamp),
            });
        }
    }
    match unusable {
        Some(why) if secrets.iter().all(|s| parse_key(s).is_err()) => {
            Err(VerifyError::InvalidSecret(why))
        }
        _ => Err(VerifyError::SignatureMismatch),
    }
}

fn verify_ed25519(
    key: &VerifyingKey,
    signatures: &[Signature],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> bool {
    if signatures.is_empty() {
        return false;
    }
    let content = signed_content(id, timestamp, body);
    signatures
        .iter()
        .any(|signature| key.verify_strict(&content, signature).is_ok())
}

pub(crate) fn sign(
    variant: Variant,
    secret: &WebhookSecret,
    req: &Request<'_>,
    now: i64,
    id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let signature = match parse_key(secret).map_err(SignError::InvalidSecret)? {
        Key::Hmac(key) => format!("v1,{}", to_base64(&hmac_signature(&key, id, now, req.body))),
        Key::Secret(private) => {
            let signature = private.sign(&signed_content(id, now, req.body));
            format!("v1a,{}", to_base64(&signature.to_bytes()))
        }
        Key::Public(_) => {
            return Err(SignError::InvalidSecret(
                "a `whpk_` public key cannot sign; use the `whsk_` secret key",
            ));
        }
    };
    let names = match variant {
        Variant::Standard => &WEBHOOK,
        Variant::Svix => &SVIX,
    };
    Ok(vec![
        (names.id.to_owned(), id.to_owned()),
        (names.timestamp.to_owned(), now.to_string()),
        (names.signature.to_owned(), signature),
    ])
}

/// The `webhook-signature` value (`v1,<base64>`) a Standard Webhooks sender
/// puts on a delivery: HMAC-SHA256 over `"{msg_id}.{timestamp}.{body}"`.
///
/// The key is base64-decode(`secret` without its optional `whsec_` prefix).
/// This is the `v1` (HMAC) signer only; to sign `v1a` with a `whsk_` key, or to
/// get an error for an unusable secret, use [`crate::sign`]. A secret that is
/// not base64 (which real providers never issue) is used as raw UTF-8 bytes
/// rather than failing, so this function is infallible; [`crate::verify`]
/// rejects such a secret with [`VerifyError::InvalidSecret`].
///
/// ```
/// # use syncbridge_signatures::{sign_standard_webhooks, WebhookSecret};
/// let secret = WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// let signature = sign_standard_webhooks(
///     &secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// ```
pub fn sign_standard_webhooks(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let text = secret.expose().trim();
    let key = from_base64(text.strip_prefix("whsec_").unwrap_or(text))
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    format!(
        "v1,{}",
        to_base64(&hmac_signature(&key, msg_id, timestamp, body))
    )
}
