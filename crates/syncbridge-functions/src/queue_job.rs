//! Decoding a queue-triggered job, with poison handling shared by both workers.

use syncbridge_core::Store;
use syncbridge_core::model::{QuarantinedMessage, SyncJob};
use syncbridge_protocol::{Invocation, InvocationResponse, ServiceBusInvocation};

use crate::error::HandlerError;

/// The job, or the answer to give because the message was quarantined.
pub(crate) enum Decoded<J = SyncJob> {
    /// A job to run.
    Job(Box<(J, ServiceBusInvocation)>),
    /// Poison: stored for inspection; acknowledge it.
    Quarantined(InvocationResponse),
}

/// Decodes a job (`SyncJob`, `PushJob`); undecodable messages are quarantined (and counted in
/// the store) and acknowledged, so they never loop through redeliveries.
pub(crate) async fn decode<J: serde::de::DeserializeOwned>(
    store: &dyn Store,
    events: &dyn syncbridge_core::events::EventSink,
    function: &str,
    inv: Invocation<ServiceBusInvocation>,
    now: syncbridge_core::Timestamp,
) -> Result<Decoded<J>, HandlerError> {
    let (message_id, poison) = match &inv.payload {
        Ok(msg) => match msg.json::<J>() {
            Ok(job) => return Ok(Decoded::Job(Box::new((job, msg.clone())))),
            Err(e) => (msg.metadata.message_id.clone(), e.to_string()),
        },
        // Not poison: the deployment is wrong (binding mismatch), so every
        // message would fail alike. Fail visibly (→ dead-letter) instead of
        // quarantining the whole queue.
        Err(e) if !e.is_poison() => {
            return Err(HandlerError::Binding(e.clone()));
        }
        Err(e) => (None, e.to_string()),
    };
    let body = match &inv.payload {
        Ok(msg) => msg.body.clone(),
        Err(_) => inv.raw.to_vec(),
    };
    let id = store
        .quarantine(&QuarantinedMessage {
            source: function.to_string(),
            message_id: message_id.clone(),
            connection: None,
            reason: poison.clone(),
            body,
            at: now,
        })
        .await?;
    let event = syncbridge_core::events::Event::MessageQuarantined {
        source: function.to_string(),
        message_id,
        reason: poison.clone(),
    };
    events.emit(event).await;
    tracing::warn!(invocation_id = ?inv.context.invocation_id, quarantine_id = id, reason = %poison, "message quarantined");
    Ok(Decoded::Quarantined(InvocationResponse::quarantined(
        format!("quarantine #{id}: {poison}"),
    )))
}
