//! The README's main job, run as a user runs it: `syncbridge demo`.
//!
//! What was tried: a full demo (sandbox with OAuth on and 3-second access
//! tokens, the five handlers under the local host, two passes) with debug
//! logging from every process captured. What must hold: it exits 0, the
//! store equals the sandbox, at least one token refresh happened, and no
//! access token, refresh token or client secret the sandbox issued
//! (`sbx_at_`, `sbx_rt_`, `sbx_cs_`) appears in the captured logs or in any
//! file of the embedded state.

use std::process::Command;

use syncbridge_tests::bin_dir;

fn scan(dir: &std::path::Path, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan(&p, found);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            for needle in [&b"sbx_at_"[..], b"sbx_rt_", b"sbx_cs_"] {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(format!(
                        "{} contains {}",
                        p.display(),
                        String::from_utf8_lossy(needle)
                    ));
                }
            }
        }
    }
}

/// A whole demo run syncs, refreshes a token, and leaks no secret to logs or state files.
#[test]
fn demo_runs_and_leaks_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin_dir().join("syncbridge"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "demo",
            "--records",
            "1500",
            "--token-ttl-secs",
            "3",
            "--json",
        ])
        .env("RUST_LOG", "debug")
        .current_dir(syncbridge_tests::repo_root())
        .output()
        .expect("syncbridge runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).expect("--json prints the summary");
    assert_eq!(summary["in_sync"], true, "{summary}");
    assert_eq!(summary["passes"][0]["counts"]["created"], 4500);
    // Top-level totals are the sums over the passes.
    for (total, count) in [
        ("records_fetched", "fetched"),
        ("created", "created"),
        ("updated", "updated"),
        ("unchanged", "unchanged"),
        ("deleted", "deleted"),
    ] {
        let sum: u64 = summary["passes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["counts"][count].as_u64().unwrap())
            .sum();
        assert_eq!(summary[total].as_u64(), Some(sum), "{total}: {summary}");
    }
    assert!(summary["records_fetched"].as_u64().unwrap() >= 4500);
    assert!(summary["deleted"].as_u64().unwrap() >= 10, "{summary}");
    assert!(summary["elapsed_ms"].as_u64().unwrap() > 0);
    assert!(
        summary["tokens_refreshed"].as_u64().unwrap() >= 1,
        "no token refresh: {summary}"
    );
    assert!(summary["provider_requests"].as_u64().unwrap() > 0);
    // The round trip: an update, a create and a conflicting edit pushed; the
    // conflict's first name resolved by `latest`, its phone parked (`manual`).
    assert_eq!(summary["pushed"], 3, "{summary}");
    assert_eq!(summary["conflicts_resolved"], 1, "{summary}");
    assert_eq!(summary["conflicts_parked"], 1, "{summary}");
    let round = &summary["passes"][2];
    assert_eq!(round["name"], "pull after push");
    assert_eq!(
        round["objects"]["contacts"]["counts"]["updated"], 1,
        "only the remote edit: our own writes came back unchanged: {summary}"
    );
    for needle in ["sbx_at_", "sbx_rt_", "sbx_cs_"] {
        assert!(
            !stdout.contains(needle) && !stderr.contains(needle),
            "{needle} leaked into the logs"
        );
    }
    assert!(
        stderr.len() > 1000,
        "debug logs were captured ({} bytes)",
        stderr.len()
    );
    let mut found = Vec::new();
    scan(dir.path(), &mut found);
    assert!(found.is_empty(), "plaintext secrets at rest: {found:?}");
}
