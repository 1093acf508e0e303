//! Pure functions from a provider response to canonical records and the next
//! page. No I/O: table-tested below.

use serde_json::Value;

use super::definition::{ClearAs, DeleteStrategy, ObjectDef, Pagination, TimeFormat};
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
    /// A record's modification time is there but is not a time in the
    /// definition's format (a field of another type).
    #[error("record #{index} has `{path}` = {found}, not a time ({format})")]
    BadTime {
        /// Position in the page.
        index: usize,
        /// Configured `updated_at` path.
        path: String,
        /// The value found (cut to 60 characters).
        found: String,
        /// The expected format.
        format: &'static str,
    },
    /// The page says more pages follow but gives no cursor to reach them.
    #[error("the page says more pages follow ({flag}) but has no cursor at `{cursor}`")]
    MissingCursor {
        /// What the page said (`has_more` is true, `end_of_stream` is false).
        flag: String,
        /// Where the cursor should be.
        cursor: String,
    },
    /// A page with no records points to a next page: following it could
    /// loop forever, and a provider that does this is answering wrongly.
    #[error("the page has no records but points to a next page")]
    EmptyPageWithNext,
    /// The more-pages flag is not a boolean.
    #[error("`{0}` is not a boolean")]
    BadFlag(String),
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

/// Parses a provider time written in `format` (`None`: [`parse_time`]).
pub fn parse_time_as(v: &Value, format: Option<TimeFormat>) -> Option<Timestamp> {
    let int = || match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match format {
        None | Some(TimeFormat::Rfc3339 | TimeFormat::Rfc3339Seconds) => parse_time(v),
        Some(TimeFormat::EpochMs) => int().map(Timestamp::from_millis),
        Some(TimeFormat::EpochS) => int()
            .and_then(|s| s.checked_mul(1000))
            .map(Timestamp::from_millis),
        Some(TimeFormat::DateMinutes) => v.as_str().and_then(parse_date_minutes),
    }
}

/// `2026-11-28 12:00` (UTC) as a time.
pub fn parse_date_minutes(s: &str) -> Option<Timestamp> {
    let (date, hm) = s.trim().split_once(' ')?;
    Timestamp::parse(&format!("{date}T{hm}:00Z"))
}

/// Name of a time format, for messages.
fn format_name(format: Option<TimeFormat>) -> &'static str {
    match format {
        None | Some(TimeFormat::Rfc3339 | TimeFormat::Rfc3339Seconds) => {
            "RFC 3339 or epoch milliseconds"
        }
        Some(TimeFormat::EpochMs) => "epoch milliseconds",
        Some(TimeFormat::EpochS) => "epoch seconds",
        Some(TimeFormat::DateMinutes) => "yyyy-MM-dd HH:mm",
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

/// A record's modification time: `None` when the definition has none or the
/// record has none (absent or null); an error when it holds something else.
fn record_updated(
    def: &ObjectDef,
    rec: &Value,
    index: usize,
) -> Result<Option<Timestamp>, ExtractError> {
    let Some(path) = def.updated_at.as_deref() else {
        return Ok(None);
    };
    match lookup(rec, path) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match parse_time_as(v, def.updated_at_format) {
            Some(t) => Ok(Some(t)),
            None => Err(ExtractError::BadTime {
                index,
                path: path.into(),
                found: v.to_string().chars().take(60).collect(),
                format: format_name(def.updated_at_format),
            }),
        },
    }
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
        updated_at: record_updated(def, rec, 0)?,
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
        let updated = record_updated(def, rec, index)?;
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

/// What [`next_page`] looks at: one answer and the token that fetched it.
#[derive(Debug, Clone, Copy)]
pub struct PageView<'a> {
    /// The parsed body.
    pub body: &'a Value,
    /// Dotted path to the record array in it.
    pub records: &'a str,
    /// The `Link` header, if any.
    pub link: Option<&'a str>,
    /// The token that fetched this page (`None` for a first page).
    pub current: Option<&'a str>,
}

impl PageView<'_> {
    fn records(&self) -> &[Value] {
        lookup(self.body, self.records)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// A `true`/`false` flag at `path` (absent or null = false).
    fn flag(&self, path: &str) -> Result<bool, ExtractError> {
        match lookup(self.body, path) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ExtractError::BadFlag(path.into())),
        }
    }
}

/// The next page according to the pagination style. A page that says more
/// follow without saying where, or that has no records but a next page, is
/// refused (the run stops before committing it).
pub fn next_page(p: &Pagination, page: &PageView<'_>) -> Result<NextPage, ExtractError> {
    let count = page.records().len();
    let next = match p {
        Pagination::None => NextPage::Done,
        Pagination::BodyCursor {
            cursor_path,
            more_path,
            end_path,
            ..
        } => {
            let ended = match end_path {
                Some(e) => page.flag(e)?,
                None => false,
            };
            let more = match more_path {
                Some(m) => Some(page.flag(m)?),
                None => None,
            };
            let cursor = lookup(page.body, cursor_path).and_then(scalar_text);
            let missing = |flag: String| ExtractError::MissingCursor {
                flag,
                cursor: cursor_path.clone(),
            };
            match (ended, more, cursor) {
                (true, _, _) | (false, Some(false), _) => NextPage::Done,
                (false, Some(true), None) => {
                    let flag = more_path.as_deref().unwrap_or_default();
                    return Err(missing(format!("`{flag}` is true")));
                }
                // A cursor stream always names where it goes on.
                (false, None, None) if end_path.is_some() => {
                    let flag = end_path.as_deref().unwrap_or_default();
                    return Err(missing(format!("`{flag}` is false")));
                }
                (false, _, Some(c)) if Some(c.as_str()) != page.current => NextPage::Token(c),
                _ => NextPage::Done,
            }
        }
        Pagination::LastId {
            id_path, more_path, ..
        } => {
            if !page.flag(more_path)? {
                NextPage::Done
            } else {
                let last = page.records().last();
                match last.and_then(|r| lookup(r, id_path)).and_then(scalar_text) {
                    Some(id) => NextPage::Token(id),
                    None if last.is_none() => return Err(ExtractError::EmptyPageWithNext),
                    None => {
                        return Err(ExtractError::MissingCursor {
                            flag: format!("`{more_path}` is true"),
                            cursor: format!("{}.<last>.{id_path}", page.records),
                        });
                    }
                }
            }
        }
        Pagination::LinkHeader => page
            .link
            .and_then(link_next)
            .map_or(NextPage::Done, NextPage::Token),
        Pagination::NextUrl { next_path, .. } => {
            match lookup(page.body, next_path).and_then(scalar_text) {
                Some(u) if Some(u.as_str()) != page.current => NextPage::Token(u),
                _ => NextPage::Done,
            }
        }
        Pagination::Offset { page_size, .. } => {
            if count < *page_size as usize {
                NextPage::Done
            } else {
                let cur: u64 = page.current.and_then(|c| c.parse().ok()).unwrap_or(0);
                NextPage::Token((cur + count as u64).to_string())
            }
        }
        Pagination::PageNumber { start, .. } => {
            if count == 0 {
                NextPage::Done
            } else {
                let cur: u64 = page
                    .current
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(*start as u64);
                NextPage::Token((cur + 1).to_string())
            }
        }
    };
    if count == 0 && matches!(next, NextPage::Token(_)) {
        return Err(ExtractError::EmptyPageWithNext);
    }
    Ok(next)
}

/// Where a cursor stream goes on (Zendesk's incremental export: the last
/// page's `after_cursor`), when `p` is one: the next pass starts there.
pub fn stream_resume(p: &Pagination, body: &Value) -> Option<String> {
    match p {
        Pagination::BodyCursor {
            cursor_path,
            end_path: Some(_),
            ..
        } => lookup(body, cursor_path).and_then(scalar_text),
        _ => None,
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

    /// A view of `body` (records under `results`) fetched with `current`.
    fn view<'a>(body: &'a Value, link: Option<&'a str>, current: Option<&'a str>) -> PageView<'a> {
        PageView {
            body,
            records: "results",
            link,
            current,
        }
    }

    /// `n` records with ids `1..=n`.
    fn recs(n: usize) -> Value {
        Value::Array((1..=n).map(|i| json!({"id": i.to_string()})).collect())
    }

    /// Every pagination style finds its next page or its end.
    #[test]
    fn pagination_table() {
        let cursor = Pagination::BodyCursor {
            cursor_path: "paging.next.after".into(),
            param: Some("after".into()),
            more_path: None,
            end_path: None,
        };
        let body = json!({"results": recs(10), "paging": {"next": {"after": "100"}}});
        let next = |p: &Pagination, v: PageView<'_>| next_page(p, &v).unwrap();
        assert_eq!(
            next(&cursor, view(&body, None, None)),
            NextPage::Token("100".into())
        );
        assert_eq!(
            next(&cursor, view(&json!({"results": recs(10)}), None, None)),
            NextPage::Done
        );
        assert_eq!(
            next(&cursor, view(&body, None, Some("100"))),
            NextPage::Done,
            "a repeated cursor ends the loop"
        );
        let link = r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#;
        let ten = json!({"results": recs(10)});
        assert_eq!(
            next(&Pagination::LinkHeader, view(&ten, Some(link), None)),
            NextPage::Token("https://api.github.com/x?page=2".into())
        );
        assert_eq!(
            next(
                &Pagination::LinkHeader,
                view(&ten, Some(r#"<u>; rel="prev""#), None)
            ),
            NextPage::Done
        );
        let off = Pagination::Offset {
            param: "offset".into(),
            page_size: 50,
        };
        let fifty = json!({"results": recs(50)});
        let forty_nine = json!({"results": recs(49)});
        assert_eq!(
            next(&off, view(&fifty, None, Some("50"))),
            NextPage::Token("100".into())
        );
        assert_eq!(
            next(&off, view(&forty_nine, None, Some("50"))),
            NextPage::Done
        );
        let next_url = Pagination::NextUrl {
            next_path: "@odata.nextLink".into(),
            delta_path: Some("@odata.deltaLink".into()),
        };
        // A page of ten records with the given paging keys.
        let at = |mut v: Value| -> Value {
            v["results"] = recs(10);
            v
        };
        let graph =
            at(json!({"@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skiptoken=2"}));
        assert_eq!(
            next(&next_url, view(&graph, None, None)),
            NextPage::Token("https://graph.microsoft.com/v1.0/x?$skiptoken=2".into())
        );
        assert_eq!(delta_link(&next_url, &graph), None);
        let last =
            at(json!({"@odata.deltaLink": "https://graph.microsoft.com/v1.0/x?$deltatoken=9"}));
        assert_eq!(next(&next_url, view(&last, None, None)), NextPage::Done);
        assert_eq!(
            delta_link(&next_url, &last).as_deref(),
            Some("https://graph.microsoft.com/v1.0/x?$deltatoken=9")
        );
        let soql = Pagination::NextUrl {
            next_path: "nextRecordsUrl".into(),
            delta_path: None,
        };
        let more =
            at(json!({"done": false, "nextRecordsUrl": "/services/data/v60.0/query/01g-2000"}));
        assert_eq!(
            next(&soql, view(&more, None, None)),
            NextPage::Token("/services/data/v60.0/query/01g-2000".into())
        );
        let done = json!({"done": true, "results": []});
        assert_eq!(next(&soql, view(&done, None, None)), NextPage::Done);
        let pn = Pagination::PageNumber {
            param: "page".into(),
            start: 1,
        };
        let three = json!({"results": recs(3)});
        assert_eq!(
            next(&pn, view(&three, None, None)),
            NextPage::Token("2".into())
        );
        let empty = json!({"results": []});
        assert_eq!(next(&pn, view(&empty, None, Some("4"))), NextPage::Done);
    }

    /// Stripe's `starting_after` + `has_more`, a `has_more` body cursor
    /// (Asana's events) and Zendesk's cursor stream (`end_of_stream`).
    #[test]
    fn last_id_more_flags_and_streams() {
        let last_id = Pagination::LastId {
            param: "starting_after".into(),
            id_path: "id".into(),
            more_path: "has_more".into(),
        };
        let more = json!({"results": recs(3), "has_more": true});
        let last = json!({"results": recs(3), "has_more": false});
        assert_eq!(
            next_page(&last_id, &view(&more, None, None)),
            Ok(NextPage::Token("3".into()))
        );
        assert_eq!(
            next_page(&last_id, &view(&last, None, None)),
            Ok(NextPage::Done)
        );
        let stream = Pagination::BodyCursor {
            cursor_path: "after_cursor".into(),
            param: Some("cursor".into()),
            more_path: None,
            end_path: Some("end_of_stream".into()),
        };
        let page = json!({"results": recs(2), "after_cursor": "abc", "end_of_stream": false});
        let end = json!({"results": recs(2), "after_cursor": "def", "end_of_stream": true});
        assert_eq!(
            next_page(&stream, &view(&page, None, None)),
            Ok(NextPage::Token("abc".into()))
        );
        assert_eq!(
            next_page(&stream, &view(&end, None, Some("abc"))),
            Ok(NextPage::Done)
        );
        let flagged = Pagination::BodyCursor {
            cursor_path: "sync".into(),
            param: Some("sync".into()),
            more_path: Some("has_more".into()),
            end_path: None,
        };
        let done = json!({"results": recs(1), "sync": "s2", "has_more": false});
        assert_eq!(
            next_page(&flagged, &view(&done, None, None)),
            Ok(NextPage::Done)
        );
    }

    /// Answers that cannot be paged on are refused, naming what is wrong:
    /// "more" without a cursor, an empty page pointing further, a flag that
    /// is not a boolean.
    #[test]
    fn bad_paging_answers_are_refused() {
        let flagged = Pagination::BodyCursor {
            cursor_path: "next".into(),
            param: Some("after".into()),
            more_path: Some("has_more".into()),
            end_path: None,
        };
        let no_cursor = json!({"results": recs(2), "has_more": true});
        assert_eq!(
            next_page(&flagged, &view(&no_cursor, None, None)),
            Err(ExtractError::MissingCursor {
                flag: "`has_more` is true".into(),
                cursor: "next".into()
            })
        );
        let bad_flag = json!({"results": recs(2), "has_more": "yes", "next": "x"});
        assert_eq!(
            next_page(&flagged, &view(&bad_flag, None, None)),
            Err(ExtractError::BadFlag("has_more".into()))
        );
        let empty = json!({"results": [], "has_more": true, "next": "x"});
        assert_eq!(
            next_page(&flagged, &view(&empty, None, None)),
            Err(ExtractError::EmptyPageWithNext)
        );
        let last_id = Pagination::LastId {
            param: "starting_after".into(),
            id_path: "id".into(),
            more_path: "has_more".into(),
        };
        let empty = json!({"results": [], "has_more": true});
        assert_eq!(
            next_page(&last_id, &view(&empty, None, None)),
            Err(ExtractError::EmptyPageWithNext)
        );
    }

    /// Times in epoch seconds, epoch milliseconds and `yyyy-MM-dd HH:mm`;
    /// a time of another type fails the page.
    #[test]
    fn time_formats() {
        let t = Timestamp::parse("2026-11-28T12:00:00Z").unwrap();
        let secs = t.as_unix_secs();
        assert_eq!(
            parse_time_as(&json!(secs), Some(TimeFormat::EpochS)),
            Some(t)
        );
        assert_eq!(
            parse_time_as(&json!(secs.to_string()), Some(TimeFormat::EpochS)),
            Some(t)
        );
        assert_eq!(
            parse_time_as(&json!(t.as_millis()), Some(TimeFormat::EpochMs)),
            Some(t)
        );
        assert_eq!(
            parse_time_as(&json!("2026-11-28 12:00"), Some(TimeFormat::DateMinutes)),
            Some(t)
        );
        assert_eq!(
            parse_time_as(&json!("soon"), Some(TimeFormat::EpochS)),
            None
        );
        let d = def("updated_at_format = \"epoch_s\"");
        let body = json!({"results": [{"id": "1", "updatedAt": secs}]});
        assert_eq!(extract_page(&d, &body, false).unwrap().max_updated, Some(t));
        let body = json!({"results": [{"id": "1", "updatedAt": secs}, {"id": "2", "updatedAt": {"at": secs}}]});
        let e = extract_page(&d, &body, false).unwrap_err();
        assert!(
            matches!(&e, ExtractError::BadTime { index: 1, path, .. } if path == "updatedAt"),
            "{e}"
        );
        // A null time is no time, not an error.
        let body = json!({"results": [{"id": "1", "updatedAt": null}]});
        assert_eq!(extract_page(&d, &body, false).unwrap().max_updated, None);
    }
}
