//! Packages the repository's real `host.json` and `functions/*/function.json`
//! (with stand-in binaries, so the test does not need a release build; the
//! bytes are copied verbatim either way), then opens every zip and checks its
//! layout, the execute bit and that host.json names the binary.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

const APPS: [(&str, &str); 6] = [
    ("SyncApi", "sync-api"),
    ("SyncInboundWorker", "sync-inbound-worker"),
    ("SyncOutboundWorker", "sync-outbound-worker"),
    ("SyncScheduler", "sync-scheduler"),
    ("TokenRefresher", "token-refresher"),
    ("WebhookReceiver", "webhook-receiver"),
];

fn read(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Vec<u8> {
    let mut f = zip
        .by_name(name)
        .unwrap_or_else(|_| panic!("{name} missing"));
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// Six zips, one per function (the five and the product API); each holds
/// exactly host.json, its binary (mode 0755) and its one function.json.
#[test]
fn six_zips_with_the_deployable_layout() {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for (_, exe) in APPS {
        std::fs::write(bins.join(exe), format!("\x7fELF stand-in for {exe}")).unwrap();
    }
    let out = dir.path().join("dist");
    let zips = syncbridge_package::package_all(Path::new(ROOT), &bins, &out).unwrap();
    assert_eq!(zips.len(), 6);

    for (function, exe) in APPS {
        let path = out.join(format!("{exe}.zip"));
        assert!(zips.contains(&path), "{path:?} written");
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let names: BTreeSet<String> = zip.file_names().map(str::to_owned).collect();
        let expected: BTreeSet<String> = [
            "host.json".to_string(),
            exe.to_string(),
            format!("{function}/function.json"),
        ]
        .into();
        assert_eq!(names, expected, "{exe}.zip layout");

        let mode = zip.by_name(exe).unwrap().unix_mode().unwrap();
        assert_eq!(mode & 0o777, 0o755, "{exe} is executable");
        let host_mode = zip.by_name("host.json").unwrap().unix_mode().unwrap();
        assert_eq!(host_mode & 0o111, 0, "host.json is not executable");

        let host: serde_json::Value = serde_json::from_slice(&read(&mut zip, "host.json")).unwrap();
        assert_eq!(
            host["customHandler"]["description"]["defaultExecutablePath"], exe,
            "host.json names the binary"
        );
        let repo_host: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/host.json")).unwrap())
                .unwrap();
        assert_eq!(
            host["extensions"], repo_host["extensions"],
            "the rest is the repo's host.json"
        );

        assert_eq!(
            read(&mut zip, &format!("{function}/function.json")),
            std::fs::read(format!("{ROOT}/functions/{function}/function.json")).unwrap(),
            "function.json byte for byte"
        );
        assert_eq!(
            read(&mut zip, exe),
            format!("\x7fELF stand-in for {exe}").into_bytes()
        );
    }
}

/// A missing binary is an error naming the file, not a half-written package.
#[test]
fn missing_binary_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = syncbridge_package::package_all(Path::new(ROOT), dir.path(), &dir.path().join("o"))
        .unwrap_err();
    // The first function in order is SyncApi: its binary is named.
    assert!(err.to_string().contains("sync-api"), "{err}");
}
