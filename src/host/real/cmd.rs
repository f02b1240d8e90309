//! Commands of the real host: running a program without a shell
//! ([`run`]), the xenstore command-line tools ([`Xenstore`]), and reading
//! `xl list` ([`parse_xl_list`]).
//!
//! Arguments go to the program as separate argv elements and are never
//! interpreted: `0; reboot` reaches `xl` as one argument. Standard input is
//! `/dev/null`; standard output and error are captured whole, in unlinked
//! temporary files rather than pipes: a module killed while xl runs must not
//! take xl with it. With pipes, xl's next write to stderr after the module's
//! death raised SIGPIPE and killed it between pciback's unbind and the
//! rebind, leaving the device without a driver (seen on the real dom0).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::errno_text;
use crate::host::{CommandOutput, Domain, HostError};

/// How long a xenstore tool may take. xenstored answers in milliseconds;
/// without a daemon, libxenstore falls back to `/dev/xen/xenbus`, where a
/// request waits (forever) for a xenstored that may never start. A module
/// must not hang Ansible on that.
pub(super) const XENSTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the toolstack probe waits for xenstored (see
/// `RealHost::toolstack_running`).
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a command with a time limit is polled.
const POLL: Duration = Duration::from_millis(10);

/// Runs `program ARGS` without a shell and returns what it did, whatever
/// its exit code. With `timeout`, a command still running after it is
/// killed (only that child, by its pid) and reported as failed to run.
///
/// # Errors
/// [`HostError::Spawn`] when the program cannot be started, its output
/// cannot be read, or it timed out.
pub(super) fn run<S: AsRef<str>>(
    program: &Path,
    args: &[S],
    timeout: Option<Duration>,
) -> Result<CommandOutput, HostError> {
    let mut argv = vec![program.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.as_ref().to_string()));
    let spawn_err = |reason: String| HostError::Spawn {
        cmd: command_line(&argv),
        reason,
    };
    let mut out = capture_file().map_err(|e| spawn_err(io_text(&e)))?;
    let mut err = capture_file().map_err(|e| spawn_err(io_text(&e)))?;
    let as_stdio = |f: &File| f.try_clone().map(Stdio::from);
    let mut child = Command::new(program)
        .args(args.iter().map(|a| OsString::from(a.as_ref())))
        .stdin(Stdio::null())
        .stdout(as_stdio(&out).map_err(|e| spawn_err(io_text(&e)))?)
        .stderr(as_stdio(&err).map_err(|e| spawn_err(io_text(&e)))?)
        .spawn()
        .map_err(|e| spawn_err(io_text(&e)))?;
    let status = match wait(&mut child, timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Ours to end: the child we spawned, by its own handle.
            let _ = child.kill();
            let _ = child.wait();
            let limit = timeout.map_or(0, |t| t.as_secs());
            return Err(spawn_err(format!("no answer within {limit} s")));
        }
        Err(e) => return Err(spawn_err(io_text(&e))),
    };
    let stdout = read_back(&mut out).map_err(|e| spawn_err(io_text(&e)))?;
    let stderr = read_back(&mut err).map_err(|e| spawn_err(io_text(&e)))?;
    Ok(CommandOutput {
        argv,
        rc: status
            .code()
            .or_else(|| status.signal().map(|s| -s))
            .unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Waits for the child, at most `timeout`; `None` when it is still running.
fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
) -> io::Result<Option<std::process::ExitStatus>> {
    let Some(limit) = timeout else {
        return child.wait().map(Some);
    };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// An anonymous file for a child's output: created in the temporary
/// folder and unlinked at once, so nothing is left behind whatever happens.
fn capture_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(".xenpci-cmd.{}.{n}", std::process::id()));
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match opened {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            // Left by a dead run of the same PID: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000_000 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Everything written to `file` since it was created.
fn read_back(file: &mut File) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

fn io_text(e: &io::Error) -> String {
    e.raw_os_error().map_or_else(|| e.to_string(), errno_text)
}

fn command_line(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// A command that ran but failed, as a [`HostError`]: its command line,
/// exit code and standard error.
pub(super) fn failed(out: &CommandOutput) -> HostError {
    HostError::Other(format!(
        "{} failed (rc {}): {}",
        out.command_line(),
        out.rc,
        out.stderr.trim()
    ))
}

/// The xenstore command-line tools (`xenstore-read`, `-write`, `-rm`,
/// `-list` from Xen's `tools/xenstore/xenstore_client.c`), named by a
/// prefix: `xenstore` gives `xenstore-read` and so on, looked up on `PATH`.
///
/// Values pass with `-R` (raw, since Xen 4.12), so a value is written and
/// read back byte for byte; without it the tools escape and unescape
/// backslashes and control characters. `--` ends the options, so a path can
/// never be taken for one.
#[derive(Debug, Clone)]
pub(super) struct Xenstore {
    prefix: PathBuf,
}

/// What `xenstore_client.c` prints (`warnx`) when `xs_read` fails; the
/// daemon's answer is usually `ENOENT`, an absent node.
const XS_READ_FAILED: &str = "couldn't read path";
/// What it prints when `xs_directory` fails.
const XS_LIST_FAILED: &str = "could not list path";
/// What it prints when `xs_rm` fails.
const XS_RM_FAILED: &str = "could not remove path";

impl Xenstore {
    pub(super) fn new(prefix: PathBuf) -> Self {
        Xenstore { prefix }
    }

    fn tool(&self, verb: &str) -> PathBuf {
        let mut name = self.prefix.clone().into_os_string();
        name.push("-");
        name.push(verb);
        PathBuf::from(name)
    }

    /// `xenstore-VERB OPTS -- ARGS`.
    fn run(
        &self,
        verb: &str,
        opts: &[&str],
        args: &[&str],
        timeout: Duration,
    ) -> Result<CommandOutput, HostError> {
        let mut argv = opts.to_vec();
        argv.push("--");
        argv.extend_from_slice(args);
        run(&self.tool(verb), &argv, Some(timeout))
    }

    /// `xenstore-read -R -- PATH`: the value, or `None` when the node is
    /// absent. The tool says only `couldn't read path` (exit 1) for any
    /// failing read, so that message is taken as absent; a tool that
    /// cannot reach xenstored says `xs_open: ...` instead and is an error.
    pub(super) fn read(&self, path: &str, timeout: Duration) -> Result<Option<String>, HostError> {
        let out = self.run("read", &["-R"], &[path], timeout)?;
        match out.rc {
            0 => Ok(Some(out.stdout)),
            1 if out.stderr.contains(XS_READ_FAILED) => Ok(None),
            _ => Err(failed(&out)),
        }
    }

    /// `xenstore-write -R -- PATH VALUE`.
    pub(super) fn write(&self, path: &str, value: &str) -> Result<(), HostError> {
        let out = self.run("write", &["-R"], &[path, value], XENSTORE_TIMEOUT)?;
        if out.rc == 0 {
            Ok(())
        } else {
            Err(failed(&out))
        }
    }

    /// `xenstore-rm -- PATH`. xenstored removes an absent node whose parent
    /// exists without complaint, but refuses one whose parent is absent too
    /// (`ENOENT`); both mean the node is gone, which is what was asked, so
    /// a refusal is checked with a read before it counts as a failure.
    pub(super) fn rm(&self, path: &str) -> Result<(), HostError> {
        let out = self.run("rm", &[], &[path], XENSTORE_TIMEOUT)?;
        if out.rc == 0 {
            return Ok(());
        }
        if out.stderr.contains(XS_RM_FAILED) && self.read(path, XENSTORE_TIMEOUT)?.is_none() {
            return Ok(());
        }
        Err(failed(&out))
    }

    /// `xenstore-list -- PATH`: the children's names, none when the node is
    /// absent (`xs_directory` fails; the tool says `could not list path`).
    pub(super) fn list(&self, path: &str) -> Result<Vec<String>, HostError> {
        let out = self.run("list", &[], &[path], XENSTORE_TIMEOUT)?;
        match out.rc {
            0 => Ok(out.stdout.lines().map(str::to_string).collect()),
            1 if out.stderr.contains(XS_LIST_FAILED) => Ok(Vec::new()),
            _ => Err(failed(&out)),
        }
    }
}

/// Reads `xl list`:
///
/// ```text
/// Name                                        ID   Mem VCPUs      State   Time(s)
/// Domain-0                                     0   768     2     r-----      12.3
/// ```
///
/// The columns after the name are counted from the right (`ID Mem VCPUs
/// State Time(s)`, `list_domains()` in `tools/xl/xl_info.c`), so a name
/// with blanks survives. Lines that do not fit are skipped.
pub(super) fn parse_xl_list(text: &str) -> Vec<Domain> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 6 || words[0] == "Name" {
            continue;
        }
        let n = words.len();
        let Ok(domid) = words[n - 5].parse::<u32>() else {
            continue;
        };
        out.push(Domain {
            domid,
            name: words[..n - 5].join(" "),
        });
    }
    out.sort_by_key(|d| d.domid);
    out
}

/// Whether `xl info` reports an IOMMU: its `virt_caps` line lists
/// `hvm_directio` or `pv_directio` exactly when Xen's
/// `XEN_SYSCTL_PHYSCAP_directio` is set (`output_physinfo()` in
/// `tools/xl/xl_info.c`), which is `iommu_enabled`. `None` without a
/// `virt_caps` line.
pub(super) fn parse_xl_info_iommu(text: &str) -> Option<bool> {
    let caps = text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "virt_caps").then_some(value)
    })?;
    Some(
        caps.split_whitespace()
            .any(|c| c == "hvm_directio" || c == "pv_directio"),
    )
}

/// The `passthrough` of a running domain, from `xl list -l DOMID` (the
/// domain's stored config, `[{"domid": N, "config": {"c_info":
/// {"passthrough": "disabled", ...}, "pcidevs": [...]}}]`). The stored
/// config is the one given, before libxl's defaults: a guest created
/// without `passthrough` has none there (seen on the real 4.17 and 4.20
/// dom0s), and libxl resolved it at creation
/// (`libxl__domain_config_setdefault`): `enabled` with a pci or dtdev list,
/// else `disabled`. `None` when the output holds no config.
pub(super) fn parse_xl_list_passthrough(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let config = v.get(0)?.get("config")?;
    let c_info = config.get("c_info")?;
    if let Some(p) = c_info.get("passthrough").and_then(|p| p.as_str()) {
        return Some(p.to_string());
    }
    let listed = |key: &str| {
        config
            .get(key)
            .and_then(|l| l.as_array())
            .is_some_and(|l| !l.is_empty())
    };
    let resolved = if listed("pcidevs") || listed("dtdevs") {
        "enabled"
    } else {
        "disabled"
    };
    Some(resolved.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_info_iommu() {
        let with = "release                : 6.1.0-28-amd64\n\
                    virt_caps              : pv hvm hvm_directio pv_directio hap shadow\n";
        let without = "virt_caps              : pv hvm hap shadow\n";
        assert_eq!(parse_xl_info_iommu(with), Some(true));
        assert_eq!(parse_xl_info_iommu(without), Some(false));
        assert_eq!(parse_xl_info_iommu("host : x\n"), None);
    }

    #[test]
    fn xl_list_long_passthrough() {
        let json = r#"[{"domid": 2, "config": {"c_info": {"type": "hvm", "name": "vm2",
                       "passthrough": "disabled"}}}]"#;
        assert_eq!(parse_xl_list_passthrough(json).as_deref(), Some("disabled"));
        assert_eq!(
            parse_xl_list_passthrough(r#"[{"domid": 2, "config": {}}]"#),
            None
        );
        // Created without `passthrough`: libxl chose from the pci list.
        let without = r#"[{"domid": 3, "config": {"c_info": {"type": "pv", "name": "g"}}}]"#;
        assert_eq!(
            parse_xl_list_passthrough(without).as_deref(),
            Some("disabled")
        );
        let with_pci = r#"[{"domid": 3, "config": {"c_info": {"type": "pv"},
                           "pcidevs": [{"func": 0, "dev": 5}]}}]"#;
        assert_eq!(
            parse_xl_list_passthrough(with_pci).as_deref(),
            Some("enabled")
        );
        assert_eq!(parse_xl_list_passthrough("not json"), None);
    }

    #[test]
    fn xl_list_is_read_from_the_right() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0   768     2     r-----      12.3\n\
                    my guest                                     7   128     1     -b----       0.5\n";
        assert_eq!(
            parse_xl_list(text),
            vec![
                Domain {
                    domid: 0,
                    name: "Domain-0".into()
                },
                Domain {
                    domid: 7,
                    name: "my guest".into()
                },
            ]
        );
    }

    #[test]
    fn arguments_are_not_interpreted() {
        let out = run(Path::new("echo"), &["0; reboot", "$HOME"], None).expect("echo runs");
        assert_eq!(out.stdout, "0; reboot $HOME\n");
        assert_eq!(out.argv, ["echo", "0; reboot", "$HOME"]);
        assert_eq!(out.rc, 0);
    }

    /// A pipe would kill the child with SIGPIPE once the module is gone;
    /// a file cannot. And a chatty child never blocks on a full pipe.
    #[test]
    fn output_goes_to_files_not_pipes() {
        let script = "[ -p /dev/stdout ] || [ -p /dev/stderr ] && echo pipe || echo file; \
                      head -c 300000 /dev/zero";
        let out = run(Path::new("sh"), &["-c", script], None).expect("sh runs");
        assert!(out.stdout.starts_with("file\n"), "{:?}", &out.stdout[..10]);
        assert_eq!(out.stdout.len(), "file\n".len() + 300000);
    }

    #[test]
    fn exit_code_and_stderr_are_kept() {
        let out = run(Path::new("sh"), &["-c", "echo oops >&2; exit 3"], None).expect("sh runs");
        assert_eq!((out.rc, out.stderr.as_str()), (3, "oops\n"));
    }

    #[test]
    fn a_slow_command_is_killed_at_its_time_limit() {
        let start = Instant::now();
        let err = run(
            Path::new("sleep"),
            &["10"],
            Some(Duration::from_millis(100)),
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("no answer within"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(Path::new("/nonexistent/xl"), &["list"], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot run /nonexistent/xl list: No such file or directory"
        );
    }
}
