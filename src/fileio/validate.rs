//! The `validate` command hook ([`run_validate`]): template splitting,
//! `%s` substitution, variable and `~` expansion, and its errors
//! ([`ValidateError`], [`CommandOutput`]).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::io_reason;

/// What a command run by [`run_validate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The arguments it ran with, the first being the program (lossy UTF-8).
    pub argv: Vec<String>,
    /// Its exit code; minus the signal number if a signal killed it (as
    /// Python's `subprocess`, hence Ansible, reports it).
    pub rc: i32,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// The line of stderr that says what went wrong: the first one with
    /// "error" in it (libxl logs the cause first, then each caller's
    /// complaint), else the last non-empty line.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines
            .iter()
            .find(|l| l.contains("error"))
            .or(lines.last())
            .copied()
            .unwrap_or("")
    }

    /// The command as one shell-quoted line, for messages.
    pub fn command_line(&self) -> String {
        command_line(&self.argv)
    }
}

fn command_line(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// Why a `validate` command refused the new contents, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The template has no `%s` to receive the file's path (lineinfile:
    /// "validate must contain %s"). A `%s` inside a `#` comment does not
    /// count: it would never be passed.
    #[error("validate must contain %s: {template}")]
    NoPlaceholder {
        /// The template as given.
        template: String,
    },
    /// The template is not a command line: an unclosed quote or a trailing
    /// backslash.
    #[error(
        "validate is not a valid command line (unclosed quote or trailing backslash): {template}"
    )]
    BadSyntax {
        /// The template as given.
        template: String,
    },
    /// The command could not be started (not found, not executable).
    #[error("failed to validate: cannot run {}: {}", command_line(.argv), io_reason(.error))]
    Spawn {
        /// The arguments it would have run with (lossy UTF-8).
        argv: Vec<String>,
        /// The system's error.
        error: io::Error,
    },
    /// The command ran and exited non-zero (lineinfile: "failed to validate:
    /// rc:%s error:%s", with its standard error).
    #[error("failed to validate: rc:{} error:{}", .output.rc, .output.stderr)]
    Failed {
        /// What it did.
        output: CommandOutput,
    },
}

/// Runs a `validate` command on `path` (a [`TempFile::path`](super::TempFile::path)) before it
/// replaces the original, as lineinfile's `validate` does.
///
/// The template must contain `%s`, the place of the path; `%%` stands for
/// `%`, as with Python's `%` operator. Like `module.run_command` with a
/// string, it is split into words by POSIX shell quoting rules (quotes,
/// backslashes; the `shlex` crate) and run without a shell; each word then
/// has `$VAR`/`${VAR}` and a leading `~` expanded as Ansible's
/// `expand_user_and_vars` does (unknown variables stay as written). Unlike
/// Ansible, which splits after substituting, `%s` is replaced in each word
/// after splitting and expanding: a path with spaces or `$` stays one
/// argument, unchanged. Every `%s` is replaced (Python would fail on a
/// second one).
///
/// Standard input is `/dev/null`; output is captured. There is no time
/// limit (Ansible has none either).
///
/// # Errors
/// [`ValidateError::NoPlaceholder`], [`ValidateError::BadSyntax`],
/// [`ValidateError::Spawn`], and [`ValidateError::Failed`] for a non-zero
/// exit code.
pub fn run_validate(template: &str, path: &Path) -> Result<CommandOutput, ValidateError> {
    let words = check_template(template)?;
    let env = |name: &str| std::env::var(name).ok();
    let argv_os: Vec<OsString> = words
        .iter()
        .map(|word| substitute(&expand_user(&expand_vars(word, &env)), path))
        .collect();
    let argv: Vec<String> = argv_os
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let (program, args) = match argv_os.split_first() {
        Some(split) => split,
        None => {
            return Err(ValidateError::NoPlaceholder {
                template: template.to_string(),
            })
        }
    };
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => return Err(ValidateError::Spawn { argv, error }),
    };
    let rc = output
        .status
        .code()
        .or_else(|| output.status.signal().map(|signal| -signal))
        .unwrap_or(-1);
    let result = CommandOutput {
        argv,
        rc,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if rc == 0 {
        Ok(result)
    } else {
        Err(ValidateError::Failed { output: result })
    }
}

/// The words of a `validate` template, if [`run_validate`] can run it: it
/// splits by shell rules and has a `%s` (not `%%s`, not in a comment)
/// outside quotes' reach. The modules check their argument with this before
/// anything else, so check mode refuses what the write would.
pub fn check_template(template: &str) -> Result<Vec<String>, ValidateError> {
    // shlex differs from Python's shlex.split(comments=False) in treating a
    // word starting with `#` as a comment to the end of the line; the
    // placeholder check below catches the one case where that matters.
    let words = shlex::split(template).ok_or_else(|| ValidateError::BadSyntax {
        template: template.to_string(),
    })?;
    if !words.iter().any(|word| has_placeholder(word)) {
        return Err(ValidateError::NoPlaceholder {
            template: template.to_string(),
        });
    }
    Ok(words)
}

/// Whether `word` holds a `%s` that is not the tail of a `%%`.
fn has_placeholder(word: &str) -> bool {
    let mut bytes = word.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            match bytes.next() {
                Some(b's') => return true,
                _ => continue,
            }
        }
    }
    false
}

/// `word` with `%s` replaced by `path` and `%%` by `%`; any other `%` stays.
fn substitute(word: &str, path: &Path) -> OsString {
    let mut out = Vec::with_capacity(word.len() + path.as_os_str().len());
    let bytes = word.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'%', Some(b's')) => {
                out.extend_from_slice(path.as_os_str().as_bytes());
                i += 2;
            }
            (b'%', Some(b'%')) => {
                out.push(b'%');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// Python's `posixpath.expandvars`: `$NAME` and `${NAME}` (NAME of ASCII
/// letters, digits, `_`) replaced by the variable's value when `lookup`
/// knows it, left as written when not; values are not expanded again.
fn expand_vars(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (len > 0).then(|| lookup(name)).flatten() {
            Some(value) => {
                out.push_str(&value);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's `posixpath.expanduser`: a leading `~` (HOME, else the password
/// entry) or `~user` (that user's home) up to the first `/`; unchanged when
/// the user or home is unknown.
fn expand_user(word: &str) -> String {
    let Some(after) = word.strip_prefix('~') else {
        return word.to_string();
    };
    let end = after.find('/').unwrap_or(after.len());
    let (name, tail) = after.split_at(end);
    let home = if name.is_empty() {
        std::env::var("HOME").ok().or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .and_then(|user| user.dir.to_str().map(str::to_string))
        })
    } else {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .and_then(|user| user.dir.to_str().map(str::to_string))
    };
    match home {
        Some(home) => {
            let joined = format!("{}{tail}", home.trim_end_matches('/'));
            if joined.is_empty() {
                "/".to_string()
            } else {
                joined
            }
        }
        None => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileio::test_util::dir;
    use std::fs;

    #[test]
    fn validate_passes_the_path_as_one_argument() {
        let d = dir();
        fs::create_dir(d.path().join("a b")).expect("mkdir");
        let file = d.path().join("a b/$HOME %s.cfg");
        fs::write(&file, b"x").expect("write");
        let out = run_validate("test -f %s", &file).expect("valid");
        assert_eq!(out.rc, 0);
        assert_eq!(out.argv, ["test", "-f", &*file.to_string_lossy()]);
    }

    #[test]
    fn validate_failure_carries_rc_and_stderr() {
        let err = run_validate(
            "sh -c 'echo out; echo \"bad line 3\" >&2; exit 3' sh %s",
            Path::new("/tmp/x"),
        )
        .expect_err("fails");
        let ValidateError::Failed { output } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            (output.rc, &*output.stdout, &*output.stderr),
            (3, "out\n", "bad line 3\n")
        );
        assert_eq!(output.argv.last().map(String::as_str), Some("/tmp/x"));
        assert_eq!(
            err.to_string(),
            "failed to validate: rc:3 error:bad line 3\n"
        );
    }

    #[test]
    fn validate_killed_by_a_signal_reports_minus_the_signal() {
        let err = run_validate("sh -c 'kill -9 $$' sh %s", Path::new("/x")).expect_err("killed");
        assert!(
            matches!(err, ValidateError::Failed { ref output } if output.rc == -9),
            "{err:?}"
        );
    }

    #[test]
    fn validate_needs_a_placeholder() {
        for template in ["true", "echo %%s", "true # %s"] {
            let err = run_validate(template, Path::new("/x")).expect_err(template);
            assert!(
                matches!(err, ValidateError::NoPlaceholder { .. }),
                "{template}: {err:?}"
            );
        }
        assert_eq!(
            run_validate("true", Path::new("/x")).map_err(|e| e.to_string()),
            Err("validate must contain %s: true".to_string())
        );
    }

    #[test]
    fn validate_refuses_bad_quoting_and_reports_a_missing_program() {
        assert!(matches!(
            run_validate("check 'unclosed %s", Path::new("/x")),
            Err(ValidateError::BadSyntax { .. })
        ));
        let err = run_validate("/nonexistent/checker %s", Path::new("/x")).expect_err("spawn");
        assert!(matches!(err, ValidateError::Spawn { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "failed to validate: cannot run /nonexistent/checker /x: No such file or directory"
        );
    }

    #[test]
    fn validate_words_are_substituted_like_python_percent() {
        let p = Path::new("/t/f");
        assert_eq!(substitute("--file=%s", p), OsString::from("--file=/t/f"));
        assert_eq!(substitute("100%%", p), OsString::from("100%"));
        assert_eq!(substitute("%d%s%", p), OsString::from("%d/t/f%"));
        assert!(has_placeholder("a%s") && !has_placeholder("%%s") && has_placeholder("%%%s"));
    }

    #[test]
    fn expand_vars_is_pythons_expandvars() {
        let env = |name: &str| match name {
            "HOME" => Some("/root".to_string()),
            "X" => Some("$HOME".to_string()),
            _ => None,
        };
        assert_eq!(expand_vars("$HOME/bin", &env), "/root/bin");
        assert_eq!(expand_vars("${HOME}x", &env), "/rootx");
        assert_eq!(
            expand_vars("$NOPE and ${NOPE} and $", &env),
            "$NOPE and ${NOPE} and $"
        );
        assert_eq!(
            expand_vars("$X", &env),
            "$HOME",
            "values are not expanded again"
        );
        assert_eq!(expand_vars("${HOME", &env), "${HOME");
        assert_eq!(expand_vars("a$HOME-b", &env), "a/root-b");
    }

    #[test]
    fn expand_user_is_pythons_expanduser() {
        assert_eq!(expand_user("plain~"), "plain~");
        assert_eq!(
            expand_user("~no-such-user-xenpci/x"),
            "~no-such-user-xenpci/x"
        );
        if let Some(root_home) = nix::unistd::User::from_name("root")
            .ok()
            .flatten()
            .and_then(|u| u.dir.to_str().map(str::to_string))
        {
            assert_eq!(
                expand_user("~root/bin"),
                format!("{}/bin", root_home.trim_end_matches('/'))
            );
        }
    }
}
