//! `syncbridge`: see `syncbridge --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs go to stderr. Quiet by default; the handlers' own log lines
    // (forwarded by the local host) appear with RUST_LOG, e.g. RUST_LOG=info.
    let filter = syncbridge_functions::settings::LogSettings::from_env()
        .env_filter("warn,syncbridge_localhost::handler=error");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = syncbridge_cli::Cli::parse();
    syncbridge_cli::run(cli).await
}
