//! [`NotifyError`]: what can go wrong, safe to print (no URL, no secret).

use crate::config::ChannelKind;

/// A notification failure. Messages never contain a channel URL or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(String),
    /// The outbox database failed.
    #[error("notification outbox: {0}")]
    Store(String),
    /// The channel answered, but not with success.
    #[error("{channel} answered HTTP {status}: {body}")]
    Rejected {
        /// Which kind of channel.
        channel: ChannelKind,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The channel could not be reached (connect error, timeout, TLS…).
    #[error("{channel} could not be reached: {message}")]
    Unreachable {
        /// Which kind of channel.
        channel: ChannelKind,
        /// What went wrong, without the URL.
        message: String,
    },
}

impl From<rusqlite::Error> for NotifyError {
    fn from(e: rusqlite::Error) -> Self {
        NotifyError::Store(e.to_string())
    }
}
