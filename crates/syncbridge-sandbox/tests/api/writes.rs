//! Writing: create / update / archive and `Idempotency-Key`.

use serde_json::{Value, json};

use crate::helpers::{ok_json, spawn_app};

/// Create → get → patch → delete works with HubSpot's status codes, and PATCH bumps only updatedAt.
#[tokio::test]
async fn create_patch_delete_round_trip() {
    let app = spawn_app(10).await;

    let created = app
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "new.person@example.example", "firstname": "New", "age": 41}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["id"], "11");
    assert_eq!(created["properties"]["age"], "41");
    assert_eq!(created["createdAt"], created["updatedAt"]);

    let fetched = app.get_json("/crm/v3/objects/contacts/11").await;
    assert_eq!(fetched, created);

    let patched = app
        .patch(
            "/crm/v3/objects/contacts/11",
            &json!({"properties": {"firstname": "Renamed", "age": null}}),
        )
        .send()
        .await
        .unwrap();
    let patched = ok_json(patched).await;
    assert_eq!(patched["properties"]["firstname"], "Renamed");
    assert!(patched["properties"].get("age").is_none(), "null clears");
    assert_eq!(patched["createdAt"], created["createdAt"]);
    assert!(patched["updatedAt"].as_str() > created["updatedAt"].as_str());

    let delete = |id: &'static str| {
        app.client
            .delete(app.url(&format!("/crm/v3/objects/contacts/{id}")))
            .bearer_auth(&app.token)
            .send()
    };
    assert_eq!(delete("11").await.unwrap().status(), 204);
    assert_eq!(
        app.get("/crm/v3/objects/contacts/11")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        delete("11").await.unwrap().status(),
        204,
        "archiving twice is fine"
    );
    assert_eq!(delete("999").await.unwrap().status(), 404);
    let missing = app
        .patch(
            "/crm/v3/objects/contacts/11",
            &json!({"properties": {"firstname": "x"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The same Idempotency-Key replays the first response without applying twice; a different body is a 422.
#[tokio::test]
async fn idempotency_key_replays_without_reapplying() {
    let app = spawn_app(10).await;
    let body = json!({"properties": {"name": "Replay Co", "domain": "replay.example"}});
    let send = |body: Value, key: &'static str| {
        app.post("/crm/v3/objects/companies", &body)
            .header("Idempotency-Key", key)
            .send()
    };

    let first = send(body.clone(), "k-1").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send(body.clone(), "k-1").await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(app.dump("companies").await.len(), 11, "created once");

    let other = send(json!({"properties": {"name": "Other"}}), "k-1")
        .await
        .unwrap();
    assert_eq!(other.status(), 422);

    // PATCH: the replay does not bump updatedAt again.
    let patch = |key: &'static str| {
        app.patch(
            "/crm/v3/objects/companies/3",
            &json!({"properties": {"industry": "RETAIL"}}),
        )
        .header("Idempotency-Key", key)
        .send()
    };
    let p1 = ok_json(patch("p-1").await.unwrap()).await;
    let p2 = ok_json(patch("p-1").await.unwrap()).await;
    assert_eq!(p1, p2);
    let now = app.get_json("/crm/v3/objects/companies/3").await;
    assert_eq!(now["updatedAt"], p1["updatedAt"]);
}

/// Concurrent requests with one Idempotency-Key apply exactly once.
#[tokio::test]
async fn concurrent_idempotent_creates_apply_once() {
    let app = spawn_app(5).await;
    let body = json!({"properties": {"dealname": "Race", "amount": "10"}});
    let sends = (0..8).map(|_| {
        app.post("/crm/v3/objects/deals", &body)
            .header("Idempotency-Key", "race-key")
            .send()
    });
    let responses = futures::future::join_all(sends).await;
    let mut ids = Vec::new();
    for r in responses {
        let r = r.unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids, vec![json!("6")]);
    assert_eq!(app.dump("deals").await.len(), 6);
}

/// A second contact with an existing email is a 409 naming the existing id; system properties are read-only.
#[tokio::test]
async fn conflicts_and_read_only_properties() {
    let app = spawn_app(10).await;
    let c2 = app.get_json("/crm/v3/objects/contacts/2").await;
    let email = c2["properties"]["email"].as_str().unwrap().to_uppercase();
    let dup = app
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": email}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let dup: Value = dup.json().await.unwrap();
    assert_eq!(dup["category"], "CONFLICT");
    assert!(dup["message"].as_str().unwrap().contains("Existing ID: 2"));

    let ro = app
        .patch(
            "/crm/v3/objects/contacts/2",
            &json!({"properties": {"hs_object_id": "9"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ro.status(), 400);
    let junk = app
        .client
        .post(app.url("/crm/v3/objects/contacts"))
        .bearer_auth(&app.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);
}
