//! The hardened HTTP/1.1 server (`syncbridge_protocol::server`) over real
//! loopback sockets, with short limits.
//!
//! What was tried and what must hold:
//! - a client that sends a complete request and then shuts down its write
//!   side gets the answer (axum::serve's default closes on the early EOF);
//! - a client that never finishes its request head is disconnected after the
//!   header read timeout;
//! - a body that stops arriving fails with `BodyTimeout` after the body read
//!   timeout (the handler answers 408);
//! - with the connection bound reached by idle connections, a new
//!   connection is served and the oldest idle one is closed; with every
//!   connection serving a request, a new one is closed unanswered, and one
//!   is served again once there is room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{get, post};
use syncbridge_protocol::server::{ServerLimits, is_body_timeout, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Generous bound on every wait: a broken server fails the test, a slow
/// machine does not.
const PATIENCE: Duration = Duration::from_secs(30);

async fn echo_len(body: Body) -> (StatusCode, String) {
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => (StatusCode::OK, format!("{}", b.len())),
        Err(e) if is_body_timeout(&e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// A server with `POST /echo` (answers the body's length) and `GET /hold`
/// (counts itself in `entered`, answers once `release` gives a permit).
async fn start(limits: ServerLimits) -> (SocketAddr, Arc<Semaphore>, Arc<AtomicUsize>) {
    let release = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (r, e) = (release.clone(), entered.clone());
    let app = Router::new().route("/echo", post(echo_len)).route(
        "/hold",
        get(move || {
            let (release, entered) = (r.clone(), e.clone());
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let _ = release.acquire().await.map(|p| p.forget());
                "released"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, limits, std::future::pending()));
    (addr, release, entered)
}

fn limits(max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        max_connections,
    }
}

/// Reads until the end of the response head (or EOF); the status code, if any.
async fn status(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
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
        .expect("an answer or EOF in time");
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Waits for the server to close `s` (EOF or reset).
async fn closed(s: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 256];
    let wait = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.unwrap_or(false)
}

/// A complete request followed by a shutdown of the client's write side is answered.
#[tokio::test]
async fn a_half_closed_client_gets_its_answer() {
    let (addr, _, _) = start(limits(8)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(status(&mut s).await, Some(200));
}

/// A head that never ends is cut off after the header read timeout.
#[tokio::test]
async fn an_unfinished_head_is_cut_off() {
    let (addr, _, _) = start(limits(8)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed(&mut s).await,
        "the server closed the slow connection"
    );
}

/// A keep-alive connection left idle after its answer is closed after the
/// header read timeout (it is waiting for the next head).
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _, _) = start(limits(8)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .await
        .unwrap();
    assert_eq!(status(&mut s).await, Some(200));
    assert!(closed(&mut s).await, "the idle connection was closed");
}

/// A body that stops arriving fails with `BodyTimeout`; the handler answers 408.
#[tokio::test]
async fn a_stalled_body_is_answered_408() {
    let (addr, _, _) = start(limits(8)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a bit")
        .await
        .unwrap();
    assert_eq!(status(&mut s).await, Some(408));
}

/// At the bound, a new connection is served and the oldest idle one closed.
#[tokio::test]
async fn the_bound_sheds_idle_connections_first() {
    let (addr, _, _) = start(ServerLimits {
        header_read_timeout: Duration::from_secs(60),
        ..limits(3)
    })
    .await;
    // Three idle connections (a head never finished) fill the bound.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hold HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
    }
    // A quick request still gets through, and the oldest idle one is gone.
    let mut quick = TcpStream::connect(addr).await.unwrap();
    quick
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .await
        .unwrap();
    assert_eq!(status(&mut quick).await, Some(200));
    assert!(
        closed(&mut idle[0]).await,
        "the oldest idle connection was closed"
    );
}

/// With every connection serving a request, a new one is closed unanswered;
/// once they are answered there is room again.
#[tokio::test]
async fn with_every_connection_busy_a_new_one_waits_for_room() {
    let (addr, release, entered) = start(limits(3)).await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        busy.push(s);
    }
    let all_in = async {
        while entered.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, all_in)
        .await
        .expect("three requests in flight");
    // Every connection serves a request: the new one is closed unanswered.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(status(&mut s).await, None);
    // Once they are answered (and idle) there is room again.
    release.add_permits(3);
    for s in &mut busy {
        assert_eq!(status(s).await, Some(200));
    }
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status(&mut again).await, Some(200));
}
