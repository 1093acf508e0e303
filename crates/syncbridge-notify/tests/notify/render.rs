//! Every event kind, delivered to Slack and Teams recorders, renders in each
//! platform's documented format; the Teams card validates against the
//! published Adaptive Card schema.

use serde_json::{Value, json};
use syncbridge_core::Clock as _;
use syncbridge_core::events::Event;
use syncbridge_notify::render::{self, facts};
use syncbridge_notify::samples::{EVENT_KINDS, kind_index, sample_events};
use syncbridge_notify::{ChannelConfig, ChannelKind, Notification, Occurrence};

use crate::common::{Recorder, T0, clock, message_id, one_channel, service};

/// The list the render tests iterate: one sample per kind.
fn all_kinds() -> Vec<Event> {
    sample_events()
}

fn validator(file: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft6)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the vendored schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, card: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(card)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{card:#}");
}

fn slack_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn notification(event: Event, occurrence: Occurrence, count: u64) -> Notification {
    Notification {
        id: "ntf_0123456789abcdef0123456789abcdef".into(),
        event,
        occurrence,
        count,
        first_at: T0,
        last_at: T0.add(std::time::Duration::from_secs(20)),
        test: false,
    }
}

/// The list the render tests iterate covers every `Event` variant exactly once (`kind_index` is an exhaustive match).
#[test]
fn render_list_covers_every_kind() {
    let kinds: Vec<&str> = all_kinds().iter().map(Event::kind).collect();
    assert_eq!(kinds, EVENT_KINDS.to_vec());
    let mut seen = [false; EVENT_KINDS.len()];
    for e in all_kinds() {
        assert!(!seen[kind_index(&e)], "{} twice", e.kind());
        seen[kind_index(&e)] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

/// Every kind reaches a Slack webhook as Block Kit: fallback text, header, section with every fact as a field, context with the message id.
#[tokio::test]
async fn every_kind_renders_for_slack() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::slack(
            "s",
            rec.url("/services/T0/B0/slacktoken"),
        )),
        &clock,
    );
    for e in all_kinds() {
        svc.enqueue(e).await.unwrap();
    }
    let report = svc.deliver_due(clock.now()).await.unwrap();
    assert_eq!(report.delivered, EVENT_KINDS.len());
    let reqs = rec.requests();
    assert_eq!(reqs.len(), EVENT_KINDS.len());
    for e in all_kinds() {
        let r = reqs
            .iter()
            .find(|r| r.json()["text"].as_str().unwrap().contains(&e.title()))
            .unwrap_or_else(|| panic!("no Slack message for {}", e.kind()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(header.contains(&e.title()) && header.chars().count() <= 150);
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains(e.kind())
        );
        let fields = blocks[1]["fields"].as_array().unwrap();
        let expected = facts(&e);
        assert!(!fields.is_empty() && fields.len() <= 10);
        assert_eq!(fields.len(), expected.len());
        for ((label, value), f) in expected.iter().zip(fields) {
            assert_eq!(f["type"], "mrkdwn");
            let text = f["text"].as_str().unwrap();
            assert_eq!(text, format!("*{label}*\n{}", slack_escaped(value)));
            assert!(text.chars().count() <= 2000);
        }
        assert_eq!(blocks[2]["type"], "context");
        assert!(message_id(ChannelKind::Slack, r).starts_with("ntf_"));
    }
}

/// Slack control characters in event text are escaped, so `<…>` cannot become a link or mention.
#[test]
fn slack_escapes_mrkdwn() {
    let e = all_kinds().remove(0); // its error holds "<Service Unavailable> &"
    let v = render::slack(&notification(e, Occurrence::First, 1));
    let text = v.to_string();
    assert!(text.contains("&lt;Service Unavailable&gt; &amp;"), "{text}");
    assert!(
        !v["blocks"][1]["fields"][3]["text"]
            .as_str()
            .unwrap()
            .contains('<')
    );
}

/// Every kind reaches a Teams webhook in the documented message envelope, and each card validates against the Adaptive Card 1.4 and 1.5 schemas.
#[tokio::test]
async fn every_kind_renders_for_teams_and_validates() {
    let v14 = validator("adaptive-card-1.4.json");
    let v15 = validator("adaptive-card-1.5.json");
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(
        dir.path(),
        one_channel(ChannelConfig::teams("t", rec.url("/workflows/abc/invoke"))),
        &clock,
    );
    for e in all_kinds() {
        svc.enqueue(e).await.unwrap();
    }
    svc.deliver_due(clock.now()).await.unwrap();
    let reqs = rec.requests();
    assert_eq!(reqs.len(), EVENT_KINDS.len());
    for e in all_kinds() {
        let r = reqs
            .iter()
            .find(|r| r.json().to_string().contains(&e.title()))
            .unwrap_or_else(|| panic!("no Teams message for {}", e.kind()));
        let v = r.json();
        assert_eq!(v["type"], "message");
        let atts = v["attachments"].as_array().unwrap();
        assert_eq!(atts.len(), 1);
        assert_eq!(
            atts[0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &atts[0]["content"];
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["text"], e.title());
        let facts_json: Vec<(String, String)> = card["body"][2]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["title"].as_str().unwrap().into(),
                    f["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = facts(&e)
            .into_iter()
            .map(|(l, v)| (l.to_owned(), v))
            .collect();
        assert_eq!(facts_json, expected);
        assert_valid(&v14, card, e.kind());
        assert_valid(&v15, card, e.kind());
        assert!(message_id(ChannelKind::Teams, r).starts_with("ntf_"));
    }
}

/// Counts show in both channels (first message "×100", follow-up "repeated 99 more times") and those cards still validate.
#[test]
fn counts_render_and_validate() {
    let v14 = validator("adaptive-card-1.4.json");
    let e = all_kinds().remove(0);
    let first = notification(e.clone(), Occurrence::First, 100);
    let again = notification(e.clone(), Occurrence::Repeated, 99);
    let slack_first = render::slack(&first);
    assert!(
        slack_first["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("(×100)")
    );
    assert!(
        slack_first["text"]
            .as_str()
            .unwrap()
            .contains("100 occurrences")
    );
    let slack_again = render::slack(&again);
    assert!(
        slack_again["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Still happening")
    );
    assert!(
        slack_again["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("repeated 99 more times")
    );
    for n in [&first, &again] {
        let card = render::adaptive_card(n);
        assert_valid(&v14, &card, "count card");
    }
    assert!(
        render::adaptive_card(&again)["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains("repeated 99 more times")
    );
}

/// The vendored schema really validates: cards with an unknown property, a bad enum value or a missing fact title are rejected.
#[test]
fn schema_rejects_invalid_cards() {
    let v = validator("adaptive-card-1.4.json");
    let good = render::adaptive_card(&notification(all_kinds().remove(0), Occurrence::First, 1));
    assert!(v.is_valid(&good));
    let mut extra = good.clone();
    extra["msteams"] = json!({"width": "Full"});
    let mut bad_color = good.clone();
    bad_color["body"][0]["color"] = json!("Purple");
    let mut no_title = good.clone();
    no_title["body"][2]["facts"][0] = json!({"value": "x"});
    for (what, card) in [
        ("extra property", extra),
        ("bad color", bad_color),
        ("fact without title", no_title),
    ] {
        assert!(!v.is_valid(&card), "{what} should fail");
    }
}
