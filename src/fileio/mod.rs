//! The safe-file layer: everything the config editors do to a file on disk.
//!
//! It owns finding the file to edit ([`resolve_target`]: symlinks followed,
//! directories refused), reading it with a size limit ([`read_file`]), the
//! advisory lock held for a whole read-plan-write cycle ([`FileLock`]), the
//! atomic replacement that keeps owner and mode ([`TempFile`],
//! [`atomic_write`]), Ansible-style backups ([`backup`]) and the `validate`
//! command hook ([`run_validate`]). Errors are [`FileError`] and
//! [`ValidateError`], whose messages read like Ansible's.
//!
//! It knows nothing of Xen or of the Ansible protocol. Where Ansible defines
//! what users expect, the behaviour mirrors `module_utils/basic.py`
//! (`atomic_move`, `backup_local`, `run_command`) and
//! `ansible.builtin.lineinfile`; each place says which.
//!
//!
//! Each job has its own file: `read.rs` (finding and reading the file),
//! `lock.rs` (the advisory lock), `atomic.rs` (the temporary file and the
//! rename), `backup.rs` (dated backups) and `validate.rs` (the `validate`
//! hook). This file holds the errors and the helpers they share, and
//! re-exports every public item, so each is `xenpci::fileio::X`.
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use xenpci::fileio::{self, FileLock, TempFile, WriteOptions, DEFAULT_MAX_SIZE};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let target = fileio::resolve_target(Path::new("/etc/xen/guest.cfg"))?;
//! // Held until dropped: another run waits instead of losing our update.
//! let _lock = FileLock::acquire(&target)?;
//! let old = fileio::read_file(&target, DEFAULT_MAX_SIZE)?.unwrap_or_default();
//! let new = [old.as_slice(), b"pci = []\n"].concat();
//! if new != old {
//!     let backup_file = fileio::backup(&target)?;
//!     let tmp = TempFile::create_beside(&target, &new, &WriteOptions::default())?;
//!     fileio::run_validate("xl -N create %s", tmp.path())?;
//!     tmp.persist()?; // rename over the target; dropping `tmp` instead removes it
//!     assert!(backup_file.exists());
//! }
//! # Ok(()) }
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

mod atomic;
mod backup;
mod lock;
mod read;
mod validate;

pub use atomic::{atomic_write, TempFile, WriteOptions, DEFAULT_NEW_FILE_MODE};
pub use backup::backup;
pub use lock::{lock_path, FileLock, DEFAULT_LOCK_TIMEOUT};
pub use read::{read_file, resolve_target, DEFAULT_MAX_SIZE};
pub use validate::{check_template, run_validate, CommandOutput, ValidateError};

/// Tag in the names of our side files, so an administrator can tell whose
/// they are (`.guest.cfg.xenpci.lock`, `.guest.cfg.xenpci.123.0.tmp`).
const SIDE_FILE_TAG: &str = "xenpci";

/// Side-file names must stay under `NAME_MAX` (255): the original name is cut
/// to this many bytes inside them.
const SIDE_NAME_MAX: usize = 200;

/// What was being done when an I/O call failed; part of the message
/// ("cannot read /x: Permission denied").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Following the path and its symlinks.
    Resolve,
    /// Reading metadata.
    Stat,
    /// Opening an existing file.
    Open,
    /// Reading contents.
    Read,
    /// Creating a file (temporary file, lock file, backup).
    Create,
    /// Writing contents.
    Write,
    /// Flushing a file to disk.
    Sync,
    /// Giving the new file the original's owner and group.
    KeepOwner,
    /// Giving the new file its mode.
    SetMode,
    /// Setting the backup's access and modification times.
    SetTimes,
    /// Renaming the temporary file over the destination.
    Replace,
    /// Flushing the directory entry of a rename to disk.
    SyncDir,
    /// Taking the advisory lock.
    Lock,
    /// Copying the contents into a backup.
    Backup,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::Resolve => "resolve",
            FileOp::Stat => "stat",
            FileOp::Open => "open",
            FileOp::Read => "read",
            FileOp::Create => "create",
            FileOp::Write => "write",
            FileOp::Sync => "sync",
            FileOp::KeepOwner => "keep the owner and group of",
            FileOp::SetMode => "set the mode of",
            FileOp::SetTimes => "set the times of",
            FileOp::Replace => "replace",
            FileOp::SyncDir => "sync the directory",
            FileOp::Lock => "lock",
            FileOp::Backup => "back up",
        })
    }
}

/// Why a file operation failed. Every variant keeps the path it is about;
/// [`FileError::Io`] also keeps the operation and the `io::Error`.
///
/// The reason is part of the message (Ansible prints one `msg`), so the
/// `io::Error` is a plain field rather than the error's `source()`: an error
/// chain printer would otherwise say it twice. Use [`FileError::io_error`].
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path names a directory (lineinfile: "Path %s is a directory !").
    #[error("Path {} is a directory", .path.display())]
    IsADirectory {
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// The path names a device, FIFO, socket, or (for [`TempFile::persist`])
    /// a symlink, none of which this layer edits.
    #[error("Path {} is not a regular file", .path.display())]
    NotRegularFile {
        /// The path as the caller gave it.
        path: PathBuf,
    },
    /// The file is missing where it must exist. This layer never returns it
    /// on its own: [`resolve_target`] and [`read_file`] report a missing file
    /// as a normal outcome; a caller with `create: false` returns this
    /// (lineinfile: "Destination %s does not exist !").
    #[error("Destination {} does not exist", .path.display())]
    NotFound {
        /// The path as the user named it.
        path: PathBuf,
    },
    /// The folder that would hold the file is missing.
    #[error("Destination directory {} does not exist", .path.display())]
    ParentNotFound {
        /// The missing folder.
        path: PathBuf,
    },
    /// The file is bigger than the caller's limit; it was not read whole.
    #[error("{} is too large: {size} bytes, the limit is {limit} bytes", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this many bytes).
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// Another process held the lock for longer than the timeout.
    #[error(
        "timed out after {:.1}s waiting for the lock on {} (held on {})",
        .waited.as_secs_f32(), .path.display(), .lock.display()
    )]
    LockTimeout {
        /// The file the lock protects.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// A system call failed.
    #[error("cannot {op} {}: {}", .path.display(), io_reason(.error))]
    Io {
        /// What was being done.
        op: FileOp,
        /// The file it was done to.
        path: PathBuf,
        /// The system's error.
        error: io::Error,
    },
}

impl FileError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::IsADirectory { path }
            | FileError::NotRegularFile { path }
            | FileError::NotFound { path }
            | FileError::ParentNotFound { path }
            | FileError::TooLarge { path, .. }
            | FileError::LockTimeout { path, .. }
            | FileError::Io { path, .. } => path,
        }
    }

    /// The underlying `io::Error`, for the variants that have one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            FileError::Io { error, .. } => Some(error),
            _ => None,
        }
    }

    fn io(op: FileOp, path: &Path, error: io::Error) -> Self {
        FileError::Io {
            op,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// "Permission denied" rather than std's "Permission denied (os error 13)":
/// Ansible's messages carry the bare `strerror` text.
fn io_reason(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => error.to_string(),
    }
}

fn errno_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno as i32)
}

/// Refuses what this layer never edits. `path` is the caller's spelling, so
/// the message names what the user wrote.
fn check_regular(path: &Path, meta: &Metadata) -> Result<(), FileError> {
    if meta.is_dir() {
        return Err(FileError::IsADirectory {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(FileError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The folder holding `path`; `.` for a bare relative name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `.NAME.xenpci.SUFFIX` beside `target`, NAME cut to stay under NAME_MAX.
fn side_file(target: &Path, suffix: &str) -> Result<PathBuf, FileError> {
    let name = target
        .file_name()
        .ok_or_else(|| FileError::NotRegularFile {
            path: target.to_path_buf(),
        })?;
    let name = name.as_bytes();
    let mut side = b".".to_vec();
    side.extend_from_slice(&name[..name.len().min(SIDE_NAME_MAX)]);
    side.extend_from_slice(format!(".{SIDE_FILE_TAG}.{suffix}").as_bytes());
    Ok(parent_dir(target).join(OsStr::from_bytes(&side)))
}

/// Helpers shared by the unit tests of every file of this module.
#[cfg(test)]
mod test_util {
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use tempfile::TempDir;

    pub(super) fn dir() -> TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    pub(super) fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").mode() & 0o7777
    }

    pub(super) fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    pub(super) fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_message_has_the_bare_reason() {
        let err = FileError::io(FileOp::Read, Path::new("/x"), errno_error(Errno::EACCES));
        assert_eq!(err.to_string(), "cannot read /x: Permission denied");
        assert_eq!(err.path(), Path::new("/x"));
    }
}
