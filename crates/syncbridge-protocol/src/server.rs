//! The HTTP/1.1 server both sides of the custom-handler protocol run on
//! loopback — every handler, and the local host's front door — built on
//! hyper directly because `axum::serve` cannot set what clients that
//! misbehave need:
//!
//! - **Timeouts.** A request head must arrive within
//!   [`ServerLimits::header_read_timeout`] (hyper's timer; it also closes a
//!   keep-alive connection idle that long), and its body within
//!   [`ServerLimits::body_read_timeout`] of the head: past that, reading the
//!   body fails with [`BodyTimeout`] (handlers answer 408).
//! - **A bound on open connections.** At most
//!   [`ServerLimits::max_connections`] are open at once, so a flood of slow
//!   connections cannot use up the process's file descriptors. When the
//!   bound is reached, a new connection takes the place of the *oldest one
//!   with no request in flight* (a client still dribbling its head, or an
//!   idle keep-alive connection): a valid request, whose head arrives at
//!   once, is served while slow connections are being held open. Only when
//!   every connection is serving a request is the new one closed at once
//!   ([`admission`] is that decision).
//! - **Half-closed clients are answered.** A client that shuts down its
//!   write side after a complete request still gets the response (hyper's
//!   `half_close`).
//!
//! Shutdown is graceful: the listener closes, idle connections close, and
//! requests in flight finish first.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// How long to wait after a failed `accept` (e.g. out of file descriptors
/// because of something else in the process) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a client may cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request's head (request line and headers), and
    /// longest idle time of a keep-alive connection.
    pub header_read_timeout: Duration,
    /// Longest time a request's body may take to arrive, from its head.
    pub body_read_timeout: Duration,
    /// Most connections open at once (at least 1).
    pub max_connections: usize,
}

impl ServerLimits {
    /// 10 s for a head, 30 s for a body, 256 connections: far above what
    /// the Functions host or a provider's delivery needs, far below a
    /// 1,024 file-descriptor limit.
    pub const DEFAULT: ServerLimits = ServerLimits {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        max_connections: 256,
    };
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A request body that did not arrive within
/// [`ServerLimits::body_read_timeout`]. Reading the body fails with it (as
/// the source of the error the reader sees; find it with [`is_body_timeout`]).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f32())]
pub struct BodyTimeout(pub Duration);

/// Whether `err` or one of its sources is a [`BodyTimeout`].
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    find_source::<BodyTimeout>(err).is_some()
}

/// The first error of type `E` in `err`'s source chain (itself included).
pub fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// What to do with a newly accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// There is room.
    Admit,
    /// Close this open connection (the oldest with no request in flight),
    /// then admit.
    Evict(u64),
    /// Every open connection is serving a request: close the new one.
    Refuse,
}

/// The admission decision: `open` lists the open connections as (id, requests
/// in flight), ids growing with age (smaller = older).
pub fn admission(open: impl IntoIterator<Item = (u64, u32)>, max_connections: usize) -> Admission {
    let mut count = 0;
    let mut oldest_idle = None;
    for (id, in_flight) in open {
        count += 1;
        if in_flight == 0 && oldest_idle.is_none_or(|o| id < o) {
            oldest_idle = Some(id);
        }
    }
    if count < max_connections.max(1) {
        Admission::Admit
    } else {
        oldest_idle.map_or(Admission::Refuse, Admission::Evict)
    }
}

#[derive(Debug)]
struct Slot {
    in_flight: u32,
    evict: Option<oneshot::Sender<()>>,
}

/// The open connections.
#[derive(Debug)]
struct Gate {
    max: usize,
    state: Mutex<(u64, BTreeMap<u64, Slot>)>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Slot>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection's id and the signal that it must close, or `None`
    /// when it is refused.
    fn admit(&self) -> Option<(u64, oneshot::Receiver<()>)> {
        let mut guard = self.lock();
        let (next, open) = &mut *guard;
        match admission(open.iter().map(|(id, s)| (*id, s.in_flight)), self.max) {
            Admission::Refuse => return None,
            Admission::Evict(victim) => {
                if let Some(tx) = open.remove(&victim).and_then(|mut s| s.evict.take()) {
                    let _ = tx.send(());
                }
            }
            Admission::Admit => {}
        }
        let id = *next;
        *next += 1;
        let (tx, rx) = oneshot::channel();
        open.insert(
            id,
            Slot {
                in_flight: 0,
                evict: Some(tx),
            },
        );
        Some((id, rx))
    }

    fn begin(self: &Arc<Self>, id: u64) -> InFlight {
        if let Some(s) = self.lock().1.get_mut(&id) {
            s.in_flight += 1;
        }
        InFlight {
            gate: self.clone(),
            id,
        }
    }

    fn release(&self, id: u64) {
        self.lock().1.remove(&id);
    }
}

/// One request in flight on a connection; ends when dropped (with the
/// response body, so a connection still sending an answer is not evicted).
#[derive(Debug)]
struct InFlight {
    gate: Arc<Gate>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.gate.lock().1.get_mut(&self.id) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then lets requests in flight finish.
///
/// # Errors
/// None today (accept errors are logged and retried); the `Result` keeps
/// the signature of `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gate = Arc::new(Gate {
        max: limits.max_connections.max(1),
        state: Mutex::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some((id, evicted)) = gate.admit() else {
            tracing::debug!("connection refused: every open connection is serving a request");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            id,
            gate: gate.clone(),
            app: app.clone(),
            limits,
        };
        tokio::spawn(conn.run(stream, evicted, stop_rx.clone(), alive_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// One accepted connection (also the hyper service of its requests).
#[derive(Clone)]
struct Connection {
    id: u64,
    gate: Arc<Gate>,
    app: Router,
    limits: ServerLimits,
}

impl Connection {
    async fn run(
        self,
        stream: tokio::net::TcpStream,
        mut evicted: oneshot::Receiver<()>,
        mut stop: watch::Receiver<bool>,
        _alive: watch::Receiver<()>,
    ) {
        let (gate, id, limits) = (self.gate.clone(), self.id, self.limits);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .half_close(true);
        let conn = builder.serve_connection(TokioIo::new(stream), self);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection ended: {e}");
                    }
                    break;
                }
                _ = &mut evicted => {
                    tracing::debug!("connection closed to make room for a new one");
                    break;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        gate.release(id);
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for Connection {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.gate.begin(self.id);
        let limit = self.limits.body_read_timeout;
        let req = req.map(|b| {
            Body::new(TimedBody {
                inner: b,
                deadline: Box::pin(tokio::time::sleep(limit)),
                limit,
            })
        });
        let mut app = self.app.clone();
        Box::pin(async move {
            let resp = match tower::Service::call(&mut app, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(resp.map(|inner| {
                Body::new(Guarded {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct TimedBody<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> HttpBody for TimedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding its request's [`InFlight`] until it is sent.
struct Guarded {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room is made by closing the oldest connection with no request in
    /// flight; with every connection busy the new one is refused.
    #[test]
    fn admission_table() {
        assert_eq!(admission([], 2), Admission::Admit);
        assert_eq!(admission([(1, 0)], 2), Admission::Admit);
        assert_eq!(admission([(1, 1), (2, 0), (3, 0)], 3), Admission::Evict(2));
        assert_eq!(admission([(3, 0), (2, 0), (1, 0)], 3), Admission::Evict(1));
        assert_eq!(admission([(1, 1), (2, 2)], 2), Admission::Refuse);
        // A bound of 0 is read as 1.
        assert_eq!(admission([], 0), Admission::Admit);
        assert_eq!(admission([(5, 0)], 0), Admission::Evict(5));
    }

    /// What was tried: a body error whose source is a `BodyTimeout`, and one
    /// that is not. What must hold: only the first is recognised.
    #[test]
    fn body_timeout_is_found_in_the_chain() {
        let e = axum::Error::new(BodyTimeout(Duration::from_secs(2)));
        assert!(is_body_timeout(&e));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_body_timeout(&other));
    }
}
