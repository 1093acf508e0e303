//! `syncbridge-sandbox`: a CRM-like REST provider shaped like HubSpot's CRM v3
//! API, which the sync engine syncs against in the demo, the tests and the
//! benchmarks, and which users can run to try the system.
//!
//! It serves seeded, deterministic `contacts`, `companies` and `deals`
//! (same seed ⇒ identical data), with the behaviours that make real
//! providers hard: OAuth access tokens that expire and refresh tokens that
//! rotate and are single-use, an app-wide rate limit with HubSpot's headers,
//! injected 5xx / latency / dropped connections / truncated bodies, and
//! signed (Standard Webhooks) change notifications.
//!
//! # Layout
//!
//! - `sandbox`: [`Sandbox`], the shared state behind every route (config,
//!   data, tokens, limiter, fault sequence, stats, webhook emitter).
//! - [`config`]: [`SandboxConfig`] (start-up and runtime settings) and [`ConfigPatch`].
//! - [`store`]: the in-memory tables with `(updatedAt, id)` and id indexes; paging by keyset cursor.
//! - [`seed`]: the deterministic record generator.
//! - [`clock`]: ISO-8601 text and the strictly increasing mutation clock.
//! - [`oauth`]: token issue / refresh / revoke bookkeeping.
//! - [`consent`]: the authorization endpoint's rules: registered redirect
//!   URIs, consent requests awaiting Approve / Deny, single-use codes bound
//!   to client, redirect URI and PKCE challenge (S256).
//! - [`limits`], [`faults`]: the rate limiter and the seeded fault sequence.
//! - [`webhooks`]: event batching, signing (via `syncbridge-signatures`) and delivery.
//! - [`stats`]: the `/_sandbox/stats` counters.
//! - `http`: every route (the only module that knows axum); [`app`] builds the router.
//! - [`cli`]: the `syncbridge-sandbox` binary's flags.
//! - [`browser`]: a headless stand-in for a customer's browser in a connect
//!   flow (redirects one by one, cookies carried), for the demo and the tests.
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /crm/v3/objects/{object}` | list: `limit`, `after`, `archived`, `properties`, `updatedAfter` |
//! | `POST /crm/v3/objects/{object}/search` | HubSpot search body (filterGroups, sorts, limit, after); like HubSpot's, one search reaches at most 10,000 results (a page past them is refused with 400) |
//! | `GET/PATCH/DELETE /crm/v3/objects/{object}/{id}` | read / update / archive |
//! | `POST /crm/v3/objects/{object}` | create (`Idempotency-Key` honoured on POST and PATCH) |
//! | `GET /oauth/authorize` | the consent page (Approve / Deny), or an immediate code with `--oauth-auto-approve` |
//! | `POST /oauth/authorize` | the consent page's decision → redirect with `code` or `error=access_denied` |
//! | `POST /oauth/v1/token` | `authorization_code` (single-use codes, PKCE S256) and rotating `refresh_token` grants |
//! | `GET /_sandbox/stats`, `POST /_sandbox/mutate`, `POST /_sandbox/reset` | admin |
//! | `GET/POST /_sandbox/config`, `GET /_sandbox/records/{object}` | admin |
//! | `POST /_sandbox/revoke`, `POST /_sandbox/tokens` | admin: token revocation / minting |
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = syncbridge_sandbox::spawn(Default::default()).await?;
//! let tokens = sandbox.sandbox().issue_tokens();
//! let url = format!("{}/crm/v3/objects/contacts?limit=100", sandbox.base_url());
//! // GET `url` with `Authorization: Bearer {tokens.access_token}` ...
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod browser;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod faults;
mod http;
pub mod limits;
pub mod oauth;
mod sandbox;
pub mod seed;
pub mod stats;
pub mod store;
pub mod webhooks;

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{ConfigError, ConfigPatch, FaultConfig, RateLimit, SandboxConfig, WebhookConfig};
pub use http::app;
pub use oauth::TokenPair;
pub use sandbox::Sandbox;
pub use stats::StatsSnapshot;
pub use store::ObjectKind;
pub use webhooks::WebhookEvent;

/// A sandbox serving on a local port. Dropping it stops the server (without
/// waiting); [`shutdown`](Self::shutdown) stops it and waits.
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    sandbox: Sandbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SandboxHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (stats, token minting, mutations, config).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Shortcut for `self.sandbox().stats()`.
    pub fn stats(&self) -> StatsSnapshot {
        self.sandbox.stats()
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the server stops (it only stops through `shutdown`/drop
    /// of another handle, or an I/O error).
    ///
    /// # Errors
    /// The accept loop failed.
    pub async fn wait(mut self) -> io::Result<()> {
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Seeds a sandbox from `config` and serves it on `127.0.0.1:0`.
///
/// # Errors
/// The configuration is invalid (`InvalidInput`) or the port cannot be bound.
pub async fn spawn(config: SandboxConfig) -> io::Result<SandboxHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let sandbox = tokio::task::spawn_blocking(move || Sandbox::new(config))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    serve(listener, sandbox)
}

/// Serves `sandbox` on an already bound listener (the binary binds its own host/port).
///
/// # Errors
/// The listener has no local address.
pub fn serve(listener: TcpListener, sandbox: Sandbox) -> io::Result<SandboxHandle> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(sandbox.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(SandboxHandle {
        addr,
        sandbox,
        stop: Some(stop),
        task: Some(task),
    })
}
