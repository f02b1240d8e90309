//! xl's stderr as libxl writes to it: `libxl__logv`'s prefix (`libxl:
//! LEVEL: FILE:LINE:FUNC: [Domain N:]`) through `xtl_logger_stdiostream`,
//! which drops messages below xl's minimum level, and glibc's `strerror`
//! text after a message that carries an errno.

use std::fmt::Write as _;

use nix::errno::Errno;

/// `xentoollog_level`, in order (`XTL_NOTICE`, unused here, left out): a
/// message below the logger's minimum is dropped. xl's minimum is `XTL_PROGRESS`; each `-v` lowers it by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `XTL_DEBUG`.
    Debug = 1,
    /// `XTL_VERBOSE`.
    Verbose,
    /// `XTL_DETAIL`.
    Detail,
    /// `XTL_PROGRESS`: xl's default minimum.
    Progress,
    /// `XTL_INFO`: printed by default.
    Info,
    /// `XTL_WARN`.
    Warn,
    /// `XTL_ERROR`.
    Error,
}

impl Level {
    /// `xtl_level_to_string`.
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Verbose => "verbose",
            Level::Detail => "detail",
            Level::Progress => "progress",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

/// Where a message comes from: libxl's `file:line:function`.
#[derive(Debug, Clone, Copy)]
pub struct Site(pub &'static str, pub u32, pub &'static str);

/// xl's stderr logger (`xtl_logger_stdiostream`), which libxl writes to
/// through `libxl__logv`: `libxl: LEVEL: FILE:LINE:FUNC: [Domain N:]MSG[:
/// strerror]`.
#[derive(Debug, Clone)]
pub struct Logger {
    /// The minimum level printed.
    pub min: Level,
    /// What was printed.
    pub out: String,
}

impl Logger {
    /// xl's logger with `verbosity` `-v` flags.
    pub fn new(verbosity: u32) -> Self {
        let levels = [Level::Progress, Level::Detail, Level::Verbose, Level::Debug];
        Logger {
            min: levels[(verbosity as usize).min(levels.len() - 1)],
            out: String::new(),
        }
    }

    /// One libxl message. `domid` gets the `Domain N:` prefix only for a
    /// valid guest id (`libxl_domid_valid_guest`), as `libxl__logv` does.
    pub fn log(
        &mut self,
        level: Level,
        at: Site,
        domid: Option<u32>,
        errno: Option<Errno>,
        msg: &str,
    ) {
        self.ctx_log(
            "libxl",
            level,
            &format!("{}:{}:{}: ", at.0, at.1, at.2),
            domid,
            errno,
            msg,
        );
    }

    /// A message from another library (`xencall`), without a site.
    pub fn ctx_log(
        &mut self,
        ctx: &str,
        level: Level,
        site: &str,
        domid: Option<u32>,
        errno: Option<Errno>,
        msg: &str,
    ) {
        if level < self.min {
            return;
        }
        let _ = write!(self.out, "{ctx}: {}: {site}", level.name());
        if let Some(d) = domid.filter(|d| (1..0x7ff0).contains(d)) {
            let _ = write!(self.out, "Domain {d}:");
        }
        self.out.push_str(msg);
        if let Some(e) = errno {
            let _ = write!(self.out, ": {}", strerror(e));
        }
        self.out.push('\n');
    }
}

/// glibc's `strerror` text, which xl prints. nix's `Errno::desc` follows
/// the kernel headers' comments instead and differs for some (`EIO` is
/// "I/O error" there, "Input/output error" in glibc).
pub fn strerror(e: Errno) -> &'static str {
    match e {
        Errno::EIO => "Input/output error",
        Errno::EAGAIN => "Resource temporarily unavailable",
        Errno::ENOMEM => "Cannot allocate memory",
        Errno::EXDEV => "Invalid cross-device link",
        Errno::EOPNOTSUPP => "Operation not supported",
        other => other.desc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_as_xl_prints_them() {
        let mut l = Logger::new(0);
        l.log(
            Level::Error,
            Site("libxl_pci.c", 792, "f"),
            None,
            Some(Errno::ENOENT),
            "Couldn't lstat /x",
        );
        l.log(
            Level::Error,
            Site("libxl_pci.c", 1677, "g"),
            Some(3),
            None,
            "PCI device 0:7:0.0 is not assignable",
        );
        l.log(
            Level::Error,
            Site("libxl_pci.c", 1573, "h"),
            Some(0),
            None,
            "no domain prefix for 0",
        );
        l.log(
            Level::Detail,
            Site("libxl_pci.c", 1, "i"),
            None,
            None,
            "hidden by default",
        );
        assert_eq!(
            l.out,
            "libxl: error: libxl_pci.c:792:f: Couldn't lstat /x: No such file or directory\n\
             libxl: error: libxl_pci.c:1677:g: Domain 3:PCI device 0:7:0.0 is not assignable\n\
             libxl: error: libxl_pci.c:1573:h: no domain prefix for 0\n"
        );
        let mut v = Logger::new(1);
        v.log(
            Level::Detail,
            Site("libxl_pci.c", 1, "i"),
            None,
            None,
            "shown with -v",
        );
        assert!(v.out.contains("libxl: detail:"));
    }
}
