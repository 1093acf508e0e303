//! `/_sandbox/*`: the operator's side of the sandbox (no auth, no rate
//! limit, no faults): stats, scripted mutations, reset, runtime config, full
//! record dumps for comparing against a sync store, token minting and
//! revocation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::render::{RecordView, json};
use crate::clock::iso;
use crate::config::ConfigPatch;
use crate::sandbox::Sandbox;
use crate::stats::StatsSnapshot;
use crate::store::ObjectKind;

fn parse_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::validation(format!("invalid body: {e}")))
}

fn kind(object: &str) -> Result<ObjectKind, ApiError> {
    object.parse().map_err(ApiError::from)
}

pub(crate) async fn stats(State(sbx): State<Sandbox>) -> Json<StatsSnapshot> {
    Json(sbx.stats())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MutateBody {
    object: String,
    #[serde(default)]
    update: usize,
    #[serde(default)]
    delete: usize,
    #[serde(default)]
    create: usize,
    seed: Option<u64>,
}

pub(crate) async fn mutate(
    State(sbx): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: MutateBody = parse_body(&body)?;
    let kind = kind(&b.object)?;
    let out = sbx.mutate(kind, b.update, b.delete, b.create, b.seed);
    Ok(Json(json!({
        "object": kind,
        "updated": out.updated,
        "deleted": out.deleted,
        "created": out.created,
        "updatedAt": iso(out.at_ms),
        "updatedAtMs": out.at_ms,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    seed: Option<u64>,
    records: Option<usize>,
}

pub(crate) async fn reset(
    State(sbx): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: ResetBody = parse_body(&body)?;
    // Re-seeding 100k records per object takes a moment; keep it off the reactor.
    let worker = sbx.clone();
    tokio::task::spawn_blocking(move || worker.reset(b.seed, b.records))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                e.to_string(),
            )
        })?;
    let cfg = sbx.config();
    Ok(Json(json!({
        "ok": true,
        "seed": cfg.seed,
        "records_per_object": cfg.records_per_object,
    })))
}

pub(crate) async fn get_config(State(sbx): State<Sandbox>) -> Json<Value> {
    Json(sbx.config().to_public_json())
}

pub(crate) async fn set_config(
    State(sbx): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch: ConfigPatch = parse_body(&body)?;
    let cfg = sbx
        .update_config(patch)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    Ok(Json(cfg.to_public_json()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RecordsQuery {
    #[serde(default)]
    archived: bool,
}

pub(crate) async fn records(
    State(sbx): State<Sandbox>,
    Path(object): Path<String>,
    Query(q): Query<RecordsQuery>,
) -> Result<Response, ApiError> {
    let kind = kind(&object)?;
    let store = sbx.read_store();
    let all: Vec<RecordView<'_>> = store
        .table(kind)
        .all(q.archived)
        .map(|rec| RecordView {
            kind,
            rec,
            props: None,
        })
        .collect();
    Ok(json(StatusCode::OK, &all))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    refresh_token: Option<String>,
    client_id: Option<String>,
}

pub(crate) async fn revoke(
    State(sbx): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: RevokeBody = parse_body(&body)?;
    let revoked = match (b.refresh_token, b.client_id) {
        (Some(rt), None) => sbx.with_tokens(|t| t.revoke_refresh(&rt)),
        (None, Some(client)) => sbx.with_tokens(|t| t.revoke_client(&client)),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of refresh_token or client_id",
            ));
        }
    };
    Ok(Json(json!({ "revoked": revoked })))
}

pub(crate) async fn mint_tokens(State(sbx): State<Sandbox>) -> Response {
    json(StatusCode::OK, &sbx.issue_tokens())
}
