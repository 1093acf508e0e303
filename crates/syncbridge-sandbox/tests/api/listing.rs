//! Reading: paging, determinism, modified-since, search, the archived feed.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use syncbridge_sandbox::SandboxConfig;

use crate::helpers::{id_set, ids, spawn_app, spawn_with, strings};

fn updated_key(r: &Value) -> (String, u64) {
    (
        r["updatedAt"].as_str().unwrap().to_owned(),
        r["id"].as_str().unwrap().parse().unwrap(),
    )
}

/// Id-ordered paging visits every record exactly once, pages are full, and records have HubSpot's shape.
#[tokio::test]
async fn paging_visits_every_record_exactly_once() {
    // Arrange
    let app = spawn_app(250).await;

    // Act
    let first = app.get_json("/crm/v3/objects/contacts?limit=100").await;
    let all = app.walk("/crm/v3/objects/contacts?limit=100").await;

    // Assert
    assert_eq!(first["results"].as_array().unwrap().len(), 100);
    assert!(
        first["paging"]["next"]["link"]
            .as_str()
            .unwrap()
            .contains("after=")
    );
    assert_eq!(ids(&all), (1..=250).collect::<Vec<u64>>());
    let r = &all[0];
    assert_eq!(r["properties"]["hs_object_id"], r["id"]);
    for field in [
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "createdate",
        "lastmodifieddate",
    ] {
        assert!(r["properties"][field].is_string(), "{field} in {r}");
    }
    assert_eq!(r["properties"]["lastmodifieddate"], r["updatedAt"]);
    assert_eq!(r["archived"], false);
    let last = app
        .get_json("/crm/v3/objects/contacts?limit=100&after=200")
        .await;
    assert_eq!(last["results"].as_array().unwrap().len(), 50);
    assert!(
        last.get("paging").is_none(),
        "last page has no paging: {last}"
    );
}

/// Paging in (updatedAt, id) order visits every record once even when many share an updatedAt.
#[tokio::test]
async fn updated_order_pages_deterministically_through_ties() {
    // Arrange: one mutate batch gives 60 records the same updatedAt.
    let app = spawn_app(250).await;
    app.admin(
        "/_sandbox/mutate",
        json!({"object": "deals", "update": 60, "seed": 3}),
    )
    .await;

    // Act
    let walk = app
        .walk("/crm/v3/objects/deals?limit=7&updatedAfter=2000-01-01T00:00:00Z")
        .await;

    // Assert
    let keys: Vec<_> = walk.iter().map(updated_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by (updatedAt, id)");
    assert_eq!(ids(&walk).into_iter().collect::<BTreeSet<_>>().len(), 250);
    assert_eq!(walk.len(), 250, "no record twice");
}

/// The same seed produces identical data; another seed produces different data.
#[tokio::test]
async fn same_seed_same_data() {
    let config = |seed| SandboxConfig {
        seed,
        records_per_object: 120,
        ..SandboxConfig::default()
    };
    let a = spawn_with(config(7)).await;
    let b = spawn_with(config(7)).await;
    let c = spawn_with(config(8)).await;
    for object in ["contacts", "companies", "deals"] {
        assert_eq!(a.dump(object).await, b.dump(object).await, "{object}");
        assert_ne!(a.dump(object).await, c.dump(object).await, "{object}");
    }
}

/// `updatedAfter=T` and a GTE search return exactly the records changed after T, in (updatedAt, id) order.
#[tokio::test]
async fn incremental_filter_returns_only_later_changes_in_order() {
    // Arrange: T = the newest seeded modification.
    let app = spawn_app(300).await;
    let before = app.dump("contacts").await;
    let t = before
        .iter()
        .map(|r| r["updatedAt"].as_str().unwrap().to_owned())
        .max()
        .unwrap();

    // Act: one batch, then a PATCH through the API.
    let m = app
        .admin(
            "/_sandbox/mutate",
            json!({"object": "contacts", "update": 20, "create": 3, "seed": 11}),
        )
        .await;
    let patched = app
        .patch(
            "/crm/v3/objects/contacts/5",
            &json!({"properties": {"phone": "+1 555-000-0000"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let list = app
        .walk(&format!(
            "/crm/v3/objects/contacts?limit=4&updatedAfter={t}"
        ))
        .await;

    // Assert
    let mut expected = id_set(&strings(&m["updated"]));
    expected.extend(id_set(&strings(&m["created"])));
    expected.insert(5);
    assert_eq!(ids(&list).into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(list.len(), expected.len());
    let keys: Vec<_> = list.iter().map(updated_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(list.last().unwrap()["id"], "5", "the PATCH came last");

    // The search form agrees, page by page, and reports the total.
    let t_ms = m["updatedAtMs"].as_i64().unwrap();
    let mut search_ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": t_ms.to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 4,
            "after": after,
        });
        let resp = app
            .post("/crm/v3/objects/contacts/search", &body)
            .send()
            .await
            .unwrap();
        let page: Value = crate::helpers::ok_json(resp).await;
        assert_eq!(page["total"].as_u64().unwrap() as usize, expected.len());
        search_ids.extend(ids(page["results"].as_array().unwrap()));
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(search_ids, ids(&list));

    // The watermark is exclusive: nothing is newer than the last change.
    let newest = list.last().unwrap()["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let none = app
        .get_json(&format!("/crm/v3/objects/contacts?updatedAfter={newest}"))
        .await;
    assert_eq!(none["results"].as_array().unwrap().len(), 0);
}

/// A modified-since walk that races with mutations still sees every record that is live at the end.
#[tokio::test]
async fn keyset_walk_misses_nothing_under_concurrent_mutation() {
    let app = spawn_app(200).await;
    let mut seen = BTreeSet::new();
    let mut path = "/crm/v3/objects/companies?limit=20&updatedAfter=0".to_owned();
    for round in 0.. {
        let page = app.get_json(&path).await;
        seen.extend(ids(page["results"].as_array().unwrap()));
        if round < 8 {
            app.admin(
                "/_sandbox/mutate",
                json!({"object": "companies", "update": 10, "create": 2, "seed": round}),
            )
            .await;
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => {
                path = format!("/crm/v3/objects/companies?limit=20&updatedAfter=0&after={a}")
            }
            None => break,
        }
    }
    let live: BTreeSet<u64> = ids(&app.dump("companies").await).into_iter().collect();
    assert_eq!(live.len(), 216);
    assert!(
        live.is_subset(&seen),
        "missed: {:?}",
        live.difference(&seen).collect::<Vec<_>>()
    );
}

/// `archived=true` lists deleted records with `archivedAt`; they leave the live list and GET.
#[tokio::test]
async fn archived_listing_is_the_deleted_feed() {
    // Arrange
    let app = spawn_app(50).await;
    let del = app
        .client
        .delete(app.url("/crm/v3/objects/companies/5"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let m = app
        .admin(
            "/_sandbox/mutate",
            json!({"object": "companies", "delete": 3, "seed": 2}),
        )
        .await;

    // Act
    let archived = app
        .walk("/crm/v3/objects/companies?limit=2&archived=true")
        .await;
    let live = app.walk("/crm/v3/objects/companies?limit=100").await;

    // Assert
    let mut expected = id_set(&strings(&m["deleted"]));
    expected.insert(5);
    assert_eq!(
        ids(&archived).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    for r in &archived {
        assert_eq!(r["archived"], true);
        assert_eq!(r["archivedAt"], r["updatedAt"]);
    }
    assert_eq!(live.len(), 46);
    assert!(ids(&live).iter().all(|id| !expected.contains(id)));
    let gone = app.get("/crm/v3/objects/companies/5").send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    let kept = app
        .get_json("/crm/v3/objects/companies/5?archived=true")
        .await;
    assert_eq!(kept["archived"], true);

    // The deleted feed is incremental too: deletions in (archivedAt, id) order.
    let feed = app
        .walk("/crm/v3/objects/companies?limit=3&archived=true&updatedAfter=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(feed.len(), 4);
    assert_eq!(feed[0]["id"], "5", "the API delete came first");
}

/// `properties=` selects properties (unset ones as null) and always keeps the system ones.
#[tokio::test]
async fn properties_parameter_selects_properties() {
    let app = spawn_app(10).await;
    let r = app
        .get_json("/crm/v3/objects/contacts/3?properties=email,favourite_colour")
        .await;
    let props = r["properties"].as_object().unwrap();
    assert!(props["email"].is_string());
    assert!(props["favourite_colour"].is_null());
    assert!(!props.contains_key("firstname"));
    for system in [
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
        "hs_lastmodifieddate",
    ] {
        assert!(props.contains_key(system), "{system}");
    }
}

/// Page sizes above the maximum are refused like HubSpot, and the maximum is configurable for benchmarks.
#[tokio::test]
async fn page_size_limit_is_enforced_and_configurable() {
    let app = spawn_app(1200).await;
    let big = app
        .get("/crm/v3/objects/deals?limit=1000")
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 400);
    assert_eq!(
        big.json::<Value>().await.unwrap()["category"],
        "VALIDATION_ERROR"
    );
    app.admin("/_sandbox/config", json!({"max_page_size": 1000}))
        .await;
    let page = app.get_json("/crm/v3/objects/deals?limit=1000").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1000);
    assert_eq!(page["paging"]["next"]["after"], "1000");
}

/// Search filters on ordinary properties, ORs filter groups, and rejects unsupported input with 400.
#[tokio::test]
async fn search_filters_on_properties() {
    let app = spawn_app(40).await;
    let c7 = app.get_json("/crm/v3/objects/contacts/7").await;
    let email = c7["properties"]["email"].as_str().unwrap().to_uppercase();
    let body = json!({"filterGroups": [
        {"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]},
        {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": ["9", "11"]}]}
    ], "properties": ["email"]});
    let resp = app
        .post("/crm/v3/objects/contacts/search", &body)
        .send()
        .await
        .unwrap();
    let page = crate::helpers::ok_json(resp).await;
    assert_eq!(page["total"], 3);
    assert_eq!(ids(page["results"].as_array().unwrap()), vec![7, 9, 11]);

    let bad = json!({"sorts": [{"propertyName": "email"}]});
    let resp = app
        .post("/crm/v3/objects/contacts/search", &bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
