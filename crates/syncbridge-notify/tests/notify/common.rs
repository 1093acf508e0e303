//! Shared helpers: a recording HTTP server, services on temp files, clocks.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use syncbridge_core::{ManualClock, Timestamp};
use syncbridge_notify::{ChannelKind, NotificationService, NotifyConfig};

/// 2026-11-28T12:00:00Z.
pub const T0: Timestamp = Timestamp::from_millis(1_795_867_200_000);

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the recorder answered with.
    pub status: u16,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Self {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
}

/// An HTTP server on 127.0.0.1 that records every request and answers from
/// a script (then a default, `200 ok`).
#[derive(Clone)]
pub struct Recorder {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Recorder {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = Arc::clone(&shared);
            async move {
                let reply = {
                    let mut s = shared.lock().unwrap();
                    let reply = s
                        .script
                        .pop_front()
                        .or_else(|| s.default.clone())
                        .unwrap_or_else(|| Reply::new(200, "ok"));
                    s.requests.push(Recorded {
                        path: uri.path().to_owned(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                        body: body.to_vec(),
                        status: reply.status,
                    });
                    reply
                };
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let mut h = HeaderMap::new();
                for (k, v) in &reply.headers {
                    h.insert(*k, v.parse().unwrap());
                }
                (StatusCode::from_u16(reply.status).unwrap(), h, reply.body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Recorder {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// A URL on this server; the path plays the secret part of a webhook URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Queues the answers to the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// The answer after the script runs out.
    pub fn respond_always(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// The stable message id a delivery carries: the `webhook-id` header, or the
/// id in Slack's context block / the Teams card's footer.
pub fn message_id(kind: ChannelKind, r: &Recorded) -> String {
    let footer = match kind {
        ChannelKind::Webhook | ChannelKind::Product => {
            return r.header("webhook-id").expect("webhook-id").to_owned();
        }
        ChannelKind::Slack => r.json()["blocks"][2]["elements"][1]["text"]
            .as_str()
            .unwrap()
            .to_owned(),
        ChannelKind::Teams => {
            let body = r.json()["attachments"][0]["content"]["body"].clone();
            body.as_array().unwrap().last().unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    footer
        .split_whitespace()
        .find(|w| w.starts_with("ntf_"))
        .expect("footer names the message id")
        .to_owned()
}

/// Deliveries the recorder accepted (2xx), grouped by message id.
pub fn accepted_by_id(kind: ChannelKind, reqs: &[Recorded]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in reqs.iter().filter(|r| (200..300).contains(&r.status)) {
        let id = message_id(kind, r);
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => *n += 1,
            None => out.push((id, 1)),
        }
    }
    out
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

pub fn service(dir: &Path, config: NotifyConfig, clock: &Arc<ManualClock>) -> NotificationService {
    NotificationService::open_in_dir(dir, config, Arc::clone(clock) as Arc<_>).unwrap()
}

/// A config that sends everything to one channel, with no grouping delay.
pub fn one_channel(channel: syncbridge_notify::ChannelConfig) -> NotifyConfig {
    let name = channel.name.clone();
    NotifyConfig {
        grouping: syncbridge_notify::GroupingConfig {
            wait_secs: 0,
            window_secs: 900,
        },
        channels: vec![channel],
        default: Some(syncbridge_notify::DefaultRoute {
            min_severity: syncbridge_core::events::Severity::Info,
            channels: vec![name],
        }),
        ..NotifyConfig::default()
    }
}

/// A Standard Webhooks secret (the spec's example).
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
