//! The primitives every scheme shares: HMAC over concatenated parts,
//! constant-time comparison, base64/hex decoding of received signatures, and
//! the timestamp tolerance check.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::error::VerifyError;
use crate::scheme::HmacAlgorithm;
use crate::secret::WebhookSecret;

/// Standard-alphabet base64 that accepts input with or without padding.
/// Signing always writes [`STANDARD`] (padded) output.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The injected clock and the accepted distance from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    now: i64,
    tolerance: u64,
}

impl Clock {
    /// A negative tolerance is treated as zero.
    pub(crate) fn new(now_unix: i64, tolerance_secs: i64) -> Self {
        Clock {
            now: now_unix,
            tolerance: tolerance_secs.max(0).unsigned_abs(),
        }
    }

    /// Rejects `timestamp` (Unix seconds) when it is stale or in the future by
    /// more than the tolerance.
    pub(crate) fn check(self, timestamp: i64) -> Result<(), VerifyError> {
        if self.now.abs_diff(timestamp) > self.tolerance {
            return Err(VerifyError::TimestampOutsideTolerance {
                timestamp,
                now: self.now,
                tolerance_secs: i64::try_from(self.tolerance).unwrap_or(i64::MAX),
            });
        }
        Ok(())
    }
}

/// Parses a decimal Unix timestamp header: ASCII digits only (no sign, no
/// spaces), at most 18 of them so it fits an `i64`.
pub(crate) fn parse_timestamp(header: &str, value: &str) -> Result<i64, VerifyError> {
    let malformed = |reason| VerifyError::MalformedHeader {
        header: header.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(malformed("empty timestamp"));
    }
    if value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("timestamp is not a decimal integer"));
    }
    value
        .parse()
        .map_err(|_| malformed("timestamp is not a decimal integer"))
}

/// HMAC of the concatenation of `parts`.
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! mac {
        ($digest:ty) => {{
            let mut mac = <Hmac<$digest> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match algorithm {
        HmacAlgorithm::Sha1 => mac!(Sha1),
        HmacAlgorithm::Sha256 => mac!(Sha256),
        HmacAlgorithm::Sha512 => mac!(Sha512),
    }
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac(HmacAlgorithm::Sha256, key, parts)
}

/// Plain SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// Constant-time equality (the length itself is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub(crate) fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, padded or not. `None` when it is not base64.
pub(crate) fn from_base64(text: &str) -> Option<Vec<u8>> {
    LENIENT_BASE64.decode(text.trim()).ok()
}

/// Decodes hex of either case. `None` when it is not hex.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

/// Tries every secret: `Ok(())` when `expected(secret)` equals any of the
/// received `candidates`.
pub(crate) fn any_match<F>(
    secrets: &[WebhookSecret],
    candidates: &[Vec<u8>],
    mut expected: F,
) -> Result<(), VerifyError>
where
    F: FnMut(&WebhookSecret) -> Result<Vec<u8>, VerifyError>,
{
    for secret in secrets {
        let mac = expected(secret)?;
        if candidates.iter().any(|candidate| ct_eq(candidate, &mac)) {
            return Ok(());
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// Looks up a top-level string (or number) field of a JSON object body.
pub(crate) fn json_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
