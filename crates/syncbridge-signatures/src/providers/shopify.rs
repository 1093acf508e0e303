//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(client secret, body)>`.
//! No timestamp is signed; dedupe on `X-Shopify-Webhook-Id`.

use crate::crypto::{any_match, from_base64, hmac_sha256, to_base64};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::secret::WebhookSecret;

const HEADER: &str = "X-Shopify-Hmac-Sha256";
const WEBHOOK_ID: &str = "X-Shopify-Webhook-Id";
const EVENT_ID: &str = "X-Shopify-Event-Id";

pub(crate) fn verify(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
) -> Result<Verified, VerifyError> {
    let received = from_base64(req.require(HEADER)?).ok_or(VerifyError::MalformedHeader {
        header: HEADER.to_owned(),
        reason: "signature is not base64",
    })?;
    any_match(secrets, &[received], |secret| {
        Ok(hmac_sha256(secret.as_bytes(), &[req.body]))
    })?;
    Ok(Verified {
        event_id: req
            .header(WEBHOOK_ID)
            .or_else(|| req.header(EVENT_ID))
            .map(str::to_owned),
        timestamp: None,
    })
}

pub(crate) fn sign(secret: &WebhookSecret, req: &Request<'_>, id: &str) -> Vec<(String, String)> {
    vec![
        (
            HEADER.to_owned(),
            to_base64(&hmac_sha256(secret.as_bytes(), &[req.body])),
        ),
        (WEBHOOK_ID.to_owned(), id.to_owned()),
    ]
}
