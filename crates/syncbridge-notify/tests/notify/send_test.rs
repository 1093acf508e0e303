//! `send_test`, behind `syncbridge notify test --channel … --url …`.

use syncbridge_core::Clock as _;
use syncbridge_core::{SecretString, SystemClock};
use syncbridge_notify::{ChannelKind, NotifyError, send_test};
use syncbridge_signatures::{Request, Scheme, WebhookSecret, verify};

use crate::common::{Recorder, Reply, WHSEC};

/// A sample message reaches each kind of channel in its format, marked as a test, and the channel's answer is returned.
#[tokio::test]
async fn send_test_delivers_a_sample_to_each_channel() {
    let rec = Recorder::start().await;
    let secret = WebhookSecret::new(WHSEC);
    for (kind, path) in [
        (ChannelKind::Slack, "/slack"),
        (ChannelKind::Teams, "/teams"),
        (ChannelKind::Webhook, "/webhook"),
        (ChannelKind::Product, "/product"),
    ] {
        let url = SecretString::new(rec.url(path));
        let answer = send_test(kind, &url, Some(&secret).filter(|_| kind.signed()))
            .await
            .unwrap();
        assert_eq!(answer, format!("{kind} answered HTTP 200: ok"));
        let r = rec.requests_to(path).pop().unwrap();
        let v = r.json();
        match kind {
            ChannelKind::Slack => {
                assert!(v["text"].as_str().unwrap().starts_with("Test: "));
                assert!(v["blocks"].is_array());
            }
            ChannelKind::Teams => {
                assert_eq!(v["type"], "message");
                assert_eq!(v["attachments"][0]["content"]["type"], "AdaptiveCard");
            }
            ChannelKind::Webhook | ChannelKind::Product => {
                if kind == ChannelKind::Webhook {
                    assert_eq!(v["data"]["test"], true);
                } else {
                    assert_eq!(v["type"], "connection.needs_reauth");
                }
                let req = Request {
                    method: "POST",
                    url: url.expose(),
                    headers: &r.headers,
                    body: &r.body,
                };
                let now = SystemClock.now().as_unix_secs();
                verify(
                    &Scheme::StandardWebhooks,
                    std::slice::from_ref(&secret),
                    &req,
                    now,
                    300,
                )
                .unwrap();
            }
        }
    }
}

/// A refused test fails with the channel's status and body snippet (for the CLI's non-zero exit), without the URL.
#[tokio::test]
async fn send_test_failure_carries_status_and_body() {
    let rec = Recorder::start().await;
    rec.script([Reply::new(404, "no_service")]);
    let url = SecretString::new(rec.url("/services/T0/B0/deletedtoken"));
    let err = send_test(ChannelKind::Slack, &url, None).await.unwrap_err();
    assert_eq!(
        err,
        NotifyError::Rejected {
            channel: ChannelKind::Slack,
            status: 404,
            body: "no_service".into()
        }
    );
    assert_eq!(err.to_string(), "slack answered HTTP 404: no_service");

    let mut long = Reply::new(400, &"x".repeat(5000));
    long.body.insert_str(0, "invalid_payload ");
    rec.script([long]);
    let err = send_test(ChannelKind::Teams, &url, None).await.unwrap_err();
    let NotifyError::Rejected { status, body, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert!(body.starts_with("invalid_payload") && body.chars().count() <= 300);
}

/// Misuse is refused before sending: a webhook without a secret, a bad secret, a non-HTTP URL; an unreachable URL is reported as such.
#[tokio::test]
async fn send_test_refuses_misuse_and_reports_unreachable() {
    let url = SecretString::new("http://127.0.0.1:9/hook");
    assert!(matches!(
        send_test(ChannelKind::Webhook, &url, None).await,
        Err(NotifyError::Config(_))
    ));
    assert!(matches!(
        send_test(
            ChannelKind::Webhook,
            &url,
            Some(&WebhookSecret::new("whsec_%%%"))
        )
        .await,
        Err(NotifyError::Config(_))
    ));
    assert!(matches!(
        send_test(
            ChannelKind::Slack,
            &SecretString::new("ftp://example.com/x"),
            None
        )
        .await,
        Err(NotifyError::Config(_))
    ));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = SecretString::new(format!("http://127.0.0.1:{closed}/services/T/B/tok"));
    let err = send_test(ChannelKind::Slack, &url, None).await.unwrap_err();
    assert!(matches!(err, NotifyError::Unreachable { .. }), "{err:?}");
    assert!(!err.to_string().contains("/services/T/B/tok"), "{err}");
}
