//! The kernel log, read from `/dev/kmsg`.
//!
//! Why `/dev/kmsg` and not `dmesg`: both are allowed exactly when
//! `dmesg_restrict` allows (`check_syslog_permissions` guards both; root
//! under Ansible's `become` passes), so running `dmesg` would buy nothing
//! but one more program to depend on. Opened non-blocking, each `read(2)`
//! returns one record and `EAGAIN` says the end is reached; `EPIPE` says
//! records were overwritten while we read, and reading goes on.
//!
//! A record is `PRIO,SEQ,USEC,FLAGS[,...];TEXT` followed by continuation
//! lines starting with a blank (key=value pairs, skipped); control
//! characters in TEXT come escaped as `\xNN` (Documentation/ABI/testing/
//! dev-kmsg). The result reads like `dmesg`: `[   12.345678] TEXT` lines.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::sysfs::sysfs_err;
use crate::host::HostError;

/// Bigger than any record (the kernel's `CONSOLE_EXT_LOG_MAX` is 8 KiB); a
/// smaller buffer makes `read(2)` fail with `EINVAL`.
const RECORD_BUF: usize = 16 * 1024;
/// Upper bound on what is kept (the ring buffer is far smaller).
const MAX_LOG: usize = 16 * 1024 * 1024;

/// Reads the whole kernel log at `path` (a `/dev/kmsg`, or a plain file of
/// records in tests).
pub(super) fn read_kmsg(path: &Path) -> Result<String, HostError> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| sysfs_err("read", path, &e))?;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; RECORD_BUF];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_LOG {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(sysfs_err("read", path, &e)),
        }
    }
    Ok(format_records(&String::from_utf8_lossy(&raw)))
}

/// `PRIO,SEQ,USEC,FLAGS;TEXT` lines as `[SEC.USEC] TEXT` lines.
pub(super) fn format_records(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.lines() {
        if line.starts_with(' ') {
            continue;
        }
        let Some((head, text)) = line.split_once(';') else {
            continue;
        };
        let usec: u64 = head
            .split(',')
            .nth(2)
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        out.push_str(&format!(
            "[{:5}.{:06}] {}\n",
            usec / 1_000_000,
            usec % 1_000_000,
            unescape_hex(text)
        ));
    }
    out
}

/// `\x0a` back to a newline.
fn unescape_hex(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(v) = text
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_like_dmesg() {
        let raw = "6,339,5140900,-;pciback 0000:00:04.0: seizing device\n \
                   SUBSYSTEM=pci\n4,340,12345678,-;a\\x0ab\n";
        assert_eq!(
            format_records(raw),
            "[    5.140900] pciback 0000:00:04.0: seizing device\n[   12.345678] a\nb\n"
        );
    }
}
