//! GitHub (`X-Hub-Signature-256`, legacy `X-Hub-Signature`) and Intercom,
//! which reuses GitHub's legacy `sha1=` header.
//!
//! The HMAC key is the secret as UTF-8 and only the body is signed. There is no
//! timestamp: replay protection is deduplication on `X-GitHub-Delivery`.

use crate::crypto::{any_match, from_hex, hmac, json_field};
use crate::error::VerifyError;
use crate::request::{Request, Verified};
use crate::scheme::HmacAlgorithm;
use crate::secret::WebhookSecret;

const DELIVERY: &str = "X-GitHub-Delivery";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Variant {
    GithubSha256,
    GithubSha1,
    Intercom,
}

impl Variant {
    fn header(self) -> &'static str {
        match self {
            Variant::GithubSha256 => "X-Hub-Signature-256",
            Variant::GithubSha1 | Variant::Intercom => "X-Hub-Signature",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Variant::GithubSha256 => "sha256=",
            Variant::GithubSha1 | Variant::Intercom => "sha1=",
        }
    }

    fn algorithm(self) -> HmacAlgorithm {
        match self {
            Variant::GithubSha256 => HmacAlgorithm::Sha256,
            Variant::GithubSha1 | Variant::Intercom => HmacAlgorithm::Sha1,
        }
    }
}

pub(crate) fn verify(
    variant: Variant,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
) -> Result<Verified, VerifyError> {
    let header = variant.header();
    let malformed = |reason| VerifyError::MalformedHeader {
        header: header.to_owned(),
        reason,
    };
    let value = req.require(header)?;
    let hex = value.trim().strip_prefix(variant.prefix()).ok_or_else(|| {
        malformed(match variant {
            Variant::GithubSha256 => "expected `sha256=<hex>`",
            _ => "expected `sha1=<hex>`",
        })
    })?;
    let received = from_hex(hex).ok_or_else(|| malformed("signature is not hex"))?;
    any_match(secrets, &[received], |secret| {
        Ok(hmac(variant.algorithm(), secret.as_bytes(), &[req.body]))
    })?;
    let event_id = match variant {
        Variant::GithubSha256 | Variant::GithubSha1 => req.header(DELIVERY).map(str::to_owned),
        Variant::Intercom => json_field(req.body, "id"),
    };
    Ok(Verified {
        event_id,
        timestamp: None,
    })
}

pub(crate) fn sign(
    variant: Variant,
    secret: &WebhookSecret,
    req: &Request<'_>,
    id: &str,
) -> Vec<(String, String)> {
    let mac = hmac(variant.algorithm(), secret.as_bytes(), &[req.body]);
    let mut headers = vec![(
        variant.header().to_owned(),
        format!("{}{}", variant.prefix(), hex::encode(mac)),
    )];
    if !matches!(variant, Variant::Intercom) {
        headers.push((DELIVERY.to_owned(), id.to_owned()));
    }
    headers
}
