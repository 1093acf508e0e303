//! Integration tests of `syncbridge-signatures`: one test binary, one module
//! per concern.
//!
//! - `vectors`: every vector in `shared/vectors/webhook-signatures.json`.
//! - `round_trip`: `sign` then `verify` for every scheme that can be signed.
//! - `bad_input`: missing/garbled headers, wrong secret, stale/future
//!   timestamps, rotation, for every signable scheme.
//! - `no_leak`: error and `Debug` output never contains a secret or an
//!   expected signature.
//! - `tamper`: property test, flipping any body byte fails verification.
//! - `handshake` and `scheme_names`: the smaller public pieces.

mod bad_input;
mod handshake;
mod helpers;
mod no_leak;
mod round_trip;
mod scheme_names;
mod tamper;
mod vectors;
