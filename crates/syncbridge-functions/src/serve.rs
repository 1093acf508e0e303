//! Serving a handler router the way the Functions host expects.

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

use crate::settings::Settings;
use crate::state::AppState;

/// Serves `app` on `listener` until `shutdown` resolves, finishing in-flight
/// invocations first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// What a handler binary serves: `router(state)` with every request in an
/// invocation span for function `name` ([`crate::telemetry::instrument`]).
pub fn app(name: &'static str, router: fn(AppState) -> Router, state: AppState) -> Router {
    crate::telemetry::instrument(router(state), name)
}

/// The whole life of a handler binary: tracing, settings, bind
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (first, so the host sees it
/// listening as early as possible), build state, serve.
pub async fn run_function(
    name: &'static str,
    router: fn(AppState) -> axum::Router,
) -> anyhow::Result<()> {
    let log_format = crate::telemetry::init()?;
    let addr = syncbridge_protocol::listen_addr_from_env()?;
    let listener = TcpListener::bind(addr).await?;
    let settings = Settings::from_env()?;
    let state = AppState::from_settings(settings).await?;
    tracing::info!(function = name, %addr, log_format = ?log_format, "custom handler listening");
    if let Some(n) = state.notify.clone() {
        tokio::spawn(async move { n.run(std::future::pending::<()>()).await });
    }
    serve(listener, app(name, router, state), shutdown_signal()).await?;
    Ok(())
}
