//! Webhooks under abuse, against the real binaries: the `webhook-receiver`
//! on its own (as the Functions host runs it) and the five handlers under
//! `syncbridge up`, each started with a soft limit of 1,024 open files
//! (`ulimit -n` in the shell that starts it), the common default that
//! 1,133 slow connections used to exhaust.
//!
//! What is tried, in order, against each target:
//! - malformed requests: garbage request lines, bad framing, oversized
//!   headers, bad and missing signatures, stale timestamps, wrong methods,
//!   unknown connections, 200 seeded random byte strings;
//! - oversized bodies: one byte over `SYNCBRIDGE_WEBHOOK_MAX_BYTES`, chunked
//!   past it, and (through `up`) four concurrent 24 MB bodies, a declared
//!   40 MB body and a chunked 40 MB body against a 32 MiB front-door limit;
//! - a body that stalls half way;
//! - 20 valid deliveries from clients that half-close their write side;
//! - one valid delivery sent 20 times at once;
//! - 1,500 connections holding an unfinished request head open while 10
//!   valid deliveries are made (the header read timeout is set to 60 s, so
//!   it is the connection bound, not the timeout, that keeps them flowing).
//!
//! What must hold: no client fault is answered 5xx; the oversized bodies get
//! 413 (through `up`, the receiver's own 413 passes through, and the front
//! door's memory does not grow with the bodies: they stream); the stalled
//! body gets 408; every half-closed and every slow-flood delivery is
//! answered 202; the duplicates get one 202 and 200s; exactly one follow-up
//! job per accepted event is enqueued (31), no more; and afterwards no file
//! of the state directory and no line either process logged holds the
//! webhook secret in plain text.
//!
//! If this process may not open 2,000 files, the flood is scaled down to what
//! it may open and the connection bound (`SYNCBRIDGE_HTTP_MAX_CONNECTIONS`)
//! lowered with it, and the test says so on stderr.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use syncbridge_tests::{
    Logged, bin_dir, cli, files_holding, free_port, standard_webhook_headers, succeeded, text,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The webhook secret: random-looking, so finding it anywhere is a leak.
const SECRET: &str = "whsec_Zm11enotc2VjcmV0LTlmM2Q4YTFjNWU3Yg==";
/// `SYNCBRIDGE_WEBHOOK_MAX_BYTES` for the receiver.
const LIMIT: usize = 65_536;
/// `SYNCBRIDGE_HOST_MAX_BODY_BYTES` for `up`'s front door.
const DOOR_LIMIT: usize = 32 * 1024 * 1024;
/// Slow connections held open.
const SLOW: usize = 1_500;
/// Bound on every wait: a broken server fails the test, a slow machine does not.
const PATIENCE: Duration = Duration::from_secs(60);

/// The two tests run one at a time (each holds 1,500 sockets).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A process started under `ulimit -n 1024`, its output collected.
struct Proc(Logged);

impl Proc {
    fn start(bin: &Path, args: &[&str], env: &[(String, String)]) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"ulimit -n 1024 && exec "$0" "$@""#)
            .arg(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Proc(Logged::spawn(cmd, "the binary starts"))
    }

    fn logs(&self) -> String {
        self.0.logs()
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Stops it: SIGINT first (`up` then stops its handlers), SIGKILL if it lingers.
    fn stop(&mut self) {
        self.0.signal("INT");
        for _ in 0..200 {
            if self.0.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.0.exited() {
            self.stop();
        }
    }
}

/// This process's soft limit of open files (`/proc/self/limits`).
fn soft_nofile() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// How many slow connections to hold, and the connection bound to set if
/// the flood had to shrink.
fn flood_size() -> (usize, Option<usize>) {
    let room = soft_nofile().saturating_sub(500);
    if room >= SLOW {
        (SLOW, None)
    } else {
        let slow = room.max(64);
        eprintln!(
            "this process may open only {} files: holding {slow} slow connections (not {SLOW}) \
             against a connection bound of {}",
            soft_nofile(),
            slow / 4
        );
        (slow, Some(slow / 4))
    }
}

fn settings(dir: &Path, bound: Option<usize>) -> Vec<(String, String)> {
    let mut env = vec![
        ("SYNCBRIDGE_DATA_DIR", dir.display().to_string()),
        ("SYNCBRIDGE_WEBHOOK_MAX_BYTES", LIMIT.to_string()),
        ("SYNCBRIDGE_HOST_MAX_BODY_BYTES", DOOR_LIMIT.to_string()),
        ("SYNCBRIDGE_HTTP_BODY_TIMEOUT_SECS", "2".into()),
        ("SYNCBRIDGE_HTTP_HEADER_TIMEOUT_SECS", "60".into()),
        ("SYNCBRIDGE_LOG_FORMAT", "text".into()),
        ("RUST_LOG", "info,syncbridge_functions=debug".into()),
        ("SYNC_SCHEDULER_SCHEDULE", "0 0 0 1 1 *".into()),
        ("TOKEN_REFRESHER_SCHEDULE", "0 0 0 1 1 *".into()),
    ];
    if let Some(b) = bound {
        env.push(("SYNCBRIDGE_HTTP_MAX_CONNECTIONS", b.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Registers connection `c1` (Standard Webhooks, [`SECRET`]) with the real CLI.
fn register(dir: &Path, base_url: &str) -> String {
    let run = |args: &[&str]| text(&succeeded(cli(dir, args, &[]), args));
    let mut said = run(&[
        "connections",
        "add",
        "--tenant",
        "acme",
        "--id",
        "c1",
        "--provider",
        "sandbox",
        "--base-url",
        base_url,
        "--objects",
        "contacts",
        "--webhook-scheme",
        "standard-webhooks",
        "--webhook-secret",
        SECRET,
    ]);
    said += &run(&["connections", "list"]);
    said += &run(&["connections", "list", "--json"]);
    said
}

/// A signed delivery of event `id`: its body and signature headers.
fn delivery(id: &str) -> (String, Vec<(String, String)>) {
    let body = format!(r#"{{"id":"{id}","type":"contact.updated","object":"contacts"}}"#);
    let headers = standard_webhook_headers(
        "http://127.0.0.1/api/webhooks/c1",
        &body,
        SECRET,
        &format!("msg_{id}"),
    );
    (body, headers)
}

/// A raw HTTP/1.1 POST with a `Content-Length`.
fn raw_post(path: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Whether to shut down our write side after sending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    KeepOpen,
    HalfClose,
}

/// Reads a response head; its status, or `None` if the server closed first.
async fn read_status(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer or a close in time");
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `request` on a new connection; the answer's status, if any.
async fn exchange(addr: SocketAddr, request: &[u8], after: After) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.write_all(request).await;
    if after == After::HalfClose {
        let _ = s.shutdown().await;
    }
    read_status(&mut s).await
}

/// Sends a body in `chunk`-byte chunks of chunked encoding, `total` bytes,
/// while reading the answer; its status.
async fn chunked(addr: SocketAddr, total: usize, chunk: usize) -> Option<u16> {
    let (_, headers) = delivery("chunked");
    let s = TcpStream::connect(addr).await.ok()?;
    let (mut rd, mut wr) = s.into_split();
    let mut head =
        "POST /api/webhooks/c1 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            .to_string();
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let data = vec![b'x'; chunk];
        let mut sent = 0;
        while sent < total {
            wr.write_all(format!("{chunk:x}\r\n").as_bytes()).await?;
            wr.write_all(&data).await?;
            wr.write_all(b"\r\n").await?;
            sent += chunk;
        }
        wr.write_all(b"0\r\n\r\n").await
    });
    let mut buf = Vec::new();
    let mut part = [0u8; 4096];
    let read = async {
        loop {
            match rd.read(&mut part).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&part[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer in time");
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Every answer of the run, by what was tried.
#[derive(Default)]
struct Tally {
    answers: Vec<(String, Option<u16>)>,
}

impl Tally {
    fn note(&mut self, what: impl Into<String>, status: Option<u16>) {
        self.answers.push((what.into(), status));
    }

    fn server_errors(&self) -> Vec<&(String, Option<u16>)> {
        self.answers
            .iter()
            .filter(|(_, s)| s.is_some_and(|s| s >= 500))
            .collect()
    }
}

/// The malformed and hostile requests; every one is a client fault.
async fn malformed(addr: SocketAddr, t: &mut Tally) {
    let (body, good) = delivery("malformed");
    let without = |name: &str| -> Vec<(String, String)> {
        good.iter().filter(|(k, _)| k != name).cloned().collect()
    };
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut v = without(name);
        v.push((name.into(), value.into()));
        v
    };
    let path = "/api/webhooks/c1";
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), None),
        (
            "non-numeric content-length",
            b"POST /api/webhooks/c1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            None,
        ),
        (
            "conflicting content-lengths",
            b"POST /api/webhooks/c1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .to_vec(),
            None,
        ),
        (
            "bad chunk size",
            b"POST /api/webhooks/c1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"
                .to_vec(),
            None,
        ),
        (
            "100 KB header",
            raw_post(path, &[("x-pad".into(), "p".repeat(100_000))], body.as_bytes()),
            None,
        ),
        (
            "missing signature",
            raw_post(path, &without("webhook-signature"), body.as_bytes()),
            Some(400),
        ),
        (
            "missing id",
            raw_post(path, &without("webhook-id"), body.as_bytes()),
            Some(400),
        ),
        (
            "forged signature",
            raw_post(
                path,
                &with("webhook-signature", "v1,Zm9yZ2VkIHNpZ25hdHVyZSBvZiAzMiBieXRlcyBsb25nIQ=="),
                body.as_bytes(),
            ),
            Some(401),
        ),
        (
            "stale timestamp",
            raw_post(path, &with("webhook-timestamp", "1000000000"), body.as_bytes()),
            Some(401),
        ),
        (
            "tampered body",
            raw_post(path, &good, body.replace("contacts", "deals").as_bytes()),
            Some(401),
        ),
        (
            "unknown connection",
            raw_post("/api/webhooks/nobody", &good, body.as_bytes()),
            Some(404),
        ),
        (
            "path traversal",
            raw_post("/api/webhooks/../../etc/passwd", &good, body.as_bytes()),
            None,
        ),
        (
            "GET",
            b"GET /api/webhooks/c1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            None,
        ),
        (
            "one byte over the limit",
            raw_post(path, &good, &vec![b' '; LIMIT + 1]),
            Some(413),
        ),
    ];
    for (what, request, want) in cases {
        let got = exchange(addr, &request, After::KeepOpen).await;
        if let Some(w) = want {
            assert_eq!(got, Some(w), "{what}");
        }
        t.note(what, got);
    }
    let mut bad_utf8 = raw_post(path, &with("webhook-signature", "v1,AAAA"), body.as_bytes());
    let at = bad_utf8.windows(7).position(|w| w == b"v1,AAAA").unwrap();
    bad_utf8[at + 3] = 0xff;
    let got = exchange(addr, &bad_utf8, After::KeepOpen).await;
    t.note("non-UTF-8 header value", got);
    let got = chunked(addr, 2 * LIMIT, 8192).await;
    assert_eq!(got, Some(413), "chunked past the limit");
    t.note("chunked past the limit", got);
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    for i in 0..200 {
        let len = rng.random_range(1..512);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 2 == 0 {
            let mut req = b"POST /api/webhooks/c1 HTTP/1.1\r\n".to_vec();
            req.append(&mut junk);
            junk = req;
        }
        let got = exchange(addr, &junk, After::HalfClose).await;
        t.note(format!("random bytes #{i}"), got);
    }
}

/// A body that stops half way is answered 408 (body read timeout 2 s).
async fn stalled_body(addr: SocketAddr, t: &mut Tally) {
    let (body, headers) = delivery("stalled");
    let mut request = raw_post("/api/webhooks/c1", &headers, body.as_bytes());
    request.truncate(request.len() - body.len() / 2);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request).await.unwrap();
    let got = read_status(&mut s).await;
    assert_eq!(got, Some(408), "a stalled body");
    t.note("stalled body", got);
}

/// Valid deliveries from clients that half-close after sending: all 202.
async fn half_closed(addr: SocketAddr, t: &mut Tally) {
    let mut answers = Vec::new();
    for i in 0..20 {
        let (body, headers) = delivery(&format!("half_{i}"));
        let request = raw_post("/api/webhooks/c1", &headers, body.as_bytes());
        answers.push(tokio::spawn(async move {
            exchange(addr, &request, After::HalfClose).await
        }));
    }
    for (i, a) in answers.into_iter().enumerate() {
        let got = a.await.unwrap();
        assert_eq!(got, Some(202), "half-closed delivery {i}");
        t.note(format!("half-closed delivery {i}"), got);
    }
}

/// One delivery sent 20 times at once: one 202, the rest 200 (duplicate).
async fn concurrent_duplicates(addr: SocketAddr, t: &mut Tally) {
    let (body, headers) = delivery("dup");
    let request = Arc::new(raw_post("/api/webhooks/c1", &headers, body.as_bytes()));
    let mut answers = Vec::new();
    for _ in 0..20 {
        let request = request.clone();
        answers.push(tokio::spawn(async move {
            exchange(addr, &request, After::KeepOpen).await
        }));
    }
    let mut got = Vec::new();
    for a in answers {
        got.push(a.await.unwrap());
    }
    let accepted = got.iter().filter(|s| **s == Some(202)).count();
    let duplicate = got.iter().filter(|s| **s == Some(200)).count();
    assert_eq!((accepted, duplicate), (1, 19), "{got:?}");
    for s in got {
        t.note("concurrent duplicate", s);
    }
}

/// Holds `slow` connections with unfinished heads open while 10 valid
/// deliveries are made: each is answered 202.
async fn slow_flood(addr: SocketAddr, slow: usize, t: &mut Tally) {
    let mut held = Vec::with_capacity(slow);
    for _ in 0..slow {
        let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr));
        let Ok(Ok(mut s)) = connect.await else {
            // The server no longer accepts (its backlog is full): what is
            // held is the flood.
            break;
        };
        let _ = s
            .write_all(b"POST /api/webhooks/c1 HTTP/1.1\r\nHost: 127.0.0.1\r\nwebhook-id: ")
            .await;
        held.push(s);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let mut answers = Vec::new();
    for i in 0..10 {
        let (body, headers) = delivery(&format!("flood_{i}"));
        let mut rb = client
            .post(format!("http://{addr}/api/webhooks/c1"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        answers.push(tokio::spawn(async move {
            rb.send().await.map(|r| r.status().as_u16())
        }));
    }
    for (i, a) in answers.into_iter().enumerate() {
        let got = a.await.unwrap();
        assert!(
            matches!(got, Ok(202)),
            "delivery {i} during the flood of {} slow connections: {got:?}",
            held.len()
        );
        t.note(format!("delivery during the flood {i}"), got.ok());
    }
    assert_eq!(
        held.len(),
        slow,
        "every slow connection was accepted and held"
    );
    drop(held);
}

/// Rows the target wrote: follow-up jobs ever enqueued for webhooks (the
/// queue's duplicate-detection record of each `wh-` message id) and stored events.
fn written(dir: &Path) -> (i64, i64) {
    let q = rusqlite::Connection::open(dir.join("queue.db")).unwrap();
    let jobs = q
        .query_row(
            "SELECT COUNT(*) FROM dedup WHERE queue = 'sync-inbound' AND message_id LIKE 'wh-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let s = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let events = s
        .query_row("SELECT COUNT(*) FROM webhook_events", [], |r| r.get(0))
        .unwrap();
    (jobs, events)
}

/// Files under `dir` (and the logs) holding the secret, or its key part, in plain text.
fn leaks(dir: &Path, logs: &str) -> Vec<String> {
    let needles = [SECRET, SECRET.trim_start_matches("whsec_")];
    let mut found = Vec::new();
    for n in needles {
        for f in files_holding(dir, n) {
            found.push(format!("{} holds the secret", f.display()));
        }
    }
    for n in needles {
        if logs.contains(n) {
            found.push("the logs hold the secret".into());
        }
    }
    found
}

/// Waits until `addr` answers HTTP at all.
async fn answering(addr: SocketAddr, p: &Proc) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client
        .get(format!("http://{addr}/"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer on {addr}:\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything but the big bodies, then the checks every target shares.
async fn abuse(addr: SocketAddr, dir: &Path, slow: usize, t: &mut Tally) {
    malformed(addr, t).await;
    stalled_body(addr, t).await;
    half_closed(addr, t).await;
    concurrent_duplicates(addr, t).await;
    slow_flood(addr, slow, t).await;
    assert!(
        t.server_errors().is_empty(),
        "5xx for client faults: {:?}",
        t.server_errors()
    );
    // 20 half-closed + 1 of the duplicates + 10 during the flood.
    assert_eq!(written(dir), (31, 31), "(follow-up jobs, stored events)");
}

/// Sends `size` bytes with a `Content-Length` through reqwest; the status
/// and the answer's text.
async fn big(addr: SocketAddr, size: usize) -> (Option<u16>, String) {
    let (_, headers) = delivery("big");
    let mut rb = reqwest::Client::new()
        .post(format!("http://{addr}/api/webhooks/c1"))
        .timeout(PATIENCE)
        .body(vec![b'x'; size]);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    match rb.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (Some(status), r.text().await.unwrap_or_default())
        }
        Err(e) => (None, e.to_string()),
    }
}

/// The `webhook-receiver` binary on its own, as the Functions host runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_survives_abuse_directly() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sbx = syncbridge_tests::sandbox(5).await;
    let cli_output = register(dir.path(), &sbx.base_url());
    let (slow, bound) = flood_size();
    let port = free_port();
    let mut env = settings(dir.path(), bound);
    env.push((syncbridge_protocol::PORT_ENV.into(), port.to_string()));
    let mut p = Proc::start(&bin_dir().join("webhook-receiver"), &[], &env);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    answering(addr, &p).await;
    let mut t = Tally::default();
    abuse(addr, dir.path(), slow, &mut t).await;
    let (a, b) = tokio::join!(big(addr, 24_000_000), big(addr, 24_000_000));
    for (status, text) in [a, b] {
        assert_eq!(status, Some(413), "{text}");
    }
    p.stop();
    let found = leaks(dir.path(), &(p.logs() + &cli_output));
    assert!(found.is_empty(), "{found:?}");
}

/// The five handlers under `syncbridge up`, through its front door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_survives_abuse_under_up() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sbx = syncbridge_tests::sandbox(5).await;
    let cli_output = register(dir.path(), &sbx.base_url());
    let (slow, bound) = flood_size();
    let port = free_port();
    let env = settings(dir.path(), bound);
    let d = dir.path().display().to_string();
    let mut p = Proc::start(
        &bin_dir().join("syncbridge"),
        &["--data-dir", &d, "up", "--http-port", &port.to_string()],
        &env,
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while !p.logs().contains("webhooks: POST") {
        assert!(
            std::time::Instant::now() < deadline && !p.0.exited(),
            "`syncbridge up` did not come up:\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut t = Tally::default();
    abuse(addr, dir.path(), slow, &mut t).await;

    // Big bodies stream through the door: the receiver's own 413 comes back,
    // and the door's memory does not grow with them.
    let before = p.peak_kib();
    let answers = concurrent_big(addr, 4, 24_000_000).await;
    for (status, text) in &answers {
        assert_eq!(*status, Some(413), "{text}");
        assert!(
            text.contains("SYNCBRIDGE_WEBHOOK_MAX_BYTES"),
            "the receiver's answer: {text}"
        );
    }
    let (_, headers) = delivery("huge");
    let mut declared = format!(
        "POST /api/webhooks/c1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        40_000_000
    );
    for (k, v) in &headers {
        declared.push_str(&format!("{k}: {v}\r\n"));
    }
    declared.push_str("\r\n");
    let got = exchange(addr, declared.as_bytes(), After::KeepOpen).await;
    assert_eq!(got, Some(413), "a declared body over the door's limit");
    let got = chunked(addr, 40_000_000, 1 << 16).await;
    assert_eq!(got, Some(413), "a chunked body over the door's limit");
    let grew = p.peak_kib().saturating_sub(before);
    assert!(
        grew < 48 * 1024,
        "the front door's peak memory grew by {grew} KiB for 96 MB of concurrent bodies"
    );
    p.stop();
    let found = leaks(dir.path(), &(p.logs() + &cli_output));
    assert!(found.is_empty(), "{found:?}");
}

/// `n` concurrent [`big`] sends.
async fn concurrent_big(addr: SocketAddr, n: usize, size: usize) -> Vec<(Option<u16>, String)> {
    let sends: Vec<_> = (0..n).map(|_| tokio::spawn(big(addr, size))).collect();
    let mut out = Vec::new();
    for s in sends {
        out.push(s.await.unwrap());
    }
    out
}
