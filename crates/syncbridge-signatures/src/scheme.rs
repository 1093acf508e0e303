//! Which signature scheme a webhook endpoint uses.
//!
//! [`Scheme`] parses from and prints as the names used in configuration and on
//! the CLI (see [`Scheme::NAMES`]). The generic [`Scheme::Hmac`] scheme needs
//! configuration, so it has no bare string form; in serde configuration it is
//! written as a map, `{ "hmac": { "header": "X-Signature", ... } }`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A provider's webhook signature scheme.
///
/// | name | signature header | signed content |
/// |---|---|---|
/// | `github` | `X-Hub-Signature-256: sha256=<hex>` | body |
/// | `github-sha1` | `X-Hub-Signature: sha1=<hex>` | body |
/// | `stripe` | `Stripe-Signature: t=..,v1=<hex>[,v1=..]` | `{t}.{body}` |
/// | `slack` | `X-Slack-Signature: v0=<hex>` | `v0:{ts}:{body}` |
/// | `standard-webhooks` | `webhook-signature: v1,<b64> [v1a,<b64>]…` | `{id}.{ts}.{body}` |
/// | `svix` | `svix-signature` (or `webhook-signature`) | `{id}.{ts}.{body}` |
/// | `shopify` | `X-Shopify-Hmac-Sha256: <b64>` | body |
/// | `hubspot-v1` | `X-HubSpot-Signature: <hex sha256>` (plain hash) | secret + body |
/// | `hubspot-v2` | `X-HubSpot-Signature: <hex sha256>` (plain hash) | secret + method + URL + body |
/// | `hubspot-v3` | `X-HubSpot-Signature-v3: <b64>` | method + URL + body + ts(ms) |
/// | `twilio` | `X-Twilio-Signature: <b64 sha1>` | URL + sorted form params |
/// | `square` | `x-square-hmacsha256-signature: <b64>` | URL + body |
/// | `zoom` | `x-zm-signature: v0=<hex>` | `v0:{ts}:{body}` |
/// | `intercom` | `X-Hub-Signature: sha1=<hex>` | body |
/// | `zendesk` | `X-Zendesk-Webhook-Signature: <b64>` | ts + body |
/// | `hmac` | configured, see [`GenericHmac`] | configured template |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SchemeRepr", into = "SchemeRepr")]
pub enum Scheme {
    /// GitHub, `X-Hub-Signature-256` (HMAC-SHA256, hex, `sha256=` prefix).
    Github,
    /// GitHub's legacy `X-Hub-Signature` (HMAC-SHA1, hex, `sha1=` prefix).
    GithubSha1,
    /// Stripe, `Stripe-Signature` with `t=` and one or more `v1=`.
    Stripe,
    /// Slack signing secret, version `v0`.
    Slack,
    /// Standard Webhooks: `v1` HMAC-SHA256, or `v1a` ed25519 when the secret
    /// is a `whpk_` public key (verify) or `whsk_` secret key (sign).
    StandardWebhooks,
    /// Svix: Standard Webhooks with `svix-*` header names (`webhook-*` accepted).
    Svix,
    /// Shopify, `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// HubSpot signature v1: SHA-256 of secret + body.
    HubspotV1,
    /// HubSpot signature v2: SHA-256 of secret + method + URL + body.
    HubspotV2,
    /// HubSpot signature v3: HMAC-SHA256 with a millisecond timestamp.
    HubspotV3,
    /// Twilio, `X-Twilio-Signature` (HMAC-SHA1 over URL + form params, or
    /// URL only plus `bodySHA256` for JSON bodies).
    Twilio,
    /// Square, `x-square-hmacsha256-signature` over notification URL + body.
    Square,
    /// Zoom, `x-zm-signature: v0=...` with `x-zm-request-timestamp`.
    Zoom,
    /// Intercom, `X-Hub-Signature: sha1=...`.
    Intercom,
    /// Zendesk, `X-Zendesk-Webhook-Signature` over timestamp + body.
    Zendesk,
    /// A configurable HMAC scheme for providers without a dedicated one.
    Hmac(GenericHmac),
}

impl Scheme {
    /// Every scheme name, as accepted by [`FromStr`] (plus `hmac`, which needs
    /// a [`GenericHmac`] configuration and so does not parse from a bare string).
    pub const NAMES: [&'static str; 16] = [
        "github",
        "github-sha1",
        "stripe",
        "slack",
        "standard-webhooks",
        "svix",
        "shopify",
        "hubspot-v1",
        "hubspot-v2",
        "hubspot-v3",
        "twilio",
        "square",
        "zoom",
        "intercom",
        "zendesk",
        "hmac",
    ];

    /// The configuration / CLI name of this scheme.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Github => "github",
            Scheme::GithubSha1 => "github-sha1",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Svix => "svix",
            Scheme::Shopify => "shopify",
            Scheme::HubspotV1 => "hubspot-v1",
            Scheme::HubspotV2 => "hubspot-v2",
            Scheme::HubspotV3 => "hubspot-v3",
            Scheme::Twilio => "twilio",
            Scheme::Square => "square",
            Scheme::Zoom => "zoom",
            Scheme::Intercom => "intercom",
            Scheme::Zendesk => "zendesk",
            Scheme::Hmac(_) => "hmac",
        }
    }

    /// Whether the scheme signs a timestamp (and so uses the tolerance).
    pub fn is_timestamped(&self) -> bool {
        match self {
            Scheme::Stripe
            | Scheme::Slack
            | Scheme::StandardWebhooks
            | Scheme::Svix
            | Scheme::HubspotV3
            | Scheme::Zoom
            | Scheme::Zendesk => true,
            Scheme::Hmac(config) => config.timestamp_header.is_some(),
            _ => false,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = ParseSchemeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "github" => Scheme::Github,
            "github-sha1" => Scheme::GithubSha1,
            "stripe" => Scheme::Stripe,
            "slack" => Scheme::Slack,
            "standard-webhooks" => Scheme::StandardWebhooks,
            "svix" => Scheme::Svix,
            "shopify" => Scheme::Shopify,
            "hubspot-v1" => Scheme::HubspotV1,
            "hubspot-v2" => Scheme::HubspotV2,
            "hubspot-v3" => Scheme::HubspotV3,
            "twilio" => Scheme::Twilio,
            "square" => Scheme::Square,
            "zoom" => Scheme::Zoom,
            "intercom" => Scheme::Intercom,
            "zendesk" => Scheme::Zendesk,
            "hmac" => return Err(ParseSchemeError::NeedsConfiguration),
            other => return Err(ParseSchemeError::Unknown(other.to_owned())),
        })
    }
}

/// Why a string is not a [`Scheme`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSchemeError {
    /// The name is not one of [`Scheme::NAMES`].
    #[error("unknown webhook signature scheme `{0}`; expected one of: {names}", names = Scheme::NAMES.join(", "))]
    Unknown(String),
    /// `hmac` was given without its [`GenericHmac`] configuration.
    #[error("the `hmac` scheme needs a configuration (header, algorithm, encoding, template)")]
    NeedsConfiguration,
    /// The [`GenericHmac`] configuration is invalid.
    #[error("invalid `hmac` scheme configuration: {0}")]
    InvalidConfiguration(String),
}

/// How [`Scheme`] is written in serde configuration: a bare name, or
/// `{ "hmac": { ... } }`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SchemeRepr {
    Name(String),
    Hmac { hmac: GenericHmac },
}

impl TryFrom<SchemeRepr> for Scheme {
    type Error = ParseSchemeError;

    fn try_from(repr: SchemeRepr) -> Result<Self, Self::Error> {
        match repr {
            SchemeRepr::Name(name) => name.parse(),
            SchemeRepr::Hmac { hmac } => {
                hmac.validate()
                    .map_err(ParseSchemeError::InvalidConfiguration)?;
                Ok(Scheme::Hmac(hmac))
            }
        }
    }
}

impl From<Scheme> for SchemeRepr {
    fn from(scheme: Scheme) -> Self {
        match scheme {
            Scheme::Hmac(hmac) => SchemeRepr::Hmac { hmac },
            named => SchemeRepr::Name(named.name().to_owned()),
        }
    }
}

/// Configuration of the generic [`Scheme::Hmac`] scheme.
///
/// The signature header holds `prefix` followed by the encoded
/// HMAC(secret as UTF-8, signed content). The signed content is `template`
/// with these placeholders substituted:
///
/// - `{body}`: the raw body bytes;
/// - `{timestamp}`: the value of `timestamp_header`, exactly as received;
/// - `{id}`: the value of `id_header`;
/// - `{method}`: the HTTP method;
/// - `{url}`: the full URL.
///
/// When `timestamp_header` is set its value must be Unix seconds and is
/// checked against the tolerance, whether or not the template signs it.
///
/// ```
/// # use syncbridge_signatures::{GenericHmac, Scheme};
/// let scheme: Scheme = serde_json::from_str(r#"{ "hmac": {
///     "header": "X-Signature",
///     "algorithm": "sha256",
///     "encoding": "hex",
///     "prefix": "sha256=",
///     "template": "{timestamp}.{body}",
///     "timestamp_header": "X-Timestamp"
/// } }"#).unwrap();
/// assert_eq!(scheme.to_string(), "hmac");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericHmac {
    /// Header carrying the signature.
    pub header: String,
    /// Hash function of the HMAC (default `sha256`).
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How the MAC is written in the header (default `hex`).
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the encoded MAC, such as `sha256=`. Required when set.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Signed content template (default `{body}`).
    #[serde(default = "default_template")]
    pub template: String,
    /// Header carrying the signed Unix timestamp, if any.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Header carrying the delivery id (returned as [`crate::Verified::event_id`]).
    #[serde(default)]
    pub id_header: Option<String>,
}

fn default_template() -> String {
    "{body}".to_owned()
}

impl GenericHmac {
    /// An HMAC-SHA256, hex, unprefixed signature of the body in `header`.
    pub fn new(header: impl Into<String>) -> Self {
        GenericHmac {
            header: header.into(),
            algorithm: HmacAlgorithm::default(),
            encoding: SignatureEncoding::default(),
            prefix: None,
            template: default_template(),
            timestamp_header: None,
            id_header: None,
        }
    }

    /// Checks that the template parses and that every placeholder it uses has
    /// its header configured.
    ///
    /// # Errors
    ///
    /// A human-readable description of the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        crate::providers::generic::parse_template(self).map(|_| ())
    }
}

/// Hash function of an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a MAC is written in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal (lowercase when signing; either case when verifying).
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}
