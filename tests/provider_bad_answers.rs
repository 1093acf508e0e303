//! Bad or surprising provider answers fail the page with a clear error and
//! leave committed state untouched. Each test runs a real inbound job (the
//! worker's code, a real SQLite store) of a shipped connector against a
//! loopback server whose first page is good and whose second page carries
//! one defect; it checks the run's error names the defect, the first page's
//! records and the cursor pointing at the second page are what is committed,
//! and nothing of the bad page is.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::model::{Connection, ConnectionStatus, RunStatus, SyncTask};
use syncbridge_core::pipeline::inbound::InboundCursor;
use syncbridge_core::{ConnectionId, ObjectType, Store, TenantId, Timestamp};
use syncbridge_tests::pipeline::{deps, run_once};
use syncbridge_tests::provider_harness::{FixtureServer, Route};
use syncbridge_tests::{inbound_task, store};

/// A connection of `provider` to `base_url` with one inbound task for `object`.
async fn task(
    store: &dyn Store,
    provider: &str,
    base_url: &str,
    object: &str,
    settings: &[(&str, &str)],
) -> SyncTask {
    let conn = Connection {
        id: ConnectionId::parse("c1").unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: provider.into(),
        status: ConnectionStatus::Active,
        base_url: Some(base_url.into()),
        webhook: None,
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        conflicts: Default::default(),
        created_at: Timestamp::from_millis(0),
    };
    store.put_connection(&conn).await.unwrap();
    let t = inbound_task(&conn, ObjectType::parse(object).unwrap(), Timestamp::EPOCH);
    store.put_task(&t).await.unwrap();
    t
}

/// Runs one job of `task` and answers the run's error, the stored ids and
/// the stored cursor.
async fn run_bad(store: Arc<dyn Store>, task: &SyncTask) -> (String, Vec<String>, InboundCursor) {
    let deps = deps(store.clone(), Registry::builtin());
    let run = run_once(&deps, task).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let ids = store
        .list_records(&task.connection, &task.object, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.external_id.to_string())
        .collect();
    let t = store.get_task(&task.id).await.unwrap().unwrap();
    (
        run.error.unwrap_or_default(),
        ids,
        InboundCursor::parse(t.cursor.as_deref()),
    )
}

/// A Zendesk ticket (from the incremental export guide's example) with `id`.
fn ticket(id: u64, updated_at: Value) -> Value {
    json!({"id": id, "subject": "Help, my printer is on fire!", "status": "open",
           "priority": "high", "type": "incident", "requester_id": 20978392,
           "assignee_id": 235323, "tags": ["enterprise"], "updated_at": updated_at})
}

/// What was tried: a Zendesk export whose second page has a ticket whose
/// `updated_at` is an array instead of RFC 3339 text. What holds: the run
/// fails naming the record, the field and what was found; the first page's
/// two tickets and the cursor to the second page are committed, the bad
/// page's tickets (also the well-formed one before the bad one) are not.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_of_another_type_fails_its_page() {
    let f = FixtureServer::start(vec![
        Route::inline(
            "GET",
            "/api/v2/incremental/tickets/cursor.json",
            200,
            json!({"after_cursor": "c2", "end_of_stream": false,
                   "tickets": [ticket(2, json!("2026-01-02T00:00:00Z")), ticket(3, json!(["2026-01-03T00:00:00Z"]))]}),
        )
        .when("cursor"),
        Route::inline(
            "GET",
            "/api/v2/incremental/tickets/cursor.json",
            200,
            json!({"after_cursor": "c1", "end_of_stream": false,
                   "tickets": [ticket(1, json!("2026-01-01T00:00:00Z")), ticket(4, json!("2026-01-01T00:00:01Z"))]}),
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let t = task(
        &*store,
        "zendesk",
        &f.base,
        "tickets",
        &[("subdomain", "x")],
    )
    .await;
    let (error, ids, cursor) = run_bad(store, &t).await;
    assert!(
        error.contains("record #1 has `updated_at` = [\"2026-01-03T00:00:00Z\"], not a time"),
        "{error}"
    );
    assert_eq!(ids, ["1", "4"], "only the good page is committed");
    assert_eq!(
        cursor.page.as_deref(),
        Some("c1"),
        "the next run retries the bad page"
    );
}

/// What was tried: a Zendesk export whose second page says the stream goes
/// on (`end_of_stream` false) but has no `after_cursor`. What holds: the run
/// fails saying so instead of ending the pass as if complete (which would
/// skip every later change); the first page stays committed with the cursor
/// that fetches the bad page again.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_cursor_fails_its_page() {
    let f = FixtureServer::start(vec![
        Route::inline(
            "GET",
            "/api/v2/incremental/tickets/cursor.json",
            200,
            json!({"end_of_stream": false, "tickets": [ticket(2, json!("2026-01-02T00:00:00Z"))]}),
        )
        .when("cursor"),
        Route::inline(
            "GET",
            "/api/v2/incremental/tickets/cursor.json",
            200,
            json!({"after_cursor": "c1", "end_of_stream": false,
                   "tickets": [ticket(1, json!("2026-01-01T00:00:00Z"))]}),
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let t = task(
        &*store,
        "zendesk",
        &f.base,
        "tickets",
        &[("subdomain", "x")],
    )
    .await;
    let (error, ids, cursor) = run_bad(store, &t).await;
    assert!(
        error.contains(
            "the page says more pages follow (`end_of_stream` is false) but has no cursor at `after_cursor`"
        ),
        "{error}"
    );
    assert_eq!(ids, ["1"]);
    assert_eq!(cursor.page.as_deref(), Some("c1"));
    assert_eq!(cursor.stream, None, "no stream position from a broken pass");
}

/// What was tried: a Stripe customer list whose second page is empty but
/// says `has_more`, and a Pipedrive person list whose second page is empty
/// with a `next_cursor`. What holds: both runs fail ("no records but points
/// to a next page") instead of following the link (a provider looping
/// forever), and keep the first page and its cursor.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_page_with_a_next_link_fails() {
    let customer = |id: &str| json!({"id": id, "object": "customer", "email": "a@example.com", "name": "A", "phone": null, "description": null, "created": 1680893993});
    let stripe = FixtureServer::start(vec![
        Route::inline("GET", "/v1/customers", 200, json!({"object": "list", "has_more": true, "data": []}))
            .when("starting_after"),
        Route::inline(
            "GET",
            "/v1/customers",
            200,
            json!({"object": "list", "has_more": true, "data": [customer("cus_1"), customer("cus_2")]}),
        ),
    ])
    .await;
    let person = json!({"id": 1, "name": "Will Smith", "update_time": "2024-01-09T13:21:10Z"});
    let pipedrive = FixtureServer::start(vec![
        Route::inline(
            "GET",
            "/api/v2/persons",
            200,
            json!({"success": true, "data": [], "additional_data": {"next_cursor": "c2"}}),
        )
        .when("cursor"),
        Route::inline(
            "GET",
            "/api/v2/persons",
            200,
            json!({"success": true, "data": [person], "additional_data": {"next_cursor": "c1"}}),
        ),
    ])
    .await;
    for (provider, base, object, want_ids, want_page) in [
        (
            "stripe",
            &stripe.base,
            "customers",
            vec!["cus_1", "cus_2"],
            "cus_2",
        ),
        ("pipedrive", &pipedrive.base, "persons", vec!["1"], "c1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(store(dir.path()));
        let t = task(&*store, provider, base, object, &[]).await;
        let (error, ids, cursor) = run_bad(store, &t).await;
        assert!(
            error.contains("the page has no records but points to a next page"),
            "{provider}: {error}"
        );
        assert_eq!(ids, want_ids, "{provider}");
        assert_eq!(cursor.page.as_deref(), Some(want_page), "{provider}");
    }
}
