//! Finding the file to edit ([`resolve_target`]: symlinks followed,
//! directories refused) and reading it with a size limit ([`read_file`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::{check_regular, errno_error, parent_dir, FileError, FileOp};

/// Largest file [`read_file`] accepts by default: 16 MiB. An xl config is a
/// few kilobytes; the limit only stops a wrong `path` (a disk image, a log)
/// from being read into memory whole.
pub const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024;

/// Linux's `MAXSYMLINKS`: more hops than this is a loop, as for the kernel.
const MAX_SYMLINK_HOPS: usize = 40;

/// Resolves `path` to the regular file that an edit must replace.
///
/// Symlinks are followed to the end of the chain, on purpose: like
/// lineinfile (`atomic_move` onto `os.path.realpath(dest)`), we edit the
/// target and the link stays a link. The result is absolute.
///
/// A missing file is not an error: the result is where it would be (a
/// dangling symlink is followed to its would-be target, as `realpath` does)
/// and the caller decides on `create`. Use `result.exists()` to tell.
///
/// # Errors
/// [`FileError::IsADirectory`] / [`FileError::NotRegularFile`] for what we
/// never edit, [`FileError::ParentNotFound`] when the folder is missing too
/// (the caller may create it and call again), [`FileError::Io`] otherwise
/// (a symlink loop is `ELOOP`).
pub fn resolve_target(path: &Path) -> Result<PathBuf, FileError> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_SYMLINK_HOPS {
        match fs::canonicalize(&current) {
            Ok(real) => {
                let meta =
                    fs::metadata(&real).map_err(|e| FileError::io(FileOp::Stat, &real, e))?;
                check_regular(path, &meta)?;
                return Ok(real);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::io(FileOp::Resolve, path, e)),
        }
        // Something is missing: the file, or the target of a dangling link
        // (canonicalize refuses both), or the folder.
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let dest = fs::read_link(&current)
                    .map_err(|e| FileError::io(FileOp::Resolve, &current, e))?;
                // A relative link is relative to the link's folder; joining
                // an absolute one replaces the folder.
                current = parent_dir(&current).join(dest);
            }
            Ok(_) => {
                // It exists after all: it appeared between the two calls.
                // Start over rather than guess.
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return resolve_missing(path, &current);
            }
            Err(e) => return Err(FileError::io(FileOp::Resolve, path, e)),
        }
    }
    Err(FileError::io(
        FileOp::Resolve,
        path,
        errno_error(Errno::ELOOP),
    ))
}

/// The would-be path of a missing file: its folder resolved, its name kept.
fn resolve_missing(path: &Path, missing: &Path) -> Result<PathBuf, FileError> {
    let Some(name) = missing.file_name() else {
        // "/" or a path ending in "..": names no file we could create.
        return Err(FileError::io(
            FileOp::Resolve,
            path,
            errno_error(Errno::ENOENT),
        ));
    };
    let dir = parent_dir(missing);
    match fs::canonicalize(dir) {
        Ok(real_dir) => {
            let meta =
                fs::metadata(&real_dir).map_err(|e| FileError::io(FileOp::Stat, &real_dir, e))?;
            if !meta.is_dir() {
                return Err(FileError::io(
                    FileOp::Resolve,
                    path,
                    errno_error(Errno::ENOTDIR),
                ));
            }
            Ok(real_dir.join(name))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(FileError::ParentNotFound {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(FileError::io(FileOp::Resolve, path, e)),
    }
}

/// Reads the whole file, or `None` when it does not exist.
///
/// A file over `max_size` bytes (see [`DEFAULT_MAX_SIZE`]) is refused from
/// its size before any read, and a file that grows past the limit while
/// being read (or lies about its size, as `/proc` files do) is cut off at
/// `max_size + 1` bytes and refused too: memory use stays bounded.
///
/// # Errors
/// [`FileError::IsADirectory`], [`FileError::NotRegularFile`],
/// [`FileError::TooLarge`], [`FileError::Io`].
pub fn read_file(path: &Path, max_size: u64) -> Result<Option<Vec<u8>>, FileError> {
    // O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer
    // before we could see what it is. Reads of regular files ignore it.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::io(FileOp::Open, path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| FileError::io(FileOp::Stat, path, e))?;
    check_regular(path, &meta)?;
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: max_size,
    };
    if meta.len() > max_size {
        return Err(too_large(meta.len()));
    }
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_size.saturating_add(1))
        .read_to_end(&mut contents)
        .map_err(|e| FileError::io(FileOp::Read, path, e))?;
    let read = u64::try_from(contents.len()).unwrap_or(u64::MAX);
    if read > max_size {
        return Err(too_large(read));
    }
    Ok(Some(contents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileio::test_util::{dir, is_root};
    use std::fs::{File, Permissions};
    use std::os::unix::fs::{symlink, PermissionsExt};

    // --- resolve_target ---

    #[test]
    fn resolve_follows_a_symlink_chain_to_the_real_file() {
        let d = dir();
        let real = d.path().join("real.cfg");
        fs::write(&real, "x").expect("write");
        symlink("real.cfg", d.path().join("link1")).expect("link1");
        symlink(d.path().join("link1"), d.path().join("link2")).expect("link2");
        let got = resolve_target(&d.path().join("link2")).expect("resolve");
        assert_eq!(got, fs::canonicalize(&real).expect("canon"));
    }

    #[test]
    fn resolve_a_missing_file_gives_its_would_be_path() {
        let d = dir();
        let got = resolve_target(&d.path().join("new.cfg")).expect("resolve");
        assert_eq!(
            got,
            fs::canonicalize(d.path()).expect("canon").join("new.cfg")
        );
        assert!(!got.exists());
    }

    #[test]
    fn resolve_a_dangling_symlink_gives_its_target() {
        let d = dir();
        fs::create_dir(d.path().join("sub")).expect("mkdir");
        symlink("sub/new.cfg", d.path().join("link")).expect("link");
        let got = resolve_target(&d.path().join("link")).expect("resolve");
        let want = fs::canonicalize(d.path())
            .expect("canon")
            .join("sub/new.cfg");
        assert_eq!(got, want);
    }

    #[test]
    fn resolve_refuses_a_directory_even_through_a_link() {
        let d = dir();
        symlink(d.path(), d.path().join("dirlink")).expect("link");
        for path in [d.path().to_path_buf(), d.path().join("dirlink")] {
            let err = resolve_target(&path).expect_err("a directory");
            assert!(matches!(err, FileError::IsADirectory { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("Path {} is a directory", path.display())
            );
        }
    }

    #[test]
    fn resolve_refuses_a_fifo() {
        let d = dir();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let err = resolve_target(&fifo).expect_err("a fifo");
        assert!(matches!(err, FileError::NotRegularFile { .. }), "{err:?}");
        let err = read_file(&fifo, DEFAULT_MAX_SIZE).expect_err("a fifo");
        assert!(matches!(err, FileError::NotRegularFile { .. }), "{err:?}");
    }

    #[test]
    fn resolve_reports_a_missing_folder() {
        let d = dir();
        let missing = d.path().join("nope");
        let err = resolve_target(&missing.join("x.cfg")).expect_err("missing folder");
        assert!(matches!(err, FileError::ParentNotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("Destination directory {} does not exist", missing.display())
        );
    }

    #[test]
    fn resolve_reports_a_symlink_loop() {
        let d = dir();
        symlink("b", d.path().join("a")).expect("a");
        symlink("a", d.path().join("b")).expect("b");
        let err = resolve_target(&d.path().join("a")).expect_err("loop");
        assert_eq!(
            err.io_error().and_then(io::Error::raw_os_error),
            Some(Errno::ELOOP as i32)
        );
    }

    // --- read_file ---

    #[test]
    fn read_missing_is_none_and_present_is_its_bytes() {
        let d = dir();
        let path = d.path().join("f");
        assert_eq!(read_file(&path, DEFAULT_MAX_SIZE).expect("read"), None);
        fs::write(&path, b"a = 1\n").expect("write");
        assert_eq!(
            read_file(&path, DEFAULT_MAX_SIZE).expect("read"),
            Some(b"a = 1\n".to_vec())
        );
    }

    #[test]
    fn read_takes_a_10_mb_file_and_refuses_a_1_gb_one_unread() {
        let d = dir();
        let path = d.path().join("big");
        let file = File::create(&path).expect("create");
        file.set_len(10 * 1024 * 1024).expect("10 MB");
        assert_eq!(
            read_file(&path, DEFAULT_MAX_SIZE)
                .expect("read")
                .map(|v| v.len()),
            Some(10 * 1024 * 1024)
        );
        // Sparse: costs no disk, and would cost 1 GB of memory if read.
        file.set_len(1 << 30).expect("1 GB");
        let err = read_file(&path, DEFAULT_MAX_SIZE).expect_err("too large");
        assert!(
            matches!(err, FileError::TooLarge { size, limit, .. } if size == 1 << 30 && limit == DEFAULT_MAX_SIZE),
            "{err:?}"
        );
    }

    #[test]
    fn read_limit_is_inclusive() {
        let d = dir();
        let path = d.path().join("f");
        fs::write(&path, b"12345").expect("write");
        assert!(read_file(&path, 5).expect("at the limit").is_some());
        assert!(matches!(
            read_file(&path, 4),
            Err(FileError::TooLarge {
                size: 5,
                limit: 4,
                ..
            })
        ));
    }

    #[test]
    fn read_refuses_a_directory() {
        let d = dir();
        assert!(matches!(
            read_file(d.path(), DEFAULT_MAX_SIZE),
            Err(FileError::IsADirectory { .. })
        ));
    }

    #[test]
    fn read_error_message_is_ansible_like() {
        if is_root() {
            return; // root reads a 0000 file anyway
        }
        let d = dir();
        let path = d.path().join("secret");
        fs::write(&path, b"x").expect("write");
        fs::set_permissions(&path, Permissions::from_mode(0o000)).expect("chmod");
        let err = read_file(&path, DEFAULT_MAX_SIZE).expect_err("denied");
        assert_eq!(
            err.to_string(),
            format!("cannot open {}: Permission denied", path.display())
        );
    }
}
