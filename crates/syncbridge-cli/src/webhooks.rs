//! `syncbridge webhooks verify`: checks one request offline with the same code
//! the WebhookReceiver runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use syncbridge_signatures::{Request, WebhookSecret};

/// Webhook subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// Verify one request's signature: prints `valid` (exit 0) or why not (exit 1).
    Verify(VerifyArgs),
}

/// `webhooks verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Scheme name (github, stripe, slack, standard-webhooks, …) or a JSON `hmac` configuration.
    #[arg(long)]
    pub scheme: String,
    /// Secret; repeat to try several (rotation).
    #[arg(long, required = true)]
    pub secret: Vec<String>,
    /// Header `Name: value`; repeatable.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// File holding the raw body.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Full URL the provider called (schemes that sign the URL).
    #[arg(long, default_value = "https://localhost/")]
    pub url: String,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// Current time as unix seconds (default: now).
    #[arg(long)]
    pub now: Option<i64>,
    /// Accepted clock skew in seconds.
    #[arg(long, default_value_t = 300)]
    pub tolerance: i64,
    /// Form parameter `k=v` (form-signing schemes such as twilio); repeatable.
    #[arg(long = "param")]
    pub params: Vec<String>,
}

pub(crate) fn run(cmd: WebhooksCmd) -> anyhow::Result<ExitCode> {
    let WebhooksCmd::Verify(a) = cmd;
    let scheme = syncbridge_functions::webhook::parse_scheme(&a.scheme)
        .map_err(|e| anyhow::anyhow!("--scheme: {e}"))?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut body = match &a.body_file {
        Some(p) => std::fs::read(p).with_context(|| format!("--body-file {}", p.display()))?,
        None => Vec::new(),
    };
    if !a.params.is_empty() {
        let mut form = url_form(&a.params)?;
        if !body.is_empty() {
            form.insert(0, b'&');
            body.extend_from_slice(&form);
        } else {
            body = form;
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
    }
    let secrets: Vec<WebhookSecret> = a.secret.iter().map(WebhookSecret::new).collect();
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let req = Request {
        method: &a.method,
        url: &a.url,
        headers: &headers,
        body: &body,
    };
    match syncbridge_signatures::verify(&scheme, &secrets, &req, now, a.tolerance) {
        Ok(v) => {
            println!("valid");
            if let Some(id) = v.event_id {
                println!("event id: {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn url_form(params: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut pairs = Vec::new();
    for p in params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--param {p:?}: expected k=v"))?;
        pairs.push((k.to_string(), v.to_string()));
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        ser.append_pair(k, v);
    }
    Ok(ser.finish().into_bytes())
}
