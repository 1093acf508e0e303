//! Pure functions from a provider response to canonical records and the next
//! page. No I/O: table-tested below.

use serde_json::Value;

use super::definition::{ClearAs, DeleteStrategy, ObjectDef, Pagination};
use crate::clock::Timestamp;
use crate::ids::ExternalId;
use crate::model::content_hash;
use crate::store::RecordUpsert;

/// Why a page cannot be used. The page is refused whole; nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The body is not JSON (truncated, HTML error page…).
    #[error("response is not valid JSON: {0}")]
    NotJson(String),
    /// The records path does not lead to an array.
    #[error("response has no record array at `{0}`")]
    NoRecords(String),
    /// A record has no usable id.
    #[error("record #{index} has no usable id at `{path}`")]
    BadId {
        /// Position in the page.
        index: usize,
        /// Configured id path.
        path: String,
    },
}

/// Follows a dotted path (`paging.next.after`, `items.0.id`); `""` is the
/// value itself. A key that itself holds dots is found whole first
/// (`@odata.nextLink`, `@odata.deltaLink`), at any level.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    if let Value::Object(m) = v
        && let Some(whole) = m.get(path)
    {
        return Some(whole);
    }
    let (key, rest) = path.split_once('.').unwrap_or((path, ""));
    let next = match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }?;
    if rest.is_empty() {
        Some(next)
    } else {
        lookup(next, rest)
    }
}

/// A scalar as text (ids arrive as numbers from some providers).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a provider time: RFC 3339 text (also with an offset written
/// without a colon, `2024-01-01T00:00:00.000+0000`, as Salesforce and Jira
/// write it), or epoch milliseconds as number or text.
pub fn parse_time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => Timestamp::parse(s).or_else(|| {
            // `±hhmm` at the end: insert the colon RFC 3339 wants.
            let (head, off) = s.split_at_checked(s.len().checked_sub(5)?)?;
            let b = off.as_bytes();
            (matches!(b[0], b'+' | b'-') && b[1..].iter().all(u8::is_ascii_digit))
                .then(|| format!("{head}{}:{}", &off[..3], &off[3..]))
                .and_then(|t| Timestamp::parse(&t))
        }),
        Value::Number(n) => n.as_i64().map(Timestamp::from_millis),
        _ => None,
    }
}

/// One page, turned into what the store needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtractedPage {
    /// Live records, mapped.
    pub upserts: Vec<RecordUpsert>,
    /// Ids the page marks deleted (tombstones or a deleted feed).
    pub deletes: Vec<ExternalId>,
    /// Latest `updated_at` on the page.
    pub max_updated: Option<Timestamp>,
}

/// Maps a provider record to canonical fields: every configured field, `null`
/// when absent (or `""` where the provider clears with the empty string:
/// `push.clear_as = "empty_string"`).
pub fn map_fields(def: &ObjectDef, rec: &Value) -> Value {
    let empty_is_null = def
        .push
        .as_ref()
        .is_some_and(|p| p.clear_as == ClearAs::EmptyString);
    let mut out = serde_json::Map::with_capacity(def.fields.len());
    for (name, path) in &def.fields {
        let v = match lookup(rec, path) {
            Some(Value::String(s)) if empty_is_null && s.is_empty() => Value::Null,
            Some(v) => v.clone(),
            None => Value::Null,
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn record_id(def: &ObjectDef, rec: &Value) -> Option<ExternalId> {
    lookup(rec, &def.id)
        .and_then(scalar_text)
        .and_then(|s| ExternalId::parse(s).ok())
}

fn record_updated(def: &ObjectDef, rec: &Value) -> Option<Timestamp> {
    def.updated_at
        .as_deref()
        .and_then(|p| lookup(rec, p))
        .and_then(parse_time)
}

/// One provider record (a read or a write's answer) mapped as a page's records are.
pub fn extract_one(
    def: &ObjectDef,
    rec: &Value,
) -> Result<super::http::RemoteRecord, ExtractError> {
    let id = record_id(def, rec).ok_or_else(|| ExtractError::BadId {
        index: 0,
        path: def.id.clone(),
    })?;
    Ok(super::http::RemoteRecord {
        id,
        data: map_fields(def, rec),
        updated_at: record_updated(def, rec),
    })
}

/// Extracts a page's records. With `as_deletes`, every record is a deletion (deleted feed).
pub fn extract_page(
    def: &ObjectDef,
    body: &Value,
    as_deletes: bool,
) -> Result<ExtractedPage, ExtractError> {
    let arr = lookup(body, &def.records)
        .and_then(Value::as_array)
        .ok_or_else(|| ExtractError::NoRecords(def.records.clone()))?;
    let mut page = ExtractedPage {
        upserts: Vec::with_capacity(arr.len()),
        ..Default::default()
    };
    for (index, rec) in arr.iter().enumerate() {
        let id = record_id(def, rec).ok_or_else(|| ExtractError::BadId {
            index,
            path: def.id.clone(),
        })?;
        let updated = record_updated(def, rec);
        if let Some(u) = updated {
            page.max_updated = Some(page.max_updated.map_or(u, |m| m.max(u)));
        }
        let tombstoned = match &def.deletes {
            DeleteStrategy::Tombstone { field, value } => lookup(rec, field) == Some(value),
            _ => false,
        };
        if as_deletes || tombstoned {
            page.deletes.push(id);
            continue;
        }
        let data = map_fields(def, rec);
        page.upserts.push(RecordUpsert {
            external_id: id,
            hash: content_hash(&data),
            data,
            remote_updated_at: updated,
        });
    }
    Ok(page)
}

/// Where the next page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// This was the last page.
    Done,
    /// Send this token (cursor, offset, page number, or absolute URL for Link headers).
    Token(String),
}

/// The next page according to the pagination style. `current` is the token
/// that fetched this page; `count` the number of records on it.
pub fn next_page(
    p: &Pagination,
    body: &Value,
    link_header: Option<&str>,
    current: Option<&str>,
    count: usize,
) -> NextPage {
    match p {
        Pagination::None => NextPage::Done,
        Pagination::BodyCursor { cursor_path, .. } => {
            match lookup(body, cursor_path).and_then(scalar_text) {
                Some(c) if Some(c.as_str()) != current => NextPage::Token(c),
                _ => NextPage::Done,
            }
        }
        Pagination::LinkHeader => link_header
            .and_then(link_next)
            .map_or(NextPage::Done, NextPage::Token),
        Pagination::NextUrl { next_path, .. } => {
            match lookup(body, next_path).and_then(scalar_text) {
                Some(u) if Some(u.as_str()) != current => NextPage::Token(u),
                _ => NextPage::Done,
            }
        }
        Pagination::Offset { page_size, .. } => {
            if count < *page_size as usize {
                NextPage::Done
            } else {
                let cur: u64 = current.and_then(|c| c.parse().ok()).unwrap_or(0);
                NextPage::Token((cur + count as u64).to_string())
            }
        }
        Pagination::PageNumber { start, .. } => {
            if count == 0 {
                NextPage::Done
            } else {
                let cur: u64 = current
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(*start as u64);
                NextPage::Token((cur + 1).to_string())
            }
        }
    }
}

/// The delta link on a listing's last page (`pagination.delta_path`), where
/// the next pass starts.
pub fn delta_link(p: &Pagination, body: &Value) -> Option<String> {
    match p {
        Pagination::NextUrl {
            delta_path: Some(path),
            ..
        } => lookup(body, path).and_then(scalar_text),
        _ => None,
    }
}

/// The `rel="next"` target of an RFC 8288 Link header.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
        pieces
            .any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("rel=")
                    .is_some_and(|r| r.trim_matches('"').split(' ').any(|r| r == "next"))
            })
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::definition::ConnectorDef;
    use serde_json::json;

    fn def(deletes: &str) -> ObjectDef {
        let text = format!(
            r#"name = "t"
base_url = "http://x"
[objects.o]
list = {{ path = "/o" }}
records = "results"
id = "id"
updated_at = "updatedAt"
fields = {{ email = "properties.email", name = "properties.name" }}
{deletes}
"#
        );
        ConnectorDef::from_toml("t", &text)
            .unwrap()
            .objects
            .remove("o")
            .unwrap()
    }

    /// Provider times: RFC 3339, its colon-less offset (Salesforce), epoch ms.
    #[test]
    fn time_table() {
        let want = Timestamp::parse("2024-01-01T00:00:00Z");
        for v in [
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T00:00:00.000+0000"),
            json!("2024-01-01T01:00:00.000+0100"),
            json!("2023-12-31T23:00:00-0100"),
            json!(1_704_067_200_000_i64),
        ] {
            assert_eq!(parse_time(&v), want, "{v}");
        }
        for v in [
            json!("2024-01-01T00:00:00+00"),
            json!("2024-01-01T00:00:00+00x0"),
            json!("x"),
            json!(true),
        ] {
            assert_eq!(parse_time(&v), None, "{v}");
        }
    }

    /// Records are mapped field by field, numeric ids become text, and the latest update is tracked.
    #[test]
    fn extracts_and_maps() {
        let body = json!({"results": [
            {"id": 7, "updatedAt": "2026-01-01T00:00:00Z", "properties": {"email": "a@x", "extra": 1}},
            {"id": "8", "updatedAt": "2026-01-02T00:00:00Z", "properties": {"email": "b@x", "name": "B"}},
        ]});
        let p = extract_page(&def(""), &body, false).unwrap();
        assert_eq!(p.upserts.len(), 2);
        assert_eq!(p.upserts[0].external_id.as_str(), "7");
        assert_eq!(p.upserts[0].data, json!({"email": "a@x", "name": null}));
        assert_eq!(p.max_updated, Timestamp::parse("2026-01-02T00:00:00Z"));
    }

    /// Tombstoned records become deletes; a deleted feed turns every record into a delete.
    #[test]
    fn tombstones_and_deleted_feed() {
        let body = json!({"results": [{"id": "1", "gone": true}, {"id": "2", "gone": false}]});
        let p = extract_page(
            &def(r#"deletes = { strategy = "tombstone", field = "gone", value = true }"#),
            &body,
            false,
        )
        .unwrap();
        assert_eq!((p.upserts.len(), p.deletes.len()), (1, 1));
        let p = extract_page(&def(""), &body, true).unwrap();
        assert_eq!((p.upserts.len(), p.deletes.len()), (0, 2));
    }

    /// Bad pages are refused whole with a reason.
    #[test]
    fn bad_pages_are_refused() {
        let d = def("");
        assert_eq!(
            extract_page(&d, &json!({"items": []}), false),
            Err(ExtractError::NoRecords("results".into()))
        );
        assert_eq!(
            extract_page(
                &d,
                &json!({"results": [{"id": "1"}, {"name": "no id"}]}),
                false
            ),
            Err(ExtractError::BadId {
                index: 1,
                path: "id".into()
            })
        );
        assert!(matches!(
            extract_page(&d, &json!({"results": [{"id": ""}]}), false),
            Err(ExtractError::BadId { .. })
        ));
    }

    /// Every pagination style finds its next page or its end.
    #[test]
    fn pagination_table() {
        let cursor = Pagination::BodyCursor {
            cursor_path: "paging.next.after".into(),
            param: Some("after".into()),
        };
        let body = json!({"paging": {"next": {"after": "100"}}});
        assert_eq!(
            next_page(&cursor, &body, None, None, 10),
            NextPage::Token("100".into())
        );
        assert_eq!(
            next_page(&cursor, &json!({}), None, None, 10),
            NextPage::Done
        );
        assert_eq!(
            next_page(&cursor, &body, None, Some("100"), 10),
            NextPage::Done,
            "a repeated cursor ends the loop"
        );
        let link = r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#;
        assert_eq!(
            next_page(&Pagination::LinkHeader, &json!([]), Some(link), None, 30),
            NextPage::Token("https://api.github.com/x?page=2".into())
        );
        assert_eq!(
            next_page(
                &Pagination::LinkHeader,
                &json!([]),
                Some(r#"<u>; rel="prev""#),
                None,
                30
            ),
            NextPage::Done
        );
        let off = Pagination::Offset {
            param: "offset".into(),
            page_size: 50,
        };
        assert_eq!(
            next_page(&off, &json!({}), None, Some("50"), 50),
            NextPage::Token("100".into())
        );
        assert_eq!(
            next_page(&off, &json!({}), None, Some("50"), 49),
            NextPage::Done
        );
        let next = Pagination::NextUrl {
            next_path: "@odata.nextLink".into(),
            delta_path: Some("@odata.deltaLink".into()),
        };
        let graph = json!({"value": [], "@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skiptoken=2"});
        assert_eq!(
            next_page(&next, &graph, None, None, 10),
            NextPage::Token("https://graph.microsoft.com/v1.0/x?$skiptoken=2".into())
        );
        assert_eq!(delta_link(&next, &graph), None);
        let last = json!({"value": [], "@odata.deltaLink": "https://graph.microsoft.com/v1.0/x?$deltatoken=9"});
        assert_eq!(next_page(&next, &last, None, None, 10), NextPage::Done);
        assert_eq!(
            delta_link(&next, &last).as_deref(),
            Some("https://graph.microsoft.com/v1.0/x?$deltatoken=9")
        );
        let soql = Pagination::NextUrl {
            next_path: "nextRecordsUrl".into(),
            delta_path: None,
        };
        assert_eq!(
            next_page(
                &soql,
                &json!({"done": false, "nextRecordsUrl": "/services/data/v60.0/query/01g-2000"}),
                None,
                None,
                2000
            ),
            NextPage::Token("/services/data/v60.0/query/01g-2000".into())
        );
        assert_eq!(
            next_page(&soql, &json!({"done": true, "records": []}), None, None, 0),
            NextPage::Done
        );
        let pn = Pagination::PageNumber {
            param: "page".into(),
            start: 1,
        };
        assert_eq!(
            next_page(&pn, &json!({}), None, None, 3),
            NextPage::Token("2".into())
        );
        assert_eq!(
            next_page(&pn, &json!({}), None, Some("4"), 0),
            NextPage::Done
        );
    }
}
