//! Ansible-style dated backups ([`backup`]) and the local-time stamp in
//! their names.

use std::ffi::OsString;
use std::fs::{File, FileTimes};
use std::io;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use super::atomic::{Attrs, TempFile};
use super::{check_regular, errno_error, FileError, FileOp};

/// Copies `path` to a dated backup beside it and returns the backup's path,
/// as Ansible's `module.backup_local`: `PATH.PID.YYYY-MM-DD@HH:MM:SS~`,
/// local time (Ansible uses `time.localtime`).
///
/// Like `backup_local`'s `preserved_copy` (`shutil.copy2` + chown), the
/// backup keeps the contents, mode, owner, group and times of the original.
/// It is written under a temporary name created 0600, given the original's
/// owner and then mode, fsynced and renamed into place: it is never more
/// readable than the original, and never seen half-written. A backup of the
/// same name (same process, same second) is replaced, as `copy2` would.
///
/// lineinfile backs up the path the user named, so with a symlink the
/// backup lands beside the link while its contents come from the target;
/// pass either path.
///
/// # Errors
/// [`FileError::Io`] (a missing file is `open`: No such file or directory),
/// [`FileError::IsADirectory`], [`FileError::NotRegularFile`]; owner kept or
/// error, as for [`TempFile::persist`].
pub fn backup(path: &Path) -> Result<PathBuf, FileError> {
    let mut source = File::open(path).map_err(|e| FileError::io(FileOp::Open, path, e))?;
    let meta = source
        .metadata()
        .map_err(|e| FileError::io(FileOp::Stat, path, e))?;
    check_regular(path, &meta)?;
    let stamp =
        local_timestamp(SystemTime::now()).map_err(|e| FileError::io(FileOp::Backup, path, e))?;
    let dest = backup_name(path, std::process::id(), &stamp);
    let mut tmp = TempFile::empty_beside(&dest, None)?;
    io::copy(&mut source, &mut tmp.file).map_err(|e| FileError::io(FileOp::Backup, path, e))?;
    let times = FileTimes::new();
    let times = match meta.accessed() {
        Ok(t) => times.set_accessed(t),
        Err(_) => times,
    };
    let times = match meta.modified() {
        Ok(t) => times.set_modified(t),
        Err(_) => times,
    };
    tmp.file
        .set_times(times)
        .map_err(|e| FileError::io(FileOp::SetTimes, &dest, e))?;
    tmp.finish(Attrs::of(&meta))?;
    Ok(dest)
}

/// `PATH.PID.STAMP`, with `STAMP` from [`local_timestamp`] (it ends in `~`).
fn backup_name(path: &Path, pid: u32, stamp: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{pid}.{stamp}"));
    PathBuf::from(name)
}

/// `YYYY-MM-DD@HH:MM:SS~`: Ansible's `"%Y-%m-%d@%H:%M:%S~"`.
fn format_stamp(year: i32, month: i32, day: i32, hour: i32, min: i32, sec: i32) -> String {
    format!("{year:04}-{month:02}-{day:02}@{hour:02}:{min:02}:{sec:02}~")
}

/// `time` in the local time zone (TZ, else /etc/localtime), as Ansible's
/// `time.localtime`: libc's `localtime_r`, since neither std nor nix knows
/// time zones and a date crate for one timestamp is not worth it.
fn local_timestamp(time: SystemTime) -> io::Result<String> {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = libc::time_t::try_from(secs).map_err(|_| errno_error(Errno::EOVERFLOW))?;
    let mut tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: FFI. Both pointers are valid for the call: `secs` is a live
    // time_t, `tm` a live, writable, properly aligned struct tm that
    // localtime_r fills; it keeps neither pointer.
    let filled = unsafe { libc::localtime_r(&secs, tm.as_mut_ptr()) };
    if filled.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: FFI result. localtime_r succeeded, so it initialised `tm`
    // (which was all zeroes, a valid struct tm, before that anyway).
    let tm = unsafe { tm.assume_init() };
    Ok(format_stamp(
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileio::test_util::{dir, is_root, names_in};
    use std::ffi::OsStr;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn backup_name_is_ansibles() {
        assert_eq!(format_stamp(2024, 3, 7, 9, 5, 2), "2024-03-07@09:05:02~");
        assert_eq!(
            backup_name(Path::new("/etc/xen/g.cfg"), 4321, "2024-03-07@09:05:02~"),
            Path::new("/etc/xen/g.cfg.4321.2024-03-07@09:05:02~")
        );
    }

    #[test]
    fn backup_copies_contents_mode_owner_and_times() {
        let d = dir();
        let target = d.path().join("guest.cfg");
        fs::write(&target, b"pci = []\n").expect("write");
        fs::set_permissions(&target, Permissions::from_mode(0o640)).expect("chmod");
        if is_root() {
            std::os::unix::fs::chown(&target, Some(4242), Some(4343)).expect("chown");
        }
        let before = fs::metadata(&target).expect("stat");
        let made = backup(&target).expect("backup");

        let name = made.file_name().and_then(OsStr::to_str).expect("utf8 name");
        let prefix = format!("guest.cfg.{}.", std::process::id());
        let stamp = name.strip_prefix(&prefix).expect("FILE.PID. prefix");
        let shape: String = stamp
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99@99:99:99~");
        assert_eq!(made.parent(), Some(d.path()));

        let after = fs::metadata(&made).expect("stat backup");
        assert_eq!(fs::read(&made).expect("read"), b"pci = []\n");
        assert_eq!(after.mode() & 0o7777, 0o640);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(after.modified().ok(), before.modified().ok());
        assert_eq!(names_in(d.path()).len(), 2, "no temporary file left");
    }

    #[test]
    fn backup_of_a_missing_file_fails() {
        let d = dir();
        let err = backup(&d.path().join("none")).expect_err("missing");
        assert!(
            err.to_string().ends_with("No such file or directory"),
            "{err}"
        );
    }
}
