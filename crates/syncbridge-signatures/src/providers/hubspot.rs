//! HubSpot signatures v1, v2 and v3.
//!
//! - v1: `X-HubSpot-Signature` = hex SHA-256(client secret + body), a plain
//!   hash, not an HMAC; `X-HubSpot-Signature-Version: v1`.
//! - v2: hex SHA-256(client secret + method + URL + body); version `v2`.
//! - v3: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(client secret,
//!   method + URL + body + timestamp), with `X-HubSpot-Request-Timestamp` in
//!   **milliseconds**.
//!
//! HubSpot tells v3 verifiers to URL-decode a few percent-encoded characters
//! of the URL before signing (`%3A` `%2F` `%3F` `%40` `%21` `%24` `%27` `%28`
//! `%29` `%2A` `%2C` `%3B`). Because that list was not re-checked against
//! HubSpot's page, v3 accepts a signature over either the URL as received or
//! the URL with those characters decoded; the signer uses the URL as given.

use crate::crypto::{
    Clock, any_match, ct_eq, from_base64, from_hex, hmac_sha256, parse_timestamp, sha256, to_base64,
};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

const SIGNATURE: &str = "X-HubSpot-Signature";
const VERSION: &str = "X-HubSpot-Signature-Version";
const SIGNATURE_V3: &str = "X-HubSpot-Signature-v3";
const TIMESTAMP_V3: &str = "X-HubSpot-Request-Timestamp";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Version {
    V1,
    V2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

fn hash_v1_v2(version: Version, secret: &WebhookSecret, req: &Request<'_>) -> Vec<u8> {
    match version {
        Version::V1 => sha256(&[secret.as_bytes(), req.body]),
        Version::V2 => sha256(&[
            secret.as_bytes(),
            req.method.as_bytes(),
            req.url.as_bytes(),
            req.body,
        ]),
    }
}

pub(crate) fn verify_v1_v2(
    version: Version,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
) -> Result<Verified, VerifyError> {
    let value = req.require(SIGNATURE)?;
    if let Some(sent) = req.header(VERSION)
        && !sent.trim().eq_ignore_ascii_case(version.name())
    {
        return Err(VerifyError::MalformedHeader {
            header: VERSION.to_owned(),
            reason: "signature version differs from the configured scheme",
        });
    }
    let received = from_hex(value).ok_or(VerifyError::MalformedHeader {
        header: SIGNATURE.to_owned(),
        reason: "signature is not hex",
    })?;
    any_match(secrets, &[received], |secret| {
        Ok(hash_v1_v2(version, secret, req))
    })?;
    Ok(Verified::default())
}

pub(crate) fn sign_v1_v2(
    version: Version,
    secret: &WebhookSecret,
    req: &Request<'_>,
) -> Vec<(String, String)> {
    vec![
        (
            SIGNATURE.to_owned(),
            hex::encode(hash_v1_v2(version, secret, req)),
        ),
        (VERSION.to_owned(), version.name().to_owned()),
    ]
}

fn mac_v3(secret: &WebhookSecret, method: &str, url: &str, body: &[u8], ts: &str) -> Vec<u8> {
    hmac_sha256(
        secret.as_bytes(),
        &[method.as_bytes(), url.as_bytes(), body, ts.as_bytes()],
    )
}

/// Decodes the percent-encoded characters HubSpot's v3 instructions list.
fn decode_uri(url: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let code = rest.get(pos + 1..pos + 3);
        match code.and_then(|code| {
            DECODED
                .iter()
                .find(|(hex, _)| hex.eq_ignore_ascii_case(code))
        }) {
            Some((_, ch)) => {
                out.push(*ch);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn verify_v3(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let value = req.require(SIGNATURE_V3)?;
    let ts = req.require(TIMESTAMP_V3)?.trim();
    let millis = parse_timestamp(TIMESTAMP_V3, ts)?;
    let received = from_base64(value).ok_or(VerifyError::MalformedHeader {
        header: SIGNATURE_V3.to_owned(),
        reason: "signature is not base64",
    })?;
    let timestamp = millis.div_euclid(1000);
    clock.check(timestamp)?;

    let decoded = decode_uri(req.url);
    for secret in secrets {
        let as_sent = mac_v3(secret, req.method, req.url, req.body, ts);
        let mut matched = ct_eq(&received, &as_sent);
        if decoded != req.url {
            matched |= ct_eq(
                &received,
                &mac_v3(secret, req.method, &decoded, req.body, ts),
            );
        }
        if matched {
            return Ok(Verified {
                event_id: None,
                timestamp: Some(timestamp),
            });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

pub(crate) fn sign_v3(
    secret: &WebhookSecret,
    req: &Request<'_>,
    now: i64,
) -> Vec<(String, String)> {
    let ts = now.saturating_mul(1000).to_string();
    vec![
        (
            SIGNATURE_V3.to_owned(),
            to_base64(&mac_v3(secret, req.method, req.url, req.body, &ts)),
        ),
        (TIMESTAMP_V3.to_owned(), ts),
    ]
}

#[cfg(test)]
mod tests {
    use super::decode_uri;

    #[test]
    fn decodes_only_the_listed_characters() {
        assert_eq!(
            decode_uri("https://x.test/a%3Ab%2fc?q=%20%2C%zz%"),
            "https://x.test/a:b/c?q=%20,%zz%"
        );
    }
}
