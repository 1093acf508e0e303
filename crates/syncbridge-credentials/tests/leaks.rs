//! No secret in plaintext anywhere: every log line (a global tracing
//! subscriber at TRACE for every target, this process and the helper
//! binary's), every Debug/Display of our types and errors, and every byte of
//! the SQLite files, after a run that refreshes, rotates, revokes, hits
//! invalid_client and transient failures, and sweeps.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{World, now, scripted, test_config};
use syncbridge_core::credentials::{AuthValue, CredentialProvider};
use syncbridge_core::{SecretString, Store};
use syncbridge_credentials::{ClientRegistry, CredentialDoc, OAuthClient, RefreshTrigger};

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);
const PREFIXES: [&str; 3] = ["sbx_at_", "sbx_rt_", "sbx_cs_"];

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

fn find_prefixes(haystack: &[u8]) -> Vec<(&'static str, usize)> {
    let mut hits = Vec::new();
    for p in PREFIXES {
        let pb = p.as_bytes();
        for (i, w) in haystack.windows(pb.len()).enumerate() {
            if w == pb {
                hits.push((p, i));
            }
        }
    }
    hits
}

/// After a full refresh/rotate/revoke/invalid_client/transient/sweep run, no `sbx_at_`/`sbx_rt_`/`sbx_cs_` appears in captured logs, Debug output, or the SQLite db/wal/shm files.
#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_plaintext_secret_in_logs_debug_or_store_files() {
    let logs = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let w = World::new(HOUR).await;
    let m = w.manager();
    let mut debug = String::new();
    let (c1, at1, _) = w.add(&m, "c-leak-1", HOUR, MIN).await;
    let (c2, _, _) = w.add(&m, "c-leak-2", HOUR, HOUR + MIN).await; // expired
    let (c3, at3, rt3) = w.add(&m, "c-leak-3", HOUR, MIN).await;
    w.add(&m, "c-leak-4", 30 * MIN, 28 * MIN).await; // due for the sweep
    // Sanity: the values we hunt for really are prefixed.
    assert!(at1.expose().starts_with("sbx_at_") && rt3.expose().starts_with("sbx_rt_"));

    // Rotations (twice), an on-demand refresh, a 401-driven refresh.
    let o = m
        .refresh(&c1, &w.def, RefreshTrigger::Rejected(at1.clone()))
        .await
        .unwrap();
    debug += &format!("{o:?}\n");
    let o = m
        .refresh(&c1, &w.def, RefreshTrigger::Rejected(o.access_token))
        .await
        .unwrap();
    debug += &format!("{o:?}\n");
    let a = m.authorize(&c2, &w.def).await.unwrap();
    debug += &format!("{a:?}\n");
    // Revoked: needs_reauth.
    w.revoke(&rt3).await;
    let e = m
        .rejected(&c3, &w.def, &AuthValue::Bearer(at3.clone()))
        .await
        .unwrap_err();
    debug += &format!("{e:?} {e}\n");
    // invalid_client with a wrong (but sandbox-looking) secret.
    let cfg = w.sandbox.sandbox().config();
    let bad = ClientRegistry::new().with(OAuthClient::new(
        "sandbox",
        cfg.client_id.clone(),
        SecretString::new("sbx_cs_wrong_but_secret"),
    ));
    let mb = w.manager_with(bad.clone(), test_config());
    let e = mb
        .refresh(&c1, &w.def, RefreshTrigger::StaleVersion(i64::MAX))
        .await
        .unwrap_err();
    debug += &format!("{e:?} {e} {mb:?} {bad:?}\n");
    // Transient: a 503 whose body echoes a token-looking value.
    let ep = scripted(vec![(503, vec![], "sbx_at_echoed_in_error_body".into())]).await;
    let mut c5 = w.connection("c-leak-5");
    c5.base_url = Some(ep.url.clone());
    w.store.put_connection(&c5).await.unwrap();
    m.store_initial(
        &c5.id,
        CredentialDoc::oauth2(
            SecretString::new("sbx_at_c5"),
            Some(SecretString::new("sbx_rt_c5")),
            Some(HOUR),
            now().sub(2 * HOUR),
        ),
    )
    .await
    .unwrap();
    let e = m.authorize(&c5, &w.def).await.unwrap_err();
    debug += &format!("{e:?} {e}\n");
    // A 200 with an unparsable body holding a token: never echoed.
    let ep2 = scripted(vec![(
        200,
        vec![("content-type", "application/json".into())],
        r#"{"access_token": "sbx_at_in_broken_json", "#.into(),
    )])
    .await;
    let mut c6 = w.connection("c-leak-6");
    c6.base_url = Some(ep2.url.clone());
    w.store.put_connection(&c6).await.unwrap();
    m.store_initial(
        &c6.id,
        CredentialDoc::oauth2(
            SecretString::new("sbx_at_c6"),
            Some(SecretString::new("sbx_rt_c6")),
            Some(HOUR),
            now().sub(2 * HOUR),
        ),
    )
    .await
    .unwrap();
    let e = m.authorize(&c6, &w.def).await.unwrap_err();
    debug += &format!("{e:?} {e}\n");
    // The sweep, Debug of everything else.
    let report = m.sweep(now(), 100).await.unwrap();
    assert!(report.refreshed >= 1, "{report:?}");
    let open = m.open(&c1.id).await.unwrap().unwrap();
    debug += &format!(
        "{open:?} {m:?} {:?} {:?} {:?}\n",
        w.clients(),
        w.events.all(),
        m.counters()
    );

    // The helper binary in another process, logging at TRACE.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credentials-refresh-once"))
        .arg("--data-dir")
        .arg(w.dir.path())
        .args(["--connection", "c-leak-1"])
        .env("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID", &cfg.client_id)
        .env("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET", &cfg.client_secret)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut log_bytes = logs.0.lock().unwrap().clone();
    let log_text = String::from_utf8_lossy(&log_bytes).to_string();
    assert!(
        log_text.contains("refreshed access token"),
        "logs were captured"
    );
    assert!(log_text.contains("connection needs re-authorization"));
    log_bytes.extend_from_slice(&out.stdout);
    log_bytes.extend_from_slice(&out.stderr);
    let hits = find_prefixes(&log_bytes);
    assert!(hits.is_empty(), "secrets in logs at {hits:?}");
    let hits = find_prefixes(debug.as_bytes());
    assert!(hits.is_empty(), "secrets in Debug/Display: {debug}");

    // Every file of the data directory, as raw bytes (db, -wal, -shm, keys).
    let mut scanned = Vec::new();
    for entry in std::fs::read_dir(w.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let hits = find_prefixes(&bytes);
        assert!(
            hits.is_empty(),
            "{} holds plaintext secrets at {hits:?}",
            path.display()
        );
        scanned.push(path.file_name().unwrap().to_string_lossy().to_string());
    }
    scanned.sort();
    assert!(scanned.contains(&"state.db".to_owned()), "{scanned:?}");
    assert!(scanned.contains(&"state.db-wal".to_owned()), "{scanned:?}");
    assert!(scanned.contains(&"keys.json".to_owned()), "{scanned:?}");
}
