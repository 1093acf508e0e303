//! A throw-away `redis-server` process for tests and the benchmark: started
//! on a free loopback port with persistence off, killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The binary is missing.
    #[error(
        "`redis-server` is not on PATH; the rate-limit tests need a real Redis \
         (install it, e.g. `apt-get install -y redis-server`)"
    )]
    NotInstalled,
    /// It started but did not answer.
    #[error("redis-server on port {port}: {message}")]
    Failed {
        /// Port tried.
        port: u16,
        /// What happened.
        message: String,
    },
}

/// A currently free loopback port.
///
/// # Errors
/// No port could be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers PING.
    ///
    /// # Errors
    /// Not installed, or not answering within 10 s.
    pub fn start() -> Result<Self, ServerError> {
        let port = free_port().map_err(|e| ServerError::Failed {
            port: 0,
            message: e.to_string(),
        })?;
        let mut s = RedisServer { port, child: None };
        s.restart()?;
        Ok(s)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port, empty, and waits for PING.
    ///
    /// # Errors
    /// Not installed, or not answering within 10 s.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.kill();
        let port = self.port;
        let fail = |message: String| ServerError::Failed { port, message };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ServerError::NotInstalled,
                _ => fail(e.to_string()),
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(port) {
                return Ok(());
            }
            if !self.is_running() {
                self.child = None;
                return Err(fail("exited during start-up (port taken?)".into()));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(fail("did not answer PING within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
