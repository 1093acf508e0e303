//! Error messages and `Debug` output never contain a secret or the expected
//! signature, whatever went wrong.

use syncbridge_signatures::{Scheme, SignError, VerifyError, WebhookSecret, sign, verify};

use crate::helpers::{NOW, TOLERANCE, cases, header, with_header};

/// Every way to print an error.
fn renderings(error: &impl std::fmt::Debug) -> String {
    format!("{error:?}\n{error:#?}")
}

fn assert_clean(text: &str, forbidden: &[String], context: &str) {
    for needle in forbidden.iter().filter(|n| n.len() >= 6) {
        assert!(
            !text.contains(needle.as_str()),
            "{context}: output contains a secret or expected signature: {text}"
        );
    }
}

/// For every scheme, the receiver holds secret S and gets deliveries that fail
/// in every way; no error text contains S, the signature S would have
/// produced, or its encoded body.
#[test]
fn verify_errors_never_contain_secrets_or_expected_signatures() {
    for case in cases() {
        // What the receiver's secret would have produced.
        let expected_headers = case.signed_headers();
        let expected_signature = header(&expected_headers, case.signature_header)
            .unwrap()
            .to_owned();
        let mut forbidden = vec![
            case.verify_secret.expose().to_owned(),
            case.signing_secret.expose().to_owned(),
            expected_signature.clone(),
        ];
        // The bare encoded MAC, without `sha256=`/`v1,`/`t=..,v1=` decoration.
        forbidden.extend(
            expected_signature
                .split([',', '=', ' '])
                .filter(|part| part.len() >= 16)
                .map(str::to_owned),
        );

        // Deliveries signed by someone else, garbled, stale, unsigned.
        let mut attempts = Vec::new();
        let mut forged = case.clone();
        forged.signing_secret = case.wrong_secret.clone();
        if forged.signing_secret.expose().starts_with("whpk_") {
            forged.signing_secret = crate::helpers::whsk(9);
        }
        attempts.push((forged.signed_headers(), NOW));
        attempts.push((expected_headers.clone(), NOW + 10 * TOLERANCE));
        attempts.push((
            with_header(&expected_headers, case.signature_header, Some("garbage!!")),
            NOW,
        ));
        attempts.push((
            with_header(&expected_headers, case.signature_header, None),
            NOW,
        ));

        for (headers, now) in &attempts {
            let secrets = [case.verify_secret.clone()];
            let result = verify(
                &case.scheme,
                &secrets,
                &case.request(headers, &case.body),
                *now,
                TOLERANCE,
            );
            if let Err(error) = result {
                assert_clean(&error.to_string(), &forbidden, &case.name);
                assert_clean(&renderings(&error), &forbidden, &case.name);
            }
            assert_clean(&format!("{secrets:?}"), &forbidden, &case.name);
        }
    }
}

/// Configuration errors about a secret describe it without quoting it.
#[test]
fn invalid_secret_errors_do_not_quote_the_secret() {
    let case = cases()
        .into_iter()
        .find(|c| c.scheme == Scheme::Svix)
        .unwrap();
    let headers = case.signed_headers();
    for bad in [
        "whsec_this-is-not*base64-secret",
        "whpk_not-a-public-key-value",
        "whsk_c2hvcnQ=",
    ] {
        let secret = WebhookSecret::new(bad);
        let error = verify(
            &case.scheme,
            std::slice::from_ref(&secret),
            &case.request(&headers, &case.body),
            NOW,
            TOLERANCE,
        )
        .unwrap_err();
        assert!(matches!(error, VerifyError::InvalidSecret(_)), "{error:?}");
        let payload = [bad.split_once('_').unwrap().1.to_owned()];
        assert_clean(&error.to_string(), &payload, bad);
        assert_clean(&renderings(&error), &payload, bad);

        let sign_error = sign(
            &case.scheme,
            &secret,
            &case.request(&headers, &case.body),
            NOW,
            "id",
        )
        .unwrap_err();
        assert!(matches!(sign_error, SignError::InvalidSecret(_)));
        assert_clean(&sign_error.to_string(), &payload, bad);
        assert_clean(&renderings(&sign_error), &payload, bad);
    }
}

#[test]
fn secret_debug_is_redacted() {
    let secret = WebhookSecret::new("hunter2-super-secret");
    assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
    assert_eq!(format!("{secret:#?}"), "WebhookSecret(***)");
    let list = vec![secret.clone(), secret];
    assert!(!format!("{list:?}").contains("hunter2"));
}
