//! Every vector of `shared/vectors/webhook-signatures.json`: valid ones verify,
//! invalid ones fail for the stated reason, and none is skipped.

use serde_json::Value;
use syncbridge_signatures::{Request, Scheme, VerifyError, WebhookSecret, sign, verify};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/webhook-signatures.json"
);

/// The vector file's scheme identifiers are not ours.
fn scheme_for(vector_scheme: &str) -> Scheme {
    match vector_scheme {
        "github-x-hub-signature-256" => Scheme::Github,
        "github-x-hub-signature" | "github-x-hub-signature-sha1" => Scheme::GithubSha1,
        "stripe-signature-v1" => Scheme::Stripe,
        "slack-v0" => Scheme::Slack,
        "standard-webhooks-v1" => Scheme::StandardWebhooks,
        "svix-v1" => Scheme::Svix,
        "hubspot-v1" => Scheme::HubspotV1,
        "hubspot-v2" => Scheme::HubspotV2,
        "hubspot-v3" => Scheme::HubspotV3,
        "twilio-hmac-sha1" => Scheme::Twilio,
        "square-hmac-sha256" => Scheme::Square,
        "shopify-hmac-sha256" => Scheme::Shopify,
        "zoom-v0" => Scheme::Zoom,
        "intercom-hmac-sha1" => Scheme::Intercom,
        "zendesk-hmac-sha256" => Scheme::Zendesk,
        other => panic!("vector scheme `{other}` has no mapping; add one rather than skipping it"),
    }
}

/// One vector, decoded into what `verify` takes.
struct Vector {
    id: String,
    scheme: Scheme,
    secret: WebhookSecret,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    method: String,
    url: String,
    now: i64,
    tolerance: i64,
    valid: bool,
    extra: Value,
}

impl Vector {
    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            url: &self.url,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn load() -> Vec<Vector> {
    let text =
        std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("cannot read {VECTORS}: {e}"));
    let raw: Vec<Value> = serde_json::from_str(&text).expect("vector file is a JSON array");
    raw.into_iter()
        .map(|v| {
            let extra = v["extra"].clone();
            let str_field = |value: &Value, key: &str| value[key].as_str().map(str::to_owned);
            // HubSpot's clock is in milliseconds; ours is in seconds.
            let now = extra["now_for_tolerance"]
                .as_i64()
                .or_else(|| extra["now_for_tolerance_ms"].as_i64().map(|ms| ms / 1000))
                .unwrap_or(0);
            let headers = v["headers"]
                .as_object()
                .expect("headers is an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("header value").to_owned()))
                .collect();
            Vector {
                id: str_field(&v, "id").expect("id"),
                scheme: scheme_for(v["scheme"].as_str().expect("scheme")),
                secret: WebhookSecret::new(str_field(&v, "secret").expect("secret")),
                body: str_field(&v, "payload").expect("payload").into_bytes(),
                headers,
                method: str_field(&extra, "method").unwrap_or_else(|| "POST".to_owned()),
                url: str_field(&extra, "url")
                    .unwrap_or_else(|| "https://example.com/webhook".to_owned()),
                now,
                tolerance: extra["tolerance_seconds"].as_i64().unwrap_or(300),
                valid: match v["expected"].as_str() {
                    Some("valid") => true,
                    Some("invalid") => false,
                    other => panic!("unexpected `expected`: {other:?}"),
                },
                extra,
            }
        })
        .collect()
}

/// Valid vectors verify; invalid ones fail, for the reason the vector states.
/// The count of checked vectors must equal the file's count.
#[test]
fn every_vector_verifies_as_expected() {
    let vectors = load();
    assert!(!vectors.is_empty(), "no vectors loaded");
    let mut checked = 0;
    for vector in &vectors {
        let result = verify(
            &vector.scheme,
            std::slice::from_ref(&vector.secret),
            &vector.request(),
            vector.now,
            vector.tolerance,
        );
        if vector.valid {
            let verified =
                result.unwrap_or_else(|e| panic!("{}: valid vector rejected: {e}", vector.id));
            if let Some(ts) = vector.extra["timestamp"].as_i64() {
                assert_eq!(verified.timestamp, Some(ts), "{}", vector.id);
            }
        } else {
            let error = result.expect_err(&format!("{}: invalid vector accepted", vector.id));
            match vector.extra["reason"].as_str() {
                Some("expired_timestamp") => assert!(
                    matches!(error, VerifyError::TimestampOutsideTolerance { .. }),
                    "{}: {error:?}",
                    vector.id
                ),
                Some("tampered_signature") => {
                    assert_eq!(error, VerifyError::SignatureMismatch, "{}", vector.id);
                }
                _ => {}
            }
            // Negatives caused only by the clock must pass at their own timestamp.
            if vector.extra["signature_valid_ignoring_time"] == Value::Bool(true) {
                let ts = vector.extra["timestamp"].as_i64().expect("timestamp");
                verify(
                    &vector.scheme,
                    std::slice::from_ref(&vector.secret),
                    &vector.request(),
                    ts,
                    vector.tolerance,
                )
                .unwrap_or_else(|e| panic!("{}: signature should be valid: {e}", vector.id));
            }
        }
        checked += 1;
    }
    assert_eq!(checked, vectors.len(), "some vectors were not checked");
}

/// The delivery ids the vectors carry come back as `event_id`.
#[test]
fn vectors_report_their_event_ids() {
    let expected = [
        ("stripe-dotnet-event-utility", "evt_123"),
        ("stdwh-sign-vector", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("svix-docs-svix-headers", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("shopify-api-validate", "123456789"),
        (
            "square-sdk-test-notification",
            "ac3ac95b-f97d-458c-a6e6-18981597e05f",
        ),
    ];
    let vectors = load();
    for (id, event_id) in expected {
        let vector = vectors
            .iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("vector {id} not in the file"));
        let verified = verify(
            &vector.scheme,
            std::slice::from_ref(&vector.secret),
            &vector.request(),
            vector.now,
            vector.tolerance,
        )
        .unwrap();
        assert_eq!(verified.event_id.as_deref(), Some(event_id), "{id}");
    }
}

/// `sign` reproduces the signature of every valid vector: each header it
/// produces that the vector also has is a prefix of the vector's value (Stripe's
/// vector adds a `v0=` decoy after the `v1=` we produce).
#[test]
fn sign_reproduces_valid_vectors() {
    let mut checked = 0;
    for vector in load().iter().filter(|v| v.valid) {
        let timestamp = vector.extra["timestamp"].as_i64().unwrap_or(vector.now);
        let id = ["webhook-id", "svix-id", "X-Shopify-Webhook-Id"]
            .iter()
            .find_map(|name| {
                vector
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map_or("unused", |(_, v)| v.as_str());
        let produced = sign(
            &vector.scheme,
            &vector.secret,
            &vector.request(),
            timestamp,
            id,
        )
        .unwrap_or_else(|e| panic!("{}: sign failed: {e}", vector.id));
        let mut compared = 0;
        for (name, value) in &produced {
            if let Some((_, sent)) = vector
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                assert!(
                    sent.starts_with(value.as_str()),
                    "{}: header {name}: produced {value}, vector has {sent}",
                    vector.id
                );
                compared += 1;
            }
        }
        assert!(compared > 0, "{}: no header to compare", vector.id);
        checked += 1;
    }
    assert!(checked > 0);
}

/// The Twilio vector's `computed_here.over_url_with_default_port` value: the
/// signature Twilio would send had it called the URL with `:443`; it verifies
/// against the URL without the port, and the port-less signature against the
/// URL with it.
#[test]
fn twilio_vector_with_and_without_default_port() {
    let vectors = load();
    let vector = vectors
        .iter()
        .find(|v| v.scheme == Scheme::Twilio)
        .expect("a Twilio vector");
    let with_port = vector.extra["computed_here"]["over_url_with_default_port"]
        .as_str()
        .expect("over_url_with_default_port");
    let headers = vec![("X-Twilio-Signature".to_owned(), with_port.to_owned())];
    let req = Request {
        headers: &headers,
        ..vector.request()
    };
    verify(
        &Scheme::Twilio,
        std::slice::from_ref(&vector.secret),
        &req,
        0,
        0,
    )
    .unwrap();

    let url_with_port = vector.url.replacen(".com/", ".com:443/", 1);
    let req = Request {
        url: &url_with_port,
        ..vector.request()
    };
    verify(
        &Scheme::Twilio,
        std::slice::from_ref(&vector.secret),
        &req,
        0,
        0,
    )
    .unwrap();
    let signed = sign(&Scheme::Twilio, &vector.secret, &req, 0, "unused").unwrap();
    assert_eq!(signed[0].1, with_port);
}
