//! Encryption at rest: the key file, envelope sealing, key rotation and
//! tamper detection, with a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use syncbridge_core::credentials::CredentialError;
use syncbridge_core::secrets::SecretStore;
use syncbridge_core::{Clock, ConnectionId, SecretString, Store, SystemClock};
use syncbridge_credentials::{
    ClientRegistry, CredentialDoc, CredentialManager, LocalKeyFile, SealError, Sealer,
};
use syncbridge_sqlite::SqliteStore;

fn id(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

fn manager(store: Arc<SqliteStore>, sealer: Arc<Sealer>) -> CredentialManager {
    CredentialManager::builder(store, sealer, ClientRegistry::new())
        .build()
        .unwrap()
}

fn doc(n: u32) -> CredentialDoc {
    CredentialDoc::oauth2(
        SecretString::new(format!("sbx_at_test{n}")),
        Some(SecretString::new(format!("sbx_rt_test{n}"))),
        Some(Duration::from_secs(3600)),
        SystemClock.now(),
    )
}

/// The key file is created on first use readable by its owner only, and a too-open existing file is tightened.
#[cfg(unix)]
#[tokio::test]
async fn key_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let kf = LocalKeyFile::open_in(dir.path()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(kf.path(), dir.path().join("keys.json"));
    assert_eq!(mode(kf.path()), 0o600);
    // Writing a key keeps it owner-only (the file is replaced by rename).
    let sealer = Sealer::new(Arc::new(kf.clone()));
    sealer.seal(&id("c"), b"x").await.unwrap();
    assert_eq!(mode(kf.path()), 0o600);
    let text = std::fs::read_to_string(kf.path()).unwrap();
    assert!(text.contains("credentials-dek"));
    // Someone widened it: reopening restricts it again.
    std::fs::set_permissions(kf.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    LocalKeyFile::open_in(dir.path()).unwrap();
    assert_eq!(mode(kf.path()), 0o600);
}

/// Credentials sealed under key v1 still open after a rotation; new seals use v2; a new process (fresh sealer) opens both.
#[tokio::test]
async fn rotation_keeps_old_credentials_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
    let sealer = Arc::new(Sealer::local(dir.path()).unwrap());
    let m = manager(store.clone(), sealer.clone());
    m.store_initial(&id("old"), doc(1)).await.unwrap();
    assert_eq!(
        store
            .get_credential(&id("old"))
            .await
            .unwrap()
            .unwrap()
            .key_version,
        "1"
    );

    assert_eq!(sealer.rotate().await.unwrap(), "2");
    m.store_initial(&id("new"), doc(2)).await.unwrap();
    assert_eq!(
        store
            .get_credential(&id("new"))
            .await
            .unwrap()
            .unwrap()
            .key_version,
        "2"
    );
    assert_eq!(
        m.open(&id("old"))
            .await
            .unwrap()
            .unwrap()
            .doc
            .access_token()
            .unwrap()
            .expose(),
        "sbx_at_test1"
    );

    let fresh = manager(store.clone(), Arc::new(Sealer::local(dir.path()).unwrap()));
    for (c, n) in [("old", 1), ("new", 2)] {
        let o = fresh.open(&id(c)).await.unwrap().unwrap();
        assert_eq!(
            o.doc.access_token().unwrap().expose(),
            format!("sbx_at_test{n}")
        );
    }
    // Re-saving the old credential re-seals it under the current key.
    fresh.store_initial(&id("old"), doc(3)).await.unwrap();
    assert_eq!(
        store
            .get_credential(&id("old"))
            .await
            .unwrap()
            .unwrap()
            .key_version,
        "2"
    );
}

/// A flipped ciphertext or nonce byte, or a blob copied to another connection, fails to open with a clear error naming the connection.
#[tokio::test]
async fn tampered_or_moved_ciphertext_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
    let sealer = Arc::new(Sealer::local(dir.path()).unwrap());
    let m = manager(store.clone(), sealer.clone());
    m.store_initial(&id("victim"), doc(1)).await.unwrap();
    let good = store.get_credential(&id("victim")).await.unwrap().unwrap();

    let mut bad = good.clone();
    bad.version += 1;
    bad.ciphertext[3] ^= 0x01;
    assert!(
        store
            .put_credential(&bad, Some(good.version))
            .await
            .unwrap()
    );
    match m.open(&id("victim")).await {
        Err(CredentialError::Permanent(msg)) => {
            assert!(
                msg.contains("victim") && msg.contains("failed authentication"),
                "{msg}"
            );
        }
        other => panic!("expected a clear failure, got {other:?}"),
    }
    let e = sealer
        .open(&id("victim"), &bad.key_version, &bad.nonce, &bad.ciphertext)
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::Tampered { .. }), "{e}");

    let mut nonce = good.nonce.clone();
    nonce[0] ^= 0x80;
    assert!(matches!(
        sealer
            .open(&id("victim"), &good.key_version, &nonce, &good.ciphertext)
            .await,
        Err(SealError::Tampered { .. })
    ));

    // The intact blob moved to another connection's row.
    let mut moved = good.clone();
    moved.connection = id("thief");
    moved.version = 1;
    assert!(store.put_credential(&moved, None).await.unwrap());
    assert!(matches!(
        m.open(&id("thief")).await,
        Err(CredentialError::Permanent(_))
    ));
    // And the original still opens.
    assert!(
        sealer
            .open(
                &id("victim"),
                &good.key_version,
                &good.nonce,
                &good.ciphertext
            )
            .await
            .is_ok()
    );
}

/// A blob naming a key version the secret store lacks reports the missing version.
#[tokio::test]
async fn missing_key_version_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = Sealer::local(dir.path()).unwrap();
    let s = sealer.seal(&id("c"), b"hello").await.unwrap();
    let e = sealer
        .open(&id("c"), "99", &s.nonce, &s.ciphertext)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SealError::KeyMissing { version, .. } if version == "99"),
        "{e}"
    );
    assert_eq!(
        sealer
            .open(&id("c"), &s.key_version, &s.nonce, &s.ciphertext)
            .await
            .unwrap(),
        b"hello"
    );
}

/// Nonces are fresh per seal: sealing the same plaintext twice gives different nonces and ciphertexts.
#[tokio::test]
async fn nonces_are_random() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = Sealer::local(dir.path()).unwrap();
    let a = sealer.seal(&id("c"), b"same").await.unwrap();
    let b = sealer.seal(&id("c"), b"same").await.unwrap();
    assert_eq!(a.nonce.len(), 12);
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
}

/// Eight writers adding key versions at once (separate handles, as separate processes would) lose none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_key_writers_lose_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let kf = LocalKeyFile::open_in(&path).unwrap();
            let v = kf
                .put_key("k", &SecretString::new(format!("value-{i}")))
                .await
                .unwrap();
            (v, i)
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let kf = LocalKeyFile::open_in(&path).unwrap();
    let mut versions: Vec<u64> = seen.iter().map(|(v, _)| v.parse().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    for (v, i) in seen {
        let (got_v, val) = kf.get_key("k", Some(&v)).await.unwrap().unwrap();
        assert_eq!((got_v, val.expose().to_owned()), (v, format!("value-{i}")));
    }
    assert_eq!(kf.get_key("k", None).await.unwrap().unwrap().0, "8");
    assert!(kf.get_key("nope", None).await.unwrap().is_none());
}
