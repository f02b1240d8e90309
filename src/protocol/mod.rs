//! The module protocol: arguments in, exactly one JSON result out.
//!
//! The modules are one binary ([`multicall`]: its name, or its first
//! argument, picks the module) and each module is a [`Module`] run by
//! [`main`]. This folder owns everything at that edge, once:
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
//! error adds (a command's `cmd`, `rc`, `stdout`, `stderr`). A failure after
//! the host changed says `changed: true`, lists what was done
//! ([`Failure::after`]) and carries those of the module's own keys it knows
//! at that point (the devices done so far, say).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

mod cli;
mod failures;
mod input;
mod module;
mod report;
mod schema;
#[cfg(test)]
mod tests;

pub use input::Input;
pub use module::{Mode, Module};
pub use report::{AfterChange, Diff, Failure, Outcome, Report};
pub use schema::{args_schema, module_doc, result_schema, schema_value, supported_keys};

use input::{parse_args, read_input, split_ansible_keys};
use report::{failure_json, success_json};

/// One module of the multicall binary.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The name Ansible knows the module by ([`Module::NAME`]).
    pub name: &'static str,
    /// Its arguments' schema ([`Module::ARGS_SCHEMA`]): the top-level help
    /// shows its first line.
    pub args_schema: &'static str,
    /// [`main`] of the module, given the command line.
    pub main: fn(Vec<OsString>) -> ExitCode,
}

impl Entry {
    /// The entry of module `M`.
    pub const fn of<M: Module>() -> Entry {
        Entry {
            name: M::NAME,
            args_schema: M::ARGS_SCHEMA,
            main: main::<M>,
        }
    }
}

/// The entry point of the multicall binary. The module is the one named by
/// the binary's file name (Ansible copies a module to `AnsiballZ_NAME`, the
/// collection ships the binary under each module's name), else by the first
/// argument (`xenpci pci_info ARGS_FILE`). Anything else gets the binary's
/// own help, version or usage error.
pub fn multicall(modules: &[Entry]) -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let called = argv.first().map(|a| module_name(a)).unwrap_or_default();
    if let Some(m) = modules.iter().find(|m| m.name == called) {
        return (m.main)(argv);
    }
    let first = argv.get(1).and_then(|a| a.to_str());
    if let Some(m) = modules.iter().find(|m| Some(m.name) == first) {
        argv.remove(0);
        return (m.main)(argv);
    }
    match cli::top_level(modules, &argv) {
        cli::Exit::Text(t) => print_text(&t),
        cli::Exit::Failed(msg) => print_result(&failure_json(&Failure::msg(msg))),
    }
}

/// The module a binary's file name names: `pci_info`, `AnsiballZ_pci_info`.
fn module_name(argv0: &OsStr) -> String {
    let path = std::path::Path::new(argv0);
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let file = file.strip_prefix("AnsiballZ_").unwrap_or(&file);
    file.split('.').next().unwrap_or_default().to_string()
}

/// The entry point of one module, given its command line (program name
/// first).
pub fn main<M: Module>(args: Vec<OsString>) -> ExitCode {
    // A panic is a bug; the result says so instead of a trace on stderr. The
    // hook prints it and exits at once, so it works alike whether panics
    // unwind (tests) or abort (release builds: `panic = "abort"`).
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        print_result(&failure_json(&Failure::msg(internal_error(what))));
        std::process::exit(1);
    }));
    let argv: Result<Vec<String>, _> = args.into_iter().map(|a| a.into_string()).collect();
    let Ok(argv) = argv else {
        return print_result(&failure_json(&Failure::msg(
            "the command-line arguments must be UTF-8",
        )));
    };
    // A big stack: xl's grammar nests lists up to bison's depth limit (about
    // 5,000 levels), and the reader recurses once per level.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || run::<M>(&argv));
    let result = match worker {
        // The panic hook has exited before a join could fail.
        Ok(handle) => handle
            .join()
            .map_err(|_| "internal error: worker thread died".to_string()),
        Err(e) => Err(format!("internal error: cannot start a thread: {e}")),
    };
    match result {
        Ok(Printed::Text(t)) => print_text(&t),
        Ok(Printed::Schema(v)) => print_text(&format!("{v}\n")),
        Ok(Printed::Json(v)) => print_result(&v),
        Err(msg) => print_result(&failure_json(&Failure::msg(msg))),
    }
}

/// Prints a result object on one line; the exit code follows `failed`.
fn print_result(v: &Value) -> ExitCode {
    let failed = v.get("failed").and_then(Value::as_bool).unwrap_or(true);
    let line = serde_json::to_string(v).unwrap_or_else(|_| {
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

/// The message of a panic: a bug.
fn internal_error(what: &str) -> String {
    format!("internal error (a bug in xenpci, please report it): {what}")
}

fn run<M: Module>(argv: &[String]) -> Printed {
    let cli = match cli::parse::<M>(argv) {
        Ok(cli) => cli,
        Err(cli::Exit::Text(t)) => return Printed::Text(t),
        Err(cli::Exit::Failed(msg)) => return Printed::Json(failure_json(&Failure::msg(msg))),
    };
    if cli.schema {
        return Printed::Schema(schema_value(M::ARGS_SCHEMA));
    }
    if cli.result_schema {
        return Printed::Schema(schema_value(M::RESULT_SCHEMA));
    }
    let outcome = read_input(&cli.input)
        .and_then(|obj| split_ansible_keys(obj, cli.mode))
        .and_then(|(obj, mode)| parse_args::<M>(obj).map(|a| (a, mode)))
        .and_then(|(args, mode)| M::run(args, &mode).map(|o| (o, mode)));
    Printed::Json(match outcome {
        Ok((o, mode)) => success_json(o, mode.diff),
        Err(f) => failure_json(&f),
    })
}
