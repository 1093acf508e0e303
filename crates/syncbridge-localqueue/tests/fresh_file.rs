//! A fresh queue file opened by many handles at once, as the five handlers of
//! a new data dir open `queue.db` together (issue 14).

use std::sync::{Arc, Barrier};

use syncbridge_localqueue::LocalQueue;

/// What was tried: 50 fresh files, each opened by 8 handles at once (threads
/// released together; SQLite locks connections of one process against each
/// other as it locks processes). What holds: every open succeeds and every
/// handle can send. Before the fix, switching the new file to WAL failed
/// with "database is locked" for some openers: SQLite does not wait for that
/// lock through the busy timeout.
#[test]
fn concurrent_opens_of_a_fresh_file_all_succeed() {
    const FILES: usize = 50;
    const OPENERS: usize = 8;
    let mut failures = Vec::new();
    for round in 0..FILES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let barrier = Arc::new(Barrier::new(OPENERS));
        let handles: Vec<_> = (0..OPENERS)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let q = LocalQueue::open(&path)?;
                    q.declare_queue(&format!("q{i}"))?;
                    Ok::<_, syncbridge_localqueue::LocalQueueError>(())
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                failures.push(format!("file {round}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed, first: {:?}",
        failures.len(),
        FILES * OPENERS,
        &failures[..failures.len().min(5)]
    );
}
