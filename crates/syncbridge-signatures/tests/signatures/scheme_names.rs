//! Scheme names: `FromStr`/`Display` and serde configuration.

use syncbridge_signatures::{
    GenericHmac, HmacAlgorithm, ParseSchemeError, Scheme, SignatureEncoding,
};

#[test]
fn every_name_round_trips_through_from_str_and_display() {
    for name in Scheme::NAMES {
        match name.parse::<Scheme>() {
            Ok(scheme) => assert_eq!(scheme.to_string(), name),
            Err(ParseSchemeError::NeedsConfiguration) => assert_eq!(name, "hmac"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let error = "github256".parse::<Scheme>().unwrap_err();
    assert_eq!(error, ParseSchemeError::Unknown("github256".to_owned()));
    let message = error.to_string();
    assert!(message.contains("github256") && message.contains("standard-webhooks"));
    assert!("GitHub".parse::<Scheme>().is_err(), "names are exact");
}

#[test]
fn serde_accepts_names_and_hmac_maps() {
    let scheme: Scheme = serde_json::from_str(r#""hubspot-v3""#).unwrap();
    assert_eq!(scheme, Scheme::HubspotV3);

    let scheme: Scheme = serde_json::from_str(
        r#"{"hmac": {"header": "X-Sig", "algorithm": "sha512", "encoding": "base64"}}"#,
    )
    .unwrap();
    let mut expected = GenericHmac::new("X-Sig");
    expected.algorithm = HmacAlgorithm::Sha512;
    expected.encoding = SignatureEncoding::Base64;
    assert_eq!(scheme, Scheme::Hmac(expected));

    for scheme in [Scheme::Svix, scheme] {
        let json = serde_json::to_string(&scheme).unwrap();
        assert_eq!(serde_json::from_str::<Scheme>(&json).unwrap(), scheme);
    }
}

#[test]
fn serde_rejects_bad_configuration() {
    for bad in [
        r#""hmac""#,
        r#""nope""#,
        r#"{"hmac": {"header": "X-Sig", "template": "{timestamp}.{body}"}}"#,
        r#"{"hmac": {"header": "X-Sig", "algorithm": "md5"}}"#,
        r#"{"hmac": {"header": "X-Sig", "colour": "blue"}}"#,
    ] {
        assert!(serde_json::from_str::<Scheme>(bad).is_err(), "{bad}");
    }
}
