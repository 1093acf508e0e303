//! `changes submit|list|resolve|audit`: the product's local changes, their
//! pushes, parked conflicts and the resolution audit log.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value};
use syncbridge_core::merge::Side;
use syncbridge_core::model::Record;
use syncbridge_core::pipeline::outbound::{
    ChangeOp, Choice, LocalChange, Target, resolve_conflict, submit_change,
};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType};

/// `changes` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChangesCmd {
    /// Record a local change and queue its push (`syncbridge up` pushes it).
    Submit {
        /// Connection id.
        #[arg(long)]
        connection: String,
        /// Object type (`contacts`, …).
        #[arg(long)]
        object: String,
        /// The record to change or delete.
        #[arg(long, conflicts_with = "create")]
        id: Option<String>,
        /// Create a new record under this reference of yours.
        #[arg(long)]
        create: Option<String>,
        /// Set a field: `--set email=a@example.com` (repeatable; values are text).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Clear a field (repeatable).
        #[arg(long = "clear", value_name = "FIELD")]
        clear: Vec<String>,
        /// Delete the record.
        #[arg(long, requires = "id")]
        delete: bool,
    },
    /// Records with pending or parked pushes and parked conflicts.
    List {
        /// One connection only.
        #[arg(long)]
        connection: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a parked conflict: the chosen side's value wins for the field.
    Resolve {
        /// Connection id.
        #[arg(long)]
        connection: String,
        /// Object type.
        #[arg(long)]
        object: String,
        /// Record id.
        #[arg(long)]
        id: String,
        /// The parked field.
        #[arg(long)]
        field: String,
        /// Which value wins.
        #[arg(long, value_enum, required_unless_present = "value")]
        take: Option<Take>,
        /// Or this value wins (JSON, e.g. `'"a@example.com"'` or `42`; text
        /// that is not JSON is taken as a string); it is pushed.
        #[arg(long, conflicts_with = "take")]
        value: Option<String>,
    },
    /// The conflict-resolution audit log, oldest first.
    Audit {
        /// One connection only.
        #[arg(long)]
        connection: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The winning side of a manual resolution.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Take {
    /// Our value (pushed to the provider).
    Local,
    /// The provider's value (applied to our copy).
    Remote,
}

pub(crate) async fn run(data_dir: &Path, cmd: ChangesCmd) -> anyhow::Result<ExitCode> {
    // The embedded store, or a deployment's when the Azure settings are set.
    let app = crate::ops::existing_state(data_dir).await?;
    let deps = app.worker_deps();
    match cmd {
        ChangesCmd::Submit {
            connection,
            object,
            id,
            create,
            set,
            clear,
            delete,
        } => {
            let mut fields = Map::new();
            for s in &set {
                let (k, v) = s
                    .split_once('=')
                    .with_context(|| format!("--set {s}: expected FIELD=VALUE"))?;
                fields.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            for k in clear {
                fields.insert(k, Value::Null);
            }
            let op = match (id, create, delete) {
                (Some(id), None, true) => ChangeOp::Delete {
                    id: ExternalId::parse(id)?,
                },
                (Some(id), None, false) => ChangeOp::Update {
                    id: ExternalId::parse(id)?,
                    fields,
                },
                (None, Some(reference), false) => ChangeOp::Create { reference, fields },
                _ => bail!("pass --id (to update or --delete) or --create REFERENCE"),
            };
            let change = LocalChange {
                connection: ConnectionId::parse(connection)?,
                object: ObjectType::parse(object)?,
                op,
            };
            let done = submit_change(&deps, &*app.queue, &change).await?;
            if done.queued {
                println!(
                    "{}: version {}, push queued",
                    done.external_id, done.version
                );
            } else {
                println!("{}: nothing changed", done.external_id);
            }
        }
        ChangesCmd::List { connection, json } => {
            let c = connection.map(ConnectionId::parse).transpose()?;
            let recs = app.store.list_local_changes(c.as_ref(), 10_000).await?;
            if json {
                let rows: Vec<Value> = recs.iter().map(row).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if recs.is_empty() {
                println!("no local changes pending");
            } else {
                for r in &recs {
                    println!("{}", line(r));
                }
            }
        }
        ChangesCmd::Resolve {
            connection,
            object,
            id,
            field,
            take,
            value,
        } => {
            let target = (connection, object, id);
            resolve(&app, target, &field, take, value).await?;
        }
        ChangesCmd::Audit {
            connection,
            limit,
            json,
        } => {
            let c = connection.map(ConnectionId::parse).transpose()?;
            let entries = app.store.list_audit(c.as_ref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                println!("no decisions recorded");
            } else {
                for e in entries {
                    println!(
                        "{}  {}/{}/{}  {}",
                        e.at.to_rfc3339(),
                        e.connection,
                        e.object,
                        e.external_id,
                        summary(&e.entry)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `changes resolve`: core's `resolve_conflict` for one field.
async fn resolve(
    app: &syncbridge_functions::AppState,
    (connection, object, id): (String, String, String),
    field: &str,
    take: Option<Take>,
    value: Option<String>,
) -> anyhow::Result<()> {
    let (choice, what) = match (take, value) {
        (_, Some(v)) => {
            let v = serde_json::from_str(&v).unwrap_or(Value::String(v));
            let what = format!("value {v} wins");
            (Choice::Value(v), what)
        }
        (Some(Take::Local), None) => (Choice::Take(Side::Local), "Local wins".into()),
        (Some(Take::Remote), None) => (Choice::Take(Side::Remote), "Remote wins".into()),
        (None, None) => bail!("pass --take or --value"),
    };
    resolve_conflict(
        &app.worker_deps(),
        &*app.queue,
        Target {
            connection: &ConnectionId::parse(connection)?,
            object: &ObjectType::parse(object)?,
            id: &ExternalId::parse(id.clone())?,
        },
        &Choice::one(field, choice),
    )
    .await?;
    println!("{id}.{field}: resolved ({what}); the next push applies it");
    Ok(())
}

fn row(r: &Record) -> Value {
    let l = r.local.as_ref();
    serde_json::json!({
        "connection": r.connection,
        "object": r.object,
        "id": r.external_id,
        "version": r.version,
        "deleted": l.is_some_and(|l| l.deleted),
        "push_due_at": l.and_then(|l| l.push_due_at).map(|t| t.to_rfc3339()),
        "attempts": l.map_or(0, |l| l.attempts),
        "last_error": l.and_then(|l| l.last_error.clone()),
        "conflicts": l.map(|l| l.conflicts.clone()).unwrap_or_default(),
    })
}

fn line(r: &Record) -> String {
    let Some(l) = &r.local else {
        return format!("{}/{}/{}: in sync", r.connection, r.object, r.external_id);
    };
    let state = if !l.conflicts.is_empty() {
        let fields: Vec<&str> = l.conflicts.iter().map(|c| c.field.as_str()).collect();
        format!("conflict parked on {}", fields.join(", "))
    } else if let Some(e) = &l.last_error {
        match l.push_due_at {
            Some(t) => format!("retrying at {} ({e})", t.to_rfc3339()),
            None => format!("push parked: {e}"),
        }
    } else if l.deleted {
        "delete pending".into()
    } else {
        "push pending".into()
    };
    format!(
        "{}/{}/{} v{}: {state}",
        r.connection, r.object, r.external_id, r.version
    )
}

fn summary(entry: &Value) -> String {
    let s = |k: &str| entry.get(k).map(|v| v.to_string()).unwrap_or_default();
    match entry.get("field") {
        Some(f) => format!(
            "field {f}: base {} local {} remote {} -> {} by {}",
            s("base"),
            s("local"),
            s("remote"),
            s("chosen"),
            s("policy")
        ),
        None => format!("{} {}", s("decision"), s("outcome")),
    }
}
