//! The deleted-records feed keeps a cursor (issue 14): a pass with nothing
//! new costs the same number of provider requests however many records were
//! ever deleted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use syncbridge_core::Store;
use syncbridge_core::connector::definition::ConnectorDef;
use syncbridge_core::connector::registry::{BUILTIN, Registry};
use syncbridge_core::model::RunStatus;
use syncbridge_tests::pipeline::{admin, assert_in_sync, deps, run_once};
use syncbridge_tests::*;

/// The shipped sandbox definition with the contacts feed's lookback at 0:
/// with the shipped 60 s, a no-change pass re-reads the last minute's
/// deletions, and in this test every deletion is in the last minute.
fn registry_without_feed_lookback() -> Registry {
    let text = BUILTIN
        .iter()
        .find(|(f, _)| *f == "sandbox.toml")
        .unwrap()
        .1;
    let from =
        r#"incremental = { param = "updatedAfter", format = "rfc3339", lookback_secs = 60 } }"#;
    assert!(text.contains(from), "the shipped feed has its filter");
    let to = r#"incremental = { param = "updatedAfter", format = "rfc3339", lookback_secs = 0 } }"#;
    let mut r = Registry::builtin();
    r.insert(ConnectorDef::from_toml("sandbox.toml", &text.replacen(from, to, 1)).unwrap());
    r
}

/// What was tried: 3,000 contacts pulled, then three rounds of 150
/// deletions in the sandbox, each followed by a pull (which deletes them)
/// and a pass with no change. What holds: each pull deletes exactly its 150,
/// the store equals the sandbox, and every no-change pass makes the same
/// number of requests (counted at the sandbox) though the archive grows
/// from 150 to 450 records: 2 each (one list page, one feed page). Before
/// the fix the feed was read from the start on every run: 3, 4 and then 6
/// requests, one more per 100 records ever archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_change_pass_costs_the_same_after_many_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(3000).await;
    let base = sbx.base_url();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let task = add_connection(&*store, "c1", &base, &["contacts"], None)
        .await
        .remove(0);
    let deps = deps(store.clone(), registry_without_feed_lookback());
    let first = run_once(&deps, &task).await;
    assert_eq!(
        (first.status, first.counts.created),
        (RunStatus::Succeeded, 3000)
    );
    let mut quiet_requests = Vec::new();
    for round in 0..3u64 {
        // With the feed's lookback at 0, the next pass asks for deletions
        // strictly after the millisecond the last pass read its clock in,
        // and the sandbox stamps a mutation's deletions with one timestamp:
        // a mutation within that same millisecond (the in-process sandbox
        // answers in well under one) would be outside the window. Real
        // feeds keep the shipped 60 s lookback for exactly this; here the
        // mutation waits for the next millisecond (this failed about one
        // run in seven without it).
        tokio::time::sleep(Duration::from_millis(2)).await;
        admin(
            &base,
            "mutate",
            json!({"object": "contacts", "delete": 150, "seed": round}),
        )
        .await;
        let run = run_once(&deps, &task).await;
        assert_eq!(
            (run.status, run.counts.deleted),
            (RunStatus::Succeeded, 150),
            "round {round}: {run:?}"
        );
        let before = sbx.stats().requests;
        let quiet = run_once(&deps, &task).await;
        assert_eq!(quiet.status, RunStatus::Succeeded);
        assert_eq!(
            (
                quiet.counts.created,
                quiet.counts.updated,
                quiet.counts.deleted
            ),
            (0, 0, 0)
        );
        quiet_requests.push(sbx.stats().requests - before);
    }
    assert_in_sync(&*store, &task, &base).await;
    assert!(
        quiet_requests.iter().all(|n| *n == quiet_requests[0]),
        "requests of the no-change passes: {quiet_requests:?}"
    );
    assert!(
        quiet_requests[0] <= 2,
        "one list page and one feed page: {quiet_requests:?}"
    );
}
