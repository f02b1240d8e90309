//! The advisory lock held for a whole read-plan-write cycle ([`FileLock`],
//! on the sidecar file named by [`lock_path`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use super::{errno_error, side_file, FileError, FileOp};

/// How long [`FileLock::acquire`] waits for another run before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two non-blocking lock attempts: short enough that a waiting
/// run starts soon after the holder finishes, long enough not to spin.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The lock file that [`FileLock`] uses for `target`: `.NAME.xenpci.lock`
/// in the same folder.
///
/// # Errors
/// [`FileError::NotRegularFile`] when `target` has no file name.
pub fn lock_path(target: &Path) -> Result<PathBuf, FileError> {
    side_file(target, "lock")
}

/// An exclusive advisory lock on a file, held for a whole read-plan-write
/// cycle so that concurrent runs on one file lose no update. Released when
/// dropped.
///
/// The `flock` is taken on a sidecar lock file ([`lock_path`]), not on the
/// target: the target is replaced by rename, so a lock on its old inode would
/// not exclude a process that opened the new one after the rename, and two
/// runs would each "hold" the lock at once. The lock file is never replaced.
///
/// The lock file is left in place afterwards: removing it races (a waiter
/// that opened it before the unlink would lock an orphaned inode while a
/// newcomer creates and locks a fresh file). It is advisory: only runs that
/// take it are excluded; an editor ignoring it is not.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// Locks `target` (a path from [`resolve_target`](super::resolve_target)), waiting at most
    /// [`DEFAULT_LOCK_TIMEOUT`].
    ///
    /// # Errors
    /// See [`FileLock::acquire_timeout`].
    pub fn acquire(target: &Path) -> Result<Self, FileError> {
        Self::acquire_timeout(target, DEFAULT_LOCK_TIMEOUT)
    }

    /// Locks `target`, waiting at most `timeout` (zero: try once).
    ///
    /// `flock` has no timeout of its own, so this polls with `LOCK_NB` and
    /// short sleeps; a blocking `flock` could hang a playbook forever behind
    /// a stuck run.
    ///
    /// # Errors
    /// [`FileError::LockTimeout`] when another holder keeps it too long;
    /// [`FileError::Io`] when the lock file cannot be created (it is opened
    /// with `O_NOFOLLOW`: a symlink planted in its place is refused) or
    /// locked.
    pub fn acquire_timeout(target: &Path, timeout: Duration) -> Result<Self, FileError> {
        let path = lock_path(target)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(|e| FileError::io(FileOp::Create, &path, e))?;
        let start = Instant::now();
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(FileLock { _lock: lock, path }),
                Err((unlocked, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                    let waited = start.elapsed();
                    if waited >= timeout {
                        return Err(FileError::LockTimeout {
                            path: target.to_path_buf(),
                            lock: path,
                            waited,
                        });
                    }
                    file = unlocked;
                    std::thread::sleep(LOCK_POLL_INTERVAL.min(timeout - waited));
                }
                Err((_, errno)) => {
                    return Err(FileError::io(FileOp::Lock, &path, errno_error(errno)))
                }
            }
        }
    }

    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileio::test_util::{dir, mode_of};
    use crate::fileio::{atomic_write, read_file, WriteOptions};
    use std::fs;
    use std::sync::{Arc, Barrier};

    #[test]
    fn lock_file_is_a_hidden_0600_sidecar() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        let lock = FileLock::acquire(&target).expect("lock");
        assert_eq!(lock.path(), d.path().join(".guest.cfg.xenpci.lock"));
        assert_eq!(lock.path(), lock_path(&target).expect("lock path"));
        assert_eq!(mode_of(lock.path()) & 0o077, 0);
        drop(lock);
        assert!(
            d.path().join(".guest.cfg.xenpci.lock").exists(),
            "left in place"
        );
    }

    #[test]
    fn lock_excludes_a_second_locker_until_released() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        let first = FileLock::acquire(&target).expect("first");
        let started = Instant::now();
        let err = FileLock::acquire_timeout(&target, Duration::from_millis(150))
            .expect_err("held by first");
        assert!(matches!(err, FileError::LockTimeout { .. }), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(150));
        // A waiter gets it once the holder lets go.
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        FileLock::acquire_timeout(&target, Duration::from_secs(10)).expect("after release");
        holder.join().expect("holder thread");
    }

    #[test]
    fn concurrent_locked_edits_lose_no_update() {
        let d = dir();
        let target = Arc::new(d.path().join("counter"));
        atomic_write(&target, b"0", &WriteOptions::default()).expect("init");
        let runs = 16;
        let barrier = Arc::new(Barrier::new(runs));
        let workers: Vec<_> = (0..runs)
            .map(|_| {
                let (target, barrier) = (Arc::clone(&target), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    let _lock = FileLock::acquire(&target).expect("lock");
                    let text = read_file(&target, 64).expect("read").expect("exists");
                    let n: u32 = String::from_utf8(text).expect("utf8").parse().expect("n");
                    std::thread::yield_now();
                    atomic_write(
                        &target,
                        (n + 1).to_string().as_bytes(),
                        &WriteOptions::default(),
                    )
                    .expect("write");
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        assert_eq!(
            fs::read_to_string(&*target).expect("read"),
            runs.to_string()
        );
    }
}
