//! The token endpoint calls: `grant_type=refresh_token` and (the connect
//! flow) `authorization_code` with its PKCE verifier, through the `oauth2`
//! crate, over a reqwest client that never follows redirects (a redirect
//! would resend our client secret wherever it points) and that answers
//! 5xx/429 itself, keeping the HTTP status and `Retry-After`, before
//! `oauth2` would parse them into a status-less error.
//!
//! Nothing here ever puts a response body, token, or secret into an error.

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use syncbridge_core::SecretString;

use crate::client::{AuthStyle, OAuthClient};

/// The reqwest client used for token requests.
///
/// # Errors
/// The TLS backend cannot be initialised.
pub(crate) fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
}

/// A successful refresh.
pub(crate) struct Tokens {
    pub(crate) access_token: SecretString,
    pub(crate) refresh_token: Option<SecretString>,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) scope: Option<String>,
    /// The API base URL the answer named (`base_url_from`), when asked for.
    pub(crate) base_url: Option<String>,
}

/// A token response's fields beyond RFC 6749's, kept only when they are
/// text (Salesforce's `instance_url`); never logged.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct ExtraFields(std::collections::BTreeMap<String, serde_json::Value>);

impl std::fmt::Debug for ExtraFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraFields(***)")
    }
}

impl ExtraTokenFields for ExtraFields {}

/// The `oauth2` client with [`ExtraFields`] in its token responses.
type Client<HasTokenUrl = EndpointNotSet> = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<ExtraFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
>;

/// Whether the provider may have acted on a token request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It certainly did not (no connection, 429, 503, an OAuth error answer).
    NotProcessed,
    /// It may have: the request went out and no answer came back (timeout,
    /// connection lost, a 5xx from a gateway). With rotating refresh tokens
    /// the one we hold may be spent already.
    Unknown,
}

/// How a refresh failed, classified (RFC 6749 §5.2 plus transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// `invalid_grant`: the refresh token is revoked, expired or already used.
    InvalidGrant,
    /// `invalid_client` / `unauthorized_client`: our app credentials.
    InvalidClient(String),
    /// 5xx, 429, timeout, connection failure,
    /// `temporarily_unavailable`, `server_error`: try again later.
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
        what: String,
        outcome: Outcome,
    },
    /// The endpoint does not speak OAuth: a 4xx other than an OAuth error
    /// (404, 405, an HTML page…) or a success that is no token response. The
    /// token URL (connector `auth.token_url` or `SYNCBRIDGE_OAUTH_<P>_TOKEN_URL`)
    /// is wrong; retrying does not help.
    NotOAuth(String),
    /// Any other refusal (`invalid_scope`, `invalid_request`, …): a bug or
    /// misconfiguration, no automatic retry helps.
    Refused(String),
}

/// Transport-level failure inside the `oauth2` HTTP function.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("token endpoint answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("token endpoint answered HTTP {0} without an OAuth error")]
    NotOAuth(u16),
    #[error("token endpoint unreachable: {what}")]
    Send { what: String, outcome: Outcome },
}

/// Whether an error answer is an OAuth error response (RFC 6749 §5.2: a JSON
/// object with a string `error`). Reads only that key; the body may hold
/// anything and is never kept.
fn is_oauth_error(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    serde_json::from_slice::<ErrorBody>(body).is_ok_and(|e| !e.error.is_empty())
}

/// 429 and 503 say the request was not acted on; any other 5xx may come
/// from a gateway that gave up on a request the provider went on to process.
fn status_outcome(status: u16) -> Outcome {
    match status {
        429 | 503 => Outcome::NotProcessed,
        _ => Outcome::Unknown,
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

async fn send(http: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, Transport> {
    let req = reqwest::Request::try_from(req).map_err(|e| Transport::Send {
        what: e.without_url().to_string(),
        outcome: Outcome::NotProcessed,
    })?;
    let resp = http.execute(req).await.map_err(|e| {
        // Only a failed connect proves the provider never saw the request.
        let (what, outcome) = if e.is_connect() {
            ("connection failed", Outcome::NotProcessed)
        } else if e.is_timeout() {
            ("timed out", Outcome::Unknown)
        } else {
            ("request failed", Outcome::Unknown)
        };
        Transport::Send {
            what: what.to_owned(),
            outcome,
        }
    })?;
    let status = resp.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Transport::Status {
            status: status.as_u16(),
            retry_after: retry_after(resp.headers()),
        });
    }
    let mut builder = oauth2::http::Response::builder().status(status.as_u16());
    for (k, v) in resp.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let body = resp.bytes().await.map_err(|_| Transport::Send {
        what: "response body interrupted".to_owned(),
        outcome: Outcome::Unknown,
    })?;
    if !status.is_success() && !is_oauth_error(&body) {
        return Err(Transport::NotOAuth(status.as_u16()));
    }
    builder.body(body.to_vec()).map_err(|_| Transport::Send {
        what: "unreadable response".to_owned(),
        outcome: Outcome::Unknown,
    })
}

/// Where and how a token request goes.
#[derive(Clone, Copy)]
pub(crate) struct Endpoint<'a> {
    pub(crate) client: &'a OAuthClient,
    pub(crate) url: &'a url::Url,
    pub(crate) style: AuthStyle,
}

fn oauth_client(at: Endpoint<'_>) -> Client<EndpointSet> {
    Client::new(ClientId::new(at.client.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            at.client.client_secret.expose().to_owned(),
        ))
        .set_token_uri(TokenUrl::from_url(at.url.clone()))
        .set_auth_type(match at.style {
            AuthStyle::Basic => AuthType::BasicAuth,
            AuthStyle::RequestBody => AuthType::RequestBody,
        })
}

/// Exchanges `refresh_token` at the endpoint; `base_url_from` names the
/// answer's field holding the API base URL, if the connector has one.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    at: Endpoint<'_>,
    refresh_token: &SecretString,
    base_url_from: Option<&str>,
) -> Result<Tokens, TokenError> {
    let oc = oauth_client(at);
    let rt = RefreshToken::new(refresh_token.expose().to_owned());
    let http = http.clone();
    let call = move |req: HttpRequest| send(http.clone(), req);
    classify(
        oc.exchange_refresh_token(&rt).request_async(&call).await,
        base_url_from,
    )
}

/// What an authorization code is exchanged with (RFC 6749 §4.1.3, RFC 7636 §4.5).
pub(crate) struct CodeGrant<'a> {
    pub(crate) code: &'a SecretString,
    pub(crate) redirect_uri: &'a url::Url,
    pub(crate) verifier: Option<&'a SecretString>,
    pub(crate) base_url_from: Option<&'a str>,
}

/// Exchanges an authorization code at the endpoint.
pub(crate) async fn exchange_code(
    http: &reqwest::Client,
    at: Endpoint<'_>,
    grant: CodeGrant<'_>,
) -> Result<Tokens, TokenError> {
    let oc = oauth_client(at).set_redirect_uri(RedirectUrl::from_url(grant.redirect_uri.clone()));
    let mut req = oc.exchange_code(AuthorizationCode::new(grant.code.expose().to_owned()));
    if let Some(v) = grant.verifier {
        req = req.set_pkce_verifier(PkceCodeVerifier::new(v.expose().to_owned()));
    }
    let http = http.clone();
    let call = move |req: HttpRequest| send(http.clone(), req);
    classify(req.request_async(&call).await, grant.base_url_from)
}

type Answer = Result<
    StandardTokenResponse<ExtraFields, BasicTokenType>,
    RequestTokenError<Transport, BasicErrorResponse>,
>;

fn classify(answer: Answer, base_url_from: Option<&str>) -> Result<Tokens, TokenError> {
    match answer {
        Ok(tok) => Ok(Tokens {
            access_token: SecretString::new(tok.access_token().secret().clone()),
            refresh_token: tok
                .refresh_token()
                .map(|r| SecretString::new(r.secret().clone())),
            expires_in: tok.expires_in(),
            scope: tok
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
            base_url: base_url_from
                .and_then(|k| tok.extra_fields().0.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }),
        Err(RequestTokenError::ServerResponse(e)) => Err(match e.error() {
            BasicErrorResponseType::InvalidGrant => TokenError::InvalidGrant,
            BasicErrorResponseType::InvalidClient => {
                TokenError::InvalidClient("invalid_client".to_owned())
            }
            BasicErrorResponseType::UnauthorizedClient => {
                TokenError::InvalidClient("unauthorized_client".to_owned())
            }
            BasicErrorResponseType::Extension(code)
                if matches!(code.as_str(), "temporarily_unavailable" | "server_error") =>
            {
                TokenError::Transient {
                    status: None,
                    retry_after: None,
                    what: code.clone(),
                    outcome: Outcome::NotProcessed,
                }
            }
            other => TokenError::Refused(other.as_ref().chars().take(64).collect()),
        }),
        Err(RequestTokenError::Request(Transport::Status {
            status,
            retry_after,
        })) => Err(TokenError::Transient {
            status: Some(status),
            retry_after,
            what: format!("HTTP {status}"),
            outcome: status_outcome(status),
        }),
        // A bare 401 is how some endpoints refuse our client credentials.
        Err(RequestTokenError::Request(Transport::NotOAuth(401))) => Err(
            TokenError::InvalidClient("HTTP 401 without an OAuth error".to_owned()),
        ),
        Err(RequestTokenError::Request(Transport::NotOAuth(status))) => Err(TokenError::NotOAuth(
            format!("HTTP {status} without an OAuth error: check the token URL"),
        )),
        Err(RequestTokenError::Request(Transport::Send { what, outcome })) => {
            Err(TokenError::Transient {
                status: None,
                retry_after: None,
                what,
                outcome,
            })
        }
        // The body may hold tokens: never keep it.
        Err(RequestTokenError::Parse(..)) | Err(RequestTokenError::Other(_)) => {
            Err(TokenError::NotOAuth(
                "the answer is not an OAuth token response: check the token URL".to_owned(),
            ))
        }
    }
}
