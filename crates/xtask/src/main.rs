//! `cargo xtask <task>` (alias in `.cargo/config.toml`): repository tasks in
//! Rust instead of shell. `cargo xtask package --out DIR` builds the five
//! handlers for Linux and writes one deployable zip per Function App.

mod package;

use clap::{Parser, Subcommand};

/// Repository tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build the handlers for Linux (release) and write `<binary>.zip` per Function App.
    Package(package::PackageArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Package(args) => package::run(&args),
    }
}
