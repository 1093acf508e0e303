//! `syncbridge-package --bin-dir DIR --out DIR [--root DIR]`: writes one
//! deployable zip per function (see the library docs). `scripts/package`
//! builds the binaries and calls this.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut root, mut bin_dir, mut out) = (PathBuf::from("."), None, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().map(PathBuf::from);
        match a.as_str() {
            "--root" => root = value().unwrap_or(root),
            "--bin-dir" => bin_dir = value(),
            "--out" => out = value(),
            _ => {
                eprintln!("usage: syncbridge-package --bin-dir DIR --out DIR [--root DIR]");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(bin_dir), Some(out)) = (bin_dir, out) else {
        eprintln!("usage: syncbridge-package --bin-dir DIR --out DIR [--root DIR]");
        return ExitCode::from(2);
    };
    match syncbridge_package::package_all(&root, &bin_dir, &out) {
        Ok(zips) => {
            for z in zips {
                println!("{}", z.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("syncbridge-package: {e}");
            ExitCode::FAILURE
        }
    }
}
