//! Spawning a sandbox and talking to it.

use std::collections::BTreeSet;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use syncbridge_sandbox::{SandboxConfig, SandboxHandle, spawn};

pub struct TestApp {
    pub handle: SandboxHandle,
    pub client: Client,
    pub token: String,
}

/// A sandbox with `records` records per object and an access token.
pub async fn spawn_app(records: usize) -> TestApp {
    spawn_with(SandboxConfig {
        records_per_object: records,
        ..SandboxConfig::default()
    })
    .await
}

pub async fn spawn_with(config: SandboxConfig) -> TestApp {
    let handle = spawn(config).await.expect("sandbox starts");
    let token = handle.sandbox().issue_tokens().access_token;
    TestApp {
        handle,
        // No connection reuse: injected drops must not poison later requests.
        client: Client::builder().pool_max_idle_per_host(0).build().unwrap(),
        token,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    /// GET with the token; asserts 200 and returns the JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        ok_json(self.get(path).send().await.unwrap()).await
    }

    /// An unauthenticated admin POST; asserts 200 and returns the JSON.
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let resp = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        ok_json(resp).await
    }

    /// Follows `paging.next.after` from `first` to the end; returns every result in order.
    pub async fn walk(&self, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut path = first.to_owned();
        loop {
            let page = self.get_json(&path).await;
            out.extend(page["results"].as_array().unwrap().iter().cloned());
            match page["paging"]["next"]["after"].as_str() {
                Some(after) => {
                    let base = first.split("&after=").next().unwrap();
                    path = format!("{base}&after={after}");
                }
                None => return out,
            }
        }
    }

    /// Every live record of `object`, from the admin dump.
    pub async fn dump(&self, object: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(self.url(&format!("/_sandbox/records/{object}")))
            .send()
            .await
            .unwrap();
        ok_json(resp).await.as_array().unwrap().clone()
    }

    pub async fn stats(&self) -> Value {
        let resp = self
            .client
            .get(self.url("/_sandbox/stats"))
            .send()
            .await
            .unwrap();
        ok_json(resp).await
    }
}

pub async fn ok_json(resp: Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "body: {text}");
    serde_json::from_str(&text).unwrap()
}

pub fn ids(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

pub fn id_set(ids: &[String]) -> BTreeSet<u64> {
    ids.iter().map(|s| s.parse().unwrap()).collect()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}
