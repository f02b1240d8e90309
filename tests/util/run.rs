//! Running the modules' binary: as a module's name or a path, with
//! arguments, stdin and environment, within a time limit if asked, and the
//! checks every module's result owes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The modules' binary.
pub const XENPCI: &str = env!("CARGO_BIN_EXE_xenpci");

/// The command that runs `bin`: a path, or a module's name, which runs the
/// modules' binary under that name (a symlink in cargo's scratch folder for
/// tests), as the collection ships it and Ansible runs it.
pub fn command(bin: &str) -> Command {
    if bin.contains('/') {
        Command::new(bin)
    } else {
        Command::new(module_path(bin))
    }
}

/// The modules' binary under the name `name`.
pub fn module_path(name: &str) -> PathBuf {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("modules");
    let link = dir.join(name);
    if fs::read_link(&link).ok().as_deref() != Some(Path::new(XENPCI)) {
        fs::create_dir_all(&dir).expect("cargo's scratch folder is writable");
        // Tests run in parallel: each makes its own link and renames it over.
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}", std::process::id()));
        std::os::unix::fs::symlink(XENPCI, &tmp).expect("symlink");
        fs::rename(&tmp, &link).expect("rename the symlink");
    }
    link
}

/// One run of a module whose standard output is its JSON result.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The result object.
    pub json: Value,
    /// The exit code.
    pub code: i32,
    /// Standard output as printed (one line).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// `failed` of the result.
    pub fn failed(&self) -> bool {
        self.json["failed"]
            .as_bool()
            .expect("`failed` is a boolean")
    }

    /// `msg` of the result.
    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().expect("`msg` is a string")
    }
}

/// One run of a binary, output as text (for `--help` and `--version`).
#[derive(Debug, Clone)]
pub struct RawRun {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// What a run may add to [`run_raw`]'s: none of it by default.
#[derive(Clone, Copy, Default)]
pub struct RunOpts<'a> {
    /// How long the run may take: past it the child is killed (SIGKILL)
    /// and the test fails, naming the command. `None`: no limit.
    pub limit: Option<Duration>,
    /// Adjusts the command just before it is spawned ([`as_nobody`], an
    /// environment variable).
    pub prepare: Option<&'a dyn Fn(&mut Command)>,
}

/// Runs `bin` with `argv`, feeding `stdin` (or nothing: an empty stdin).
/// `XENPCI_HOST` reaches the module only when `env` gives it: one in the
/// test runner's own environment would point a real-side test elsewhere.
pub fn run_raw(bin: &str, argv: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> RawRun {
    run_raw_with(bin, argv, stdin, env, RunOpts::default())
}

/// [`run_raw`] with a time limit and a hook on the command ([`RunOpts`]).
pub fn run_raw_with(
    bin: &str,
    argv: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
    opts: RunOpts,
) -> RawRun {
    let mut cmd = command(bin);
    cmd.args(argv)
        .env_remove("XENPCI_HOST")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(prepare) = opts.prepare {
        prepare(&mut cmd);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let out = match opts.limit {
        None => {
            if let Some(mut input) = child.stdin.take() {
                // A module that does not read stdin may close it first: not
                // an error.
                let _ = input.write_all(stdin.unwrap_or_default());
            }
            child.wait_with_output().expect("wait for the module")
        }
        Some(limit) => {
            let what = std::iter::once(bin)
                .chain(argv.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            wait_within(child, stdin.unwrap_or_default(), limit, &what)
        }
    };
    RawRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Feeds `stdin` to `child`, collects its output and waits for it, at most
/// `limit`: past it, kills the child (SIGKILL) and fails naming `what`.
fn wait_within(mut child: Child, stdin: &[u8], limit: Duration, what: &str) -> Output {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (exited, exit) = std::sync::mpsc::channel();
    // Waits for the exit without reaping the child (`WNOWAIT`): until
    // `child.wait()` below reaps it, its pid names no other process, so the
    // kill cannot reach one.
    std::thread::spawn(move || {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        while waitid(Id::Pid(pid), flags) == Err(nix::errno::Errno::EINTR) {}
        let _ = exited.send(());
    });
    // Dropped at once when there is nothing to feed: an empty stdin.
    if let (Some(mut input), false) = (child.stdin.take(), stdin.is_empty()) {
        let stdin = stdin.to_vec();
        // A module that does not read stdin may close it first: not an error.
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
    }
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes)
                    .expect("read the module's output");
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = exit.recv_timeout(limit) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {limit:?}");
    }
    Output {
        status: child.wait().expect("wait for the module"),
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

/// Runs `bin` with `argv` and `stdin`, and asserts what every module run
/// owes ([`module_result`]).
pub fn run_json(bin: &str, argv: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Ran {
    module_result(run_raw(bin, argv, stdin, env), &format!("argv {argv:?}"))
}

/// How much of a long output a failure message shows.
const SHOWN: usize = 4000;

/// `s`, or its first `max` bytes (at a character boundary) and its length.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// Asserts what every module run owes: standard output is exactly one line
/// holding one JSON object, with `changed`, `failed` and `msg`, and the
/// exit code is 1 when `failed` is true, 0 otherwise. `what` names the run
/// in a failure.
pub fn module_result(raw: RawRun, what: &str) -> Ran {
    let context = || {
        format!(
            "{what}\nstdout: {}\nstderr: {}",
            clip(&raw.stdout, SHOWN),
            clip(&raw.stderr, SHOWN)
        )
    };
    assert!(
        raw.stdout.ends_with('\n') && raw.stdout.matches('\n').count() == 1,
        "stdout must be exactly one line\n{}",
        context()
    );
    let json: Value = serde_json::from_str(&raw.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", context()));
    assert!(
        json.is_object(),
        "the result must be a JSON object\n{}",
        context()
    );
    assert!(
        json["changed"].is_boolean(),
        "`changed` must be a boolean\n{}",
        context()
    );
    assert!(
        json["failed"].is_boolean(),
        "`failed` must be a boolean\n{}",
        context()
    );
    assert!(
        json["msg"].is_string(),
        "`msg` must be a string\n{}",
        context()
    );
    let want = if json["failed"] == Value::Bool(true) {
        1
    } else {
        0
    };
    assert_eq!(
        raw.code,
        want,
        "exit code must follow `failed`\n{}",
        context()
    );
    Ran {
        json,
        code: raw.code,
        stdout: raw.stdout,
        stderr: raw.stderr,
    }
}

/// Runs `bin ARGS_FILE` as Ansible does, `args` written to a temporary file
/// (outside any scenario folder).
pub fn run_module(bin: &str, args: &Value, env: &[(&str, &str)]) -> Ran {
    let mut file = tempfile::Builder::new()
        .prefix("args-")
        .suffix(".json")
        .tempfile()
        .expect("temporary arguments file");
    file.write_all(args.to_string().as_bytes())
        .expect("write the arguments");
    file.flush().expect("flush the arguments");
    let path = file.path().to_str().expect("UTF-8 temp path").to_string();
    run_json(bin, &[&path], None, env)
}

/// Makes `cmd` run as `nobody` (uid and gid 65534, no groups), so that
/// file permissions apply to it as to any unprivileged writer.
pub fn as_nobody(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).map_err(std::io::Error::from)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}
