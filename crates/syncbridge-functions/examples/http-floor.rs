//! The HTTP floor of the webhook benchmark (`scripts/bench-webhook`): the same
//! axum/hyper stack, runtime and route as the `webhook-receiver`, answering
//! every `POST /api/webhooks/{connectionId}` with the receiver's 202 body after
//! reading the request body, and doing nothing else (no verification, no store,
//! no queue). What it reaches under the same wrk script is the most any
//! receiver built on this stack could reach on the machine; the gap between it
//! and the `webhook-receiver` is the cost of the receiver's own work.
//!
//! ```sh
//! cargo build --release -p syncbridge-functions --example http-floor
//! FUNCTIONS_CUSTOMHANDLER_PORT=18082 target/release/examples/http-floor
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

async fn accept(body: Bytes) -> impl IntoResponse {
    // Keep the body alive until here, like a receiver that hashes it.
    let _ = std::hint::black_box(body.len());
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"jobs":1,"status":"accepted"}"#,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = syncbridge_functions::settings::listen_addr_from_env()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route("/api/webhooks/{connection_id}", post(accept));
    let limits = syncbridge_functions::settings::ServerLimits::DEFAULT;
    syncbridge_functions::serve(listener, app, limits, std::future::pending()).await?;
    Ok(())
}
