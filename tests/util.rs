//! The harness shared by the module tests: run a module binary the ways
//! Ansible and people do, load a scenario folder into a temporary copy, and
//! run a scenario in check mode, then for real, then again
//! ([`check_apply_reapply`]), asserting what every module owes: check mode
//! changes nothing, check and apply agree, the second run changes nothing.
//!
//! Nothing here knows a particular module: a module's tests pass its name
//! (which runs the modules' binary under that name, see [`command`]) and the
//! result keys allowed to differ between check mode and apply.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

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

/// Runs `bin` with `argv`, feeding `stdin` (or nothing: an empty stdin).
/// `XENPCI_HOST` reaches the module only when `env` gives it: one in the
/// test runner's own environment would point a real-side test elsewhere.
pub fn run_raw(bin: &str, argv: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> RawRun {
    let mut child = command(bin)
        .args(argv)
        .env_remove("XENPCI_HOST")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    {
        let mut input = child.stdin.take().expect("stdin piped");
        // A module that does not read stdin may close it first: not an error.
        let _ = input.write_all(stdin.unwrap_or_default());
    }
    let out = child.wait_with_output().expect("wait for the module");
    RawRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `bin` with `argv` and `stdin`, and asserts what every module run
/// owes: standard output is exactly one line holding one JSON object, with
/// `changed`, `failed` and `msg`, and the exit code is 1 when `failed` is
/// true, 0 otherwise.
pub fn run_json(bin: &str, argv: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Ran {
    let raw = run_raw(bin, argv, stdin, env);
    let context = || {
        format!(
            "argv {argv:?}\nstdout: {}\nstderr: {}",
            raw.stdout, raw.stderr
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

/// Files of a scenario folder that describe the scenario rather than being
/// copied into it.
const SCENARIO_META: [&str; 4] = ["args.json", "symlinks.json", "about.txt", "may-differ.txt"];

/// A scenario folder copied into a fresh temporary directory.
///
/// The folder holds `args.json` (the module's arguments; the placeholder
/// `{dir}` in any string stands for the temporary copy), optionally
/// `symlinks.json` (`{"LINK": "TARGET"}`, created in the copy, since git
/// keeps symlinks poorly) and `about.txt` (what the scenario shows, for the
/// snapshot's description), and input files, copied as they are.
pub struct Scenario {
    /// The folder's name.
    pub name: String,
    /// The folder in the source tree.
    pub source: PathBuf,
    /// `about.txt`, if any.
    pub about: Option<String>,
    /// The arguments, `{dir}` substituted.
    pub args: Value,
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Scenario {
    /// Loads the scenario whose `args.json` is `args_file`.
    pub fn load(args_file: &Path) -> Scenario {
        let source = args_file
            .parent()
            .expect("args.json is in a folder")
            .to_path_buf();
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 scenario name")
            .to_string();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("scenario-{name}-"))
            .tempdir()
            .expect("temporary scenario folder");
        // Canonical, so that paths the module resolves (symlinks, /tmp
        // being a link) match the ones the arguments name.
        let dir = tmp.path().canonicalize().expect("canonical temp dir");
        copy_tree(&source, &dir, true);
        let links = source.join("symlinks.json");
        if links.exists() {
            let map: BTreeMap<String, String> =
                serde_json::from_slice(&fs::read(&links).expect("read symlinks.json"))
                    .expect("symlinks.json is an object of strings");
            for (link, target) in map {
                let target = target.replace("{dir}", dir.to_str().expect("UTF-8 dir"));
                std::os::unix::fs::symlink(&target, dir.join(&link))
                    .unwrap_or_else(|e| panic!("symlink {link} -> {target}: {e}"));
            }
        }
        let about = fs::read_to_string(source.join("about.txt"))
            .ok()
            .map(|s| s.trim().to_string());
        let raw: Value = serde_json::from_slice(&fs::read(args_file).expect("read args.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", args_file.display()));
        let args = substitute(raw, dir.to_str().expect("UTF-8 dir"));
        Scenario {
            name,
            source,
            about,
            args,
            tmp,
            dir,
        }
    }

    /// `listing` with its names redacted as [`Scenario::redact`] does.
    pub fn redact_names(&self, listing: &Listing) -> Listing {
        let names = |n: &String| match self.redact(&Value::String(n.clone())) {
            Value::String(s) => s,
            _ => unreachable!("a string stays a string"),
        };
        Listing(
            listing
                .0
                .iter()
                .map(|(n, e)| (names(n), e.clone()))
                .collect(),
        )
    }

    /// The temporary copy.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside the copy.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What the copy holds now.
    pub fn listing(&self) -> Listing {
        let mut out = BTreeMap::new();
        list_tree(&self.dir, &self.dir, &mut out);
        Listing(out)
    }

    /// `value` with the copy's path shown as `[DIR]`, backup stamps
    /// (`.PID.YYYY-MM-DD@HH:MM:SS~`) as `.[BACKUP]` and the process id in
    /// temporary file names (`.xenpci.PID.N.tmp`) as `[PID]`, in strings
    /// and keys. The redacted paths stay in the check/apply comparisons.
    pub fn redact(&self, value: &Value) -> Value {
        let raw = self.tmp.path().to_str().expect("UTF-8 dir").to_string();
        let canonical = self.dir.to_str().expect("UTF-8 dir").to_string();
        let fix = |s: &str| {
            redact_temp_pid(&redact_backup(
                &s.replace(&canonical, "[DIR]").replace(&raw, "[DIR]"),
            ))
        };
        map_strings(value, &fix)
    }
}

fn substitute(v: Value, dir: &str) -> Value {
    map_strings(&v, &|s: &str| s.replace("{dir}", dir))
}

/// Applies `f` to every string and object key of `v`.
fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_strings(x, f)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (f(k), map_strings(x, f))).collect())
        }
        other => other.clone(),
    }
}

/// Replaces every `.PID.YYYY-MM-DD@HH:MM:SS~` (Ansible's backup suffix)
/// with `.[BACKUP]`.
pub fn redact_backup(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if let Some(len) = backup_suffix_at(&b[i..]) {
            out.push_str(&s[copied..i]);
            out.push_str(".[BACKUP]");
            i += len;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Replaces the process id of every `.xenpci.PID.N.tmp` (the temporary
/// file beside an edited file, named in a `validate` command) with `[PID]`.
pub fn redact_temp_pid(s: &str) -> String {
    const MARK: &str = ".xenpci.";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(MARK) {
        let (head, tail) = rest.split_at(at + MARK.len());
        out.push_str(head);
        let pid_len = tail.bytes().take_while(u8::is_ascii_digit).count();
        let after = &tail[pid_len..];
        let n_len = after
            .strip_prefix('.')
            .map_or(0, |a| a.bytes().take_while(u8::is_ascii_digit).count());
        if pid_len > 0 && n_len > 0 && after[1 + n_len..].starts_with(".tmp") {
            out.push_str("[PID]");
            rest = after;
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The length of a backup suffix starting at `b[0]`, if one does.
fn backup_suffix_at(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let lit = |i: &mut usize, c: u8| -> Option<()> { (b.get(*i) == Some(&c)).then(|| *i += 1) };
    let digits = |i: &mut usize, n: Option<usize>| -> Option<()> {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        let got = *i - start;
        match n {
            Some(n) if got == n => Some(()),
            None if got > 0 => Some(()),
            _ => None,
        }
    };
    lit(&mut i, b'.')?;
    digits(&mut i, None)?;
    lit(&mut i, b'.')?;
    digits(&mut i, Some(4))?;
    for (sep, n) in [(b'-', 2), (b'-', 2), (b'@', 2), (b':', 2), (b':', 2)] {
        lit(&mut i, sep)?;
        digits(&mut i, Some(n))?;
    }
    lit(&mut i, b'~')?;
    Some(i)
}

fn copy_tree(from: &Path, to: &Path, top: bool) {
    for entry in fs::read_dir(from).expect("read scenario folder") {
        let entry = entry.expect("scenario folder entry");
        let name = entry.file_name();
        if top && SCENARIO_META.iter().any(|m| name == *m) {
            continue;
        }
        let ty = entry.file_type().expect("file type");
        let dest = to.join(&name);
        if ty.is_dir() {
            fs::create_dir(&dest).expect("create folder");
            copy_tree(&entry.path(), &dest, false);
        } else {
            fs::copy(entry.path(), &dest).expect("copy input file");
        }
    }
}

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its bytes and permission bits.
    File { bytes: Vec<u8>, mode: u32 },
    /// A symbolic link and what it points to.
    Symlink(PathBuf),
    /// A folder.
    Dir,
}

/// Every entry under a folder, by relative path (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(pub BTreeMap<String, Entry>);

impl Listing {
    /// The listing without the entry `name`.
    pub fn without(&self, name: &str) -> Listing {
        let mut l = self.clone();
        l.0.remove(name);
        l
    }

    /// The listing as JSON for a snapshot: a file as its text (invalid
    /// UTF-8 replaced), a symlink as `{"symlink": TARGET}`, a folder as
    /// `{"dir": true}`.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(name, e)| {
                let v = match e {
                    Entry::File { bytes, .. } => {
                        Value::String(String::from_utf8_lossy(bytes).into_owned())
                    }
                    Entry::Symlink(t) => json!({ "symlink": t.to_string_lossy() }),
                    Entry::Dir => json!({ "dir": true }),
                };
                (name.clone(), v)
            })
            .collect();
        Value::Object(map)
    }
}

fn list_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    for entry in fs::read_dir(dir).expect("read folder") {
        let entry = entry.expect("folder entry");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let e = if meta.file_type().is_symlink() {
            Entry::Symlink(fs::read_link(&path).expect("readlink"))
        } else if meta.is_dir() {
            list_tree(root, &path, out);
            Entry::Dir
        } else {
            Entry::File {
                bytes: fs::read(&path).expect("read file"),
                mode: meta.permissions().mode() & 0o7777,
            }
        };
        out.insert(rel, e);
    }
}

/// Whether `name` is a lock sidecar (`.NAME.xenpci.lock`): left in place
/// on purpose (see `fileio::lock`), also by a failed run.
fn is_lock_sidecar(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with('.') && base.ends_with(".xenpci.lock")
}

/// Asserts that `after` holds every entry of `before` unchanged (bytes,
/// mode, link target) and nothing new but lock sidecars.
fn assert_untouched(before: &Listing, after: &Listing, what: &str) {
    for (name, e) in &before.0 {
        assert_eq!(after.0.get(name), Some(e), "{what}: {name} changed");
    }
    for name in after.0.keys() {
        assert!(
            before.0.contains_key(name) || is_lock_sidecar(name),
            "{what}: created {name}"
        );
    }
}

/// `result` without `keys`.
fn without(result: &Value, keys: &[&str]) -> Value {
    let mut v = result.clone();
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    v
}

/// Runs the scenario in check mode (`_ansible_check_mode` and
/// `_ansible_diff`), then applies it (`_ansible_diff`), then applies it
/// again, and returns `{check, apply, reapply, files_after}` redacted, for a
/// snapshot. `may_differ`: result keys that check mode cannot know (a
/// backup's name, say).
///
/// Asserts:
/// - check mode left every file byte-identical (and its mode) and created
///   nothing;
/// - when the apply succeeds: check and apply results agree on every key
///   but `may_differ`; the diff's `before` is what the file held and its
///   `after` what the file holds after the apply; a `backup_file` holds the
///   old contents; the second apply reports `changed: false` with no action
///   and leaves every file as the first apply did (bytes and modes);
///   pre-existing files keep their mode;
/// - when the apply fails: the second apply fails the same way, every file
///   is untouched, nothing is left behind but lock sidecars; check mode
///   failed the same way too, or (for steps that only apply can run, like a
///   `validate` command) planned a change.
pub fn check_apply_reapply(
    bin: &str,
    sc: &Scenario,
    may_differ: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let with_keys = |extra: Value| {
        let mut args = sc.args.clone();
        let obj = args.as_object_mut().expect("args.json holds an object");
        for (k, v) in extra.as_object().expect("object") {
            obj.insert(k.clone(), v.clone());
        }
        args
    };
    let check_args = with_keys(json!({"_ansible_check_mode": true, "_ansible_diff": true}));
    let apply_args = with_keys(json!({"_ansible_diff": true}));
    let name = &sc.name;

    let before = sc.listing();
    let run = |args: &Value| {
        let mut ran = run_module(bin, args, env);
        ran.json = sc.redact(&ran.json);
        ran
    };
    let check = run(&check_args);
    let after_check = sc.listing();
    assert_eq!(before, after_check, "{name}: check mode changed the folder");

    let apply = run(&apply_args);
    let after_apply = sc.listing();
    let reapply = run(&apply_args);
    let after_reapply = sc.listing();

    if apply.failed() {
        assert!(
            reapply.failed(),
            "{name}: apply failed, the second apply did not: {}",
            reapply.stdout
        );
        // On a simulated dom0 a batch that failed halfway keeps the devices
        // done before the failure, so the second run has less to do.
        let durable = env.iter().any(|(k, _)| *k == "XENPCI_HOST");
        if durable {
            assert_eq!(
                apply.json["msg"], reapply.json["msg"],
                "{name}: the two failed applies differ"
            );
        } else {
            assert_eq!(
                apply.json, reapply.json,
                "{name}: the two failed applies differ"
            );
        }
        if check.failed() {
            assert_eq!(
                check.json, apply.json,
                "{name}: check and apply fail differently"
            );
        } else {
            assert_eq!(
                check.json["changed"],
                Value::Bool(true),
                "{name}: check mode succeeded without a change, but apply failed: {}",
                apply.stdout
            );
        }
        // On a simulated dom0, what a failed run did before failing (its
        // records, a rollback, the kernel's log) stays done, as on a real
        // one: the host file may change; the snapshot shows how.
        let (before, after_apply, after_reapply_kept) =
            if env.iter().any(|(k, _)| *k == "XENPCI_HOST") {
                (
                    before.without(HOST_FILE),
                    after_apply.without(HOST_FILE),
                    after_reapply.without(HOST_FILE),
                )
            } else {
                (before, after_apply, after_reapply.clone())
            };
        assert_untouched(&before, &after_apply, &format!("{name}: failed apply"));
        assert_untouched(
            &before,
            &after_reapply_kept,
            &format!("{name}: failed second apply"),
        );
    } else {
        assert!(
            !check.failed(),
            "{name}: check mode failed, apply did not: {}",
            check.stdout
        );
        assert_eq!(
            without(&check.json, may_differ),
            without(&apply.json, may_differ),
            "{name}: check mode and apply disagree"
        );
        assert_diff_matches(sc, &apply.json, &before, &after_apply);
        assert_backup_holds_old(sc, &apply.json, &before, &sc.redact_names(&after_apply));
        for (path, e) in &before.0 {
            if let (Entry::File { mode, .. }, Some(Entry::File { mode: now, .. })) =
                (e, after_apply.0.get(path))
            {
                assert_eq!(mode, now, "{name}: apply changed the mode of {path}");
            }
        }
        assert_eq!(
            reapply.json["changed"],
            Value::Bool(false),
            "{name}: second apply changed: {}",
            reapply.stdout
        );
        assert!(
            !reapply.failed(),
            "{name}: second apply failed: {}",
            reapply.stdout
        );
        assert_eq!(
            reapply.json["actions"],
            json!([]),
            "{name}: second apply has actions"
        );
        assert_eq!(
            after_apply, after_reapply,
            "{name}: second apply changed the folder"
        );
    }

    json!({
        "check": check.json,
        "apply": apply.json,
        "reapply": reapply.json,
        "files_after": sc.redact(&after_reapply.to_json()),
    })
}

/// The relative name of `path` when it lies in the scenario's copy.
/// `path` may be redacted (`[DIR]/...`).
fn rel_in(sc: &Scenario, path: &str) -> Option<String> {
    if let Some(rel) = path.strip_prefix("[DIR]/") {
        return Some(rel.to_string());
    }
    Path::new(path)
        .strip_prefix(sc.dir())
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// For each diff whose header names a file of the copy: `before` is what it
/// held before the run, `after` what it holds after.
fn assert_diff_matches(sc: &Scenario, result: &Value, before: &Listing, after: &Listing) {
    let Some(diffs) = result["diff"].as_array() else {
        return;
    };
    let text = |l: &Listing, rel: &str| match l.0.get(rel) {
        Some(Entry::File { bytes, .. }) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    };
    for d in diffs {
        if let Some(rel) = d["before_header"].as_str().and_then(|h| rel_in(sc, h)) {
            let was = text(before, &rel).unwrap_or_default();
            assert_eq!(
                d["before"].as_str(),
                Some(was.as_str()),
                "{}: diff 'before' of {rel}",
                sc.name
            );
        }
        if let Some(rel) = d["after_header"].as_str().and_then(|h| rel_in(sc, h)) {
            let now = text(after, &rel);
            assert_eq!(
                d["after"].as_str(),
                now.as_deref(),
                "{}: diff 'after' of {rel}",
                sc.name
            );
        }
    }
}

/// A `backup_file` in the result is a file of the copy holding what the
/// edited file (`path` of the result) held before.
fn assert_backup_holds_old(sc: &Scenario, result: &Value, before: &Listing, after: &Listing) {
    let Some(backup) = result["backup_file"].as_str() else {
        return;
    };
    let rel = rel_in(sc, backup)
        .unwrap_or_else(|| panic!("{}: backup {backup} outside the folder", sc.name));
    let edited = result["path"]
        .as_str()
        .and_then(|p| rel_in(sc, p))
        .unwrap_or_else(|| panic!("{}: a backup but no `path` in the folder", sc.name));
    let old = match before.0.get(&edited) {
        Some(Entry::File { bytes, .. }) => bytes,
        other => panic!("{}: backup of {edited}, which was {other:?}", sc.name),
    };
    match after.0.get(&rel) {
        Some(Entry::File { bytes, .. }) => {
            assert_eq!(bytes, old, "{}: backup differs from the old file", sc.name)
        }
        other => panic!("{}: backup {rel} is {other:?}", sc.name),
    }
}

// ---------------------------------------------------------------------------
// Scenarios on a simulated dom0 (`XENPCI_HOST`): module-agnostic helpers.

/// The shipped snapshots of simulated dom0s (`typical`, `sriov`).
pub const SHIPPED_HOSTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks-examples/hosts");

/// The simulated host's file in a scenario's copy.
pub const HOST_FILE: &str = "host.json";

/// Scenario files that describe the simulated host rather than being
/// files of the scenario: replaced by [`HOST_FILE`] in the copy.
const HOST_META: [&str; 2] = ["host.txt", "patch.json"];

/// A JSON merge patch (RFC 7386) applied to `target`, with one extension
/// so that a patch of a snapshot stays small: an object patching an array
/// whose elements are objects with a `bdf` (or `domid`) patches the
/// element of that key (a BDF key may leave out the `0000:` domain); a
/// key with no element appends the patch as a new element, `null` removes
/// the element.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Array(items), Value::Object(p)) => {
            for (key, v) in p {
                let at = items.iter().position(|e| {
                    element_key(e).as_deref() == Some(key.as_str())
                        || element_key(e)
                            .is_some_and(|k| k.strip_prefix("0000:") == Some(key.as_str()))
                });
                match (at, v) {
                    (Some(i), Value::Null) => {
                        items.remove(i);
                    }
                    (Some(i), v) => merge_patch(&mut items[i], v),
                    (None, Value::Null) => {}
                    (None, v) => items.push(v.clone()),
                }
            }
        }
        (t, Value::Object(p)) => {
            if !t.is_object() {
                *t = Value::Object(Map::new());
            }
            let obj = t.as_object_mut().expect("made an object");
            for (k, v) in p {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// What names an element of an array in [`merge_patch`] and
/// [`json_changes`]: its `bdf`, else its `domid`.
fn element_key(e: &Value) -> Option<String> {
    let o = e.as_object()?;
    match (o.get("bdf"), o.get("domid")) {
        (Some(Value::String(b)), _) => Some(b.clone()),
        (_, Some(Value::Number(n))) => Some(n.to_string()),
        _ => None,
    }
}

/// The differences between two JSON values, readable in a snapshot: an
/// object `{PATH: {"before": X, "after": Y}}` with one entry per changed
/// leaf (`null`: absent). A path is `.key` for object members (`["key"]`
/// when the key is not a plain word, as xenstore paths are) and `[KEY]`
/// for array elements named by their `bdf` or `domid` (when every element
/// has one). Another array is one entry: `{"appended": [...]}` when it only
/// grew at its end, `{"removed": [...]}` when it only lost its tail, else
/// its whole value before and after.
pub fn json_changes(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    changes_at(before, after, String::new(), &mut out);
    Value::Object(out)
}

fn changes_at(before: &Value, after: &Value, path: String, out: &mut Map<String, Value>) {
    if before == after {
        return;
    }
    let member = |k: &str| {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            format!("{path}.{k}")
        } else {
            format!("{path}[{k:?}]")
        }
    };
    let empty = Value::Object(Map::new());
    // An object that appears or disappears shows member by member.
    let (before, after) = match (before, after) {
        (Value::Null, Value::Object(_)) => (&empty, after),
        (Value::Object(_), Value::Null) => (before, &empty),
        _ => (before, after),
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let nul = Value::Null;
                changes_at(
                    b.get(k).unwrap_or(&nul),
                    a.get(k).unwrap_or(&nul),
                    member(k),
                    out,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            let keyed = |v: &Vec<Value>| -> Option<BTreeMap<String, Value>> {
                let m: BTreeMap<String, Value> = v
                    .iter()
                    .map(|e| element_key(e).map(|k| (k, e.clone())))
                    .collect::<Option<_>>()?;
                (m.len() == v.len()).then_some(m)
            };
            match (keyed(b), keyed(a)) {
                (Some(kb), Some(ka)) if !kb.is_empty() || !ka.is_empty() => {
                    let keys: std::collections::BTreeSet<&String> =
                        kb.keys().chain(ka.keys()).collect();
                    for k in keys {
                        let nul = Value::Null;
                        changes_at(
                            kb.get(k).unwrap_or(&nul),
                            ka.get(k).unwrap_or(&nul),
                            format!("{path}[{k}]"),
                            out,
                        );
                    }
                }
                // A list that only grew or shrank at its end (a log, pciback's
                // slots) shows what was appended or removed; any other change
                // shows the whole list before and after.
                _ if a.len() > b.len() && a.starts_with(b) => {
                    out.insert(path, json!({ "appended": a[b.len()..] }));
                }
                _ if b.len() > a.len() && b.starts_with(a) => {
                    out.insert(path, json!({ "removed": b[a.len()..] }));
                }
                _ => {
                    out.insert(path, json!({"before": before, "after": after}));
                }
            }
        }
        _ => {
            let key = if path.is_empty() {
                ".".to_string()
            } else {
                path
            };
            out.insert(key, json!({"before": before, "after": after}));
        }
    }
}

/// The state of the simulated host in `path`, for [`json_changes`]: as the
/// simulator reads it (defaults made explicit, SR-IOV functions generated),
/// so that a change shows as the field that changed; a file the simulator
/// refuses as its JSON, or its text, or `null` when there is none.
pub fn sim_host_state(path: &Path) -> Value {
    if let Ok(host) = xenpci::host::sim::SimHost::open_timeout(
        path.to_path_buf(),
        std::time::Duration::from_secs(10),
    ) {
        return serde_json::to_value(host.state()).expect("a snapshot serialises");
    }
    match fs::read(path) {
        Err(_) => Value::Null,
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    }
}

impl Scenario {
    /// Puts the scenario's simulated host in the copy as [`HOST_FILE`] and
    /// returns its path: the folder's own `host.json`, or the shipped
    /// snapshot named in `host.txt` (`typical`, `sriov`) with `patch.json`
    /// applied ([`merge_patch`]). `host.txt` and `patch.json` are removed
    /// from the copy. The simulator's lock sidecar is created beforehand,
    /// so that a run taking the lock is not a change of the folder.
    pub fn sim_host(&self) -> PathBuf {
        let host = self.path(HOST_FILE);
        let named = self.source.join("host.txt");
        if named.exists() {
            let name = fs::read_to_string(&named).expect("read host.txt");
            let shipped = Path::new(SHIPPED_HOSTS).join(format!("{}.json", name.trim()));
            let mut state: Value = serde_json::from_slice(
                &fs::read(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display())),
            )
            .expect("a shipped snapshot is JSON");
            let patch = self.source.join("patch.json");
            if patch.exists() {
                let p: Value = serde_json::from_slice(&fs::read(&patch).expect("read patch.json"))
                    .unwrap_or_else(|e| panic!("{}: {e}", patch.display()));
                merge_patch(&mut state, &p);
            }
            let text = serde_json::to_string_pretty(&state).expect("serialise") + "\n";
            fs::write(&host, text).expect("write host.json");
        }
        for meta in HOST_META {
            let _ = fs::remove_file(self.path(meta));
        }
        let lock = self.path(&format!(".{HOST_FILE}.xenpci.lock"));
        fs::write(&lock, "").expect("create the lock sidecar");
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).expect("chmod lock");
        host
    }
}

/// [`check_apply_reapply`] on a scenario with a simulated host
/// ([`Scenario::sim_host`], passed as `XENPCI_HOST`): its assertions, and
/// for the snapshot `{check, apply, reapply, host_changes, files_after}`,
/// where `host_changes` is [`json_changes`] of the host's state before the
/// runs and after them, and `files_after` the scenario's other files (a
/// domain config, say).
/// A host scenario's snapshot value: the scenario at `path` run three ways
/// on its simulated dom0 ([`check_apply_reapply_on_host`]), with the
/// default `may_differ` keys plus the scenario's own `may-differ.txt`.
pub fn host_scenario(bin: &str, path: &Path, may_differ: &[&str]) -> (Scenario, Value) {
    let sc = Scenario::load(path);
    let keys = scenario_may_differ(&sc, may_differ);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let value = check_apply_reapply_on_host(bin, &sc, &keys);
    (sc, value)
}

pub fn check_apply_reapply_on_host(bin: &str, sc: &Scenario, may_differ: &[&str]) -> Value {
    let host = sc.sim_host();
    let before = sim_host_state(&host);
    let host_env = host.to_str().expect("UTF-8 path").to_string();
    let mut value = check_apply_reapply(bin, sc, may_differ, &[("XENPCI_HOST", &host_env)]);
    let after = sim_host_state(&host);
    let obj = value.as_object_mut().expect("an object");
    obj.insert(
        "host_changes".into(),
        sc.redact(&json_changes(&before, &after)),
    );
    let mut files = obj
        .remove("files_after")
        .and_then(|f| f.as_object().cloned())
        .unwrap_or_default();
    files.retain(|name, _| name != HOST_FILE && !is_lock_sidecar(name));
    if files.is_empty() {
        obj.remove("files_after");
    } else {
        obj.insert("files_after".into(), Value::Object(files));
    }
    value
}

/// One run of `bin` with `args` against a fresh copy of the shipped
/// snapshot `shipped` (`typical`, `sriov`) patched with `patch`: the
/// result, the host's changes ([`json_changes`]) and the temporary folder
/// (kept alive by the caller as long as it needs the host file).
pub fn run_on_shipped(
    bin: &str,
    shipped: &str,
    patch: &Value,
    args: &Value,
) -> (Ran, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = dir.path().join(HOST_FILE);
    let shipped = Path::new(SHIPPED_HOSTS).join(format!("{shipped}.json"));
    let mut state: Value =
        serde_json::from_slice(&fs::read(&shipped).expect("read snapshot")).expect("JSON");
    merge_patch(&mut state, patch);
    fs::write(
        &host,
        serde_json::to_string_pretty(&state).expect("serialise"),
    )
    .expect("write");
    let before = sim_host_state(&host);
    let ran = run_module(bin, args, &[("XENPCI_HOST", host.to_str().expect("UTF-8"))]);
    let after = sim_host_state(&host);
    (ran, json_changes(&before, &after), dir)
}

/// Runs `f` on the scenario `args_file` and returns its name when `f`
/// panicked, so that one glob reports every failing scenario, not just the
/// first.
pub fn each_scenario(args_file: &Path, f: impl FnOnce(&Path)) -> Option<String> {
    let name = args_file
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args_file)))
        .err()
        .map(|_| name)
}

/// `may_differ` plus the keys listed in the scenario's `may-differ.txt`
/// (one a line, `#` comments): result keys that check mode cannot know in
/// that scenario, each with its reason in the file.
pub fn scenario_may_differ(sc: &Scenario, may_differ: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = may_differ.iter().map(|s| s.to_string()).collect();
    if let Ok(text) = fs::read_to_string(sc.source.join("may-differ.txt")) {
        out.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    out
}

/// Snapshots `$value` under the scenario's name, with its `about.txt` as
/// the description. A macro, so that insta names the file after the
/// calling test module.
macro_rules! assert_scenario_snapshot {
    ($sc:expr, $value:expr) => {{
        let sc = &$sc;
        let mut settings = insta::Settings::clone_current();
        settings.remove_snapshot_suffix();
        if let Some(about) = &sc.about {
            settings.set_description(about.clone());
        }
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_json_snapshot!(sc.name.as_str(), $value));
    }};
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
