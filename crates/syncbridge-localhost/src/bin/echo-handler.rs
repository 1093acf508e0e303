//! TEST-ONLY custom handler used by this crate's integration tests to run real
//! processes under the local host. Not part of the product.
//!
//! Listens on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` and:
//! - `POST /<FunctionName>` (an invocation): appends one JSON line
//!   `{"function", "invocation_id", "request": <envelope>}` to
//!   `$ECHO_RECORD_DIR/<FunctionName>.jsonl`, then answers
//!   `$ECHO_RESPONSE_<FunctionName>` (a full `{Outputs, Logs, ReturnValue}` body) or an
//!   empty success — or HTTP 500 when the name is listed in `$ECHO_FAIL` (comma list);
//! - any `/api/...` request (proxied HTTP): answers 200 with the exact request body
//!   bytes echoed back and `x-echo-sha256`, `x-echo-method`, `x-echo-uri` headers, and
//!   records `{"proxied": true, "uri", "sha256", "len"}` to `proxied.jsonl`;
//! - exits with status 3 at once when `$ECHO_EXIT_AT_START` is set (restart tests);
//! - holds each invocation `$ECHO_DELAY_MS` milliseconds and records how many
//!   invocations were in flight when it arrived (`"in_flight"`, concurrency tests).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use syncbridge_env::{Env as _, ProcessEnv};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if ProcessEnv.var_os("ECHO_EXIT_AT_START").is_some() {
        eprintln!("echo-handler: exiting at start as asked");
        std::process::exit(3);
    }
    let addr = syncbridge_protocol::listen_addr_from(|n| ProcessEnv.var(n)).unwrap_or_else(|e| {
        eprintln!("echo-handler: {e}");
        std::process::exit(2);
    });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind handler port");
    println!("echo-handler listening on {addr}");
    let app = axum::Router::new().fallback(handle);
    axum::serve(listener, app).await.expect("serve");
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn record(file: &str, line: serde_json::Value) {
    let Some(dir) = ProcessEnv.var_os("ECHO_RECORD_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(file);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open record file");
    writeln!(f, "{line}").expect("write record");
}

async fn handle(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path == "/" {
        return (StatusCode::OK, "echo-handler").into_response();
    }
    if path.starts_with("/api/") {
        let sha = hex::encode(sha2::Sha256::digest(&body));
        record(
            "proxied.jsonl",
            serde_json::json!({"proxied": true, "uri": uri.to_string(), "sha256": sha, "len": body.len(),
                "method": method.as_str(),
                "content_type": headers.get("content-type").and_then(|v| v.to_str().ok())}),
        );
        return (
            StatusCode::OK,
            [
                ("x-echo-sha256", sha),
                ("x-echo-method", method.to_string()),
                ("x-echo-uri", uri.to_string()),
                ("content-type", "application/octet-stream".to_string()),
            ],
            body,
        )
            .into_response();
    }
    let function = path.trim_start_matches('/').to_string();
    let invocation_id = headers
        .get(syncbridge_protocol::INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let request: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let in_flight = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    record(
        &format!("{function}.jsonl"),
        serde_json::json!({"function": function, "invocation_id": invocation_id,
                           "in_flight": in_flight, "request": request}),
    );
    let delay: u64 = ProcessEnv
        .var("ECHO_DELAY_MS")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    let fail = ProcessEnv.var("ECHO_FAIL").unwrap_or_default();
    if fail.split(',').any(|f| f == function) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "echo-handler: failing as asked",
        )
            .into_response();
    }
    let response = ProcessEnv
        .var(&format!("ECHO_RESPONSE_{function}"))
        .map_or_else(
            || {
                syncbridge_protocol::InvocationResponse::new()
                    .log("echo-handler handled it")
                    .to_vec()
            },
            String::into_bytes,
        );
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        response,
    )
        .into_response()
}
