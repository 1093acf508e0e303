//! `/crm/v3/objects/{object}` handlers: list (with the sandbox's
//! `updatedAfter` extension and the `archived=true` deleted feed), search,
//! get, create, update, archive. Writes honour `Idempotency-Key`.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiError;
use super::render::{PageBody, RecordView, json, json_bytes};
use super::search::{self, SEARCH_MAX_LIMIT};
use crate::clock::parse_instant;
use crate::sandbox::Sandbox;
use crate::store::{
    self, ChangeEvent, ObjectKind, PropChange, SortKey, Store, StoredResponse, TimeRange,
};

type Params = Query<Vec<(String, String)>>;

fn kind(object: &str) -> Result<ObjectKind, ApiError> {
    object
        .parse()
        .map_err(|_| ApiError::validation(format!("Unable to infer object type from: {object}")))
}

fn record_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

/// Query parameters shared by list and get.
#[derive(Debug, Default)]
struct ListParams {
    limit: Option<usize>,
    after: Option<store::Cursor>,
    archived: bool,
    properties: Option<Vec<String>>,
    updated_after: Option<i64>,
}

fn parse_params(pairs: &[(String, String)]) -> Result<ListParams, ApiError> {
    let mut p = ListParams::default();
    let mut props: Vec<String> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                p.limit = Some(
                    v.parse()
                        .map_err(|_| ApiError::validation("limit must be a number"))?,
                );
            }
            "after" if !v.is_empty() => p.after = Some(v.parse()?),
            "archived" => {
                p.archived = v
                    .parse()
                    .map_err(|_| ApiError::validation("archived must be true or false"))?;
            }
            "properties" => props.extend(v.split(',').map(|s| s.trim().to_owned())),
            "updatedAfter" => {
                p.updated_after = Some(parse_instant(v).ok_or_else(|| {
                    ApiError::validation(
                        "updatedAfter must be an ISO-8601 instant or epoch milliseconds",
                    )
                })?);
            }
            _ => {}
        }
    }
    p.properties = (!props.is_empty()).then(|| search::dedup(props));
    Ok(p)
}

/// `paging.next.link`: this request's URL with `after` replaced.
fn next_link(headers: &HeaderMap, uri: &Uri, pairs: &[(String, String)], after: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "after") {
        query.append_pair(k, v);
    }
    query.append_pair("after", after);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    format!("{host}{}?{}", uri.path(), query.finish())
}

pub(crate) async fn list(
    State(sbx): State<Sandbox>,
    Path(object): Path<String>,
    Query(pairs): Params,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let p = parse_params(&pairs)?;
    let max = sbx.config().max_page_size;
    let limit = p.limit.unwrap_or(10);
    if limit == 0 || limit > max {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let q = store::Query {
        archived: p.archived,
        sort: if p.updated_after.is_some() {
            SortKey::Updated
        } else {
            SortKey::Id
        },
        descending: false,
        // `updatedAfter` is exclusive: the mutation clock never reuses a
        // millisecond, so "after my watermark" misses nothing.
        range: p.updated_after.map_or(TimeRange::ALL, |t| TimeRange {
            lo: t.saturating_add(1),
            hi: i64::MAX,
        }),
        filter: None,
        after: p.after,
        limit,
    };
    let store = sbx.read_store();
    let page = store.table(kind).page(&q)?;
    let next = page.next.map(|c| {
        let link = next_link(&headers, &uri, &pairs, &c.to_string());
        (c.to_string(), Some(link))
    });
    let body = PageBody::new(kind, page.records, p.properties.as_deref(), None, next);
    Ok(json(StatusCode::OK, &body))
}

pub(crate) async fn search(
    State(sbx): State<Sandbox>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let body: search::SearchBody = if body.is_empty() {
        serde_json::from_str("{}").map_err(|e| ApiError::validation(e.to_string()))?
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("invalid search body: {e}")))?
    };
    let max = sbx.config().max_page_size.max(SEARCH_MAX_LIMIT);
    let plan = search::plan(body, max)?;
    // HubSpot's cap: one search reaches at most SEARCH_RESULT_CAP results.
    if plan.position >= search::SEARCH_RESULT_CAP {
        return Err(ApiError::validation(format!(
            "a search returns at most {} results; narrow the filter to see more",
            search::SEARCH_RESULT_CAP
        )));
    }
    let q = store::Query {
        archived: false,
        sort: plan.sort,
        descending: plan.descending,
        range: plan.range,
        filter: plan.filter.as_deref().map(|f| f as store::Filter<'_>),
        after: plan.after,
        limit: plan.limit.min(search::SEARCH_RESULT_CAP - plan.position),
    };
    let store = sbx.read_store();
    let table = store.table(kind);
    let page = table.page(&q)?;
    let total = table.total(&q, &plan.total_key);
    let position = plan.position + page.records.len();
    let next = page.next.map(|c| (search::after_token(position, &c), None));
    let body = PageBody::new(
        kind,
        page.records,
        plan.properties.as_deref(),
        Some(total),
        next,
    );
    Ok(json(StatusCode::OK, &body))
}

pub(crate) async fn get_one(
    State(sbx): State<Sandbox>,
    Path((object, id)): Path<(String, String)>,
    Query(pairs): Params,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let id = record_id(&id)?;
    let p = parse_params(&pairs)?;
    let store = sbx.read_store();
    let rec = store
        .table(kind)
        .get(id, p.archived)
        .ok_or_else(ApiError::not_found)?;
    let view = RecordView {
        kind,
        rec,
        props: p.properties.as_deref(),
    };
    Ok(json(StatusCode::OK, &view))
}

/// Reads `{"properties": {...}}`: strings as-is, numbers and booleans as
/// text, `null` clears.
fn property_changes(body: &[u8]) -> Result<Vec<PropChange>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))?;
    let Some(Value::Object(props)) = value.get("properties") else {
        return Err(ApiError::validation("body must be {\"properties\": {...}}"));
    };
    props
        .iter()
        .map(|(name, v)| {
            let v = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => {
                    return Err(ApiError::validation(format!(
                        "property {name} must be a string, number, boolean or null"
                    )));
                }
            };
            Ok((name.clone(), v))
        })
        .collect()
}

fn render_record(
    store: &Store,
    kind: ObjectKind,
    id: u64,
    status: StatusCode,
) -> (StatusCode, Vec<u8>) {
    let body = store
        .table(kind)
        .get(id, false)
        .map(|rec| {
            serde_json::to_vec(&RecordView {
                kind,
                rec,
                props: None,
            })
            .unwrap_or_default()
        })
        .unwrap_or_default();
    (status, body)
}

/// Runs a write once per `Idempotency-Key`: the first response (2xx or 4xx)
/// is stored and replayed for later requests with the same key and the same
/// method, path and body; the same key with a different request is a 422.
/// The check and the write happen under one store lock, so two concurrent
/// requests with one key cannot both apply.
fn idempotent(
    sbx: &Sandbox,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    apply: impl FnOnce(&mut Store, &mut Vec<ChangeEvent>) -> (StatusCode, Vec<u8>),
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let fingerprint = {
        let mut h = DefaultHasher::new();
        (method.as_str(), uri.path(), body).hash(&mut h);
        h.finish()
    };
    let mut events = Vec::new();
    let mut store = sbx.write_store();
    if let Some(prev) = key.as_deref().and_then(|k| store.idempotent_response(k)) {
        if prev.fingerprint != fingerprint {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
                "Idempotency-Key was already used for a different request",
            )
            .into_response();
        }
        let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
        let mut resp = json_bytes(status, prev.body.clone());
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return resp;
    }
    let (status, bytes) = apply(&mut store, &mut events);
    let bytes = Bytes::from(bytes);
    if let Some(key) = key {
        store.remember_response(
            key,
            StoredResponse {
                fingerprint,
                status: status.as_u16(),
                body: bytes.clone(),
            },
        );
    }
    sbx.emit(&events);
    drop(store);
    json_bytes(status, bytes)
}

fn error_parts(e: ApiError) -> (StatusCode, Vec<u8>) {
    (e.status, e.body())
}

pub(crate) async fn create(
    State(sbx): State<Sandbox>,
    Path(object): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let props = property_changes(&body)?;
    Ok(idempotent(
        &sbx,
        &headers,
        &method,
        &uri,
        &body,
        |store, events| match store.create(kind, &props) {
            Ok(ev) => {
                events.push(ev);
                render_record(store, kind, ev.id, StatusCode::CREATED)
            }
            Err(e) => error_parts(e.into()),
        },
    ))
}

pub(crate) async fn update(
    State(sbx): State<Sandbox>,
    Path((object, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let id = record_id(&id)?;
    let props = property_changes(&body)?;
    Ok(idempotent(
        &sbx,
        &headers,
        &method,
        &uri,
        &body,
        |store, events| match store.update(kind, id, &props) {
            Ok(ev) => {
                events.push(ev);
                render_record(store, kind, id, StatusCode::OK)
            }
            Err(e) => error_parts(e.into()),
        },
    ))
}

pub(crate) async fn archive(
    State(sbx): State<Sandbox>,
    Path((object, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let kind = kind(&object)?;
    let id = record_id(&id)?;
    let mut store = sbx.write_store();
    if let Some(ev) = store.archive(kind, id)? {
        sbx.emit(&[ev]);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// List parameters accept HubSpot's comma and repeated `properties` forms and reject junk.
    #[test]
    fn params() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let p = parse_params(&pairs(&[
            ("properties", "email,firstname"),
            ("properties", "email"),
            ("archived", "true"),
            ("after", "t5.7"),
        ]))
        .unwrap();
        assert_eq!(p.properties.unwrap(), ["email", "firstname"]);
        assert!(p.archived);
        assert_eq!(p.after, Some(store::Cursor::Updated(5, 7)));
        assert!(parse_params(&pairs(&[("archived", "yes")])).is_err());
        assert!(parse_params(&pairs(&[("limit", "ten")])).is_err());
        assert!(parse_params(&pairs(&[("updatedAfter", "later")])).is_err());
    }
}
