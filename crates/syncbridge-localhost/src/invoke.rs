//! One non-forwarded invocation: POST the payload to `/<FunctionName>` on the
//! handler's port with the host's headers (§2), judge the answer (§5: non-2xx,
//! timeout, connection error or an unparsable body fail the invocation), log its
//! `Logs`, and apply its output bindings (Service Bus outputs become queue sends;
//! the HTTP output is returned to the caller).

use std::time::Duration;

use syncbridge_core::{OutboundMessage, QueueName};
use syncbridge_protocol::{INVOCATION_ID_HEADER, InvocationResponse};

use crate::HostState;
use crate::app::{FunctionSpec, OutputBinding};
use crate::events::{HostEvent, TriggerKind};
use crate::payload;

/// Version string sent as `X-Azure-Functions-HostVersion` / `User-Agent`.
pub const HOST_VERSION: &str = "4.1037.0-syncbridge-local";

/// A successful invocation.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// `X-Azure-Functions-InvocationId` that was sent.
    pub invocation_id: String,
    /// The handler's parsed answer (outputs already applied).
    pub response: InvocationResponse,
}

/// A failed invocation (the trigger's failure path applies).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invocation {invocation_id} of {function} failed: {reason}")]
pub struct InvokeFailure {
    /// Function name.
    pub function: String,
    /// `X-Azure-Functions-InvocationId` that was sent (or would have been).
    pub invocation_id: String,
    /// What went wrong.
    pub reason: String,
}

/// Runs one invocation of `f`. `build` makes the payload bytes (it gets the
/// invocation id for `sys`-like fields that want it).
pub(crate) async fn invoke(
    host: &HostState,
    f: &FunctionSpec,
    trigger: TriggerKind,
    build: impl FnOnce() -> Vec<u8>,
) -> Result<Invoked, InvokeFailure> {
    let invocation_id = syncbridge_localqueue::new_uuid();
    let result = run(host, f, &invocation_id, build).await;
    let (succeeded, detail) = match &result {
        Ok(_) => (true, "ok".to_string()),
        Err(reason) => (false, reason.clone()),
    };
    if succeeded {
        tracing::debug!(function = %f.name, %invocation_id, "invocation succeeded");
    } else {
        tracing::warn!(function = %f.name, %invocation_id, "invocation failed: {detail}");
    }
    let _ = host.events.send(HostEvent::Invocation {
        function: f.name.clone(),
        invocation_id: invocation_id.clone(),
        trigger,
        succeeded,
        detail,
    });
    result
        .map(|response| Invoked {
            invocation_id: invocation_id.clone(),
            response,
        })
        .map_err(|reason| InvokeFailure {
            function: f.name.clone(),
            invocation_id,
            reason,
        })
}

async fn run(
    host: &HostState,
    f: &FunctionSpec,
    invocation_id: &str,
    build: impl FnOnce() -> Vec<u8>,
) -> Result<InvocationResponse, String> {
    let port = host.wait_ready(&f.name).await?;
    let body = build();
    let url = format!("http://127.0.0.1:{port}/{}", f.name);
    let answer = host
        .client
        .post(&url)
        .header("content-type", "application/json")
        .header(INVOCATION_ID_HEADER, invocation_id)
        .header(syncbridge_protocol::HOST_VERSION_HEADER, HOST_VERSION)
        .header(
            "user-agent",
            format!(
                "{}{HOST_VERSION}",
                syncbridge_protocol::env::USER_AGENT_PREFIX
            ),
        )
        .timeout(host.invocation_timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {}", error_chain(&e)))?;
    let status = answer.status();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| format!("reading the handler's answer: {e}"))?;
    if !status.is_success() {
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        return Err(format!("handler answered {status}: {snippet}"));
    }
    let response = InvocationResponse::parse(&bytes).map_err(|e| e.to_string())?;
    for line in &response.logs {
        tracing::info!(target: "syncbridge_localhost::function", function = %f.name, invocation_id, "{line}");
    }
    apply_queue_outputs(host, f, &response).await?;
    Ok(response)
}

/// Sends every Service Bus output binding's messages (array → one message each).
async fn apply_queue_outputs(
    host: &HostState,
    f: &FunctionSpec,
    response: &InvocationResponse,
) -> Result<(), String> {
    let mut messages = Vec::new();
    for out in &f.outputs {
        let OutputBinding::ServiceBus { name, queue } = out else {
            continue;
        };
        let value = if name == "$return" {
            Some(&response.return_value)
        } else {
            response
                .outputs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let Some(value) = value else {
            tracing::debug!(function = %f.name, binding = %name, "no value for output binding");
            continue;
        };
        for body in payload::output_message_bodies(value) {
            messages.push(OutboundMessage {
                queue: QueueName::new(queue.clone()),
                message_id: syncbridge_localqueue::new_uuid().replace('-', ""),
                body,
                content_type: None,
                scheduled_enqueue_at: None,
                session_id: None,
                properties: Default::default(),
            });
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    let queue = host.queue.clone();
    tokio::task::spawn_blocking(move || queue.enqueue(&messages))
        .await
        .map_err(|e| format!("output binding task: {e}"))?
        .map(|_| ())
        .map_err(|e| format!("flushing Service Bus outputs: {e}"))
}

/// `e` and its sources, joined (reqwest's top-level message hides the cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The HTTP client the host uses towards handlers: no proxy from the environment,
/// no redirects followed (like the host's `AllowAutoRedirect=false`).
pub(crate) fn handler_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client builds")
}
