//! Square: `x-square-hmacsha256-signature: <base64 HMAC-SHA256(signature key,
//! notification URL + body)>`. The URL must be exactly the subscription's URL.
//! No timestamp is signed; dedupe on the body's `event_id`.

use crate::crypto::{any_match, from_base64, hmac_sha256, json_field, to_base64};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

const HEADER: &str = "x-square-hmacsha256-signature";

fn mac(secret: &WebhookSecret, req: &Request<'_>) -> Vec<u8> {
    hmac_sha256(secret.as_bytes(), &[req.url.as_bytes(), req.body])
}

pub(crate) fn verify(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
) -> Result<Verified, VerifyError> {
    let received = from_base64(req.require(HEADER)?).ok_or(VerifyError::MalformedHeader {
        header: HEADER.to_owned(),
        reason: "signature is not base64",
    })?;
    any_match(secrets, &[received], |secret| Ok(mac(secret, req)))?;
    Ok(Verified {
        event_id: json_field(req.body, "event_id"),
        timestamp: None,
    })
}

pub(crate) fn sign(secret: &WebhookSecret, req: &Request<'_>) -> Vec<(String, String)> {
    vec![(HEADER.to_owned(), to_base64(&mac(secret, req)))]
}
