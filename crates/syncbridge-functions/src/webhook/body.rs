//! Reading a delivery's body within its size limit.

use axum::body::{Body, Bytes};

/// Why a delivery's body could not be read.
#[derive(Debug)]
pub(super) enum BodyFault {
    /// Larger than `SYNCBRIDGE_WEBHOOK_MAX_BYTES`.
    TooLarge(usize),
    /// Not all there within `SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS`.
    TimedOut(String),
    /// The connection broke while it was being read.
    Broken(String),
}

/// How much of an oversized body is read (and thrown away) before the 413:
/// enough for anything the local host's front door lets through.
const DRAIN_CAP: u64 = 128 * 1024 * 1024;

/// Reads a delivery's body, at most `limit` bytes. A larger body is still
/// read to its end (up to [`DRAIN_CAP`], within the body read timeout) and
/// thrown away before the 413 goes out, without being kept in memory:
/// closing a connection with unread bytes resets it, and a proxy in front
/// (the local host's front door) that is still sending would then lose the
/// answer and report the handler unreachable.
pub(super) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyFault> {
    use http_body_util::BodyExt as _;
    let limit64 = limit as u64;
    if axum::body::HttpBody::size_hint(&body).lower() > limit64.saturating_add(DRAIN_CAP) {
        return Err(BodyFault::TooLarge(limit));
    }
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if syncbridge_protocol::server::is_body_timeout(&e) {
                BodyFault::TimedOut(e.to_string())
            } else {
                BodyFault::Broken(e.to_string())
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit64.saturating_add(DRAIN_CAP) {
            return Err(BodyFault::TooLarge(limit));
        }
        if seen > limit64 {
            kept = bytes::BytesMut::new();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit64 {
        return Err(BodyFault::TooLarge(limit));
    }
    Ok(kept.freeze())
}
