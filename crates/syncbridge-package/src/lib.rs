//! Packaging: one deployable zip per Function App.
//!
//! In Azure a Function App runs exactly one custom-handler executable, so each
//! syncbridge function ships as its own app. For function `SyncInboundWorker`
//! (folder `functions/SyncInboundWorker/`) and binary `sync-inbound-worker`,
//! `sync-inbound-worker.zip` holds, at its root (= `/home/site/wwwroot`):
//!
//! ```text
//! host.json                           the repo's host.json, with
//!                                     customHandler.description.defaultExecutablePath
//!                                     = "sync-inbound-worker"
//! sync-inbound-worker                 the Linux binary, mode 0755
//! SyncInboundWorker/function.json     that function's bindings, byte for byte
//! ```
//!
//! `cargo xtask package` (crates/xtask) builds the binaries and calls
//! [`package_all`].
//!
//! The mapping function → binary is the local host's: PascalCase → kebab-case
//! ([`executable_name`]). Zips are written with Unix permissions in their
//! central directory, so the execute bit survives deployment (`docs/functions-host.md` §6).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// host.json is not JSON or has no object to put the executable in.
    #[error("host.json: {0}")]
    HostJson(String),
    /// The zip writer failed.
    #[error("writing {path}: {message}")]
    Zip {
        /// The zip.
        path: PathBuf,
        /// The error.
        message: String,
    },
    /// No function folders were found.
    #[error("no <Function>/function.json under {0}")]
    NoFunctions(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The binary that serves a function: `SyncInboundWorker` → `sync-inbound-worker`.
pub fn executable_name(function: &str) -> String {
    let mut out = String::new();
    for (i, ch) in function.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `host_json` with `customHandler.description.defaultExecutablePath` set to
/// `executable` (the sections are created if missing; everything else is kept).
pub fn host_json_for(host_json: &str, executable: &str) -> Result<String, PackageError> {
    let mut v: serde_json::Value =
        serde_json::from_str(host_json).map_err(|e| PackageError::HostJson(e.to_string()))?;
    let root = v
        .as_object_mut()
        .ok_or_else(|| PackageError::HostJson("not a JSON object".into()))?;
    let handler = root
        .entry("customHandler")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| PackageError::HostJson("customHandler is not an object".into()))?;
    let description = handler
        .entry("description")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            PackageError::HostJson("customHandler.description is not an object".into())
        })?;
    description.insert(
        "defaultExecutablePath".into(),
        serde_json::Value::String(executable.into()),
    );
    let mut text = serde_json::to_string_pretty(&v).expect("a Value serializes");
    text.push('\n');
    Ok(text)
}

/// Function folders (those with a `function.json`) under `functions_dir`, sorted.
pub fn function_names(functions_dir: &Path) -> Result<Vec<String>, PackageError> {
    let mut names: Vec<String> = fs::read_dir(functions_dir)
        .map_err(io(functions_dir))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("function.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(PackageError::NoFunctions(functions_dir.to_path_buf()));
    }
    Ok(names)
}

/// Writes one app's zip to `out`.
pub fn write_app_zip(
    out: &Path,
    host_json: &str,
    function: &str,
    function_json: &[u8],
    executable: &str,
    binary: &[u8],
) -> Result<(), PackageError> {
    let zip_err = |e: zip::result::ZipError| PackageError::Zip {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let file = fs::File::create(out).map_err(io(out))?;
    let mut zip = zip::ZipWriter::new(file);
    let data = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let exe = data.unix_permissions(0o755);
    zip.start_file("host.json", data).map_err(zip_err)?;
    zip.write_all(host_json_for(host_json, executable)?.as_bytes())
        .map_err(io(out))?;
    zip.start_file(executable, exe).map_err(zip_err)?;
    zip.write_all(binary).map_err(io(out))?;
    zip.start_file(format!("{function}/function.json"), data)
        .map_err(zip_err)?;
    zip.write_all(function_json).map_err(io(out))?;
    zip.finish().map_err(zip_err)?;
    Ok(())
}

/// Packages every function under `<root>/functions` with `<root>/host.json`
/// and the binaries in `bin_dir`; returns the zips written to `out_dir`
/// (`<executable>.zip`).
pub fn package_all(
    root: &Path,
    bin_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PackageError> {
    let host_path = root.join("host.json");
    let host_json = fs::read_to_string(&host_path).map_err(io(&host_path))?;
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut zips = Vec::new();
    for function in function_names(&root.join("functions"))? {
        let executable = executable_name(&function);
        let fj_path = root.join("functions").join(&function).join("function.json");
        let function_json = fs::read(&fj_path).map_err(io(&fj_path))?;
        let bin_path = bin_dir.join(&executable);
        let mut binary = Vec::new();
        fs::File::open(&bin_path)
            .and_then(|mut f| f.read_to_end(&mut binary))
            .map_err(io(&bin_path))?;
        let out = out_dir.join(format!("{executable}.zip"));
        write_app_zip(
            &out,
            &host_json,
            &function,
            &function_json,
            &executable,
            &binary,
        )?;
        zips.push(out);
    }
    Ok(zips)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PascalCase function names map to the local host's kebab-case binaries.
    #[test]
    fn executable_names() {
        assert_eq!(executable_name("SyncInboundWorker"), "sync-inbound-worker");
        assert_eq!(executable_name("TokenRefresher"), "token-refresher");
        assert_eq!(executable_name("WebhookReceiver"), "webhook-receiver");
    }

    /// Only the executable path changes; the rest of host.json is kept.
    #[test]
    fn host_json_names_the_binary() {
        let out = host_json_for(
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler","arguments":[]},"enableProxyingHttpRequest":true}}"#,
            "sync-scheduler",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["customHandler"]["description"]["defaultExecutablePath"],
            "sync-scheduler"
        );
        assert_eq!(v["customHandler"]["enableProxyingHttpRequest"], true);
        assert_eq!(v["version"], "2.0");
        assert!(host_json_for("[]", "x").is_err());
    }
}
