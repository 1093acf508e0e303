//! Zendesk: `X-Zendesk-Webhook-Signature` = base64 HMAC-SHA256(signing
//! secret, `X-Zendesk-Webhook-Signature-Timestamp` + body), no separator.
//!
//! Zendesk's timestamp is an RFC 3339 string such as `2022-07-14T21:48:13Z`;
//! a decimal Unix timestamp is accepted too. The header value is signed
//! exactly as received. Bodies may be empty (GET/DELETE).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::{Clock, any_match, from_base64, hmac_sha256, parse_timestamp, to_base64};
use crate::error::{SignError, VerifyError};
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

const SIGNATURE: &str = "X-Zendesk-Webhook-Signature";
const TIMESTAMP: &str = "X-Zendesk-Webhook-Signature-Timestamp";
const INVOCATION_ID: &str = "X-Zendesk-Webhook-Invocation-Id";

fn parse_zendesk_timestamp(value: &str) -> Result<i64, VerifyError> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return parse_timestamp(TIMESTAMP, value);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| VerifyError::MalformedHeader {
            header: TIMESTAMP.to_owned(),
            reason: "timestamp is neither RFC 3339 nor Unix seconds",
        })
}

fn mac(secret: &WebhookSecret, ts: &str, body: &[u8]) -> Vec<u8> {
    hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), body])
}

pub(crate) fn verify(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let value = req.require(SIGNATURE)?;
    let ts = req.require(TIMESTAMP)?;
    let timestamp = parse_zendesk_timestamp(ts.trim())?;
    let received = from_base64(value).ok_or(VerifyError::MalformedHeader {
        header: SIGNATURE.to_owned(),
        reason: "signature is not base64",
    })?;
    clock.check(timestamp)?;
    any_match(secrets, &[received], |secret| Ok(mac(secret, ts, req.body)))?;
    Ok(Verified {
        event_id: req.header(INVOCATION_ID).map(str::to_owned),
        timestamp: Some(timestamp),
    })
}

pub(crate) fn sign(
    secret: &WebhookSecret,
    req: &Request<'_>,
    now: i64,
    id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let ts = OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .ok_or(SignError::InvalidRequest("timestamp out of range"))?;
    Ok(vec![
        (SIGNATURE.to_owned(), to_base64(&mac(secret, &ts, req.body))),
        (TIMESTAMP.to_owned(), ts),
        (INVOCATION_ID.to_owned(), id.to_owned()),
    ])
}
