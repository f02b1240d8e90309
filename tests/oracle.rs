//! xenpci's readers against Xen's own: the xl config reader
//! ([`xenpci::xlcfg::XlConfig`]) and the PCI_SPEC_STRING reader
//! ([`xenpci::spec::PciSpec::parse_xl`]) must give the same answers as
//! Xen 4.17's libxlutil on every input of the corpora in `tests/oracle/`.
//!
//! The answers of libxlutil come from `tests/oracle/xlu_oracle.c`, compiled
//! here with `cc` and linked to `-lxlutil -lxenlight` (Debian 12:
//! `apt-get install libxen-dev`). Without them these tests fail; they never
//! skip. What the corpora taught us about xl is in `tests/oracle/FACTS.md`.
//!
//! - `configs/*.cfg` (written by `gen_configs.py`): accept/reject must agree;
//!   on a rejection, the line of xl's first `FILE:LINE:` report must equal
//!   [`CfgError::line`]; on acceptance, every key (each identifier-like word
//!   in the file, plus every key we found) must have the same value. A file
//!   on which libxlutil crashes (a NUL inside a quoted string) must be
//!   rejected, at any line.
//! - `specs.txt` (one spec per line; lines starting with `#` are comments):
//!   both reject (with the same return code when we name one), or both
//!   accept with the same libxl view of the device.
//!
//! All disagreements are collected and reported together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as Json;
use xenpci::spec::PciSpec;
use xenpci::xlcfg::{CfgError, Value, XlConfig};

/// Both corpora must hold at least this many inputs.
const MIN_CORPUS: usize = 150;

fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

/// Compiles `xlu_oracle.c` once per test process and returns the program.
///
/// The binary goes to cargo's per-target scratch directory under a name
/// unique to this process, then is renamed into place, so concurrent test
/// runs never see a half-written program.
fn oracle() -> &'static Path {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = EXE.get_or_init(|| {
        let src = oracle_dir().join("xlu_oracle.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xlu_oracle");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let tmp = dir.join(format!("xlu_oracle.{}.tmp", std::process::id()));
        let exe = dir.join("xlu_oracle");
        let out = Command::new("cc")
            .args(["-std=gnu11", "-O1", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .args(["-lxlutil", "-lxenlight"])
            .output()
            .map_err(|e| format!("could not run `cc`: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "`cc ... {} -lxlutil -lxenlight` failed ({}):\n{}",
                src.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::rename(&tmp, &exe).map_err(|e| format!("installing {}: {e}", exe.display()))?;
        Ok(exe)
    });
    match built {
        Ok(exe) => exe,
        Err(why) => panic!(
            "cannot build the libxlutil oracle (tests/oracle/xlu_oracle.c): {why}\n\
             This test needs a C compiler and Xen's libxlutil headers and libraries: \
             on Debian 12, `apt-get install -y libxen-dev`."
        ),
    }
}

// ------------------------------------------------------------ configs

/// What libxlutil made of one config file.
enum XlAnswer {
    /// Parsed; the value of every key asked about (`None`: absent).
    Accepted(Vec<(String, Option<Value>)>),
    /// Refused, with the line of the first `FILE:LINE:` report, if any.
    Rejected { line: Option<usize>, report: String },
    /// libxlutil died (e.g. its assertion on a NUL inside a string).
    Crashed { signal: i64 },
}

/// Every run of bytes matching `[A-Za-z_][._0-9A-Za-z]*`.
fn words(src: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < src.len()
                && (src[i].is_ascii_alphanumeric() || src[i] == b'_' || src[i] == b'.')
            {
                i += 1;
            }
            out.push(String::from_utf8(src[start..i].to_vec()).expect("ASCII"));
        } else {
            i += 1;
        }
    }
    out
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    assert!(
        hex.len().is_multiple_of(2),
        "odd hex from the oracle: {hex}"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from the oracle"))
        .collect()
}

/// The oracle's flat `tree` as a [`Value`]: a list is `[` items separated by
/// `,` `]`, a string is `s` followed by its bytes in hex. Read without
/// recursion: xl accepts lists nested thousands deep.
fn tree_value(tree: &str) -> Value {
    let b = tree.as_bytes();
    let mut open: Vec<Vec<Value>> = Vec::new();
    let mut done: Option<Value> = None;
    let mut i = 0;
    while i < b.len() {
        let item = match b[i] {
            b'[' => {
                open.push(Vec::new());
                i += 1;
                continue;
            }
            b',' => {
                i += 1;
                continue;
            }
            b']' => {
                i += 1;
                Value::List(open.pop().expect("balanced tree from the oracle"))
            }
            b's' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
                Value::String(hex_bytes(&tree[start..i]))
            }
            _ => panic!("unexpected byte {i} in the oracle's tree: {tree}"),
        };
        match open.last_mut() {
            Some(list) => list.push(item),
            None => {
                assert!(done.is_none(), "two values in the oracle's tree: {tree}");
                done = Some(item);
            }
        }
    }
    assert!(open.is_empty(), "unbalanced tree from the oracle: {tree}");
    done.expect("empty tree from the oracle")
}

fn oracle_value(v: &Json) -> Option<Value> {
    match v["kind"].as_str() {
        Some("absent") => None,
        Some("string") => Some(Value::String(hex_bytes(v["hex"].as_str().expect("hex")))),
        Some("list") => {
            let value = tree_value(v["tree"].as_str().expect("tree"));
            // `items` is what xlu_cfg_get_listitem gives: null for a nested list.
            if let (Value::List(tree), Some(items)) = (&value, v["items"].as_array()) {
                assert_eq!(tree.len(), items.len(), "oracle items/tree mismatch: {v}");
                for (t, i) in tree.iter().zip(items) {
                    assert_eq!(t.is_list(), i.is_null(), "oracle items/tree mismatch: {v}");
                }
            }
            Some(value)
        }
        _ => panic!("unexpected value from the oracle: {v}"),
    }
}

fn ask_xl_cfg(path: &Path, keys: &[String]) -> XlAnswer {
    let out = Command::new(oracle())
        .arg("cfg")
        .arg(path)
        .args(keys)
        .output()
        .unwrap_or_else(|e| panic!("running the oracle on {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().count() == 1,
        "oracle failed on {} ({}):\n{stdout}\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Json = serde_json::from_str(stdout.trim_end()).unwrap_or_else(|e| {
        panic!(
            "oracle output on {} is not JSON ({e}): {stdout}",
            path.display()
        )
    });
    if let Some(signal) = j.get("signal").and_then(Json::as_i64) {
        return XlAnswer::Crashed { signal };
    }
    let report = j["report"].as_str().unwrap_or_default().to_string();
    if j["rc"].as_i64() != Some(0) {
        let prefix = format!("{}:", path.display());
        let line = report.lines().find_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        // Shown without the file name, which every disagreement already gives.
        let report = report.replace(&prefix, "line ");
        return XlAnswer::Rejected { line, report };
    }
    let values = keys
        .iter()
        .map(|k| (k.clone(), oracle_value(&j["values"][k.as_str()])))
        .collect();
    XlAnswer::Accepted(values)
}

fn show_bytes(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if s.len() > 120 {
        format!("\"{}...\" ({} bytes)", &s[..120], b.len())
    } else {
        format!("\"{s}\"")
    }
}

fn show_value(v: &Option<Value>) -> String {
    fn go(v: &Value, out: &mut String) {
        match v {
            Value::String(b) => out.push_str(&show_bytes(b)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if out.len() > 300 {
                        out.push_str("...");
                        break;
                    }
                    go(item, out);
                }
                out.push(']');
            }
        }
    }
    match v {
        None => "absent".to_string(),
        Some(v) => {
            let mut s = String::new();
            go(v, &mut s);
            s
        }
    }
}

fn show_err(e: &CfgError) -> String {
    format!("rejects at line {}: {}", e.line, e.message)
}

/// The corpus files, sorted by name.
fn config_files() -> Vec<PathBuf> {
    let dir = oracle_dir().join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    files
}

/// Compares one file; appends disagreements to `out`.
fn compare_config(path: &Path, out: &mut Vec<String>) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let src = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let ours = XlConfig::parse(&src);

    let mut keys = words(&src);
    if let Ok(cfg) = &ours {
        for k in cfg.keys() {
            if k.is_empty() || k.contains('\0') {
                out.push(format!("{name}: we found an impossible key {k:?}"));
            } else {
                keys.push(k);
            }
        }
    }
    keys.sort();
    keys.dedup();

    match (ask_xl_cfg(path, &keys), ours) {
        (XlAnswer::Crashed { .. }, Err(_)) => {}
        (XlAnswer::Crashed { signal }, Ok(_)) => out.push(format!(
            "{name}: xl says: libxlutil dies (signal {signal}), so xl refuses the file; we say: accepted"
        )),
        (XlAnswer::Rejected { line, report }, Err(e)) => {
            if line != Some(e.line) {
                out.push(format!(
                    "{name}: xl says: rejected at line {}: {}; we say: {}",
                    line.map_or("?".to_string(), |l| l.to_string()),
                    report.lines().next().unwrap_or("").trim(),
                    show_err(&e)
                ));
            }
        }
        (XlAnswer::Rejected { report, .. }, Ok(_)) => out.push(format!(
            "{name}: xl says: rejected: {}; we say: accepted",
            report.lines().next().unwrap_or("").trim()
        )),
        (XlAnswer::Accepted(_), Err(e)) => {
            out.push(format!("{name}: xl says: accepted; we say: {}", show_err(&e)))
        }
        (XlAnswer::Accepted(values), Ok(cfg)) => {
            for (key, xl) in values {
                let we = cfg.value(&key);
                if we != xl {
                    out.push(format!(
                        "{name}: key `{key}`: xl says {}; we say {}",
                        show_value(&xl),
                        show_value(&we)
                    ));
                }
            }
        }
    }
}

#[test]
fn xl_config_reader_agrees_with_libxlutil() {
    let files = config_files();
    assert!(
        files.len() >= MIN_CORPUS,
        "tests/oracle/configs has {} files; the corpus needs at least {MIN_CORPUS}",
        files.len()
    );
    // The corpus nests lists up to 20000 deep (xl accepts 4996 levels); the
    // comparison runs on a thread with a large stack so that a reader which
    // recurses per level is judged on its answers here. Whether it fits the
    // stack a module gets is a separate question.
    let disagreements = std::thread::Builder::new()
        .name("oracle-configs".into())
        .stack_size(256 << 20)
        .spawn(move || {
            let mut disagreements = Vec::new();
            for f in &config_files() {
                compare_config(f, &mut disagreements);
            }
            disagreements
        })
        .expect("spawning the comparison thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if !disagreements.is_empty() {
        let mut msg = format!(
            "{} disagreement(s) with libxlutil over {} config files:\n",
            disagreements.len(),
            files.len()
        );
        for d in &disagreements {
            let _ = writeln!(msg, "  {d}");
        }
        panic!("{msg}");
    }
}

// -------------------------------------------------------------- specs

/// The spec lines of `specs.txt`: every line but `#` comments, byte for byte.
fn spec_lines() -> Vec<String> {
    let path = oracle_dir().join("specs.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let body = text.strip_suffix('\n').unwrap_or(&text);
    body.split('\n')
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn ask_xl_specs(specs: &[String]) -> Vec<Json> {
    let out = Command::new(oracle())
        .arg("spec")
        .args(specs)
        .output()
        .unwrap_or_else(|e| panic!("running the oracle on the specs: {e}"));
    let stdout = String::from_utf8(out.stdout).expect("oracle output is UTF-8");
    assert!(
        out.status.success(),
        "oracle failed on the specs ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Json> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("oracle line is not JSON ({e}): {l}"))
        })
        .collect();
    assert_eq!(
        answers.len(),
        specs.len(),
        "one oracle line per spec:\n{stdout}"
    );
    answers
}

#[test]
fn pci_spec_reader_agrees_with_libxlutil() {
    let specs = spec_lines();
    assert!(
        specs.len() >= MIN_CORPUS,
        "tests/oracle/specs.txt has {} specs; the corpus needs at least {MIN_CORPUS}",
        specs.len()
    );
    for s in &specs {
        assert!(
            !s.contains('\0'),
            "specs.txt: a spec cannot hold NUL: {s:?}"
        );
    }
    let answers = ask_xl_specs(&specs);
    let mut disagreements = Vec::new();
    for (s, xl) in specs.iter().zip(&answers) {
        let xl_rc = xl["rc"].as_i64();
        let mut xl_view = xl.clone();
        if let Json::Object(map) = &mut xl_view {
            map.remove("rc");
            map.remove("report");
        }
        match PciSpec::parse_xl(s) {
            Ok(spec) => {
                let ours =
                    serde_json::to_value(spec.libxl_view()).expect("LibxlPciView serializes");
                if xl_rc != Some(0) {
                    disagreements.push(format!(
                        "{s:?}: xl says: rejected {xl}; we say: accepted {ours}"
                    ));
                } else if ours != xl_view {
                    disagreements.push(format!("{s:?}: xl says {xl_view}; we say {ours}"));
                }
            }
            Err(e) if e.is_xl_undefined() => disagreements.push(format!(
                "{s:?}: xl says {xl}; we say xl's behaviour is undefined ({e}) \
                 (specs.txt is meant to hold only defined inputs)"
            )),
            Err(e) => {
                if xl_rc == Some(0) {
                    disagreements.push(format!(
                        "{s:?}: xl says: accepted {xl_view}; we say: rejected ({e})"
                    ));
                } else if let (Some(ours), Some(theirs)) = (e.xl_rc(), xl_rc) {
                    if i64::from(ours) != theirs {
                        disagreements.push(format!(
                            "{s:?}: xl says: rejected with rc {theirs}; we say: rejected with rc {ours} ({e})"
                        ));
                    }
                }
            }
        }
    }
    if !disagreements.is_empty() {
        let mut msg = format!(
            "{} disagreement(s) with libxlutil over {} PCI specs:\n",
            disagreements.len(),
            specs.len()
        );
        for d in &disagreements {
            let _ = writeln!(msg, "  {d}");
        }
        panic!("{msg}");
    }
}
