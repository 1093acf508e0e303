//! One [`Case`] per signable scheme (and per interesting variant), shared by
//! the round-trip, bad-input, no-leak and tamper tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use syncbridge_signatures::{
    GenericHmac, HmacAlgorithm, Request, Scheme, SignatureEncoding, WebhookSecret, sign,
};

/// The injected clock of every test.
pub const NOW: i64 = 1_700_000_000;
/// The tolerance of every test.
pub const TOLERANCE: i64 = 300;
/// The delivery id given to `sign`, also used as the body's event id.
pub const ID: &str = "evt_test_1";
/// A JSON body whose `id` and `event_id` are [`ID`].
pub const JSON_BODY: &[u8] = br#"{"id":"evt_test_1","event_id":"evt_test_1","type":"test"}"#;
/// A Twilio-style form body.
pub const FORM_BODY: &[u8] = b"CallSid=CA123&From=%2B15551234567&Body=hello+world&Digits=1";

/// A scheme with everything a test needs to sign, verify and break a delivery.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub scheme: Scheme,
    /// The secret the sender signs with.
    pub signing_secret: WebhookSecret,
    /// The secret the receiver verifies with (differs only for ed25519).
    pub verify_secret: WebhookSecret,
    /// A secret of the same shape that does not match.
    pub wrong_secret: WebhookSecret,
    pub url: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The header carrying the signature.
    pub signature_header: &'static str,
    /// The header carrying the signed timestamp, for timestamped schemes.
    pub timestamp_header: Option<&'static str>,
    /// Whether `verify` reports [`ID`] as the event id.
    pub has_event_id: bool,
}

impl Case {
    /// The `Content-Type` header plus what `sign` adds at `now`.
    pub fn signed_headers_at(&self, body: &[u8], now: i64) -> Vec<(String, String)> {
        let mut headers = vec![("Content-Type".to_owned(), self.content_type.to_owned())];
        let unsigned = Request {
            method: "POST",
            url: &self.url,
            headers: &headers,
            body,
        };
        let added = sign(&self.scheme, &self.signing_secret, &unsigned, now, ID)
            .unwrap_or_else(|e| panic!("{}: sign failed: {e}", self.name));
        headers.extend(added);
        headers
    }

    pub fn signed_headers(&self) -> Vec<(String, String)> {
        self.signed_headers_at(&self.body, NOW)
    }

    pub fn request<'a>(&'a self, headers: &'a [(String, String)], body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            url: &self.url,
            headers,
            body,
        }
    }

    pub fn is_timestamped(&self) -> bool {
        self.timestamp_header.is_some()
    }
}

/// Replaces (or, with `None`, removes) every header named `name`.
pub fn with_header(
    headers: &[(String, String)],
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<_> = headers
        .iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if let Some(value) = value {
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn plain(secret: &str) -> WebhookSecret {
    WebhookSecret::new(secret)
}

fn whsec(fill: u8) -> WebhookSecret {
    WebhookSecret::new(format!("whsec_{}", STANDARD.encode([fill; 24])))
}

pub fn whsk(seed: u8) -> WebhookSecret {
    WebhookSecret::new(format!("whsk_{}", STANDARD.encode([seed; 32])))
}

pub fn whpk(seed: u8) -> WebhookSecret {
    let public = SigningKey::from_bytes(&[seed; 32]).verifying_key();
    WebhookSecret::new(format!("whpk_{}", STANDARD.encode(public.to_bytes())))
}

/// A case with a plain-text secret, a JSON body and the default URL.
fn simple(
    scheme: Scheme,
    signature_header: &'static str,
    timestamp_header: Option<&'static str>,
    has_event_id: bool,
) -> Case {
    Case {
        name: scheme.to_string(),
        scheme,
        signing_secret: plain("s3cr3t-primary-key"),
        verify_secret: plain("s3cr3t-primary-key"),
        wrong_secret: plain("s3cr3t-rotated-key"),
        url: "https://hooks.example.com/webhooks/in?tenant=t1".to_owned(),
        content_type: "application/json",
        body: JSON_BODY.to_vec(),
        signature_header,
        timestamp_header,
        has_event_id,
    }
}

/// Every scheme that can be signed with a shared secret, plus the variants
/// worth exercising separately (ed25519, Twilio JSON, generic configurations).
pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        simple(Scheme::Github, "X-Hub-Signature-256", None, true),
        simple(Scheme::GithubSha1, "X-Hub-Signature", None, true),
        simple(
            Scheme::Stripe,
            "Stripe-Signature",
            Some("Stripe-Signature"),
            true,
        ),
        simple(
            Scheme::Slack,
            "X-Slack-Signature",
            Some("X-Slack-Request-Timestamp"),
            true,
        ),
        simple(Scheme::Shopify, "X-Shopify-Hmac-Sha256", None, true),
        simple(Scheme::HubspotV1, "X-HubSpot-Signature", None, false),
        simple(Scheme::HubspotV2, "X-HubSpot-Signature", None, false),
        simple(
            Scheme::HubspotV3,
            "X-HubSpot-Signature-v3",
            Some("X-HubSpot-Request-Timestamp"),
            false,
        ),
        simple(Scheme::Square, "x-square-hmacsha256-signature", None, true),
        simple(
            Scheme::Zoom,
            "x-zm-signature",
            Some("x-zm-request-timestamp"),
            false,
        ),
        simple(Scheme::Intercom, "X-Hub-Signature", None, true),
        simple(
            Scheme::Zendesk,
            "X-Zendesk-Webhook-Signature",
            Some("X-Zendesk-Webhook-Signature-Timestamp"),
            true,
        ),
    ];

    for (scheme, prefix) in [
        (Scheme::StandardWebhooks, "webhook"),
        (Scheme::Svix, "svix"),
    ] {
        let (signature, timestamp) = match prefix {
            "webhook" => ("webhook-signature", "webhook-timestamp"),
            _ => ("svix-signature", "svix-timestamp"),
        };
        let mut case = simple(scheme.clone(), signature, Some(timestamp), true);
        case.signing_secret = whsec(1);
        case.verify_secret = whsec(1);
        case.wrong_secret = whsec(2);
        cases.push(case);

        let mut ed = simple(scheme, signature, Some(timestamp), true);
        ed.name = format!("{} (v1a ed25519)", ed.name);
        ed.signing_secret = whsk(1);
        ed.verify_secret = whpk(1);
        ed.wrong_secret = whpk(2);
        cases.push(ed);
    }

    let mut twilio_form = simple(Scheme::Twilio, "X-Twilio-Signature", None, true);
    twilio_form.name = "twilio (form)".to_owned();
    twilio_form.content_type = "application/x-www-form-urlencoded";
    twilio_form.body = FORM_BODY.to_vec();
    cases.push(twilio_form);

    let mut twilio_json = simple(Scheme::Twilio, "X-Twilio-Signature", None, true);
    twilio_json.name = "twilio (json, bodySHA256)".to_owned();
    twilio_json.url = twilio_json_url(JSON_BODY);
    cases.push(twilio_json);

    let mut stamped = GenericHmac::new("X-Signature");
    stamped.prefix = Some("sha256=".to_owned());
    stamped.template = "{timestamp}.{body}".to_owned();
    stamped.timestamp_header = Some("X-Timestamp".to_owned());
    stamped.id_header = Some("X-Event-Id".to_owned());
    let mut case = simple(
        Scheme::Hmac(stamped),
        "X-Signature",
        Some("X-Timestamp"),
        true,
    );
    case.name = "hmac (sha256 hex, timestamp, id)".to_owned();
    cases.push(case);

    let mut everything = GenericHmac::new("X-Webhook-Mac");
    everything.algorithm = HmacAlgorithm::Sha512;
    everything.encoding = SignatureEncoding::Base64;
    everything.template = "{method} {url}\n{id}\n{body}".to_owned();
    everything.id_header = Some("X-Delivery".to_owned());
    let mut case = simple(Scheme::Hmac(everything), "X-Webhook-Mac", None, true);
    case.name = "hmac (sha512 base64, method/url/id)".to_owned();
    cases.push(case);

    let mut sha1 = GenericHmac::new("X-Body-Sig");
    sha1.algorithm = HmacAlgorithm::Sha1;
    let mut case = simple(Scheme::Hmac(sha1), "X-Body-Sig", None, false);
    case.name = "hmac (sha1 hex, body only)".to_owned();
    cases.push(case);

    cases
}

/// The Twilio URL for a JSON body: `bodySHA256` in the query.
pub fn twilio_json_url(body: &[u8]) -> String {
    format!(
        "https://hooks.example.com/twilio?tenant=t1&bodySHA256={}",
        hex::encode(Sha256::digest(body))
    )
}
