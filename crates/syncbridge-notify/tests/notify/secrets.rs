//! Channel URLs and signing secrets never reach Debug output, errors, logs
//! or the outbox file.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use syncbridge_core::Clock as _;

use syncbridge_notify::samples::sample_events;
use syncbridge_notify::{ChannelConfig, NotifyConfig, send_test};

use crate::common::{Recorder, Reply, WHSEC, clock, service};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Installs (once) a global TRACE subscriber writing into a buffer. Global,
/// not `set_default`: a thread-scoped subscriber misses events when another
/// test thread registers a callsite first (tracing's interest cache).
fn capture_logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
    .clone()
}

const SLACK_TOKEN: &str = "xSLACKTOKENx";
const TEAMS_SIG: &str = "xTEAMSSIGx";
const HOOK_TOKEN: &str = "xHOOKTOKENx";

/// Across config Debug, service Debug, failed and successful deliveries (with logs captured at TRACE), dead-message errors, send_test errors and the outbox file, no URL secret part or signing secret ever appears.
#[tokio::test]
async fn secrets_are_never_printed() {
    let logs = capture_logs();

    let rec = Recorder::start().await;
    // Answers that echo the URL back must not leak it either.
    rec.script([
        Reply::new(
            500,
            &rec.url(&format!("/services/T/B/{SLACK_TOKEN} failed")),
        ),
        Reply::new(403, &format!("sig={TEAMS_SIG} refused")),
    ]);
    let text = format!(
        r#"
        [grouping]
        wait_secs = 0
        [delivery]
        max_attempts = 2
        [[channels]]
        name = "slack"
        type = "slack"
        url = "{}"
        [[channels]]
        name = "teams"
        type = "teams"
        url_env = "TEAMS_URL"
        [[channels]]
        name = "hook"
        type = "webhook"
        url = "{}"
        secret_env = "HOOK_SECRET"
        [default]
        channels = ["slack", "teams", "hook"]
        "#,
        rec.url(&format!("/services/T/B/{SLACK_TOKEN}")),
        rec.url(&format!("/hook/{HOOK_TOKEN}")),
    );
    let teams_url = rec.url(&format!("/invoke?sp=run&sig={TEAMS_SIG}"));
    let config = NotifyConfig::from_toml_with_env(&text, |name| match name {
        "TEAMS_URL" => Some(teams_url.clone()),
        "HOOK_SECRET" => Some(WHSEC.to_owned()),
        _ => None,
    })
    .unwrap();

    let mut printed = format!("{config:?}\n{:?}\n", config.channels[0]);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = service(dir.path(), config, &clock);
    printed.push_str(&format!("{svc:?}\n"));
    svc.enqueue(sample_events().remove(0)).await.unwrap();
    for _ in 0..3 {
        let r = svc.deliver_due(clock.now()).await.unwrap();
        printed.push_str(&format!("{r:?}\n"));
        clock.advance(Duration::from_secs(60));
    }
    for d in svc.dead_messages(10).await.unwrap() {
        printed.push_str(&format!("{d:?}\n"));
    }
    assert!(
        printed.contains("answered HTTP 403"),
        "the dead message's error is kept: {printed}"
    );

    // send_test errors: rejected (echoing the URL) and unreachable.
    rec.script([Reply::new(
        400,
        &rec.url(&format!("/services/T/B/{SLACK_TOKEN}")),
    )]);
    let url = syncbridge_core::SecretString::new(rec.url(&format!("/services/T/B/{SLACK_TOKEN}")));
    let e = send_test(syncbridge_notify::ChannelKind::Slack, &url, None)
        .await
        .unwrap_err();
    printed.push_str(&format!("{e}\n{e:?}\n"));
    let url = syncbridge_core::SecretString::new(format!(
        "http://127.0.0.1:9/services/T/B/{SLACK_TOKEN}"
    ));
    let e = send_test(syncbridge_notify::ChannelKind::Slack, &url, None)
        .await
        .unwrap_err();
    printed.push_str(&format!("{e}\n{e:?}\n"));

    let channel = ChannelConfig::webhook("w", "https://example.com/x", WHSEC);
    printed.push_str(&format!("{channel:?}\n"));

    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("notification delivered"),
        "logs captured: {log_text}"
    );
    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        db.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let db_text = String::from_utf8_lossy(&db);
    let whsec_key = WHSEC.trim_start_matches("whsec_");
    for secret in [SLACK_TOKEN, TEAMS_SIG, HOOK_TOKEN, whsec_key] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
        assert!(!log_text.contains(secret), "{secret} logged: {log_text}");
        assert!(!db_text.contains(secret), "{secret} stored in the outbox");
    }
}
