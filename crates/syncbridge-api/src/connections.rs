//! `/v1/connections`: list, get, create, update, delete, pause, resume, sync
//! now, tasks. [`plan_connection`] (input → connection and tasks) is shared
//! with `syncbridge connections add`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::merge::ConnectionPolicies;
use syncbridge_core::model::{Connection, ConnectionStatus, Direction, Priority, SyncTask};
use syncbridge_core::store::ConnectionQuery;
use syncbridge_core::{ConnectionId, ObjectType, TenantId, Timestamp};
use syncbridge_functions::AppState;
use utoipa::{IntoParams, ToSchema};

use crate::pages;
use crate::policies::read_policies;
use crate::problem::{ApiError, Problem};
use crate::views::{ConnectionPage, ConnectionView, TaskPage, TaskView};

/// Why a connection's input was refused; `field` names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    /// The input field (`id`, `tenant`, `provider`, `objects`, `settings`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn input(field: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        field,
        message: message.into(),
    }
}

/// What a new connection is made from (API body, CLI flags).
#[derive(Debug, Clone, Default)]
pub struct NewConnection {
    /// Connection id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Connector name.
    pub provider: String,
    /// Base URL override.
    pub base_url: Option<String>,
    /// Objects to sync (empty = every object of the connector).
    pub objects: Vec<String>,
    /// Seconds between scheduled pulls (at least 1).
    pub interval_secs: u32,
    /// Connector settings.
    pub settings: BTreeMap<String, String>,
}

/// Validates `n` into an active connection (no webhook, default conflict
/// policies) and its inbound tasks, due at `now`. Pure.
pub fn plan_connection(
    n: NewConnection,
    registry: &Registry,
    now: Timestamp,
) -> Result<(Connection, Vec<SyncTask>), InputError> {
    let id = ConnectionId::parse(n.id).map_err(|e| input("id", e.to_string()))?;
    let tenant = TenantId::parse(n.tenant).map_err(|e| input("tenant", e.to_string()))?;
    let def = registry.get(&n.provider).ok_or_else(|| {
        input(
            "provider",
            format!(
                "no connector named {:?} (known: {})",
                n.provider,
                registry.names().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let settings = def
        .connection_settings(&n.settings)
        .map_err(|e| input("settings", e.to_string()))?;
    let objects: Vec<String> = if n.objects.is_empty() {
        def.objects.keys().cloned().collect()
    } else {
        n.objects
    };
    let mut tasks = Vec::new();
    for o in objects {
        if def.object(&o).is_none() {
            return Err(input(
                "objects",
                format!("connector {} has no object {o:?}", def.name),
            ));
        }
        let object = ObjectType::parse(o).map_err(|e| input("objects", e.to_string()))?;
        tasks.push(SyncTask {
            id: SyncTask::id_for(&id, &object, Direction::Inbound),
            tenant: tenant.clone(),
            connection: id.clone(),
            object,
            direction: Direction::Inbound,
            priority: Priority::Scheduled,
            interval_secs: n.interval_secs.max(1),
            next_run_at: now,
            cursor: None,
            lease: None,
            last_run_at: None,
            stalled: false,
            version: 0,
            generation: SyncTask::new_generation(),
        });
    }
    let conn = Connection {
        id,
        tenant,
        provider: def.name.clone(),
        status: ConnectionStatus::Active,
        base_url: n.base_url,
        webhook: None,
        settings,
        conflicts: Default::default(),
        created_at: now,
    };
    Ok((conn, tasks))
}

pub(crate) fn connection_id(text: &str) -> Result<ConnectionId, ApiError> {
    ConnectionId::parse(text).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

// ---- optimistic concurrency: ETag / If-Match -------------------------------

/// A connection as a response: the view, with its `ETag`.
pub type Tagged = ([(header::HeaderName, HeaderValue); 1], Json<ConnectionView>);

fn tagged(c: &Connection, tag: &str) -> Tagged {
    let etag = HeaderValue::from_str(&format!("\"{tag}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    ([(header::ETAG, etag)], Json(ConnectionView::from(c)))
}

/// The versions an `If-Match` header accepts (pure): `None` without the
/// header or for `*` (any current version); else the tags of its
/// comma-separated entity tags (`"t"`, weak `W/"t"` compared as strong,
/// as the tags are exact versions). A value that is not an entity-tag
/// list is refused.
pub fn if_match(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::InvalidRequest("If-Match: a list of quoted entity tags, or *".into());
    let text = v.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    text.split(',')
        .map(|t| {
            let t = t.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            t.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .filter(|t| !t.contains('"'))
                .map(str::to_owned)
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Refuses a stale `If-Match` (412, nothing written) (pure).
fn check_version(want: Option<&[String]>, tag: &str, id: &ConnectionId) -> Result<(), ApiError> {
    match want {
        Some(tags) if !tags.iter().any(|t| t == tag) => Err(ApiError::PreconditionFailed(format!(
            "connection {id} is at version \"{tag}\", not the one If-Match names; read it again"
        ))),
        _ => Ok(()),
    }
}

/// The connection `id` with its version tag, or 404; 412 when `want` (the
/// request's `If-Match`) names another version.
async fn load_tagged(
    app: &AppState,
    id: &str,
    want: Option<&[String]>,
) -> Result<(Connection, String), ApiError> {
    let id = connection_id(id)?;
    let (conn, tag) = app
        .store
        .get_connection_tagged(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection {id}")))?;
    check_version(want, &tag, &id)?;
    Ok((conn, tag))
}

/// Writes `conn`: under `tag` when the request named a version (412 if
/// another write came between), as before (last writer wins) when not.
/// Returns the new tag.
async fn save(
    app: &AppState,
    conn: &Connection,
    tag: &str,
    want: Option<&[String]>,
) -> Result<String, ApiError> {
    if want.is_some() {
        return match app.store.replace_connection(conn, tag).await {
            Err(syncbridge_core::StoreError::Conflict(_)) => {
                Err(ApiError::PreconditionFailed(format!(
                    "connection {} changed while this request ran; read it again",
                    conn.id
                )))
            }
            other => Ok(other?),
        };
    }
    app.store.put_connection(conn).await?;
    let (_, tag) = app
        .store
        .get_connection_tagged(&conn.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection {}", conn.id)))?;
    Ok(tag)
}

/// The connection `id`, or 404.
pub(crate) async fn load(app: &AppState, id: &str) -> Result<Connection, ApiError> {
    let id = connection_id(id)?;
    app.store
        .get_connection(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection {id}")))
}

/// Filters and paging of `GET /v1/connections`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this tenant's.
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub tenant: Option<String>,
    /// Only connections in this state (`active`, `needs_reauth`, `disabled`).
    #[param(pattern = "^(active|needs_reauth|disabled)$")]
    pub status: Option<String>,
    /// Only this connector's.
    #[param(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 64)]
    pub provider: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

const CONNECTIONS: &str = "connections";

/// Lists connections by id.
#[utoipa::path(get, path = "/v1/connections", operation_id = "list_connections", operation_id = "list_connections", tag = "connections",
    params(ListParams),
    responses((status = 200, body = ConnectionPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(app): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ConnectionPage>, ApiError> {
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let query = ConnectionQuery {
        tenant: p
            .tenant
            .map(TenantId::parse)
            .transpose()
            .map_err(|e| ApiError::InvalidRequest(format!("tenant: {e}")))?,
        status: p
            .status
            .map(|s| {
                ConnectionStatus::parse(&s).ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "status {s:?}: must be active, needs_reauth or disabled"
                    ))
                })
            })
            .transpose()?,
        provider: p.provider,
        after: p
            .cursor
            .map(|c| pages::decode(CONNECTIONS, &c, 1))
            .transpose()?
            .map(|k| connection_id(&k[0]))
            .transpose()?,
        limit,
    };
    let found = app.store.list_connections_page(&query).await?;
    Ok(Json(ConnectionPage {
        next_cursor: pages::next_cursor(&found, limit, |c| {
            pages::encode(CONNECTIONS, &[c.id.as_str()])
        }),
        connections: found.iter().map(ConnectionView::from).collect(),
    }))
}

/// One connection, with its version as `ETag` (send it back as `If-Match`
/// to update only that version).
#[utoipa::path(get, path = "/v1/connections/{id}", operation_id = "get_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)),
    responses((status = 200, body = ConnectionView,
            headers(("ETag" = String, description = "The connection's version"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Tagged, ApiError> {
    let Path(id) = id?;
    let (conn, tag) = load_tagged(&app, &id, None).await?;
    Ok(tagged(&conn, &tag))
}

/// Body of `POST /v1/connections`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Connection id: letters, digits and `-_.:@`, at most 128.
    #[schema(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub id: String,
    /// Owning tenant.
    #[schema(pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)]
    pub tenant: String,
    /// Connector name (see `GET /v1/providers`).
    pub provider: String,
    /// Provider base URL override.
    pub base_url: Option<String>,
    /// Objects to sync (default: all the connector defines).
    pub objects: Option<Vec<String>>,
    /// Seconds between scheduled pulls (default 300).
    #[schema(minimum = 1)]
    pub interval_secs: Option<u32>,
    /// Connector settings (e.g. `owner`, `repo`).
    pub settings: Option<BTreeMap<String, String>>,
}

/// Creates a connection and its inbound tasks (first run due at once).
#[utoipa::path(post, path = "/v1/connections", operation_id = "create_connection", operation_id = "create_connection", tag = "connections",
    request_body = CreateBody,
    responses((status = 201, body = ConnectionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(app): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let Json(b) = body?;
    let now = app.clock.now();
    let (conn, tasks) = plan_connection(
        NewConnection {
            id: b.id,
            tenant: b.tenant,
            provider: b.provider,
            base_url: b.base_url,
            objects: b.objects.unwrap_or_default(),
            interval_secs: b.interval_secs.unwrap_or(300),
            settings: b.settings.unwrap_or_default(),
        },
        &app.registry,
        now,
    )
    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if app.store.get_connection(&conn.id).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "connection {} exists; update or delete it",
            conn.id
        )));
    }
    // Tasks first: a connection is listed only once it can run.
    for t in &tasks {
        app.store.put_task(t).await?;
    }
    app.store.put_connection(&conn).await?;
    tracing::info!(connection = %conn.id, tasks = tasks.len(), "connection created over the api");
    app.events
        .emit(syncbridge_core::events::Event::connection_created(&conn))
        .await;
    Ok((StatusCode::CREATED, Json(ConnectionView::from(&conn))))
}

/// Body of `PATCH /v1/connections/{id}`: the fields to change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// New provider base URL.
    pub base_url: Option<String>,
    /// New connector settings (replace the old ones).
    pub settings: Option<BTreeMap<String, String>>,
    /// New interval for every task of the connection.
    #[schema(minimum = 1)]
    pub interval_secs: Option<u32>,
    /// New conflict policies: the whole document, replacing the old one
    /// (`{}` = `manual` everywhere). Objects must be the connector's, field
    /// names fields it maps; otherwise 422 `invalid-conflict-policies`
    /// naming the entry, and nothing is changed. The next push of a record
    /// resolves under them.
    #[schema(value_type = Option<ConnectionPolicies>)]
    pub conflicts: Option<serde_json::Value>,
}

/// Changes a connection's base URL, settings, task interval or conflict
/// policies. With `If-Match`, only the version it names (412
/// `precondition-failed` otherwise, nothing changed).
//
// The policies are a field of the connection rather than a sub-resource:
// they are part of the document its `ETag` versions, so one `If-Match`
// guards them like every other field, and `GET` shows them with the rest.
#[utoipa::path(patch, path = "/v1/connections/{id}", operation_id = "update_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128),
        ("If-Match" = Option<String>, Header, description = "Only this version (the ETag of a GET), else 412; `*` any")),
    request_body = UpdateBody,
    responses((status = 200, body = ConnectionView,
            headers(("ETag" = String, description = "The connection's new version"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Tagged, ApiError> {
    let Path(id) = id?;
    let want = if_match(&headers)?;
    let Json(b) = body?;
    if b.interval_secs == Some(0) {
        return Err(ApiError::InvalidRequest(
            "interval_secs: must be at least 1".into(),
        ));
    }
    let (mut conn, tag) = load_tagged(&app, &id, want.as_deref()).await?;
    // Checked before anything is written: a refused change changes nothing.
    let settings = b
        .settings
        .map(|s| checked_settings(&app.registry, &conn.provider, &s))
        .transpose()?;
    let conflicts = b
        .conflicts
        .map(|v| {
            let def = app.registry.get(&conn.provider).ok_or_else(|| {
                ApiError::Conflict(format!(
                    "connector {} is not installed: its objects cannot be checked",
                    conn.provider
                ))
            })?;
            read_policies(v, &def)
        })
        .transpose()?;
    if let Some(secs) = b.interval_secs {
        let tasks = app.store.list_tasks(Some(&conn.id)).await?;
        refuse_while_running(&tasks, app.clock.now(), "an interval change")?;
        for mut t in tasks {
            t.interval_secs = secs;
            t.version += 1;
            app.store.put_task(&t).await?;
        }
    }
    if let Some(url) = b.base_url {
        conn.base_url = Some(url);
    }
    if let Some(settings) = settings {
        conn.settings = settings;
    }
    if let Some(conflicts) = conflicts {
        conn.conflicts = conflicts;
    }
    let tag = save(&app, &conn, &tag, want.as_deref()).await?;
    Ok(tagged(&conn, &tag))
}

/// `given` checked against the settings `provider` declares, defaults filled.
fn checked_settings(
    registry: &Registry,
    provider: &str,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let def = registry.get(provider).ok_or_else(|| {
        ApiError::InvalidRequest(format!("settings: no connector named {provider:?}"))
    })?;
    def.connection_settings(given)
        .map_err(|e| ApiError::InvalidRequest(format!("settings: {e}")))
}

/// Deletes a connection with its tasks, runs and records.
#[utoipa::path(delete, path = "/v1/connections/{id}", operation_id = "delete_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128)),
    responses((status = 204, description = "Deleted"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    let id = connection_id(&id)?;
    if !app.store.delete_connection(&id).await? {
        return Err(ApiError::NotFound(format!("no connection {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The status a pause or resume moves to (pure): pausing an active
/// connection disables it; resuming a disabled one activates it; a
/// connection that needs re-authorization stays so until a person fixes
/// its credentials.
fn next_status(
    now: ConnectionStatus,
    want: ConnectionStatus,
) -> Result<ConnectionStatus, ApiError> {
    match (now, want) {
        (ConnectionStatus::NeedsReauth, ConnectionStatus::Active) => Err(ApiError::Conflict(
            "the connection needs re-authorization; resume does not fix its credentials".into(),
        )),
        (_, want) => Ok(want),
    }
}

async fn set_status(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    status: ConnectionStatus,
) -> Result<Tagged, ApiError> {
    let want = if_match(headers)?;
    let (mut conn, tag) = load_tagged(app, id, want.as_deref()).await?;
    conn.status = next_status(conn.status, status)?;
    let tag = save(app, &conn, &tag, want.as_deref()).await?;
    Ok(tagged(&conn, &tag))
}

/// Pauses a connection: nothing calls its provider until it is resumed.
#[utoipa::path(post, path = "/v1/connections/{id}/pause", operation_id = "pause_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128),
        ("If-Match" = Option<String>, Header, description = "Only this version (the ETag of a GET), else 412; `*` any")),
    responses((status = 200, body = ConnectionView,
            headers(("ETag" = String, description = "The connection's new version"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn pause(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Tagged, ApiError> {
    let Path(id) = id?;
    set_status(&app, &id, &headers, ConnectionStatus::Disabled).await
}

/// Resumes a paused connection.
#[utoipa::path(post, path = "/v1/connections/{id}/resume", operation_id = "resume_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128),
        ("If-Match" = Option<String>, Header, description = "Only this version (the ETag of a GET), else 412; `*` any")),
    responses((status = 200, body = ConnectionView,
            headers(("ETag" = String, description = "The connection's new version"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn resume(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Tagged, ApiError> {
    let Path(id) = id?;
    set_status(&app, &id, &headers, ConnectionStatus::Active).await
}

/// Body of `POST /v1/connections/{id}/sync` (optional).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    /// Only these objects (default: every inbound object).
    pub objects: Option<Vec<String>>,
    /// Start these objects over from the beginning (their cursors are reset).
    #[serde(default)]
    pub full_resync: bool,
}

/// What a sync request did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncAccepted {
    /// The connection.
    pub connection_id: String,
    /// The tasks asked to run, at interactive priority.
    pub tasks: Vec<String>,
    /// Whether their cursors were reset first.
    pub full_resync: bool,
}

fn sync_body(bytes: &[u8]) -> Result<SyncBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(SyncBody::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidRequest(format!("request body: {e}")))
}

/// Asks for a run of the connection's inbound tasks now (the scheduler's
/// interactive priority: its next tick leases them first). With
/// `full_resync`, their cursors are reset first; a task whose run is in
/// flight refuses that (409) and nothing is changed. A full resync with
/// `If-Match` happens only while the connection is at that version (412
/// otherwise).
#[utoipa::path(post, path = "/v1/connections/{id}/sync", operation_id = "sync_connection", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128),
        ("If-Match" = Option<String>, Header, description = "Only this version (the ETag of a GET), else 412; `*` any")),
    request_body(content = Option<SyncBody>, description = "Optional: objects and full resync"),
    responses((status = 202, body = SyncAccepted),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn sync_now(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SyncAccepted>), ApiError> {
    let Path(id) = id?;
    let want = if_match(&headers)?;
    let b = sync_body(&body)?;
    // If-Match guards the full resync (the write that loses data); a plain
    // "sync now" changes nothing a version describes.
    let want = want.filter(|_| b.full_resync);
    let (conn, _) = load_tagged(&app, &id, want.as_deref()).await?;
    let now = app.clock.now();
    let tasks: Vec<SyncTask> = app
        .store
        .list_tasks(Some(&conn.id))
        .await?
        .into_iter()
        .filter(|t| t.direction == Direction::Inbound)
        .collect();
    let chosen = choose_tasks(tasks, b.objects.as_deref(), &conn.id)?;
    if b.full_resync {
        refuse_while_running(&chosen, now, "a full resync")?;
    }
    for t in &chosen {
        if b.full_resync {
            let mut reset = t.clone();
            reset.cursor = None;
            reset.lease = None;
            reset.version += 1;
            app.store.put_task(&reset).await?;
        }
        app.store
            .request_run(&t.id, Priority::Interactive, now)
            .await?;
    }
    tracing::info!(connection = %conn.id, tasks = chosen.len(), full_resync = b.full_resync, "sync requested over the api");
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncAccepted {
            connection_id: conn.id.to_string(),
            tasks: chosen.iter().map(|t| t.id.to_string()).collect(),
            full_resync: b.full_resync,
        }),
    ))
}

/// Rewriting a task (`put_task`) while a run holds its lease would take the
/// lease away mid-run: such changes wait until the run has finished (pure).
fn refuse_while_running(tasks: &[SyncTask], now: Timestamp, what: &str) -> Result<(), ApiError> {
    match tasks
        .iter()
        .find(|t| t.lease.as_ref().is_some_and(|l| l.until > now))
    {
        Some(busy) => Err(ApiError::Conflict(format!(
            "task {} is running; ask for {what} when it has finished",
            busy.id
        ))),
        None => Ok(()),
    }
}

/// The tasks of `objects` (all when `None`); an object without a task is refused (pure).
fn choose_tasks(
    tasks: Vec<SyncTask>,
    objects: Option<&[String]>,
    conn: &ConnectionId,
) -> Result<Vec<SyncTask>, ApiError> {
    let Some(objects) = objects else {
        return Ok(tasks);
    };
    if objects.is_empty() {
        return Err(ApiError::InvalidRequest(
            "objects: name at least one object, or leave it out for all".into(),
        ));
    }
    if let Some(missing) = objects
        .iter()
        .find(|o| !tasks.iter().any(|t| t.object.as_str() == o.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "objects: connection {conn} syncs no object {missing:?}"
        )));
    }
    Ok(tasks
        .into_iter()
        .filter(|t| objects.iter().any(|o| o == t.object.as_str()))
        .collect())
}

/// Paging of a connection's tasks.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskParams {
    /// From a previous page's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

const TASKS: &str = "tasks";

/// A connection's tasks with their cursor, next run and last result.
#[utoipa::path(get, path = "/v1/connections/{id}/tasks", operation_id = "list_tasks", tag = "connections",
    params(("id" = String, Path, description = "Connection id", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 128), TaskParams),
    responses((status = 200, body = TaskPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn tasks(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<TaskParams>, QueryRejection>,
) -> Result<Json<TaskPage>, ApiError> {
    let Path(id) = id?;
    let Query(p) = q?;
    let limit = pages::limit(p.limit)?;
    let after = p
        .cursor
        .map(|c| pages::decode(TASKS, &c, 1))
        .transpose()?
        .map(|mut k| k.remove(0));
    let conn = load(&app, &id).await?;
    // A connection has one task per object and direction: a short list,
    // read whole and paged here.
    let page: Vec<SyncTask> = app
        .store
        .list_tasks(Some(&conn.id))
        .await?
        .into_iter()
        .filter(|t| after.as_deref().is_none_or(|a| t.id.as_str() > a))
        .take(limit)
        .collect();
    let now = app.clock.now();
    let mut views = Vec::with_capacity(page.len());
    for t in &page {
        let last = app.store.list_runs(Some(&t.id), 1).await?;
        views.push(TaskView::new(t, now, last.first()));
    }
    Ok(Json(TaskPage {
        next_cursor: pages::next_cursor(&page, limit, |t| pages::encode(TASKS, &[t.id.as_str()])),
        tasks: views,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resume never clears a needed re-authorization; pause always works.
    #[test]
    fn pause_and_resume_transitions() {
        use ConnectionStatus::*;
        assert_eq!(next_status(Active, Disabled).unwrap(), Disabled);
        assert_eq!(next_status(Disabled, Active).unwrap(), Active);
        assert_eq!(next_status(NeedsReauth, Disabled).unwrap(), Disabled);
        assert!(next_status(NeedsReauth, Active).is_err());
    }

    /// Unknown providers and objects are refused with the field named.
    #[test]
    fn plan_refuses_unknown_provider_and_object() {
        let reg = Registry::builtin();
        let base = NewConnection {
            id: "c1".into(),
            tenant: "t".into(),
            provider: "sandbox".into(),
            interval_secs: 60,
            ..Default::default()
        };
        let (conn, tasks) = plan_connection(base.clone(), &reg, Timestamp::EPOCH).unwrap();
        assert_eq!(conn.provider, "sandbox");
        assert!(!tasks.is_empty());
        let bad = NewConnection {
            provider: "nope".into(),
            ..base.clone()
        };
        assert_eq!(
            plan_connection(bad, &reg, Timestamp::EPOCH)
                .unwrap_err()
                .field,
            "provider"
        );
        let bad = NewConnection {
            objects: vec!["widgets".into()],
            ..base.clone()
        };
        assert_eq!(
            plan_connection(bad, &reg, Timestamp::EPOCH)
                .unwrap_err()
                .field,
            "objects"
        );
        let bad = NewConnection {
            id: "has space".into(),
            ..base
        };
        assert_eq!(
            plan_connection(bad, &reg, Timestamp::EPOCH)
                .unwrap_err()
                .field,
            "id"
        );
    }
}
