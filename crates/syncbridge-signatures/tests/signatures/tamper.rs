//! Property test: for random bodies, a signed delivery verifies, and flipping
//! any single bit pattern of any body byte makes verification fail.
//!
//! Twilio's form variant is left out on purpose: Twilio signs the *decoded*
//! form params, so some byte changes (`+` to a space, one invalid UTF-8 byte
//! for another) do not change what is signed. Its JSON variant, which hashes
//! the raw body through `bodySHA256`, is included.

use proptest::prelude::*;
use syncbridge_signatures::verify;

use crate::helpers::{Case, NOW, TOLERANCE, cases, twilio_json_url};

fn tamperable_cases() -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|case| case.name != "twilio (form)")
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn flipping_any_body_byte_fails_verification(
        body in prop::collection::vec(any::<u8>(), 1..512),
        case_index in any::<prop::sample::Index>(),
        byte_index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let all = tamperable_cases();
        let mut case = all[case_index.index(all.len())].clone();
        if case.name.contains("bodySHA256") {
            case.url = twilio_json_url(&body);
        }
        let headers = case.signed_headers_at(&body, NOW);
        let secrets = [case.verify_secret.clone()];

        let original = verify(&case.scheme, &secrets, &case.request(&headers, &body), NOW, TOLERANCE);
        prop_assert!(original.is_ok(), "{}: {:?}", case.name, original);

        let mut tampered = body.clone();
        tampered[byte_index.index(body.len())] ^= mask;
        let result = verify(&case.scheme, &secrets, &case.request(&headers, &tampered), NOW, TOLERANCE);
        prop_assert!(result.is_err(), "{}: tampered body accepted", case.name);
    }
}
