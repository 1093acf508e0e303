//! Serving a handler router the way the Functions host expects.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use syncbridge_core::heartbeat::{Heartbeat, Outcome};
use tokio::net::TcpListener;

use crate::settings::{ExitWithHost, ServerLimits, Settings};
use crate::state::AppState;

/// Serves `app` on `listener` within `limits` (header and body read
/// timeouts, a bound on open connections, answers to half-closed clients:
/// [`syncbridge_protocol::server`]) until `shutdown` resolves, finishing
/// in-flight invocations first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    syncbridge_protocol::server::serve(listener, app, limits, shutdown).await
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

/// With [`ExitWithHost::StdinEof`], ends the process when stdin reaches
/// end-of-file, i.e. when the host that holds the pipe's other end is gone.
/// The exit is immediate, like a crash the pipeline is built to survive:
/// finishing in-flight invocations would only race the new host's
/// redelivery of the same messages.
fn watch_host(mode: ExitWithHost) {
    if mode != ExitWithHost::StdinEof {
        return;
    }
    std::thread::spawn(|| {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        // No log line: stdout and stderr are pipes to the dead host, and a
        // write that fails there may panic this thread before it exits.
        std::process::exit(0);
    });
}

/// What a handler binary serves: `router(state)` with every request in an
/// invocation span for function `name` ([`crate::telemetry::instrument`]),
/// and its outcome recorded in the function's heartbeat ([`heartbeat`]).
pub fn app(name: &'static str, router: fn(AppState) -> Router, state: AppState) -> Router {
    let beat = Arc::new(Heartbeat::new(
        state.store.clone(),
        state.clock.clone(),
        name,
        syncbridge_core::heartbeat::DEFAULT_INTERVAL,
    ));
    heartbeat(crate::telemetry::instrument(router(state), name), beat)
}

/// Records every invocation's outcome in `beat` (requests a route matched;
/// not the host's readiness probe): a 5xx answer is a failure
/// (its class from the handler's [`crate::error::FailureKind`], else
/// `http <status>`), anything else a success (a refused webhook or API call
/// is the caller's failure, not the function's).
pub fn heartbeat(router: Router, beat: Arc<Heartbeat>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let beat = beat.clone();
            async move {
                // Only invocations count: a request no route matched (the
                // host's readiness probe, `GET /`) is not one.
                if req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .is_none()
                {
                    return next.run(req).await;
                }
                let response = next.run(req).await;
                let status = response.status();
                let outcome = if status.is_server_error() {
                    let kind = response
                        .extensions()
                        .get::<crate::error::FailureKind>()
                        .map_or_else(|| format!("http {}", status.as_u16()), |k| k.0.to_owned());
                    Outcome::Failure { kind }
                } else {
                    Outcome::Success
                };
                beat.record(outcome).await;
                response
            }
        },
    ))
}

/// The whole life of a handler binary: tracing, settings, bind
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (first, so the host sees it
/// listening as early as possible), build state, serve.
pub async fn run_function(
    name: &'static str,
    router: fn(AppState) -> axum::Router,
) -> anyhow::Result<()> {
    let log_format = crate::telemetry::init(&crate::settings::LogSettings::from_env())?;
    let addr = crate::settings::listen_addr_from_env()?;
    let listener = TcpListener::bind(addr).await?;
    let settings = Settings::from_env()?;
    watch_host(settings.exit_with_host);
    let state = AppState::from_settings(settings).await?;
    tracing::info!(function = name, %addr, log_format = ?log_format, "custom handler listening");
    if let Some(n) = state.notify.clone() {
        tokio::spawn(async move { n.run(std::future::pending::<()>()).await });
    }
    let limits = state.settings.http;
    serve(
        listener,
        app(name, router, state),
        limits,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}
