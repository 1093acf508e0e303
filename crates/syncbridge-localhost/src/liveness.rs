//! Which local hosts on a data dir are alive, so a host starting after one
//! that died (`kill -9`, a crash, power loss) can take back the messages the
//! dead one held locked instead of waiting out their locks (the invocation
//! timeout plus a minute, i.e. half an hour by default).
//!
//! Each running host holds an exclusive advisory lock (`flock`) on its own
//! file `<data_dir>/hosts/<id>.lock`. The kernel drops the lock when the
//! process ends, however it ends, so a file whose lock can be taken belongs
//! to a dead host. A file is locked before it gets its `.lock` name (created
//! as `.tmp`, locked, renamed), so another host never sees a live host's
//! file unlocked.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The sub-folder of the data dir with one lock file per running host.
pub const HOSTS_DIR: &str = "hosts";

/// This host's claim; dropping it removes the file (the lock goes with the process anyway).
#[derive(Debug)]
pub(crate) struct HostClaim {
    _file: File,
    path: PathBuf,
}

impl Drop for HostClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`claim`] found besides this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Others {
    /// Hosts still running on this data dir.
    pub alive: usize,
    /// Files of hosts that died without cleaning up (removed now).
    pub dead: usize,
}

/// Registers this host (`id`) as alive on `data_dir` and counts the others.
pub(crate) fn claim(data_dir: &Path, id: &str) -> io::Result<(HostClaim, Others)> {
    let dir = data_dir.join(HOSTS_DIR);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{id}.tmp"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)?;
    let path = dir.join(format!("{id}.lock"));
    std::fs::rename(&tmp, &path)?;
    let mine = HostClaim { _file: file, path };
    let mut others = Others { alive: 0, dead: 0 };
    for entry in std::fs::read_dir(&dir)? {
        let p = entry?.path();
        let kind = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if p == mine.path || !matches!(kind, "lock" | "tmp") {
            continue;
        }
        let Ok(f) = File::open(&p) else { continue };
        match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            // Nobody holds it: its host is gone (a `.tmp` one died while claiming).
            Ok(()) => {
                let _ = std::fs::remove_file(&p);
                others.dead += usize::from(kind == "lock");
            }
            Err(_) => others.alive += usize::from(kind == "lock"),
        }
    }
    Ok((mine, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live claim is seen as alive by the next host; once dropped (or its process
    /// gone), a left-over file counts as dead and is removed.
    #[test]
    fn live_and_dead_hosts_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, none) = claim(dir.path(), "a").unwrap();
        assert_eq!(none, Others { alive: 0, dead: 0 });
        let (b, seen) = claim(dir.path(), "b").unwrap();
        assert_eq!(seen, Others { alive: 1, dead: 0 });
        drop(b);
        // A host that died leaves its file behind, unlocked.
        std::fs::write(dir.path().join(HOSTS_DIR).join("ghost.lock"), b"").unwrap();
        let (_c, seen) = claim(dir.path(), "c").unwrap();
        assert_eq!(seen, Others { alive: 1, dead: 1 });
        assert!(!dir.path().join(HOSTS_DIR).join("ghost.lock").exists());
        drop(a);
    }
}
