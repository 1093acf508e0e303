//! The committed `docs/openapi.json` is the document the code generates.
//! `SYNCBRIDGE_WRITE_OPENAPI=1 cargo test -p syncbridge-api --test openapi`
//! rewrites it after an API change.

use std::path::Path;

#[test]
fn committed_document_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = syncbridge_api::openapi_text();
    // A test switch, not a setting: read like other tests read theirs.
    let rewrite = syncbridge_env::Env::var(&syncbridge_env::ProcessEnv, "SYNCBRIDGE_WRITE_OPENAPI");
    if rewrite.is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the API the code serves: run SYNCBRIDGE_WRITE_OPENAPI=1 cargo test -p syncbridge-api --test openapi and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/connections",
        "/v1/runs",
        "/v1/connections/{id}/sync",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}
