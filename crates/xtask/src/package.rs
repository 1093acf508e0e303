//! `cargo xtask package [--out DIR] [--target TRIPLE] [--bin-dir DIR]`.
//!
//! Builds the six handler binaries (the five functions and `sync-api`) for Linux with the `dist` profile (the
//! workspace's release profile plus thin LTO; see the root `Cargo.toml`) and writes one
//! zip per Function App with `syncbridge_package::package_all` (host.json
//! naming the binary, the binary with its execute bit, its
//! `<Function>/function.json`). `scripts/package` calls this.
//!
//! The default target, `x86_64-unknown-linux-musl`, gives static binaries that
//! run on any Linux Function App. It needs the Rust target and a musl C
//! compiler (SQLite is bundled C code); both are installed when missing
//! (rustup, apt-get `musl-tools`). If either cannot be installed, the build
//! falls back to the host's glibc Linux target and says so.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use syncbridge_env::{Env as _, ProcessEnv};

use anyhow::{Context, bail};

/// The static Linux target.
const MUSL: &str = "x86_64-unknown-linux-musl";

/// The cargo profile shipped binaries are built with (LTO; local builds use
/// `release`, which skips it to build in minutes).
const PROFILE: &str = "dist";

/// `package` arguments.
#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Where the zips go, created if missing [default: <target dir>/package].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Target triple to build for.
    #[arg(long, value_name = "TRIPLE", default_value = MUSL)]
    target: String,
    /// Package the binaries already in DIR instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// Builds (unless `--bin-dir`) and packages; prints each zip's path.
pub fn run(args: &PackageArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir(&root).join("package"));
    let (bin_dir, target) = match &args.bin_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let target = usable_target(&args.target)?;
            eprintln!("xtask package: building the handlers for {target}");
            build(&root, &target)?;
            (target_dir(&root).join(&target).join(PROFILE), Some(target))
        }
    };
    let zips = syncbridge_package::package_all(&root, &bin_dir, &out)
        .with_context(|| format!("packaging the binaries in {}", bin_dir.display()))?;
    for zip in &zips {
        println!("{}", zip.display());
    }
    eprintln!(
        "xtask package: {} zips{} in {}",
        zips.len(),
        target.map(|t| format!(" ({t})")).unwrap_or_default(),
        out.display()
    );
    Ok(())
}

/// The workspace root (this crate lives in `crates/xtask`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask has two parents")
        .to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    ProcessEnv
        .var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), else the one on PATH.
fn cargo() -> OsString {
    ProcessEnv.var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn build(root: &Path, target: &str) -> anyhow::Result<()> {
    let status = Command::new(cargo())
        .current_dir(root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--locked",
            "--target",
            target,
        ])
        .args([
            "-p",
            "syncbridge-functions",
            "-p",
            "syncbridge-api",
            "--bins",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --profile {PROFILE} --target {target} failed ({status})");
    }
    Ok(())
}

/// `requested`, or the host's Linux target when the musl toolchain cannot be
/// made available here.
fn usable_target(requested: &str) -> anyhow::Result<String> {
    if requested != MUSL {
        return Ok(requested.to_owned());
    }
    let why = if !musl_target_installed()
        && !succeeds(Command::new("rustup").args(["target", "add", MUSL]))
    {
        format!("cannot install the {MUSL} target")
    } else if !has_musl_cc() && !install_musl_tools() {
        "no musl C compiler (musl-gcc from musl-tools) for SQLite's bundled C code".to_string()
    } else {
        return Ok(MUSL.to_owned());
    };
    let host = host_triple()?;
    if !host.contains("-linux-") {
        bail!(
            "{why}, and the host target {host} is not Linux: install the {MUSL} target and a musl C compiler"
        );
    }
    eprintln!("xtask package: {why}; building for {host} (glibc) instead");
    Ok(host)
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn musl_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == MUSL)
        })
}

/// What the `cc` crate looks for when compiling C for the musl target.
fn has_musl_cc() -> bool {
    ProcessEnv.var_os("CC_x86_64_unknown_linux_musl").is_some()
        || ["x86_64-linux-musl-gcc", "musl-gcc"]
            .iter()
            .any(|exe| on_path(exe))
}

fn on_path(exe: &str) -> bool {
    ProcessEnv
        .var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join(exe).is_file()))
}

/// `apt-get install musl-tools` (after `apt-get update` if the first try fails).
fn install_musl_tools() -> bool {
    let install = || succeeds(Command::new("apt-get").args(["install", "-y", "-qq", "musl-tools"]));
    (install() || (succeeds(Command::new("apt-get").args(["update", "-qq"])) && install()))
        && has_musl_cc()
}

fn host_triple() -> anyhow::Result<String> {
    let rustc = ProcessEnv.var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    parse_host(&String::from_utf8_lossy(&out.stdout)).context("rustc -vV printed no host line")
}

fn parse_host(rustc_vv: &str) -> Option<String> {
    rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host triple comes from `rustc -vV`'s `host:` line.
    #[test]
    fn host_line() {
        let text = "rustc 1.95.0 (abc 2026-03-21)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        assert_eq!(
            parse_host(text).as_deref(),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(parse_host("binary: rustc\n"), None);
    }

    /// This crate finds the workspace (host.json and functions/ are there).
    #[test]
    fn finds_the_workspace() {
        let root = workspace_root();
        assert!(root.join("host.json").is_file(), "{}", root.display());
        assert!(root.join("functions").is_dir());
    }

    /// The arguments parse as documented.
    #[test]
    fn arguments() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct P {
            #[command(flatten)]
            a: PackageArgs,
        }
        let p = P::try_parse_from(["package", "--out", "dist"]).unwrap();
        assert_eq!(p.a.out.as_deref(), Some(Path::new("dist")));
        assert_eq!(p.a.target, MUSL);
        assert!(p.a.bin_dir.is_none());
        assert!(P::try_parse_from(["package", "--bogus"]).is_err());
    }
}
