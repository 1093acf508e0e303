//! Twilio: `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, URL + Σ key+value).
//!
//! - Form bodies: the POST params, sorted by key, values decoded; a repeated
//!   key contributes its values sorted and de-duplicated (as twilio-python).
//!   Because the decoded params are signed, not the raw bytes, two bodies that
//!   decode to the same params (`a+b` and `a b`) share a signature.
//! - JSON bodies: the URL carries `bodySHA256=<hex SHA-256(body)>`; the
//!   signature covers the URL only and the body hash is checked separately.
//! - The URL is the full URL Twilio called, with its query. Like twilio-python,
//!   the verifier also tries it with the port removed and with the default
//!   port (`:443`/`:80`) added.
//!
//! There is no timestamp; dedupe on `I-Twilio-Idempotency-Token`.

use std::collections::{BTreeMap, BTreeSet};

use url::form_urlencoded;

use crate::crypto::{any_match, ct_eq, from_base64, from_hex, hmac, sha256, to_base64};
use crate::error::{SignError, VerifyError};
use crate::request::{Request, Verified};
use crate::scheme::HmacAlgorithm;
use crate::secret::WebhookSecret;

const HEADER: &str = "X-Twilio-Signature";
const IDEMPOTENCY: &str = "I-Twilio-Idempotency-Token";

/// The `bodySHA256` query parameter of `url`, if any.
fn body_sha256_param(url: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "bodySHA256")
        .map(|(_, value)| value.into_owned())
}

/// Whether the body is something other than form params and so needs
/// `bodySHA256` in the URL.
fn is_form(req: &Request<'_>) -> bool {
    match req.header("Content-Type") {
        None => true,
        Some(content_type) => content_type
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded"),
    }
}

/// `Σ key+value` over the form params, sorted by key then value, de-duplicated.
fn params_string(body: &[u8]) -> String {
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        params
            .entry(key.into_owned())
            .or_default()
            .insert(value.into_owned());
    }
    let mut out = String::new();
    for (key, values) in &params {
        for value in values {
            out.push_str(key);
            out.push_str(value);
        }
    }
    out
}

/// `url` as given, with its port removed, and with the default port added.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    // The port is after the last ':' unless that ':' is inside an IPv6 literal.
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (host_port, None),
    };
    let build = |port: Option<&str>| {
        let mut out = format!("{scheme}://");
        if let Some(userinfo) = userinfo {
            out.push_str(userinfo);
            out.push('@');
        }
        out.push_str(host);
        if let Some(port) = port {
            out.push(':');
            out.push_str(port);
        }
        out.push_str(tail);
        out
    };
    let alternative = match port {
        Some(_) => Some(build(None)),
        None => match scheme.to_ascii_lowercase().as_str() {
            "https" => Some(build(Some("443"))),
            "http" => Some(build(Some("80"))),
            _ => None,
        },
    };
    variants.extend(alternative.filter(|alt| alt != url));
    variants
}

fn mac(secret: &WebhookSecret, url: &str, params: &str) -> Vec<u8> {
    hmac(
        HmacAlgorithm::Sha1,
        secret.as_bytes(),
        &[url.as_bytes(), params.as_bytes()],
    )
}

pub(crate) fn verify(
    secrets: &[WebhookSecret],
    req: &Request<'_>,
) -> Result<Verified, VerifyError> {
    let received = from_base64(req.require(HEADER)?).ok_or(VerifyError::MalformedHeader {
        header: HEADER.to_owned(),
        reason: "signature is not base64",
    })?;
    let body_hash = body_sha256_param(req.url);
    let params = match &body_hash {
        Some(_) => String::new(),
        None if req.body.is_empty() || is_form(req) => params_string(req.body),
        None => {
            return Err(VerifyError::UnsupportedContent(
                "Twilio signs non-form bodies only through a `bodySHA256` URL parameter",
            ));
        }
    };
    let urls = url_variants(req.url);
    let mut mismatch = Err(VerifyError::SignatureMismatch);
    for url in &urls {
        mismatch = any_match(secrets, std::slice::from_ref(&received), |secret| {
            Ok(mac(secret, url, &params))
        });
        if mismatch.is_ok() {
            break;
        }
    }
    mismatch?;
    if let Some(expected) = body_hash {
        let expected = from_hex(&expected).ok_or(VerifyError::BodyHashMismatch)?;
        if !ct_eq(&expected, &sha256(&[req.body])) {
            return Err(VerifyError::BodyHashMismatch);
        }
    }
    Ok(Verified {
        event_id: req.header(IDEMPOTENCY).map(str::to_owned),
        timestamp: None,
    })
}

/// Signs over `req.url` exactly as given. For a JSON body, put
/// `bodySHA256=<hex SHA-256(body)>` in the URL first.
pub(crate) fn sign(
    secret: &WebhookSecret,
    req: &Request<'_>,
    id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let params = match body_sha256_param(req.url) {
        Some(expected) => {
            let matches = from_hex(&expected).is_some_and(|hash| hash == sha256(&[req.body]));
            if !matches {
                return Err(SignError::InvalidRequest(
                    "the URL's `bodySHA256` is not the SHA-256 of the body",
                ));
            }
            String::new()
        }
        None if req.body.is_empty() || is_form(req) => params_string(req.body),
        None => {
            return Err(SignError::InvalidRequest(
                "Twilio signs non-form bodies only through a `bodySHA256` URL parameter",
            ));
        }
    };
    Ok(vec![
        (HEADER.to_owned(), to_base64(&mac(secret, req.url, &params))),
        (IDEMPOTENCY.to_owned(), id.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::{params_string, url_variants};

    #[test]
    fn url_variants_add_or_remove_the_port() {
        assert_eq!(
            url_variants("https://a.test/x?y=1"),
            ["https://a.test/x?y=1", "https://a.test:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://u:p@a.test:8080"),
            ["http://u:p@a.test:8080", "http://u:p@a.test"]
        );
        assert_eq!(
            url_variants("https://[::1]:8443/x"),
            ["https://[::1]:8443/x", "https://[::1]/x"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }

    #[test]
    fn params_are_sorted_decoded_and_deduplicated() {
        assert_eq!(params_string(b"b=2&a=%2B1&b=1&b=2"), "a+1b1b2");
    }
}
