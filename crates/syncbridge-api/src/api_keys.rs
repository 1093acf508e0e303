//! `/v1/api-keys` (admin scope): list, create, revoke, through [`crate::keys`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use syncbridge_core::apikeys::ApiScope;
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::keys::{self, KeyError};
use crate::problem::{ApiError, Problem};
use crate::views::ApiKeyView;

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::BadName => ApiError::InvalidRequest(format!("name: {e}")),
            KeyError::NoSuchKey(_) => ApiError::NotFound(e.to_string()),
            KeyError::Store(s) => s.into(),
        }
    }
}

/// Every key (never the key text).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// By id.
    pub keys: Vec<ApiKeyView>,
}

/// Lists the API keys, revoked ones too (a short list: people make them).
#[utoipa::path(get, path = "/v1/api-keys", operation_id = "list_api_keys", operation_id = "list_api_keys", tag = "api-keys",
    responses((status = 200, body = KeyList),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(State(app): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let keys = keys::list(app.store.as_ref()).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(ApiKeyView::from).collect(),
    }))
}

/// Body of `POST /v1/api-keys`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A name for people.
    pub name: String,
    /// What it may do: `read` ⊂ `write` ⊂ `admin`.
    pub scope: ApiScope,
}

/// A new key: the only time its text is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key (`sbk_…`); store it now, it cannot be shown again.
    pub key: String,
    /// Its record.
    #[serde(flatten)]
    pub record: ApiKeyView,
}

/// Makes a key.
#[utoipa::path(post, path = "/v1/api-keys", operation_id = "create_api_key", operation_id = "create_api_key", tag = "api-keys",
    request_body = CreateKey,
    responses((status = 201, body = CreatedKey),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(app): State<AppState>,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let Json(b) = body?;
    let made = keys::create(app.store.as_ref(), &b.name, b.scope, app.clock.now()).await?;
    tracing::info!(key = %made.record.id, scope = made.record.scope.as_str(), "api key created over the api");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: made.key.expose().to_owned(),
            record: ApiKeyView::from(&made.record),
        }),
    ))
}

/// Revokes a key (it authenticates nothing from now on).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys",
    params(("id" = String, Path, description = "Key id (key_…)", pattern = "^key_[0-9a-f]+$", max_length = 128)),
    responses((status = 204, description = "Revoked"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    keys::revoke(app.store.as_ref(), &id, app.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
