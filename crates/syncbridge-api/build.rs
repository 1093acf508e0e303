//! Embeds the dashboard's built files (`ui/dist`, made by `scripts/ui`) in
//! the binary: writes `$OUT_DIR/dashboard_assets.rs`, a table of
//! `(path, bytes)` with `include_bytes!`. A missing build embeds nothing
//! (the handler then serves a page saying how to build it); the folder is
//! created empty so cargo can watch it and embed a later build.
// cargo's build environment (`OUT_DIR`), not settings.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo::rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    files(&dist, &mut found);
    found.sort();
    let mut code = String::from(
        "/// The dashboard's files by path under `ui/dist`.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for f in &found {
        let rel = f.strip_prefix(&dist).expect("under dist");
        let rel = rel.to_string_lossy().replace('\\', "/");
        let abs = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        let _ = writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("dashboard_assets.rs");
    std::fs::write(out, code).expect("write dashboard_assets.rs");
}
