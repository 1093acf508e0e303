//! Endpoint-validation challenges some providers send before (or instead of)
//! real events, and the response each expects.
//!
//! - Slack `url_verification`: echo `challenge` as `text/plain`.
//! - Zoom `endpoint.url_validation`: answer
//!   `{"plainToken": ..., "encryptedToken": hex HMAC-SHA256(secret token, plainToken)}`.
//!
//! Both providers sign these requests like any other delivery, so call
//! [`crate::verify`] first and [`handshake`] only on a verified request.

use serde_json::Value;

use crate::crypto::hmac_sha256;
use crate::scheme::Scheme;
use crate::secret::WebhookSecret;

/// The response to send instead of processing the body as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The `Content-Type` of the response.
    pub content_type: &'static str,
    /// The response body (status 200).
    pub body: String,
}

/// The challenge response when `body` is the scheme's endpoint-validation
/// request, `None` for every other body and for schemes without a handshake.
///
/// `secret` is used only by Zoom (its secret token); pass the primary one.
pub fn handshake(
    scheme: &Scheme,
    secret: &WebhookSecret,
    body: &[u8],
) -> Option<HandshakeResponse> {
    let json: Value = match scheme {
        Scheme::Slack | Scheme::Zoom => serde_json::from_slice(body).ok()?,
        _ => return None,
    };
    match scheme {
        Scheme::Slack if json.get("type")?.as_str()? == "url_verification" => {
            Some(HandshakeResponse {
                content_type: "text/plain",
                body: json.get("challenge")?.as_str()?.to_owned(),
            })
        }
        Scheme::Zoom if json.get("event")?.as_str()? == "endpoint.url_validation" => {
            let plain_token = json.get("payload")?.get("plainToken")?.as_str()?;
            let encrypted = hex::encode(hmac_sha256(secret.as_bytes(), &[plain_token.as_bytes()]));
            let body = serde_json::json!({
                "plainToken": plain_token,
                "encryptedToken": encrypted,
            });
            Some(HandshakeResponse {
                content_type: "application/json",
                body: body.to_string(),
            })
        }
        _ => None,
    }
}
