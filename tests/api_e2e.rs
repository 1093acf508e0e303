//! The product API end to end: the real `syncbridge` CLI makes an API key,
//! the real handlers run under the local host (what `syncbridge up` runs),
//! and the `SyncApi` function is called through the host's front door at
//! `/api/v1/…` like a product would.
//!
//! What was tried: a key from `syncbridge api-keys create` (printed alone
//! on stdout); calls without a key and with a read key that writes; a
//! sandbox connection created over the API, "sync now", a scheduler tick.
//! What must hold: 401 and 403 as problem documents, the document public,
//! the connection's run listed by `GET /v1/runs?connection_id=` until it
//! `succeeded` with the sandbox's records counted; `api-keys list` never
//! shows a key, and a key revoked by the CLI is refused at once.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use syncbridge_tests::*;

fn api_key(data_dir: &str, scope: &str) -> String {
    let name = format!("e2e {scope}");
    let stdout = syncbridge_cli(
        data_dir,
        &["api-keys", "create", "--name", &name, "--scope", scope],
    );
    let key = stdout.trim_end_matches('\n');
    assert!(
        key.starts_with("sbk_") && !key.contains('\n') && !key.contains(' '),
        "the key alone on stdout: {stdout:?}"
    );
    key.to_owned()
}

/// Key from the CLI, connection over the API, sync now, run succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sbx = sandbox(120).await;
    let admin = api_key(d, "admin");
    let read = api_key(d, "read");

    let host = start_host(host_config(dir.path())).await;
    let base = format!("{}/api/v1", host.url());
    let http = reqwest::Client::new();

    let anonymous = http
        .get(format!("{base}/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let doc = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status().as_u16(), 200, "the document needs no key");

    let body = json!({
        "id": "crm1", "tenant": "acme", "provider": "sandbox",
        "base_url": sbx.base_url(), "objects": ["contacts"], "interval_secs": 3600,
    });
    let refused = http
        .post(format!("{base}/connections"))
        .bearer_auth(&read)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403, "a read key cannot write");
    let created = http
        .post(format!("{base}/connections"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap()
    );

    let sync = http
        .post(format!("{base}/connections/crm1/sync"))
        .bearer_auth(&admin)
        .json(&json!({"objects": ["contacts"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status().as_u16(), 202);
    // The scheduler's next tick leases the interactive run first; the test
    // host's timers are far apart, so tick now.
    host.fire_timer("SyncScheduler")
        .await
        .expect("scheduler tick");

    let run = eventually(Duration::from_secs(60), "a succeeded run", || {
        let (http, base, read) = (http.clone(), base.clone(), read.clone());
        async move {
            let page: Value = http
                .get(format!("{base}/runs?connection_id=crm1"))
                .bearer_auth(&read)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let runs = page["runs"].as_array()?;
            runs.iter()
                .find(|r| r["status"] == "succeeded" || r["status"] == "failed")
                .cloned()
        }
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["object"], "contacts");
    assert_eq!(run["counts"]["created"], 120, "{run}");
    assert!(run["finished_at"].is_string());
    let tasks: Value = http
        .get(format!("{base}/connections/crm1/tasks"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["tasks"][0]["last_result"]["status"], "succeeded");

    // `api-keys list` shows the keys without their text; a key revoked by
    // the CLI is refused by the running API at once.
    let list = syncbridge_cli(d, &["api-keys", "list", "--json"]);
    assert!(!list.contains(&read) && !list.contains(&admin), "{list}");
    let keys: Value = serde_json::from_str(&list).unwrap();
    let read_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scope"] == "read")
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    syncbridge_cli(d, &["api-keys", "revoke", &read_id]);
    let revoked = http
        .get(format!("{base}/runs"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 401, "a revoked key");
    host.shutdown().await;
}

/// Runs the CLI; its stdout, after checking that it succeeded.
fn syncbridge_cli(data_dir: &str, args: &[&str]) -> String {
    let out = Command::new(bin_dir().join("syncbridge"))
        .args(["--data-dir", data_dir])
        .args(args)
        .output()
        .expect("syncbridge runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
