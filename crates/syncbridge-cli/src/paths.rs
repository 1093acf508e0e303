//! Where the app root (host.json, functions/) and the handler binaries are.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use syncbridge_protocol::HostJson;

/// The six handler executables, by function name.
pub(crate) const HANDLERS: [&str; 6] = [
    "sync-scheduler",
    "sync-inbound-worker",
    "sync-outbound-worker",
    "token-refresher",
    "webhook-receiver",
    "sync-api",
];

/// The app root: `--app-root` (which must hold host.json: a wrong path is
/// refused, never replaced by another app), else the current directory if it
/// has host.json, else the source checkout this binary was built from.
pub(crate) fn app_root(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        if !dir.join(HostJson::FILE_NAME).is_file() {
            bail!(
                "--app-root {}: no host.json there (the folder with host.json and functions/)",
                dir.display()
            );
        }
        return Ok(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
    }
    let candidates = [
        std::env::current_dir().unwrap_or_default(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    ];
    for c in candidates {
        if c.join(HostJson::FILE_NAME).is_file() {
            return Ok(c.canonicalize().unwrap_or(c));
        }
    }
    bail!("no host.json found: run from the syncbridge checkout or pass --app-root")
}

/// The handler binaries sit next to this executable (cargo builds them together).
pub(crate) fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the syncbridge executable")?;
    let dir = exe
        .parent()
        .context("the executable has no directory")?
        .to_path_buf();
    // Test binaries live in target/<profile>/deps.
    let dir = if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    };
    for h in HANDLERS {
        if !dir.join(h).is_file() {
            bail!(
                "handler binary `{h}` is missing from {}: build all binaries first (cargo build --release --bins)",
                dir.display()
            );
        }
    }
    Ok(dir)
}
