//! The TOML configuration and its validation.

use syncbridge_core::events::Severity;
use syncbridge_notify::{ChannelKind, NotifyConfig, NotifyError};

const FULL: &str = r#"
[grouping]
wait_secs = 10
window_secs = 600

[delivery]
initial_backoff_secs = 2
max_backoff_secs = 60
max_attempts = 5
timeout_secs = 3

[[channels]]
name = "ops-slack"
type = "slack"
url_env = "OPS_SLACK_URL"

[[channels]]
name = "acme-teams"
type = "teams"
url = "https://example.webhook.office.com/webhookb2/abc"

[[channels]]
name = "product"
type = "webhook"
url = "https://product.example.com/hooks/syncbridge"
secret_env = "PRODUCT_SECRET"

[[rules]]
tenant = "acme"
kinds = ["connection_needs_reauth", "conflict_parked"]
channels = ["acme-teams", "product"]

[[rules]]
tenant = "acme"
min_severity = "warning"
channels = ["acme-teams"]

[default]
min_severity = "critical"
channels = ["ops-slack", "product"]
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "OPS_SLACK_URL" => Some("https://hooks.slack.com/services/T0/B0/tok".into()),
        "PRODUCT_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        _ => None,
    }
}

/// The documented TOML parses: grouping, delivery, channels with direct and env-indirect URLs and secrets, ordered rules and the default route.
#[test]
fn full_config_parses() {
    let c = NotifyConfig::from_toml_with_env(FULL, env).unwrap();
    assert_eq!((c.grouping.wait_secs, c.grouping.window_secs), (10, 600));
    assert_eq!(c.delivery.max_attempts, 5);
    assert_eq!(c.delivery.poll_secs, 5, "defaults fill the rest");
    assert_eq!(c.channels.len(), 3);
    assert_eq!(c.channels[0].kind, ChannelKind::Slack);
    assert_eq!(
        c.channels[0].url.expose(),
        "https://hooks.slack.com/services/T0/B0/tok"
    );
    assert!(c.channels[2].secret.is_some());
    assert_eq!(c.rules.len(), 2);
    assert_eq!(c.rules[1].min_severity, Severity::Warning);
    assert_eq!(c.default.as_ref().unwrap().min_severity, Severity::Critical);
    let minimal = NotifyConfig::from_toml_with_env("", env).unwrap();
    assert!(minimal.channels.is_empty() && minimal.default.is_none());
}

/// Invalid configurations are refused with a message naming the setting, never the secret value.
#[test]
fn invalid_configs_are_refused_without_leaking() {
    let cases: Vec<(String, &str)> = vec![
        (
            FULL.replace("\"acme-teams\", \"product\"", "\"nope\""),
            "not configured",
        ),
        (
            FULL.replace("\"conflict_parked\"", "\"conflict\""),
            "unknown event kind",
        ),
        (
            FULL.replace("secret_env = \"PRODUCT_SECRET\"", ""),
            "needs a Standard Webhooks secret",
        ),
        (FULL.replace("OPS_SLACK_URL", "MISSING_VAR"), "MISSING_VAR"),
        (
            FULL.replace("name = \"acme-teams\"", "name = \"ops-slack\""),
            "used twice",
        ),
        (
            FULL.replace("wait_secs = 10", "wait_secs = 6000"),
            "wait_secs",
        ),
        (
            FULL.replace("type = \"teams\"", "type = \"email\""),
            "does not parse",
        ),
        (
            FULL.replace(
                "https://example.webhook.office.com/webhookb2/abc",
                "mailto:abc-secret-part@example.com",
            ),
            "http(s)",
        ),
        (
            FULL.replace(
                "https://example.webhook.office.com/webhookb2/abc",
                "not a url abc-secret-part",
            ),
            "does not parse",
        ),
        (
            FULL.replace("[default]", "[default]\nbogus = 1"),
            "does not parse",
        ),
    ];
    for (text, expect) in cases {
        let err = NotifyConfig::from_toml_with_env(&text, env).unwrap_err();
        assert!(matches!(err, NotifyError::Config(_)));
        let msg = err.to_string();
        assert!(msg.contains(expect), "{expect:?} not in {msg:?}");
        for secret in [
            "tok",
            "abc-secret-part",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "webhookb2",
        ] {
            assert!(!msg.contains(secret), "{secret} leaked: {msg}");
        }
    }
    let bad_secret = NotifyConfig::from_toml_with_env(FULL, |n| match n {
        "PRODUCT_SECRET" => Some("whsec_%%%notbase64".into()),
        other => env(other),
    })
    .unwrap_err();
    assert!(bad_secret.to_string().contains("unusable signing secret"));
    assert!(!bad_secret.to_string().contains("notbase64"));
}
