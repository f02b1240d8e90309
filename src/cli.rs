//! The command line of a module binary: flags, `--help` and `--version`.
//!
//! Built with clap's builder from the module's argument schema, so `--help`
//! describes the same options, in the same words, as the JSON Schema and the
//! Ansible documentation: the doc comments of the argument types.

use std::path::Path;

use clap::{Arg, ArgAction, Command};
use serde_json::Value;

use crate::protocol::{schema_value, Input, Mode, Module};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// Where the arguments come from.
    pub input: Input,
    /// `--check` and `--diff`.
    pub mode: Mode,
    /// `--schema`: print the arguments' JSON Schema.
    pub schema: bool,
    /// `--result-schema`: print the result's JSON Schema.
    pub result_schema: bool,
}

/// Why parsing ended without a [`Cli`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `--help` or `--version`: print this and succeed.
    Text(String),
    /// A usage error: report it as a failed result.
    Failed(String),
}

/// Parses `argv` (program name first).
pub fn parse<M: Module>(argv: &[String]) -> Result<Cli, Exit> {
    let matches = command::<M>()
        .try_get_matches_from(argv)
        .map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Exit::Text(e.render().to_string())
            }
            _ => Exit::Failed(e.render().to_string().trim().to_string()),
        })?;
    let words: Vec<String> = matches
        .get_many::<String>("ARGS")
        .map(|w| w.cloned().collect())
        .unwrap_or_default();
    Ok(Cli {
        input: input_of(&words)?,
        mode: Mode {
            check: matches.get_flag("check"),
            diff: matches.get_flag("diff"),
        },
        schema: matches.get_flag("schema"),
        result_schema: matches.get_flag("result-schema"),
    })
}

/// One word that is no `key=value` (or names a file) is an arguments file;
/// otherwise every word must be `key=value`.
fn input_of(words: &[String]) -> Result<Input, Exit> {
    match words {
        [] => Ok(Input::Stdin),
        [one] if !one.contains('=') || Path::new(one).is_file() => Ok(Input::File(one.clone())),
        _ => words
            .iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Exit::Failed(format!(
                    "`{w}` is not key=value; give one arguments file, or key=value words"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Input::Pairs),
    }
}

fn command<M: Module>() -> Command {
    let schema = schema_value(M::ARGS_SCHEMA);
    let (about, description) = crate::protocol::module_doc(&schema);
    Command::new(M::NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .about(about.clone())
        .long_about(format!("{about}\n\n{description}"))
        .after_long_help(options_help(&schema))
        .override_usage(format!(
            "{0} ARGS_FILE\n       {0} [--check] [--diff] KEY=VALUE...\n       {0} [--check] [--diff] < ARGS.json",
            M::NAME
        ))
        .arg(Arg::new("ARGS").num_args(0..).help("An arguments file (JSON), or KEY=VALUE words; none: JSON on stdin"))
        .arg(flag("check", "Compute the plan, change nothing (Ansible's check mode)"))
        .arg(flag("diff", "Return the before/after of what changes (Ansible's diff mode)"))
        .arg(flag("schema", "Print the JSON Schema of the arguments"))
        .arg(flag("result-schema", "Print the JSON Schema of the result"))
}

fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .help(help)
}

/// The options section of `--help`: each argument with its doc comment.
fn options_help(schema: &Value) -> String {
    let mut out = String::from("Module arguments:\n");
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    for name in names {
        let p = &props[name];
        let mut head = format!("  {name}");
        if required.contains(&name.as_str()) {
            head.push_str(" (required)");
        }
        if let Some(d) = p.get("default") {
            head.push_str(&format!(" [default: {d}]"));
        }
        out.push_str(&head);
        out.push('\n');
        let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
        for line in desc.lines() {
            out.push_str("      ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
