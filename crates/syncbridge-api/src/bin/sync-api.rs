//! The `SyncApi` custom handler (the product API). Run by the Functions host
//! (or `syncbridge up`) with `FUNCTIONS_CUSTOMHANDLER_PORT` set.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    syncbridge_functions::run_function(syncbridge_api::FUNCTION, syncbridge_api::router).await
}
