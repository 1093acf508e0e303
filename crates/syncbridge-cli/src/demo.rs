//! `syncbridge demo`: the product's main job, end to end on one machine.
//!
//! Starts the bundled sandbox CRM, registers a tenant's connection to it,
//! starts the five real handler binaries under the local Functions host, and
//! drives two passes through timer → queue → worker → store:
//!
//! 1. the initial sync of every object;
//! 2. after the sandbox changes 1% of the contacts and deletes 10, an
//!    incremental sync that updates and deletes exactly those;
//! 3. a round trip: local changes (an update, a create, and edits that
//!    conflict with edits made meanwhile in the sandbox) pushed through the
//!    outbound worker, conflicts resolved by the connection's policies
//!    (`latest` for contacts, `manual` for their phone), then a pull that
//!    brings a remote change in and finds our own writes unchanged.
//!
//! Progress is printed while records arrive; a summary (or `--json`) at the
//! end, which compares the store with the sandbox record by record: the same
//! ids, each with the content the connector maps from the sandbox's (its
//! hash), as the end-to-end tests do. A record a parked conflict holds keeps
//! our side until a person resolves it, so it is compared by id only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use syncbridge_core::connector::extract::extract_page;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::model::{Priority, RunCounts, RunStatus};
use syncbridge_core::{Clock, ConnectionId, ObjectType, Store, SystemClock, Timestamp};
use syncbridge_sqlite::SqliteStore;

use crate::connections::{AddArgs, build};

/// `demo` arguments.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Records the sandbox seeds per object (contacts, companies, deals).
    #[arg(long, default_value_t = 20_000)]
    pub records: usize,
    /// Print the summary as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Give up if a pass takes longer than this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Access-token lifetime the sandbox issues, in seconds (short, so the
    /// demo shows token refresh with rotating refresh tokens).
    #[arg(long, default_value_t = 3)]
    pub token_ttl_secs: u64,
    /// Make the sandbox enforce a rate limit (e.g. `100/10s`, 429 + Retry-After
    /// beyond it) and give the connector the matching limit, so the run stays
    /// under it.
    #[arg(long)]
    pub sandbox_rate_limit: Option<String>,
}

/// One pass of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct PassSummary {
    /// What the pass was.
    pub name: String,
    /// Wall time of the pass.
    pub seconds: f64,
    /// Totals over every object's run.
    pub counts: RunCounts,
    /// Records fetched per second.
    pub records_per_sec: f64,
    /// Per object: run status and counts.
    pub objects: BTreeMap<String, ObjectPass>,
}

/// One object's run in a pass.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectPass {
    /// Run outcome.
    pub status: String,
    /// Counts.
    pub counts: RunCounts,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The demo's totals over every pass (the top level of `--json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DemoTotals {
    /// Records fetched from the provider, every pass and object.
    pub records_fetched: u64,
    /// Records new to the store.
    pub created: u64,
    /// Records whose content changed.
    pub updated: u64,
    /// Records whose content hash was unchanged (nothing written).
    pub unchanged: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Wall time of the whole demo, from start to summary, in milliseconds.
    pub elapsed_ms: u64,
}

/// Sums the passes' counts. Pure.
pub fn totals(passes: &[PassSummary], elapsed: Duration) -> DemoTotals {
    let mut c = RunCounts::default();
    for p in passes {
        c.add(&p.counts);
    }
    DemoTotals {
        records_fetched: c.fetched,
        created: c.created,
        updated: c.updated,
        unchanged: c.unchanged,
        deleted: c.deleted,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The demo's result.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Totals over every pass, flattened into the top level.
    #[serde(flatten)]
    pub totals: DemoTotals,
    /// Sandbox URL used.
    pub sandbox: String,
    /// The passes.
    pub passes: Vec<PassSummary>,
    /// Records in the store per object at the end.
    pub store_records: BTreeMap<String, u64>,
    /// Live records in the sandbox per object at the end.
    pub sandbox_records: BTreeMap<String, u64>,
    /// Per object, the first few records where the store differs from the
    /// sandbox (missing, extra, or other content); empty when they agree.
    pub differences: BTreeMap<String, Vec<String>>,
    /// Records held by a local state at the end (a conflict parked for a
    /// person): compared by id only, as they keep our side until resolved.
    pub held_records: u64,
    /// Whether the store equals the sandbox: the same records, each with the
    /// content the connector maps from the sandbox's (compared by hash).
    pub in_sync: bool,
    /// Provider requests the sandbox saw.
    pub provider_requests: u64,
    /// 429s the sandbox sent.
    pub provider_throttled: u64,
    /// OAuth token refreshes the sandbox's token endpoint served.
    pub tokens_refreshed: u64,
    /// Local changes pushed to the sandbox by the outbound worker.
    pub pushed: u64,
    /// Conflicting fields resolved by policy (audited).
    pub conflicts_resolved: u64,
    /// Conflicting fields parked for a person (`syncbridge changes list`).
    pub conflicts_parked: u64,
}

/// Where progress goes: stdout, or stderr when stdout carries the JSON summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Progress and the summary table on stdout.
    Text,
    /// Progress on stderr, the JSON summary on stdout (`--json`).
    Json,
}

impl Output {
    fn say(self, line: impl AsRef<str>) {
        match self {
            Output::Json => eprintln!("{}", line.as_ref()),
            Output::Text => println!("{}", line.as_ref()),
        }
    }
}

/// What the demo runs against: the sandbox, the store and the connection.
struct Demo<'a> {
    dir: &'a Path,
    out: Output,
    timeout_secs: u64,
    sandbox: &'a syncbridge_sandbox::SandboxHandle,
    base: &'a str,
    store: &'a SqliteStore,
    conn: &'a syncbridge_core::model::Connection,
    tasks: &'a [syncbridge_core::model::SyncTask],
}

/// Runs the demo in `<data_dir>/demo` (wiped first) and returns its summary.
pub async fn run(data_dir: &Path, a: DemoArgs) -> anyhow::Result<DemoSummary> {
    let dir = data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let out = if a.json { Output::Json } else { Output::Text };
    let demo_started = Instant::now();

    // 1. The provider.
    let provider = start_sandbox(&a, out).await?;
    let sandbox = &provider.handle;
    let base = sandbox.base_url();
    // 2. A tenant's connection to it.
    let (store, conn, tasks) = register(&dir, &base, out).await?;
    let demo = Demo {
        dir: &dir,
        out,
        timeout_secs: a.timeout_secs,
        sandbox,
        base: &base,
        store: &store,
        conn: &conn,
        tasks: &tasks,
    };
    // 3. The five handlers under the local host.
    let host = start_host(&dir, &provider, out).await?;
    // 4. The tenant authorizes us through the connect flow.
    if let Err(e) = connect_through_flow(&dir, &provider, &host, &conn, out).await {
        host.shutdown().await;
        return Err(e);
    }
    // 5. The passes and the round trip.
    let mut passes = Vec::new();
    let mut round: Option<RoundTrip> = None;
    let outcome = demo.drive(&host, &a, &mut passes, &mut round).await;
    host.shutdown().await;
    outcome?;
    // 6. What both sides hold.
    let summary = demo.summarize(passes, round, demo_started).await?;
    provider.handle.shutdown().await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    if !summary.in_sync {
        bail!(
            "the store does not match the sandbox: {:?} vs {:?} records; {:?}",
            summary.store_records,
            summary.sandbox_records,
            summary.differences
        );
    }
    Ok(summary)
}

/// The running sandbox and what the handlers need to talk to it.
struct Provider {
    handle: syncbridge_sandbox::SandboxHandle,
    client_id: String,
    client_secret: String,
    rate_limit: Option<syncbridge_sandbox::RateLimit>,
}

/// Starts the sandbox CRM with the demo's records, token lifetime and rate limit.
async fn start_sandbox(a: &DemoArgs, out: Output) -> anyhow::Result<Provider> {
    let rate_limit: Option<syncbridge_sandbox::RateLimit> = a
        .sandbox_rate_limit
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|e| anyhow::anyhow!("--sandbox-rate-limit: {e}"))
        })
        .transpose()?;
    let cfg = syncbridge_sandbox::SandboxConfig {
        records_per_object: a.records,
        auth_enabled: true,
        token_ttl: Duration::from_secs(a.token_ttl_secs.max(1)),
        rate_limit,
        // The demo's browser is a plain HTTP client: consent is given at once.
        oauth_auto_approve: true,
        ..Default::default()
    };
    let (client_id, client_secret) = (cfg.client_id.clone(), cfg.client_secret.clone());
    let handle = syncbridge_sandbox::spawn(cfg)
        .await
        .context("starting the sandbox CRM")?;
    out.say(format!(
        "sandbox CRM      {}  ({} contacts, companies and deals each)",
        handle.base_url(),
        a.records
    ));
    Ok(Provider {
        handle,
        client_id,
        client_secret,
        rate_limit,
    })
}

/// Registers the tenant's connection to the sandbox and its tasks, waiting
/// for authorization (`needs_reauth`): the connect flow brings its tokens.
async fn register(
    dir: &Path,
    base: &str,
    out: Output,
) -> anyhow::Result<(
    SqliteStore,
    syncbridge_core::model::Connection,
    Vec<syncbridge_core::model::SyncTask>,
)> {
    let store = SqliteStore::open_in(dir)?;
    let add = AddArgs {
        tenant: "acme".into(),
        id: "acme-crm".into(),
        provider: "sandbox".into(),
        base_url: Some(base.to_string()),
        objects: vec![],
        interval_secs: 3600,
        webhook_scheme: None,
        webhook_secret: vec![],
        settings: vec![],
        access_token: None,
        refresh_token: None,
        expires_in: None,
        api_key: None,
        replace: false,
        // Conflict policies for the round trip: the later change wins on
        // contacts, except phone numbers, which a person decides.
        conflicts: vec![
            ("contacts".into(), "latest".into()),
            ("contacts.phone".into(), "manual".into()),
        ],
    };
    let (mut conn, tasks, _) = build(add, &Registry::builtin(), SystemClock.now())?;
    // Not authorized yet: its tasks wait for the connect flow.
    conn.status = syncbridge_core::model::ConnectionStatus::NeedsReauth;
    store.put_connection(&conn).await?;
    for t in &tasks {
        store.put_task(t).await?;
    }
    out.say(format!(
        "connection       {} (tenant {}), objects: {}",
        conn.id,
        conn.tenant,
        tasks
            .iter()
            .map(|t| t.object.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok((store, conn, tasks))
}

/// Starts the five handlers under the local host, with the sandbox's OAuth
/// client (and, under a rate limit, a connector that stays below it).
async fn start_host(
    dir: &Path,
    provider: &Provider,
    out: Output,
) -> anyhow::Result<syncbridge_localhost::LocalHostHandle> {
    let mut extra_env = std::collections::BTreeMap::new();
    extra_env.insert(
        "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID".to_string(),
        provider.client_id.clone(),
    );
    extra_env.insert(
        "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET".to_string(),
        provider.client_secret.clone(),
    );
    if let Some(rl) = provider.rate_limit {
        let connectors = std::path::absolute(dir.join("connectors"))?;
        std::fs::create_dir_all(&connectors)?;
        std::fs::write(
            connectors.join("sandbox.toml"),
            syncbridge_core::connector::registry::sandbox_with_limit(
                rl.limit.into(),
                rl.window.as_secs_f64(),
            ),
        )?;
        extra_env.insert(
            "SYNCBRIDGE_CONNECTORS_DIR".to_string(),
            connectors.display().to_string(),
        );
        out.say(format!(
            "rate limit       sandbox enforces {} requests per {:?}; the connector stays under it",
            rl.limit, rl.window
        ));
    }
    // A known port: the connect flow's redirect URI is the front door's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let host = crate::up::start_with(dir, port, None, extra_env).await?;
    out.say(format!(
        "local host       {} running {} functions",
        host.url(),
        host.status().len()
    ));
    Ok(host)
}

/// The connect flow as a browser would go through it (the sandbox approves
/// at once): a session for `conn` (re-authorizing it), its link opened with
/// a plain HTTP client that follows redirects through the sandbox's
/// `/oauth/authorize` and the callback to the done page; the tokens are
/// exchanged and sealed by the API, never seen here.
async fn connect_through_flow(
    dir: &Path,
    provider: &Provider,
    host: &syncbridge_localhost::LocalHostHandle,
    conn: &syncbridge_core::model::Connection,
    out: Output,
) -> anyhow::Result<()> {
    let mut settings = syncbridge_functions::Settings::for_data_dir(dir);
    settings.env = std::sync::Arc::new(
        syncbridge_functions::settings::MapEnv::new()
            .with("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID", &provider.client_id)
            .with(
                "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET",
                &provider.client_secret,
            ),
    );
    settings.connect.public_url = Some(url::Url::parse(&host.url())?);
    let app = syncbridge_functions::AppState::embedded(settings)?;
    let made = syncbridge_api::connect::create_session(
        &app,
        syncbridge_api::connect::SessionBody {
            tenant: conn.tenant.to_string(),
            provider: conn.provider.clone(),
            return_url: format!("{}{}", host.url(), syncbridge_api::connect::DONE_PATH),
            connection_id: Some(conn.id.to_string()),
            base_url: None,
            settings: None,
        },
    )
    .await?;
    // A browser, cookies included: the callback must come from the browser
    // that opened the link.
    let landed = syncbridge_sandbox::browser::Browser::new()
        .walk(&made.connect_url, |_| false)
        .await
        .context("opening the connect link")?;
    let last = landed.chain.last().expect("a walk requests its first URL");
    let back: std::collections::HashMap<String, String> = last.query_pairs().into_owned().collect();
    if back.get("connection_id") != Some(&conn.id.to_string()) {
        bail!(
            "the connect flow ended on {} ({}), not connected",
            last.path(),
            back.get("error").map_or("no error code", String::as_str)
        );
    }
    crate::connect::wait(app.store.as_ref(), &made.id, Duration::from_secs(30)).await?;
    out.say(format!(
        "connect flow     {} authorized through {}/oauth/authorize (PKCE, auto-approved)",
        conn.id,
        provider.handle.base_url()
    ));
    Ok(())
}

impl Demo<'_> {
    /// Asks for a run of every task now.
    async fn request_runs(&self) -> anyhow::Result<()> {
        for t in self.tasks {
            self.store
                .request_run(&t.id, Priority::Interactive, SystemClock.now())
                .await?;
        }
        Ok(())
    }

    /// The passes: initial sync, a sandbox change and a token refresh, an
    /// incremental sync, the round trip, and a pull after the pushes. Fills
    /// `passes` and `round` as it goes.
    async fn drive(
        &self,
        host: &syncbridge_localhost::LocalHostHandle,
        a: &DemoArgs,
        passes: &mut Vec<PassSummary>,
        round: &mut Option<RoundTrip>,
    ) -> anyhow::Result<()> {
        let (store, out, base) = (self.store, self.out, self.base);
        passes.push(pass(store, host, "initial sync", out, a.timeout_secs).await?);
        let http = reqwest::Client::new();
        let changed = a.records.div_ceil(100);
        let resp = http
            .post(format!("{base}/_sandbox/mutate"))
            .json(&serde_json::json!({ "object": "contacts", "update": changed, "delete": 10.min(a.records) }))
            .send()
            .await?
            .error_for_status()?;
        let _ = resp.bytes().await?;
        out.say(format!(
            "sandbox change   {changed} contacts updated, {} deleted",
            10.min(a.records)
        ));
        // Let the access token reach its refresh margin, then run the real
        // TokenRefresher function: it refreshes the token (rotating the
        // refresh token) before the next pass needs it.
        tokio::time::sleep(Duration::from_millis(a.token_ttl_secs.max(1) * 500 + 300)).await;
        let swept = host
            .fire_timer("TokenRefresher")
            .await
            .context("firing TokenRefresher")?;
        for line in swept
            .response
            .logs
            .iter()
            .filter(|l| l.starts_with("token sweep"))
        {
            out.say(format!(
                "token refresher  {}",
                line.trim_start_matches("token sweep: ")
            ));
        }
        self.request_runs().await?;
        passes.push(pass(store, host, "incremental sync", out, a.timeout_secs).await?);
        *round = Some(round_trip(self).await?);
        self.request_runs().await?;
        passes.push(pass(store, host, "pull after push", out, a.timeout_secs).await?);
        Ok(())
    }

    /// Per object, the records in the store and live in the sandbox, and up
    /// to five ids whose content differs (a held record compared by id only).
    async fn compare(&self) -> anyhow::Result<Comparison> {
        let mut cmp = Comparison::default();
        for t in self.tasks {
            let want = sandbox_content(self.base, &t.object).await?;
            let have = store_content(self.store, &t.connection, &t.object).await?;
            cmp.held_records += have.values().filter(|c| c.held).count() as u64;
            cmp.store_records
                .insert(t.object.to_string(), have.len() as u64);
            cmp.sandbox_records
                .insert(t.object.to_string(), want.len() as u64);
            let differ = content_differences(&want, &have, 5);
            if !differ.is_empty() {
                cmp.differences.insert(t.object.to_string(), differ);
            }
        }
        Ok(cmp)
    }

    /// Compares both sides, checks the round trip and sums everything up.
    async fn summarize(
        &self,
        passes: Vec<PassSummary>,
        round: Option<RoundTrip>,
        demo_started: Instant,
    ) -> anyhow::Result<DemoSummary> {
        let (store, conn) = (self.store, &self.conn.id);
        let stats: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", self.base))
            .await?
            .json()
            .await?;
        let cmp = self.compare().await?;
        let round = round.context("the round trip did not run")?;
        round.verify(store, self.sandbox, conn).await?;
        let audit = store.list_audit(Some(conn), 10_000).await?;
        let conflicts_resolved = audit
            .iter()
            .filter(|e| e.entry.get("chosen").is_some_and(|c| c != "parked"))
            .count() as u64;
        let conflicts_parked = store
            .list_local_changes(Some(conn), 10_000)
            .await?
            .iter()
            .filter_map(|r| r.local.as_ref())
            .map(|l| l.conflicts.len() as u64)
            .sum();
        Ok(DemoSummary {
            totals: totals(&passes, demo_started.elapsed()),
            pushed: round.pushed,
            conflicts_resolved,
            conflicts_parked,
            sandbox: self.base.to_string(),
            in_sync: cmp.store_records == cmp.sandbox_records && cmp.differences.is_empty(),
            store_records: cmp.store_records,
            sandbox_records: cmp.sandbox_records,
            differences: cmp.differences,
            held_records: cmp.held_records,
            provider_requests: stats["requests"].as_u64().unwrap_or(0),
            provider_throttled: stats["throttled"].as_u64().unwrap_or(0),
            // The first token request was the connect flow's code exchange.
            tokens_refreshed: stats["token_requests"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(1),
            passes,
        })
    }
}

/// What [`Demo::compare`] found.
#[derive(Debug, Default)]
struct Comparison {
    store_records: BTreeMap<String, u64>,
    sandbox_records: BTreeMap<String, u64>,
    differences: BTreeMap<String, Vec<String>>,
    held_records: u64,
}

/// A record's content as compared: the hash of its mapped fields, and
/// whether a local state holds it (the store side only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    hash: String,
    held: bool,
}

/// Every live sandbox record of `object`, mapped by the built-in sandbox
/// connector (the rate-limited variant maps the same): id → content hash, as
/// an inbound run would store it.
async fn sandbox_content(
    base: &str,
    object: &ObjectType,
) -> anyhow::Result<BTreeMap<String, String>> {
    let all: serde_json::Value = reqwest::get(format!("{base}/_sandbox/records/{object}"))
        .await?
        .json()
        .await?;
    let connector = Registry::builtin()
        .get("sandbox")
        .context("the sandbox connector is built in")?;
    let def = connector
        .object(object.as_str())
        .with_context(|| format!("the sandbox connector has no object {object}"))?;
    let records = all.get("results").cloned().unwrap_or(all);
    let page = extract_page(def, &serde_json::json!({ "results": records }), false)?;
    Ok(page
        .upserts
        .into_iter()
        .map(|u| (u.external_id.to_string(), u.hash))
        .collect())
}

/// Every record of `object` in the store: id → content.
async fn store_content(
    store: &SqliteStore,
    connection: &ConnectionId,
    object: &ObjectType,
) -> anyhow::Result<BTreeMap<String, Content>> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let batch = store
            .list_records(connection, object, after.as_ref(), 5000)
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.external_id.clone());
        for r in batch {
            let content = Content {
                hash: r.hash,
                held: r.local.is_some(),
            };
            out.insert(r.external_id.to_string(), content);
        }
    }
    Ok(out)
}

/// Up to `limit` records where the store (`have`) differs from the sandbox
/// (`want`): missing from the store, extra in it, or with other content.
/// A held record is compared by id only. Pure.
fn content_differences(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, Content>,
    limit: usize,
) -> Vec<String> {
    let missing = want
        .keys()
        .filter(|id| !have.contains_key(*id))
        .map(|id| format!("{id}: missing from the store"));
    let extra = have
        .keys()
        .filter(|id| !want.contains_key(*id))
        .map(|id| format!("{id}: not in the sandbox"));
    let stale = want
        .iter()
        .filter(|(id, hash)| have.get(*id).is_some_and(|c| !c.held && c.hash != **hash))
        .map(|(id, _)| format!("{id}: other content"));
    missing.chain(extra).chain(stale).take(limit).collect()
}

/// Fires the scheduler and waits for every task to finish a run started after now.
async fn pass(
    store: &SqliteStore,
    host: &syncbridge_localhost::LocalHostHandle,
    name: &str,
    out: Output,
    timeout_secs: u64,
) -> anyhow::Result<PassSummary> {
    out.say(format!("\n== {name} =="));
    let started = Instant::now();
    let since: Timestamp = SystemClock.now();
    host.fire_timer("SyncScheduler")
        .await
        .context("firing SyncScheduler")?;
    let tasks = store.list_tasks(None).await?;
    let mut last_print = Instant::now();
    loop {
        let mut done = 0;
        let mut fetched = 0;
        for t in &tasks {
            let cur = store.get_task(&t.id).await?.context("task vanished")?;
            if cur.lease.is_none() && cur.last_run_at.is_some_and(|l| l >= since) {
                done += 1;
            }
            if let Some(r) = store.list_runs(Some(&t.id), 1).await?.first()
                && r.started_at >= since
            {
                fetched += r.counts.fetched;
            }
        }
        let mut line = String::new();
        for t in &tasks {
            line.push_str(&format!(
                "{} {}  ",
                t.object,
                store.count_records(&t.connection, &t.object).await?
            ));
        }
        if done == tasks.len() {
            out.say(format!(
                "  [{:>5.1}s] store: {line}- done",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        if last_print.elapsed() >= Duration::from_millis(500) {
            out.say(
                format!(
                    "  [{:>5.1}s] store: {line}({done}/{} objects finished, {fetched} fetched in finished runs)",
                    started.elapsed().as_secs_f64(),
                    tasks.len()
                ),
            );
            last_print = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bail!("{name} did not finish within {timeout_secs}s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut counts = RunCounts::default();
    let mut objects = BTreeMap::new();
    for t in &tasks {
        let run = store
            .list_runs(Some(&t.id), 1)
            .await?
            .into_iter()
            .next()
            .context("no run recorded")?;
        counts.add(&run.counts);
        objects.insert(
            t.object.to_string(),
            ObjectPass {
                status: run.status.as_str().into(),
                counts: run.counts,
                error: run.error.clone(),
            },
        );
        if run.status != RunStatus::Succeeded {
            out.say(format!(
                "  {} run {}: {}",
                t.object,
                run.status.as_str(),
                run.error.unwrap_or_default()
            ));
        }
    }
    Ok(PassSummary {
        name: name.into(),
        seconds,
        records_per_sec: counts.fetched as f64 / seconds.max(1e-9),
        counts,
        objects,
    })
}

fn print_summary(s: &DemoSummary) {
    println!("\n== summary ==");
    println!(
        "{:<18} {:>8} {:>9} {:>8} {:>8} {:>10} {:>8} {:>9} {:>12}",
        "pass",
        "seconds",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "requests",
        "records/s"
    );
    for p in &s.passes {
        let c = &p.counts;
        println!(
            "{:<18} {:>8.2} {:>9} {:>8} {:>8} {:>10} {:>8} {:>9} {:>12.0}",
            p.name,
            p.seconds,
            c.fetched,
            c.created,
            c.updated,
            c.unchanged,
            c.deleted,
            c.requests,
            p.records_per_sec
        );
    }
    let t = &s.totals;
    println!(
        "{:<18} {:>8.2} {:>9} {:>8} {:>8} {:>10} {:>8}   (whole demo)",
        "total",
        t.elapsed_ms as f64 / 1000.0,
        t.records_fetched,
        t.created,
        t.updated,
        t.unchanged,
        t.deleted
    );
    println!("\nstore vs sandbox (records and their content):");
    for (o, n) in &s.store_records {
        println!(
            "  {o:<10} store {n:>8}   sandbox {:>8}",
            s.sandbox_records.get(o).copied().unwrap_or(0)
        );
        for d in s.differences.get(o).into_iter().flatten() {
            println!("    {d}");
        }
    }
    if s.held_records > 0 {
        println!(
            "  {} record(s) held by a parked conflict: compared by id",
            s.held_records
        );
    }
    println!(
        "provider requests {} (throttled {}), OAuth token refreshes {}",
        s.provider_requests, s.provider_throttled, s.tokens_refreshed
    );
    println!(
        "round trip: {} local change(s) pushed, {} conflict(s) resolved by policy, {} parked for a person (syncbridge changes list)",
        s.pushed, s.conflicts_resolved, s.conflicts_parked
    );
    println!(
        "{}",
        if s.in_sync {
            "in sync ✔"
        } else {
            "OUT OF SYNC ✘"
        }
    );
}

/// What the round trip changed, to check afterwards.
struct RoundTrip {
    pushed: u64,
    /// Contact updated locally only (phone).
    clean: String,
    /// Contact edited on both sides (first name under `latest`, phone under `manual`).
    conflicted: String,
    /// Contact edited remotely only (last name).
    remote_only: String,
    /// The provider id of the locally created contact.
    created: String,
}

const LOCAL_PHONE: &str = "+1 555 0100";
const REMOTE_LAST: &str = "Remote-Edit";

/// The three contacts the round trip changes.
struct Picked {
    /// Updated locally only (phone).
    clean: syncbridge_core::ExternalId,
    /// Edited on both sides.
    conflicted: syncbridge_core::ExternalId,
    /// Edited remotely only (last name).
    remote_only: syncbridge_core::ExternalId,
}

/// Local changes in, pushes out through the real outbound worker, conflicts
/// resolved by policy.
async fn round_trip(d: &Demo<'_>) -> anyhow::Result<RoundTrip> {
    d.out
        .say("\n== round trip (local changes out, conflicts resolved) ==");
    let started = Instant::now();
    let contacts = syncbridge_core::ObjectType::parse("contacts")?;
    let picked = remote_edits(d, &contacts).await?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let submitted = local_changes(d, &contacts, &picked).await?;
    let Picked {
        clean,
        conflicted,
        remote_only,
    } = picked;
    let created = await_pushes(d, &contacts, started).await?;
    d.out.say(format!(
        "  [{:>5.1}s] pushed: contact {clean} updated, contact {created} created (was {}), contact {conflicted} merged",
        started.elapsed().as_secs_f64(),
        submitted[1]
    ));
    for e in d.store.list_audit(Some(&d.conn.id), 100).await? {
        d.out.say(format!(
            "  decision: contact {} field {} -> {} ({})",
            e.external_id,
            e.entry["field"].as_str().unwrap_or("?"),
            e.entry["chosen"].as_str().unwrap_or("?"),
            e.entry["reason"].as_str().unwrap_or("?")
        ));
    }
    Ok(RoundTrip {
        pushed: submitted.len() as u64,
        clean: clean.to_string(),
        conflicted: conflicted.to_string(),
        remote_only: remote_only.to_string(),
        created,
    })
}

/// Picks three stored contacts; meanwhile, someone edits two of them in the
/// sandbox's own UI.
async fn remote_edits(
    d: &Demo<'_>,
    contacts: &syncbridge_core::ObjectType,
) -> anyhow::Result<Picked> {
    use syncbridge_core::ExternalId;
    let ids: Vec<ExternalId> = d
        .store
        .list_records(&d.conn.id, contacts, None, 3)
        .await?
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    let [clean, conflicted, remote_only] = <[ExternalId; 3]>::try_from(ids)
        .map_err(|_| anyhow::anyhow!("the round trip needs at least 3 contacts"))?;
    let num = |id: &ExternalId| -> anyhow::Result<u64> {
        id.as_str().parse().context("sandbox ids are numbers")
    };
    let kind = syncbridge_sandbox::ObjectKind::Contacts;
    let sbx = d.sandbox.sandbox();
    sbx.update_record(
        kind,
        num(&conflicted)?,
        &[
            ("firstname".into(), Some("Remote-Ada".into())),
            ("phone".into(), Some("+1 555 0199".into())),
        ],
    )?;
    sbx.update_record(
        kind,
        num(&remote_only)?,
        &[("lastname".into(), Some(REMOTE_LAST.into()))],
    )?;
    d.out.say(format!(
        "sandbox edits    contact {conflicted}: first name, phone; contact {remote_only}: last name"
    ));
    Ok(Picked {
        clean,
        conflicted,
        remote_only,
    })
}

/// The product's own changes: an update, a create and a conflicting edit.
/// Returns the ids they were submitted under.
async fn local_changes(
    d: &Demo<'_>,
    contacts: &syncbridge_core::ObjectType,
    p: &Picked,
) -> anyhow::Result<Vec<syncbridge_core::ExternalId>> {
    use syncbridge_core::pipeline::outbound::{ChangeOp, LocalChange, submit_change};
    let app = syncbridge_functions::AppState::embedded(
        syncbridge_functions::Settings::for_data_dir(d.dir),
    )?;
    let deps = app.worker_deps();
    let fields = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let changes = [
        ChangeOp::Update {
            id: p.clean.clone(),
            fields: fields(serde_json::json!({ "phone": LOCAL_PHONE })),
        },
        ChangeOp::Create {
            reference: "demo-signup-1".into(),
            fields: fields(
                serde_json::json!({ "email": "new.signup@example.com", "first_name": "Nova" }),
            ),
        },
        ChangeOp::Update {
            id: p.conflicted.clone(),
            fields: fields(
                serde_json::json!({ "first_name": "Local-Ada", "phone": "+1 555 0142" }),
            ),
        },
    ];
    let mut submitted = Vec::new();
    for op in changes {
        let done = submit_change(
            &deps,
            &*app.queue,
            &LocalChange {
                connection: d.conn.id.clone(),
                object: contacts.clone(),
                op,
            },
        )
        .await?;
        submitted.push(done.external_id);
    }
    d.out.say(format!(
        "local changes    contact {}: phone; new contact {}; contact {}: first name, phone",
        p.clean, submitted[1], p.conflicted
    ));
    Ok(submitted)
}

/// Waits until the outbound worker (under the local host) has pushed every
/// change; returns the provider id of the created contact.
async fn await_pushes(
    d: &Demo<'_>,
    contacts: &syncbridge_core::ObjectType,
    started: Instant,
) -> anyhow::Result<String> {
    let (store, conn, timeout_secs) = (d.store, &d.conn.id, d.timeout_secs);
    loop {
        let pending = store.list_local_changes(Some(conn), 100).await?;
        let waiting = pending
            .iter()
            .filter(|r| r.local.as_ref().is_some_and(|l| l.push_due_at.is_some()))
            .count();
        if waiting == 0 {
            return store
                .list_records(conn, contacts, None, usize::MAX >> 1)
                .await?
                .into_iter()
                .find(|r| r.data["email"] == "new.signup@example.com")
                .map(|r| r.external_id.to_string())
                .context("the created contact is missing");
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bail!("pushes did not finish within {timeout_secs}s: {waiting} still pending");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl RoundTrip {
    /// Both sides hold what the policies dictate.
    async fn verify(
        &self,
        store: &SqliteStore,
        sandbox: &syncbridge_sandbox::SandboxHandle,
        conn: &syncbridge_core::ConnectionId,
    ) -> anyhow::Result<()> {
        let kind = syncbridge_sandbox::ObjectKind::Contacts;
        let remote = |id: &str, prop: &str| -> Option<String> {
            sandbox
                .sandbox()
                .record_props(kind, id.parse().ok()?)?
                .get(prop)
                .cloned()
        };
        let contacts = syncbridge_core::ObjectType::parse("contacts")?;
        let contacts = &contacts;
        let local = |id: String| async move {
            store
                .get_record(conn, contacts, &syncbridge_core::ExternalId::parse(id)?)
                .await?
                .context("record missing")
        };
        let checks = [
            (
                remote(&self.clean, "phone").as_deref() == Some(LOCAL_PHONE),
                "the local phone reached the sandbox",
            ),
            (
                remote(&self.created, "firstname").as_deref() == Some("Nova"),
                "the created contact exists in the sandbox",
            ),
            (
                remote(&self.conflicted, "firstname").as_deref() == Some("Local-Ada"),
                "latest: the later (local) first name won",
            ),
            (
                remote(&self.conflicted, "phone").as_deref() == Some("+1 555 0199"),
                "manual: the sandbox keeps its phone",
            ),
            (
                local(self.conflicted.clone()).await?.data["phone"] == "+1 555 0142",
                "manual: we keep ours until resolved",
            ),
            (
                local(self.remote_only.clone()).await?.data["last_name"] == REMOTE_LAST,
                "the remote edit was pulled",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                bail!("round trip check failed: {what}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(fetched: u64, created: u64, deleted: u64) -> PassSummary {
        PassSummary {
            name: "p".into(),
            seconds: 1.0,
            counts: RunCounts {
                fetched,
                created,
                deleted,
                ..RunCounts::default()
            },
            records_per_sec: 0.0,
            objects: BTreeMap::new(),
        }
    }

    /// Totals sum every pass; no pass gives zeros.
    #[test]
    fn totals_sum_the_passes() {
        let t = totals(
            &[pass(10, 10, 0), pass(3, 0, 2)],
            Duration::from_millis(1500),
        );
        assert_eq!(
            (t.records_fetched, t.created, t.deleted, t.elapsed_ms),
            (13, 10, 2, 1500)
        );
        assert_eq!(totals(&[], Duration::ZERO), DemoTotals::default());
    }

    /// The store equals the sandbox only with the same ids and the same
    /// content; a held record differs in content without counting.
    #[test]
    fn content_differences_table() {
        let want: BTreeMap<String, String> = [("1", "a"), ("2", "b"), ("3", "c")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let have = |rows: &[(&str, &str, bool)]| -> BTreeMap<String, Content> {
            rows.iter()
                .map(|(id, hash, held)| {
                    let c = Content {
                        hash: hash.to_string(),
                        held: *held,
                    };
                    (id.to_string(), c)
                })
                .collect()
        };
        let same = have(&[("1", "a", false), ("2", "b", false), ("3", "c", false)]);
        assert!(content_differences(&want, &same, 5).is_empty());
        // Same count, other content: the count comparison alone missed this.
        let stale = have(&[("1", "a", false), ("2", "x", false), ("3", "c", false)]);
        assert_eq!(content_differences(&want, &stale, 5), ["2: other content"]);
        let held = have(&[("1", "a", false), ("2", "x", true), ("3", "c", false)]);
        assert!(content_differences(&want, &held, 5).is_empty());
        let shifted = have(&[("1", "a", false), ("2", "b", false), ("4", "c", false)]);
        assert_eq!(
            content_differences(&want, &shifted, 5),
            ["3: missing from the store", "4: not in the sandbox"]
        );
        assert_eq!(content_differences(&want, &BTreeMap::new(), 2).len(), 2);
    }
}
