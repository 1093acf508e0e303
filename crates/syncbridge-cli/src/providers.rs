//! `syncbridge providers list|show NAME`: the connector catalog as the
//! product API's `/v1/providers` describes it (`syncbridge_api::catalog`),
//! read from the same registry the handlers load.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use syncbridge_api::catalog::{ProviderView, provider_view};
use syncbridge_core::connector::registry::Registry;

/// Provider subcommands.
#[derive(Debug, Subcommand)]
pub enum ProvidersCmd {
    /// Every connector: name, auth, objects, webhooks.
    List {
        /// Print JSON (the API's catalog document).
        #[arg(long)]
        json: bool,
    },
    /// One connector: its objects (fields, incremental, deletes, writes),
    /// auth, webhooks and rate limits.
    Show {
        /// Connector name (`syncbridge providers list` names them).
        name: String,
        /// Print JSON (the API's provider document).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: ProvidersCmd) -> anyhow::Result<ExitCode> {
    let dir = syncbridge_functions::settings::Settings::connectors_dir_from_env()?;
    let registry = Registry::load(dir.as_deref())?;
    let out = match cmd {
        ProvidersCmd::List { json: true } => {
            serde_json::to_string_pretty(&serde_json::json!({"providers": views(&registry)}))?
        }
        ProvidersCmd::List { json: false } => render_list(&registry),
        ProvidersCmd::Show { name, json } => {
            let def = registry.get(&name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no connector named {name:?}; known: {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                )
            })?;
            let view = provider_view(&def);
            if json {
                serde_json::to_string_pretty(&view)?
            } else {
                render_show(&view)
            }
        }
    };
    println!("{}", out.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn views(registry: &Registry) -> Vec<ProviderView> {
    let mut v: Vec<ProviderView> = registry.iter().map(provider_view).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// One line per connector: name, display name, auth, objects (`*` = writable), webhook scheme.
pub fn render_list(registry: &Registry) -> String {
    let mut out = format!(
        "{:<12} {:<20} {:<8} {:<10} objects (* = writable)\n",
        "name", "display name", "auth", "webhooks"
    );
    for p in views(registry) {
        let objects: Vec<String> = p
            .objects
            .iter()
            .map(|o| format!("{}{}", o.name, if o.push.is_some() { "*" } else { "" }))
            .collect();
        let _ = writeln!(
            out,
            "{:<12} {:<20} {:<8} {:<10} {}",
            p.name,
            p.display_name.as_deref().unwrap_or("-"),
            p.auth,
            p.webhooks.as_ref().map_or("-", |w| w.scheme.as_str()),
            objects.join(", ")
        );
    }
    out
}

/// A connector's page: auth, webhooks, rate limits, then each object.
pub fn render_show(p: &ProviderView) -> String {
    let mut out = format!(
        "{} ({})\nauth: {}\n",
        p.name,
        p.display_name.as_deref().unwrap_or("-"),
        p.auth
    );
    match &p.webhooks {
        Some(w) => {
            let _ = writeln!(out, "webhooks: scheme {}", w.scheme);
            if !w.events.is_empty() {
                let _ = writeln!(out, "  events: {}", w.events.join(", "));
            }
        }
        None => out.push_str("webhooks: none\n"),
    }
    if p.rate_limits.is_empty() {
        out.push_str("rate limits: none configured (429 and Retry-After are honoured)\n");
    } else {
        out.push_str("rate limits:\n");
        for l in &p.rate_limits {
            let _ = writeln!(
                out,
                "  {}: {} per {} s ({})",
                l.name, l.limit, l.period_secs, l.scope
            );
        }
    }
    if !p.rate_limit_headers.is_empty() {
        let _ = writeln!(
            out,
            "rate-limit headers: {}",
            p.rate_limit_headers.join(", ")
        );
    }
    if !p.settings.is_empty() {
        out.push_str("settings (--setting name=value):\n");
        for st in &p.settings {
            let need = st
                .default
                .as_ref()
                .map_or("required".to_string(), |d| format!("default {d}"));
            let _ = writeln!(out, "  {}: {} ({need})", st.name, st.label);
        }
    }
    out.push_str("objects:\n");
    for o in &p.objects {
        let push = match &o.push {
            None => "read-only".to_string(),
            Some(w) => {
                let ops: Vec<&str> = [
                    ("create", w.create),
                    ("update", w.update),
                    ("delete", w.delete),
                ]
                .into_iter()
                .filter_map(|(n, on)| on.then_some(n))
                .collect();
                format!(
                    "push: {}",
                    if ops.is_empty() {
                        "read only".into()
                    } else {
                        ops.join(", ")
                    }
                )
            }
        };
        let _ = writeln!(
            out,
            "  {}: {}, deletes: {}, {}\n    fields: {}",
            o.name,
            if o.incremental {
                "incremental"
            } else {
                "full listing every run"
            },
            o.deletes,
            push,
            o.fields.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list names every shipped connector; a page shows objects, auth,
    /// writes, deletes, webhooks and rate limits.
    #[test]
    fn list_and_show() {
        let r = Registry::builtin();
        let list = render_list(&r);
        for name in r.names() {
            assert!(
                list.lines().any(|l| l.starts_with(name)),
                "{name} in\n{list}"
            );
        }
        let zendesk = render_show(&provider_view(&r.get("zendesk").unwrap()));
        for want in [
            "auth: basic",
            "webhooks: scheme zendesk",
            "account: 200 per 60 s (connection)",
            "rate-limit headers: X-Rate-Limit, X-Rate-Limit-Remaining",
            "tickets: incremental, deletes: tombstone, push: create, update, delete",
            "settings (--setting name=value):\n  subdomain: Subdomain (required)",
        ] {
            assert!(zendesk.contains(want), "{want:?} in\n{zendesk}");
        }
        let stripe = render_show(&provider_view(&r.get("stripe").unwrap()));
        assert!(
            stripe.contains("customers: full listing every run, deletes: full_reconciliation"),
            "{stripe}"
        );
    }
}
