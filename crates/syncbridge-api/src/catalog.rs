//! `/v1/providers`: the connector catalog (objects, auth type, what can be
//! pushed), read from the connector registry the workers use.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use syncbridge_core::connector::definition::{AuthDef, ConnectorDef, DeleteStrategy, ObjectDef};
use syncbridge_functions::AppState;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};

/// What can be pushed for an object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushView {
    /// Records can be created at the provider.
    pub create: bool,
    /// Records can be updated.
    pub update: bool,
    /// Records can be deleted.
    pub delete: bool,
}

/// One object of a connector.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObjectView {
    /// Object name.
    pub name: String,
    /// Canonical fields.
    pub fields: Vec<String>,
    /// Pulls ask only for what changed since the last run.
    pub incremental: bool,
    /// How deletions are learned: `none`, `deleted_feed`, `tombstone`, `full_reconciliation`.
    pub deletes: String,
    /// What can be pushed (`null`: the object is read-only).
    pub push: Option<PushView>,
}

/// The signed webhooks a provider sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhooksView {
    /// The signature scheme a connection verifies with unless it names another.
    pub scheme: String,
    /// What the provider's webhooks announce.
    pub events: Vec<String>,
}

/// One rate-limit level of a provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RateLimitView {
    /// Level name.
    pub name: String,
    /// Requests per period.
    pub limit: u64,
    /// Period in seconds.
    pub period_secs: f64,
    /// Whose budget: `app`, `connection` or `endpoint`.
    pub scope: String,
}

/// One connector.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// Name connections use.
    pub name: String,
    /// Human-readable name.
    pub display_name: Option<String>,
    /// `none`, `oauth2`, `api_key` or `basic`.
    pub auth: String,
    /// Objects, by name.
    pub objects: Vec<ObjectView>,
    /// Signed webhooks (`null`: the provider sends none we verify).
    pub webhooks: Option<WebhooksView>,
    /// The limits every request of a connection is held to.
    pub rate_limits: Vec<RateLimitView>,
    /// Rate-limit headers read besides `X-RateLimit-*`, `RateLimit-*` and
    /// `Retry-After` (the provider's own names).
    pub rate_limit_headers: Vec<String>,
    /// What a connection must be given (`settings` of `POST /v1/connections`
    /// and of a connect session), by name.
    pub settings: Vec<SettingView>,
}

/// One connection setting a provider needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingView {
    /// The key in `settings`.
    pub name: String,
    /// What to ask for.
    pub label: String,
    /// Where the customer finds the value.
    pub description: Option<String>,
    /// An example value.
    pub example: Option<String>,
    /// Used when none is given; `null`: required.
    pub default: Option<String>,
}

/// The catalog (a short, fixed list: the shipped and configured connectors).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Catalog {
    /// By name.
    pub providers: Vec<ProviderView>,
}

fn auth_name(a: &AuthDef) -> &'static str {
    match a {
        AuthDef::None => "none",
        AuthDef::Oauth2 { .. } => "oauth2",
        AuthDef::ApiKey { .. } => "api_key",
        AuthDef::Basic => "basic",
    }
}

fn deletes_name(d: &DeleteStrategy) -> &'static str {
    match d {
        DeleteStrategy::None => "none",
        DeleteStrategy::DeletedFeed { .. } => "deleted_feed",
        DeleteStrategy::Tombstone { .. } => "tombstone",
        DeleteStrategy::FullReconciliation => "full_reconciliation",
    }
}

fn object_view(name: &str, o: &ObjectDef) -> ObjectView {
    ObjectView {
        name: name.to_owned(),
        fields: o.fields.keys().cloned().collect(),
        incremental: o.incremental.is_some(),
        deletes: deletes_name(&o.deletes).into(),
        push: o.push.as_ref().map(|p| PushView {
            create: p.create.is_some(),
            update: p.update.is_some(),
            delete: p.delete.is_some(),
        }),
    }
}

/// The catalog entry of a connector (pure).
pub fn provider_view(def: &ConnectorDef) -> ProviderView {
    ProviderView {
        name: def.name.clone(),
        display_name: def.display_name.clone(),
        auth: auth_name(&def.auth).into(),
        objects: def.objects.iter().map(|(n, o)| object_view(n, o)).collect(),
        webhooks: def.webhooks.as_ref().map(|w| WebhooksView {
            scheme: w.scheme.clone(),
            events: w.events.clone(),
        }),
        rate_limits: def
            .rate_limits
            .iter()
            .map(|l| RateLimitView {
                name: l.name.clone(),
                limit: l.limit,
                period_secs: l.period_secs,
                scope: scope_name(&l.scope).into(),
            })
            .collect(),
        rate_limit_headers: [
            &def.rate_limit_headers.limit,
            &def.rate_limit_headers.remaining,
            &def.rate_limit_headers.reset,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect(),
        settings: def
            .settings
            .iter()
            .map(|(name, s)| SettingView {
                name: name.clone(),
                label: s.label.clone(),
                description: s.description.clone(),
                example: s.example.clone(),
                default: s.default.clone(),
            })
            .collect(),
    }
}

fn scope_name(s: &syncbridge_core::ratelimit::LevelScope) -> &'static str {
    use syncbridge_core::ratelimit::LevelScope;
    match s {
        LevelScope::App => "app",
        LevelScope::Connection => "connection",
        LevelScope::Endpoint => "endpoint",
    }
}

/// Every connector.
#[utoipa::path(get, path = "/v1/providers", operation_id = "list_providers", operation_id = "list_providers", tag = "providers",
    responses((status = 200, body = Catalog),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(State(app): State<AppState>) -> Json<Catalog> {
    let mut providers: Vec<ProviderView> = app.registry.iter().map(provider_view).collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    Json(Catalog { providers })
}

/// One connector.
#[utoipa::path(get, path = "/v1/providers/{name}", operation_id = "get_provider", tag = "providers",
    params(("name" = String, Path, description = "Connector name", pattern = "^[A-Za-z0-9._:@-]+$", min_length = 1, max_length = 64)),
    responses((status = 200, body = ProviderView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ProviderView>, ApiError> {
    let Path(name) = name?;
    app.registry
        .get(&name)
        .map(|d| Json(provider_view(&d)))
        .ok_or_else(|| ApiError::NotFound(format!("no connector named {name:?}")))
}
