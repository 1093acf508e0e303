//! The connect flow end to end, through the real binaries: `syncbridge up`
//! (the six handlers under the local host, debug logs captured) and a
//! sandbox whose consent page approves at once, driven by a plain HTTP
//! client that follows redirects, as a browser would.
//!
//! What was tried, on one deployment: a session → the sandbox's
//! `/oauth/authorize` → `/api/v1/connect/callback` → the return URL; the
//! connection's first sync; its grant revoked at the provider until it is
//! `needs_reauth`, then reconnected; and every refusal: a replayed state, an
//! expired session (at the link and at the callback), a wrong PKCE verifier,
//! an unlisted return URL, an unlisted redirect URI, a failing token
//! endpoint, a denied consent.
//! What must hold: the success ends on `return_url?connection_id=ID`, the
//! connection is active and its first sync succeeds, the reconnected one
//! resumes; each refusal ends with its error code (or a 400) and stores no
//! connection; and no access token, refresh token, code or verifier appears
//! in the logs or in any file of the data dir.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use syncbridge_core::Store;
use syncbridge_sandbox::browser::Browser;
use syncbridge_tests::*;

const RETURN: &str = "http://127.0.0.1:9/app/connected";
const PATIENCE: Duration = Duration::from_secs(60);

/// `syncbridge up` as a child process, its output collected.
struct Up(Logged);

impl Up {
    fn start(data_dir: &str, port: u16) -> Up {
        let mut cmd = Command::new(bin_dir().join("syncbridge"));
        cmd.args([
            "--data-dir",
            data_dir,
            "up",
            "--http-port",
            &port.to_string(),
        ])
        .env("RUST_LOG", "debug")
        .env("SYNCBRIDGE_CONNECT_RETURN_URLS", "http://127.0.0.1:9/app")
        .env("SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID", "sbx_client_demo")
        .env(
            "SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET",
            "sbx_cs_demo_secret",
        )
        // The scheduler ticks every second; the token refresher never.
        .env("SYNC_SCHEDULER_SCHEDULE", "* * * * * *")
        .env("TOKEN_REFRESHER_SCHEDULE", "0 0 0 1 1 *")
        .current_dir(repo_root());
        Up(Logged::spawn(cmd, "syncbridge up starts"))
    }

    fn logs(&self) -> String {
        self.0.logs()
    }

    fn stop(&mut self) {
        // SIGTERM: `up` stops its handlers and exits.
        self.0.signal("TERM");
        let _ = self.0.child.wait();
    }
}

/// What the browser went through: every URL it was sent to and where it
/// stopped (the return URL is not fetched: nothing listens there).
#[derive(Debug)]
struct Journey {
    chain: Vec<String>,
    /// The final response's status (a 302 to the return URL when the flow ended there).
    status: u16,
    /// The final response's `Location`, if any.
    location: Option<String>,
    body: String,
}

impl Journey {
    /// The return URL's query, when the flow ended there.
    fn returned(&self) -> Option<HashMap<String, String>> {
        let loc = self.location.as_deref()?;
        loc.starts_with(RETURN).then(|| {
            url::Url::parse(loc)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        })
    }

    fn went_through(&self, path: &str) -> bool {
        self.chain.iter().any(|u| u.contains(path))
    }
}

/// Opens `url` in browser `b` (its cookies carried, as a browser does):
/// follows redirects until one points at the return URL.
async fn browse(b: &mut Browser, url: &str) -> Journey {
    let landing = b
        .walk(url, |u| u.as_str().starts_with(RETURN))
        .await
        .unwrap();
    Journey {
        chain: landing.chain.iter().map(ToString::to_string).collect(),
        status: landing.status,
        location: landing.location.map(|u| u.to_string()),
        body: landing.body,
    }
}

/// One redirect in browser `b`, not followed: its `Location`.
async fn one_step(b: &mut Browser, url: &str) -> String {
    let landing = b.walk(url, |_| true).await.unwrap();
    assert!(
        (300..400).contains(&landing.status),
        "{url}: {}",
        landing.status
    );
    landing.location.unwrap().to_string()
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn session(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/connect/sessions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn connect_url(&self, body: Value) -> String {
        let (status, made) = self.session(body).await;
        assert_eq!(status, 201, "{made}");
        made["connect_url"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn connection_count(&self) -> usize {
        let (_, list) = self.get("/connections?limit=100").await;
        list["connections"].as_array().map_or(0, Vec::len)
    }

    /// Waits until a run of `connection`'s contacts that started after `after` succeeded.
    async fn contacts_run_after(&self, connection: &str, after: Option<&str>) -> Value {
        eventually(PATIENCE, "a contacts run succeeded", || async {
            let (_, runs) = self
                .get(&format!("/runs?connection_id={connection}&limit=50"))
                .await;
            runs["runs"].as_array().and_then(|rs| {
                rs.iter()
                    .find(|r| {
                        r["object"] == "contacts"
                            && r["status"] == "succeeded"
                            && after.is_none_or(|a| r["started_at"].as_str().is_some_and(|s| s > a))
                    })
                    .cloned()
            })
        })
        .await
    }
}

fn body(extra: Value, sandbox: &str) -> Value {
    let mut b = json!({"tenant": "acme", "provider": "sandbox", "return_url": format!("{RETURN}?from=e2e"), "base_url": sandbox});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// Expires a stored session (its creation and expiry ten minutes back).
async fn expire(store: &dyn Store, connect_url: &str) {
    let id = connect_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let s = store.get_connect_session(id).await.unwrap().unwrap();
    let mut past = s.clone();
    past.expires_at = s.created_at.sub(Duration::from_secs(1));
    past.version += 1;
    assert!(store.advance_connect_session(&past).await.unwrap());
}

/// Every byte of every file under `dir` and the logs: none of `needles`.
fn leaks(dir: &std::path::Path, logs: &str, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for n in needles {
        if let Some(line) = logs.lines().find(|l| l.contains(n.as_str())) {
            found.push(format!(
                "a log line holds {n}: {}",
                line.replace(n.as_str(), "<secret>")
            ));
        }
        for f in files_holding(dir, n) {
            found.push(format!("{} contains {n}", f.display()));
        }
    }
    found
}

#[allow(clippy::too_many_lines)] // one deployment, every scenario in order: starting `up` once keeps the test fast
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_flow_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/v1/connect/callback");
    let sbx = syncbridge_sandbox::spawn(syncbridge_sandbox::SandboxConfig {
        records_per_object: 40,
        oauth_auto_approve: true,
        redirect_uris: vec![callback.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let sandbox = sbx.base_url();
    let key = syncbridge_cli(
        &d,
        &["api-keys", "create", "--name", "e2e", "--scope", "write"],
    )
    .trim()
    .to_owned();
    let mut up = Up::start(&d, port);
    let api = Api {
        base: format!("http://127.0.0.1:{port}/api/v1"),
        key,
        http: reqwest::Client::new(),
    };
    eventually(PATIENCE, "`syncbridge up` serves the API", || async {
        api.http
            .get(format!("{}/openapi.json", api.base))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let mut secrets: Vec<String> = Vec::new();
    // One customer's browser runs every flow below, one after another.
    let mut b = Browser::new();

    // 1. Session → authorize (auto-approve) → callback → return URL. The
    // session names a setting of the new connection (the sandbox's page
    // size, 100 by default), which must reach the provider's requests.
    let url = api
        .connect_url(body(json!({"settings": {"page_size": "25"}}), &sandbox))
        .await;
    let trip = browse(&mut b, &url).await;
    assert!(trip.went_through("/oauth/authorize"), "{trip:?}");
    assert!(trip.went_through("/api/v1/connect/callback"), "{trip:?}");
    let authorize = trip
        .chain
        .iter()
        .find(|u| u.contains("/oauth/authorize"))
        .unwrap();
    assert!(
        authorize.contains("code_challenge_method=S256") && authorize.contains("state="),
        "{authorize}"
    );
    let back = trip.returned().unwrap_or_else(|| panic!("{trip:?}"));
    assert_eq!(
        back.get("from").map(String::as_str),
        Some("e2e"),
        "the return URL's own query stays"
    );
    let conn = back["connection_id"].clone();
    let callback_url = trip
        .chain
        .iter()
        .find(|u| u.contains("/connect/callback"))
        .unwrap()
        .clone();
    let code = url::Url::parse(&callback_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    secrets.push(code);
    let (status, c) = api.get(&format!("/connections/{conn}")).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("active")), "{c}");
    let first = api.contacts_run_after(&conn, None).await;
    assert_eq!(first["counts"]["created"], 40, "the first sync: {first}");
    assert_eq!(c["settings"], json!({"page_size": "25"}), "{c}");
    assert_eq!(
        first["counts"]["pages"], 2,
        "40 records at 25 a page: {first}"
    );

    // 2. Replayed state: the callback URL again.
    let replay = browse(&mut b, &callback_url).await;
    assert_eq!(
        replay.returned().map(|q| q["error"].clone()).as_deref(),
        Some("state_invalid"),
        "{replay:?}"
    );
    let connections = api.connection_count().await;
    assert_eq!(connections, 1);

    // 3. Expired session: at the link, and at the callback.
    let store = syncbridge_tests::store(dir.path());
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    expire(&store, &url).await;
    let trip = browse(&mut b, &url).await;
    assert_eq!(
        trip.returned().map(|q| q["error"].clone()).as_deref(),
        Some("session_expired"),
        "{trip:?}"
    );
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let to_provider = one_step(&mut b, &url).await;
    expire(&store, &url).await;
    let trip = browse(&mut b, &to_provider).await;
    assert!(trip.went_through("/connect/callback"));
    assert_eq!(
        trip.returned().map(|q| q["error"].clone()).as_deref(),
        Some("session_expired"),
        "{trip:?}"
    );

    // 4. Wrong PKCE verifier: the provider is sent another challenge; the
    // exchange with ours is refused.
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let to_provider = one_step(&mut b, &url).await;
    let mut tampered = url::Url::parse(&to_provider).unwrap();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "code_challenge" {
                (
                    k,
                    syncbridge_sandbox::consent::s256("someone-elses-verifier"),
                )
            } else {
                (k, v)
            }
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let trip = browse(&mut b, tampered.as_str()).await;
    assert_eq!(
        trip.returned().map(|q| q["error"].clone()).as_deref(),
        Some("exchange_failed"),
        "{trip:?}"
    );

    // 4b. A consent URL forwarded to another browser (an attacker opens the
    // link, sends the provider's consent page on to a victim, who approves
    // their own account): the callback arrives without the cookie the
    // opening browser was given, so the session ends with
    // `browser_mismatch` and nothing is connected — not then, and not when
    // the opening browser replays the same callback afterwards.
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let mut opener = Browser::new();
    let to_provider = one_step(&mut opener, &url).await;
    let session = url.rsplit('/').next().unwrap().split('.').next().unwrap();
    assert!(
        opener.has_cookie(&format!("sb_connect_{session}")),
        "opening the link binds this browser"
    );
    let forwarded = browse(&mut Browser::new(), &to_provider).await;
    assert!(
        forwarded.went_through("/api/v1/connect/callback"),
        "{forwarded:?}"
    );
    assert_eq!(
        forwarded.returned().map(|q| q["error"].clone()).as_deref(),
        Some("browser_mismatch"),
        "{forwarded:?}"
    );
    let callback_again = forwarded
        .chain
        .iter()
        .find(|u| u.contains("/api/v1/connect/callback"))
        .unwrap()
        .clone();
    let replayed = browse(&mut opener, &callback_again).await;
    assert_eq!(
        replayed.returned().map(|q| q["error"].clone()).as_deref(),
        Some("state_invalid"),
        "the session is used up: {replayed:?}"
    );
    assert_eq!(api.connection_count().await, 1, "nothing was connected");

    // 5. Unlisted return URL: refused before anything is made.
    let (status, problem) = api
        .session(body(
            json!({"return_url": "https://evil.example/app"}),
            &sandbox,
        ))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("SYNCBRIDGE_CONNECT_RETURN_URLS")
    );
    let (status, _) = api
        .session(body(
            json!({"return_url": "http://127.0.0.1:9/application"}),
            &sandbox,
        ))
        .await;
    assert_eq!(status, 400, "a prefix matches at a path boundary only");
    // A setting the provider does not declare: refused before a link exists
    // (a typo would otherwise reach the provider's URL only after consent).
    let (status, problem) = api
        .session(body(json!({"settings": {"ownr": "octo"}}), &sandbox))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        problem["detail"],
        "settings: connector sandbox has no setting \"ownr\" (known: page_size)"
    );
    // The deployment's own admin dashboard is a return URL without being
    // listed (its "Add connection" and "Reconnect" come back to it).
    let (status, made) = api
        .session(body(
            json!({"return_url": format!("{}/admin/add-connection", api.base)}),
            &sandbox,
        ))
        .await;
    assert_eq!(status, 201, "{made}");

    // 6. Unlisted redirect URI: the provider refuses and does not redirect.
    admin(
        &sandbox,
        json!({"redirect_uris": ["http://127.0.0.1:1/elsewhere"]}),
    )
    .await;
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let trip = browse(&mut b, &url).await;
    assert_eq!(trip.status, 400, "{trip:?}");
    assert!(
        trip.body.contains("redirect_uri is not registered"),
        "{trip:?}"
    );
    assert!(!trip.went_through("/connect/callback"));
    admin(&sandbox, json!({"redirect_uris": [callback]})).await;

    // 7. Provider error on exchange.
    admin(&sandbox, json!({"fail_token_requests": true})).await;
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let trip = browse(&mut b, &url).await;
    assert_eq!(
        trip.returned().map(|q| q["error"].clone()).as_deref(),
        Some("exchange_failed"),
        "{trip:?}"
    );
    admin(&sandbox, json!({"fail_token_requests": false})).await;

    // 8. Denied at the consent page.
    admin(&sandbox, json!({"oauth_auto_approve": false})).await;
    let url = api.connect_url(body(json!({}), &sandbox)).await;
    let page = browse(&mut b, &url).await;
    assert_eq!(page.status, 200, "the consent page: {page:?}");
    let request_id = page
        .body
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let denied = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{sandbox}/oauth/authorize"))
        .form(&[("request_id", request_id.as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    let to_callback = denied.headers()["location"].to_str().unwrap().to_owned();
    let trip = browse(&mut b, &to_callback).await;
    assert_eq!(
        trip.returned().map(|q| q["error"].clone()).as_deref(),
        Some("access_denied"),
        "{trip:?}"
    );
    admin(&sandbox, json!({"oauth_auto_approve": true})).await;
    assert_eq!(
        api.connection_count().await,
        1,
        "no refusal stored a connection"
    );

    // 9. Reconnect: the grant is revoked at the provider; "sync now" finds
    // it refused and the connection needs re-authorization; the flow with
    // its id re-authorizes it and its tasks resume.
    admin_route(&sandbox, "revoke", json!({"client_id": "sbx_client_demo"})).await;
    let (status, _) = api
        .http
        .post(format!("{}/connections/{conn}/sync", api.base))
        .bearer_auth(&api.key)
        .json(&json!({"objects": ["contacts"]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 202);
    eventually(
        PATIENCE,
        "the connection needs re-authorization",
        || async {
            let (_, c) = api.get(&format!("/connections/{conn}")).await;
            (c["status"] == "needs_reauth").then_some(())
        },
    )
    .await;
    let url = api
        .connect_url(body(json!({"connection_id": conn}), &sandbox))
        .await;
    let trip = browse(&mut b, &url).await;
    assert_eq!(
        trip.returned()
            .map(|q| q["connection_id"].clone())
            .as_deref(),
        Some(conn.as_str()),
        "{trip:?}"
    );
    let (_, c) = api.get(&format!("/connections/{conn}")).await;
    assert_eq!(c["status"], "active", "{c}");
    let resumed = api
        .contacts_run_after(&conn, first["started_at"].as_str())
        .await;
    assert_ne!(resumed["id"], first["id"]);
    assert_eq!(api.connection_count().await, 1);

    // 9b. The key form, for a provider without OAuth (Zendesk: HTTP Basic
    // with `email/token` and an API token): the link answers a form; a
    // blank password shows it again and stores nothing; filled in, the
    // connection is made with the session's settings, and the token is
    // sealed like every credential (the leak scan below looks for it).
    let made = api
        .connect_url(json!({
            "tenant": "acme", "provider": "zendesk", "return_url": format!("{RETURN}?from=form"),
            "base_url": "http://127.0.0.1:9", "settings": {"subdomain": "acme"}
        }))
        .await;
    let form = browse(&mut b, &made).await;
    assert_eq!(form.status, 200, "{form:?}");
    assert!(
        form.body.contains("name=\"user\"") && form.body.contains("type=\"password\""),
        "{}",
        form.body
    );
    let post = |user: &str, password: &str| {
        let fields = [("user", user.to_owned()), ("password", password.to_owned())];
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(made.as_str())
            .form(&fields)
            .send()
    };
    let blank = post("agent@acme.example/token", " ").await.unwrap();
    assert_eq!(blank.status(), 400, "the form again, with the error");
    assert!(blank.text().await.unwrap().contains("Fill in every field."));
    assert_eq!(
        api.connection_count().await,
        1,
        "a blank field stores nothing"
    );
    let zendesk_token = "zd-api-token-e2e-5f1c9a";
    secrets.push(zendesk_token.to_owned());
    let done = post("agent@acme.example/token", zendesk_token)
        .await
        .unwrap();
    let back = url::Url::parse(done.headers()["location"].to_str().unwrap()).unwrap();
    let back: HashMap<String, String> = back.query_pairs().into_owned().collect();
    let zd = back
        .get("connection_id")
        .unwrap_or_else(|| panic!("{back:?}"));
    let (_, c) = api.get(&format!("/connections/{zd}")).await;
    assert_eq!(
        (c["provider"].as_str(), &c["settings"]),
        (Some("zendesk"), &json!({"subdomain": "acme"})),
        "{c}"
    );
    let again = post("agent@acme.example/token", zendesk_token)
        .await
        .unwrap();
    assert_eq!(
        again.headers()["location"].to_str().unwrap(),
        format!("{RETURN}?from=form&error=state_invalid"),
        "a form is used once"
    );

    // 10. Nothing secret in plain text: the tokens the sandbox issued and
    // its client secret (by prefix), the codes it issued, and the PKCE
    // verifiers the API presented at its token endpoint.
    up.stop();
    let logs = up.logs();
    assert!(
        logs.contains("connect flow finished"),
        "debug logs were captured"
    );
    let verifiers = sbx.sandbox().code_verifiers_seen();
    assert!(
        verifiers.len() >= 3,
        "the flow used PKCE: {}",
        verifiers.len()
    );
    secrets.extend(verifiers);
    secrets.extend(["sbx_at_", "sbx_rt_", "sbx_cs_", "sbx_ac_"].map(String::from));
    let found = leaks(dir.path(), &logs, &secrets);
    assert!(found.is_empty(), "{found:?}");
}

async fn admin(sandbox: &str, patch: Value) -> Value {
    admin_route(sandbox, "config", patch).await
}

async fn admin_route(sandbox: &str, route: &str, body: Value) -> Value {
    syncbridge_tests::pipeline::admin(sandbox, route, body).await
}
