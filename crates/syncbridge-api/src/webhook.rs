//! `/v1/connections/{id}/webhook`: a connection's webhook settings — its
//! signature scheme and signing secrets — and secret rotation.
//!
//! Secrets are sealed at rest as `connections add` seals them
//! (`syncbridge_credentials::seal_webhook_secrets`) and never answered back,
//! except a secret generated here, once, in the answer that made it. A
//! rotation puts a new secret first and keeps the newest previous one
//! active (the receiver accepts a delivery signed by any active secret), so
//! the provider can be switched over without losing a delivery; dropping
//! the previous secret ends the rotation.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use syncbridge_core::SecretString;
use syncbridge_core::model::{Connection, WebhookSettings};
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::connections::load;
use crate::problem::{ApiError, Problem};

/// Secrets kept active at once during a rotation (the new one and the one before).
pub const MAX_ACTIVE: usize = 2;

/// A connection's webhook settings (never a secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Whether the connection accepts webhooks.
    pub configured: bool,
    /// Signature scheme (`github`, `stripe`, `standard-webhooks`, …).
    pub scheme: Option<String>,
    /// How many secrets verify deliveries now (2 during a rotation).
    pub active_secrets: usize,
    /// Where the provider posts (under the host's address).
    pub url_path: String,
}

/// Settings just changed, with the secret generated for them (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecretView {
    /// The settings now.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The new secret: give it to the provider now; it cannot be shown again.
    pub secret: Option<String>,
}

/// Body of `PUT /v1/connections/{id}/webhook`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWebhook {
    /// Signature scheme.
    pub scheme: String,
    /// The provider's signing secret; omitted: one is generated and answered once.
    pub secret: Option<String>,
}

fn url_path(c: &Connection) -> String {
    format!("/api/webhooks/{}", c.id)
}

async fn view(app: &AppState, c: &Connection) -> Result<WebhookView, ApiError> {
    let active = match &c.webhook {
        Some(w) => secrets(app, c, w).await?.len(),
        None => 0,
    };
    Ok(WebhookView {
        configured: c.webhook.is_some(),
        scheme: c.webhook.as_ref().map(|w| w.scheme.clone()),
        active_secrets: active,
        url_path: url_path(c),
    })
}

async fn secrets(
    app: &AppState,
    c: &Connection,
    w: &WebhookSettings,
) -> Result<Vec<SecretString>, ApiError> {
    syncbridge_credentials::open_webhook_secrets(
        app.credential_manager.sealer(),
        &c.id,
        &w.sealed_secrets,
    )
    .await
    .map_err(|e| ApiError::Internal(format!("the webhook secrets do not open: {e}")))
}

/// A new random secret every scheme accepts (`whsec_` + base64 of 32 bytes,
/// the Standard Webhooks form; other schemes take any text).
fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Checks that `scheme` parses and can verify with every secret.
fn check(scheme: &str, secrets: &[SecretString]) -> Result<(), ApiError> {
    let parsed = syncbridge_functions::webhook::parse_scheme(scheme)
        .map_err(|e| ApiError::InvalidRequest(format!("scheme: {e}")))?;
    for s in secrets {
        syncbridge_signatures::check_secret(
            &parsed,
            &syncbridge_signatures::WebhookSecret::new(s.expose()),
        )
        .map_err(|e| ApiError::InvalidRequest(format!("secret: {e} for scheme {scheme}")))?;
    }
    Ok(())
}

/// Seals `list` into `c` and writes it.
async fn save(
    app: &AppState,
    mut c: Connection,
    scheme: String,
    list: &[SecretString],
) -> Result<Connection, ApiError> {
    let sealed =
        syncbridge_credentials::seal_webhook_secrets(app.credential_manager.sealer(), &c.id, list)
            .await
            .map_err(|e| ApiError::Unavailable(format!("sealing the webhook secrets: {e}")))?;
    c.webhook = Some(WebhookSettings {
        scheme,
        sealed_secrets: sealed,
    });
    app.store.put_connection(&c).await?;
    Ok(c)
}

/// The webhook settings of a connection.
#[utoipa::path(get, path = "/v1/connections/{id}/webhook", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, body = WebhookView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let Path(id) = id?;
    let c = load(&app, &id).await?;
    Ok(Json(view(&app, &c).await?))
}

/// Sets the scheme and one secret (given, or generated and answered once);
/// any earlier secret stops verifying.
#[utoipa::path(put, path = "/v1/connections/{id}/webhook", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    request_body = SetWebhook,
    responses((status = 200, body = WebhookSecretView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn set(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<SetWebhook>, JsonRejection>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let Path(id) = id?;
    let Json(b) = body?;
    let c = load(&app, &id).await?;
    let generated = b.secret.is_none().then(generate);
    let secret = SecretString::new(b.secret.or_else(|| generated.clone()).unwrap_or_default());
    let list = vec![secret];
    check(&b.scheme, &list)?;
    let c = save(&app, c, b.scheme, &list).await?;
    tracing::info!(connection = %c.id, "webhook settings set over the api");
    Ok(Json(WebhookSecretView {
        webhook: view(&app, &c).await?,
        secret: generated,
    }))
}

/// Rotates: a new secret (answered once) verifies from now on, and so does
/// the newest previous one until `DELETE …/webhook/previous`.
#[utoipa::path(post, path = "/v1/connections/{id}/webhook/rotate", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, body = WebhookSecretView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let Path(id) = id?;
    let c = load(&app, &id).await?;
    let Some(w) = c.webhook.clone() else {
        return Err(ApiError::Conflict(format!(
            "connection {} has no webhook settings; set them first (PUT …/webhook)",
            c.id
        )));
    };
    let old = secrets(&app, &c, &w).await?;
    let fresh = generate();
    let mut list = vec![SecretString::new(fresh.clone())];
    list.extend(old.into_iter().take(MAX_ACTIVE - 1));
    check(&w.scheme, &list)?;
    let c = save(&app, c, w.scheme, &list).await?;
    tracing::info!(connection = %c.id, "webhook secret rotated over the api");
    Ok(Json(WebhookSecretView {
        webhook: view(&app, &c).await?,
        secret: Some(fresh),
    }))
}

/// Ends a rotation: only the newest secret verifies from now on.
#[utoipa::path(delete, path = "/v1/connections/{id}/webhook/previous", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, body = WebhookView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn drop_previous(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let Path(id) = id?;
    let c = load(&app, &id).await?;
    let Some(w) = c.webhook.clone() else {
        return Err(ApiError::Conflict(format!(
            "connection {} has no webhook settings",
            c.id
        )));
    };
    let mut list = secrets(&app, &c, &w).await?;
    list.truncate(1);
    let c = save(&app, c, w.scheme, &list).await?;
    Ok(Json(view(&app, &c).await?))
}

/// Stops accepting webhooks for the connection (its deliveries are refused).
#[utoipa::path(delete, path = "/v1/connections/{id}/webhook", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 204, description = "Webhook settings removed"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn remove(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    let mut c = load(&app, &id).await?;
    c.webhook = None;
    app.store.put_connection(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}
