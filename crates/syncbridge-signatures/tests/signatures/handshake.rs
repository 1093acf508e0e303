//! Endpoint-validation handshakes (Slack `url_verification`, Zoom
//! `endpoint.url_validation`).

use syncbridge_signatures::{GenericHmac, Request, Scheme, WebhookSecret, handshake, sign};

#[test]
fn slack_url_verification_echoes_the_challenge() {
    let secret = WebhookSecret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let response = handshake(&Scheme::Slack, &secret, body).unwrap();
    assert_eq!(response.content_type, "text/plain");
    assert_eq!(
        response.body,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}

#[test]
fn zoom_url_validation_returns_the_encrypted_token() {
    let secret = WebhookSecret::new("zoom-secret-token");
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let response = handshake(&Scheme::Zoom, &secret, body).unwrap();
    assert_eq!(response.content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(json["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");

    // encryptedToken = hex HMAC-SHA256(secret token, plainToken): compute it
    // independently with the generic scheme signing the token as the body.
    let generic = Scheme::Hmac(GenericHmac::new("X-Mac"));
    let req = Request {
        method: "POST",
        url: "https://example.com/",
        headers: &[],
        body: b"qgg8vlvZRS6UYooatFL8Aw",
    };
    let expected = sign(&generic, &secret, &req, 0, "").unwrap();
    assert_eq!(json["encryptedToken"], expected[0].1.as_str());
}

#[test]
fn ordinary_events_and_other_schemes_have_no_handshake() {
    let secret = WebhookSecret::new("s");
    let event = br#"{"type":"event_callback","event_id":"Ev1","event":{}}"#;
    assert_eq!(handshake(&Scheme::Slack, &secret, event), None);
    assert_eq!(
        handshake(&Scheme::Zoom, &secret, br#"{"event":"meeting.started"}"#),
        None
    );
    assert_eq!(handshake(&Scheme::Slack, &secret, b"not json"), None);
    let challenge = br#"{"challenge":"c","type":"url_verification"}"#;
    assert_eq!(handshake(&Scheme::Github, &secret, challenge), None);
}
