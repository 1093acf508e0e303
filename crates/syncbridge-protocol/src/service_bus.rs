//! Service Bus trigger invocations (single message, §4b).
//!
//! The body is `Data.<binding name>`; its encoding depends on the binding's `dataType`
//! (§3): base64 with `binary` (recommended, §11.4), double-encoded text otherwise. The
//! broker properties are in `Metadata`, encoded per the §4 rules (strings quoted twice,
//! ints as strings, nulls omitted) and, with a `string` binding, possibly **clobbered**
//! by top-level fields of a JSON body (§4 `ApplyBindingData`). [`ServiceBusMetadata`]
//! therefore never fails: every field falls back to a sensible value and records a
//! [`DecodeWarning`].

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::encoding::{self, BodySource, DataType, DecodeWarning, lookup};
use crate::request::{FromInvocation, InvocationRequest, PayloadError, SysMetadata};

/// A decoded Service Bus message.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBusInvocation {
    /// The `Data` key the body came from (the trigger binding's `name`).
    pub binding: String,
    /// The message body bytes (exact with `dataType: binary`).
    pub body: Vec<u8>,
    /// Which decoding path produced [`Self::body`].
    pub body_source: BodySource,
    /// Broker properties from `Metadata`.
    pub metadata: ServiceBusMetadata,
    /// Oddities met while decoding the body (metadata ones are in [`ServiceBusMetadata::warnings`]).
    pub warnings: Vec<DecodeWarning>,
}

/// Broker properties published by the Service Bus extension 5.x (§4b), decoded
/// defensively.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceBusMetadata {
    /// `DeliveryCount`: 1 on first delivery, +1 per abandon/lock loss (§5). Always ≥ 1:
    /// missing, unparsable or out-of-range → 1 with a warning, so "give up after N"
    /// logic never panics or skips.
    pub delivery_count: u32,
    /// `MessageId` (the dedup key on the broker, §7).
    pub message_id: Option<String>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `SessionId` (absent for non-session queues).
    pub session_id: Option<String>,
    /// `Subject`, or the legacy `Label`.
    pub subject: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `ReplyToSessionId`.
    pub reply_to_session_id: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `PartitionKey`.
    pub partition_key: Option<String>,
    /// `DeadLetterSource` (set when reading from a DLQ).
    pub dead_letter_source: Option<String>,
    /// `LockToken`.
    pub lock_token: Option<String>,
    /// `SequenceNumber` (ints arrive as strings).
    pub sequence_number: Option<i64>,
    /// `EnqueuedTimeUtc`, else `EnqueuedTime`.
    pub enqueued_time_utc: Option<OffsetDateTime>,
    /// `ExpiresAtUtc`, else `ExpiresAt`.
    pub expires_at_utc: Option<OffsetDateTime>,
    /// `ApplicationProperties`, else the legacy `UserProperties` (same dictionary).
    pub application_properties: Map<String, Value>,
    /// `Metadata.sys`.
    pub sys: Option<SysMetadata>,
    /// Every fallback taken while decoding; copy into `Logs` so traps are visible.
    pub warnings: Vec<DecodeWarning>,
}

impl ServiceBusMetadata {
    /// Decodes the broker properties from an invocation's `Metadata`. Never fails.
    pub fn from_metadata(request: &InvocationRequest) -> Self {
        let meta = &request.metadata;
        let mut warnings = Vec::new();
        let w = &mut warnings;

        // Trap (§4 value rules): ints arrive as strings ("1"). Trap (§4
        // ApplyBindingData): a JSON body field `DeliveryCount: "x"` overwrites the real
        // count. We cannot recover the real value, so assume first delivery (1): the
        // message is processed, and a genuine poison message still dead-letters after
        // MaxDeliveryCount (§5) because the broker keeps its own count.
        let delivery_count = match encoding::meta_i64(meta, "DeliveryCount") {
            // The broker counts from 1 (§4b), so 0 or negative can only be a leak too.
            Some(Ok(n)) => u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .unwrap_or_else(|| {
                    w.push(DecodeWarning::new(
                        "DeliveryCount",
                        format!(
                            "{n} is out of range (deliveries count from 1), probably a leaked \
                         message-body field (functions-host.md §4); assuming 1"
                        ),
                    ));
                    1
                }),
            Some(Err(why)) => {
                w.push(DecodeWarning::new(
                    "DeliveryCount",
                    format!(
                        "unparsable ({why}), probably clobbered by a message-body field \
                         (functions-host.md §4 ApplyBindingData); assuming 1"
                    ),
                ));
                1
            }
            None => {
                w.push(DecodeWarning::new(
                    "DeliveryCount",
                    "missing; assuming 1 (functions-host.md §4b)",
                ));
                1
            }
        };

        // Trap (§4 value rules): scalar strings are JSON-quoted twice
        // (`"\"job-123\""`); leaked body fields may be single-quoted or raw numbers
        // (`MessageId: 5`). `meta_string` unquotes one layer and warns on non-strings.
        let mut s = |key: &str| encoding::meta_string(meta, key, w);
        let message_id = s("MessageId");
        let content_type = s("ContentType");
        let correlation_id = s("CorrelationId");
        let session_id = s("SessionId");
        let subject = s("Subject").or_else(|| s("Label"));
        let reply_to = s("ReplyTo");
        let reply_to_session_id = s("ReplyToSessionId");
        let to = s("To");
        let partition_key = s("PartitionKey");
        let dead_letter_source = s("DeadLetterSource");
        let lock_token = s("LockToken");

        let sequence_number = match encoding::meta_i64(meta, "SequenceNumber") {
            Some(Ok(n)) => Some(n),
            Some(Err(why)) => {
                w.push(DecodeWarning::new(
                    "SequenceNumber",
                    format!("unparsable ({why}); ignored (functions-host.md §4)"),
                ));
                None
            }
            None => None,
        };

        // Dates are plain ISO strings (§4); `EnqueuedTimeUtc` has no offset in §4b.
        let enqueued_time_utc = encoding::meta_time(meta, "EnqueuedTimeUtc", w)
            .or_else(|| encoding::meta_time(meta, "EnqueuedTime", w));
        let expires_at_utc = encoding::meta_time(meta, "ExpiresAtUtc", w)
            .or_else(|| encoding::meta_time(meta, "ExpiresAt", w));

        // Dictionaries are embedded objects (§4b). A leaked body field of the same name
        // could replace it with a scalar: then fall back to the legacy `UserProperties`
        // copy (§4b: "same dict"), else empty.
        let application_properties = ["ApplicationProperties", "UserProperties"]
            .into_iter()
            .find_map(|key| {
                let v = lookup(meta, key)?;
                let obj = encoding::as_object(v);
                if obj.is_none() {
                    w.push(DecodeWarning::new(
                        key,
                        format!(
                            "expected an object, found a JSON {}; ignored (functions-host.md §4)",
                            encoding::json_kind(v)
                        ),
                    ));
                }
                obj
            })
            .unwrap_or_default();

        Self {
            delivery_count,
            message_id,
            content_type,
            correlation_id,
            session_id,
            subject,
            reply_to,
            reply_to_session_id,
            to,
            partition_key,
            dead_letter_source,
            lock_token,
            sequence_number,
            enqueued_time_utc,
            expires_at_utc,
            application_properties,
            sys: request.sys(),
            warnings,
        }
    }
}

impl ServiceBusInvocation {
    /// Decodes the message in `Data.<binding>`, with the binding's declared `dataType`
    /// when known (`None` = undeclared; the robust decoder of §4 is used).
    ///
    /// # Errors
    /// [`PayloadError::MissingBinding`] when `Data.<binding>` is absent or null. Any
    /// present value decodes to *some* bytes; whether they are meaningful is the
    /// application's call ([`Self::json`]).
    pub fn from_binding(
        request: &InvocationRequest,
        binding: &str,
        data_type: Option<DataType>,
    ) -> Result<Self, PayloadError> {
        let mut warnings = Vec::new();
        let (body, body_source) = encoding::decode_trigger_value(
            request.binding(binding),
            data_type,
            &mut warnings,
            binding,
        )
        .ok_or_else(|| PayloadError::MissingBinding {
            binding: binding.to_owned(),
        })?;
        Ok(Self {
            binding: binding.to_owned(),
            body,
            body_source,
            metadata: ServiceBusMetadata::from_metadata(request),
            warnings,
        })
    }

    /// Parses the body as JSON of type `J`.
    ///
    /// # Errors
    /// [`PayloadError::Body`]: the body is not valid JSON for `J`. This is poison: the
    /// same bytes will fail on every redelivery (see [`crate::Invocation`]).
    pub fn json<J: DeserializeOwned>(&self) -> Result<J, PayloadError> {
        serde_json::from_slice(&self.body).map_err(|e| PayloadError::Body {
            binding: self.binding.clone(),
            message: e.to_string(),
        })
    }

    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Body and metadata warnings together, as log lines.
    pub fn warning_logs(&self) -> Vec<String> {
        let all: Vec<DecodeWarning> = self
            .warnings
            .iter()
            .chain(&self.metadata.warnings)
            .cloned()
            .collect();
        crate::request::warnings_to_logs(&all)
    }
}

impl FromInvocation for ServiceBusInvocation {
    /// Uses the only `Data` entry (a single-message trigger function has exactly one,
    /// §4b) with the robust decoder; for functions with extra input bindings, or to
    /// insist on the binary path, call [`ServiceBusInvocation::from_binding`].
    fn from_invocation(request: &InvocationRequest) -> Result<Self, PayloadError> {
        let (name, _) = request.find_binding(&[], |_| false)?;
        Self::from_binding(request, &name, None)
    }
}
