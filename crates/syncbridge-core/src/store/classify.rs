//! The page-commit decision, once for every backend: what a page commit does
//! with one incoming upsert or delete given what is stored. Pure; the stores
//! only read the stored head and apply the answer.
//!
//! Order of the checks (the contract suite holds both stores to it):
//! **held** (a local change or parked conflict owns the record) →
//! **unchanged** (same content hash, nothing written) → **stale** (older
//! than the stored copy by the provider's modification time) → **update**
//! (version + 1) or **create** (version 1).

use crate::clock::Timestamp;

use super::{PageOutcome, RecordUpsert};

/// What a page commit needs to know about a stored (live) record. A
/// tombstone is not a stored record here: the caller passes `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    /// Content hash of the stored data.
    pub hash: String,
    /// The stored version.
    pub version: i64,
    /// The provider's last-modified time of the stored copy.
    pub remote_updated_at: Option<Timestamp>,
    /// Whether the record has a local state (pending push, parked push or
    /// conflict): then inbound pages leave it alone.
    pub held: bool,
}

/// What a page commit does with one upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAction {
    /// A local state holds the record: nothing written.
    Held,
    /// Same content hash: nothing written.
    Unchanged,
    /// Older than the stored copy: nothing written.
    Stale,
    /// Content changed: write it at this version (the stored one + 1).
    Update {
        /// The version to write.
        version: i64,
    },
    /// Not stored (or only a tombstone): write it at version 1.
    Create,
}

impl PageAction {
    /// The version the record is written at, or `None` if nothing is written.
    pub fn version(self) -> Option<i64> {
        match self {
            PageAction::Update { version } => Some(version),
            PageAction::Create => Some(1),
            PageAction::Held | PageAction::Unchanged | PageAction::Stale => None,
        }
    }
}

/// What a page commit does with one id the provider reports deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAction {
    /// Not stored: nothing to do, not counted.
    Absent,
    /// A local state holds the record: nothing written.
    Held,
    /// Remove it (the store keeps a tombstone for the records feed).
    Delete,
}

/// Decides what to do with `incoming` given the stored record (see the module docs).
pub fn classify(incoming: &RecordUpsert, stored: Option<&StoredHead>) -> PageAction {
    let Some(s) = stored else {
        return PageAction::Create;
    };
    if s.held {
        return PageAction::Held;
    }
    if s.hash == incoming.hash {
        return PageAction::Unchanged;
    }
    // Only when both sides report a time: a provider that reports none
    // cannot be judged older.
    if let (Some(stored_at), Some(theirs)) = (s.remote_updated_at, incoming.remote_updated_at)
        && theirs < stored_at
    {
        return PageAction::Stale;
    }
    PageAction::Update {
        version: s.version + 1,
    }
}

/// Decides what to do with a delete given the stored record.
pub fn classify_delete(stored: Option<&StoredHead>) -> DeleteAction {
    match stored {
        None => DeleteAction::Absent,
        Some(s) if s.held => DeleteAction::Held,
        Some(_) => DeleteAction::Delete,
    }
}

impl PageOutcome {
    /// Counts one upsert's action.
    pub fn count(&mut self, action: PageAction) {
        match action {
            PageAction::Held => self.held += 1,
            PageAction::Unchanged => self.unchanged += 1,
            PageAction::Stale => self.stale += 1,
            PageAction::Update { .. } => self.updated += 1,
            PageAction::Create => self.created += 1,
        }
    }

    /// Counts one delete's action (an absent id counts nowhere).
    pub fn count_delete(&mut self, action: DeleteAction) {
        match action {
            DeleteAction::Absent => {}
            DeleteAction::Held => self.held += 1,
            DeleteAction::Delete => self.deleted += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ExternalId;

    fn incoming(hash: &str, remote: Option<i64>) -> RecordUpsert {
        RecordUpsert {
            external_id: ExternalId::parse("1").unwrap(),
            data: serde_json::json!({}),
            hash: hash.into(),
            remote_updated_at: remote.map(Timestamp::from_millis),
        }
    }

    fn head(hash: &str, version: i64, remote: Option<i64>, held: bool) -> StoredHead {
        StoredHead {
            hash: hash.into(),
            version,
            remote_updated_at: remote.map(Timestamp::from_millis),
            held,
        }
    }

    /// Every branch, and the order of the checks where two apply at once.
    #[test]
    fn upsert_table() {
        use PageAction::*;
        let cases: &[(&str, RecordUpsert, Option<StoredHead>, PageAction)] = &[
            ("absent → create", incoming("h", Some(5)), None, Create),
            (
                "held beats unchanged",
                incoming("h", Some(5)),
                Some(head("h", 3, Some(5), true)),
                Held,
            ),
            (
                "held beats stale",
                incoming("x", Some(1)),
                Some(head("h", 3, Some(5), true)),
                Held,
            ),
            (
                "same hash → unchanged",
                incoming("h", Some(9)),
                Some(head("h", 3, Some(5), false)),
                Unchanged,
            ),
            (
                "unchanged beats stale",
                incoming("h", Some(1)),
                Some(head("h", 3, Some(5), false)),
                Unchanged,
            ),
            (
                "older remote time → stale",
                incoming("x", Some(4)),
                Some(head("h", 3, Some(5), false)),
                Stale,
            ),
            (
                "same remote time is not stale",
                incoming("x", Some(5)),
                Some(head("h", 3, Some(5), false)),
                Update { version: 4 },
            ),
            (
                "newer remote time → update",
                incoming("x", Some(6)),
                Some(head("h", 3, Some(5), false)),
                Update { version: 4 },
            ),
            (
                "no incoming time is never stale",
                incoming("x", None),
                Some(head("h", 3, Some(5), false)),
                Update { version: 4 },
            ),
            (
                "no stored time is never stale",
                incoming("x", Some(1)),
                Some(head("h", 7, None, false)),
                Update { version: 8 },
            ),
        ];
        for (what, u, stored, want) in cases {
            assert_eq!(classify(u, stored.as_ref()), *want, "{what}");
        }
    }

    /// Deletes: absent ids count nowhere, held records stay.
    #[test]
    fn delete_table() {
        assert_eq!(classify_delete(None), DeleteAction::Absent);
        assert_eq!(
            classify_delete(Some(&head("h", 1, None, true))),
            DeleteAction::Held
        );
        assert_eq!(
            classify_delete(Some(&head("h", 1, None, false))),
            DeleteAction::Delete
        );
    }

    /// Counting puts each action in its own bucket; only written ones carry a version.
    #[test]
    fn counting_and_versions() {
        let mut out = PageOutcome::default();
        for a in [
            PageAction::Create,
            PageAction::Update { version: 2 },
            PageAction::Unchanged,
            PageAction::Held,
            PageAction::Stale,
        ] {
            out.count(a);
        }
        for d in [
            DeleteAction::Absent,
            DeleteAction::Held,
            DeleteAction::Delete,
        ] {
            out.count_delete(d);
        }
        assert_eq!(
            out,
            PageOutcome {
                created: 1,
                updated: 1,
                unchanged: 1,
                deleted: 1,
                held: 2,
                stale: 1,
            }
        );
        assert_eq!(PageAction::Create.version(), Some(1));
        assert_eq!(PageAction::Update { version: 7 }.version(), Some(7));
        assert_eq!(PageAction::Stale.version(), None);
    }
}
