//! The borrowed view of a delivery that [`crate::verify`] and [`crate::sign`]
//! work on, and what a successful verification returns.

use crate::error::VerifyError;

/// An HTTP request as the provider sent it (or is about to send it).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method, such as `POST` (signed by HubSpot v2/v3).
    pub method: &'a str,
    /// The full URL the provider called, with scheme, host, port and query
    /// exactly as the provider knows it (signed by Twilio, Square, HubSpot
    /// v2/v3). Behind a proxy, rebuild it from the public host name.
    pub url: &'a str,
    /// Request headers; names are matched case-insensitively.
    pub headers: &'a [(String, String)],
    /// The raw body bytes. Never re-serialize JSON before verifying.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Like [`Request::header`], but a missing header is an error.
    pub(crate) fn require(&self, name: &str) -> Result<&'a str, VerifyError> {
        self.header(name)
            .ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
    }
}

/// What a successful verification learned about the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The provider's delivery or event id, for deduplication, where the scheme
    /// has one: `X-GitHub-Delivery`, `webhook-id`/`svix-id`, Stripe's body `id`,
    /// Slack's body `event_id`, Square's body `event_id`, Intercom's body `id`,
    /// `X-Shopify-Webhook-Id`, `I-Twilio-Idempotency-Token`,
    /// `X-Zendesk-Webhook-Invocation-Id`, or the generic scheme's `id_header`.
    pub event_id: Option<String>,
    /// The signed timestamp in Unix seconds, for timestamped schemes
    /// (HubSpot v3's milliseconds are truncated to seconds).
    pub timestamp: Option<i64>,
}
