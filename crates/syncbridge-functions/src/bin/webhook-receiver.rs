//! The `WebhookReceiver` custom handler. Run by the Functions host (or `syncbridge up`)
//! with `FUNCTIONS_CUSTOMHANDLER_PORT` set.
//!
//! Runtime: one async worker thread fewer than the machine has cores (at least
//! one), so the group-commit writer's SQLite transactions (on the blocking
//! pool) keep a core; on 2 cores this measured ~14% more requests/s and a lower
//! p99 than two workers (BENCHMARKS.md). `TOKIO_WORKER_THREADS` overrides.

fn main() -> anyhow::Result<()> {
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1)
        });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(syncbridge_functions::run_function(
            syncbridge_functions::webhook::FUNCTION,
            syncbridge_functions::webhook::router,
        ))
}
