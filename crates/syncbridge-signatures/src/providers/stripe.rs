//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`.
//!
//! `v1` is hex HMAC-SHA256 of `"{t}.{body}"`, keyed with the whole endpoint
//! secret as UTF-8 (`whsec_` included, no base64 decoding, unlike Svix). Only
//! `v1` entries count; several appear while the endpoint secret is rolled.

use crate::crypto::{Clock, any_match, from_hex, hmac_sha256, json_field, parse_timestamp};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

const HEADER: &str = "Stripe-Signature";

pub(crate) fn verify(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let value = req.require(HEADER)?;
    let mut t = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if t.is_none() => t = Some(val),
            "v1" => v1.push(val),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::MalformedHeader {
        header: HEADER.to_owned(),
        reason: "missing `t=` timestamp",
    })?;
    let timestamp = parse_timestamp(HEADER, t)?;
    if v1.is_empty() {
        return Err(VerifyError::NoSupportedSignature(HEADER.to_owned()));
    }
    clock.check(timestamp)?;

    let candidates: Vec<Vec<u8>> = v1.into_iter().filter_map(from_hex).collect();
    let signed_t = timestamp.to_string();
    any_match(secrets, &candidates, |secret| {
        Ok(hmac_sha256(
            secret.as_bytes(),
            &[signed_t.as_bytes(), b".", req.body],
        ))
    })?;
    Ok(Verified {
        event_id: json_field(req.body, "id"),
        timestamp: Some(timestamp),
    })
}

pub(crate) fn sign(secret: &WebhookSecret, req: &Request<'_>, now: i64) -> Vec<(String, String)> {
    let t = now.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", req.body]);
    vec![(HEADER.to_owned(), format!("t={t},v1={}", hex::encode(mac)))]
}
