//! `host.json` (§1) and `function.json` (§3, §1b) models.

use std::time::Duration;

use serde_json::json;
use syncbridge_protocol::{
    AuthLevel, BindingKind, Cardinality, ConfigError, DataType, Direction, FunctionJson, HostJson,
    HttpMode, RetryPolicy,
};

use crate::fixture_text;

fn function(name: &str) -> FunctionJson {
    FunctionJson::parse(&fixture_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Proves the §1 host.json parses into every modelled field and keeps unknown keys.
#[test]
fn host_json_fields() {
    let host = HostJson::parse(&fixture_text("host.json")).unwrap();
    let ch = host.custom_handler.as_ref().unwrap();
    assert_eq!(ch.description.default_executable_path, "handler");
    assert_eq!(ch.description.working_directory.as_deref(), Some(""));
    assert!(ch.enable_proxying_http_request && !ch.enable_forwarding_http_request);
    let args = ch
        .description
        .expanded_arguments(|k| (k == "SYNC_FUNCTIONS").then(|| "all".to_owned()))
        .unwrap();
    assert_eq!(args, ["--functions", "all"]);
    assert_eq!(host.route_prefix(), "");
    assert_eq!(
        host.function_timeout().unwrap(),
        Some(Duration::from_secs(600))
    );
    let sb = host
        .extensions
        .as_ref()
        .unwrap()
        .service_bus
        .as_ref()
        .unwrap();
    assert_eq!(sb.max_concurrent_calls, Some(8));
    assert_eq!(sb.extra["transportType"], json!("amqpWebSockets"));
    assert_eq!(
        host.extension_bundle.as_ref().unwrap().version,
        "[4.*, 5.0.0)"
    );
    let again = HostJson::parse(&serde_json::to_string(&host).unwrap()).unwrap();
    assert_eq!(again, host);
}

/// Proves host.json defaults (route prefix `api`) and the empty-executable config error (§1).
#[test]
fn host_json_defaults_and_errors() {
    let host = HostJson::parse(r#"{"version":"2.0"}"#).unwrap();
    assert_eq!(host.route_prefix(), "api");
    assert_eq!(host.function_timeout().unwrap(), None);
    let err = HostJson::parse(r#"{"customHandler":{"description":{"defaultExecutablePath":""}}}"#)
        .unwrap_err();
    assert_eq!(err, ConfigError::EmptyExecutablePath);
    assert!(HostJson::parse("{").is_err());
}

/// Proves the timer binding, `%SYNC_SCHEDULE%` expansion with a default, and the retry policy.
#[test]
fn timer_function_json() {
    let f = function("function_timer.json");
    let trigger = f.trigger().unwrap();
    assert_eq!(
        (trigger.name.as_str(), trigger.direction),
        ("timer", Direction::In)
    );
    let BindingKind::TimerTrigger(timer) = &trigger.kind else {
        panic!("not a timer: {trigger:?}")
    };
    assert_eq!(timer.run_on_startup, Some(false));
    assert_eq!(timer.use_monitor, Some(true));
    let set = |k: &str| (k == "SYNC_SCHEDULE").then(|| "0 0 * * * *".to_owned());
    assert_eq!(
        timer.resolved_schedule(set, "0 */5 * * * *").unwrap(),
        "0 0 * * * *"
    );
    assert_eq!(
        timer.resolved_schedule(|_| None, "0 */5 * * * *").unwrap(),
        "0 */5 * * * *"
    );
    let five_fields = |_: &str| Some("*/5 * * * *".to_owned());
    assert!(matches!(
        timer.resolved_schedule(five_fields, "0 */5 * * * *"),
        Err(ConfigError::InvalidSchedule { .. })
    ));
    assert!(
        timer
            .resolved_schedule(|_| Some("00:05:00".into()), "x")
            .is_ok()
    );
    let retry = f.retry.as_ref().unwrap();
    assert_eq!(retry.max_retry_count(), Some(3));
    assert_eq!(retry.delay_for(2).unwrap(), Duration::from_secs(30));
    assert!(!f.is_http_only());
}

/// Proves the Service Bus trigger binding (§3) with dataType/cardinality/sessions.
#[test]
fn service_bus_function_json() {
    let f = function("function_service_bus.json");
    let BindingKind::ServiceBusTrigger(sb) = &f.trigger().unwrap().kind else {
        panic!("not service bus")
    };
    assert_eq!(sb.queue_name.as_deref(), Some("sync-jobs"));
    assert_eq!(sb.connection.as_deref(), Some("ServiceBusConnection"));
    assert_eq!(sb.data_type, Some(DataType::Binary));
    assert_eq!(sb.cardinality, Some(Cardinality::One));
    assert_eq!(sb.is_sessions_enabled, Some(false));
    assert_eq!(sb.entity_path().as_deref(), Some("sync-jobs"));
    let undeclared = FunctionJson::parse(
        r#"{"bindings":[{"name":"m","type":"ServiceBusTrigger","direction":"In","queueName":"q"}]}"#,
    )
    .unwrap();
    let BindingKind::ServiceBusTrigger(sb) = &undeclared.bindings[0].kind else {
        panic!("type matched case-insensitively")
    };
    assert_eq!(
        sb.effective_data_type(),
        DataType::String,
        "host default (§3)"
    );
}

/// Proves `is_http_only` is true for exactly httpTrigger-in + http-out, and that host.json's
/// forwarding/proxying flags apply only then (§4d).
#[test]
fn http_only_detection_and_mode() {
    let http = function("function_http.json");
    assert!(http.is_http_only());
    let BindingKind::HttpTrigger(t) = &http.bindings[0].kind else {
        panic!()
    };
    assert_eq!(t.auth_level, Some(AuthLevel::Function));
    assert_eq!(t.methods, ["post"]);
    assert_eq!(t.route.as_deref(), Some("webhooks/{source}"));

    let with_out = function("function_http_with_sb_out.json");
    assert!(
        !with_out.is_http_only(),
        "an extra serviceBus output disables forwarding"
    );

    let proxy = HostJson::parse(&fixture_text("host.json")).unwrap();
    assert_eq!(proxy.http_mode(&http), HttpMode::Proxied);
    assert_eq!(proxy.http_mode(&with_out), HttpMode::Envelope);
    let forward = HostJson::parse(
        r#"{"customHandler":{"description":{"defaultExecutablePath":"h"},"enableForwardingHttpRequest":true}}"#,
    )
    .unwrap();
    assert_eq!(forward.http_mode(&http), HttpMode::Forwarded);
    assert_eq!(HostJson::default().http_mode(&http), HttpMode::Envelope);

    let two_outputs = FunctionJson::parse(
        r#"{"bindings":[{"name":"req","type":"httpTrigger","direction":"in"},
            {"name":"res","type":"http","direction":"out"},{"name":"$return","type":"http","direction":"out"}]}"#,
    )
    .unwrap();
    assert!(!two_outputs.is_http_only());
}

/// Proves the exponential retry policy (§1b) computes capped doubling delays.
#[test]
fn exponential_retry_policy() {
    let f = function("function_http_with_sb_out.json");
    let retry = f.retry.unwrap();
    assert!(matches!(retry, RetryPolicy::ExponentialBackoff { .. }));
    assert_eq!(retry.delay_for(1).unwrap(), Duration::from_secs(10));
    assert_eq!(retry.delay_for(3).unwrap(), Duration::from_secs(40));
    assert_eq!(retry.delay_for(40).unwrap(), Duration::from_secs(900));
    let forever: RetryPolicy = serde_json::from_value(
        json!({"strategy": "fixedDelay", "maxRetryCount": -1, "delayInterval": "00:00:01"}),
    )
    .unwrap();
    assert_eq!(forever.max_retry_count(), None);
}

/// Proves unknown binding types and unknown keys survive a parse → serialize round trip.
#[test]
fn function_json_round_trip_preserves_unknowns() {
    let text = r#"{"bindings":[
        {"name":"timer","type":"timerTrigger","direction":"in","schedule":"0 */5 * * * *","futureKnob":1},
        {"name":"blob","type":"blob","direction":"in","path":"c/{name}"}],
        "disabled":false,"scriptFile":"x"}"#;
    let f = FunctionJson::parse(text).unwrap();
    assert!(
        matches!(&f.bindings[1].kind, BindingKind::Other { type_name, .. } if type_name == "blob")
    );
    let back: serde_json::Value = serde_json::to_value(&f).unwrap();
    assert_eq!(back["bindings"][0]["futureKnob"], json!(1));
    assert_eq!(back["bindings"][1]["path"], json!("c/{name}"));
    assert_eq!(back["scriptFile"], json!("x"));
    assert_eq!(FunctionJson::parse(&back.to_string()).unwrap(), f);
    assert!(
        FunctionJson::parse(r#"{"bindings":[{"name":"x","type":"http","direction":"sideways"}]}"#)
            .is_err()
    );
}
