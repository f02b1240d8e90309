//! The module protocol: arguments in, exactly one JSON result out.
//!
//! Every module binary is `fn main() -> ExitCode { protocol::main::<M>() }`
//! over a [`Module`]. This file owns everything at that edge, once:
//!
//! - **Arguments**, in any of four forms: a file holding a JSON object (what
//!   Ansible's binary-module protocol passes as `argv[1]`), a JSON object on
//!   standard input (no positional argument), `key=value` words for quick
//!   ad-hoc use (a value that parses as JSON is taken as JSON, anything else
//!   as a string), and the flags `--check`, `--diff`, `--schema`,
//!   `--result-schema`, `--help`, `--version`.
//! - **Ansible's keys**: `_ansible_check_mode` and `_ansible_diff` are
//!   honoured; every other `_ansible_*` key is accepted and ignored (the
//!   modules log nothing, so `_ansible_no_log` has nothing to hide; Ansible
//!   censors the result itself). Any other unknown key fails with Ansible's
//!   wording, and a value of the wrong type fails naming its key.
//! - **The result** ([`Report`]), printed as one JSON object on standard
//!   output in every case, panics included; exit code 0 when `failed` is
//!   false, 1 when true. Ansible ignores the exit code and reads `failed`.
//!
//! # The result object
//!
//! | key        | when               | what                                                   |
//! |------------|--------------------|--------------------------------------------------------|
//! | `changed`  | always             | whether the host was (or, in check mode, would be) changed |
//! | `failed`   | always             | whether the module failed                               |
//! | `msg`      | always             | one short factual sentence                              |
//! | `actions`  | always             | the steps planned (check mode) or taken, in words       |
//! | `diff`     | diff mode          | a list of `{before, after, before_header, after_header}` |
//! | `warnings` | when there are any | legal but suspicious input, things a person should know |
//! | ...        |                    | the module's own keys (its `Facts` type)                |
//!
//! A failure carries `failed: true`, `msg` naming the argument, path, BDF or
//! line at fault, the `actions` done before it, and whatever details the
//! error adds (a command's `cmd`, `rc`, `stdout`, `stderr`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Inputs larger than this are refused before parsing.
const MAX_ARGS_BYTES: u64 = 64 << 20;

/// One module: its arguments, its own result keys, and its run.
pub trait Module {
    /// The name Ansible knows the module by.
    const NAME: &'static str;
    /// The arguments. Their doc comments are the module's documentation:
    /// the type's own doc is the description (first line: the short one),
    /// each field's doc describes that option.
    type Args: DeserializeOwned + JsonSchema;
    /// The module's own keys of the result, beside the common ones.
    type Facts: Serialize + JsonSchema;
    /// Other names accepted for an argument: `(alias, argument)`.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];
    /// Reads the host, plans, applies unless in check mode, reports.
    fn run(args: Self::Args, mode: &Mode) -> Result<Outcome<Self::Facts>, Failure>;
}

/// How Ansible (or the person at the shell) asked the module to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// Compute everything, change nothing.
    pub check: bool,
    /// Return a diff of what changes.
    pub diff: bool,
}

/// What a successful run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// Whether the host changed (or would, in check mode).
    pub changed: bool,
    /// One short factual sentence.
    pub msg: String,
    /// Steps planned or taken, in words.
    pub actions: Vec<String>,
    /// Before/after pairs, returned in diff mode only.
    pub diff: Vec<Diff>,
    /// Things a person should know.
    pub warnings: Vec<String>,
    /// The module's own keys.
    pub facts: T,
}

/// One before/after pair, as Ansible's diff callback expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diff {
    /// What the diff's "before" side is (a path, usually).
    pub before_header: String,
    /// What the diff's "after" side is.
    pub after_header: String,
    /// The text before.
    pub before: String,
    /// The text after.
    pub after: String,
}

/// The result object every module prints. See the module documentation for
/// the meaning of each key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Report<T> {
    /// Whether the host was changed (in check mode: would be).
    pub changed: bool,
    /// Whether the module failed.
    pub failed: bool,
    /// One short factual sentence: what was done, or what is wrong.
    pub msg: String,
    /// The steps planned (check mode) or taken, in words a person reads.
    pub actions: Vec<String>,
    /// Before/after pairs, in diff mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<Diff>>,
    /// Things a person should know: legal but suspicious input, for instance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(default)]
    pub warnings: Vec<String>,
    /// The module's own keys.
    #[serde(flatten)]
    pub facts: T,
}

/// A failed run: the message and the details the result should carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What is wrong, naming the argument, path, device or line at fault.
    pub msg: String,
    /// Whether something was changed before the failure.
    pub changed: bool,
    /// The actions taken before the failure.
    pub actions: Vec<String>,
    /// Extra keys of the result (`rc`, `stderr`, `cmd`, ...).
    pub details: Map<String, Value>,
}

impl Failure {
    /// A failure with a message and nothing else.
    pub fn msg(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            changed: false,
            actions: Vec::new(),
            details: Map::new(),
        }
    }

    /// Adds a key to the result.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.details.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

/// The entry point of every module binary.
pub fn main<M: Module>() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // A big stack: xl's grammar nests lists up to bison's depth limit (about
    // 5,000 levels), and the reader recurses once per level.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || guard(|| run::<M>(&argv)));
    let result = match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err("internal error: worker thread died".into())),
        Err(e) => Err(format!("internal error: cannot start a thread: {e}")),
    };
    let (text, failed) = match result {
        Ok(Printed::Text(t)) => return print_text(&t),
        Ok(Printed::Schema(v)) => return print_text(&format!("{v}\n")),
        Ok(Printed::Json(v)) => {
            let failed = v.get("failed").and_then(Value::as_bool).unwrap_or(true);
            (v, failed)
        }
        Err(msg) => (failure_json(&Failure::msg(msg)), true),
    };
    let line = serde_json::to_string(&text).unwrap_or_else(|_| {
        r#"{"changed":false,"failed":true,"msg":"internal error: result not serializable"}"#.into()
    });
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nobody to tell: the exit code still says it.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

enum Printed {
    /// `--help`, `--version`: plain text for a person.
    Text(String),
    /// The result object.
    Json(Value),
    /// A JSON Schema.
    Schema(Value),
}

fn print_text(t: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(t.as_bytes()).and_then(|()| out.flush());
    ExitCode::SUCCESS
}

/// Runs `f`, turning a panic into an error message instead of a trace.
fn guard<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    // The default hook would print a trace on stderr: the message goes into
    // the result instead.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(f);
    std::panic::set_hook(previous);
    result.map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("internal error (a bug in xenpci, please report it): {what}")
    })
}

fn run<M: Module>(argv: &[String]) -> Printed {
    let cli = match crate::cli::parse::<M>(argv) {
        Ok(cli) => cli,
        Err(crate::cli::Exit::Text(t)) => return Printed::Text(t),
        Err(crate::cli::Exit::Failed(msg)) => {
            return Printed::Json(failure_json(&Failure::msg(msg)))
        }
    };
    if cli.schema {
        return Printed::Schema(args_schema::<M>());
    }
    if cli.result_schema {
        return Printed::Schema(result_schema::<M>());
    }
    let outcome = read_input(&cli.input)
        .and_then(|obj| split_ansible_keys(obj, cli.mode))
        .and_then(|(obj, mode)| parse_args::<M>(obj).map(|a| (a, mode)))
        .and_then(|(args, mode)| M::run(args, &mode).map(|o| (o, mode)));
    Printed::Json(match outcome {
        Ok((o, mode)) => success_json(o, mode),
        Err(f) => failure_json(&f),
    })
}

/// Where the arguments come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file holding a JSON object (Ansible's way).
    File(String),
    /// A JSON object on standard input.
    Stdin,
    /// `key=value` words.
    Pairs(Vec<(String, String)>),
}

fn read_input(input: &Input) -> Result<Map<String, Value>, Failure> {
    let text = match input {
        Input::Pairs(pairs) => return Ok(pairs_to_object(pairs)),
        Input::File(path) => crate::fileio::read_file(Path::new(path), MAX_ARGS_BYTES)
            .map_err(|e| Failure::msg(format!("cannot read the arguments file: {e}")))?
            .ok_or_else(|| Failure::msg(format!("arguments file {path} does not exist")))?,
        Input::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(MAX_ARGS_BYTES + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    Failure::msg(format!(
                        "cannot read the arguments from standard input: {e}"
                    ))
                })?;
            if buf.len() as u64 > MAX_ARGS_BYTES {
                return Err(Failure::msg("arguments larger than 64 MiB"));
            }
            // Nothing on stdin: no arguments (`pci_info < /dev/null`).
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Map::new());
            }
            buf
        }
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(Failure::msg(format!(
            "arguments must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(e) => Err(Failure::msg(format!("arguments are not valid JSON: {e}"))),
    }
}

fn pairs_to_object(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = match serde_json::from_str::<Value>(v) {
                // Only structured JSON and literals; a bare word stays a string.
                Ok(
                    j @ (Value::Array(_)
                    | Value::Object(_)
                    | Value::Bool(_)
                    | Value::Number(_)
                    | Value::Null),
                ) => j,
                _ => Value::String(v.clone()),
            };
            (k.clone(), value)
        })
        .collect()
}

fn split_ansible_keys(
    mut obj: Map<String, Value>,
    cli: Mode,
) -> Result<(Map<String, Value>, Mode), Failure> {
    let mut mode = cli;
    let internal: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("_ansible_"))
        .cloned()
        .collect();
    for key in internal {
        let value = obj.remove(&key).unwrap_or(Value::Null);
        let flag = || {
            crate::args::truthy(&value)
                .ok_or_else(|| Failure::msg(format!("{key} must be a boolean")))
        };
        match key.as_str() {
            "_ansible_check_mode" => mode.check |= flag()?,
            "_ansible_diff" => mode.diff |= flag()?,
            _ => {}
        }
    }
    Ok((obj, mode))
}

fn parse_args<M: Module>(mut obj: Map<String, Value>) -> Result<M::Args, Failure> {
    let schema = args_schema::<M>();
    let supported = supported_keys(&schema);
    for &(alias, name) in M::ALIASES {
        if let Some(v) = obj.remove(alias) {
            if obj.contains_key(name) {
                return Err(Failure::msg(format!(
                    "parameters are mutually exclusive: {name}|{alias}"
                )));
            }
            obj.insert(name.into(), v);
        }
    }
    let mut unknown: Vec<&String> = obj.keys().filter(|k| !supported.contains(k)).collect();
    if !unknown.is_empty() {
        unknown.sort();
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let listed: Vec<String> = supported
            .iter()
            .map(|k| {
                let aliases: Vec<&str> = M::ALIASES
                    .iter()
                    .filter(|(_, n)| n == k)
                    .map(|(a, _)| *a)
                    .collect();
                if aliases.is_empty() {
                    k.clone()
                } else {
                    format!("{k} ({})", aliases.join(", "))
                }
            })
            .collect();
        return Err(Failure::msg(format!(
            "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
            M::NAME,
            names.join(", "),
            listed.join(", ")
        )));
    }
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&str> = required
        .iter()
        .filter(|k| !obj.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::msg(format!(
            "missing required arguments: {}",
            missing.join(", ")
        )));
    }
    serde_path_to_error::deserialize(Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            Failure::msg(inner)
        } else {
            Failure::msg(format!("argument '{path}': {inner}"))
        }
    })
}

/// The argument names, sorted, from an arguments schema (the one source
/// of truth).
pub fn supported_keys(schema: &Value) -> Vec<String> {
    let mut keys: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The short description (the first paragraph of the arguments type's doc)
/// and the rest of that doc, from an arguments schema.
pub fn module_doc(schema: &Value) -> (String, String) {
    let doc = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    match doc.split_once("\n\n") {
        Some((short, rest)) => (short.trim().to_string(), rest.trim().to_string()),
        None => (doc.trim().to_string(), String::new()),
    }
}

/// The JSON Schema of `M`'s arguments.
///
/// Other accepted names of arguments are listed under the extension keyword
/// `x-aliases` (alias to argument), for the documentation generator.
pub fn args_schema<M: Module>() -> Value {
    let settings = schemars::gen::SchemaSettings::draft07();
    let schema = settings.into_generator().into_root_schema_for::<M::Args>();
    let mut v = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let (Value::Object(obj), false) = (&mut v, M::ALIASES.is_empty()) {
        let aliases: Map<String, Value> = M::ALIASES
            .iter()
            .map(|(a, k)| (a.to_string(), Value::from(*k)))
            .collect();
        obj.insert("x-aliases".into(), Value::Object(aliases));
    }
    v
}

/// The JSON Schema of `M`'s result object.
pub fn result_schema<M: Module>() -> Value {
    let settings = schemars::gen::SchemaSettings::draft07();
    let schema = settings
        .into_generator()
        .into_root_schema_for::<Report<M::Facts>>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

fn success_json<T: Serialize>(o: Outcome<T>, mode: Mode) -> Value {
    let report = Report {
        changed: o.changed,
        failed: false,
        msg: o.msg,
        actions: o.actions,
        diff: mode.diff.then_some(o.diff),
        warnings: o.warnings,
        facts: o.facts,
    };
    serde_json::to_value(report)
        .unwrap_or_else(|e| failure_json(&Failure::msg(format!("internal error: {e}"))))
}

fn failure_json(f: &Failure) -> Value {
    let mut obj = Map::new();
    obj.insert("changed".into(), Value::Bool(f.changed));
    obj.insert("failed".into(), Value::Bool(true));
    obj.insert("msg".into(), Value::String(clip(&f.msg)));
    obj.insert("actions".into(), Value::from(f.actions.clone()));
    for (k, v) in &f.details {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(obj)
}

/// A message echoes the input at fault; a 10 MB argument must not make a
/// 10 MB message.
fn clip(msg: &str) -> String {
    const MAX: usize = 4096;
    if msg.len() <= MAX {
        return msg.to_string();
    }
    let mut end = MAX;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &msg[..end], msg.len())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A module with two arguments, for the protocol's own tests.
    struct Demo;

    /// A demo.
    #[derive(Debug, serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct DemoArgs {
        /// A path.
        path: String,
        /// A flag.
        #[serde(default)]
        flag: bool,
    }

    impl Module for Demo {
        const NAME: &'static str = "demo";
        const ALIASES: &'static [(&'static str, &'static str)] = &[("dest", "path")];
        type Args = DemoArgs;
        type Facts = ();
        fn run(_: DemoArgs, _: &Mode) -> Result<Outcome<()>, Failure> {
            Err(Failure::msg("unused"))
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_panic_becomes_a_message() {
        let r: Result<(), String> = guard(|| panic!("boom"));
        let msg = r.unwrap_err();
        assert!(
            msg.starts_with("internal error") && msg.contains("boom"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_use_ansible_wording() {
        let e = parse_args::<Demo>(obj(json!({"path": "x", "bogus": 1, "alpha": 2}))).unwrap_err();
        assert_eq!(
            e.msg,
            "Unsupported parameters for (demo) module: alpha, bogus. Supported parameters include: flag, path (dest)."
        );
    }

    #[test]
    fn missing_arguments_use_ansible_wording() {
        let e = parse_args::<Demo>(obj(json!({"flag": true}))).unwrap_err();
        assert_eq!(e.msg, "missing required arguments: path");
    }

    #[test]
    fn aliases_and_conflicts() {
        assert_eq!(
            parse_args::<Demo>(obj(json!({"dest": "x"}))).unwrap().path,
            "x"
        );
        let e = parse_args::<Demo>(obj(json!({"dest": "x", "path": "y"}))).unwrap_err();
        assert!(e.msg.contains("mutually exclusive"), "{}", e.msg);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse_args::<Demo>(obj(json!({"path": "x", "flag": "maybe"}))).unwrap_err();
        assert!(e.msg.starts_with("argument 'flag':"), "{}", e.msg);
    }

    #[test]
    fn ansible_keys_set_the_mode() {
        let (rest, mode) = split_ansible_keys(
            obj(json!({"path": "x", "_ansible_check_mode": true, "_ansible_diff": "yes", "_ansible_no_log": false})),
            Mode::default(),
        )
        .unwrap();
        assert_eq!(
            mode,
            Mode {
                check: true,
                diff: true
            }
        );
        assert_eq!(rest, obj(json!({"path": "x"})));
    }

    #[test]
    fn key_value_words_take_json_where_they_can() {
        let pairs = [
            ("a", "1"),
            ("b", "[\"x\"]"),
            ("c", "07:00.0"),
            ("d", "true"),
            ("e", "{not json"),
        ];
        let o = pairs_to_object(&pairs.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(
            Value::Object(o),
            json!({"a": 1, "b": ["x"], "c": "07:00.0", "d": true, "e": "{not json"})
        );
    }

    #[test]
    fn long_messages_are_clipped() {
        let m = clip(&"x".repeat(10_000));
        assert!(m.len() < 4200 && m.ends_with("(10000 bytes in all)"));
    }
}
