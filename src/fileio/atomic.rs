//! Atomic replacement that keeps owner and mode: the temporary file beside
//! the destination ([`TempFile`], [`WriteOptions`]) and [`atomic_write`].

use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

use super::{check_regular, errno_error, parent_dir, side_file, FileError, FileOp};

/// Mode of a newly created file before the umask is applied: `0666`, as
/// Ansible's `atomic_move` does for a file it creates (`_DEFAULT_PERM`).
pub const DEFAULT_NEW_FILE_MODE: u32 = 0o666;

/// How [`TempFile`] and [`atomic_write`] treat a destination that does not
/// exist yet (an existing one always keeps its owner, group and mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Mode of a newly created file, applied exactly (like Ansible's `mode`
    /// argument, not masked). `None`: [`DEFAULT_NEW_FILE_MODE`] less the
    /// process umask, as Ansible's `atomic_move` does when it creates a file;
    /// with the usual umask 022 that is 0644.
    pub new_file_mode: Option<u32>,
}

/// Owner, group and mode to give the finished file before it is renamed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Attrs {
    /// Those of an existing file: uid, gid, permission bits (with
    /// setuid/setgid/sticky).
    Keep { uid: u32, gid: u32, mode: u32 },
    /// A new file: only a mode; owner and group are ours, and the group
    /// follows a setgid folder, as for any file we create.
    New { mode: u32 },
}

impl Attrs {
    pub(super) fn of(meta: &Metadata) -> Self {
        Attrs::Keep {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        }
    }
}

/// The process umask, read without changing it where Linux allows.
fn current_umask() -> u32 {
    // umask(2) can only be read by setting it, and setting it even for an
    // instant changes the mode of files other threads create meanwhile;
    // /proc/self/status has shown it since Linux 4.7.
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(value) = line.strip_prefix("Umask:") {
                if let Ok(mask) = u32::from_str_radix(value.trim(), 8) {
                    return mask;
                }
            }
        }
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}

/// Makes each side file name unique within this process; the pid makes it
/// unique between processes, and `O_EXCL` catches a leftover of a dead one.
static SIDE_FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The contents of a file-to-be, written beside its destination under a
/// temporary name, until [`TempFile::persist`] renames it over the
/// destination. Dropped without `persist` (or when `persist` fails), it
/// removes itself: an interrupted edit leaves the destination as it was.
///
/// The two steps leave room between them for a `validate` command on the
/// finished contents ([`run_validate`](super::run_validate) on [`TempFile::path`]).
#[derive(Debug)]
pub struct TempFile {
    pub(super) file: File,
    path: PathBuf,
    target: PathBuf,
    new_file_mode: Option<u32>,
    persisted: bool,
}

impl TempFile {
    /// Writes `bytes` to a new temporary file in the folder of `target` (a
    /// path from [`resolve_target`](super::resolve_target)), named `.NAME.xenpci.PID.N.tmp`.
    ///
    /// The same folder keeps the final rename atomic (no cross-filesystem
    /// copy). The file is created with `O_EXCL` (a planted file or symlink
    /// is never written through) and mode 0600: until `persist` copies the
    /// destination's owner and mode it is never readable by more users than
    /// the original, not even for a moment.
    ///
    /// # Errors
    /// [`FileError::Io`] (`create`, `write`); the partial file is removed.
    pub fn create_beside(
        target: &Path,
        bytes: &[u8],
        opts: &WriteOptions,
    ) -> Result<Self, FileError> {
        let mut tmp = Self::empty_beside(target, opts.new_file_mode)?;
        tmp.file
            .write_all(bytes)
            .map_err(|e| FileError::io(FileOp::Write, &tmp.path, e))?;
        Ok(tmp)
    }

    pub(super) fn empty_beside(
        target: &Path,
        new_file_mode: Option<u32>,
    ) -> Result<Self, FileError> {
        let pid = std::process::id();
        // A few collisions can only come from leftovers of a dead process
        // with our pid; more means something else is wrong.
        let mut last_error = errno_error(Errno::EEXIST);
        for _ in 0..100 {
            let n = SIDE_FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = side_file(target, &format!("{pid}.{n}.tmp"))?;
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    if let Ok(meta) = file.metadata() {
                        sweep_stale(target, meta.mtime());
                    }
                    return Ok(TempFile {
                        file,
                        path,
                        target: target.to_path_buf(),
                        new_file_mode,
                        persisted: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = e,
                Err(e) => return Err(FileError::io(FileOp::Create, &path, e)),
            }
        }
        Err(FileError::io(FileOp::Create, target, last_error))
    }

    /// The temporary file, for a `validate` command.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The destination that [`TempFile::persist`] replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Replaces the destination with this file, atomically.
    ///
    /// In order: give the file the destination's owner and group (`fchown`)
    /// and mode (`fchmod`, after the chown, which clears setuid bits), or
    /// for a new destination the mode of [`WriteOptions::new_file_mode`];
    /// `fsync` it; `rename` it over the destination; `fsync` the folder so
    /// the rename survives a crash. A reader sees the old file or the new
    /// one, never a mix.
    ///
    /// Unlike `atomic_move`, which ignores `EPERM` from chown, a destination
    /// whose owner or group we cannot keep is an error and is left alone:
    /// silently handing someone's file to us would break the promise to keep
    /// the owner, and could make it readable by our group. As root this
    /// never happens. Extended attributes, ACLs and SELinux labels are not
    /// copied; hard links to the destination keep the old contents (as with
    /// any rename-based editor).
    ///
    /// # Errors
    /// [`FileError::IsADirectory`] / [`FileError::NotRegularFile`] when the
    /// destination is no longer a regular file (a symlink here means the
    /// caller skipped [`resolve_target`](super::resolve_target); replacing it would break the
    /// link), [`FileError::Io`] otherwise. On an error before the rename the
    /// temporary file is removed and the destination is untouched; an error
    /// from the final folder `fsync` (after the rename) means the new
    /// contents are in place but perhaps not yet durable.
    pub fn persist(mut self) -> Result<(), FileError> {
        let attrs = match fs::symlink_metadata(&self.target) {
            Ok(meta) => {
                check_regular(&self.target, &meta)?;
                Attrs::of(&meta)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Attrs::New {
                mode: self
                    .new_file_mode
                    .unwrap_or(DEFAULT_NEW_FILE_MODE & !current_umask()),
            },
            Err(e) => return Err(FileError::io(FileOp::Stat, &self.target, e)),
        };
        self.finish(attrs)
    }

    /// Sets `attrs`, syncs, renames onto `self.target`, syncs the folder.
    pub(super) fn finish(&mut self, attrs: Attrs) -> Result<(), FileError> {
        let mode = match attrs {
            Attrs::Keep { uid, gid, mode } => {
                let meta = self
                    .file
                    .metadata()
                    .map_err(|e| FileError::io(FileOp::Stat, &self.path, e))?;
                // Ask only for what differs: a non-root owner may still
                // change the group to one of its own, but never the owner.
                let uid = (meta.uid() != uid).then_some(uid);
                let gid = (meta.gid() != gid).then_some(gid);
                if uid.is_some() || gid.is_some() {
                    std::os::unix::fs::fchown(&self.file, uid, gid)
                        .map_err(|e| FileError::io(FileOp::KeepOwner, &self.target, e))?;
                }
                mode
            }
            Attrs::New { mode } => mode,
        };
        self.file
            .set_permissions(Permissions::from_mode(mode))
            .map_err(|e| FileError::io(FileOp::SetMode, &self.target, e))?;
        self.file
            .sync_all()
            .map_err(|e| FileError::io(FileOp::Sync, &self.path, e))?;
        fs::rename(&self.path, &self.target)
            .map_err(|e| FileError::io(FileOp::Replace, &self.target, e))?;
        // The temporary name is gone now; Drop must not remove what is now
        // the destination's name.
        self.persisted = true;
        sync_dir(parent_dir(&self.target))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Nothing to report to: the error that got us here matters more,
            // and a leftover is harmless (hidden, 0600, never read by us).
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// How old a dead process's temporary file must be before it is removed: a
/// live writer is done within milliseconds, and a writer in another PID
/// namespace (whose PID means nothing here) is never swept mid-write.
const STALE_AFTER_SECS: i64 = 60;

/// Removes our temporary files beside `target` that a run which died
/// (SIGKILL, power loss, a panic under `panic = "abort"`) left behind: their
/// PID runs no process and they are [`STALE_AFTER_SECS`] older than `now`
/// (the modification time of the file just created, so one clock decides).
/// Best effort: anything unexpected leaves the file where it is.
fn sweep_stale(target: &Path, now: i64) {
    let Ok(probe) = side_file(target, "") else {
        return;
    };
    let (Some(dir), Some(prefix)) = (probe.parent(), probe.file_name()) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix.as_bytes();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.as_bytes().strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest
            .strip_suffix(b".tmp")
            .and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let old = entry
            .metadata()
            .is_ok_and(|m| now - m.mtime() >= STALE_AFTER_SECS);
        if old && pid > 0 && !process_exists(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// `kill(pid, 0)`: ESRCH is the only answer that means no such process.
fn process_exists(pid: i32) -> bool {
    let pid = nix::unistd::Pid::from_raw(pid);
    !matches!(nix::sys::signal::kill(pid, None), Err(Errno::ESRCH))
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    let handle = File::open(dir).map_err(|e| FileError::io(FileOp::SyncDir, dir, e))?;
    match handle.sync_all() {
        // Some filesystems cannot fsync a directory and say EINVAL; there
        // is nothing more we could do there, and the rename has happened.
        Err(e) if e.raw_os_error() == Some(Errno::EINVAL as i32) => Ok(()),
        Err(e) => Err(FileError::io(FileOp::SyncDir, dir, e)),
        Ok(()) => Ok(()),
    }
}

/// Replaces `target` with `bytes` atomically, keeping owner and mode:
/// [`TempFile::create_beside`] then [`TempFile::persist`], without a
/// validation step.
///
/// # Errors
/// As those two.
pub fn atomic_write(target: &Path, bytes: &[u8], opts: &WriteOptions) -> Result<(), FileError> {
    TempFile::create_beside(target, bytes, opts)?.persist()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileio::test_util::{dir, is_root, mode_of, names_in};
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;

    #[test]
    fn temp_file_is_0600_beside_the_target_and_removed_on_drop() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        fs::write(&target, b"old").expect("write");
        fs::set_permissions(&target, Permissions::from_mode(0o644)).expect("chmod");
        let tmp = TempFile::create_beside(&target, b"new", &WriteOptions::default()).expect("temp");
        assert_eq!(tmp.path().parent(), Some(d.path()));
        assert!(tmp
            .path()
            .file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|n| n.starts_with(".guest.cfg.xenpci.") && n.ends_with(".tmp")));
        assert_eq!(mode_of(tmp.path()), 0o600);
        assert_eq!(fs::read(tmp.path()).expect("read"), b"new");
        let tmp_path = tmp.path().to_path_buf();
        drop(tmp);
        assert!(!tmp_path.exists());
        assert_eq!(fs::read(&target).expect("read"), b"old");
        assert_eq!(names_in(d.path()), ["guest.cfg"]);
    }

    #[test]
    fn persist_replaces_contents_and_keeps_mode_0640() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        fs::write(&target, b"old").expect("write");
        fs::set_permissions(&target, Permissions::from_mode(0o640)).expect("chmod");
        atomic_write(&target, b"new", &WriteOptions::default()).expect("write");
        assert_eq!(fs::read(&target).expect("read"), b"new");
        assert_eq!(mode_of(&target), 0o640);
        assert_eq!(names_in(d.path()), ["guest.cfg"]);
    }

    #[test]
    fn persist_keeps_another_users_owner_and_group() {
        if !is_root() {
            return; // only root can hand a file to someone else
        }
        let d = dir();
        let target = d.path().join("guest.cfg");
        fs::write(&target, b"old").expect("write");
        let (uid, gid) = (4242, 4343);
        std::os::unix::fs::chown(&target, Some(uid), Some(gid)).expect("chown");
        fs::set_permissions(&target, Permissions::from_mode(0o2640)).expect("chmod");
        atomic_write(&target, b"new", &WriteOptions::default()).expect("write");
        let meta = fs::metadata(&target).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert_eq!(meta.mode() & 0o7777, 0o2640, "setgid survives the chown");
    }

    #[test]
    fn a_new_file_gets_0666_less_umask_or_the_given_mode() {
        let d = dir();
        // The kernel applies the umask to a plain create with 0666: the
        // reference for what atomic_move's `0666 & ~umask` gives.
        let reference = d.path().join("reference");
        File::create(&reference).expect("create");
        let target = d.path().join("new.cfg");
        atomic_write(&target, b"x", &WriteOptions::default()).expect("write");
        assert_eq!(mode_of(&target), mode_of(&reference));
        assert_eq!(mode_of(&target), 0o666 & !current_umask());
        let exact = d.path().join("exact.cfg");
        let opts = WriteOptions {
            new_file_mode: Some(0o604),
        };
        atomic_write(&exact, b"x", &opts).expect("write");
        assert_eq!(mode_of(&exact), 0o604);
    }

    #[test]
    fn persist_refuses_to_replace_a_symlink_and_cleans_up() {
        let d = dir();
        fs::write(d.path().join("real"), b"old").expect("write");
        let link = d.path().join("link");
        symlink("real", &link).expect("link");
        let err = atomic_write(&link, b"new", &WriteOptions::default()).expect_err("link");
        assert!(matches!(err, FileError::NotRegularFile { .. }), "{err:?}");
        assert!(fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(names_in(d.path()), ["link", "real"]);
    }

    #[test]
    fn a_dead_runs_old_temporary_file_is_swept_and_nothing_else() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        fs::write(&target, b"old").expect("write");
        // A PID that ran and is gone: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let live = std::process::id();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        let plant = |name: &str, age: Option<std::time::SystemTime>| {
            let f = File::create(d.path().join(name)).expect("plant");
            if let Some(t) = age {
                f.set_modified(t).expect("mtime");
            }
        };
        plant(&format!(".guest.cfg.xenpci.{dead}.0.tmp"), Some(long_ago));
        plant(&format!(".guest.cfg.xenpci.{dead}.1.tmp"), None);
        plant(&format!(".guest.cfg.xenpci.{live}.9.tmp"), Some(long_ago));
        plant(&format!(".other.cfg.xenpci.{dead}.0.tmp"), Some(long_ago));
        plant(".guest.cfg.xenpci.lock", Some(long_ago));
        atomic_write(&target, b"new", &WriteOptions::default()).expect("write");
        assert_eq!(fs::read(&target).expect("read"), b"new");
        let mut expected = vec![
            format!(".guest.cfg.xenpci.{dead}.1.tmp"),
            format!(".guest.cfg.xenpci.{live}.9.tmp"),
            ".guest.cfg.xenpci.lock".to_string(),
            format!(".other.cfg.xenpci.{dead}.0.tmp"),
            "guest.cfg".to_string(),
        ];
        expected.sort();
        assert_eq!(names_in(d.path()), expected);
    }

    #[test]
    fn create_in_a_missing_folder_fails_cleanly() {
        let d = dir();
        let err = atomic_write(&d.path().join("no/x"), b"x", &WriteOptions::default())
            .expect_err("no folder");
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert!(
            err.to_string().ends_with(": No such file or directory"),
            "{err}"
        );
    }
}
