//! The records feed: every record of a connection carries a change
//! sequence, so a client reads what changed in order and resumes from the
//! last sequence it saw (issue 17's `GET /v1/records`).
//!
//! # Rules every backend keeps
//!
//! - Every write that changes a record's content or removes it (an applied
//!   page upsert or delete, a [`super::Store::write_record`] that creates,
//!   changes the hash, moves or removes) stamps a new `seq`: strictly
//!   increasing per connection across all its objects, never shared by two
//!   records, gaps allowed. Writes that change nothing of the content (an
//!   unchanged, held or stale page upsert; outbound bookkeeping that only
//!   touches the local state) stamp nothing.
//! - `last_modified_at` is the store's clock at the write; `last_action` is
//!   `Added` on first insert, `Updated` on later content changes, `Deleted`
//!   on removal.
//! - A removal keeps a **tombstone** (its last data, `deleted_at`) that only
//!   the feed sees: every other read behaves as if the row were gone. A
//!   record created again under the same id is a new record: `Added`, with a
//!   new `first_seen_at` (its history before the deletion is the tombstone's,
//!   which it replaces) and version 1 as before tombstones existed.
//! - Deleting a connection removes its tombstones too, but not its sequence
//!   counter: a connection created again under the same id continues the
//!   sequence, so a client's saved cursor never hides the new records.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, ExternalId, ObjectType};

/// The last change of a record, as the feed reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LastAction {
    /// First stored (or stored again after a deletion).
    Added,
    /// Content changed.
    Updated,
    /// Removed: the entry is a tombstone.
    Deleted,
}

impl LastAction {
    /// The stored spelling (`added`, `updated`, `deleted`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LastAction::Added => "added",
            LastAction::Updated => "updated",
            LastAction::Deleted => "deleted",
        }
    }

    /// Parses [`LastAction::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "added" => Some(LastAction::Added),
            "updated" => Some(LastAction::Updated),
            "deleted" => Some(LastAction::Deleted),
            _ => None,
        }
    }
}

/// Which actions a feed read returns (all three by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionFilter {
    /// Records whose last action is [`LastAction::Added`].
    pub added: bool,
    /// Records whose last action is [`LastAction::Updated`].
    pub updated: bool,
    /// Tombstones.
    pub deleted: bool,
}

impl Default for ActionFilter {
    fn default() -> Self {
        ActionFilter {
            added: true,
            updated: true,
            deleted: true,
        }
    }
}

impl ActionFilter {
    /// Whether entries with last action `a` pass.
    pub fn allows(self, a: LastAction) -> bool {
        match a {
            LastAction::Added => self.added,
            LastAction::Updated => self.updated,
            LastAction::Deleted => self.deleted,
        }
    }

    /// The allowed actions in their stored spelling (for `IN (...)` filters).
    pub fn allowed(self) -> Vec<&'static str> {
        [LastAction::Added, LastAction::Updated, LastAction::Deleted]
            .into_iter()
            .filter(|a| self.allows(*a))
            .map(LastAction::as_str)
            .collect()
    }
}

/// One read of the feed.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    /// The connection.
    pub connection: ConnectionId,
    /// The object type.
    pub object: ObjectType,
    /// Only entries with a higher sequence (`None` = from the start).
    pub after_seq: Option<u64>,
    /// Only entries our store changed strictly after this time.
    pub modified_after: Option<Timestamp>,
    /// Which last actions to return.
    pub actions: ActionFilter,
    /// At most this many entries.
    pub limit: usize,
}

/// One record as the feed returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// Id in the provider.
    pub external_id: ExternalId,
    /// Last known fields; for a tombstone the fields it had when deleted.
    pub data: serde_json::Value,
    /// The record's change sequence: strictly increasing per connection across all writes.
    pub seq: u64,
    /// When the store first saw it (since its last re-creation).
    pub first_seen_at: Timestamp,
    /// When our store last changed it (the write's time), not the provider's time.
    pub last_modified_at: Timestamp,
    /// What that change was.
    pub last_action: LastAction,
    /// When it was deleted (tombstones only).
    pub deleted_at: Option<Timestamp>,
}

/// The records feed's cursor after sequence `seq` of one connection's
/// object: base64url of `["records", connection, object, seq]`, the opaque
/// cursor `GET /v1/records` issues and accepts (the API's `pages` format),
/// so a product event can carry one. Pure.
pub fn cursor(connection: &ConnectionId, object: &ObjectType, seq: u64) -> String {
    use base64::Engine as _;
    let parts = [
        "records",
        connection.as_str(),
        object.as_str(),
        &seq.to_string(),
    ];
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&parts).expect("strings serialize"))
}

/// How a content write stamps the feed metadata, given whether the record
/// was live before: the one rule both stores apply.
pub fn action_of_write(was_live: bool) -> LastAction {
    if was_live {
        LastAction::Updated
    } else {
        LastAction::Added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored spelling round-trips and matches serde's.
    #[test]
    fn spelling_round_trips() {
        for a in [LastAction::Added, LastAction::Updated, LastAction::Deleted] {
            assert_eq!(LastAction::parse(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::json!(a.as_str())
            );
        }
        assert_eq!(LastAction::parse("gone"), None);
    }

    /// The default filter allows everything; a field turns one action off.
    #[test]
    fn filter_allows() {
        assert_eq!(
            ActionFilter::default().allowed(),
            ["added", "updated", "deleted"]
        );
        let f = ActionFilter {
            updated: false,
            ..Default::default()
        };
        assert!(!f.allows(LastAction::Updated));
        assert_eq!(f.allowed(), ["added", "deleted"]);
        assert_eq!(action_of_write(true), LastAction::Updated);
        assert_eq!(action_of_write(false), LastAction::Added);
    }
}
