//! The command line: a module's flags, `--help` and `--version` (clap,
//! derived from [`Flags`]), and the multicall binary's own.
//!
//! `--help` ends with the module's arguments, written from its argument
//! schema: the same options, in the same words, as the JSON Schema and the
//! Ansible documentation (the doc comments of the argument types). A usage
//! error is clap's message, reported as a failed result.

use std::path::Path;

use clap::{CommandFactory, FromArgMatches, Parser};
use serde_json::Value;

use super::input::Input;
use super::module::{Mode, Module};
use super::schema::{module_doc, schema_value};
use super::Entry;

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

/// A module's flags; its name, descriptions and usage come from the module.
#[derive(Debug, Parser)]
#[command(version)]
struct Flags {
    /// Compute the plan, change nothing (Ansible's check mode)
    #[arg(long)]
    check: bool,
    /// Return the before/after of what changes (Ansible's diff mode)
    #[arg(long)]
    diff: bool,
    /// Print the JSON Schema of the arguments
    #[arg(long)]
    schema: bool,
    /// Print the JSON Schema of the result
    #[arg(long)]
    result_schema: bool,
    /// An arguments file (JSON), or KEY=VALUE words; none: JSON on stdin
    #[arg(value_name = "ARGS")]
    words: Vec<String>,
}

/// Parses `argv` (program name first).
pub fn parse<M: Module>(argv: &[String]) -> Result<Cli, Exit> {
    let command = Flags::command()
        .name(M::NAME)
        .bin_name(M::NAME)
        .override_usage(usage(M::NAME));
    let flags = match command.try_get_matches_from(argv) {
        Ok(m) => Flags::from_arg_matches(&m).map_err(exit_of)?,
        // The help is made from the schema only when it is asked for: a
        // run does not parse the schema for texts it never prints.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let help = with_help::<M>().try_get_matches_from(argv).err();
            return Err(exit_of(help.unwrap_or(e)));
        }
        Err(e) => return Err(exit_of(e)),
    };
    Ok(Cli {
        input: input_of(&flags.words)?,
        mode: Mode {
            check: flags.check,
            diff: flags.diff,
        },
        schema: flags.schema,
        result_schema: flags.result_schema,
    })
}

/// The module's command with its help: the description and the module's
/// arguments from its schema.
fn with_help<M: Module>() -> clap::Command {
    let schema = schema_value(M::ARGS_SCHEMA);
    let (about, description) = module_doc(&schema);
    let long_about = if description.is_empty() {
        about.clone()
    } else {
        format!("{about}\n\n{description}")
    };
    Flags::command()
        .name(M::NAME)
        .bin_name(M::NAME)
        .about(about)
        .long_about(long_about)
        .override_usage(usage(M::NAME))
        .after_long_help(options_help(&schema))
}

/// The multicall binary called under no module's name and with none as its
/// first argument: its help, its version, `--list`, or a usage error naming
/// the modules.
pub fn top_level(modules: &[Entry], argv: &[std::ffi::OsString]) -> Exit {
    let mut command = clap::Command::new("xenpci")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The xenpci Ansible modules, in one binary")
        .override_usage(
            "xenpci MODULE [ARGS]...\n       MODULE [ARGS]...   (the binary under a module's name)\n       xenpci --list",
        )
        .arg(
            clap::Arg::new("list")
                .long("list")
                .action(clap::ArgAction::SetTrue)
                .help("Print the modules' names, one per line"),
        )
        .disable_help_subcommand(true)
        .subcommand_value_name("MODULE")
        .subcommand_help_heading("Modules");
    for m in modules {
        let (about, _) = module_doc(&schema_value(m.args_schema));
        command = command.subcommand(clap::Command::new(m.name).about(about));
    }
    match command.try_get_matches_from_mut(argv) {
        Err(e) => exit_of(e),
        Ok(m) if m.get_flag("list") => {
            Exit::Text(modules.iter().map(|m| format!("{}\n", m.name)).collect())
        }
        // A module name is dispatched before clap sees it: none was given.
        Ok(_) => exit_of(command.error(
            clap::error::ErrorKind::MissingSubcommand,
            "a module is needed: call the binary under a module's name, or name one first",
        )),
    }
}

/// clap's help and version are text to print; its errors are failures.
fn exit_of(e: clap::Error) -> Exit {
    let text = e.render().to_string();
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            Exit::Text(text)
        }
        _ => Exit::Failed(text.trim_end().to_string()),
    }
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

fn usage(name: &str) -> String {
    format!(
        "{name} ARGS_FILE\n       {name} [--check] [--diff] KEY=VALUE...\n       {name} [--check] [--diff] < ARGS.json"
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Failure, Outcome};

    struct Demo;

    impl Module for Demo {
        const NAME: &'static str = "demo";
        const ARGS_SCHEMA: &'static str = r#"{"description": "Do a thing.\n\nAt length.",
            "properties": {"path": {"description": "The file.", "type": "string"}},
            "required": ["path"]}"#;
        const RESULT_SCHEMA: &'static str = "{}";
        type Args = ();
        type Facts = ();
        fn run(_: (), _: &Mode) -> Result<Outcome<()>, Failure> {
            Err(Failure::msg("unused"))
        }
    }

    fn parse_words(words: &[&str]) -> Result<Cli, Exit> {
        let argv: Vec<String> = std::iter::once("demo")
            .chain(words.iter().copied())
            .map(String::from)
            .collect();
        parse::<Demo>(&argv)
    }

    fn failed(words: &[&str]) -> String {
        match parse_words(words) {
            Err(Exit::Failed(msg)) => msg,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_and_words() {
        let cli = parse_words(&["a=1", "--diff", "b=2", "--check"]).unwrap();
        assert_eq!(
            cli.mode,
            Mode {
                check: true,
                diff: true
            }
        );
        assert_eq!(
            cli.input,
            Input::Pairs(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        let cli = parse_words(&["--schema", "--", "--result-schema"]).unwrap();
        assert!(cli.schema && !cli.result_schema);
        assert_eq!(cli.input, Input::File("--result-schema".into()));
        assert_eq!(parse_words(&[]).unwrap().input, Input::Stdin);
    }

    #[test]
    fn usage_errors_are_clap_s() {
        let msg = failed(&["--frobnicate"]);
        assert!(msg.starts_with("error: unexpected argument '--frobnicate' found\n\n  tip: to pass '--frobnicate' as a value, use '-- --frobnicate'\n\nUsage: demo ARGS_FILE\n"), "{msg}");
        assert!(
            msg.ends_with("\n\nFor more information, try '--help'."),
            "{msg}"
        );
        assert!(failed(&["-x"]).starts_with("error: unexpected argument '-x' found"));
        assert!(failed(&["--check=1"])
            .starts_with("error: unexpected value '1' for '--check' found; no more were expected"));
        assert!(failed(&["--diff", "--diff"])
            .starts_with("error: the argument '--diff' cannot be used multiple times"));
    }

    #[test]
    fn help_and_version() {
        let Err(Exit::Text(short)) = parse_words(&["--check", "-h"]) else {
            panic!("no help")
        };
        assert_eq!(
            short,
            "Do a thing.\n\n\
             Usage: demo ARGS_FILE\n       demo [--check] [--diff] KEY=VALUE...\n       demo [--check] [--diff] < ARGS.json\n\n\
             Arguments:\n  [ARGS]...  An arguments file (JSON), or KEY=VALUE words; none: JSON on stdin\n\n\
             Options:\n      \
             --check          Compute the plan, change nothing (Ansible's check mode)\n      \
             --diff           Return the before/after of what changes (Ansible's diff mode)\n      \
             --schema         Print the JSON Schema of the arguments\n      \
             --result-schema  Print the JSON Schema of the result\n  \
             -h, --help           Print help (see more with '--help')\n  \
             -V, --version        Print version\n"
        );
        let Err(Exit::Text(long)) = parse_words(&["--help", "--bogus"]) else {
            panic!("no help")
        };
        assert!(long.starts_with("Do a thing.\n\nAt length.\n\nUsage: demo ARGS_FILE\n"));
        assert!(long.contains("\n  -V, --version\n          Print version\n\nModule arguments:\n  path (required)\n      The file.\n"), "{long}");
        assert_eq!(
            parse_words(&["-V"]),
            Err(Exit::Text(format!("demo {}\n", env!("CARGO_PKG_VERSION"))))
        );
    }
}
