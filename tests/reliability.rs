//! Faults, concurrency and bad input, through the module binary itself.
//!
//! - `sigkill_during_writes`: 1,000 runs, each killed with SIGKILL at a
//!   random moment; the config is always the old or the new file, whole.
//! - `concurrent_runs_lose_no_update`: 64 runs on one file at once.
//! - `bad_input_corpus`: malformed arguments and files, each giving one
//!   clean JSON failure and leaving the config and its folder alone; the
//!   cases that are data are in `reliability/bad_input.json`, the ones
//!   that need code (files made in the folder, no arguments file,
//!   generated sizes, bytes that are not UTF-8) below.
//!
//! Seeds: `XENPCI_SEED=N` replays a kill schedule (the seed is printed).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xenpci::xlcfg::XlConfig;

use crate::util::{clip, module_result, run_raw_with, Ran, RawRun, RunOpts};

const BIN: &str = "domain_pci_config";

// ---------------------------------------------------------------------------
// Helpers.

/// A small xorshift generator: no dependency, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("XENPCI_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("XENPCI_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_json(path: &Path, v: &Value) {
    fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn is_tmp(name: &str) -> bool {
    name.contains(".xenpci.") && name.ends_with(".tmp")
}

/// Runs the module on `args_file` (harness's runner: no stdin, no
/// `XENPCI_HOST`), killed after `limit`, the command adjusted by `prepare`.
fn run(args_file: &Path, limit: Duration, prepare: Option<&dyn Fn(&mut Command)>) -> RawRun {
    let args = args_file.to_str().expect("UTF-8 path");
    let opts = RunOpts {
        limit: Some(limit),
        prepare,
    };
    run_raw_with(BIN, &[args], None, &[], opts)
}

/// How much of a long output or `msg` a message shows.
const SHOWN: usize = 600;

/// The result of a run ([`module_result`]: one JSON object, the keys every
/// result has, an exit code that matches `failed`), with nothing on stderr
/// that looks like a panic.
fn result_of(run: RawRun, what: &str) -> Ran {
    let ran = module_result(run, what);
    for bad in [
        "panicked",
        "stack backtrace",
        "RUST_BACKTRACE",
        "fatal runtime error",
    ] {
        assert!(
            !ran.stderr.contains(bad),
            "{what}: {bad:?} on stderr: {}",
            clip(&ran.stderr, SHOWN)
        );
    }
    ran
}

fn devices_in(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap();
    let cfg = XlConfig::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    xenpci::domcfg::PciConfig::read(&cfg, path)
        .unwrap()
        .devices()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// SIGKILL in the middle of writes.

const KILL_RUNS: usize = 1000;

/// 1,000 runs on one config, each killed with SIGKILL after a random delay
/// between 0 and 1.3 times a normal run's duration. Runs alternate between
/// adding and removing one device, so each one that finishes changes the
/// file. After every kill the file must be, byte for byte, the old or the
/// new content.
///
/// A killed run may leave its temporary file (`.vm.cfg.xenpci.PID.N.tmp`)
/// behind: SIGKILL leaves no chance to clean up. A later write sweeps such
/// a leftover away only once its PID runs no process and it is a minute
/// old (see `fileio::atomic`), an age no leftover reaches here: the 1,000
/// runs take seconds. So the leftovers stay, and we assert that the config
/// is intact after every run, that at most one leftover exists per killed
/// run and nothing else appears (the count is printed), that some runs
/// finished and some were killed, and that a last, clean run leaves the
/// leftovers as they were: it adds none and sweeps none.
#[test]
fn sigkill_during_writes() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let args_dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vm.cfg");
    let without = b"name = 'vm1'\nmemory = 1024\n# devices\npci = [ '0000:01:00.0', '0000:02:00.0,permissive=1' ]\nvcpus = 2\n".to_vec();
    fs::write(&cfg, &without).unwrap();
    let add = args_dir.path().join("add.json");
    let remove = args_dir.path().join("remove.json");
    write_json(
        &add,
        &json!({"path": cfg, "devices": ["07:00.0"], "state": "present"}),
    );
    write_json(
        &remove,
        &json!({"path": cfg, "devices": ["07:00.0"], "state": "absent"}),
    );

    // Two clean runs give the two contents, and how long a run takes.
    let t0 = Instant::now();
    let r = result_of(run(&add, Duration::from_secs(30), None), "clean add");
    assert_eq!(r.json["changed"], true);
    let with = fs::read(&cfg).unwrap();
    let r = result_of(run(&remove, Duration::from_secs(30), None), "clean remove");
    assert_eq!(r.json["changed"], true);
    assert_eq!(
        fs::read(&cfg).unwrap(),
        without,
        "add then remove is not the identity"
    );
    let mut samples = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        let args = if i % 2 == 0 { &add } else { &remove };
        let out = crate::util::command(BIN)
            .arg(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success());
        samples.push(t.elapsed());
    }
    samples.sort();
    let run_time = samples[samples.len() / 2];
    let mut max_delay_us = (run_time.as_micros() as u64 * 13 / 10).max(1);
    println!(
        "a run takes ~{run_time:?} (setup {:?}); kill delays 0..{max_delay_us}us",
        t0.elapsed()
    );

    let mut rng = Rng::from_env();
    let (mut completed, mut killed, mut flips) = (0usize, 0usize, 0usize);
    let mut current = fs::read(&cfg).unwrap();
    // Completed runs in the current window of 100, to keep the delays
    // honest when the machine is busier (or idler) than at calibration.
    let mut window_done = 0;
    for i in 0..KILL_RUNS {
        if i > 0 && i % 100 == 0 {
            if window_done < 10 {
                max_delay_us = max_delay_us * 3 / 2;
            } else if window_done > 90 {
                max_delay_us = (max_delay_us * 2 / 3).max(1);
            }
            window_done = 0;
        }
        let args = if current == without { &add } else { &remove };
        let delay = Duration::from_micros(rng.below(max_delay_us + 1));
        let mut child = crate::util::command(BIN)
            .arg(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; an error means it had already exited
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
            window_done += 1;
        } else {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "run {i} failed on its own: {status:?}"
            );
            killed += 1;
        }
        let now = fs::read(&cfg).unwrap();
        assert!(
            now == without || now == with,
            "run {i} (killed after {delay:?}) left a file that is neither old nor new:\n{}",
            String::from_utf8_lossy(&now)
        );
        XlConfig::parse(&now).unwrap_or_else(|e| panic!("run {i}: {e}"));
        if now != current {
            flips += 1;
        }
        if status.success() {
            assert_ne!(now, current, "run {i} finished but did not change the file");
        }
        current = now;
    }

    let leftovers: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| is_tmp(n))
        .collect();
    let others: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| !is_tmp(n) && n != "vm.cfg" && n != ".vm.cfg.xenpci.lock")
        .collect();
    println!(
        "{KILL_RUNS} runs: {completed} completed, {killed} killed ({flips} changed the file); \
         {} stale temporary files left; final max delay {max_delay_us}us; {:?} in all",
        leftovers.len(),
        started.elapsed()
    );
    assert!(others.is_empty(), "unexpected files: {others:?}");
    assert!(
        leftovers.len() <= killed,
        "more leftovers ({}) than killed runs ({killed})",
        leftovers.len()
    );
    assert!(
        completed > 0 && killed > 0,
        "the delays never (or always) let a run finish"
    );
    // A clean run still works beside the leftovers; it leaves no temporary
    // file of its own and sweeps none of theirs (none is a minute old).
    let before = leftovers.len();
    let args = if current == without { &add } else { &remove };
    let r = result_of(run(args, Duration::from_secs(30), None), "final run");
    assert_eq!(r.json["changed"], true);
    let after = names(dir.path()).into_iter().filter(|n| is_tmp(n)).count();
    assert_eq!(after, before, "a clean run left a temporary file");
}

// ---------------------------------------------------------------------------
// Concurrency.

const CONCURRENT: usize = 64;

/// 64 runs started together, each adding its own device to one file: no
/// update is lost, the file parses, every run succeeds.
///
/// To be sure they really overlap, the test holds the file's lock (the
/// module's own `.vm.cfg.xenpci.lock`) while the 64 start, so that all of
/// them are waiting when it lets go.
#[test]
fn concurrent_runs_lose_no_update() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let args_dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vm.cfg");
    fs::write(
        &cfg,
        "name = 'vm1'\npci = [\n    '0000:aa:00.0', # kept\n]\nmemory = 512\n",
    )
    .unwrap();
    let target = fs::canonicalize(&cfg).unwrap();

    let bdfs: Vec<String> = (0..CONCURRENT)
        .map(|i| format!("0000:00:{:02x}.{}", i / 8, i % 8))
        .collect();
    let files: Vec<PathBuf> = bdfs
        .iter()
        .enumerate()
        .map(|(i, bdf)| {
            let f = args_dir.path().join(format!("{i}.json"));
            write_json(&f, &json!({"path": cfg, "devices": [bdf]}));
            f
        })
        .collect();

    let lock_file = xenpci::fileio::lock_path(&target).unwrap();
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_file)
        .unwrap();
    let held = nix::fcntl::Flock::lock(held, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();

    let barrier = Arc::new(Barrier::new(CONCURRENT));
    let handles: Vec<_> = files
        .into_iter()
        .map(|f| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                run(&f, Duration::from_secs(60), None)
            })
        })
        .collect();
    // Let every process start and find the lock taken.
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    let runs: Vec<RawRun> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    for (i, run) in runs.into_iter().enumerate() {
        let r = result_of(run, &format!("run {i}")).json;
        assert_eq!(r["failed"], false, "run {i}: {}", r["msg"]);
        assert_eq!(r["changed"], true, "run {i}: {}", r["msg"]);
        let listed: Vec<&str> = r["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(
            listed.contains(&bdfs[i].as_str()),
            "run {i} does not list its own device"
        );
    }
    let devices = devices_in(&cfg);
    assert_eq!(devices.len(), CONCURRENT + 1, "lost updates: {devices:?}");
    assert_eq!(devices[0], "0000:aa:00.0");
    for bdf in &bdfs {
        assert!(devices.contains(bdf), "{bdf} lost");
    }
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("'0000:aa:00.0', # kept\n"),
        "layout lost:\n{text}"
    );
    assert!(
        text.starts_with("name = 'vm1'\npci = [\n") && text.ends_with("]\nmemory = 512\n"),
        "{text}"
    );
    let stray: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n != "vm.cfg" && n != ".vm.cfg.xenpci.lock")
        .collect();
    assert!(stray.is_empty(), "stray files: {stray:?}");
    println!("{CONCURRENT} concurrent runs in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// Bad input.

const GOOD: &[u8] = b"name = 'vm1'\nmemory = 1024\npci = [ '0000:07:00.0' ]\n";

/// What a case expects.
struct Expect {
    failed: bool,
    /// Substrings of `msg` (all of them, case-insensitive).
    msg: Vec<String>,
}

fn fails(msg: &[&str]) -> Expect {
    Expect {
        failed: true,
        msg: msg.iter().map(|m| m.to_string()).collect(),
    }
}

fn succeeds(msg: &[&str]) -> Expect {
    Expect {
        failed: false,
        ..fails(msg)
    }
}

/// The arguments of a case.
enum Args {
    /// A JSON object; `"PATH"` stands for the config file's path.
    Json(Value),
    /// Raw bytes for the arguments file.
    Raw(Vec<u8>),
    /// No arguments file at all.
    Missing,
}

/// Prepares the config folder for a case; returns the `path` argument.
type Setup = Box<dyn Fn(&Path) -> PathBuf>;

struct Case {
    name: String,
    /// The config file's contents (written as `vm.cfg`), or none.
    config: Option<Vec<u8>>,
    /// Turns the config folder into the situation under test; returns the
    /// path to give as `path` (default: `vm.cfg`).
    setup: Option<Setup>,
    args: Args,
    expect: Expect,
    /// Run as another user (for the unreadable file).
    as_nobody: bool,
}

impl Case {
    fn new(name: impl Into<String>, args: Args, expect: Expect) -> Case {
        Case {
            name: name.into(),
            config: Some(GOOD.to_vec()),
            setup: None,
            args,
            expect,
            as_nobody: false,
        }
    }
    fn config(mut self, c: &[u8]) -> Case {
        self.config = Some(c.to_vec());
        self
    }
    fn setup(mut self, f: impl Fn(&Path) -> PathBuf + 'static) -> Case {
        self.setup = Some(Box::new(f));
        self
    }
}

fn with_path(v: &Value, path: &Path) -> Value {
    match v {
        Value::String(s) if s == "PATH" => Value::String(path.to_string_lossy().into_owned()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), with_path(v, path)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| with_path(v, path)).collect()),
        other => other.clone(),
    }
}

/// The default arguments with the keys of `extra` set.
fn obj(extra: Value) -> Args {
    let mut base = json!({"path": "PATH", "devices": ["07:00.0"]});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    Args::Json(base)
}

/// The cases that are data: `reliability/bad_input.json`.
const LISTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/reliability/bad_input.json"
);

/// `LISTED`: cases in groups, each group with what its cases have in common.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Listed {
    /// What the file holds, for its readers.
    #[allow(dead_code)]
    about: Vec<String>,
    groups: Vec<ListedGroup>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedGroup {
    /// What the group's cases try, for the file's readers.
    #[allow(dead_code)]
    about: String,
    cases: Vec<ListedCase>,
}

/// A case of `LISTED`: `name`; its arguments, the default ones
/// (`{"path": "PATH", "devices": ["07:00.0"]}`) or those with the keys of
/// `with` set, or the object `args`, or `raw`, the arguments file's text;
/// `path`, the `path` argument relative to the case's folder (default
/// `vm.cfg`); `config`, the text of `vm.cfg` (default [`GOOD`]); `fails`
/// or `succeeds`: the words `msg` must hold.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedCase {
    name: String,
    with: Option<Value>,
    args: Option<Value>,
    raw: Option<String>,
    path: Option<String>,
    config: Option<String>,
    fails: Option<Vec<String>>,
    succeeds: Option<Vec<String>>,
}

impl ListedCase {
    fn into_case(self) -> Case {
        let name = self.name;
        let args = match (self.with, self.args, self.raw) {
            (None, None, None) => obj(json!({})),
            (Some(with), None, None) => obj(with),
            (None, Some(args), None) => Args::Json(args),
            (None, None, Some(raw)) => Args::Raw(raw.into_bytes()),
            _ => panic!("{name}: more than one of `with`, `args` and `raw`"),
        };
        let expect = match (self.fails, self.succeeds) {
            (Some(msg), None) => Expect { failed: true, msg },
            (None, Some(msg)) => Expect { failed: false, msg },
            _ => panic!("{name}: one of `fails` and `succeeds`, please"),
        };
        let mut case = Case::new(name, args, expect);
        if let Some(config) = self.config {
            case = case.config(config.as_bytes());
        }
        if let Some(path) = self.path {
            case = case.setup(move |d| d.join(&path));
        }
        case
    }
}

/// The cases of `LISTED`.
fn listed_cases() -> Vec<Case> {
    let text = fs::read_to_string(LISTED).unwrap_or_else(|e| panic!("{LISTED}: {e}"));
    let listed: Listed = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{LISTED}: {e}"));
    listed
        .groups
        .into_iter()
        .flat_map(|g| g.cases)
        .map(ListedCase::into_case)
        .collect()
}

/// Every case: those of `LISTED`, and those that need code.
fn corpus() -> Vec<Case> {
    let big = |n: usize| -> Vec<u8> {
        // A valid config of about `n` bytes: comment lines, then the list.
        let line =
            b"# padding padding padding padding padding padding padding padding padding padding\n";
        let mut v = Vec::with_capacity(n + 100);
        while v.len() + line.len() < n {
            v.extend_from_slice(line);
        }
        v.extend_from_slice(GOOD);
        v
    };
    let mut cases = listed_cases();
    cases.extend([
        // Bytes no JSON string holds.
        Case::new(
            "invalid UTF-8",
            Args::Raw(b"{\"path\": \"vm\xff.cfg\"}".to_vec()),
            fails(&["not valid JSON"]),
        ),
        Case::new(
            "arguments file missing",
            Args::Missing,
            fails(&["does not exist"]),
        ),
        // Files made in the folder.
        Case::new("directory", obj(json!({})), fails(&["is a directory"])).setup(|d| {
            fs::create_dir(d.join("vm.d")).unwrap();
            d.join("vm.d")
        }),
        Case::new("FIFO", obj(json!({})), fails(&["not a regular file"])).setup(|d| {
            let p = d.join("fifo.cfg");
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            p
        }),
        Case::new("symlink loop", obj(json!({})), fails(&["symbolic links"])).setup(|d| {
            std::os::unix::fs::symlink("loop-b.cfg", d.join("loop-a.cfg")).unwrap();
            std::os::unix::fs::symlink("loop-a.cfg", d.join("loop-b.cfg")).unwrap();
            d.join("loop-a.cfg")
        }),
        // Sizes.
        Case::new(
            "10 MB config, no change",
            obj(json!({})),
            succeeds(&["already"]),
        )
        .config(&big(10_000_000)),
        Case::new(
            "10 MB config, check mode add",
            obj(json!({"devices": ["08:00.0"], "_ansible_check_mode": true})),
            succeeds(&["added"]),
        )
        .config(&big(10_000_000)),
        Case::new(
            "20 MB config",
            obj(json!({})),
            fails(&["too large", "16777216"]),
        )
        .config(&big(20_000_000)),
        Case::new(
            "10 MB args, Ansible padding",
            obj(json!({"_ansible_padding": "x".repeat(10_000_000)})),
            succeeds(&["already"]),
        ),
        Case::new(
            "10 MB args, one huge device",
            obj(json!({"devices": ["0".repeat(10_000_000)]})),
            fails(&["devices[0]"]),
        ),
    ]);
    let mut unreadable = Case::new(
        "unreadable file",
        obj(json!({})),
        fails(&["Permission denied"]),
    )
    .setup(|d| {
        let p = d.join("vm.cfg");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        p
    });
    unreadable.as_nobody = nix::unistd::geteuid().is_root();
    cases.push(unreadable);
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        panic!("two cases named {:?}", w[0]);
    }
    cases
}

/// Every bad input gives one JSON object with `failed: true` and a `msg`
/// naming the problem, exit code 1, nothing on stderr that looks like a
/// panic, the config byte-identical and no new file beside it but the
/// module's lock file (kept by design: removing it would race).
///
/// An unreadable file: root reads a mode-000 file anyway, so when the test
/// runs as root the module runs as `nobody` (uid 65534, via `pre_exec`),
/// with the folder made searchable and the lock file created beforehand
/// so that the refusal comes from reading the file, not from the lock.
/// A FIFO and a directory are separate cases (refused from their type).
#[test]
fn bad_input_corpus() {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut locks = Vec::new();
    let cases = corpus();
    let count = cases.len();
    for case in cases {
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(&case))) {
            Ok(note) => {
                let (lock, note) = note;
                if lock {
                    locks.push(case.name.clone());
                }
                if let Some(n) = note {
                    notes.push(format!("{}: {n}", case.name));
                }
            }
            Err(p) => {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                problems.push(format!("{}: {what}", case.name));
            }
        }
        if t.elapsed() > Duration::from_secs(2) {
            notes.push(format!("{}: took {:?}", case.name, t.elapsed()));
        }
    }
    for n in &notes {
        println!("note: {n}");
    }
    println!(
        "{} of {count} cases left the module's lock file (by design): {locks:?}",
        locks.len()
    );
    println!("bad-input corpus: {count} cases in {:?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "{} case(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Runs one case; returns whether it left a lock file, and a remark worth
/// printing.
fn check_case(case: &Case) -> (bool, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let args_dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vm.cfg");
    if let Some(c) = &case.config {
        fs::write(&cfg, c).unwrap();
    }
    let path = match &case.setup {
        Some(f) => f(dir.path()),
        None => cfg.clone(),
    };
    let args_file = args_dir.path().join("args.json");
    match &case.args {
        Args::Json(v) => fs::write(
            &args_file,
            serde_json::to_vec(&with_path(v, &path)).unwrap(),
        )
        .unwrap(),
        Args::Raw(b) => fs::write(&args_file, b).unwrap(),
        Args::Missing => {}
    }
    let lock_name = format!(
        ".{}.xenpci.lock",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    if case.as_nobody {
        for d in [dir.path(), args_dir.path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(&args_file, fs::Permissions::from_mode(0o644)).unwrap();
        let lock = dir.path().join(&lock_name);
        fs::File::create(&lock).unwrap().flush().unwrap();
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let before_names = names(dir.path());
    let before_bytes = case.config.as_ref().map(|_| fs::read(&cfg).unwrap());

    let nobody: &dyn Fn(&mut Command) = &crate::util::as_nobody;
    let ran = result_of(
        run(
            &args_file,
            Duration::from_secs(60),
            case.as_nobody.then_some(nobody),
        ),
        &case.name,
    );
    let r = &ran.json;
    let msg = r["msg"].as_str().unwrap().to_string();
    assert_eq!(
        r["failed"],
        case.expect.failed,
        "failed should be {}: {}",
        case.expect.failed,
        clip(&msg, SHOWN)
    );
    for want in &case.expect.msg {
        assert!(
            msg.to_lowercase().contains(&want.to_lowercase()),
            "msg does not mention {want:?}: {}",
            clip(&msg, SHOWN)
        );
    }
    assert!(!msg.trim().is_empty(), "empty msg");
    if case.expect.failed {
        assert_eq!(r["changed"], false, "a failure reports changed");
    }
    if let Some(b) = before_bytes {
        if case.as_nobody {
            fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert!(fs::read(&cfg).unwrap() == b, "the config changed");
    }
    let after_names = names(dir.path());
    let new: Vec<&String> = after_names
        .iter()
        .filter(|n| !before_names.contains(n) && **n != lock_name)
        .collect();
    assert!(new.is_empty(), "new files beside the config: {new:?}");
    let gone: Vec<&String> = before_names
        .iter()
        .filter(|n| !after_names.contains(n))
        .collect();
    assert!(gone.is_empty(), "files removed: {gone:?}");

    let mut remarks = Vec::new();
    let lock_left = after_names.contains(&lock_name) && !before_names.contains(&lock_name);
    if msg.len() > 2000 {
        remarks.push(format!("msg is {} bytes long", msg.len()));
    }
    if !ran.stderr.is_empty() {
        remarks.push(format!("stderr: {}", clip(&ran.stderr, SHOWN)));
    }
    if std::env::var_os("XENPCI_SHOW_MSGS").is_some() {
        remarks.push(format!("msg: {}", clip(&msg, SHOWN)));
    }
    (lock_left, (!remarks.is_empty()).then(|| remarks.join("; ")))
}
