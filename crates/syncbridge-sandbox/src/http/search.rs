//! `POST /crm/v3/objects/{object}/search`: HubSpot's search body compiled into
//! a store [`Query`](crate::store::Query).
//!
//! Filters on the modification date (`hs_lastmodifieddate`,
//! `lastmodifieddate`, or the sandbox's `updatedAt`) become a [`TimeRange`],
//! which the `(updatedAt, id)` index serves without scanning; every other
//! filter becomes a predicate. Filters in a group are ANDed, groups are ORed
//! (HubSpot: at most 5 groups of at most 6 filters). Sorting is supported on
//! the modification date and on `hs_object_id`/`createdate` (ids are
//! assigned in creation order, so these coincide); the default is by id.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use crate::clock::parse_instant;
use crate::store::{Cursor, Record, SortKey, TimeRange};

/// HubSpot's search page limit (list pages use the configured maximum).
pub(crate) const SEARCH_MAX_LIMIT: usize = 200;
/// HubSpot's cap on one search: at most 10,000 results; asking for a page
/// past it is refused (400), so a client restarts the search with a narrower
/// filter (e.g. from the last modification time it saw).
pub(crate) const SEARCH_RESULT_CAP: usize = 10_000;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<SortSpec>,
    #[serde(default)]
    properties: Vec<String>,
    limit: Option<usize>,
    after: Option<Value>,
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<FilterSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterSpec {
    property_name: String,
    operator: String,
    value: Option<Value>,
    high_value: Option<Value>,
    values: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SortSpec {
    /// `"hs_lastmodifieddate"` or `"-hs_lastmodifieddate"`.
    Text(String),
    Object {
        #[serde(rename = "propertyName")]
        property_name: String,
        direction: Option<String>,
    },
}

type Pred = Box<dyn Fn(&Record) -> bool + Send + Sync>;

/// A compiled search.
pub(crate) struct Plan {
    pub(crate) sort: SortKey,
    pub(crate) descending: bool,
    pub(crate) range: TimeRange,
    pub(crate) filter: Option<Pred>,
    pub(crate) limit: usize,
    pub(crate) after: Option<Cursor>,
    /// Results of this search before the page (from the `after` token).
    pub(crate) position: usize,
    pub(crate) properties: Option<Vec<String>>,
    /// Identifies the result set (not the page), for the total cache.
    pub(crate) total_key: String,
}

/// Compiles a search body.
pub(crate) fn plan(body: SearchBody, max_limit: usize) -> Result<Plan, ApiError> {
    let total_key = format!("{:?}|{:?}", body.filter_groups, body.query);
    let limit = body.limit.unwrap_or(10);
    if limit == 0 || limit > max_limit {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {max_limit}"
        )));
    }
    if body.filter_groups.len() > MAX_GROUPS {
        return Err(ApiError::validation(format!(
            "at most {MAX_GROUPS} filterGroups are allowed"
        )));
    }
    let (after, position) = match &body.after {
        None | Some(Value::Null) => (None, 0),
        Some(v) => {
            let t = text(v).ok_or_else(|| ApiError::validation("after must be a string"))?;
            let (position, cursor) = parse_after(&t)?;
            (Some(cursor), position)
        }
    };
    let (sort, descending) = match body.sorts.first() {
        None => (SortKey::Id, false),
        Some(spec) => sort_of(spec)?,
    };

    let mut groups = Vec::with_capacity(body.filter_groups.len());
    for group in body.filter_groups {
        if group.filters.len() > MAX_FILTERS_PER_GROUP {
            return Err(ApiError::validation(format!(
                "at most {MAX_FILTERS_PER_GROUP} filters per group are allowed"
            )));
        }
        let mut range = TimeRange::ALL;
        let mut preds: Vec<Pred> = Vec::new();
        for f in group.filters {
            match compile(f)? {
                Compiled::Range(r) => range = range.intersect(r),
                Compiled::Pred(p) => preds.push(p),
            }
        }
        groups.push((range, preds));
    }
    let (range, mut filter): (TimeRange, Option<Pred>) = match groups.len() {
        0 => (TimeRange::ALL, None),
        1 => {
            let (range, preds) = groups.pop().unwrap_or((TimeRange::ALL, Vec::new()));
            (range, all(preds))
        }
        _ => {
            let hull = groups
                .iter()
                .map(|(r, _)| *r)
                .reduce(TimeRange::hull)
                .unwrap_or(TimeRange::ALL);
            let any: Pred = Box::new(move |rec| {
                groups
                    .iter()
                    .any(|(r, preds)| r.contains(rec.updated_ms) && preds.iter().all(|p| p(rec)))
            });
            (hull, Some(any))
        }
    };
    if let Some(q) = body.query.filter(|q| !q.trim().is_empty()) {
        let needle = q.trim().to_lowercase();
        let matches: Pred = Box::new(move |rec| {
            rec.props
                .iter()
                .any(|(_, v)| v.to_lowercase().contains(&needle))
        });
        filter = all(filter.into_iter().chain([matches]).collect());
    }
    let properties = (!body.properties.is_empty()).then(|| dedup(body.properties));
    Ok(Plan {
        sort,
        descending,
        range,
        filter,
        limit,
        after,
        position,
        properties,
        total_key,
    })
}

/// A search's `after` token: the results before the next page and the
/// keyset cursor, `p<position>-<cursor>` (opaque to clients, as HubSpot's).
pub(crate) fn after_token(position: usize, cursor: &Cursor) -> String {
    format!("p{position}-{cursor}")
}

/// Reads an `after` token ([`after_token`]); a bare cursor counts from 0.
fn parse_after(t: &str) -> Result<(usize, Cursor), ApiError> {
    let bad = || ApiError::validation(format!("invalid after token {t:?}"));
    match t.strip_prefix('p').and_then(|r| r.split_once('-')) {
        Some((pos, cursor)) => Ok((pos.parse().map_err(|_| bad())?, cursor.parse()?)),
        None => Ok((0, t.parse()?)),
    }
}

/// Property names in first-seen order without repeats.
pub(crate) fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

fn all(mut preds: Vec<Pred>) -> Option<Pred> {
    match preds.len() {
        0 => None,
        1 => preds.pop(),
        _ => Some(Box::new(move |rec| preds.iter().all(|p| p(rec)))),
    }
}

fn is_modified(name: &str) -> bool {
    matches!(
        name,
        "hs_lastmodifieddate" | "lastmodifieddate" | "updatedAt"
    )
}

fn sort_of(spec: &SortSpec) -> Result<(SortKey, bool), ApiError> {
    let (name, descending) = match spec {
        SortSpec::Text(t) => match t.strip_prefix('-') {
            Some(name) => (name, true),
            None => (t.as_str(), false),
        },
        SortSpec::Object {
            property_name,
            direction,
        } => (
            property_name.as_str(),
            direction
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
        ),
    };
    let key = match name {
        n if is_modified(n) => SortKey::Updated,
        "hs_object_id" | "createdate" | "hs_createdate" | "id" | "createdAt" => SortKey::Id,
        other => {
            return Err(ApiError::validation(format!(
                "the sandbox sorts by hs_lastmodifieddate, createdate or hs_object_id, not {other:?}"
            )));
        }
    };
    Ok((key, descending))
}

enum Compiled {
    Range(TimeRange),
    Pred(Pred),
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn instant(v: &Option<Value>, field: &str) -> Result<i64, ApiError> {
    v.as_ref()
        .and_then(text)
        .and_then(|t| parse_instant(&t))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{field} must be epoch milliseconds or an ISO-8601 instant"
            ))
        })
}

/// The inclusive range a time comparison selects, if it is one.
fn time_range(f: &FilterSpec) -> Result<Option<TimeRange>, ApiError> {
    let r = |lo, hi| Ok(Some(TimeRange { lo, hi }));
    match f.operator.as_str() {
        "EQ" => {
            let t = instant(&f.value, "value")?;
            r(t, t)
        }
        "GT" => r(instant(&f.value, "value")?.saturating_add(1), i64::MAX),
        "GTE" => r(instant(&f.value, "value")?, i64::MAX),
        "LT" => r(i64::MIN, instant(&f.value, "value")?.saturating_sub(1)),
        "LTE" => r(i64::MIN, instant(&f.value, "value")?),
        "BETWEEN" => r(
            instant(&f.value, "value")?,
            instant(&f.high_value, "highValue")?,
        ),
        "HAS_PROPERTY" => r(i64::MIN, i64::MAX),
        _ => Ok(None),
    }
}

fn compile(f: FilterSpec) -> Result<Compiled, ApiError> {
    let name = f.property_name.as_str();
    if is_modified(name) || matches!(name, "createdate" | "hs_createdate" | "createdAt") {
        let modified = is_modified(name);
        let range = match time_range(&f)? {
            Some(range) => range,
            None if f.operator == "NEQ" => {
                let t = instant(&f.value, "value")?;
                return Ok(Compiled::Pred(if modified {
                    Box::new(move |rec| rec.updated_ms != t)
                } else {
                    Box::new(move |rec| rec.created_ms != t)
                }));
            }
            None if f.operator == "NOT_HAS_PROPERTY" => {
                return Ok(Compiled::Pred(Box::new(|_| false)));
            }
            None => {
                return Err(ApiError::validation(format!(
                    "operator {} is not supported on {name}",
                    f.operator
                )));
            }
        };
        return Ok(if modified {
            Compiled::Range(range)
        } else {
            Compiled::Pred(Box::new(move |rec| range.contains(rec.created_ms)))
        });
    }
    let test = value_test(&f)?;
    Ok(Compiled::Pred(if name == "hs_object_id" {
        Box::new(move |rec| test(Some(&rec.id.to_string())))
    } else {
        let name = f.property_name.clone();
        Box::new(move |rec| test(rec.props.get(&name)))
    }))
}

type Test = Box<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// Numbers compare numerically, everything else case-insensitively.
fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn value_test(f: &FilterSpec) -> Result<Test, ApiError> {
    let value = || {
        f.value.as_ref().and_then(text).ok_or_else(|| {
            ApiError::validation(format!("filter on {} needs a value", f.property_name))
        })
    };
    let values = || -> Result<Vec<String>, ApiError> {
        f.values
            .as_ref()
            .map(|vs| vs.iter().filter_map(text).collect())
            .ok_or_else(|| {
                ApiError::validation(format!("filter on {} needs values", f.property_name))
            })
    };
    let ordered = |want: fn(Ordering) -> bool, v: String| -> Test {
        Box::new(move |x: Option<&str>| x.is_some_and(|x| want(compare(x, &v))))
    };
    Ok(match f.operator.as_str() {
        "EQ" => ordered(Ordering::is_eq, value()?),
        "NEQ" => {
            let v = value()?;
            Box::new(move |x| x.is_none_or(|x| compare(x, &v).is_ne()))
        }
        "LT" => ordered(Ordering::is_lt, value()?),
        "LTE" => ordered(Ordering::is_le, value()?),
        "GT" => ordered(Ordering::is_gt, value()?),
        "GTE" => ordered(Ordering::is_ge, value()?),
        "BETWEEN" => {
            let lo = value()?;
            let hi = f
                .high_value
                .as_ref()
                .and_then(text)
                .ok_or_else(|| ApiError::validation("BETWEEN needs highValue"))?;
            Box::new(move |x| x.is_some_and(|x| compare(x, &lo).is_ge() && compare(x, &hi).is_le()))
        }
        "IN" => {
            let vs = values()?;
            Box::new(move |x| x.is_some_and(|x| vs.iter().any(|v| compare(x, v).is_eq())))
        }
        "NOT_IN" => {
            let vs = values()?;
            Box::new(move |x| x.is_none_or(|x| vs.iter().all(|v| compare(x, v).is_ne())))
        }
        "HAS_PROPERTY" => Box::new(|x| x.is_some_and(|x| !x.is_empty())),
        "NOT_HAS_PROPERTY" => Box::new(|x| x.is_none_or(str::is_empty)),
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let token = value()?.trim_matches('*').to_lowercase();
            let negate = f.operator.starts_with("NOT");
            Box::new(move |x| x.is_some_and(|x| x.to_lowercase().contains(&token)) != negate)
        }
        other => return Err(ApiError::validation(format!("unknown operator {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Props;

    fn rec(id: u64, updated_ms: i64, email: &str) -> Record {
        let mut props = Props::default();
        props.set("email", email.to_owned());
        props.set("amount", "250.00".to_owned());
        Record {
            id,
            props,
            created_ms: 0,
            updated_ms,
            archived_ms: None,
        }
    }

    fn compile_body(json: &str) -> Plan {
        plan(serde_json::from_str(json).unwrap(), 200).unwrap()
    }

    /// The documented modified-since body becomes an index range and an (updatedAt, id) sort.
    #[test]
    fn modified_since_is_a_range() {
        let p = compile_body(
            r#"{"filterGroups":[{"filters":[{"propertyName":"hs_lastmodifieddate","operator":"GTE","value":"1000"}]}],
                "sorts":[{"propertyName":"hs_lastmodifieddate","direction":"ASCENDING"}],"limit":100}"#,
        );
        assert_eq!(p.sort, SortKey::Updated);
        assert!(!p.descending);
        assert_eq!(
            p.range,
            TimeRange {
                lo: 1000,
                hi: i64::MAX
            }
        );
        assert!(p.filter.is_none());
        let iso = compile_body(
            r#"{"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GT","value":"1970-01-01T00:00:01.000Z"}]}]}"#,
        );
        assert_eq!(iso.range.lo, 1001);
        assert_eq!(iso.sort, SortKey::Id);
    }

    /// Groups are ORed, filters within a group ANDed, property comparisons numeric where possible.
    #[test]
    fn groups_and_predicates() {
        let p = compile_body(
            r#"{"filterGroups":[
                {"filters":[{"propertyName":"email","operator":"EQ","value":"A@X.EXAMPLE"}]},
                {"filters":[{"propertyName":"amount","operator":"GT","value":"1000"},
                            {"propertyName":"hs_lastmodifieddate","operator":"LT","value":"50"}]}]}"#,
        );
        let f = p.filter.unwrap();
        assert!(f(&rec(1, 100, "a@x.example")));
        assert!(!f(&rec(2, 10, "b@x.example")), "250 is not > 1000");
        assert!(!f(&rec(3, 100, "b@x.example")));
    }

    /// Unsupported operators, sorts and oversized limits are 400s, not silently ignored.
    #[test]
    fn rejects_what_it_cannot_do() {
        for body in [
            r#"{"limit":500}"#,
            r#"{"sorts":[{"propertyName":"email"}]}"#,
            r#"{"filterGroups":[{"filters":[{"propertyName":"email","operator":"LIKE","value":"x"}]}]}"#,
            r#"{"filterGroups":[{"filters":[{"propertyName":"hs_lastmodifieddate","operator":"GTE","value":"soon"}]}]}"#,
            r#"{"after":"t12"}"#,
        ] {
            assert!(
                plan(serde_json::from_str(body).unwrap(), 200).is_err(),
                "{body}"
            );
        }
    }
}
