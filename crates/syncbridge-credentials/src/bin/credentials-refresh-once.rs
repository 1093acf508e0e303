//! Test helper: opens a data directory's SQLite store (`state.db`) and key
//! file (`keys.json`) and refreshes one connection's OAuth token once, the
//! way a separate Functions instance would. Used by the multi-process and
//! kill -9 tests.
//!
//! ```text
//! credentials-refresh-once --data-dir DIR --connection ID
//!     [--if-version N]      refresh unless the stored version moved past N
//!                           (default: the version read at start)
//!     [--start-at-ms T]     sleep until this Unix time (ms) first, so many
//!                           processes start the race together
//!     [--lease-ms N] [--http-timeout-ms N] [--lock-wait-ms N]
//! ```
//!
//! Environment: `SYNCBRIDGE_OAUTH_<PROVIDER>_CLIENT_ID` / `_CLIENT_SECRET`
//! (see `syncbridge_credentials::client`); `SYNCBRIDGE_CONNECTORS_DIR` for
//! connector definitions beside the built-ins, as the handlers load them;
//! `SYNCBRIDGE_CREDENTIALS_PAUSE=<phase>:<ms>` pauses at `before_request` or
//! `token_received` (the crash window) so a test can kill the process there;
//! `RUST_LOG` for stderr logs.
//!
//! Stdout: `phase <name>` lines as they happen, `event <json>` for raised
//! events, then one JSON line `{"outcome", "version", "token_sha256",
//! "counters"}` (the token itself is never printed). Exit code: 0 ok,
//! 2 needs_reauth, 3 transient, 4 permanent, 1 usage.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::credentials::CredentialError;
use syncbridge_core::events::{Event, EventSink};
use syncbridge_core::{Clock, ConnectionId, Store, SystemClock};
use syncbridge_credentials::{
    ClientRegistry, CredentialManager, RefreshConfig, RefreshPhase, RefreshTrigger, Sealer,
};
use syncbridge_env::{Env as _, ProcessEnv};
use syncbridge_sqlite::SqliteStore;

#[derive(Debug)]
struct PrintEvents;

#[async_trait::async_trait]
impl EventSink for PrintEvents {
    async fn emit(&self, event: Event) {
        let line = format!(
            "event {}\n",
            serde_json::to_string(&event).unwrap_or_default()
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

struct Args {
    data_dir: std::path::PathBuf,
    connection: ConnectionId,
    if_version: Option<i64>,
    start_at_ms: Option<i64>,
    lease_ms: Option<u64>,
    http_timeout_ms: Option<u64>,
    lock_wait_ms: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut data_dir, mut connection) = (None, None);
    let mut a = Args {
        data_dir: Default::default(),
        connection: ConnectionId::parse("x").expect("valid"),
        if_version: None,
        start_at_ms: None,
        lease_ms: None,
        http_timeout_ms: None,
        lock_wait_ms: None,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--data-dir" => data_dir = Some(val()?),
            "--connection" => connection = Some(val()?),
            "--if-version" => a.if_version = Some(num(val()?)?),
            "--start-at-ms" => a.start_at_ms = Some(num(val()?)?),
            "--lease-ms" => a.lease_ms = Some(num(val()?)? as u64),
            "--http-timeout-ms" => a.http_timeout_ms = Some(num(val()?)? as u64),
            "--lock-wait-ms" => a.lock_wait_ms = Some(num(val()?)? as u64),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.data_dir = data_dir.ok_or("--data-dir is required")?.into();
    a.connection = ConnectionId::parse(connection.ok_or("--connection is required")?)
        .map_err(|e| e.to_string())?;
    Ok(a)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn pause_from_env() -> Option<(RefreshPhase, Duration)> {
    let v = ProcessEnv.var("SYNCBRIDGE_CREDENTIALS_PAUSE")?;
    let (phase, ms) = v.split_once(':')?;
    let phase = match phase {
        "before_request" => RefreshPhase::BeforeRequest,
        "token_received" => RefreshPhase::TokenReceived,
        _ => return None,
    };
    Some((phase, Duration::from_millis(ms.parse().ok()?)))
}

fn phase_name(p: RefreshPhase) -> &'static str {
    match p {
        RefreshPhase::BeforeRequest => "before_request",
        RefreshPhase::TokenReceived => "token_received",
        RefreshPhase::Saved => "saved",
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            ProcessEnv
                .var("RUST_LOG")
                .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
                .unwrap_or_else(|| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("credentials-refresh-once: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("credentials-refresh-once: {e}");
        ExitCode::from(code)
    };
    let store = match SqliteStore::open_in(&args.data_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(4, &e),
    };
    let sealer = match Sealer::local(&args.data_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(4, &e),
    };
    // The same definitions as the handlers: a custom connector, or a
    // built-in replaced with another `token_url`, is refreshed as they would.
    let dir = ProcessEnv
        .var_os("SYNCBRIDGE_CONNECTORS_DIR")
        .filter(|d| !d.is_empty());
    let connectors = match Registry::load(dir.as_deref().map(std::path::Path::new)) {
        Ok(r) => r,
        Err(e) => return fail(4, &e),
    };
    let clients = match ClientRegistry::from_lookup(connectors.names(), |k| ProcessEnv.var(k)) {
        Ok(c) => c,
        Err(e) => return fail(4, &e),
    };
    let mut cfg = RefreshConfig::default();
    if let Some(ms) = args.http_timeout_ms {
        cfg.http_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = args.lease_ms {
        cfg.lock_lease = Duration::from_millis(ms);
    }
    if let Some(ms) = args.lock_wait_ms {
        cfg.lock_wait = Duration::from_millis(ms);
    }
    let pause = pause_from_env();
    cfg.phase_hook = Some(Arc::new(move |_, phase| {
        say(&format!("phase {}", phase_name(phase)));
        pause.filter(|(p, _)| *p == phase).map(|(_, d)| d)
    }));
    let m = match CredentialManager::builder(store.clone(), sealer, clients)
        .connectors(connectors.clone())
        .events(Arc::new(PrintEvents))
        .config(cfg)
        .build()
    {
        Ok(m) => m,
        Err(e) => return fail(4, &e),
    };
    let conn = match store.get_connection(&args.connection).await {
        Ok(Some(c)) => c,
        Ok(None) => return fail(4, &format!("unknown connection {}", args.connection)),
        Err(e) => return fail(3, &e),
    };
    let Some(def) = connectors.get(&conn.provider) else {
        return fail(4, &format!("unknown connector {}", conn.provider));
    };
    let version = match args.if_version {
        Some(v) => v,
        None => match store.get_credential(&conn.id).await {
            Ok(Some(c)) => c.version,
            Ok(None) => return fail(4, &"no credential"),
            Err(e) => return fail(3, &e),
        },
    };
    if let Some(at) = args.start_at_ms {
        let wait = at - SystemClock.now().as_millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
    let result = m
        .refresh(&conn, &def, RefreshTrigger::StaleVersion(version))
        .await;
    let counters = m.counters();
    let (outcome, code, version, hash) = match &result {
        Ok(o) => (
            if o.performed { "refreshed" } else { "adopted" },
            0,
            Some(o.version),
            Some(hex::encode(
                &Sha256::digest(o.access_token.expose().as_bytes())[..16],
            )),
        ),
        Err(CredentialError::NeedsReauth) => ("needs_reauth", 2, None, None),
        Err(CredentialError::Transient(_)) => ("transient", 3, None, None),
        Err(CredentialError::Permanent(_)) => ("permanent", 4, None, None),
    };
    if let Err(e) = &result {
        eprintln!("credentials-refresh-once: {e}");
    }
    say(&serde_json::json!({
        "outcome": outcome,
        "version": version,
        "token_sha256": hash,
        "counters": counters,
    })
    .to_string());
    ExitCode::from(code)
}
