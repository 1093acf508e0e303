//! The `WebhookReceiver` custom handler. Run by the Functions host (or `syncbridge up`)
//! with `FUNCTIONS_CUSTOMHANDLER_PORT` set.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncbridge_functions::run_function(
        syncbridge_functions::webhook::FUNCTION,
        syncbridge_functions::webhook::router,
    )
    .await
}
