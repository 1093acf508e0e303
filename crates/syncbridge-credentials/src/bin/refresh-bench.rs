//! Benchmark: one TokenRefresher sweep over N connections that are all due
//! for refresh, against the sandbox's real token endpoint (in-process, on
//! loopback), with a real SQLite store and key file in a temporary
//! directory, bounded by the in-process rate limiter (an app-wide GCRA
//! level for the `sandbox` provider). Prints the provider's token-request
//! count (must equal N) and refreshes per second; exits non-zero otherwise.
//!
//! ```text
//! cargo run --release -p syncbridge-credentials --bin refresh-bench -- \
//!     [--connections 10000] [--rate 2000] [--concurrency 16] [--jitter-ms 0] [--json]
//! ```
//!
//! `--rate 0` removes the limiter (concurrency is then the only bound).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use syncbridge_core::model::{Connection, ConnectionStatus};
use syncbridge_core::{
    Clock, ConnectionId, RateLimiter, SecretString, Store, SystemClock, TenantId,
};
use syncbridge_credentials::{
    ClientRegistry, CredentialDoc, CredentialManager, OAuthClient, RefreshConfig, Sealer,
};
use syncbridge_env::{Env as _, ProcessEnv};
use syncbridge_ratelimit::{InProcessLimiter, LimitLevel, LimitsConfig, ProviderLimits, Scope};
use syncbridge_sandbox::SandboxConfig;
use syncbridge_sqlite::SqliteStore;

struct Args {
    connections: usize,
    rate: u64,
    concurrency: usize,
    jitter_ms: u64,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        connections: 10_000,
        rate: 2_000,
        concurrency: 16,
        jitter_ms: 0,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut num = || -> Result<u64, String> {
            it.next()
                .ok_or(format!("{f} needs a value"))?
                .parse()
                .map_err(|e| format!("{f}: {e}"))
        };
        match f.as_str() {
            "--connections" => a.connections = num()? as usize,
            "--rate" => a.rate = num()?,
            "--concurrency" => a.concurrency = num()? as usize,
            "--jitter-ms" => a.jitter_ms = num()?,
            "--json" => a.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("refresh-bench: {e}");
            return ExitCode::from(1);
        }
    };
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("refresh-bench: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(a: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("refresh-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sandbox = syncbridge_sandbox::spawn(SandboxConfig {
        records_per_object: 1,
        token_ttl: Duration::from_secs(1800),
        ..SandboxConfig::default()
    })
    .await?;
    let scfg = sandbox.sandbox().config();
    let store = Arc::new(SqliteStore::open_in(&dir)?);
    let sealer = Arc::new(Sealer::local(&dir)?);
    let clients = ClientRegistry::new().with(OAuthClient::new(
        "sandbox",
        scfg.client_id.clone(),
        SecretString::new(scfg.client_secret.clone()),
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = RefreshConfig {
        sweep_concurrency: a.concurrency,
        sweep_jitter: Duration::from_millis(a.jitter_ms),
        limiter_wait: Duration::from_secs(60),
        ..RefreshConfig::default()
    };
    let mut builder = CredentialManager::builder(store.clone(), sealer, clients)
        .clock(clock.clone())
        .config(config);
    if a.rate > 0 {
        let limits = LimitsConfig::default().with_provider(
            "sandbox",
            ProviderLimits::new(vec![
                LimitLevel::new("app", a.rate, Duration::from_secs(1), Scope::App)
                    .with_burst(a.concurrency as u64),
            ]),
        );
        let limiter: Arc<dyn RateLimiter> =
            Arc::new(InProcessLimiter::new(&limits, clock.clone())?);
        builder = builder.rate_limiter(limiter);
    }
    let m = builder.build()?;

    // N connections whose 30-minute tokens have one minute left (margin 5 min).
    let seed_start = Instant::now();
    let now = clock.now();
    seed(&store, &m, &sandbox, a.connections, now).await?;
    let seed_secs = seed_start.elapsed().as_secs_f64();

    let before = sandbox.stats().token_requests;
    let started = Instant::now();
    let report = m.sweep(clock.now(), a.connections).await?;
    let secs = started.elapsed().as_secs_f64();
    let provider_calls = sandbox.stats().token_requests - before;
    let counters = m.counters();
    // A second sweep finds nothing due.
    let again = m.sweep(clock.now(), a.connections).await?;
    let ok = provider_calls == a.connections as u64
        && report.refreshed == a.connections
        && report.failed == 0
        && again.checked == 0;
    let per_sec = report.refreshed as f64 / secs;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "connections": a.connections,
                "rate_limit_per_sec": a.rate,
                "concurrency": a.concurrency,
                "jitter_ms": a.jitter_ms,
                "provider_token_calls": provider_calls,
                "report": report,
                "counters": counters,
                "sweep_secs": secs,
                "refreshes_per_sec": per_sec,
                "seed_secs": seed_secs,
                "second_sweep_checked": again.checked,
                "ok": ok,
            })
        );
    } else {
        println!("connections due:        {}", a.connections);
        println!(
            "rate limit:             {}",
            if a.rate > 0 {
                format!("{}/s app-wide (burst {})", a.rate, a.concurrency)
            } else {
                "none".into()
            }
        );
        println!(
            "concurrency / jitter:   {} / {} ms",
            a.concurrency, a.jitter_ms
        );
        println!("provider token calls:   {provider_calls}");
        println!(
            "sweep report:           checked {} refreshed {} skipped {} failed {} needs_reauth {}",
            report.checked, report.refreshed, report.skipped, report.failed, report.needs_reauth
        );
        println!("sweep time:             {secs:.2} s");
        println!("refreshes/s:            {per_sec:.0}");
        println!("second sweep checked:   {}", again.checked);
        println!("(seeding took {seed_secs:.1} s)");
        println!("{}", if ok { "OK" } else { "MISMATCH" });
    }
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}

/// `n` connections whose 30-minute tokens, issued at `now` minus 29
/// minutes, have one minute left (margin 5 min).
async fn seed(
    store: &SqliteStore,
    m: &CredentialManager,
    sandbox: &syncbridge_sandbox::SandboxHandle,
    n: usize,
    now: syncbridge_core::Timestamp,
) -> Result<(), Box<dyn std::error::Error>> {
    let tenant = TenantId::parse("bench")?;
    for i in 0..n {
        let id = ConnectionId::parse(format!("bench-{i:05}"))?;
        store
            .put_connection(&Connection {
                id: id.clone(),
                tenant: tenant.clone(),
                provider: "sandbox".into(),
                status: ConnectionStatus::Active,
                base_url: Some(sandbox.base_url()),
                webhook: None,
                settings: BTreeMap::new(),
                conflicts: Default::default(),
                created_at: now,
            })
            .await?;
        let pair = sandbox.sandbox().issue_tokens();
        let doc = CredentialDoc::oauth2(
            SecretString::new(pair.access_token),
            Some(SecretString::new(pair.refresh_token)),
            Some(Duration::from_secs(1800)),
            now.sub(Duration::from_secs(29 * 60)),
        );
        m.store_initial(&id, doc).await?;
    }
    Ok(())
}
