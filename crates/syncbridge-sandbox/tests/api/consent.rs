//! The consent page (`/oauth/authorize`) and the code grant it leads to:
//! client and redirect URI checks, Approve / Deny, auto-approve, single-use
//! codes bound to their PKCE challenge.

use std::collections::HashMap;

use reqwest::{Client, StatusCode, redirect::Policy};
use serde_json::{Value, json};
use syncbridge_sandbox::SandboxConfig;
use syncbridge_sandbox::consent::s256;

use crate::helpers::{TestApp, spawn_with};

const CLIENT: &str = "sbx_client_demo";
const SECRET: &str = "sbx_cs_demo_secret";
const REDIRECT: &str = "http://127.0.0.1:9/api/v1/connect/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn no_redirects() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn authorize_url(app: &TestApp, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", CLIENT)
            .append_pair("redirect_uri", redirect)
            .append_pair(
                "scope",
                "crm.objects.contacts.read crm.objects.contacts.write",
            )
            .append_pair("state", "st-1");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.into()
}

fn pkce() -> [(&'static str, String); 2] {
    [
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

/// The query of a redirect's `Location`, after checking where it points.
fn location_query(resp: &reqwest::Response, to: &str) -> HashMap<String, String> {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let loc = resp.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(loc).unwrap();
    assert!(loc.starts_with(to), "{loc} goes to {to}");
    url.query_pairs().into_owned().collect()
}

async fn exchange(app: &TestApp, code: &str, verifier: Option<&str>) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let resp = app
        .client
        .post(app.url("/oauth/v1/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// The page shows Approve and Deny; Approve redirects with a code and the
/// state; the code is exchanged once, only with the right verifier.
#[tokio::test]
async fn approve_issues_a_single_use_pkce_bound_code() {
    let app = spawn_with(SandboxConfig {
        records_per_object: 1,
        ..SandboxConfig::default()
    })
    .await;
    let http = no_redirects();
    let [(a, ca), (b, cb)] = pkce();
    let page = http
        .get(authorize_url(&app, REDIRECT, &[(a, &ca), (b, &cb)]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"approve\"") && html.contains("id=\"deny\""),
        "{html}"
    );
    assert!(html.contains("crm.objects.contacts.write"), "{html}");
    let request_id = html
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let decided = http
        .post(app.url("/oauth/authorize"))
        .form(&[("request_id", request_id.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    let q = location_query(&decided, REDIRECT);
    assert_eq!(q["state"], "st-1");
    let code = q["code"].clone();
    // The same consent cannot be decided twice.
    let again = http
        .post(app.url("/oauth/authorize"))
        .form(&[("request_id", request_id.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);

    let (status, body) = exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("sbx_at_")
    );
    let (status, body) = exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "a code is redeemed once"
    );
}

/// Deny redirects with `error=access_denied` and the state; a wrong PKCE
/// verifier is `invalid_grant`; auto-approve skips the page.
#[tokio::test]
async fn deny_wrong_verifier_and_auto_approve() {
    let app = spawn_with(SandboxConfig {
        records_per_object: 1,
        ..SandboxConfig::default()
    })
    .await;
    let http = no_redirects();
    let [(a, ca), (b, cb)] = pkce();
    let html = http
        .get(authorize_url(&app, REDIRECT, &[(a, &ca), (b, &cb)]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request_id = html
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let denied = http
        .post(app.url("/oauth/authorize"))
        .form(&[("request_id", request_id.as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    let q = location_query(&denied, REDIRECT);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-1");
    assert!(!q.contains_key("code"));

    app.admin("/_sandbox/config", json!({"oauth_auto_approve": true}))
        .await;
    let auto = http
        .get(authorize_url(&app, REDIRECT, &[(a, &ca), (b, &cb)]))
        .send()
        .await
        .unwrap();
    let q = location_query(&auto, REDIRECT);
    let (status, body) = exchange(&app, &q["code"], Some("not-the-verifier")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    let (status, _) = exchange(&app, &q["code"], Some(VERIFIER)).await;
    assert_eq!(status, 400, "a refused attempt used the code up");
}

/// An unknown client or an unregistered redirect URI gets an error page and
/// no redirect; a bad challenge method is an error redirect.
#[tokio::test]
async fn unknown_client_and_unregistered_redirect_are_not_redirected() {
    let app = spawn_with(SandboxConfig {
        records_per_object: 1,
        oauth_auto_approve: true,
        redirect_uris: vec![REDIRECT.to_owned()],
        ..SandboxConfig::default()
    })
    .await;
    let http = no_redirects();
    let resp = http
        .get(authorize_url(&app, "http://127.0.0.1:9/elsewhere", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("redirect_uri is not registered")
    );
    let other_client = authorize_url(&app, REDIRECT, &[]).replace(CLIENT, "someone_else");
    let resp = http.get(other_client).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("unknown client_id"));
    let resp = http
        .get(authorize_url(
            &app,
            REDIRECT,
            &[("code_challenge", "x"), ("code_challenge_method", "plain")],
        ))
        .send()
        .await
        .unwrap();
    let q = location_query(&resp, REDIRECT);
    assert_eq!(q["error"], "invalid_request");
    // The registered one works.
    let resp = http
        .get(authorize_url(&app, REDIRECT, &[]))
        .send()
        .await
        .unwrap();
    let q = location_query(&resp, REDIRECT);
    let (status, body) = exchange(&app, &q["code"], None).await;
    assert_eq!(status, 200, "{body}");
    // The token endpoint can be made to fail for tests.
    app.admin("/_sandbox/config", json!({"fail_token_requests": true}))
        .await;
    let (status, body) = exchange(&app, "sbx_code_x", None).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "server_error");
}
