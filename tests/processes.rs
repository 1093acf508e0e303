//! The real binaries as child processes, for the end-to-end tests: a free
//! loopback port, the `syncbridge` CLI run to completion, a long-running
//! binary (`syncbridge up`, a handler) with its output collected, waiting
//! until something answers HTTP, and the leak scan's file search.

use std::ffi::OsStr;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{bin_dir, eventually};

/// A free loopback port (bound and released: the server started next takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs the real `syncbridge` CLI on `data_dir` with `env` set, to its end;
/// whatever it answered, success or not.
pub fn cli(data_dir: impl AsRef<OsStr>, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin_dir().join("syncbridge"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("syncbridge runs")
}

/// `out`, after checking that the CLI (called with `args`) succeeded; the
/// failure names the arguments and shows its stderr.
pub fn succeeded(out: Output, args: &[&str]) -> Output {
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the CLI on `data_dir`; its stdout, after checking that it succeeded.
pub fn syncbridge_cli(data_dir: &str, args: &[&str]) -> String {
    syncbridge_cli_with(data_dir, args, &[])
}

/// [`syncbridge_cli`] with `env` set.
pub fn syncbridge_cli_with(data_dir: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    String::from_utf8(succeeded(cli(data_dir, args, env), args).stdout).unwrap()
}

/// Everything a finished process wrote: stdout, then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A child process whose stdout and stderr are collected as it runs (it
/// never blocks on a full pipe, and a test can read or scan its logs).
/// Dropped, it is killed (SIGKILL) and reaped.
pub struct Logged {
    pub child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Logged {
    /// Spawns `cmd` with stdin closed and both outputs collected; `what`
    /// names it if it cannot start.
    pub fn spawn(mut cmd: Command, what: &str) -> Logged {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(what);
        let output = Arc::new(Mutex::new(Vec::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Logged { child, output }
    }

    /// What it wrote so far, both outputs interleaved as they came.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Sends it `signal` (a name `kill` knows: `TERM`, `INT`).
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // Already reaped: `kill` does nothing then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `url` answers HTTP at all (any status), failing the test
/// with `what` after `patience`.
pub async fn answering(url: &str, patience: Duration, what: &str) {
    let http = reqwest::Client::new();
    eventually(patience, what, || {
        let http = http.clone();
        async move { http.get(url).send().await.ok().map(|_| ()) }
    })
    .await;
}

/// Every file under `dir` (at any depth) whose bytes hold `needle`.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(p);
            }
        }
    }
    found
}
