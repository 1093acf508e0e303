//! `syncbridge-sandbox`: run the HubSpot-like CRM provider. See `--help`.

use std::process::ExitCode;

use clap::Parser;
use syncbridge_sandbox::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    cli::init_tracing();
    match cli::run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncbridge-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}
