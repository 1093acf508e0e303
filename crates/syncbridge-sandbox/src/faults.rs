//! Deterministic fault injection for `/crm` routes.
//!
//! One [`FaultInjector`] draws a [`Plan`] per request from a `StdRng` seeded
//! with [`FaultConfig::seed`]: the n-th request gets the same plan for the
//! same seed. Errors replace the handler; drops and truncations damage the
//! handler's real response (so a write may be applied although the client
//! never learns it — the case idempotency keys exist for).

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::stream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::FaultConfig;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Delay before handling.
    pub delay: Option<Duration>,
    /// How the response is damaged.
    pub outcome: Outcome,
}

/// The exclusive outcome of a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handle normally.
    Pass,
    /// Answer with this 5xx instead of handling.
    Error(StatusCode),
    /// Handle, then close the connection without a complete response.
    Drop,
    /// Handle, then send half the body: `cut_json` keeps a matching
    /// `Content-Length` (the client gets invalid JSON); otherwise the header
    /// promises the full length and the connection closes early.
    Truncate {
        /// Which flavour.
        cut_json: bool,
    },
}

/// The seeded fault sequence; reseeds whenever the configuration changes.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    rng: StdRng,
}

impl FaultInjector {
    /// A sequence for `config`.
    pub fn new(config: &FaultConfig) -> Self {
        Self {
            config: config.clone(),
            rng: StdRng::seed_from_u64(config.seed),
        }
    }

    /// The plan for the next request under `config`.
    pub fn draw(&mut self, config: &FaultConfig) -> Plan {
        if *config != self.config {
            *self = Self::new(config);
        }
        if config.is_off() {
            return Plan {
                delay: None,
                outcome: Outcome::Pass,
            };
        }
        let c = &self.config;
        let delay = (self.rng.random::<f64>() < c.latency_rate && c.latency_ms > 0)
            .then(|| Duration::from_millis(c.latency_ms));
        let u: f64 = self.rng.random();
        let outcome = if u < c.error_rate {
            const CODES: [StatusCode; 4] = [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ];
            Outcome::Error(CODES[self.rng.random_range(0..CODES.len())])
        } else if u < c.error_rate + c.drop_rate {
            Outcome::Drop
        } else if u < c.error_rate + c.drop_rate + c.truncate_rate {
            Outcome::Truncate {
                cut_json: self.rng.random(),
            }
        } else {
            Outcome::Pass
        };
        Plan { delay, outcome }
    }
}

/// A response whose body fails before its first byte: hyper aborts the
/// connection, so the client sees a reset/EOF instead of a response.
pub fn dropped() -> Response {
    let failing = stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "sandbox: injected connection drop",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// Sends only the first half of `response`'s body (see [`Outcome::Truncate`]).
pub async fn truncated(response: Response, cut_json: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    let full = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if full.len() < 2 {
        // Nothing to cut (e.g. 204): a drop is the closest damage.
        return dropped();
    }
    let half = full.slice(..full.len() / 2);
    if cut_json {
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(half));
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, full.len().into());
    let chunks = stream::iter([
        Ok(half),
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "sandbox: injected truncation",
        )),
    ]);
    Response::from_parts(parts, Body::from_stream(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same seed ⇒ same plans; rates roughly match over many draws.
    #[test]
    fn seeded_and_proportional() {
        let cfg = FaultConfig {
            seed: 9,
            error_rate: 0.2,
            drop_rate: 0.1,
            truncate_rate: 0.1,
            latency_rate: 0.5,
            latency_ms: 5,
        };
        let run = || {
            let mut f = FaultInjector::new(&cfg);
            (0..2000).map(|_| f.draw(&cfg)).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let errors = a
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Error(_)))
            .count();
        let drops = a.iter().filter(|p| p.outcome == Outcome::Drop).count();
        let delayed = a.iter().filter(|p| p.delay.is_some()).count();
        assert!((300..500).contains(&errors), "{errors}");
        assert!((130..270).contains(&drops), "{drops}");
        assert!((850..1150).contains(&delayed), "{delayed}");
    }

    /// With every rate at zero nothing is ever injected.
    #[test]
    fn off_means_off() {
        let cfg = FaultConfig::default();
        let mut f = FaultInjector::new(&cfg);
        assert!((0..100).all(|_| f.draw(&cfg)
            == Plan {
                delay: None,
                outcome: Outcome::Pass
            }));
    }
}
