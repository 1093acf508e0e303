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
//! shows a key, and a key revoked by the CLI is refused at once; health
//! shows the inbound worker's heartbeat from after the run. And the
//! records feed read through the same front door (see its test), and a
//! change submitted twice under one `Idempotency-Key` pushed once.

use std::collections::BTreeMap;
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

    let refused = create_crm1(&http, &base, &read, &sbx.base_url()).await;
    assert_eq!(refused.status().as_u16(), 403, "a read key cannot write");
    // Before any run: the worker's beat must come after this (a run due at
    // creation may come first, and the heartbeat writes successes at most
    // every 10 s, so the beat may be that run's).
    let before_runs = syncbridge_core::Clock::now(&syncbridge_core::SystemClock);
    let created = create_crm1(&http, &base, &admin, &sbx.base_url()).await;
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap()
    );

    let run = sync_now(&host, &http, &base, &admin, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["object"], "contacts");
    assert_eq!(run["counts"]["created"], 120, "{run}");
    assert!(run["finished_at"].is_string());
    let tasks = get_json(&http, &format!("{base}/connections/crm1/tasks"), &read)
        .await
        .expect("the connection's tasks");
    assert_eq!(tasks["tasks"][0]["last_result"]["status"], "succeeded");

    // Health sees the worker's heartbeat (recorded by the handler that ran
    // the job, in the shared store) and counts the local queues.
    let (health, beat) = eventually(Duration::from_secs(30), "the worker's beat", || {
        let (http, base, read) = (http.clone(), base.clone(), read.clone());
        async move {
            let health = get_json(&http, &format!("{base}/health"), &read).await?;
            let beat = health["functions"]
                .as_array()?
                .iter()
                .find(|f| f["function"] == "SyncInboundWorker")?
                .clone();
            let last = syncbridge_core::Timestamp::parse(beat["last_invocation"].as_str()?)?;
            (last >= before_runs).then_some((health, beat))
        }
    })
    .await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(beat["last_success"], beat["last_invocation"], "{beat}");
    assert_eq!(beat["failures_last_hour"], 0, "{beat}");
    assert_eq!(health["queues"][0]["name"], "sync-inbound", "{health}");
    assert_eq!(health["queues"][0]["state"], "counted", "{health}");
    assert_eq!(health["queues"][0]["dead_lettered"], 0, "{health}");

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

/// The records feed through the real binaries: the whole feed equals the
/// sandbox (ids and content); after 1% of the records change remotely and
/// 10 are deleted, a sync and a read from the saved cursor return exactly
/// those, as `updated` and `deleted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_feed_over_the_api() {
    use syncbridge_tests::pipeline::{admin, expected};
    const RECORDS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sbx = sandbox(RECORDS).await;
    let key = api_key(d, "write");
    let host = start_host(host_config(dir.path())).await;
    let base = format!("{}/api/v1", host.url());
    let http = reqwest::Client::new();
    let created = create_crm1(&http, &base, &key, &sbx.base_url()).await;
    assert_eq!(created.status().as_u16(), 201);

    let first = sync_now(&host, &http, &base, &key, None).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let before = expected(&sbx.base_url(), "contacts").await;
    assert_eq!(before.len(), RECORDS);
    let (all, saved) = read_feed(&http, &base, &key, None).await;
    assert!(all.iter().all(|(_, a, _)| a == "added"));
    let content = |v: &[(String, String, String)]| -> BTreeMap<String, String> {
        v.iter().map(|(id, _, h)| (id.clone(), h.clone())).collect()
    };
    assert_eq!(all.len(), RECORDS, "every record once");
    assert_eq!(content(&all), before, "the feed equals the sandbox");

    admin(
        &sbx.base_url(),
        "mutate",
        json!({"object": "contacts", "update": RECORDS / 100, "delete": 10, "seed": 17}),
    )
    .await;
    let after = expected(&sbx.base_url(), "contacts").await;
    let mut want: Vec<(String, &str)> = before
        .iter()
        .filter_map(|(id, h)| match after.get(id) {
            None => Some((id.clone(), "deleted")),
            Some(now) if now != h => Some((id.clone(), "updated")),
            Some(_) => None,
        })
        .collect();
    assert_eq!(
        want.len(),
        RECORDS / 100 + 10,
        "the sandbox changed 1% and deleted 10"
    );
    let second = sync_now(&host, &http, &base, &key, first["id"].as_str()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let (since, _) = read_feed(&http, &base, &key, saved).await;
    let mut have: Vec<(String, &str)> = since
        .iter()
        .map(|(id, a, _)| (id.clone(), a.as_str()))
        .collect();
    have.sort();
    want.sort();
    assert_eq!(have, want, "exactly the changes since the saved cursor");
    for (id, action, hash) in &since {
        if action == "updated" {
            assert_eq!(Some(hash), after.get(id), "{id}: the new content");
        }
    }
    host.shutdown().await;
}

/// Reads crm1's contacts feed from `cursor` to its end in pages of 100:
/// (id, last action, content hash of the fields) in feed order, and the
/// last record's cursor to poll from.
async fn read_feed(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    mut cursor: Option<String>,
) -> (Vec<(String, String, String)>, Option<String>) {
    let mut out = Vec::new();
    loop {
        let mut url = format!("{base}/records?connection_id=crm1&object=contacts&limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = http.get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let page: Value = page.json().await.unwrap();
        for r in page["records"].as_array().unwrap() {
            cursor = Some(r["_meta"]["cursor"].as_str().unwrap().to_owned());
            out.push((
                r["id"].as_str().unwrap().to_owned(),
                r["_meta"]["last_action"].as_str().unwrap().to_owned(),
                syncbridge_core::model::content_hash(&r["fields"]),
            ));
        }
        if page["next_cursor"].is_null() {
            return (out, cursor);
        }
    }
}

/// Creates the sandbox connection crm1 (contacts, hourly) over the API.
async fn create_crm1(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    sandbox_url: &str,
) -> reqwest::Response {
    let body = json!({
        "id": "crm1", "tenant": "acme", "provider": "sandbox",
        "base_url": sandbox_url, "objects": ["contacts"], "interval_secs": 3600,
    });
    http.post(format!("{base}/connections"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// "Sync now" for crm1's contacts, a scheduler tick, and the run it made
/// once finished (the newest run, other than `previous`).
async fn sync_now(
    host: &syncbridge_localhost::LocalHostHandle,
    http: &reqwest::Client,
    base: &str,
    key: &str,
    previous: Option<&str>,
) -> Value {
    let sync = http
        .post(format!("{base}/connections/crm1/sync"))
        .bearer_auth(key)
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
    eventually(Duration::from_secs(60), "a finished run", || {
        let (http, base, key) = (http.clone(), base.to_owned(), key.to_owned());
        async move {
            let page = get_json(&http, &format!("{base}/runs?connection_id=crm1"), &key).await?;
            let newest = page["runs"].as_array()?.first()?;
            let done = newest["status"] == "succeeded" || newest["status"] == "failed";
            (done && newest["id"].as_str() != previous).then(|| newest.clone())
        }
    })
    .await
}

/// A change submitted twice under one `Idempotency-Key` through the real
/// binaries: the second answer is the first replayed, the outbound worker
/// pushes once (one create reaches the sandbox: one POST in its own route
/// counts, one record with the email in its own records), and the record
/// ends `pushed` under the provider's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_with_an_idempotency_key_pushes_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sbx = sandbox(5).await;
    let key = api_key(d, "write");
    let host = start_host(host_config(dir.path())).await;
    let base = format!("{}/api/v1", host.url());
    let http = reqwest::Client::new();
    let created = create_crm1(&http, &base, &key, &sbx.base_url()).await;
    assert_eq!(created.status().as_u16(), 201);
    let run = sync_now(&host, &http, &base, &key, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let body =
        json!({"reference": "p-1", "fields": {"email": "idem@example.com", "first_name": "Once"}});
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(format!("{base}/connections/crm1/objects/contacts/records"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "order-17")
            .json(&body)
            .send()
            .await
            .unwrap();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        let status = r.status().as_u16();
        answers.push((status, replayed, r.json::<Value>().await.unwrap()));
    }
    assert_eq!(
        (answers[0].0, answers[0].1),
        (202, false),
        "{:?}",
        answers[0]
    );
    assert_eq!(
        (answers[1].0, answers[1].1),
        (202, true),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[0].2, answers[1].2, "the same answer");
    assert_eq!(answers[0].2["id"], "local:p-1");

    // The outbound worker pushes it (the host delivers `sync-outbound`).
    let with_email = || async {
        let all: Value = reqwest::get(format!("{}/_sandbox/records/contacts", sbx.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["properties"]["email"] == "idem@example.com")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let provider_id = eventually(
        Duration::from_secs(60),
        "the create at the sandbox",
        || async { with_email().await.into_iter().next() },
    )
    .await;
    let status = eventually(Duration::from_secs(60), "the record pushed", || {
        let (http, url, key) = (
            http.clone(),
            format!("{base}/connections/crm1/objects/contacts/records/{provider_id}/status"),
            key.clone(),
        );
        async move {
            let s = get_json(&http, &url, &key).await?;
            (s["status"] == "pushed").then_some(s)
        }
    })
    .await;
    assert_eq!(status["id"], provider_id.as_str());
    // Let any duplicate push have its chance before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(with_email().await.len(), 1, "exactly one record created");
    let posts: u64 = sbx
        .stats()
        .routes
        .iter()
        .filter(|(route, _)| route.starts_with("POST /crm/v3/objects"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        posts,
        1,
        "exactly one POST reached the sandbox: {:?}",
        sbx.stats().routes
    );
    host.shutdown().await;
}
