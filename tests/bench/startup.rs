//! Start-to-listening time and idle RSS of each handler binary.
//!
//! Run with: `cargo build --release --bins && cargo run --release -p syncbridge-tests --bin bench-startup`
//! For each binary, 20 times: spawn it with `FUNCTIONS_CUSTOMHANDLER_PORT` on a
//! fresh data dir, poll the port every 0.2 ms until a TCP connect succeeds
//! (what the Functions host's readiness probe needs), then after 300 ms idle
//! read `VmRSS` from /proc. Prints median and worst of each.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let bins = syncbridge_tests::bin_dir();
    println!("binaries from {}", bins.display());
    println!(
        "{:<22} {:>14} {:>14} {:>12} {:>12}",
        "binary", "start p50 ms", "start max ms", "RSS p50 MB", "RSS max MB"
    );
    for name in [
        "sync-scheduler",
        "sync-inbound-worker",
        "sync-outbound-worker",
        "token-refresher",
        "webhook-receiver",
    ] {
        let mut starts = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let t0 = Instant::now();
            let mut child = Command::new(bins.join(name))
                .env(syncbridge_protocol::PORT_ENV, port.to_string())
                .env("SYNCBRIDGE_DATA_DIR", dir.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{name} did not listen"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            starts.push(t0.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(300));
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            let kb: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(f64::NAN);
            rss.push(kb / 1024.0);
            child.kill().ok();
            child.wait().ok();
        }
        let stat = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            (v[v.len() / 2], v[v.len() - 1])
        };
        let (s50, smax) = stat(&mut starts);
        let (r50, rmax) = stat(&mut rss);
        println!("{name:<22} {s50:>14.2} {smax:>14.2} {r50:>12.1} {rmax:>12.1}");
    }
}
