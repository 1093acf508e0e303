//! A throw-away `redis-server` process for tests and the benchmark: started
//! on a free loopback port with persistence off, killed on drop.
//!
//! [`RedisServer::start_tls`] also opens a TLS port with a certificate made
//! for the run (the `openssl` CLI: a throw-away CA and a leaf for
//! `localhost`/`127.0.0.1`), as Azure Managed Redis only speaks TLS; the
//! plain port stays open for the test's own administration (ACL users).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    tls: Option<Tls>,
    child: Option<Child>,
}

/// The TLS port and the files of its certificate.
#[derive(Debug)]
struct Tls {
    port: u16,
    dir: PathBuf,
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
        let mut s = RedisServer {
            port,
            tls: None,
            child: None,
        };
        s.restart()?;
        Ok(s)
    }

    /// Like [`Self::start`], plus a TLS port serving a certificate for
    /// `127.0.0.1` signed by a CA made for this server ([`Self::ca_pem`]).
    ///
    /// # Errors
    /// `redis-server` or `openssl` missing, or the server not answering.
    pub fn start_tls() -> Result<Self, ServerError> {
        let port = free_port().map_err(|e| ServerError::Failed {
            port: 0,
            message: e.to_string(),
        })?;
        let tls_port = free_port().map_err(|e| ServerError::Failed {
            port: 0,
            message: e.to_string(),
        })?;
        let dir = std::env::temp_dir().join(format!(
            "syncbridge-redis-tls-{}-{tls_port}",
            std::process::id()
        ));
        make_certificates(&dir).map_err(|message| ServerError::Failed { port, message })?;
        let mut s = RedisServer {
            port,
            tls: Some(Tls {
                port: tls_port,
                dir,
            }),
            child: None,
        };
        s.restart()?;
        Ok(s)
    }

    /// `rediss://127.0.0.1:<tls port>/` (TLS servers only).
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|t| format!("rediss://127.0.0.1:{}/", t.port))
    }

    /// The PEM file of the CA that signed the TLS certificate (TLS servers only).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.dir.join("ca.pem"))
    }

    /// The PEM of the CA that signed the TLS certificate (TLS servers only).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_file().and_then(|f| std::fs::read(f).ok())
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
            .args(self.tls.as_ref().map(Tls::args).unwrap_or_default())
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

impl Tls {
    fn args(&self) -> Vec<String> {
        let file = |n: &str| self.dir.join(n).display().to_string();
        vec![
            "--tls-port".into(),
            self.port.to_string(),
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }
}

/// A CA and a server certificate for `localhost` / `127.0.0.1` in `dir`,
/// made with the `openssl` CLI (rustls refuses a CA certificate used as the
/// server's own, hence two).
fn make_certificates(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let ext = dir.join("san.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| e.to_string())?;
    let f = |n: &str| dir.join(n).display().to_string();
    let steps: [Vec<String>; 3] = [
        vec![
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ]
        .into_iter()
        .map(String::from)
        .chain(["-subj".into(), "/CN=syncbridge test CA".into()])
        .chain(["-keyout".into(), f("ca.key"), "-out".into(), f("ca.pem")])
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            "-keyout".into(),
            f("server.key"),
            "-out".into(),
            f("server.csr"),
        ])
        .collect(),
        vec!["x509", "-req", "-days", "2", "-CAcreateserial"]
            .into_iter()
            .map(String::from)
            .chain(["-in".into(), f("server.csr"), "-CA".into(), f("ca.pem")])
            .chain(["-CAkey".into(), f("ca.key"), "-out".into(), f("server.pem")])
            .chain(["-extfile".into(), ext.display().to_string()])
            .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`openssl` (needed for the TLS test server): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {}: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(t) = &self.tls {
            let _ = std::fs::remove_dir_all(&t.dir);
        }
    }
}
