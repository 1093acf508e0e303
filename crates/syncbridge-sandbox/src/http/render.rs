//! How records and pages look on the wire (HubSpot CRM v3 shapes), serialized
//! straight from the store's records without building `serde_json::Value`s.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::clock::iso;
use crate::store::{ObjectKind, Record};

/// A record as HubSpot returns it. `props`: `None` = every property,
/// `Some(names)` = those names (unset ones as `null`); the system properties
/// `hs_object_id`, `createdate` and the modification date are always present.
pub(crate) struct RecordView<'a> {
    pub(crate) kind: ObjectKind,
    pub(crate) rec: &'a Record,
    pub(crate) props: Option<&'a [String]>,
}

const SYSTEM: &[&str] = &[
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
];

struct PropsView<'a>(&'a RecordView<'a>);

impl Serialize for PropsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let RecordView { kind, rec, props } = self.0;
        let mut map = s.serialize_map(None)?;
        match props {
            None => {
                for (k, v) in rec.props.iter() {
                    map.serialize_entry(k, v)?;
                }
            }
            Some(names) => {
                for name in names.iter().filter(|n| !SYSTEM.contains(&n.as_str())) {
                    map.serialize_entry(name, &rec.props.get(name))?;
                }
            }
        }
        let updated = iso(rec.updated_ms);
        map.serialize_entry("createdate", &iso(rec.created_ms))?;
        map.serialize_entry("hs_object_id", &rec.id.to_string())?;
        map.serialize_entry("hs_lastmodifieddate", &updated)?;
        if *kind == ObjectKind::Contacts {
            map.serialize_entry("lastmodifieddate", &updated)?;
        }
        map.end()
    }
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rec = self.rec;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &rec.id.to_string())?;
        map.serialize_entry("properties", &PropsView(self))?;
        map.serialize_entry("createdAt", &iso(rec.created_ms))?;
        map.serialize_entry("updatedAt", &iso(rec.updated_ms))?;
        map.serialize_entry("archived", &rec.archived_ms.is_some())?;
        if let Some(at) = rec.archived_ms {
            map.serialize_entry("archivedAt", &iso(at))?;
        }
        map.end()
    }
}

/// `paging.next`.
#[derive(Serialize)]
pub(crate) struct Next {
    pub(crate) after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) link: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Paging {
    pub(crate) next: Next,
}

/// A list (`total: None`) or search (`total: Some`) page.
#[derive(Serialize)]
pub(crate) struct PageBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) total: Option<usize>,
    pub(crate) results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) paging: Option<Paging>,
}

impl<'a> PageBody<'a> {
    pub(crate) fn new(
        kind: ObjectKind,
        records: Vec<&'a Record>,
        props: Option<&'a [String]>,
        total: Option<usize>,
        next: Option<(String, Option<String>)>,
    ) -> Self {
        Self {
            total,
            results: records
                .into_iter()
                .map(|rec| RecordView { kind, rec, props })
                .collect(),
            paging: next.map(|(after, link)| Paging {
                next: Next { after, link },
            }),
        }
    }
}

/// Serializes `value` into a JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON response from already-serialized bytes.
pub(crate) fn json_bytes(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(body.into())
        .unwrap_or_default()
}
