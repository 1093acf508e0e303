//! Errors of [`crate::verify`] and [`crate::sign`].
//!
//! Messages name headers and say what is wrong with them; they never include a
//! secret, an expected signature or a received signature, so they are safe to
//! log and to return to the caller in a 401 body.

/// Why a delivery was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No secret was configured for the endpoint.
    #[error("no webhook secret is configured")]
    NoSecrets,
    /// A header the scheme needs is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// A header is present but does not parse.
    #[error("malformed header `{header}`: {reason}")]
    MalformedHeader {
        /// The header name.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature header parses but carries no signature of a version this
    /// scheme accepts (for example a Stripe header with only `v0`).
    #[error("header `{0}` carries no signature of a supported version")]
    NoSupportedSignature(String),
    /// The signed timestamp is further than `tolerance_secs` from `now`, in
    /// the past (stale, possibly a replay) or in the future.
    #[error(
        "timestamp {timestamp} is {} {} s away from now ({now}); tolerance is {tolerance_secs} s",
        if .timestamp < .now { "stale:" } else { "in the future:" },
        .now.abs_diff(*.timestamp)
    )]
    TimestampOutsideTolerance {
        /// The signed timestamp, Unix seconds.
        timestamp: i64,
        /// The injected clock, Unix seconds.
        now: i64,
        /// The accepted distance, seconds.
        tolerance_secs: i64,
    },
    /// No signature matched any configured secret.
    #[error("signature does not match")]
    SignatureMismatch,
    /// The signature matched but the body does not hash to the signed digest
    /// (Twilio `bodySHA256`).
    #[error("body does not match the signed body hash")]
    BodyHashMismatch,
    /// The request's content cannot be verified by this scheme.
    #[error("unsupported content: {0}")]
    UnsupportedContent(&'static str),
    /// A configured secret has the wrong shape for the scheme (for example a
    /// `whsec_` secret that is not base64). Says what, never the secret.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(&'static str),
    /// The generic HMAC configuration is invalid.
    #[error("invalid scheme configuration: {0}")]
    InvalidConfig(String),
}

/// Why a delivery could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The secret cannot sign for this scheme (for example a `whpk_` public key).
    #[error("invalid signing secret: {0}")]
    InvalidSecret(&'static str),
    /// The request cannot be signed as given.
    #[error("cannot sign this request: {0}")]
    InvalidRequest(&'static str),
    /// The generic HMAC configuration is invalid.
    #[error("invalid scheme configuration: {0}")]
    InvalidConfig(String),
}
