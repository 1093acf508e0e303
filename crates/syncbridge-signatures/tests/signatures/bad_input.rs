//! Table tests of rejected deliveries, run against every signable scheme:
//! missing and garbled headers, wrong secret, stale and future timestamps,
//! secret rotation.

use syncbridge_signatures::{Scheme, Verified, VerifyError, WebhookSecret, verify};

use crate::helpers::{Case, NOW, TOLERANCE, cases, with_header};

/// Verifies `headers` against `case` with the given secrets and clock.
fn check(
    case: &Case,
    secrets: &[WebhookSecret],
    headers: &[(String, String)],
    now: i64,
) -> Result<Verified, VerifyError> {
    verify(
        &case.scheme,
        secrets,
        &case.request(headers, &case.body),
        now,
        TOLERANCE,
    )
}

#[test]
fn missing_signature_header() {
    for case in cases() {
        let headers = with_header(&case.signed_headers(), case.signature_header, None);
        let error = check(
            &case,
            std::slice::from_ref(&case.verify_secret),
            &headers,
            NOW,
        )
        .unwrap_err();
        assert!(
            matches!(&error, VerifyError::MissingHeader(name) if name.eq_ignore_ascii_case(case.signature_header)),
            "{}: {error:?}",
            case.name
        );
    }
}

#[test]
fn missing_timestamp_header() {
    for case in cases() {
        let Some(ts_header) = case.timestamp_header else {
            continue;
        };
        if ts_header == case.signature_header {
            continue; // Stripe: covered by `garbled_signature_header`.
        }
        let headers = with_header(&case.signed_headers(), ts_header, None);
        let error = check(
            &case,
            std::slice::from_ref(&case.verify_secret),
            &headers,
            NOW,
        )
        .unwrap_err();
        assert!(
            matches!(error, VerifyError::MissingHeader(_)),
            "{}: {error:?}",
            case.name
        );
    }
}

#[test]
fn garbled_signature_header() {
    for garbage in ["garbage!!", "", "sha256=zz", "t=,v1=00", "v1,***"] {
        for case in cases() {
            let headers = with_header(&case.signed_headers(), case.signature_header, Some(garbage));
            let error = check(
                &case,
                std::slice::from_ref(&case.verify_secret),
                &headers,
                NOW,
            )
            .unwrap_err();
            assert!(
                matches!(
                    error,
                    VerifyError::MalformedHeader { .. }
                        | VerifyError::NoSupportedSignature(_)
                        | VerifyError::SignatureMismatch
                ),
                "{} with {garbage:?}: {error:?}",
                case.name
            );
        }
    }
}

#[test]
fn garbled_timestamp_header() {
    for garbage in ["yesterday", "", "-5", "1e9", "99999999999999999999999"] {
        for case in cases() {
            let Some(ts_header) = case.timestamp_header else {
                continue;
            };
            let signed = case.signed_headers();
            let headers = if ts_header == case.signature_header {
                // Stripe: keep the signatures, garble `t=`.
                let value = crate::helpers::header(&signed, ts_header).unwrap();
                let rest = value.split_once(',').unwrap().1;
                with_header(&signed, ts_header, Some(&format!("t={garbage},{rest}")))
            } else {
                with_header(&signed, ts_header, Some(garbage))
            };
            let error = check(
                &case,
                std::slice::from_ref(&case.verify_secret),
                &headers,
                NOW,
            )
            .unwrap_err();
            assert!(
                matches!(error, VerifyError::MalformedHeader { .. }),
                "{} with {garbage:?}: {error:?}",
                case.name
            );
        }
    }
}

#[test]
fn wrong_secret() {
    for case in cases() {
        let headers = case.signed_headers();
        let error = check(
            &case,
            std::slice::from_ref(&case.wrong_secret),
            &headers,
            NOW,
        )
        .unwrap_err();
        assert_eq!(error, VerifyError::SignatureMismatch, "{}", case.name);
    }
}

#[test]
fn no_secrets() {
    for case in cases() {
        let headers = case.signed_headers();
        let error = check(&case, &[], &headers, NOW).unwrap_err();
        assert_eq!(error, VerifyError::NoSecrets, "{}", case.name);
    }
}

/// Stale and future timestamps fail just outside the tolerance and pass at it.
/// Schemes without a timestamp ignore the clock.
#[test]
fn timestamp_tolerance_both_directions() {
    for case in cases() {
        let headers = case.signed_headers();
        let secrets = [case.verify_secret.clone()];
        for (now, label) in [
            (NOW + TOLERANCE + 1, "stale"),
            (NOW - TOLERANCE - 1, "future"),
            (NOW + 10 * 365 * 86_400, "years stale"),
        ] {
            let result = check(&case, &secrets, &headers, now);
            if case.is_timestamped() {
                let error = result.expect_err(&format!("{}: {label} accepted", case.name));
                assert!(
                    matches!(error, VerifyError::TimestampOutsideTolerance { timestamp, .. } if timestamp == NOW),
                    "{} ({label}): {error:?}",
                    case.name
                );
                let message = error.to_string();
                let direction = if label == "future" { "future" } else { "stale" };
                assert!(message.contains(direction), "{}: {message}", case.name);
            } else {
                result.unwrap_or_else(|e| panic!("{} ({label}): {e}", case.name));
            }
        }
        for now in [NOW + TOLERANCE, NOW - TOLERANCE, NOW] {
            check(&case, &secrets, &headers, now)
                .unwrap_or_else(|e| panic!("{} at the edge: {e}", case.name));
        }
    }
}

/// During rotation both the old and the new secret are configured; a delivery
/// signed with either verifies whatever the order.
#[test]
fn secret_rotation_any_active_secret_matches() {
    for case in cases() {
        let headers = case.signed_headers();
        let right = case.verify_secret.clone();
        let wrong = case.wrong_secret.clone();
        for secrets in [
            vec![wrong.clone(), right.clone()],
            vec![right.clone(), wrong.clone()],
            vec![wrong.clone(), wrong.clone(), right.clone()],
        ] {
            check(&case, &secrets, &headers, NOW).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
    }
}

/// A HubSpot `X-HubSpot-Signature-Version` that differs from the configured
/// scheme is rejected rather than checked with the wrong algorithm.
#[test]
fn hubspot_version_header_must_match_the_scheme() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::HubspotV1)
        .unwrap();
    let headers = with_header(
        &case.signed_headers(),
        "X-HubSpot-Signature-Version",
        Some("v2"),
    );
    let error = check(
        &case,
        std::slice::from_ref(&case.verify_secret),
        &headers,
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(error, VerifyError::MalformedHeader { .. }),
        "{error:?}"
    );
}

/// A Stripe header with only `v0` entries fails: only `v1` counts.
#[test]
fn stripe_v0_only_fails() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::Stripe)
        .unwrap();
    let headers = with_header(
        &case.signed_headers(),
        "Stripe-Signature",
        Some(&format!("t={NOW},v0=00ff")),
    );
    let error = check(
        &case,
        std::slice::from_ref(&case.verify_secret),
        &headers,
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(error, VerifyError::NoSupportedSignature(_)),
        "{error:?}"
    );
}

/// A `whsec_` secret that is not base64 is a configuration error, not a mismatch.
#[test]
fn invalid_standard_webhooks_secret() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::StandardWebhooks)
        .unwrap();
    let headers = case.signed_headers();
    let error = check(
        &case,
        &[WebhookSecret::new("whsec_not*base64!")],
        &headers,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(error, VerifyError::InvalidSecret(_)), "{error:?}");
}

/// What was tried: a rotation list whose first entry is not a usable secret
/// (a typo in configuration), with the delivery signed by the second. What
/// must hold: the good secret still verifies it; a wrong signature is still a
/// mismatch, not a configuration error.
#[test]
fn an_unusable_secret_does_not_block_a_good_one() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::StandardWebhooks)
        .unwrap();
    let headers = case.signed_headers();
    let secrets = [
        WebhookSecret::new("whsec_not*base64!"),
        case.verify_secret.clone(),
    ];
    assert!(check(&case, &secrets, &headers, NOW).is_ok());
    let other = [
        WebhookSecret::new("whsec_not*base64!"),
        WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ];
    let error = check(&case, &other, &headers, NOW).unwrap_err();
    assert!(matches!(error, VerifyError::SignatureMismatch), "{error:?}");
}

/// What was tried: the secrets an operator mistyped into `connections add`
/// (`whsec_!!!`, empty, a bare `whsec_`, a `whpk_` key that is no key,
/// whitespace) against the scheme they were given for. What must hold:
/// `check_secret` refuses each with a reason that does not echo it, and
/// accepts every secret shape the scheme defines (a well-formed `whpk_`
/// public key verifies `v1a` signatures, so it is valid).
#[test]
fn check_secret_table() {
    use syncbridge_signatures::check_secret;
    let sw = Scheme::StandardWebhooks;
    for bad in [
        "whsec_!!!",
        "",
        "whsec_",
        "whpk_",
        "whpk_abc",
        "whsk_!!",
        "  ",
    ] {
        for scheme in [&sw, &Scheme::Svix] {
            let e = check_secret(scheme, &WebhookSecret::new(bad)).unwrap_err();
            assert!(matches!(e, VerifyError::InvalidSecret(_)), "{bad:?}: {e:?}");
            if bad.len() > 6 {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
    }
    for good in [
        WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        WebhookSecret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        crate::helpers::whpk(7),
        crate::helpers::whsk(7),
    ] {
        assert!(check_secret(&sw, &good).is_ok());
    }
    for scheme in [Scheme::Github, Scheme::Stripe, Scheme::Slack] {
        assert!(check_secret(&scheme, &WebhookSecret::new("")).is_err());
        assert!(check_secret(&scheme, &WebhookSecret::new("whsec_!!!")).is_ok());
    }
}
