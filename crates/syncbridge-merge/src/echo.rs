//! Echo suppression: our own write coming back must not become a change.

/// Whether an incoming remote record is the echo of our last push: its
/// [`crate::fields_hash`] equals the hash of the state our last push left at
/// the provider ([`crate::MergeOutcome::remote_after_push`]).
///
/// When it is, the inbound caller (webhook, poll) records the incoming
/// version and does nothing else: no local write, no new change, no outbound
/// job. The outbound worker must not use this shortcut: its fresh read after a
/// push is the echo, and local edits made since must still be merged and
/// pushed.
///
/// Contract for `last_pushed_hash`: set it when a push is acknowledged (the
/// base then equals what was pushed); clear it whenever the base moves for any
/// other reason (a merged remote change). Under that contract an echo equals
/// the base on every non-parked field, so suppressing it loses nothing. Only
/// the *last* push counts, not a history: an earlier pushed state coming back
/// with a newer provider version is a genuine remote change (someone reverted
/// the record), and an earlier echo arriving late carries an older version,
/// which [`crate::should_apply_remote`] drops first.
pub fn is_echo(last_pushed_hash: Option<&str>, incoming_remote_hash: &str) -> bool {
    last_pushed_hash == Some(incoming_remote_hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldValues, fields_hash};
    use serde_json::json;

    /// The state we pushed is an echo, in any key order and with `null` for absent; anything else is not.
    #[test]
    fn echo_table() {
        let pushed: FieldValues = [("a".to_owned(), json!(1)), ("b".to_owned(), json!("x"))].into();
        let back: FieldValues = [
            ("b".to_owned(), json!("x")),
            ("a".to_owned(), json!(1)),
            ("c".to_owned(), json!(null)),
        ]
        .into();
        let changed: FieldValues =
            [("a".to_owned(), json!(2)), ("b".to_owned(), json!("x"))].into();
        let h = fields_hash(&pushed);
        assert!(is_echo(Some(&h), &fields_hash(&back)));
        assert!(!is_echo(Some(&h), &fields_hash(&changed)));
        assert!(!is_echo(None, &fields_hash(&back)));
    }
}
