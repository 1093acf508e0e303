//! Webhooks end to end: the real `syncbridge` CLI registers a connection with
//! a Standard Webhooks secret, the real handlers run under the local host
//! (what `syncbridge up` runs), and signed events are posted to
//! `/api/webhooks/<id>` on the host's front door.
//!
//! What was tried: 5 distinct events, each delivered three times (providers
//! retry), plus a forged one. What must hold: every genuine delivery is
//! answered 2xx (202 first, 200 duplicate after), the forged one 401, and
//! exactly one sync job per distinct event reaches SyncInboundWorker.

use std::time::Duration;

use syncbridge_core::Store;
use syncbridge_localhost::HostEvent;
use syncbridge_tests::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Three deliveries of each of five events yield exactly five sync jobs; a forged delivery yields none.
#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_once_despite_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(50).await;
    let out = std::process::Command::new(bin_dir().join("syncbridge"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "connections",
            "add",
            "--tenant",
            "acme",
            "--id",
            "conn1",
        ])
        .args([
            "--provider",
            "sandbox",
            "--base-url",
            &sbx.base_url(),
            "--objects",
            "contacts",
        ])
        .args([
            "--webhook-scheme",
            "standard-webhooks",
            "--webhook-secret",
            SECRET,
        ])
        .output()
        .expect("syncbridge runs");
    assert!(
        out.status.success(),
        "connections add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(SECRET),
        "the CLI never prints the secret"
    );

    let (tx, mut events) = tokio::sync::broadcast::channel(1024);
    let mut cfg = host_config(dir.path());
    cfg.events = Some(tx);
    let host = start_host(cfg).await;
    let url = format!("{}/api/webhooks/conn1", host.url());
    let http = reqwest::Client::new();
    let now = unix_now();
    let mut statuses = Vec::new();
    for delivery in 0..3 {
        for i in 0..5 {
            let body = format!(
                r#"{{"id":"evt_{i}","type":"contact.updated","object":"contacts","objectId":"{i}"}}"#
            );
            let rb = signed_webhook_post(&http, &url, body, SECRET, &format!("msg_{i}"));
            let status = rb.send().await.unwrap().status().as_u16();
            statuses.push((delivery, i, status));
        }
    }
    for (delivery, i, status) in &statuses {
        let want = if *delivery == 0 { 202 } else { 200 };
        assert_eq!(*status, want, "delivery {delivery} of event {i}");
    }
    let forged = http
        .post(&url)
        .header("webhook-id", "msg_x")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            "v1,Zm9yZ2VkIHNpZ25hdHVyZSBvZiAzMiBieXRlcyBsb25nIQ==",
        )
        .body(r#"{"id":"evt_x","object":"contacts"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);

    // Count the worker invocations the host made (each delivery of a job is one).
    let mut jobs = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while jobs < 5 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(HostEvent::Invocation {
                function,
                succeeded,
                detail,
                ..
            })) if function == "SyncInboundWorker" => {
                assert!(succeeded, "worker invocation failed: {detail}");
                jobs += 1;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("only {jobs} worker invocations within 60 s"),
        }
    }
    // Nothing more arrives: redeliveries were deduplicated, not enqueued.
    let extra = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(HostEvent::Invocation { function, .. }) = events.recv().await
                && function == "SyncInboundWorker"
            {
                return;
            }
        }
    })
    .await;
    assert!(extra.is_err(), "a sixth sync job reached the worker");
    let store = store(dir.path());
    assert!(store.list_quarantine(10).await.unwrap().is_empty());
    let conn = syncbridge_core::ConnectionId::parse("conn1").unwrap();
    let contacts = syncbridge_core::ObjectType::parse("contacts").unwrap();
    assert_eq!(
        store.count_records(&conn, &contacts).await.unwrap(),
        50,
        "the follow-up sync ran"
    );
    host.shutdown().await;
}
