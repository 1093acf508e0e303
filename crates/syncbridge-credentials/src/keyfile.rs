//! [`LocalKeyFile`]: the embedded default [`SecretStore`], a JSON file of
//! named, versioned keys under the data directory (`<data_dir>/keys.json`).
//!
//! - Created on first use with owner-only permissions (`0600` on Unix); an
//!   existing file with wider permissions is tightened and a warning logged.
//! - Every [`put_key`](SecretStore::put_key) adds a version (`1`, `2`, …) and
//!   makes it current; old versions stay so data sealed under them still opens.
//! - Several processes share the file: writes take an exclusive lock file
//!   (`keys.json.lock`, created with `O_EXCL`; a lock older than
//!   [`STALE_LOCK`] is considered abandoned by a crashed process) and replace
//!   the file atomically (write a temporary file, fsync, rename), so a reader
//!   never sees a half-written file and two writers never lose a version.
//!
//! File format (`format` 1):
//!
//! ```json
//! {"format":1,"keys":{"credentials-dek":{"current":2,"versions":{"1":"<base64>","2":"<base64>"}}}}
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use syncbridge_core::SecretString;
use syncbridge_core::secrets::{SecretStore, SecretStoreError};

/// File name of the key file inside a data directory.
pub const KEY_FILE_NAME: &str = "keys.json";

/// A lock file older than this belongs to a crashed writer and is removed.
pub const STALE_LOCK: Duration = Duration::from_secs(30);

/// How long a writer waits for the lock file before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFileDoc {
    format: u32,
    #[serde(default)]
    keys: BTreeMap<String, NamedKey>,
}

#[derive(Serialize, Deserialize)]
struct NamedKey {
    current: u64,
    versions: BTreeMap<u64, SecretString>,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey")
            .field("current", &self.current)
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The local key file. Cheap to clone; every call reads the file, so
/// versions added by other processes are seen at once.
#[derive(Debug, Clone)]
pub struct LocalKeyFile {
    path: PathBuf,
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> SecretStoreError {
    SecretStoreError::Unavailable(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn owner_only(opts: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600)
}

#[cfg(not(unix))]
fn owner_only(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts
}

/// Tightens an existing file to `0600` if group or others have any access.
#[cfg(unix)]
fn tighten(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", mode & 0o777),
            "key file was readable by others; restricting it to the owner"
        );
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_: &Path) -> io::Result<()> {
    Ok(())
}

/// Removes the lock file when dropped.
struct LockGuard(PathBuf);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl LocalKeyFile {
    /// The key file of a data directory: `<data_dir>/keys.json`, created
    /// (empty, `0600`) if missing.
    ///
    /// # Errors
    /// The directory or file cannot be created or read.
    pub fn open_in(data_dir: impl AsRef<Path>) -> Result<Self, SecretStoreError> {
        Self::open(data_dir.as_ref().join(KEY_FILE_NAME))
    }

    /// The key file at `path`, created (empty, `0600`) if missing.
    ///
    /// # Errors
    /// The file cannot be created, or exists and is not a key file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SecretStoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| unavailable(dir, e))?;
        }
        match owner_only(OpenOptions::new().write(true).create_new(true)).open(&path) {
            Ok(mut f) => {
                let empty = KeyFileDoc {
                    format: 1,
                    keys: BTreeMap::new(),
                };
                let text = serde_json::to_vec(&empty).expect("key file serializes");
                f.write_all(&text).map_err(|e| unavailable(&path, e))?;
                f.sync_all().map_err(|e| unavailable(&path, e))?;
                tracing::info!(path = %path.display(), "created key file");
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                tighten(&path).map_err(|e| unavailable(&path, e))?;
            }
            Err(e) => return Err(unavailable(&path, e)),
        }
        let kf = LocalKeyFile { path };
        kf.read()?;
        Ok(kf)
    }

    /// Where the keys live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new random 256-bit key, base64 (standard alphabet).
    pub fn generate_key() -> SecretString {
        use aes_gcm::aead::{KeyInit, OsRng};
        use base64::Engine;
        let key = aes_gcm::Aes256Gcm::generate_key(&mut OsRng);
        SecretString::new(base64::engine::general_purpose::STANDARD.encode(key))
    }

    fn read(&self) -> Result<KeyFileDoc, SecretStoreError> {
        let bytes = fs::read(&self.path).map_err(|e| unavailable(&self.path, e))?;
        if bytes.is_empty() {
            // A creator between `create_new` and its first write.
            return Ok(KeyFileDoc {
                format: 1,
                keys: BTreeMap::new(),
            });
        }
        // serde_json's messages can quote values: report only the position.
        let doc: KeyFileDoc = serde_json::from_slice(&bytes).map_err(|e| {
            SecretStoreError::Corrupt(format!(
                "{}: not a key file (line {}, column {})",
                self.path.display(),
                e.line(),
                e.column()
            ))
        })?;
        if doc.format != 1 {
            return Err(SecretStoreError::Corrupt(format!(
                "{}: unknown key file format {}",
                self.path.display(),
                doc.format
            )));
        }
        Ok(doc)
    }

    fn lock(&self) -> Result<LockGuard, SecretStoreError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        let start = Instant::now();
        loop {
            match owner_only(OpenOptions::new().write(true).create_new(true)).open(&lock_path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(LockGuard(lock_path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&lock_path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        tracing::warn!(path = %lock_path.display(), "removing abandoned key file lock");
                        let _ = fs::remove_file(&lock_path);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(unavailable(
                            &lock_path,
                            "key file is locked by another writer",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(unavailable(&lock_path, e)),
            }
        }
    }

    fn write(&self, doc: &KeyFileDoc) -> Result<(), SecretStoreError> {
        let text = serde_json::to_vec_pretty(doc).expect("key file serializes");
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let _ = fs::remove_file(&tmp);
        let mut f: File = owner_only(OpenOptions::new().write(true).create_new(true))
            .open(&tmp)
            .map_err(|e| unavailable(&tmp, e))?;
        f.write_all(&text).map_err(|e| unavailable(&tmp, e))?;
        f.sync_all().map_err(|e| unavailable(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| unavailable(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn get_blocking(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(String, SecretString)>, SecretStoreError> {
        let doc = self.read()?;
        let Some(k) = doc.keys.get(name) else {
            return Ok(None);
        };
        let v = match version {
            None => k.current,
            Some(v) => match v.parse::<u64>() {
                Ok(v) => v,
                Err(_) => return Ok(None),
            },
        };
        Ok(k.versions.get(&v).map(|s| (v.to_string(), s.clone())))
    }

    fn put_blocking(&self, name: &str, value: &SecretString) -> Result<String, SecretStoreError> {
        let _guard = self.lock()?;
        let mut doc = self.read()?;
        doc.format = 1;
        let k = doc.keys.entry(name.to_owned()).or_insert_with(|| NamedKey {
            current: 0,
            versions: BTreeMap::new(),
        });
        let next = k.versions.keys().next_back().copied().unwrap_or(0) + 1;
        k.versions.insert(next, value.clone());
        k.current = next;
        self.write(&doc)?;
        tracing::info!(key = name, version = next, "stored new key version");
        Ok(next.to_string())
    }
}

#[async_trait::async_trait]
impl SecretStore for LocalKeyFile {
    async fn get_key(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(String, SecretString)>, SecretStoreError> {
        let (me, name, version) = (self.clone(), name.to_owned(), version.map(str::to_owned));
        tokio::task::spawn_blocking(move || me.get_blocking(&name, version.as_deref()))
            .await
            .map_err(|e| SecretStoreError::Unavailable(format!("key file task failed: {e}")))?
    }

    async fn put_key(&self, name: &str, value: &SecretString) -> Result<String, SecretStoreError> {
        let (me, name, value) = (self.clone(), name.to_owned(), value.clone());
        tokio::task::spawn_blocking(move || me.put_blocking(&name, &value))
            .await
            .map_err(|e| SecretStoreError::Unavailable(format!("key file task failed: {e}")))?
    }
}
