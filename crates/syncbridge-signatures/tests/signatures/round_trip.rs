//! `sign` then `verify` succeeds for every scheme that can be signed.

use syncbridge_signatures::{Request, Scheme, SignError, WebhookSecret, sign, verify};

use crate::helpers::{ID, NOW, TOLERANCE, cases, header, whpk};

/// Every signable scheme round-trips and reports the timestamp and event id.
#[test]
fn every_signable_scheme_round_trips() {
    let cases = cases();
    let named: Vec<&str> = cases.iter().map(|c| c.scheme.name()).collect();
    for name in Scheme::NAMES {
        assert!(named.contains(&name), "no round-trip case for `{name}`");
    }
    for case in &cases {
        let headers = case.signed_headers();
        let verified = verify(
            &case.scheme,
            std::slice::from_ref(&case.verify_secret),
            &case.request(&headers, &case.body),
            NOW,
            TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            verified.timestamp.is_some(),
            case.is_timestamped(),
            "{}",
            case.name
        );
        if case.is_timestamped() {
            assert_eq!(verified.timestamp, Some(NOW), "{}", case.name);
        }
        assert_eq!(
            verified.event_id.as_deref(),
            case.has_event_id.then_some(ID),
            "{}",
            case.name
        );
        assert!(
            header(&headers, case.signature_header).is_some(),
            "{}: sign did not set {}",
            case.name,
            case.signature_header
        );
    }
}

/// Header names are matched case-insensitively.
#[test]
fn header_names_are_case_insensitive() {
    for case in cases() {
        for transform in [str::to_ascii_lowercase, str::to_ascii_uppercase] {
            let headers: Vec<_> = case
                .signed_headers()
                .into_iter()
                .map(|(k, v)| (transform(&k), v))
                .collect();
            verify(
                &case.scheme,
                std::slice::from_ref(&case.verify_secret),
                &case.request(&headers, &case.body),
                NOW,
                TOLERANCE,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
    }
}

/// An empty body (GET/DELETE deliveries) signs and verifies too.
#[test]
fn empty_bodies_round_trip() {
    for case in cases()
        .into_iter()
        .filter(|c| !c.name.contains("bodySHA256"))
    {
        let headers = case.signed_headers_at(b"", NOW);
        verify(
            &case.scheme,
            std::slice::from_ref(&case.verify_secret),
            &case.request(&headers, b""),
            NOW,
            TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

/// `sign_standard_webhooks` produces what `sign` puts in `webhook-signature`.
#[test]
fn sign_standard_webhooks_matches_sign() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::StandardWebhooks)
        .unwrap();
    let headers = case.signed_headers();
    let value =
        syncbridge_signatures::sign_standard_webhooks(&case.signing_secret, ID, NOW, &case.body);
    assert_eq!(header(&headers, "webhook-signature"), Some(value.as_str()));
}

/// A Standard Webhooks header listing several signatures (the sender signs
/// with the old and the new key during rotation) verifies with either key, and
/// entries of unknown versions are skipped.
#[test]
fn standard_webhooks_signature_lists() {
    let old = WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let new = WebhookSecret::new("whsec_bmV3LXNlY3JldC1rZXktMjQtYnl0ZXMh");
    let body = br#"{"test": 1}"#;
    let list = format!(
        "v2,AAAA {} {} v1a,bm90LWEtc2ln",
        syncbridge_signatures::sign_standard_webhooks(&old, "msg_1", NOW, body),
        syncbridge_signatures::sign_standard_webhooks(&new, "msg_1", NOW, body),
    );
    let headers = vec![
        ("webhook-id".to_owned(), "msg_1".to_owned()),
        ("webhook-timestamp".to_owned(), NOW.to_string()),
        ("webhook-signature".to_owned(), list),
    ];
    let req = Request {
        method: "POST",
        url: "https://example.com/",
        headers: &headers,
        body,
    };
    for secret in [old, new] {
        verify(&Scheme::StandardWebhooks, &[secret], &req, NOW, TOLERANCE).unwrap();
    }
}

/// A Stripe header with several `v1=` entries (endpoint secret being rolled)
/// verifies with either secret.
#[test]
fn stripe_multiple_v1_entries() {
    fn req_for<'a>(headers: &'a [(String, String)]) -> Request<'a> {
        Request {
            method: "POST",
            url: "https://example.com/",
            headers,
            body: br#"{"id":"evt_1"}"#,
        }
    }
    let v1_of = |secret: &WebhookSecret| {
        let added = sign(&Scheme::Stripe, secret, &req_for(&[]), NOW, "unused").unwrap();
        added[0].1.split(",v1=").nth(1).unwrap().to_owned()
    };
    let old = WebhookSecret::new("whsec_old");
    let new = WebhookSecret::new("whsec_new");
    let headers = vec![(
        "Stripe-Signature".to_owned(),
        format!("t={NOW},v1={},v1={},v0=00", v1_of(&old), v1_of(&new)),
    )];
    for secret in [old, new] {
        let verified = verify(&Scheme::Stripe, &[secret], &req_for(&headers), NOW, 300).unwrap();
        assert_eq!(verified.event_id.as_deref(), Some("evt_1"));
    }
}

/// Twilio: the port may be added or removed between what Twilio signed and
/// the URL the receiver reconstructs.
#[test]
fn twilio_accepts_url_with_or_without_port() {
    let secret = WebhookSecret::new("12345");
    let body = b"CallSid=CA1&Digits=1234";
    for (signed_url, received_url) in [
        ("https://a.example.com/sms", "https://a.example.com:443/sms"),
        ("https://a.example.com:443/sms", "https://a.example.com/sms"),
        ("https://a.example.com/sms", "https://a.example.com/sms"),
    ] {
        let unsigned = Request {
            method: "POST",
            url: signed_url,
            headers: &[],
            body,
        };
        let headers = sign(&Scheme::Twilio, &secret, &unsigned, NOW, "tok").unwrap();
        let req = Request {
            url: received_url,
            headers: &headers,
            ..unsigned
        };
        verify(&Scheme::Twilio, std::slice::from_ref(&secret), &req, NOW, 0)
            .unwrap_or_else(|e| panic!("{signed_url} -> {received_url}: {e}"));
    }
}

/// Twilio JSON bodies need `bodySHA256` in the URL, and it must match.
#[test]
fn twilio_json_needs_a_matching_body_hash() {
    let secret = WebhookSecret::new("12345");
    let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let unsigned = Request {
        method: "POST",
        url: "https://a.example.com/hook?bodySHA256=00",
        headers: &headers,
        body: b"{}",
    };
    assert!(matches!(
        sign(&Scheme::Twilio, &secret, &unsigned, NOW, "tok"),
        Err(SignError::InvalidRequest(_))
    ));
    let no_hash = Request {
        url: "https://a.example.com/hook",
        ..unsigned
    };
    assert!(matches!(
        sign(&Scheme::Twilio, &secret, &no_hash, NOW, "tok"),
        Err(SignError::InvalidRequest(_))
    ));
}

/// A `whpk_` public key can verify `v1a` but cannot sign.
#[test]
fn public_keys_cannot_sign() {
    let req = Request {
        method: "POST",
        url: "https://example.com/",
        headers: &[],
        body: b"{}",
    };
    assert!(matches!(
        sign(&Scheme::StandardWebhooks, &whpk(1), &req, NOW, ID),
        Err(SignError::InvalidSecret(_))
    ));
}

/// HubSpot v3 also accepts a signature over the URL with HubSpot's listed
/// characters percent-decoded.
#[test]
fn hubspot_v3_accepts_the_decoded_url() {
    let secret = WebhookSecret::new("client-secret");
    let encoded = "https://example.com/hook?redirect=https%3A%2F%2Fapp.example.com%2Fa";
    let decoded = "https://example.com/hook?redirect=https://app.example.com/a";
    let signed_over_decoded = Request {
        method: "POST",
        url: decoded,
        headers: &[],
        body: b"[]",
    };
    let headers = sign(&Scheme::HubspotV3, &secret, &signed_over_decoded, NOW, ID).unwrap();
    let received = Request {
        url: encoded,
        headers: &headers,
        ..signed_over_decoded
    };
    verify(&Scheme::HubspotV3, &[secret], &received, NOW, TOLERANCE).unwrap();
}
