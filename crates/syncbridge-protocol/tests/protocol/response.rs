//! Response serialization (§5) and the host-side response parser.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use syncbridge_protocol::{
    HttpOutput, InvocationResponse, ResponseParseError, parse_invocation_response,
};

/// Proves the wire shape has exactly the keys `Outputs`, `Logs`, `ReturnValue` (§5).
#[test]
fn response_has_exact_top_level_keys() {
    let resp = InvocationResponse::new()
        .log("line 1")
        .output("out", json!([{"jobId": "1"}, {"jobId": "2"}]));
    let v: Value = serde_json::from_slice(&resp.to_vec()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["Logs", "Outputs", "ReturnValue"]);
    assert_eq!(
        v,
        json!({"Outputs": {"out": [{"jobId": "1"}, {"jobId": "2"}]}, "Logs": ["line 1"], "ReturnValue": null})
    );
}

/// Proves `http_response` puts the client status in `Outputs.res.statusCode` with object body (§11.6).
#[test]
fn http_response_builds_res_output() {
    let resp = InvocationResponse::new().http_response(
        "res",
        StatusCode::ACCEPTED,
        [("Content-Type", "application/json")],
        json!({"status": "queued"}),
    );
    assert_eq!(
        resp.outputs["res"],
        json!({"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": {"status": "queued"}})
    );
    assert!(resp.logs.is_empty());
}

/// Proves the axum response to the host is 200 application/json even when the client gets 500.
#[tokio::test]
async fn into_response_is_always_200_json() {
    let resp = InvocationResponse::new()
        .http_response(
            "res",
            StatusCode::INTERNAL_SERVER_ERROR,
            [("a", "b")],
            json!({"error": "x"}),
        )
        .into_response();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let parsed = parse_invocation_response(&body).unwrap();
    let out = parsed.http_output_of("res").unwrap().unwrap();
    assert_eq!(out.status_code, 500);
}

/// Proves bare base64-looking strings in outputs get a §5 warning, objects do not.
#[test]
fn bare_token_outputs_are_flagged() {
    let resp = InvocationResponse::new().output("out", "abcd1234");
    assert_eq!(resp.logs.len(), 1);
    assert!(resp.logs[0].contains("§5"));
    let resp = InvocationResponse::new()
        .output("out", json!({"token": "abcd1234"}))
        .http_response("res", StatusCode::OK, [("x", "y")], "abcd1234");
    assert_eq!(resp.logs.len(), 1, "{:?}", resp.logs);
}

/// Proves `quarantined` is a 2xx success that says why, so the host completes poison messages.
#[test]
fn quarantined_response_is_success_with_reason() {
    let resp = InvocationResponse::quarantined("body is not JSON");
    assert!(resp.is_quarantined());
    assert!(resp.logs[0].contains("body is not JSON"));
    assert!(resp.outputs.is_empty());
    assert_eq!(resp.clone().into_response().status(), StatusCode::OK);
    assert!(!InvocationResponse::new().is_quarantined());
}

/// Proves the host-side parser accepts statusCode as string or number, any key case, and
/// missing members (§5).
#[test]
fn parse_response_leniently() {
    let parsed = parse_invocation_response(
        br#"{"Outputs":{"res":{"statusCode":"202","body":"queued","headers":{"Content-Type":"text/plain"}}},
            "Logs":["line 1", 2],"ReturnValue":null}"#,
    )
    .unwrap();
    let res = parsed.http_output_of("res").unwrap().unwrap();
    assert_eq!(res.status_code, 202);
    assert_eq!(res.headers["Content-Type"], "text/plain");
    assert_eq!(res.body_bytes(), b"queued");
    assert_eq!(parsed.logs, ["line 1", "2"]);

    let parsed =
        parse_invocation_response(br#"{"outputs":{"res":{"status":404}},"returnValue":{"a":1}}"#)
            .unwrap();
    assert_eq!(
        parsed.http_output_of("res").unwrap().unwrap().status_code,
        404
    );
    assert_eq!(parsed.return_value, json!({"a": 1}));
    assert!(parsed.logs.is_empty());

    assert_eq!(
        parse_invocation_response(b"{}").unwrap(),
        InvocationResponse::new()
    );
}

/// Proves unparsable responses (which fail the invocation, §5) give precise errors.
#[test]
fn parse_response_errors() {
    assert!(matches!(
        parse_invocation_response(b"ok"),
        Err(ResponseParseError::NotJson(_))
    ));
    assert!(matches!(
        parse_invocation_response(b"[]"),
        Err(ResponseParseError::NotAnObject("array"))
    ));
    assert!(matches!(
        parse_invocation_response(br#"{"Logs":"x"}"#),
        Err(ResponseParseError::Field { field: "Logs", .. })
    ));
    assert!(HttpOutput::from_value(&json!({"statusCode": "teapot"})).is_err());
    assert!(HttpOutput::from_value(&json!({"statusCode": 70000})).is_err());
    assert_eq!(HttpOutput::from_value(&json!({})).unwrap().status_code, 200);
}

/// Proves our own serialization round-trips through the host-side parser.
#[test]
fn serialize_then_parse_round_trip() {
    let resp = InvocationResponse::new()
        .log("a")
        .output("out", json!({"jobId": "1"}))
        .http_response(
            "res",
            StatusCode::CREATED,
            [("Location", "/x")],
            json!({"id": 1}),
        )
        .return_value(json!({"done": true}));
    assert_eq!(parse_invocation_response(&resp.to_vec()).unwrap(), resp);
}
