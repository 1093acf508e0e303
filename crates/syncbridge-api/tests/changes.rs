//! Changes through the API's router against a real embedded state (SQLite
//! store, local queue in a temp dir): create / update / delete and the push
//! status, `Idempotency-Key` (replay, reuse, in flight, scopes, a refusal
//! giving the key back), read-only objects, conflicts and their
//! resolution, the audit, bad input with nothing written.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use syncbridge_api::keys;
use syncbridge_core::apikeys::ApiScope;
use syncbridge_core::model::{AuditRecord, LocalState, Record, content_hash};
use syncbridge_core::store::{ClaimOutcome, IdempotencyClaim, RecordWrite};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, Timestamp};
use syncbridge_functions::{AppState, Settings};
use tower::ServiceExt;

struct Api {
    app: AppState,
    router: Router,
    admin: String,
    write: String,
    write_id: String,
    read: String,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

const RECORDS: &str = "/api/v1/connections/c1/objects/contacts/records";

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let app = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let mut made = Vec::new();
    for scope in [ApiScope::Admin, ApiScope::Write, ApiScope::Read] {
        let k = keys::create(app.store.as_ref(), scope.as_str(), scope, Timestamp::EPOCH)
            .await
            .unwrap();
        made.push((k.key.expose().to_owned(), k.record.id));
    }
    let a = Api {
        router: syncbridge_api::router(app.clone()),
        app,
        admin: made[0].0.clone(),
        write: made[1].0.clone(),
        write_id: made[1].1.clone(),
        read: made[2].0.clone(),
        _dir: dir,
    };
    for body in [
        r#"{"id":"c1","tenant":"acme","provider":"sandbox","base_url":"http://127.0.0.1:9"}"#,
        r#"{"id":"gh","tenant":"acme","provider":"github","base_url":"http://127.0.0.1:9","settings":{"owner":"o","repo":"r"}}"#,
    ] {
        let made = a
            .call("POST", "/api/v1/connections", &a.write, None, Some(body))
            .await;
        assert_eq!(made.status, 201, "{:?}", made.body);
    }
    a
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        idem: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn record(&self, id: &str) -> Option<Record> {
        self.app
            .store
            .get_record(&c1(), &contacts(), &ExternalId::parse(id).unwrap())
            .await
            .unwrap()
    }

    async fn local_changes(&self) -> usize {
        self.app
            .store
            .list_local_changes(None, 1000)
            .await
            .unwrap()
            .len()
    }
}

fn c1() -> ConnectionId {
    ConnectionId::parse("c1").unwrap()
}

fn contacts() -> ObjectType {
    ObjectType::parse("contacts").unwrap()
}

fn assert_problem(r: &Reply, status: u16, slug: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{:?}",
        r.body
    );
    assert_eq!(
        r.body["type"],
        format!("urn:syncbridge:problem:{slug}"),
        "{:?}",
        r.body
    );
}

/// A pulled contact `id` of c1 (all five canonical fields), optionally with a local state.
fn contact(id: &str, email: &str, local: Option<LocalState>) -> Record {
    let data = json!({"company": null, "email": email, "first_name": "Ada", "last_name": null, "phone": null});
    Record {
        connection: c1(),
        object: contacts(),
        external_id: ExternalId::parse(id).unwrap(),
        hash: content_hash(&data),
        data,
        version: 1,
        remote_updated_at: Some(Timestamp::from_millis(1_000)),
        local,
    }
}

async fn insert(a: &Api, r: &Record, audit: Vec<AuditRecord>) {
    a.app
        .store
        .write_record(&RecordWrite {
            connection: r.connection.clone(),
            object: r.object.clone(),
            external_id: r.external_id.clone(),
            expect_version: None,
            next: Some(r.clone()),
            audit,
        })
        .await
        .unwrap();
}

/// Parked conflicts on `fields` (ours `o-<field>`, theirs `t-<field>`).
fn parked(fields: &[&str]) -> LocalState {
    serde_json::from_value(json!({
        "base": {"email": "base@x"},
        "local_updated_at": 2_000,
        "conflicts": fields.iter().map(|f| json!({
            "field": f, "base": "b", "local": format!("o-{f}"),
            "remote": format!("t-{f}"), "parked_at": 3_000,
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// What was tried: a create, a status read, an update of a pulled record,
/// its delete, a status of an unknown record, a change through a read key.
/// What holds: 202 with the record's id and `pending`; the change and its
/// outbox entry are stored (local state, push due); the update merges into
/// the stored fields; the delete is pending; 404 and 403 as problems.
#[tokio::test]
async fn create_update_delete_and_status() {
    let a = api().await;
    let made = a
        .call(
            "POST",
            RECORDS,
            &a.write,
            None,
            Some(r#"{"reference":"r1","fields":{"email":"new@x","first_name":"Neu"}}"#),
        )
        .await;
    assert_eq!(made.status, 202, "{:?}", made.body);
    assert_eq!(made.body["id"], "local:r1");
    assert_eq!(made.body["status"], "pending");
    let stored = a.record("local:r1").await.expect("stored");
    assert_eq!(stored.data["email"], "new@x");
    assert!(stored.local.unwrap().push_due_at.is_some(), "outbox entry");
    let status = a
        .call(
            "GET",
            &format!("{RECORDS}/local:r1/status"),
            &a.read,
            None,
            None,
        )
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "pending");

    insert(&a, &contact("101", "old@x", None), vec![]).await;
    let pushed = a
        .call("GET", &format!("{RECORDS}/101/status"), &a.read, None, None)
        .await;
    assert_eq!(pushed.body["status"], "pushed", "{:?}", pushed.body);
    let upd = a
        .call(
            "PATCH",
            &format!("{RECORDS}/101"),
            &a.write,
            None,
            Some(r#"{"fields":{"phone":"555"}}"#),
        )
        .await;
    assert_eq!(upd.status, 202, "{:?}", upd.body);
    assert_eq!(upd.body["status"], "pending");
    assert_eq!(upd.body["version"], 2);
    let rec = a.record("101").await.unwrap();
    assert_eq!(
        (rec.data["phone"].as_str(), rec.data["email"].as_str()),
        (Some("555"), Some("old@x")),
        "partial update"
    );
    let del = a
        .call("DELETE", &format!("{RECORDS}/101"), &a.write, None, None)
        .await;
    assert_eq!(del.status, 202, "{:?}", del.body);
    assert_eq!(del.body["deleted"], true);
    assert!(a.record("101").await.unwrap().local.unwrap().deleted);

    assert_problem(
        &a.call(
            "GET",
            &format!("{RECORDS}/nope/status"),
            &a.read,
            None,
            None,
        )
        .await,
        404,
        "not-found",
    );
    assert_problem(
        &a.call(
            "PATCH",
            &format!("{RECORDS}/nope"),
            &a.write,
            None,
            Some(r#"{"fields":{}}"#),
        )
        .await,
        404,
        "not-found",
    );
    assert_problem(
        &a.call("POST", RECORDS, &a.read, None, Some(r#"{"fields":{}}"#))
            .await,
        403,
        "forbidden",
    );
}

/// What was tried: a push status of records whose local state is a
/// retrying push, a parked push and a parked conflict.
/// What holds: `pending` (with its last error), `parked`, `conflict` (with the field).
#[tokio::test]
async fn push_statuses() {
    let a = api().await;
    let mut retrying: LocalState = parked(&[]);
    retrying.push_due_at = Some(Timestamp::from_millis(9_000));
    retrying.attempts = 2;
    retrying.last_error = Some("503 from the provider".into());
    let mut refused = parked(&[]);
    refused.last_error = Some("422: email is invalid".into());
    insert(&a, &contact("1", "a@x", Some(retrying)), vec![]).await;
    insert(&a, &contact("2", "b@x", Some(refused)), vec![]).await;
    insert(&a, &contact("3", "c@x", Some(parked(&["email"]))), vec![]).await;
    let status = |id: &'static str| {
        let a = &a;
        async move {
            a.call(
                "GET",
                &format!("{RECORDS}/{id}/status"),
                &a.read,
                None,
                None,
            )
            .await
            .body
        }
    };
    let s1 = status("1").await;
    assert_eq!(
        (s1["status"].as_str(), s1["attempts"].as_u64()),
        (Some("pending"), Some(2))
    );
    assert_eq!(s1["last_error"], "503 from the provider");
    assert_eq!(status("2").await["status"], "parked");
    let s3 = status("3").await;
    assert_eq!(s3["status"], "conflict");
    assert_eq!(s3["conflicts"], json!(["email"]));
}

/// What was tried: bad input on every change route (unknown connection,
/// object or field, malformed JSON, wrong types, unknown body keys, an
/// oversize body, a bad key header) and a change of a read-only object.
/// What holds: each is a problem document (404, 400, 413, 422
/// `read-only-object`) and nothing is written.
#[tokio::test]
async fn bad_input_writes_nothing() {
    let a = api().await;
    let w = a.write.clone();
    for (path, body, status, slug) in [
        (
            "/api/v1/connections/nope/objects/contacts/records",
            r#"{"fields":{}}"#,
            404,
            "not-found",
        ),
        (
            "/api/v1/connections/c1/objects/widgets/records",
            r#"{"fields":{}}"#,
            404,
            "not-found",
        ),
        (
            RECORDS,
            r#"{"fields":{"shoe_size":"44"}}"#,
            400,
            "invalid-request",
        ),
        (RECORDS, "{not json", 400, "invalid-request"),
        (RECORDS, r#"{"fields":"email=x"}"#, 400, "invalid-request"),
        (
            RECORDS,
            r#"{"fields":{},"extra":1}"#,
            400,
            "invalid-request",
        ),
        (
            RECORDS,
            r#"{"reference":"bad\nline","fields":{}}"#,
            400,
            "invalid-request",
        ),
        (
            "/api/v1/connections/gh/objects/issues/records",
            r#"{"fields":{"title":"x"}}"#,
            422,
            "read-only-object",
        ),
    ] {
        let r = a.call("POST", path, &w, Some("k-bad"), Some(body)).await;
        assert_problem(&r, status, slug);
    }
    let big = format!(
        r#"{{"fields":{{"email":"{}"}}}}"#,
        "x".repeat(syncbridge_api::MAX_BODY_BYTES)
    );
    assert_problem(
        &a.call("POST", RECORDS, &w, None, Some(&big)).await,
        413,
        "body-too-large",
    );
    let long = "k".repeat(300);
    assert_problem(
        &a.call("POST", RECORDS, &w, Some(&long), Some(r#"{"fields":{}}"#))
            .await,
        400,
        "invalid-request",
    );
    assert_eq!(a.local_changes().await, 0, "nothing written");
    // The refusals gave their key back: the same key is fine for a good request.
    let ok = a
        .call(
            "POST",
            RECORDS,
            &w,
            Some("k-bad"),
            Some(r#"{"fields":{"email":"e@x"}}"#),
        )
        .await;
    assert_eq!(ok.status, 202, "{:?}", ok.body);
}

/// What was tried: one create sent twice under one key, then under the same
/// key with another body, the same key from another API key, a key claimed
/// by a request still running, and one whose claim lapsed 61 s ago.
/// What holds: the repeat answers the same status and body with
/// `Idempotent-Replayed: true` and creates nothing more; another body is 422
/// `idempotency-key-reused`; keys are per API key; in flight is 409; a
/// lapsed claim is taken over.
#[tokio::test]
async fn idempotency_keys() {
    let a = api().await;
    let body = r#"{"fields":{"email":"once@x"}}"#;
    let first = a
        .call("POST", RECORDS, &a.write, Some("key-1"), Some(body))
        .await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let same_body_reordered = r#"{ "fields" : { "email" : "once@x" } }"#;
    let again = a
        .call(
            "POST",
            RECORDS,
            &a.write,
            Some("key-1"),
            Some(same_body_reordered),
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the same answer");
    assert_eq!(a.local_changes().await, 1, "one record, not two");
    let other = a
        .call(
            "POST",
            RECORDS,
            &a.write,
            Some("key-1"),
            Some(r#"{"fields":{"email":"two@x"}}"#),
        )
        .await;
    assert_problem(&other, 422, "idempotency-key-reused");
    let elsewhere = a
        .call("POST", RECORDS, &a.admin, Some("key-1"), Some(body))
        .await;
    assert_eq!(elsewhere.status, 202, "another API key's keys are its own");
    assert!(elsewhere.headers.get("idempotent-replayed").is_none());
    assert_eq!(a.local_changes().await, 2);

    // A request under `key-2` is still running (its claim is in the store).
    let body3 = json!({"fields": {"email": "three@x"}});
    let claim = |token: &str, now: Timestamp| IdempotencyClaim {
        scope: a.write_id.clone(),
        key: "key-2".into(),
        fingerprint: syncbridge_api::idempotency::fingerprint(
            &Method::POST,
            "/v1/connections/c1/objects/contacts/records",
            &body3,
        ),
        token: token.into(),
        now,
    };
    let now = a.app.clock.now();
    assert_eq!(
        a.app
            .store
            .claim_idempotency_key(&claim("t", now))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let busy = a
        .call(
            "POST",
            RECORDS,
            &a.write,
            Some("key-2"),
            Some(&body3.to_string()),
        )
        .await;
    assert_problem(&busy, 409, "idempotency-key-in-flight");
    assert_eq!(a.local_changes().await, 2, "nothing done while in flight");
    // `key-3`'s request crashed 61 s ago: its claim lapsed.
    let lapsed = IdempotencyClaim {
        key: "key-3".into(),
        ..claim("t", now.sub(std::time::Duration::from_secs(61)))
    };
    a.app.store.claim_idempotency_key(&lapsed).await.unwrap();
    let taken = a
        .call(
            "POST",
            RECORDS,
            &a.write,
            Some("key-3"),
            Some(&body3.to_string()),
        )
        .await;
    assert_eq!(taken.status, 202, "{:?}", taken.body);
    assert_eq!(a.local_changes().await, 3);
}

/// What was tried: three records with parked conflicts listed in pages of
/// one, then resolved: `take: ours` (every field), `take: theirs` for one of
/// two fields, `value` for a field (under an idempotency key, sent twice);
/// a resolve of a record without conflicts.
/// What holds: the list shows base/ours/theirs per field and pages by
/// cursor; each resolution is stored as the next push's override
/// (`value` becomes our data), the rest stays parked; no conflict is 409.
#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario: tests are exempt")]
async fn conflicts_and_resolve() {
    let a = api().await;
    insert(
        &a,
        &contact("1", "a@x", Some(parked(&["email", "phone"]))),
        vec![],
    )
    .await;
    insert(
        &a,
        &contact("2", "b@x", Some(parked(&["email", "phone"]))),
        vec![],
    )
    .await;
    insert(&a, &contact("3", "c@x", Some(parked(&["email"]))), vec![]).await;
    insert(&a, &contact("4", "d@x", None), vec![]).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/conflicts?connection_id=c1&limit=1".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = a.call("GET", &path, &a.read, None, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for c in page.body["conflicts"].as_array().unwrap() {
            seen.push(c["record_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["1", "2", "3"]);
    let all = a
        .call("GET", "/api/v1/conflicts", &a.read, None, None)
        .await;
    let first = &all.body["conflicts"][0];
    assert_eq!(
        first["fields"][0],
        json!({"field": "email", "base": "b", "ours": "o-email", "theirs": "t-email",
               "parked_at": Timestamp::from_millis(3_000).to_rfc3339()})
    );
    let foreign = syncbridge_api::pages::encode("conflicts", &["", "c1", "contacts", "1"]);
    assert_problem(
        &a.call(
            "GET",
            &format!("/api/v1/conflicts?connection_id=c1&cursor={foreign}"),
            &a.read,
            None,
            None,
        )
        .await,
        400,
        "invalid-cursor",
    );

    let resolve = |id: &str| format!("{RECORDS}/{id}/resolve");
    let r1 = a
        .call(
            "POST",
            &resolve("1"),
            &a.write,
            None,
            Some(r#"{"take":"ours"}"#),
        )
        .await;
    assert_eq!(r1.status, 202, "{:?}", r1.body);
    assert_eq!(r1.body["status"], "pending");
    let l1 = a.record("1").await.unwrap().local.unwrap();
    assert!(l1.conflicts.is_empty());
    assert_eq!(l1.resolutions.len(), 2);
    assert!(
        l1.resolutions
            .values()
            .all(|s| *s == syncbridge_core::merge::Side::Local)
    );

    let r2 = a
        .call(
            "POST",
            &resolve("2"),
            &a.write,
            None,
            Some(r#"{"take":"theirs","fields":["phone"]}"#),
        )
        .await;
    assert_eq!(
        r2.body["status"], "conflict",
        "email stays parked: {:?}",
        r2.body
    );
    let l2 = a.record("2").await.unwrap().local.unwrap();
    assert_eq!(
        l2.resolutions["phone"],
        syncbridge_core::merge::Side::Remote
    );
    assert_eq!(l2.conflicts.len(), 1);

    let body = r#"{"value":{"email":"chosen@x"}}"#;
    let r3 = a
        .call("POST", &resolve("3"), &a.write, Some("res-3"), Some(body))
        .await;
    assert_eq!(r3.status, 202, "{:?}", r3.body);
    let rec3 = a.record("3").await.unwrap();
    assert_eq!(rec3.data["email"], "chosen@x", "the value becomes ours");
    assert_eq!(rec3.hash, content_hash(&rec3.data));
    assert_eq!(
        rec3.local.unwrap().resolutions["email"],
        syncbridge_core::merge::Side::Local
    );
    let again = a
        .call("POST", &resolve("3"), &a.write, Some("res-3"), Some(body))
        .await;
    assert_eq!(again.status, 202, "replayed, not 409: {:?}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, r3.body);

    assert_problem(
        &a.call(
            "POST",
            &resolve("4"),
            &a.write,
            None,
            Some(r#"{"take":"ours"}"#),
        )
        .await,
        400,
        "invalid-request",
    );
    assert_problem(
        &a.call(
            "POST",
            &resolve("4"),
            &a.write,
            None,
            Some(r#"{"take":"ours","fields":["email"]}"#),
        )
        .await,
        409,
        "conflict",
    );
    assert_problem(
        &a.call(
            "POST",
            &resolve("4"),
            &a.write,
            None,
            Some(r#"{"take":"ours","value":{"email":1}}"#),
        )
        .await,
        400,
        "invalid-request",
    );
}

/// What was tried: five decisions on c1's records over three writes and one
/// on another connection, read in pages of two; a cursor of another
/// connection's audit.
/// What holds: oldest first, every entry once, only c1's; the foreign
/// cursor is a 400.
#[tokio::test]
async fn audit_pages() {
    let a = api().await;
    let made = a
        .call("POST", "/api/v1/connections", &a.write, None,
            Some(r#"{"id":"c2","tenant":"acme","provider":"sandbox","base_url":"http://127.0.0.1:9"}"#))
        .await;
    assert_eq!(made.status, 201);
    let entry = |r: &Record, key: &str, ms: i64| AuditRecord {
        key: key.into(),
        connection: r.connection.clone(),
        object: r.object.clone(),
        external_id: r.external_id.clone(),
        at: Timestamp::from_millis(ms),
        entry: json!({"decision": key}),
    };
    let r1 = contact("1", "a@x", None);
    let r2 = contact("2", "b@x", None);
    insert(&a, &r1, vec![entry(&r1, "d1", 10), entry(&r1, "d2", 10)]).await;
    insert(&a, &r2, vec![entry(&r2, "d3", 20), entry(&r2, "d0", 5)]).await;
    let r3 = contact("3", "c@x", None);
    insert(&a, &r3, vec![entry(&r3, "d4", 30)]).await;
    let mut other = contact("9", "z@x", None);
    other.connection = ConnectionId::parse("c2").unwrap();
    insert(&a, &other, vec![entry(&other, "x", 1)]).await;
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/connections/c1/audit?limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = a.call("GET", &path, &a.read, None, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for e in page.body["entries"].as_array().unwrap() {
            keys.push(e["key"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(keys, ["d0", "d1", "d2", "d3", "d4"]);
    let c2_page = a
        .call(
            "GET",
            "/api/v1/connections/c2/audit?limit=1",
            &a.read,
            None,
            None,
        )
        .await;
    let c2_cursor = c2_page.body["next_cursor"].as_str().unwrap().to_owned();
    assert_problem(
        &a.call(
            "GET",
            &format!("/api/v1/connections/c1/audit?cursor={c2_cursor}"),
            &a.read,
            None,
            None,
        )
        .await,
        400,
        "invalid-cursor",
    );
    assert_problem(
        &a.call("GET", "/api/v1/connections/nope/audit", &a.read, None, None)
            .await,
        404,
        "not-found",
    );
}
