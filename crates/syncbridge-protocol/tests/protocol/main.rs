//! Integration tests for `syncbridge-protocol`, one binary (one link) with a module per
//! area. Fixtures in `tests/fixtures/` are built from the payload examples in
//! `docs/functions-host.md` §4/§5 and the config examples in §1/§3.

mod config;
mod extractor;
mod fixtures;
mod properties;
mod response;
mod round_trip;
mod server;

use syncbridge_protocol::InvocationRequest;

/// Reads a fixture file's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Reads a fixture file as text.
pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixture is UTF-8")
}

/// Parses a fixture as an invocation envelope.
pub fn envelope(name: &str) -> InvocationRequest {
    InvocationRequest::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
