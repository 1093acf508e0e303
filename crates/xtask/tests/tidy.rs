//! Tidy checks (after rust-analyzer's `tidy.rs`): invariants of
//! ARCHITECTURE.md that the compiler cannot see, checked by reading the
//! source tree. Each failure names the file and line and says what to do.
//!
//! - the Functions host's JSON, environment and header names are spelled only
//!   in `syncbridge-protocol`;
//! - environment variables are read only through `syncbridge_env`, and the
//!   process environment is named only where settings are read (clippy's
//!   `disallowed-methods` in `clippy.toml` checks the calls; this also catches
//!   them inside macro arguments, which clippy skips);
//! - the domain crate (`syncbridge-core`) does I/O only in the modules
//!   ARCHITECTURE.md names;
//! - every module of a crate is named in its `lib.rs` docs, and README's
//!   settings table names every variable the settings module reads.
//!
//! Comment lines (`//`, `//!`, `///`) are not checked: docs may name anything.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask has two parents")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, as paths relative to the workspace root with `/`.
fn rust_files(root: &Path, dir: &str) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    walk(root, &p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).expect("under the root");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out);
    out.sort();
    out
}

/// `(line number, line)` of the lines of `path` that are code, not comments.
fn code_lines(root: &Path, path: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(root.join(path)).expect("readable source");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

/// Every file of the workspace's crates and tests, except this one (it spells
/// what it looks for).
fn workspace_files(root: &Path) -> Vec<String> {
    let mut files = rust_files(root, "crates");
    files.extend(rust_files(root, "tests"));
    files.retain(|f| f != "crates/xtask/tests/tidy.rs");
    files
}

/// How a needle matches.
#[derive(Clone, Copy)]
enum Case {
    /// As spelled.
    Exact,
    /// Ignoring ASCII case (HTTP header names).
    Fold,
}

/// `needles` found in the code lines of `files`, as `path:line: what`,
/// except in files `allowed` says may.
fn find(
    root: &Path,
    files: &[String],
    needles: &[(&str, Case)],
    allowed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !allowed(f)) {
        for (n, line) in code_lines(root, f) {
            let lower = line.to_ascii_lowercase();
            for (needle, case) in needles {
                let hit = match case {
                    Case::Exact => line.contains(needle),
                    Case::Fold => lower.contains(&needle.to_ascii_lowercase()),
                };
                if hit {
                    found.push(format!("{f}:{n}: `{needle}` in `{}`", line.trim()));
                }
            }
        }
    }
    found
}

fn exact<'a>(needles: &[&'a str]) -> Vec<(&'a str, Case)> {
    needles.iter().map(|n| (*n, Case::Exact)).collect()
}

fn assert_none(found: &[String], what: &str) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

/// The host's JSON (envelope members), its environment variables and its
/// headers are spelled only in `syncbridge-protocol`. The local host's own
/// tests are exempt: they check the bytes the local host sends against the
/// host's wire format written out by hand, independently of the crate that
/// builds them.
#[test]
fn host_protocol_is_spelled_only_in_the_protocol_crate() {
    let root = root();
    let mut needles = exact(&[
        // envelope members (§4, §5)
        "\"Data\"",
        "\"Metadata\"",
        "\"Outputs\"",
        "\"Logs\"",
        "\"ReturnValue\"",
        "\"RetryContext\"",
        // process environment (§2)
        "\"FUNCTIONS_CUSTOMHANDLER_",
        "\"FUNCTIONS_HTTPWORKER_",
        "\"FUNCTIONS_APP_ROOT_PATH",
    ]);
    // headers (§2), in any case
    needles.extend([
        ("\"X-Azure-Functions-", Case::Fold),
        ("Azure-Functions-Host/", Case::Fold),
    ]);
    let found = find(&root, &workspace_files(&root), &needles, |f| {
        f.starts_with("crates/syncbridge-protocol/")
            || f.starts_with("crates/syncbridge-localhost/tests/")
    });
    assert_none(
        &found,
        "the Functions host's JSON, environment or header names outside syncbridge-protocol \
         (use its types and constants, or move the code there)",
    );
}

/// Where the process environment may be named: where settings are read.
fn may_name_process_env(f: &str) -> bool {
    const ALLOWED: &[&str] = &[
        // the trait and its process implementation
        "crates/syncbridge-env/",
        // the settings of the handlers, `syncbridge up` and the CLI
        "crates/syncbridge-functions/src/settings.rs",
        // the local host plays the Functions host, whose app settings are its
        // environment (`HostConfig::process_env`, injectable)
        "crates/syncbridge-localhost/src/lib.rs",
        // test helper binaries of crates below syncbridge-functions
        "crates/syncbridge-localhost/src/bin/echo-handler.rs",
        "crates/syncbridge-credentials/src/bin/",
        // the sandbox provider's own binary (`RUST_LOG`): not part of syncbridge
        "crates/syncbridge-sandbox/src/cli.rs",
        // cargo's build environment (`CARGO`, `RUSTC`, `PATH`…), not settings
        "crates/xtask/src/",
    ];
    ALLOWED.iter().any(|a| f.starts_with(a)) || f.split('/').any(|part| part == "tests")
}

/// Environment variables are read through `syncbridge_env::Env` only, and the
/// process environment (`ProcessEnv`) is named only where settings are read.
#[test]
fn environment_is_read_only_where_settings_are() {
    let root = root();
    let files = workspace_files(&root);
    let reads = [
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "from_default_env(",
    ];
    // Build scripts read cargo's build environment (`OUT_DIR`), not settings.
    let found = find(&root, &files, &exact(&reads), |f| {
        f.starts_with("crates/syncbridge-env/") || f.ends_with("/build.rs")
    });
    assert_none(
        &found,
        "environment read outside syncbridge_env::ProcessEnv (read it in \
         crates/syncbridge-functions/src/settings.rs, through an Env)",
    );
    let found = find(&root, &files, &exact(&["ProcessEnv"]), may_name_process_env);
    assert_none(
        &found,
        "the process environment named outside the settings modules (take the value \
         from settings: crates/syncbridge-functions/src/settings.rs)",
    );
}

/// The modules of `syncbridge-core` that may do I/O, as ARCHITECTURE.md's
/// invariant "The domain crate does I/O only in …" names them (backticked
/// paths under `crates/syncbridge-core/src/`).
fn core_io_modules(root: &Path) -> Vec<String> {
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = arch
        .find("**The domain crate does I/O only in")
        .expect("ARCHITECTURE.md states where the domain crate does I/O");
    let para = &arch[start..];
    let para = &para[..para.find("\n- ").unwrap_or(para.len())];
    let modules: Vec<String> = para
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.ends_with(".rs"))
        .map(|s| format!("crates/syncbridge-core/src/{s}"))
        .collect();
    assert!(!modules.is_empty(), "no modules named in: {para}");
    for m in &modules {
        assert!(
            root.join(m).is_file(),
            "ARCHITECTURE.md names {m}, which does not exist"
        );
    }
    modules
}

/// `syncbridge-core` does I/O (files, sockets, processes, HTTP, the wall
/// clock, sleeps, the environment) only in the modules ARCHITECTURE.md names.
#[test]
fn core_does_io_only_in_the_modules_architecture_names() {
    let root = root();
    let allowed = core_io_modules(&root);
    let needles = [
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "tokio::fs",
        "tokio::net",
        "tokio::process",
        "tokio::time::sleep",
        "reqwest",
        "SystemTime::now",
        "Instant::now",
    ];
    let found = find(
        &root,
        &rust_files(&root, "crates/syncbridge-core/src"),
        &exact(&needles),
        |f| allowed.iter().any(|a| a == f),
    );
    assert_none(
        &found,
        "I/O in syncbridge-core outside the modules ARCHITECTURE.md names (do it behind a \
         trait the binaries implement, or name the module there and say why)",
    );
}

/// The checks see what they look for: a planted line in a scratch copy of the
/// matcher's input is found, and a comment is not.
#[test]
fn the_matcher_finds_code_and_skips_comments() {
    let dir = std::env::temp_dir().join(format!("tidy-self-check-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("crates/x/src")).unwrap();
    std::fs::write(
        dir.join("crates/x/src/lib.rs"),
        "// \"Outputs\" in a comment\nlet x = json!({\"Outputs\": 1});\n",
    )
    .unwrap();
    let files = rust_files(&dir, "crates");
    let found = find(&dir, &files, &[("\"outputs\"", Case::Fold)], |_| false);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("crates/x/src/lib.rs:2:"), "{found:?}");
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .map(str::trim)
        .filter_map(|l| {
            let l = l
                .strip_prefix("pub ")
                .or_else(|| l.strip_prefix("pub(crate) "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// Every crate's `lib.rs` docs name each of its modules (as `` `x` ``,
/// `` [`x`] ``, `` `x/` `` or `` `x::…` ``), so its layout section cannot
/// fall behind the code.
#[test]
fn crate_docs_name_every_module() {
    let root = root();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let lib = entry.path().join("src/lib.rs");
        let Ok(text) = std::fs::read_to_string(&lib) else {
            continue;
        };
        let docs: String = text
            .lines()
            .filter(|l| l.trim_start().starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for m in declared_modules(&text) {
            let named = ["`", "/`", "::", "]("]
                .iter()
                .any(|after| docs.contains(&format!("`{m}{after}")))
                || docs.contains(&format!("[`{m}`]"));
            if !named {
                let rel = lib.strip_prefix(&root).unwrap().display().to_string();
                found.push(format!(
                    "{rel}: module `{m}` is not named in the crate docs"
                ));
            }
        }
    }
    assert_none(
        &found,
        "crate docs that do not name every module (add it to the layout list)",
    );
}

/// README's settings table names every environment variable the settings
/// module spells (`SYNCBRIDGE_*`, a prefix for families like
/// `SYNCBRIDGE_OAUTH_<P>_*`).
#[test]
fn readme_documents_every_setting() {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let settings =
        std::fs::read_to_string(root.join("crates/syncbridge-functions/src/settings.rs")).unwrap();
    let mut missing = Vec::new();
    for (i, _) in settings.match_indices("SYNCBRIDGE_") {
        let name: String = settings[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = name.trim_end_matches('_');
        if !readme.contains(name) && !missing.iter().any(|m: &String| m == name) {
            missing.push(name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "settings missing from README's settings table: {missing:?}"
    );
}
