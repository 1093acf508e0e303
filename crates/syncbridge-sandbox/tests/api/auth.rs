//! OAuth: the token endpoint, rotation, expiry and revocation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use syncbridge_sandbox::SandboxConfig;

use crate::helpers::{TestApp, spawn_app, spawn_with};

const CLIENT: &str = "sbx_client_demo";
const SECRET: &str = "sbx_cs_demo_secret";

async fn token_call(app: &TestApp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url("/oauth/v1/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn list_status(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(app.url("/crm/v3/objects/contacts?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// Refresh tokens rotate and are single-use: reuse is invalid_grant, a wrong secret is invalid_client.
#[tokio::test]
async fn refresh_tokens_rotate_and_are_single_use() {
    let app = spawn_app(5).await;

    // authorization_code: any sbx_code_... works.
    let (status, pair) = token_call(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "sbx_code_xyz"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("redirect_uri", "http://localhost/cb"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    assert!(
        pair["access_token"]
            .as_str()
            .unwrap()
            .starts_with("sbx_at_")
    );
    assert!(
        pair["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("sbx_rt_")
    );
    assert_eq!(pair["expires_in"], 1800);
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(
        list_status(&app, pair["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );

    // First refresh succeeds and rotates.
    let rt1 = pair["refresh_token"].as_str().unwrap();
    let refresh = |rt: &str, secret: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt.to_owned()),
            ("client_id", CLIENT.to_owned()),
            ("client_secret", secret.to_owned()),
        ]
    };
    let form = refresh(rt1, SECRET);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, second) = token_call(&app, &form).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt2, rt1);

    // Reusing the old one fails.
    let (status, err) = token_call(&app, &form).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");

    // A wrong secret is invalid_client, and does not burn the token.
    let bad = refresh(&rt2, "sbx_cs_wrong");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, err) = token_call(&app, &bad).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"], "invalid_client");

    // HTTP Basic client authentication works too.
    let resp = app
        .client
        .post(app.url("/oauth/v1/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt2.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (status, err) = token_call(
        &app,
        &[
            ("grant_type", "password"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, err) = token_call(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "stolen"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(app.stats().await["token_requests"], 7);
}

/// An access token stops working when its lifetime ends (401 EXPIRED_AUTHENTICATION); unknown and missing tokens are 401 too.
#[tokio::test]
async fn expired_access_token_is_rejected() {
    let app = spawn_with(SandboxConfig {
        records_per_object: 5,
        token_ttl: Duration::from_millis(1500),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(list_status(&app, &app.token).await.0, 200);

    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, body) = list_status(&app, &app.token).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");

    let (status, body) = list_status(&app, "sbx_at_made_up").await;
    assert_eq!(
        (status, body["category"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("EXPIRED_AUTHENTICATION"))
    );
    let anonymous = app
        .client
        .get(app.url("/crm/v3/objects/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.stats().await["unauthorized"], 3);
}

/// `/_sandbox/revoke` kills one refresh token, or every token of a client.
#[tokio::test]
async fn revocation() {
    let app = spawn_app(5).await;
    let pair = app.handle.sandbox().issue_tokens();

    let r = app
        .admin(
            "/_sandbox/revoke",
            json!({"refresh_token": pair.refresh_token}),
        )
        .await;
    assert_eq!(r["revoked"], 1);
    let (status, err) = token_call(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &pair.refresh_token),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        list_status(&app, &pair.access_token).await.0,
        200,
        "access token still valid"
    );

    app.admin("/_sandbox/revoke", json!({"client_id": CLIENT}))
        .await;
    assert_eq!(list_status(&app, &pair.access_token).await.0, 401);
    assert_eq!(list_status(&app, &app.token).await.0, 401);
}

/// With auth disabled in config, /crm routes need no token.
#[tokio::test]
async fn auth_can_be_disabled() {
    let app = spawn_app(5).await;
    app.admin("/_sandbox/config", json!({"auth_enabled": false}))
        .await;
    let resp = app
        .client
        .get(app.url("/crm/v3/objects/deals"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
