//! The connector definition format, parsed with serde and then validated so
//! every mistake is reported with the path of the field at fault.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A definition that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector definition {source_name}: {field}: {message}")]
pub struct DefinitionError {
    /// File name or connector name.
    pub source_name: String,
    /// Dotted path of the field at fault (`objects.contacts.pagination.param`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A provider definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDef {
    /// Name connections refer to (`sandbox`, `hubspot`, `github`).
    pub name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Default base URL; a connection may override it. `{setting}` is
    /// filled from the connection's settings (`https://{subdomain}.zendesk.com`).
    pub base_url: String,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: AuthDef,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The provider's rate limits, checked together before every request
    /// (pulls, pushes, webhook follow-ups and token refreshes share them).
    #[serde(default)]
    pub rate_limits: Vec<crate::ratelimit::RateLimitLevel>,
    /// Whether the provider's rate-limit headers describe the whole app
    /// (`true`, e.g. a per-app window) or the connection's account (default).
    #[serde(default)]
    pub rate_limit_headers_app_wide: bool,
    /// The provider's rate-limit headers when they are not named
    /// `X-RateLimit-*` (or the IETF `RateLimit-*`): read as that family.
    #[serde(default)]
    pub rate_limit_headers: RateLimitHeaders,
    /// The signed webhooks the provider sends, when it sends any.
    #[serde(default)]
    pub webhooks: Option<WebhookDef>,
    /// Synced object types by name.
    pub objects: BTreeMap<String, ObjectDef>,
    /// The connection settings its `{name}` placeholders need, each with
    /// what to ask the customer ([`super::settings`]).
    #[serde(default)]
    pub settings: BTreeMap<String, super::settings::SettingDef>,
}

/// A provider's own names for the `X-RateLimit-Limit`, `-Remaining` and
/// `-Reset` headers (case-insensitive); each one set is read as its
/// `X-RateLimit-*` counterpart. `Retry-After` is always read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitHeaders {
    /// The window's size (Zendesk: `X-Rate-Limit`).
    #[serde(default)]
    pub limit: Option<String>,
    /// What is left of it (Zendesk: `X-Rate-Limit-Remaining`).
    #[serde(default)]
    pub remaining: Option<String>,
    /// When it resets: delta seconds, epoch seconds or epoch milliseconds.
    #[serde(default)]
    pub reset: Option<String>,
}

impl RateLimitHeaders {
    /// The `x-ratelimit-*` name a provider header (lowercase) stands for.
    pub fn canonical(&self, lower_name: &str) -> Option<&'static str> {
        let is = |h: &Option<String>| {
            h.as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(lower_name))
        };
        if is(&self.limit) {
            Some("x-ratelimit-limit")
        } else if is(&self.remaining) {
            Some("x-ratelimit-remaining")
        } else if is(&self.reset) {
            Some("x-ratelimit-reset")
        } else {
            None
        }
    }
}

/// The provider's webhooks: the signature scheme a connection's receiver
/// verifies with unless the connection names another (a name the
/// webhook receiver knows: `stripe`, `intercom`, `zendesk`, …).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDef {
    /// Signature scheme name.
    pub scheme: String,
    /// What the provider's webhooks announce (informational, shown by
    /// `syncbridge providers show`).
    #[serde(default)]
    pub events: Vec<String>,
}

/// Authentication of provider requests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthDef {
    /// No authentication.
    #[default]
    None,
    /// OAuth 2.0 bearer tokens, refreshed at `token_url`; the connect flow
    /// (authorization code grant) sends customers to `authorize_url`.
    Oauth2 {
        /// Token endpoint (absolute, or a path relative to the base URL).
        token_url: String,
        /// Authorization endpoint of the connect flow (absolute, or a path
        /// relative to the connection's base URL); none = no connect flow.
        #[serde(default)]
        authorize_url: Option<String>,
        /// Scopes requested (the `scope` parameter, space-separated).
        #[serde(default)]
        scopes: Vec<String>,
        /// Scopes the customer may decline (HubSpot's `optional_scope`).
        #[serde(default)]
        optional_scopes: Vec<String>,
        /// The authorize parameter carrying `optional_scopes`.
        #[serde(default)]
        optional_scopes_param: Option<String>,
        /// Extra authorize parameters (e.g. `access_type = "offline"`).
        #[serde(default)]
        authorize_params: BTreeMap<String, String>,
        /// Proof Key for Code Exchange (RFC 7636) on the connect flow.
        #[serde(default)]
        pkce: Pkce,
        /// How the token endpoint wants our client credentials (the
        /// client's `SYNCBRIDGE_OAUTH_<P>_AUTH_STYLE` overrides it).
        #[serde(default)]
        token_auth: Option<TokenAuth>,
        /// Field of the token response naming the API base URL for this
        /// credential (Salesforce `instance_url`): stored sealed with the
        /// tokens and used instead of `base_url`.
        #[serde(default)]
        base_url_from: Option<String>,
    },
    /// A static API key.
    ApiKey {
        /// Header carrying the key (default `Authorization`).
        #[serde(default)]
        header: Option<String>,
        /// Text before the key in the header (e.g. `Bearer `, `token `).
        #[serde(default)]
        prefix: Option<String>,
        /// Query parameter instead of a header.
        #[serde(default)]
        query: Option<String>,
    },
    /// HTTP Basic with a user name and password.
    Basic,
}

/// PKCE on the connect flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pkce {
    /// `code_challenge_method=S256` with a fresh verifier per session.
    #[default]
    S256,
    /// The provider does not support it.
    None,
}

/// How a token endpoint authenticates the client (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// HTTP Basic with the client id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// One synced object type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectDef {
    /// The list request.
    pub list: Endpoint,
    /// Dotted path to the array of records in the response (`""` = the body is the array).
    pub records: String,
    /// Dotted path to a record's id.
    pub id: String,
    /// Dotted path to a record's last-modified time (RFC 3339 or epoch ms).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// How record times are written, when not RFC 3339 text or epoch
    /// milliseconds (`epoch_s`: Intercom's and Stripe's Unix seconds). A time
    /// that does not read in this format fails its page.
    #[serde(default)]
    pub updated_at_format: Option<TimeFormat>,
    /// How to get the next page.
    #[serde(default)]
    pub pagination: Pagination,
    /// How to ask for changes since a time.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// The provider stops one listing after a number of results (HubSpot's
    /// search: 10,000): restart it from the last `updated_at` seen instead
    /// of paging past the cap.
    #[serde(default)]
    pub keyset: Option<Keyset>,
    /// How the provider reports deletions.
    #[serde(default)]
    pub deletes: DeleteStrategy,
    /// Refuse a run's deletes when they exceed this share of the object's records.
    #[serde(default = "default_max_delete_share")]
    pub max_delete_share: f64,
    /// Canonical field name → dotted path in the provider record.
    pub fields: BTreeMap<String, String>,
    /// How to write records back (outbound sync); absent = read-only object.
    #[serde(default)]
    pub push: Option<PushDef>,
}

/// The write side of an object. Paths carry `{id}` for the record's id (and
/// `{name}` for connection settings, as everywhere). Request bodies are built
/// from the object's `fields` mapping: a canonical field mapped to
/// `properties.email` is sent as `{"properties": {"email": …}}`, and a
/// cleared field is sent as `clear_as` says (JSON `null` by default; an
/// empty value in a form body). `body_root` nests the whole body under a key
/// (Zendesk's `{"ticket": …}`, Asana's `{"data": …}`), `create_fields` adds
/// fixed fields to a create (Jira's project and issue type), `body_format`
/// chooses JSON or a form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushDef {
    /// Reads one record (the fresh read before every push).
    pub get: Endpoint,
    /// Creates a record (POST); its answer is the created record.
    #[serde(default)]
    pub create: Option<Endpoint>,
    /// Changes some fields (PATCH); its answer is the updated record.
    #[serde(default)]
    pub update: Option<Endpoint>,
    /// Deletes (or archives) a record.
    #[serde(default)]
    pub delete: Option<Endpoint>,
    /// Dotted path to the record in a read/create/update answer (`""` = the body is the record).
    #[serde(default)]
    pub record: String,
    /// Dotted path to the new record's id in a create answer that does not
    /// carry the record (Salesforce answers `{"id": …, "success": true}`):
    /// the record is then read through `get`.
    #[serde(default)]
    pub created_id: Option<String>,
    /// Header carrying the idempotency key of every write (e.g. `Idempotency-Key`);
    /// absent when the provider has none (creates are then at-least-once).
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// Dotted path the write body is nested under (`ticket`, `data`); absent
    /// = the fields are the body.
    #[serde(default)]
    pub body_root: Option<String>,
    /// Extra fields of every create, by dotted path inside the body (below
    /// `body_root`); string values fill `{setting}` from the connection's
    /// settings (`"fields.project.key" = "{project}"`).
    #[serde(default)]
    pub create_fields: BTreeMap<String, serde_json::Value>,
    /// How write bodies are encoded: `json` (default) or `form`
    /// (`application/x-www-form-urlencoded` with `a[b]=v` nesting, Stripe's).
    #[serde(default)]
    pub body_format: BodyFormat,
    /// How a cleared field is written (HubSpot clears a property with `""`
    /// and rejects `null`).
    #[serde(default)]
    pub clear_as: ClearAs,
}

/// Encodings of write bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`; nested keys as `a[b]`, array
    /// items as `a[0]`, `null` as an empty value (Stripe clears a field so).
    Form,
}

/// How a write clears a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearAs {
    /// JSON `null`.
    #[default]
    Null,
    /// The empty string; an empty string read from the provider is then a
    /// cleared field (`null`) too, so a value cleared on either side reads
    /// the same.
    EmptyString,
}

fn default_max_delete_share() -> f64 {
    0.1
}

/// An HTTP request template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path below the base URL; `{name}` is replaced by the connection setting `name`.
    pub path: String,
    /// Query parameters. A value is a template: `{{since}}` is replaced by
    /// the incremental bound (in the object's `incremental.format`), and a
    /// section `{{#since}}…{{/since}}` is kept only when there is a bound, so
    /// one query-language template serves a first full listing and the
    /// incremental ones (SOQL: `SELECT Id FROM Contact{{#since}} WHERE
    /// SystemModstamp >= {{since}}{{/since}} ORDER BY SystemModstamp`). A
    /// parameter holding `{{since}}` outside a section is dropped when there
    /// is no bound.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON body template; string values `{{since}}` and `{{cursor}}` are
    /// replaced. With no value, a key holding the placeholder is removed, and
    /// so is an array element containing one (so a filter on `{{since}}`
    /// disappears from a first, full listing instead of being sent empty).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

fn default_method() -> String {
    "GET".into()
}

/// Paging styles.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One page only.
    #[default]
    None,
    /// A cursor in the response body, sent back as a query parameter (or as
    /// `{{cursor}}` in the body template).
    BodyCursor {
        /// Dotted path to the next cursor (absent or null = last page).
        cursor_path: String,
        /// Query parameter carrying it (omit when the body template has `{{cursor}}`).
        #[serde(default)]
        param: Option<String>,
        /// Dotted path to a flag that is `true` while more pages follow
        /// (`has_more`); when set, `true` without a cursor fails the page.
        #[serde(default)]
        more_path: Option<String>,
        /// Dotted path to a flag that is `true` on the last page of a cursor
        /// stream (Zendesk's incremental export: `end_of_stream`, whose
        /// `after_cursor` is present on every page).
        #[serde(default)]
        end_path: Option<String>,
    },
    /// The id of the page's last record, sent as a query parameter, while a
    /// flag says more follow (Stripe: `starting_after` and `has_more`).
    LastId {
        /// Query parameter carrying the id (`starting_after`).
        param: String,
        /// Dotted path to the id inside a record (default `id`).
        #[serde(default = "default_id_path")]
        id_path: String,
        /// Dotted path to the `true`-while-more flag in the body (`has_more`).
        more_path: String,
    },
    /// RFC 8288 `Link: <…>; rel="next"` header (GitHub).
    LinkHeader,
    /// The next page's URL in the body: relative to the base URL (Salesforce
    /// `nextRecordsUrl`, `/services/data/v60.0/query/01g…-2000`) or absolute
    /// (Microsoft Graph `@odata.nextLink`). It must be on the base URL's
    /// host: a link to another host is refused, never followed.
    NextUrl {
        /// Dotted path to the next page's URL (absent or null = last page).
        next_path: String,
        /// Dotted path to the delta link on a listing's last page (Graph
        /// `@odata.deltaLink`). It is kept as the cursor and the next pass
        /// starts there (only changes since); a 410 Gone answer to it (the
        /// provider expired the token) starts a full listing that also
        /// reconciles deletions.
        #[serde(default)]
        delta_path: Option<String>,
        /// Whether a page with no records that names a next page is
        /// followed (`"follow"`) or fails (`"refuse"`, the default, since
        /// following it could loop). Graph's delta query documents such
        /// pages: "there are more pages of data to retrieve in the session,
        /// even if the current response contains an empty result".
        #[serde(default)]
        empty_pages: EmptyPages,
    },
    /// Offset and limit parameters.
    Offset {
        /// Offset parameter name.
        param: String,
        /// Page size (must match the limit the list query asks for).
        page_size: u32,
    },
    /// Page-number parameter.
    PageNumber {
        /// Page parameter name.
        param: String,
        /// First page number.
        #[serde(default = "one")]
        start: u32,
    },
}

/// What an empty page that names a next page means (`next_url` paging).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyPages {
    /// The page fails with a clear error (the default).
    #[default]
    Refuse,
    /// The next page is read (a URL equal to the current one still ends the
    /// listing, so this cannot loop on one page).
    Follow,
}

fn one() -> u32 {
    1
}

fn default_id_path() -> String {
    "id".into()
}

/// Change filtering.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Query parameter carrying the lower bound (omit when the body template has `{{since}}`).
    #[serde(default)]
    pub param: Option<String>,
    /// How the bound is written.
    #[serde(default)]
    pub format: TimeFormat,
    /// Seconds subtracted from the high-water mark, so records committed by
    /// the provider with a slightly older timestamp are not missed.
    #[serde(default = "default_lookback")]
    pub lookback_secs: u64,
    /// The bound sent on a full listing, for providers whose list request
    /// needs one (Intercom's search: `updated_at > 0`); absent = no bound
    /// (the parameter, or the `{{since}}` key, is left out).
    #[serde(default)]
    pub initial: Option<String>,
}

/// Keyset restarts of a capped listing. The listing must be sorted by
/// `updated_at` ascending and filter on it through `incremental`: when a
/// listing has returned `cap` records and has more, the pass goes on with a
/// new listing from the greatest `updated_at` seen (inclusive; records at
/// that instant come again and are skipped as unchanged). More than `cap`
/// records sharing one instant cannot be passed and fail the run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyset {
    /// Results one listing returns at most.
    pub cap: u64,
}

fn default_lookback() -> u64 {
    60
}

/// Time encodings in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2026-11-28T12:00:00.000Z`.
    #[default]
    Rfc3339,
    /// Milliseconds since the epoch.
    EpochMs,
    /// Seconds since the epoch.
    EpochS,
    /// `2026-11-28 12:00` in UTC, minutes only (JQL's date literal; Jira
    /// reads it in the user's time zone, so give it a lookback of a day).
    DateMinutes,
    /// `2026-11-28T12:00:00Z`: RFC 3339 in whole seconds (rounded down), UTC
    /// — a SOQL datetime literal, and what Salesforce's deleted window takes.
    Rfc3339Seconds,
}

/// How deletions are learned.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
// Parsed once per definition and shared: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum DeleteStrategy {
    /// The provider never reports deletions.
    #[default]
    None,
    /// A listing of deleted records: the list endpoint (or `list`, when the
    /// object lists through another one, e.g. HubSpot's search) with extra
    /// query parameters (e.g. HubSpot `archived=true`).
    DeletedFeed {
        /// Query parameters added to the list request.
        #[serde(default)]
        query: BTreeMap<String, String>,
        /// The endpoint listing deleted records, when it is not `list`.
        #[serde(default)]
        list: Option<Endpoint>,
        /// Its paging, when it differs from the object's.
        #[serde(default)]
        pagination: Option<Box<Pagination>>,
        /// The feed's own change filter, when the provider has one (the
        /// sandbox filters its archived list by `updatedAfter`, the archive
        /// time): each run then lists only what was deleted since the start
        /// of the last complete listing of the feed, minus `lookback_secs`.
        /// Without it every run reads the whole feed (HubSpot's archived list
        /// has no such filter).
        #[serde(default)]
        incremental: Option<Incremental>,
        /// Dotted path to the feed's record array, when it is not `records`
        /// (Salesforce: `deletedRecords`).
        #[serde(default)]
        records: Option<String>,
        /// Dotted path to a feed record's id, when it is not `id`
        /// (Salesforce: `id` in the feed, `Id` in records).
        #[serde(default)]
        id: Option<String>,
        /// The feed lists deletions in a time window that must be given
        /// (Salesforce `/sobjects/X/deleted/?start=&end=`).
        #[serde(default)]
        window: Option<DeleteWindow>,
    },
    /// Deleted records stay in the listing with a flag.
    Tombstone {
        /// Dotted path to the flag.
        field: String,
        /// The value meaning deleted.
        value: serde_json::Value,
    },
    /// Every full pass lists all live ids; local ids not seen are deleted.
    FullReconciliation,
}

/// A deleted feed that takes a time window. Each run asks from where the
/// last one's coverage ended (the provider's `covered_path`, else the time
/// that listing was asked for), minus `lookback_secs`, to now; the first run
/// from the start of its pass. So nothing deleted between two runs is
/// missed, even when the provider's data lags behind the clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteWindow {
    /// Query parameter carrying the window's start.
    pub start: String,
    /// Query parameter carrying the window's end.
    pub end: String,
    /// How both are written.
    #[serde(default)]
    pub format: TimeFormat,
    /// Dotted path to the time up to which the answer is complete
    /// (Salesforce `latestDateCovered`); an answer without it is refused.
    #[serde(default)]
    pub covered_path: Option<String>,
    /// Seconds subtracted from the start (default 60).
    #[serde(default = "default_lookback")]
    pub lookback_secs: u64,
}

impl ConnectorDef {
    /// Parses and validates TOML text; `source_name` labels errors.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, DefinitionError> {
        let def: ConnectorDef = toml::from_str(text).map_err(|e| DefinitionError {
            source_name: source_name.into(),
            field: e
                .span()
                .map(|s| field_at(text, s.start))
                .unwrap_or_else(|| "(document)".into()),
            message: e.message().trim().to_string(),
        })?;
        def.validate(source_name)?;
        // Every placeholder a definition uses must be a declared setting, so
        // a connection can be checked for it before its first request.
        let doc: toml::Value = toml::from_str(text).map_err(|e| DefinitionError {
            source_name: source_name.into(),
            field: "(document)".into(),
            message: e.message().trim().to_string(),
        })?;
        if let Some(name) = super::settings::placeholders(&doc)
            .into_iter()
            .find(|n| !def.settings.contains_key(n))
        {
            return Err(DefinitionError {
                source_name: source_name.into(),
                field: format!("settings.{name}"),
                message: format!("`{{{name}}}` is used but not declared under [settings.{name}]"),
            });
        }
        Ok(def)
    }

    /// A connection's settings checked against the declared ones, with
    /// their defaults filled in.
    pub fn connection_settings(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, super::settings::SettingsError> {
        super::settings::resolve(&self.name, &self.settings, given)
    }

    /// Checks what serde cannot: URLs, paths, dotted paths, consistency.
    pub fn validate(&self, source_name: &str) -> Result<(), DefinitionError> {
        let err = |field: String, message: &str| DefinitionError {
            source_name: source_name.into(),
            field,
            message: message.into(),
        };
        if self.name.trim().is_empty() {
            return Err(err("name".into(), "must not be empty"));
        }
        match url::Url::parse(&without_placeholders(&self.base_url)) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(err("base_url".into(), "must be an absolute http(s) URL")),
        }
        if let AuthDef::Oauth2 {
            token_url,
            authorize_url,
            optional_scopes,
            optional_scopes_param,
            ..
        } = &self.auth
        {
            if token_url.is_empty() {
                return Err(err("auth.token_url".into(), "must not be empty"));
            }
            if authorize_url.as_deref().is_some_and(|u| !is_url_or_path(u)) {
                return Err(err(
                    "auth.authorize_url".into(),
                    "must be an absolute http(s) URL or a path starting with /",
                ));
            }
            if !optional_scopes.is_empty() && optional_scopes_param.is_none() {
                return Err(err(
                    "auth.optional_scopes_param".into(),
                    "set the authorize parameter that carries optional_scopes",
                ));
            }
        }
        if self.objects.is_empty() {
            return Err(err("objects".into(), "at least one object is required"));
        }
        for (name, o) in &self.objects {
            check_object(name, o).map_err(|(field, message)| err(field, message))?;
        }
        Ok(())
    }

    /// One object's definition.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects.get(name)
    }
}

/// An absolute http(s) URL, or a path relative to the base URL.
fn is_url_or_path(u: &str) -> bool {
    u.starts_with('/') || url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// `text` with every `{name}` placeholder replaced by `x`, to check the
/// shape of a templated URL.
fn without_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push('x');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A failed check: the field's dotted path and what is wrong with it.
type Invalid = (String, &'static str);

/// The checks of one object's definition ([`ConnectorDef::validate`]).
fn check_object(name: &str, o: &ObjectDef) -> Result<(), Invalid> {
    let f = |leaf: &str| format!("objects.{name}.{leaf}");
    if crate::ids::ObjectType::parse(name).is_err() {
        return Err((
            format!("objects.{name}"),
            "object names use letters, digits and -_.:@",
        ));
    }
    if !o.list.path.starts_with('/') {
        return Err((f("list.path"), "must start with `/`"));
    }
    if !matches!(o.list.method.as_str(), "GET" | "POST") {
        return Err((f("list.method"), "must be GET or POST"));
    }
    if o.id.is_empty() {
        return Err((f("id"), "must not be empty"));
    }
    if o.fields.is_empty() {
        return Err((f("fields"), "map at least one field"));
    }
    if !(0.0..=1.0).contains(&o.max_delete_share) {
        return Err((f("max_delete_share"), "must be between 0 and 1"));
    }
    let body_has = |ph: &str| {
        o.list
            .body
            .as_ref()
            .is_some_and(|b| b.to_string().contains(ph))
    };
    for (k, v) in &o.list.query {
        check_template(v).map_err(|m| (f(&format!("list.query.{k}")), m))?;
    }
    if let Some(inc) = &o.incremental {
        if o.updated_at.is_none() {
            return Err((f("updated_at"), "required when `incremental` is set"));
        }
        if inc.param.is_none() && !body_has("{{since}}") && !query_has(&o.list, "{{since}}") {
            return Err((
                f("incremental.param"),
                "set a query parameter or use {{since}} in list.body or list.query",
            ));
        }
    }
    if let Some(k) = &o.keyset {
        if k.cap == 0 {
            return Err((f("keyset.cap"), "must be at least 1"));
        }
        if o.incremental.is_none() {
            return Err((
                f("keyset"),
                "needs `incremental`: a restart lists from the last updated_at seen",
            ));
        }
    }
    check_pagination(&f, &o.pagination, &body_has)?;
    if let DeleteStrategy::Tombstone { field, .. } = &o.deletes
        && field.is_empty()
    {
        return Err((f("deletes.field"), "must not be empty"));
    }
    if let DeleteStrategy::DeletedFeed {
        incremental: Some(inc),
        ..
    } = &o.deletes
        && inc.param.as_deref().is_none_or(str::is_empty)
    {
        return Err((
            f("deletes.incremental.param"),
            "name the query parameter the feed filters on",
        ));
    }
    if let DeleteStrategy::DeletedFeed {
        window: Some(w),
        incremental,
        ..
    } = &o.deletes
    {
        if w.start.is_empty() || w.end.is_empty() {
            return Err((f("deletes.window"), "name the start and end parameters"));
        }
        if incremental.is_some() {
            return Err((
                f("deletes.window"),
                "a feed filters by `incremental` or by `window`, not both",
            ));
        }
    }
    if let Some(p) = &o.push {
        check_push(&f, p)?;
    }
    Ok(())
}

/// Whether one of `ep`'s query templates holds `placeholder`.
fn query_has(ep: &Endpoint, placeholder: &str) -> bool {
    ep.query.values().any(|v| v.contains(placeholder))
}

/// The checks of a query template: `{{#since}}` sections are closed, not
/// nested, and the only placeholders are `{{since}}` and the section marks.
pub(crate) fn check_template(t: &str) -> Result<(), &'static str> {
    let mut open = false;
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i..];
        let end = after.find("}}").ok_or("`{{` without `}}`")?;
        match &after[..end + 2] {
            "{{since}}" => {}
            "{{#since}}" if !open => open = true,
            "{{/since}}" if open => open = false,
            "{{#since}}" => return Err("`{{#since}}` sections do not nest"),
            "{{/since}}" => return Err("`{{/since}}` without `{{#since}}`"),
            _ => return Err("the only placeholders are {{since}}, {{#since}} and {{/since}}"),
        }
        rest = &after[end + 2..];
    }
    if open {
        return Err("`{{#since}}` without `{{/since}}`");
    }
    Ok(())
}

/// The checks of an object's paging; `f` names a field of the object,
/// `body_has` tells whether the list body template holds a placeholder.
fn check_pagination(
    f: &dyn Fn(&str) -> String,
    p: &Pagination,
    body_has: &dyn Fn(&str) -> bool,
) -> Result<(), Invalid> {
    match p {
        Pagination::BodyCursor {
            cursor_path, param, ..
        } => {
            if cursor_path.is_empty() {
                return Err((f("pagination.cursor_path"), "must not be empty"));
            }
            if param.is_none() && !body_has("{{cursor}}") {
                return Err((
                    f("pagination.param"),
                    "set a query parameter or use {{cursor}} in list.body",
                ));
            }
        }
        Pagination::LastId {
            param, more_path, ..
        } if param.is_empty() || more_path.is_empty() => {
            return Err((f("pagination"), "`last_id` needs `param` and `more_path`"));
        }
        Pagination::NextUrl {
            next_path,
            delta_path,
            ..
        } => {
            if next_path.is_empty() {
                return Err((f("pagination.next_path"), "must not be empty"));
            }
            if delta_path.as_deref().is_some_and(str::is_empty) {
                return Err((f("pagination.delta_path"), "must not be empty"));
            }
        }
        Pagination::Offset { page_size: 0, .. } => {
            return Err((f("pagination.page_size"), "must be at least 1"));
        }
        _ => {}
    }
    Ok(())
}

/// The checks of an object's push endpoints; `f` names a field of the object.
fn check_push(f: &dyn Fn(&str) -> String, p: &PushDef) -> Result<(), Invalid> {
    let eps = [
        ("get", Some(&p.get), true),
        ("create", p.create.as_ref(), false),
        ("update", p.update.as_ref(), true),
        ("delete", p.delete.as_ref(), true),
    ];
    for (leaf, ep, needs_id) in eps {
        let Some(ep) = ep else { continue };
        if !ep.path.starts_with('/') {
            return Err((f(&format!("push.{leaf}.path")), "must start with `/`"));
        }
        if needs_id && !ep.path.contains("{id}") {
            return Err((f(&format!("push.{leaf}.path")), "must contain `{id}`"));
        }
        if !matches!(
            ep.method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
        ) {
            return Err((
                f(&format!("push.{leaf}.method")),
                "must be GET, POST, PUT, PATCH or DELETE",
            ));
        }
    }
    Ok(())
}

/// The dotted key path of the TOML table entry containing byte `offset`, as
/// well as a line-based approximation can tell: the last `[table]` header
/// above it plus the key on its line.
fn field_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(|t| t.trim_matches(['[', ']']).to_string())
        })
        .unwrap_or_default();
    let key = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table.is_empty(), key) {
        (true, Some(k)) => k.to_string(),
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => "(document)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
base_url = "http://127.0.0.1:9"
[objects.contacts]
list = { path = "/contacts", query = { limit = "100" } }
records = "results"
id = "id"
updated_at = "updatedAt"
pagination = { type = "body_cursor", cursor_path = "paging.next.after", param = "after" }
incremental = { param = "updatedAfter" }
deletes = { strategy = "deleted_feed", query = { archived = "true" } }
fields = { email = "properties.email" }
"#;

    /// A well-formed definition parses with defaults filled in.
    #[test]
    fn parses_good_definition() {
        let d = ConnectorDef::from_toml("demo.toml", GOOD).unwrap();
        let o = d.object("contacts").unwrap();
        assert_eq!(o.list.method, "GET");
        assert_eq!(o.incremental.as_ref().unwrap().lookback_secs, 60);
        assert!((o.max_delete_share - 0.1).abs() < f64::EPSILON);
    }

    /// A placeholder declared as a setting loads, and the definition then
    /// checks a connection's settings against it.
    #[test]
    fn declared_settings_load_and_check_connections() {
        let text = GOOD.replacen(
            "path = \"/contacts\"",
            "path = \"/{workspace}/contacts\"",
            1,
        ) + "[settings.workspace]\nlabel = \"Workspace\"\n";
        let d = ConnectorDef::from_toml("demo.toml", &text).unwrap();
        assert_eq!(d.settings["workspace"].label, "Workspace");
        let none = BTreeMap::new();
        assert_eq!(
            d.connection_settings(&none).unwrap_err().to_string(),
            "connector demo needs the settings workspace"
        );
        let given = BTreeMap::from([("workspace".to_string(), "w1".to_string())]);
        assert_eq!(d.connection_settings(&given).unwrap(), given);
    }

    /// Each kind of mistake is reported with the field at fault.
    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "base_url = \"http://127.0.0.1:9\"",
                "base_url = \"ftp:/x\"",
                "base_url",
            ),
            (
                "records = \"results\"",
                "records = \"results\"\ncolour = \"red\"",
                "objects.contacts.colour",
            ),
            (
                "list = { path = \"/contacts\"",
                "list = { path = \"contacts\"",
                "objects.contacts.list.path",
            ),
            (
                "updated_at = \"updatedAt\"\n",
                "",
                "objects.contacts.updated_at",
            ),
            (
                ", param = \"after\" }",
                " }",
                "objects.contacts.pagination.param",
            ),
            (
                "fields = { email = \"properties.email\" }",
                "fields = {}",
                "objects.contacts.fields",
            ),
            ("id = \"id\"", "id = 7", "objects.contacts.id"),
            (
                "path = \"/contacts\"",
                "path = \"/{workspace}/contacts\"",
                "settings.workspace",
            ),
        ];
        for (from, to, field) in cases {
            let text = GOOD.replacen(from, to, 1);
            let e = ConnectorDef::from_toml("demo.toml", &text).unwrap_err();
            assert_eq!(&e.field, field, "case {to:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with("connector definition demo.toml: "),
                "{e}"
            );
        }
    }
}
