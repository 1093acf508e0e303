//! Webhook signature verification and signing for the providers syncbridge
//! receives events from.
//!
//! Everything here is a pure function: no I/O, no global clock. The caller
//! passes the raw request (method, full URL, headers, body bytes), the active
//! secrets and the current time, and gets back either [`Verified`] (with the
//! provider's delivery id for deduplication) or a [`VerifyError`] that is safe
//! to log: error messages never contain a secret or an expected signature.
//!
//! ```
//! use syncbridge_signatures::{sign, verify, Request, Scheme, WebhookSecret};
//!
//! let secret = WebhookSecret::new("It's a Secret to Everybody");
//! let body = b"Hello, World!";
//! let url = "https://example.com/hooks/github";
//!
//! // The sending side (a test, or the sandbox provider) signs the delivery...
//! let unsigned = Request { method: "POST", url, headers: &[], body };
//! let headers = sign(&Scheme::Github, &secret, &unsigned, 1_700_000_000, "delivery-1").unwrap();
//!
//! // ...and the receiver verifies it against its active secrets.
//! let req = Request { method: "POST", url, headers: &headers, body };
//! let verified = verify(&Scheme::Github, &[secret], &req, 1_700_000_000, 300).unwrap();
//! assert_eq!(verified.event_id.as_deref(), Some("delivery-1"));
//! ```
//!
//! # Layout
//!
//! - [`scheme`]: [`Scheme`], the provider name used in configuration and on the
//!   CLI (`github`, `stripe`, `standard-webhooks`, …), and [`GenericHmac`], the
//!   configurable HMAC scheme for providers without a dedicated one.
//! - [`secret`]: [`WebhookSecret`], a newtype whose `Debug` never prints the value.
//! - [`request`]: [`Request`], the borrowed view of an incoming (or outgoing)
//!   delivery, and [`Verified`], what a successful verification returns.
//! - [`error`]: [`VerifyError`] and [`SignError`].
//! - [`handshake`](mod@handshake): endpoint-validation challenges (Slack `url_verification`,
//!   Zoom `endpoint.url_validation`).
//! - `providers`: one private module per provider family holding the exact
//!   algorithm; `crypto`: HMAC, constant-time comparison and the tolerance check.
//!
//! The three entry points are [`verify`], [`sign`] and [`handshake()`]
//! ([`check_secret`] vets a secret when a connection is configured);
//! [`sign_standard_webhooks`] is a shortcut for the Standard Webhooks signer.
//! [`html`] holds the small HTML page (and its escaping) that the connect
//! flow and the sandbox's consent page answer browsers with.
//!
//! # Rules every scheme follows
//!
//! - The raw body bytes are hashed, never re-serialized JSON.
//! - Signatures are compared in constant time.
//! - Header names are case-insensitive.
//! - Timestamped schemes reject deliveries whose timestamp is more than
//!   `tolerance_secs` away from `now_unix`, in either direction (stale or future).
//! - Every secret in the list is tried, so a rotated secret and its successor can
//!   both be active; the header may also carry several signatures (Stripe's
//!   repeated `v1=`, Standard Webhooks' space-separated list).

mod crypto;
pub mod error;
pub mod handshake;
pub mod html;
mod providers;
pub mod request;
pub mod scheme;
pub mod secret;

pub use error::{SignError, VerifyError};
pub use handshake::{HandshakeResponse, handshake};
pub use providers::standard_webhooks::sign_standard_webhooks;
pub use request::{Request, Verified};
pub use scheme::{GenericHmac, HmacAlgorithm, ParseSchemeError, Scheme, SignatureEncoding};
pub use secret::WebhookSecret;

use crypto::Clock;
use providers::{
    generic, github, hubspot, shopify, slack, square, standard_webhooks, stripe, twilio, zendesk,
};

/// Verifies a delivery against any of the active `secrets`.
///
/// `now_unix` is the current time in Unix seconds and `tolerance_secs` the
/// largest accepted distance between it and the delivery's signed timestamp
/// (inclusive, in both directions; 300 is what the providers' SDKs use);
/// both are ignored by schemes that sign no timestamp (GitHub, Shopify, Square,
/// Twilio, HubSpot v1/v2, Intercom). Several secrets may be active at once
/// while one is being rotated; the first that matches wins.
///
/// # Errors
///
/// [`VerifyError`] says why the delivery was rejected: a missing or malformed
/// header, a timestamp outside the tolerance, no matching signature, and so on.
/// Its message never contains a secret or an expected signature.
pub fn verify(
    scheme: &Scheme,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<Verified, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let clock = Clock::new(now_unix, tolerance_secs);
    match scheme {
        Scheme::Github => github::verify(github::Variant::GithubSha256, secrets, req),
        Scheme::GithubSha1 => github::verify(github::Variant::GithubSha1, secrets, req),
        Scheme::Intercom => github::verify(github::Variant::Intercom, secrets, req),
        Scheme::Stripe => stripe::verify(secrets, req, clock),
        Scheme::Slack => slack::verify(slack::Variant::Slack, secrets, req, clock),
        Scheme::Zoom => slack::verify(slack::Variant::Zoom, secrets, req, clock),
        Scheme::StandardWebhooks => {
            standard_webhooks::verify(standard_webhooks::Variant::Standard, secrets, req, clock)
        }
        Scheme::Svix => {
            standard_webhooks::verify(standard_webhooks::Variant::Svix, secrets, req, clock)
        }
        Scheme::Shopify => shopify::verify(secrets, req),
        Scheme::HubspotV1 => hubspot::verify_v1_v2(hubspot::Version::V1, secrets, req),
        Scheme::HubspotV2 => hubspot::verify_v1_v2(hubspot::Version::V2, secrets, req),
        Scheme::HubspotV3 => hubspot::verify_v3(secrets, req, clock),
        Scheme::Twilio => twilio::verify(secrets, req),
        Scheme::Square => square::verify(secrets, req),
        Scheme::Zendesk => zendesk::verify(secrets, req, clock),
        Scheme::Hmac(config) => generic::verify(config, secrets, req, clock),
    }
}

/// Whether `secret` can verify deliveries of `scheme`, checked when a
/// connection is configured so that a secret no delivery could ever match is
/// refused at the door instead of failing every delivery later.
///
/// Every scheme refuses an empty (or all-whitespace) secret; Standard
/// Webhooks and Svix also refuse what is not a key of theirs: `whsec_` (or
/// bare) base64 that decodes to at least one byte, a `whpk_` ed25519 public
/// key (verifies `v1a` signatures) or a `whsk_` secret key. The other schemes
/// use the secret's bytes as they are.
///
/// # Errors
///
/// [`VerifyError::InvalidSecret`] saying what is wrong, never the secret.
pub fn check_secret(scheme: &Scheme, secret: &WebhookSecret) -> Result<(), VerifyError> {
    if secret.expose().trim().is_empty() {
        return Err(VerifyError::InvalidSecret("secret is empty"));
    }
    match scheme {
        Scheme::StandardWebhooks | Scheme::Svix => {
            standard_webhooks::check_key(secret).map_err(VerifyError::InvalidSecret)
        }
        _ => Ok(()),
    }
}

/// Produces the headers a provider would add to `req` so that [`verify`]
/// accepts it: the signature, the signed timestamp (`now_unix`) where the scheme
/// has one, and the delivery id (`id`) where the scheme carries one in a header.
///
/// `req.headers` is read only by schemes that sign other header values (the
/// generic [`GenericHmac`] scheme never signs headers it has to add itself).
/// Used by tests and by the sandbox provider.
///
/// # Errors
///
/// [`SignError`] when the secret cannot sign (a Standard Webhooks `whpk_`
/// public key, a `whsec_` secret that is not base64) or the request cannot be
/// signed as given (a Twilio `bodySHA256` that does not match the body, a
/// generic template that does not parse).
pub fn sign(
    scheme: &Scheme,
    secret: &WebhookSecret,
    req: &Request<'_>,
    now_unix: i64,
    id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    match scheme {
        Scheme::Github => Ok(github::sign(github::Variant::GithubSha256, secret, req, id)),
        Scheme::GithubSha1 => Ok(github::sign(github::Variant::GithubSha1, secret, req, id)),
        Scheme::Intercom => Ok(github::sign(github::Variant::Intercom, secret, req, id)),
        Scheme::Stripe => Ok(stripe::sign(secret, req, now_unix)),
        Scheme::Slack => Ok(slack::sign(slack::Variant::Slack, secret, req, now_unix)),
        Scheme::Zoom => Ok(slack::sign(slack::Variant::Zoom, secret, req, now_unix)),
        Scheme::StandardWebhooks => standard_webhooks::sign(
            standard_webhooks::Variant::Standard,
            secret,
            req,
            now_unix,
            id,
        ),
        Scheme::Svix => {
            standard_webhooks::sign(standard_webhooks::Variant::Svix, secret, req, now_unix, id)
        }
        Scheme::Shopify => Ok(shopify::sign(secret, req, id)),
        Scheme::HubspotV1 => Ok(hubspot::sign_v1_v2(hubspot::Version::V1, secret, req)),
        Scheme::HubspotV2 => Ok(hubspot::sign_v1_v2(hubspot::Version::V2, secret, req)),
        Scheme::HubspotV3 => Ok(hubspot::sign_v3(secret, req, now_unix)),
        Scheme::Twilio => twilio::sign(secret, req, id),
        Scheme::Square => Ok(square::sign(secret, req)),
        Scheme::Zendesk => zendesk::sign(secret, req, now_unix, id),
        Scheme::Hmac(config) => generic::sign(config, secret, req, now_unix, id),
    }
}
