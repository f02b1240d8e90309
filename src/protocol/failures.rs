//! Every engine error becomes a [`Failure`] here, and only here: the
//! engines return typed errors and know nothing of results.
//!
//! A command's failure carries the command's `cmd`, `rc`, `stdout` and
//! `stderr` (as Ansible's `command` module reports them); an error after the
//! host changed carries what was done ([`Failure::after`]).

use super::report::{Diff, Failure};
use crate::assignable::BootFile;
use crate::assignable::{ApplyFailure, AssignError};
use crate::attach::AttachError;
use crate::domcfg::{DomCfgError, EditFailure, FileEdit};
use crate::fileio::{CommandOutput, ValidateError};
use crate::host::HostError;
use crate::passthrough::{Failed, PassthroughError};
use crate::select::SelectError;
use crate::spec::ListError;
use crate::sriov::{ApplyFailure as SriovApplyFailure, SriovError};

/// `f` with the keys of the command that failed.
fn with_command(f: Failure, out: &CommandOutput) -> Failure {
    f.with("cmd", out.command_line())
        .with("rc", out.rc)
        .with("stdout", &out.stdout)
        .with("stderr", &out.stderr)
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure::msg(e.to_string())
    }
}

impl From<ListError> for Failure {
    fn from(e: ListError) -> Self {
        Failure::msg(e.to_string())
    }
}

impl From<SelectError> for Failure {
    /// A selection of `devices` that cannot be resolved, named by its index.
    fn from(e: SelectError) -> Self {
        match e {
            SelectError::Host(e) => e.into(),
            e => Failure::msg(format!("devices{e}")),
        }
    }
}

impl From<SriovError> for Failure {
    fn from(e: SriovError) -> Self {
        Failure::msg(e.to_string())
    }
}

impl From<Box<SriovApplyFailure>> for Failure {
    fn from(f: Box<SriovApplyFailure>) -> Self {
        Failure::from(f.error).after(&f.done)
    }
}

impl From<AssignError> for Failure {
    fn from(e: AssignError) -> Self {
        Failure::msg(e.to_string())
    }
}

impl From<Box<ApplyFailure>> for Failure {
    fn from(f: Box<ApplyFailure>) -> Self {
        let mut out = Failure::msg(f.error.to_string());
        if let Some(c) = &f.command {
            out = with_command(out, c);
        }
        out.after(&f.actions)
    }
}

impl From<DomCfgError> for Failure {
    fn from(e: DomCfgError) -> Self {
        let f = Failure::msg(e.to_string());
        match e {
            DomCfgError::Validate(ValidateError::Failed { output }) => with_command(f, &output),
            _ => f,
        }
    }
}

impl From<ValidateError> for Failure {
    fn from(e: ValidateError) -> Self {
        Failure::from(DomCfgError::Validate(e))
    }
}

impl From<Box<EditFailure>> for Failure {
    fn from(f: Box<EditFailure>) -> Self {
        let mut out = Failure::from(f.error).after(&f.done);
        if let Some(b) = f.backup_file {
            out = out.with("backup_file", b.display().to_string());
        }
        out
    }
}

impl From<AttachError> for Failure {
    fn from(e: AttachError) -> Self {
        let f = Failure::msg(e.to_string());
        match e {
            AttachError::Xl { out, done } => with_command(f, &out).after(&done),
            _ => f,
        }
    }
}

impl From<&FileEdit> for Diff {
    /// The before/after pair of an edited file, for diff mode.
    fn from(edit: &FileEdit) -> Self {
        let header = edit.target.display().to_string();
        Diff {
            before_header: header.clone(),
            after_header: header,
            before: String::from_utf8_lossy(&edit.before).into_owned(),
            after: String::from_utf8_lossy(&edit.plan.after).into_owned(),
        }
    }
}

impl From<PassthroughError> for Failure {
    fn from(e: PassthroughError) -> Self {
        match e {
            PassthroughError::Invalid(m) => Failure::msg(m),
            PassthroughError::Assign(e) => e.into(),
            PassthroughError::Attach(e) => e.into(),
            PassthroughError::Config(e) => e.into(),
            PassthroughError::Host(e) => e.into(),
        }
    }
}

impl From<Box<Failed>> for Failure {
    /// A failed passthrough run: the error, then what was done, what undid
    /// it and what could not be undone. `changed` stays true when a step was
    /// done, undone or not: the host went through changes.
    fn from(f: Box<Failed>) -> Self {
        let Failed {
            error,
            done,
            undone,
            not_undone,
        } = *f;
        let mut out = Failure::from(error);
        let mut actions = done;
        actions.extend(undone.iter().map(|a| format!("undo: {a}")));
        out = out.after(&actions);
        if !undone.is_empty() || !not_undone.is_empty() {
            let tail = if not_undone.is_empty() {
                " (every step done before was undone)".to_string()
            } else {
                format!(" (could not undo: {})", not_undone.join("; "))
            };
            out.msg.push_str(&tail);
        }
        out.with("undone", undone).with("not_undone", not_undone)
    }
}

impl From<&BootFile> for Diff {
    /// A boot file's before/after (an absent file is empty).
    fn from(f: &BootFile) -> Self {
        Diff {
            before_header: f.file.path().into(),
            after_header: f.file.path().into(),
            before: f.before.clone().unwrap_or_default(),
            after: f.after.clone().unwrap_or_default(),
        }
    }
}
