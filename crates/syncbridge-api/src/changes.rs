//! Changes: the product writes records back through the API.
//!
//! `POST|PATCH|DELETE /v1/connections/{id}/objects/{object}/records[/{record_id}]`
//! go through core's outbound submit path (`pipeline::outbound::submit_change`,
//! the one `syncbridge changes submit` calls): the change and its outbox
//! entry are one write, the push is queued, and the call answers 202 with
//! the record's id and push status. `…/status` reads the push status,
//! `GET /v1/conflicts` pages parked conflicts, `…/resolve` resolves them
//! (core's `resolve_conflict`, as `syncbridge changes resolve`), and
//! `GET /v1/connections/{id}/audit` pages the push decisions. The three
//! change calls and resolve take an `Idempotency-Key` ([`crate::idempotency`]).
//! Bad input is refused before anything is written or any key is claimed.

use std::collections::BTreeMap;

use axum::extract::rejection::{ExtensionRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::merge::Side;
use syncbridge_core::model::{Connection, Record};
use syncbridge_core::pipeline::outbound::{
    ChangeError, ChangeOp, Choice, LocalChange, ResolveError, Target, resolve_conflict,
    submit_change,
};
use syncbridge_core::store::{AuditKey, AuditQuery, ConflictQuery, RecordKey};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType};
use syncbridge_functions::AppState;
use utoipa::{IntoParams, ToSchema};

use crate::connections::load;
use crate::idempotency::{self, Answer};
use crate::pages;
use crate::problem::{ApiError, Problem};

/// Where a record's outbound changes stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// A change waits to be pushed (or is being retried after a transient failure).
    Pending,
    /// Nothing waits: the provider has our copy.
    Pushed,
    /// The provider refused the push; it waits for a new change.
    Parked,
    /// A field changed on both sides waits for a person (`resolve`).
    Conflict,
}

/// The push status of a stored record (pure).
pub fn status_of(r: &Record) -> PushStatus {
    match &r.local {
        None => PushStatus::Pushed,
        Some(l) if !l.conflicts.is_empty() => PushStatus::Conflict,
        Some(l) if l.push_due_at.is_none() && l.last_error.is_some() => PushStatus::Parked,
        Some(_) => PushStatus::Pending,
    }
}

/// A record's push status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordStatus {
    /// The record (`local:<reference>` until the provider assigns its id).
    pub id: String,
    /// Its connection.
    pub connection_id: String,
    /// Its object type.
    pub object: String,
    /// `pending`, `pushed`, `parked` or `conflict`.
    pub status: PushStatus,
    /// Our version of it.
    pub version: i64,
    /// Deleted locally, the delete not pushed yet.
    pub deleted: bool,
    /// Failed push attempts since the last success.
    pub attempts: u32,
    /// The provider's answer to the last failed push.
    pub last_error: Option<String>,
    /// Fields parked for a person.
    pub conflicts: Vec<String>,
    /// When the product last changed it (RFC 3339); the provider's time once pushed.
    pub updated_at: Option<String>,
}

impl From<&Record> for RecordStatus {
    fn from(r: &Record) -> Self {
        let l = r.local.as_ref();
        RecordStatus {
            id: r.external_id.to_string(),
            connection_id: r.connection.to_string(),
            object: r.object.to_string(),
            status: status_of(r),
            version: r.version,
            deleted: l.is_some_and(|l| l.deleted),
            attempts: l.map_or(0, |l| l.attempts),
            last_error: l.and_then(|l| l.last_error.clone()),
            conflicts: l
                .map(|l| l.conflicts.iter().map(|c| c.field.clone()).collect())
                .unwrap_or_default(),
            updated_at: l
                .map(|l| l.local_updated_at)
                .or(r.remote_updated_at)
                .map(|t| t.to_rfc3339()),
        }
    }
}

/// Body of `POST …/records`: a new record.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecordBody {
    /// Your own id for it (letters, digits, `-_.:@`); the record is
    /// `local:<reference>` until the provider assigns its id. Default: a random one.
    pub reference: Option<String>,
    /// Its fields (the connector's canonical names, see `GET /v1/providers/{name}`).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Body of `PATCH …/records/{record_id}`: the fields to change (`null` clears one).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecordBody {
    /// Fields to change; the others keep their values.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Which side wins a parked field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TakeSide {
    /// Our value (pushed to the provider).
    Ours,
    /// The provider's value (applied to our copy).
    Theirs,
}

/// Body of `POST …/resolve`: `take` a side (for `fields`, default every
/// parked field), or give a `value` per field. Exactly one of the two.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// This side wins.
    pub take: Option<TakeSide>,
    /// With `take`: only these parked fields.
    pub fields: Option<Vec<String>>,
    /// Or: these values win, field by field (pushed as ours).
    #[schema(value_type = Option<Object>)]
    pub value: Option<Map<String, Value>>,
}

/// The published parameters of a change call's path to an object.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "documentation only: the handlers read `ObjectPath`"
)]
struct ObjectParams {
    /// Connection id
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    id: String,
    /// Object type
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 64)]
    object: String,
}

/// The published parameters of a path to a record.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "documentation only: the handlers read `RecordPath`"
)]
struct RecordParams {
    /// Connection id
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    id: String,
    /// Object type
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 64)]
    object: String,
    /// Record id
    #[param(min_length = 1, max_length = 512)]
    record_id: String,
}

/// The published `Idempotency-Key` of a change call with a body.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(
    dead_code,
    reason = "documentation only: `crate::idempotency` reads the header"
)]
struct KeyParams {
    /// Same key and body: the same answer again (24 h)
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// A record's path: connection, object.
type ObjectPath = Result<Path<(String, String)>, PathRejection>;
/// A record's path: connection, object, record.
type RecordPath = Result<Path<(String, String, String)>, PathRejection>;

/// A change call's JSON body, unread.
type JsonBody = Result<Json<Value>, JsonRejection>;

/// What every change call carries besides its path and body: the caller
/// (set by the key check) and what the idempotency fingerprint reads.
pub struct Call {
    caller: ApiKey,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Call {
    /// No caller: the route is outside the key check (axum's 500, as `Extension` answers).
    type Rejection = ExtensionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(caller) = Extension::<ApiKey>::from_request_parts(parts, state).await?;
        Ok(Call {
            caller,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl Call {
    fn request<'a>(&'a self, body: &'a Value) -> idempotency::Request<'a> {
        idempotency::Request {
            caller: &self.caller,
            headers: &self.headers,
            method: &self.method,
            path: self.uri.path(),
            body,
        }
    }

    /// Submits `change` under the call's `Idempotency-Key` (claimed only
    /// now, after every check of the call).
    async fn submit(&self, app: &AppState, body: &Value, change: LocalChange) -> Response {
        idempotency::run(app, self.request(body), || submit(app, change)).await
    }
}

fn object_type(text: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(text.to_owned()).map_err(|e| ApiError::InvalidRequest(format!("object: {e}")))
}

fn record_id(text: &str) -> Result<ExternalId, ApiError> {
    ExternalId::parse(text.to_owned())
        .map_err(|e| ApiError::InvalidRequest(format!("record_id: {e}")))
}

/// A change call's body: the JSON (what the idempotency fingerprint hashes)
/// and what it says, refused before the path's connection is looked up.
fn body_of<T: serde::de::DeserializeOwned>(body: JsonBody) -> Result<(Value, T), ApiError> {
    let Json(body) = body?;
    let said = parse_body(&body)?;
    Ok((body, said))
}

/// A record's path: its id, then the connection and an object its connector defines.
async fn record_of(
    app: &AppState,
    connection: &str,
    object: &str,
    id: &str,
) -> Result<(Connection, ObjectType, ExternalId), ApiError> {
    let id = record_id(id)?;
    let (conn, object) = object_of(app, connection, object).await?;
    Ok((conn, object, id))
}

/// The connection and the object, which its connector must define.
async fn object_of(
    app: &AppState,
    connection: &str,
    object: &str,
) -> Result<(Connection, ObjectType), ApiError> {
    let object = object_type(object)?;
    let conn = load(app, connection).await?;
    let known = app
        .registry
        .get(&conn.provider)
        .is_some_and(|d| d.object(object.as_str()).is_some());
    if !known {
        return Err(ApiError::NotFound(format!(
            "connector {} has no object {object}",
            conn.provider
        )));
    }
    Ok((conn, object))
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        use ChangeError::*;
        match e {
            UnknownConnection(_) | UnknownConnector(_) | UnknownObject { .. } | NotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            ReadOnly(_) => ApiError::ReadOnlyObject(e.to_string()),
            UnknownField { .. } | BadReference(_) => ApiError::InvalidRequest(e.to_string()),
            Exists(_) | Contended(_) => ApiError::Conflict(e.to_string()),
            Store(s) => s.into(),
            Queue(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ResolveError::NoConflict { .. } | ResolveError::Busy(_) => {
                ApiError::Conflict(e.to_string())
            }
            ResolveError::Store(s) => s.into(),
            ResolveError::Queue(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// The record's status now, as a 202 answer.
async fn accepted(
    app: &AppState,
    connection: &ConnectionId,
    object: &ObjectType,
    id: &ExternalId,
) -> Result<Answer, ApiError> {
    let rec = app.store.get_record(connection, object, id).await?;
    let status = match rec {
        Some(r) => RecordStatus::from(&r),
        // Gone already (a delete of a create never pushed is forgotten).
        None => RecordStatus {
            id: id.to_string(),
            connection_id: connection.to_string(),
            object: object.to_string(),
            status: PushStatus::Pushed,
            version: 0,
            deleted: true,
            attempts: 0,
            last_error: None,
            conflicts: Vec::new(),
            updated_at: None,
        },
    };
    let body = serde_json::to_value(status).expect("views serialize");
    Ok((StatusCode::ACCEPTED, body))
}

/// Submits `change` through core's outbound path and answers its status.
async fn submit(app: &AppState, change: LocalChange) -> Result<Answer, ApiError> {
    let deps = app.worker_deps();
    let id = match submit_change(&deps, app.queue.as_ref(), &change).await {
        Ok(done) => done.external_id,
        Err(ChangeError::Queue(e)) => {
            // Stored with its outbox entry: the scheduler's relay queues it.
            tracing::warn!(connection = %change.connection, error = %e, "change stored; queueing its push failed (the relay retries)");
            match &change.op {
                ChangeOp::Create { reference, .. } => record_id(&format!(
                    "{}{reference}",
                    syncbridge_core::model::PROVISIONAL_PREFIX
                ))?,
                ChangeOp::Update { id, .. } | ChangeOp::Delete { id } => id.clone(),
            }
        }
        Err(e) => return Err(e.into()),
    };
    accepted(app, &change.connection, &change.object, &id).await
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone())
        .map_err(|e| ApiError::InvalidRequest(format!("request body: {e}")))
}

macro_rules! problem {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
}

/// Creates a record: stored with its outbox entry and pushed by the outbound worker.
#[utoipa::path(post, path = "/v1/connections/{id}/objects/{object}/records", tag = "changes",
    operation_id = "create_record",
    params(ObjectParams, KeyParams),
    request_body = CreateRecordBody,
    responses((status = 202, body = RecordStatus),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn create_record(
    State(app): State<AppState>,
    call: Call,
    path: ObjectPath,
    body: JsonBody,
) -> Response {
    let Path((connection, object)) = problem!(path);
    let (body, b): (_, CreateRecordBody) = problem!(body_of(body));
    let (conn, object) = problem!(object_of(&app, &connection, &object).await);
    let reference = b
        .reference
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 12]>()));
    let change = LocalChange {
        connection: conn.id,
        object,
        op: ChangeOp::Create {
            reference,
            fields: b.fields,
        },
    };
    call.submit(&app, &body, change).await
}

/// Changes some fields of a record (`null` clears a field).
#[utoipa::path(patch, path = "/v1/connections/{id}/objects/{object}/records/{record_id}", tag = "changes",
    operation_id = "update_record",
    params(RecordParams, KeyParams),
    request_body = UpdateRecordBody,
    responses((status = 202, body = RecordStatus),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn update_record(
    State(app): State<AppState>,
    call: Call,
    path: RecordPath,
    body: JsonBody,
) -> Response {
    let Path((connection, object, id)) = problem!(path);
    let (body, b): (_, UpdateRecordBody) = problem!(body_of(body));
    let (conn, object, id) = problem!(record_of(&app, &connection, &object, &id).await);
    let change = LocalChange {
        connection: conn.id,
        object,
        op: ChangeOp::Update {
            id,
            fields: b.fields,
        },
    };
    call.submit(&app, &body, change).await
}

/// Deletes a record (pushed as a DELETE to the provider).
#[utoipa::path(delete, path = "/v1/connections/{id}/objects/{object}/records/{record_id}", tag = "changes",
    operation_id = "delete_record",
    params(RecordParams,
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Same key: the same answer again (24 h)")),
    responses((status = 202, body = RecordStatus),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_record(State(app): State<AppState>, call: Call, path: RecordPath) -> Response {
    let Path((connection, object, id)) = problem!(path);
    let (conn, object, id) = problem!(record_of(&app, &connection, &object, &id).await);
    let change = LocalChange {
        connection: conn.id,
        object,
        op: ChangeOp::Delete { id },
    };
    call.submit(&app, &Value::Null, change).await
}

/// A record's push status: pending, pushed, parked or conflict.
#[utoipa::path(get, path = "/v1/connections/{id}/objects/{object}/records/{record_id}/status", tag = "changes",
    operation_id = "get_record_status",
    params(RecordParams),
    responses((status = 200, body = RecordStatus),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn record_status(
    State(app): State<AppState>,
    path: RecordPath,
) -> Result<Json<RecordStatus>, ApiError> {
    let Path((connection, object, id)) = path?;
    let (conn, object, id) = record_of(&app, &connection, &object, &id).await?;
    let rec = app
        .store
        .get_record(&conn.id, &object, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no record {id} in {}/{object}", conn.id)))?;
    Ok(Json(RecordStatus::from(&rec)))
}

/// The choices a resolve body asks for, given the record's parked fields.
fn choices(b: ResolveBody, parked: &[String]) -> Result<BTreeMap<String, Choice>, ApiError> {
    let bad = |m: &str| Err(ApiError::InvalidRequest(format!("request body: {m}")));
    match (b.take, b.value) {
        (Some(take), None) => {
            let side = match take {
                TakeSide::Ours => Side::Local,
                TakeSide::Theirs => Side::Remote,
            };
            let fields = b.fields.unwrap_or_else(|| parked.to_vec());
            if fields.is_empty() {
                return bad("`fields` is empty (or the record has no parked conflict)");
            }
            Ok(fields
                .into_iter()
                .map(|f| (f, Choice::Take(side)))
                .collect())
        }
        (None, Some(values)) if b.fields.is_none() && !values.is_empty() => Ok(values
            .into_iter()
            .map(|(f, v)| (f, Choice::Value(v)))
            .collect()),
        (None, Some(_)) => bad("`value` needs at least one field and goes without `fields`"),
        _ => bad("give exactly one of `take` and `value`"),
    }
}

/// Resolves a record's parked conflicts: a side wins, or a value per field.
#[utoipa::path(post, path = "/v1/connections/{id}/objects/{object}/records/{record_id}/resolve", tag = "changes",
    operation_id = "resolve_record",
    params(RecordParams, KeyParams),
    request_body = ResolveBody,
    responses((status = 202, body = RecordStatus),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn resolve(
    State(app): State<AppState>,
    call: Call,
    path: RecordPath,
    body: JsonBody,
) -> Response {
    let Path((connection, object, id)) = problem!(path);
    let (body, b): (_, ResolveBody) = problem!(body_of(body));
    let (conn, object, id) = problem!(record_of(&app, &connection, &object, &id).await);
    let act = || async {
        let rec = app
            .store
            .get_record(&conn.id, &object, &id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no record {id} in {}/{object}", conn.id)))?;
        let parked: Vec<String> = rec
            .local
            .iter()
            .flat_map(|l| l.conflicts.iter().map(|c| c.field.clone()))
            .collect();
        let choices = choices(b, &parked)?;
        let target = Target {
            connection: &conn.id,
            object: &object,
            id: &id,
        };
        resolve_conflict(&app.worker_deps(), app.queue.as_ref(), target, &choices).await?;
        accepted(&app, &conn.id, &object, &id).await
    };
    idempotency::run(&app, call.request(&body), act).await
}

/// One parked field: the three values of the merge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictField {
    /// The field.
    pub field: String,
    /// The value both sides last agreed on.
    #[schema(value_type = Object)]
    pub base: Value,
    /// Our value.
    #[schema(value_type = Object)]
    pub ours: Value,
    /// The provider's value.
    #[schema(value_type = Object)]
    pub theirs: Value,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

/// A record with parked conflicts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictView {
    /// Its connection.
    pub connection_id: String,
    /// Its object type.
    pub object: String,
    /// The record.
    pub record_id: String,
    /// Our version of it.
    pub version: i64,
    /// The parked fields.
    pub fields: Vec<ConflictField>,
}

impl From<&Record> for ConflictView {
    fn from(r: &Record) -> Self {
        ConflictView {
            connection_id: r.connection.to_string(),
            object: r.object.to_string(),
            record_id: r.external_id.to_string(),
            version: r.version,
            fields: r
                .local
                .iter()
                .flat_map(|l| &l.conflicts)
                .map(|c| ConflictField {
                    field: c.field.clone(),
                    base: c.base.clone(),
                    ours: c.local.clone(),
                    theirs: c.remote.clone(),
                    parked_at: c.parked_at.to_rfc3339(),
                })
                .collect(),
        }
    }
}

/// A page of records with parked conflicts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictPage {
    /// By connection, object, record.
    pub conflicts: Vec<ConflictView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// Filters and paging of `GET /v1/conflicts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictParams {
    /// Only this connection's.
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub connection_id: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

const CONFLICTS: &str = "conflicts";
const AUDIT: &str = "audit";

/// Records with parked conflicts, with base, ours and theirs per field.
#[utoipa::path(get, path = "/v1/conflicts", tag = "changes",
    operation_id = "list_conflicts",
    params(ConflictParams),
    responses((status = 200, body = ConflictPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn conflicts(
    State(app): State<AppState>,
    q: Result<Query<ConflictParams>, QueryRejection>,
) -> Result<Json<ConflictPage>, ApiError> {
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let connection = match &p.connection_id {
        Some(c) => Some(load(&app, c).await?.id),
        None => None,
    };
    let filter = connection.as_ref().map_or("", |c| c.as_str()).to_owned();
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => {
            let k = pages::decode(CONFLICTS, c, 4)?;
            let bad =
                || ApiError::InvalidCursor(format!("cursor {c:?} was not issued for this list"));
            if k[0] != filter {
                return Err(bad());
            }
            Some(RecordKey {
                connection: ConnectionId::parse(k[1].clone()).map_err(|_| bad())?,
                object: ObjectType::parse(k[2].clone()).map_err(|_| bad())?,
                external_id: ExternalId::parse(k[3].clone()).map_err(|_| bad())?,
            })
        }
    };
    let recs = app
        .store
        .list_conflicts_page(&ConflictQuery {
            connection,
            after,
            limit,
        })
        .await?;
    Ok(Json(ConflictPage {
        next_cursor: pages::next_cursor(&recs, limit, |r| {
            pages::encode(
                CONFLICTS,
                &[
                    &filter,
                    r.connection.as_str(),
                    r.object.as_str(),
                    r.external_id.as_str(),
                ],
            )
        }),
        conflicts: recs.iter().map(ConflictView::from).collect(),
    }))
}

/// One push decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// The decision's identity.
    pub key: String,
    /// The object type.
    pub object: String,
    /// The record.
    pub record_id: String,
    /// When it was decided (RFC 3339).
    pub at: String,
    /// What was decided: fields, base/local/remote values, policy, outcome.
    #[schema(value_type = Object)]
    pub entry: Value,
}

/// A page of a connection's push decisions, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The decisions.
    pub entries: Vec<AuditView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /v1/connections/{id}/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// A connection's push decisions (the conflict-resolution audit), oldest first.
#[utoipa::path(get, path = "/v1/connections/{id}/audit", tag = "changes",
    operation_id = "list_audit",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128), AuditParams),
    responses((status = 200, body = AuditPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn audit(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Path(id) = id?;
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let connection = load(&app, &id).await?.id;
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => {
            let k = pages::decode(AUDIT, c, 3)?;
            let bad =
                || ApiError::InvalidCursor(format!("cursor {c:?} was not issued for this list"));
            if k[0] != connection.as_str() || k[2].is_empty() {
                return Err(bad());
            }
            Some(AuditKey {
                order: k[1].parse().map_err(|_| bad())?,
                tie: k[2].clone(),
            })
        }
    };
    let entries = app
        .store
        .list_audit_page(&AuditQuery {
            connection: connection.clone(),
            after,
            limit,
        })
        .await?;
    Ok(Json(AuditPage {
        next_cursor: pages::next_cursor(&entries, limit, |e| {
            pages::encode(
                AUDIT,
                &[connection.as_str(), &e.key.order.to_string(), &e.key.tie],
            )
        }),
        entries: entries
            .into_iter()
            .map(|e| AuditView {
                key: e.record.key,
                object: e.record.object.to_string(),
                record_id: e.record.external_id.to_string(),
                at: e.record.at.to_rfc3339(),
                entry: e.record.entry,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `take` defaults to every parked field; `value` is per field; both
    /// or neither are refused.
    #[test]
    fn resolve_bodies() {
        let parked = vec!["email".to_owned(), "phone".to_owned()];
        let body = |v: Value| serde_json::from_value::<ResolveBody>(v).unwrap();
        let all = choices(body(serde_json::json!({"take": "theirs"})), &parked).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["phone"], Choice::Take(Side::Remote));
        let one = choices(
            body(serde_json::json!({"take": "ours", "fields": ["email"]})),
            &parked,
        )
        .unwrap();
        assert_eq!(one.keys().collect::<Vec<_>>(), ["email"]);
        let v = choices(
            body(serde_json::json!({"value": {"email": "x@y"}})),
            &parked,
        )
        .unwrap();
        assert_eq!(v["email"], Choice::Value(serde_json::json!("x@y")));
        assert!(choices(body(serde_json::json!({})), &parked).is_err());
        assert!(
            choices(
                body(serde_json::json!({"take": "ours", "value": {"email": 1}})),
                &parked
            )
            .is_err()
        );
        assert!(choices(body(serde_json::json!({"take": "ours"})), &[]).is_err());
    }
}
