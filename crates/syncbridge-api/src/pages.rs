//! Cursor pagination: opaque cursors and page sizes.
//!
//! A cursor is base64url of a small JSON array `[list, key…]`: the list it
//! belongs to and the last key of the page it follows. Clients treat it as
//! opaque; a cursor of another list, or one this API did not make, is a 400
//! `invalid-cursor`, never a silently wrong page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use syncbridge_core::Timestamp;

use crate::problem::ApiError;

/// Page size when the client names none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 500;

/// The page size asked for, checked.
pub fn limit(asked: Option<usize>) -> Result<usize, ApiError> {
    limit_within(asked, DEFAULT_LIMIT, MAX_LIMIT)
}

/// The page size asked for, checked against a list's own default and bound
/// (the records feed pages larger than the other lists).
pub fn limit_within(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::InvalidRequest(format!(
            "limit {n}: must be between 1 and {max}"
        ))),
    }
}

/// An optional RFC 3339 query parameter `name`, checked.
pub fn time_param(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|s| {
        Timestamp::parse(s)
            .ok_or_else(|| ApiError::InvalidRequest(format!("{name} {s:?}: not an RFC 3339 time")))
    })
    .transpose()
}

/// The cursor of list `list` after `key`.
pub fn encode(list: &str, key: &[&str]) -> String {
    let mut parts = vec![list];
    parts.extend_from_slice(key);
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&parts).expect("strings serialize"))
}

/// The key in a cursor of list `list` with `n` parts.
pub fn decode(list: &str, cursor: &str, n: usize) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::InvalidCursor(format!("cursor {cursor:?} was not issued for this list"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    match parts.split_first() {
        Some((head, key)) if head == list && key.len() == n => Ok(key.to_vec()),
        _ => Err(bad()),
    }
}

/// A page and the cursor after it: `Some` exactly when the page is full
/// (there may be more), from the page's last item.
pub fn next_cursor<T>(items: &[T], limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
    (items.len() >= limit)
        .then(|| items.last().map(key))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cursor decodes for its own list only, with its own arity.
    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let c = encode("runs", &["123", "r1"]);
        assert_eq!(decode("runs", &c, 2).unwrap(), ["123", "r1"]);
        assert!(matches!(
            decode("connections", &c, 2),
            Err(ApiError::InvalidCursor(_))
        ));
        assert!(decode("runs", &c, 1).is_err());
        assert!(decode("runs", "not base64!", 2).is_err());
        assert!(decode("runs", &URL_SAFE_NO_PAD.encode(b"{}"), 2).is_err());
    }

    /// Limits default, and out-of-range ones are refused.
    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
