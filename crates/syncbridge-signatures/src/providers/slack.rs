//! Slack (`X-Slack-Signature`) and Zoom (`x-zm-signature`), which use the same
//! `v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>` construction with
//! different header names.

use crate::crypto::{Clock, any_match, from_hex, hmac_sha256, json_field, parse_timestamp};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Variant {
    Slack,
    Zoom,
}

impl Variant {
    fn signature_header(self) -> &'static str {
        match self {
            Variant::Slack => "X-Slack-Signature",
            Variant::Zoom => "x-zm-signature",
        }
    }

    fn timestamp_header(self) -> &'static str {
        match self {
            Variant::Slack => "X-Slack-Request-Timestamp",
            Variant::Zoom => "x-zm-request-timestamp",
        }
    }
}

fn mac(secret: &WebhookSecret, timestamp: &str, body: &[u8]) -> Vec<u8> {
    hmac_sha256(
        secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    )
}

pub(crate) fn verify(
    variant: Variant,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let header = variant.signature_header();
    let signature = req.require(header)?;
    let ts_header = variant.timestamp_header();
    let ts = req.require(ts_header)?.trim();
    let timestamp = parse_timestamp(ts_header, ts)?;
    let hex = signature
        .trim()
        .strip_prefix("v0=")
        .ok_or(VerifyError::NoSupportedSignature(header.to_owned()))?;
    let received = from_hex(hex).ok_or(VerifyError::MalformedHeader {
        header: header.to_owned(),
        reason: "signature is not hex",
    })?;
    clock.check(timestamp)?;
    any_match(secrets, &[received], |secret| Ok(mac(secret, ts, req.body)))?;
    let event_id = match variant {
        // Events API callbacks carry `event_id`; slash commands and
        // interactivity payloads (form-encoded) have none.
        Variant::Slack => json_field(req.body, "event_id"),
        // Zoom event notifications carry no delivery id.
        Variant::Zoom => None,
    };
    Ok(Verified {
        event_id,
        timestamp: Some(timestamp),
    })
}

pub(crate) fn sign(
    variant: Variant,
    secret: &WebhookSecret,
    req: &Request<'_>,
    now: i64,
) -> Vec<(String, String)> {
    let ts = now.to_string();
    let signature = format!("v0={}", hex::encode(mac(secret, &ts, req.body)));
    vec![
        (variant.timestamp_header().to_owned(), ts),
        (variant.signature_header().to_owned(), signature),
    ]
}
