//! Refreshers in separate processes (the `credentials-refresh-once` helper
//! binary) sharing one SQLite store and key file, against the real sandbox
//! on loopback: exactly one token request for 20 racing processes, and what
//! a kill -9 at each point of a refresh does.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{World, conn_id, now};
use rand::{Rng, SeedableRng};
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::{SecretString, Store};
use syncbridge_credentials::{CredentialDoc, CredentialManager};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

fn helper(w: &World, conn: &str) -> Command {
    let cfg = w.sandbox.sandbox().config();
    let mut c = Command::new(env!("CARGO_BIN_EXE_credentials-refresh-once"));
    c.arg("--data-dir")
        .arg(w.dir.path())
        .arg("--connection")
        .arg(conn)
        .env("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID", cfg.client_id)
        .env("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET", cfg.client_secret)
        .env("RUST_LOG", "warn")
        .env_remove("SYNCBRIDGE_CREDENTIALS_PAUSE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

#[derive(Debug)]
struct Run {
    code: i32,
    lines: Vec<String>,
    result: serde_json::Value,
}

async fn finish(child: Child) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("helper finished in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let result = lines
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        lines,
        result,
    }
}

/// Reads the child's stdout until a line equals `want`; returns whether it appeared.
async fn wait_for_line(child: &mut Child, want: &str) -> bool {
    let stdout = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            if line.trim() == want {
                return true;
            }
        }
    })
    .await;
    found.unwrap_or(false)
}

async fn kill9(mut child: Child) {
    child.start_kill().unwrap(); // SIGKILL on Unix
    let _ = child.wait().await;
}

async fn version(w: &World, c: &str) -> i64 {
    w.store
        .get_credential(&conn_id(c))
        .await
        .unwrap()
        .unwrap()
        .version
}

async fn current_token(m: &CredentialManager, c: &str) -> SecretString {
    m.open(&conn_id(c))
        .await
        .unwrap()
        .unwrap()
        .doc
        .access_token()
        .unwrap()
        .clone()
}

fn sha(t: &SecretString) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(t.expose().as_bytes())[..16])
}

async fn reauthorize(w: &World, m: &CredentialManager, c: &str) {
    let pair = w.sandbox.sandbox().issue_tokens();
    let doc = CredentialDoc::oauth2(
        SecretString::new(pair.access_token),
        Some(SecretString::new(pair.refresh_token)),
        Some(HOUR),
        now(),
    );
    m.reauthorize(&conn_id(c), doc).await.unwrap();
}

/// 20 helper processes racing to refresh one connection make exactly one token request; all report the same new token and the connection stays Active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_make_one_token_request() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    let (_, at0, _) = w.add(&m, "c-procs", HOUR, MIN).await;
    let v0 = version(&w, "c-procs").await;
    let before = w.token_requests();
    let start_at = now().as_millis() + 2500;
    let children: Vec<Child> = (0..20)
        .map(|_| {
            helper(&w, "c-procs")
                .arg("--if-version")
                .arg(v0.to_string())
                .arg("--start-at-ms")
                .arg(start_at.to_string())
                // The winner holds the lock a moment before its request, so
                // the others really do find it taken.
                .env("SYNCBRIDGE_CREDENTIALS_PAUSE", "before_request:500")
                .spawn()
                .unwrap()
        })
        .collect();
    let mut runs = Vec::new();
    for c in children {
        runs.push(finish(c).await);
    }
    for r in &runs {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r.result["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "refreshed").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "adopted").count(), 19);
    let reached_request = runs
        .iter()
        .filter(|r| r.lines.iter().any(|l| l == "phase before_request"))
        .count();
    assert_eq!(
        reached_request, 1,
        "only the lock holder got to the token request"
    );
    let waited: u64 = runs
        .iter()
        .map(|r| r.result["counters"]["lock_waits"].as_u64().unwrap())
        .sum();
    assert!(waited >= 1, "some processes found the lock taken");
    let requests: u64 = runs
        .iter()
        .map(|r| r.result["counters"]["token_requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 1);
    assert_eq!(
        w.token_requests() - before,
        1,
        "sandbox saw exactly one token request"
    );
    assert_eq!(version(&w, "c-procs").await, v0 + 1);
    let new = current_token(&m, "c-procs").await;
    assert_ne!(new, at0);
    for r in &runs {
        assert_eq!(r.result["token_sha256"].as_str().unwrap(), sha(&new));
        assert_eq!(r.result["version"].as_i64().unwrap(), v0 + 1);
    }
    assert!(w.accepts(&new).await);
    assert_eq!(w.status("c-procs").await, ConnectionStatus::Active);
}

/// kill -9 while holding the refresh lock before the token request loses nothing: after the lease expires a restarted process refreshes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_before_request_then_restart_refreshes() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    w.add(&m, "c-kill-early", HOUR, MIN).await;
    let v0 = version(&w, "c-kill-early").await;
    let before = w.token_requests();
    // A 5 s lease: the restart surely starts while the dead holder's lease runs.
    let mut child = helper(&w, "c-kill-early")
        .args(["--lease-ms", "5000", "--http-timeout-ms", "1000"])
        .env("SYNCBRIDGE_CREDENTIALS_PAUSE", "before_request:60000")
        .spawn()
        .unwrap();
    assert!(wait_for_line(&mut child, "phase before_request").await);
    kill9(child).await;
    assert_eq!(w.token_requests(), before, "killed before any request");
    assert_eq!(version(&w, "c-kill-early").await, v0);

    let started = std::time::Instant::now();
    let run = finish(
        helper(&w, "c-kill-early")
            .args([
                "--if-version",
                &v0.to_string(),
                "--lease-ms",
                "2500",
                "--http-timeout-ms",
                "1000",
            ])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.result["outcome"], "refreshed");
    assert_eq!(
        run.result["counters"]["lock_waits"], 1,
        "it waited out the dead holder's lease"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(w.token_requests() - before, 1);
    assert_eq!(version(&w, "c-kill-early").await, v0 + 1);
    assert!(w.accepts(&current_token(&m, "c-kill-early").await).await);
    assert_eq!(w.status("c-kill-early").await, ConnectionStatus::Active);
}

/// The documented crash window: kill -9 after the provider rotated the refresh token but before the save loses it; the restart gets invalid_grant and flags needs_reauth with an event instead of failing silently, and re-authorizing recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_in_crash_window_is_flagged_needs_reauth() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    w.add(&m, "c-kill-window", HOUR, MIN).await;
    let v0 = version(&w, "c-kill-window").await;
    let before = w.token_requests();
    let mut child = helper(&w, "c-kill-window")
        .args(["--lease-ms", "2500", "--http-timeout-ms", "1000"])
        .env("SYNCBRIDGE_CREDENTIALS_PAUSE", "token_received:60000")
        .spawn()
        .unwrap();
    assert!(wait_for_line(&mut child, "phase token_received").await);
    kill9(child).await;
    assert_eq!(
        w.token_requests() - before,
        1,
        "the provider rotated the token"
    );
    assert_eq!(
        version(&w, "c-kill-window").await,
        v0,
        "but the save never happened"
    );

    let run = finish(
        helper(&w, "c-kill-window")
            .args(["--lease-ms", "2500", "--http-timeout-ms", "1000"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.result["outcome"], "needs_reauth");
    assert!(
        run.lines.iter().any(|l| l.starts_with("event ")
            && l.contains("\"kind\":\"connection_needs_reauth\"")
            && l.contains("invalid_grant")),
        "{run:?}"
    );
    assert_eq!(w.token_requests() - before, 2);
    assert_eq!(
        w.status("c-kill-window").await,
        ConnectionStatus::NeedsReauth
    );

    reauthorize(&w, &m, "c-kill-window").await;
    let run = finish(helper(&w, "c-kill-window").spawn().unwrap()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.result["outcome"], "refreshed");
    assert!(w.accepts(&current_token(&m, "c-kill-window").await).await);
}

/// kill -9 at random moments of a refresh, then restart, 10 times: the credential always opens, and the restart's outcome is exactly what the design guarantees for where the kill landed (saved → adopted, before the request → refreshed, inside the window → needs_reauth).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_then_restart() {
    let w = World::new(HOUR).await;
    let m = w.manager();
    w.add(&m, "c-kill-random", HOUR, MIN).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261128);
    let (mut saved, mut early, mut window) = (0, 0, 0);
    for round in 0..10 {
        let v0 = version(&w, "c-kill-random").await;
        let before = w.token_requests();
        let child = helper(&w, "c-kill-random")
            .args(["--lease-ms", "2000", "--http-timeout-ms", "1000"])
            .spawn()
            .unwrap();
        let delay = rng.random_range(0..120);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill9(child).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let killed_requests = w.token_requests() - before;
        let v1 = version(&w, "c-kill-random").await;
        // The credential always opens: no torn write.
        m.open(&conn_id("c-kill-random")).await.unwrap().unwrap();

        let run = finish(
            helper(&w, "c-kill-random")
                .args([
                    "--if-version",
                    &v0.to_string(),
                    "--lease-ms",
                    "2000",
                    "--http-timeout-ms",
                    "1000",
                ])
                .spawn()
                .unwrap(),
        )
        .await;
        let outcome = run.result["outcome"].as_str().unwrap_or("?").to_owned();
        if v1 > v0 {
            saved += 1;
            assert_eq!(
                outcome, "adopted",
                "round {round}: saved before the kill; {run:?}"
            );
        } else if killed_requests == 0 {
            early += 1;
            assert_eq!(
                outcome, "refreshed",
                "round {round}: killed before the request; {run:?}"
            );
        } else {
            window += 1;
            assert_eq!(killed_requests, 1);
            assert_eq!(
                outcome, "needs_reauth",
                "round {round}: killed in the window; {run:?}"
            );
            assert_eq!(
                w.status("c-kill-random").await,
                ConnectionStatus::NeedsReauth
            );
            reauthorize(&w, &m, "c-kill-random").await;
        }
        assert!(
            w.accepts(&current_token(&m, "c-kill-random").await).await,
            "round {round}"
        );
        eprintln!("round {round}: kill after {delay} ms -> {outcome}");
    }
    eprintln!(
        "kills: {saved} after the save, {early} before the request, {window} inside the crash window"
    );
    assert_eq!(saved + early + window, 10);
}
