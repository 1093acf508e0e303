//! `syncbridge`: see `syncbridge --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = syncbridge_cli::Cli::parse();
    syncbridge_cli::run(cli).await
}
