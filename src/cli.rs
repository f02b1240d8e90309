//! The command line of a module binary: flags, `--help` and `--version`.
//!
//! Read with lexopt; `--help` is written from the module's argument schema,
//! so it describes the same options, in the same words, as the JSON Schema
//! and the Ansible documentation: the doc comments of the argument types.
//! The help's layout and the usage errors are clap's (`-h` short, `--help`
//! long), as the modules printed them when they were built on clap.

use std::path::Path;

use lexopt::Arg;
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

/// The positional arguments: its name in the help, and its help.
const WORDS: (&str, &str) = (
    "[ARGS]...",
    "An arguments file (JSON), or KEY=VALUE words; none: JSON on stdin",
);

/// The flags that set something, in the order of the help: name, help.
const FLAGS: [(&str, &str); 4] = [
    (
        "check",
        "Compute the plan, change nothing (Ansible's check mode)",
    ),
    (
        "diff",
        "Return the before/after of what changes (Ansible's diff mode)",
    ),
    ("schema", "Print the JSON Schema of the arguments"),
    ("result-schema", "Print the JSON Schema of the result"),
];

/// Parses `argv` (program name first).
pub fn parse<M: Module>(argv: &[String]) -> Result<Cli, Exit> {
    let mut parser = lexopt::Parser::from_args(argv.iter().skip(1));
    let mut words: Vec<String> = Vec::new();
    let mut set = [false; FLAGS.len()];
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(usage_error::<M>(&e.to_string())),
        };
        let which = match arg {
            Arg::Value(v) => {
                // argv holds Strings: every value is UTF-8.
                words.push(v.to_string_lossy().into_owned());
                continue;
            }
            Arg::Short('h') => Which::ShortHelp,
            Arg::Short('V') => Which::Version,
            Arg::Short(c) => return Err(unexpected::<M>(&format!("-{c}"))),
            Arg::Long(name) => {
                let long = format!("--{name}");
                let which = match name {
                    "help" => Which::LongHelp,
                    "version" => Which::Version,
                    _ => match FLAGS.iter().position(|(f, _)| name == *f) {
                        Some(i) => Which::Flag(i),
                        None => return Err(unexpected::<M>(&long)),
                    },
                };
                // `--flag=value` (a short option's cluster goes on: `-hV` is `-h`).
                if let Some(value) = parser.optional_value() {
                    return Err(usage_error::<M>(&format!(
                        "unexpected value '{}' for '{long}' found; no more were expected",
                        value.to_string_lossy()
                    )));
                }
                which
            }
        };
        match which {
            Which::LongHelp => return Err(Exit::Text(help::<M>(true))),
            Which::ShortHelp => return Err(Exit::Text(help::<M>(false))),
            Which::Version => {
                return Err(Exit::Text(format!(
                    "{} {}\n",
                    M::NAME,
                    env!("CARGO_PKG_VERSION")
                )))
            }
            Which::Flag(i) if set[i] => {
                return Err(usage_error::<M>(&format!(
                    "the argument '--{}' cannot be used multiple times",
                    FLAGS[i].0
                )))
            }
            Which::Flag(i) => set[i] = true,
        }
    }
    let [check, diff, schema, result_schema] = set;
    Ok(Cli {
        input: input_of(&words)?,
        mode: Mode { check, diff },
        schema,
        result_schema,
    })
}

/// What an option asks for.
enum Which {
    LongHelp,
    ShortHelp,
    Version,
    /// One of [`FLAGS`].
    Flag(usize),
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

fn unexpected<M: Module>(arg: &str) -> Exit {
    usage_error::<M>(&format!(
        "unexpected argument '{arg}' found\n\n  tip: to pass '{arg}' as a value, use '-- {arg}'"
    ))
}

fn usage_error<M: Module>(what: &str) -> Exit {
    Exit::Failed(format!(
        "error: {what}\n\n{}\n\nFor more information, try '--help'.",
        usage::<M>()
    ))
}

fn usage<M: Module>() -> String {
    format!(
        "Usage: {0} ARGS_FILE\n       {0} [--check] [--diff] KEY=VALUE...\n       {0} [--check] [--diff] < ARGS.json",
        M::NAME
    )
}

/// `-h` (`long` false: the first line of the description, one line per
/// option) or `--help` (the whole description, each option's help on its
/// own line, then the module's arguments).
fn help<M: Module>(long: bool) -> String {
    let schema = schema_value(M::ARGS_SCHEMA);
    let (about, description) = crate::protocol::module_doc(&schema);
    let mut out = about;
    if long && !description.is_empty() {
        out.push_str("\n\n");
        out.push_str(&description);
    }
    out.push_str("\n\n");
    out.push_str(&usage::<M>());
    out.push_str("\n\nArguments:\n");
    section(&mut out, &[(WORDS.0.to_string(), WORDS.1)], long);
    let help_help = if long {
        "Print help (see a summary with '-h')"
    } else {
        "Print help (see more with '--help')"
    };
    let mut options: Vec<(String, &str)> = FLAGS
        .iter()
        .map(|(name, help)| (format!("    --{name}"), *help))
        .collect();
    options.push(("-h, --help".into(), help_help));
    options.push(("-V, --version".into(), "Print version"));
    out.push_str("\nOptions:\n");
    section(&mut out, &options, long);
    if long {
        out.push('\n');
        out.push_str(&options_help(&schema));
    }
    out
}

/// One section of the help: in the short form, names and helps in two
/// columns; in the long form, each help indented under its name, with a
/// blank line between entries.
fn section(out: &mut String, entries: &[(String, &str)], long: bool) {
    let width = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (i, (name, help)) in entries.iter().enumerate() {
        if long {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("  {name}\n          {help}\n"));
        } else {
            out.push_str(&format!("  {name:width$}  {help}\n"));
        }
    }
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
