//! Tracing: the log format, and one span per invocation.
//!
//! # Format
//!
//! `SYNCBRIDGE_LOG_FORMAT` = `json` | `text`. Unset, a handler logs JSON when
//! it runs under a Functions host (`FUNCTIONS_CUSTOMHANDLER_PORT` is set) and
//! text otherwise; `syncbridge up` and the demo set `text` for their
//! children. JSON goes to **stdout**, one object per line, which the Functions
//! host forwards to Application Insights as `traces` with
//! `customDimensions.Category == "Host.Function.Console"` and the line as
//! `message` (docs/telemetry.md has the queries). Text goes to stderr.
//! `RUST_LOG` filters either (default `info`).
//!
//! A JSON line (`flatten_event`, current span, no span list):
//!
//! ```json
//! {"timestamp":"…","level":"INFO","message":"sync run finished","run_id":"…","status":"succeeded",
//!  "target":"syncbridge_functions::inbound",
//!  "span":{"name":"invocation","function":"SyncInboundWorker","invocation_id":"…","correlation_id":"…",…}}
//! ```
//!
//! # The invocation span
//!
//! [`instrument`] wraps a handler router so that every request runs in an
//! `invocation` span carrying `function` and the host's `invocation_id` (the
//! `X-Azure-Functions-InvocationId` header, [`syncbridge_protocol::INVOCATION_ID_HEADER`]).
//! Fields a handler learns later are declared empty here and recorded by the
//! handler with [`record`]: `correlation_id`, `message_id`, `delivery_count`,
//! `task`, `connection`.
//!
//! Secrets never reach a field: spans and events carry ids and counts only.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The setting that picks the log format.
pub const LOG_FORMAT_VAR: &str = "SYNCBRIDGE_LOG_FORMAT";

/// The span every invocation runs in.
pub const INVOCATION_SPAN: &str = "invocation";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line on stdout (under the Functions host).
    Json,
    /// Human-readable lines on stderr.
    Text,
}

/// A log setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `SYNCBRIDGE_LOG_FORMAT` is neither `json` nor `text`.
    #[error("{LOG_FORMAT_VAR}: expected `json` or `text`, got {0:?}")]
    Format(String),
}

impl LogFormat {
    /// The format from the two settings that decide it: `SYNCBRIDGE_LOG_FORMAT`
    /// wins; otherwise JSON under a Functions host (`FUNCTIONS_CUSTOMHANDLER_PORT`).
    pub fn from_vars(
        format: Option<&str>,
        handler_port: Option<&str>,
    ) -> Result<Self, TelemetryError> {
        match format.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(f) if f.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(f) => Err(TelemetryError::Format(f.to_string())),
            None if handler_port.is_some() => Ok(LogFormat::Json),
            None => Ok(LogFormat::Text),
        }
    }
}

/// A subscriber writing `format` to `writer`, filtered by `filter`. The binaries
/// install one with [`init`]; tests pass a buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_target(false).with_ansi(false).finish()),
    }
}

/// Installs the global subscriber for a handler binary: the format from the
/// settings, `RUST_LOG` (default `info`). A second call is a no-op.
pub fn init(log: &crate::settings::LogSettings) -> Result<LogFormat, TelemetryError> {
    let format = LogFormat::from_vars(log.format.as_deref(), log.handler_port.as_deref())?;
    let filter = log.env_filter("info");
    let sub = match format {
        LogFormat::Json => subscriber(format, filter, std::io::stdout),
        LogFormat::Text => subscriber(format, filter, std::io::stderr),
    };
    let _ = tracing::subscriber::set_global_default(sub);
    Ok(format)
}

/// The span for one invocation of `function`; the other fields are recorded
/// by the handler once known ([`record`]).
pub fn invocation_span(function: &str, invocation_id: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        INVOCATION_SPAN,
        function,
        invocation_id = invocation_id.unwrap_or_default(),
        correlation_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
        delivery_count = tracing::field::Empty,
        task = tracing::field::Empty,
        connection = tracing::field::Empty,
    )
}

/// Records `value` as `field` on the current invocation span (no-op outside one).
pub fn record(field: &'static str, value: impl std::fmt::Display) {
    tracing::Span::current().record(field, tracing::field::display(value));
}

/// `router` with every request running in an [`invocation_span`] for `function`.
pub fn instrument(router: Router, function: &'static str) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| async move {
            let id = req
                .headers()
                .get(syncbridge_protocol::INVOCATION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let span = invocation_span(function, id.as_deref());
            next.run(req).instrument(span).await
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Lines written through [`subscriber`] into memory.
    #[derive(Debug, Clone, Default)]
    struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl CaptureWriter {
        /// Everything written so far, as text.
        fn contents(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        }
    }

    impl Write for CaptureWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for CaptureWriter {
        type Writer = CaptureWriter;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// The explicit setting wins; otherwise JSON exactly under a Functions host.
    #[test]
    fn format_table() {
        let cases = [
            (None, None, Some(LogFormat::Text)),
            (None, Some("7071"), Some(LogFormat::Json)),
            (Some("json"), None, Some(LogFormat::Json)),
            (Some("TEXT"), Some("7071"), Some(LogFormat::Text)),
            (Some(" "), Some("7071"), Some(LogFormat::Json)),
            (Some("yaml"), None, None),
        ];
        for (format, port, want) in cases {
            let got = LogFormat::from_vars(format, port).ok();
            assert_eq!(got, want, "{format:?} {port:?}");
        }
        let err = LogFormat::from_vars(Some("yaml"), None).unwrap_err();
        assert!(err.to_string().contains(LOG_FORMAT_VAR), "{err}");
    }

    /// A JSON line carries the span's fields, including ones recorded later.
    #[test]
    fn json_line_has_span_fields() {
        let out = CaptureWriter::default();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), out.clone());
        tracing::subscriber::with_default(sub, || {
            let span = invocation_span("SyncScheduler", Some("inv-1"));
            let _e = span.enter();
            record("correlation_id", "corr-1");
            tracing::info!(enqueued = 2, "scheduler tick");
        });
        let line: serde_json::Value = serde_json::from_str(out.contents().trim()).unwrap();
        assert_eq!(line["message"], "scheduler tick");
        assert_eq!(line["enqueued"], 2);
        assert_eq!(line["span"]["name"], INVOCATION_SPAN);
        assert_eq!(line["span"]["function"], "SyncScheduler");
        assert_eq!(line["span"]["invocation_id"], "inv-1");
        assert_eq!(line["span"]["correlation_id"], "corr-1");
    }
}
