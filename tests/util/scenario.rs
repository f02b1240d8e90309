//! Scenario folders: one loaded into a temporary copy (`{dir}` substituted,
//! symlinks made), a run's output redacted for its snapshot (the copy's
//! path, backup stamps, temporary files' pids), and what a glob of
//! scenarios needs: `each_scenario`, `may-differ.txt`, the snapshot macro.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::listing::{list_tree, Listing};

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

/// The scenarios test of a module on simulated dom0s: one snapshot per
/// folder of `$glob` ([`host_scenario`](super::host_scenario)), every
/// folder run even when one fails, the failed ones named. A macro, so
/// that insta names the snapshots after the calling test module.
macro_rules! host_scenarios {
    ($bin:expr, $glob:literal, $may_differ:expr) => {
        #[test]
        fn scenarios() {
            let mut failed = Vec::new();
            insta::glob!($glob, |path| {
                failed.extend($crate::util::each_scenario(path, |path| {
                    let (sc, value) = $crate::util::host_scenario($bin, path, &$may_differ);
                    assert_scenario_snapshot!(sc, value);
                }));
            });
            assert!(failed.is_empty(), "scenarios failed: {failed:?}");
        }
    };
}
