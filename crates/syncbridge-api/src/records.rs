//! `GET /v1/records`: the records feed, one connection's object in change
//! order (the store's per-connection change sequence, see
//! `syncbridge_core::store::feed`).
//!
//! # Cursor semantics (as Nango's records API)
//!
//! Every record carries `_meta.cursor`, the position just after it; the
//! page's `next_cursor` is the last record's cursor when the page is full
//! (there may be more) and `null` when the feed is read to its end. A
//! client reads until `next_cursor` is `null`, keeps the last record's
//! `_meta.cursor`, and polls later from it: it then sees exactly what
//! changed since. A record changed while a client pages gets a new sequence,
//! so it appears again later and is never skipped; deletions appear as
//! tombstones (`last_action: deleted`, their last fields, `deleted_at`).
//! A cursor is bound to its connection and object: passing it to another
//! feed is a 400, never a silently wrong page.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use syncbridge_core::store::{ActionFilter, FeedEntry, FeedQuery, LastAction};
use syncbridge_core::{ConnectionId, ObjectType, Timestamp};
use syncbridge_functions::AppState;
use utoipa::IntoParams;

use crate::connections::load;
use crate::pages;
use crate::problem::{ApiError, Problem};
use crate::views::{RecordMeta, RecordPage, RecordView};

/// Page size when the client names none.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size (records pages are larger than the other lists').
pub const MAX_LIMIT: usize = 1000;

const RECORDS: &str = "records";

/// Parameters of `GET /v1/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The connection.
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub connection_id: String,
    /// The object type (`contacts`, …).
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 64)]
    pub object: String,
    /// From a previous page's `next_cursor`, or a record's `_meta.cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only records our store changed strictly after this instant (RFC 3339).
    #[param(format = DateTime)]
    pub modified_after: Option<String>,
    /// Comma-separated last actions to return: `added`, `updated`, `deleted` (default all).
    #[param(pattern = "^(added|updated|deleted)(,(added|updated|deleted))*$")]
    pub filter: Option<String>,
}

/// The action filter of `filter=added,updated,deleted` (pure).
pub fn action_filter(text: Option<&str>) -> Result<ActionFilter, ApiError> {
    let Some(text) = text else {
        return Ok(ActionFilter::default());
    };
    let mut f = ActionFilter {
        added: false,
        updated: false,
        deleted: false,
    };
    for word in text.split(',').map(str::trim) {
        match LastAction::parse(word) {
            Some(LastAction::Added) => f.added = true,
            Some(LastAction::Updated) => f.updated = true,
            Some(LastAction::Deleted) => f.deleted = true,
            None => {
                return Err(ApiError::InvalidRequest(format!(
                    "filter {text:?}: a comma-separated list of added, updated, deleted"
                )));
            }
        }
    }
    Ok(f)
}

/// The cursor after sequence `seq` of this feed (core's
/// `store::feed::cursor`, which product events carry too; [`pages`] format).
pub fn cursor_of(connection: &ConnectionId, object: &ObjectType, seq: u64) -> String {
    syncbridge_core::store::feed::cursor(connection, object, seq)
}

/// The sequence in a cursor of this feed (pure).
pub fn seq_of(
    connection: &ConnectionId,
    object: &ObjectType,
    cursor: &str,
) -> Result<u64, ApiError> {
    let k = pages::decode(RECORDS, cursor, 3)?;
    let bad = || ApiError::InvalidCursor(format!("cursor {cursor:?} was not issued for this feed"));
    if k[0] != connection.as_str() || k[1] != object.as_str() {
        return Err(bad());
    }
    k[2].parse().map_err(|_| bad())
}

/// Takes the entry by value: a page holds up to 1,000 records, and moving
/// their fields instead of cloning them keeps the feed near a raw read.
fn view(connection: &ConnectionId, object: &ObjectType, e: FeedEntry) -> RecordView {
    RecordView {
        id: e.external_id.to_string(),
        fields: e.data,
        meta: RecordMeta {
            last_action: e.last_action,
            first_seen_at: e.first_seen_at.to_rfc3339(),
            last_modified_at: e.last_modified_at.to_rfc3339(),
            deleted_at: e.deleted_at.map(Timestamp::to_rfc3339),
            cursor: cursor_of(connection, object, e.seq),
        },
    }
}

/// Reads the records feed of one connection's object, in change order.
#[utoipa::path(get, path = "/v1/records", operation_id = "list_records", tag = "records",
    params(FeedParams),
    responses((status = 200, body = RecordPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn feed(
    State(app): State<AppState>,
    q: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Json<RecordPage>, ApiError> {
    let Query(p) = q?;
    let limit = pages::limit_within(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let object = ObjectType::parse(p.object.clone())
        .map_err(|e| ApiError::InvalidRequest(format!("object: {e}")))?;
    let actions = action_filter(p.filter.as_deref())?;
    let modified_after = pages::time_param("modified_after", p.modified_after.as_deref())?;
    let connection = load(&app, &p.connection_id).await?.id;
    let after_seq = p
        .cursor
        .as_deref()
        .map(|c| seq_of(&connection, &object, c))
        .transpose()?;
    let entries = app
        .store
        .records_feed(&FeedQuery {
            connection: connection.clone(),
            object: object.clone(),
            after_seq,
            modified_after,
            actions,
            limit,
        })
        .await?;
    Ok(Json(RecordPage {
        next_cursor: pages::next_cursor(&entries, limit, |e| {
            cursor_of(&connection, &object, e.seq)
        }),
        records: entries
            .into_iter()
            .map(|e| view(&connection, &object, e))
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ConnectionId, ObjectType) {
        (
            ConnectionId::parse("c1").unwrap(),
            ObjectType::parse("contacts").unwrap(),
        )
    }

    /// A cursor round-trips for its own feed only.
    #[test]
    fn cursors_are_bound_to_their_feed() {
        let (c, o) = ids();
        let cur = cursor_of(&c, &o, 42);
        assert_eq!(seq_of(&c, &o, &cur).unwrap(), 42);
        let deals = ObjectType::parse("deals").unwrap();
        assert!(matches!(
            seq_of(&c, &deals, &cur),
            Err(ApiError::InvalidCursor(_))
        ));
        let other = ConnectionId::parse("c2").unwrap();
        assert!(seq_of(&other, &o, &cur).is_err());
        assert!(seq_of(&c, &o, &pages::encode(RECORDS, &["c1", "contacts", "x"])).is_err());
        assert!(seq_of(&c, &o, &pages::encode("runs", &["c1", "contacts", "1"])).is_err());
    }

    /// The filter parses the three actions and refuses anything else.
    #[test]
    fn filters() {
        assert_eq!(action_filter(None).unwrap(), ActionFilter::default());
        let f = action_filter(Some("updated,deleted")).unwrap();
        assert_eq!((f.added, f.updated, f.deleted), (false, true, true));
        assert!(action_filter(Some("added,gone")).is_err());
        assert!(action_filter(Some("")).is_err());
    }
}
