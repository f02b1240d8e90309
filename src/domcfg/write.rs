//! Putting a config edit in place, under the file's lock.
//!
//! [`edit_file`] goes from path to written file. Its parts serve a caller
//! that changes something else between the plan and the write (pci_attach
//! hot-plugs a device there): [`prepare`] locks, reads and plans;
//! [`PreparedEdit::stage`] writes the new bytes to a temporary file beside
//! the target and runs `validate` on it, which is all of the write that can
//! fail before anything changes; [`PreparedEdit::finish`] makes the backup
//! and renames the temporary file into place. A failure says what it had
//! done ([`EditFailure`]).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::fileio::{self, CommandOutput, FileError, FileLock, FileOp, TempFile, WriteOptions};
use crate::xlcfg::XlConfig;

use super::{plan_on, DomCfgError, HostDevices, PciRequest, Plan};

/// How the new file is put in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSpec<'a> {
    /// Keep a timestamped copy of the old file first.
    pub backup: bool,
    /// A command with `%s`, run on the new file before it replaces the old.
    pub validate: Option<&'a str>,
}

/// What the write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The backup made, if any.
    pub backup_file: Option<PathBuf>,
    /// The `validate` command's run, if any.
    pub validated: Option<CommandOutput>,
}

/// One run of a config edit, from path to written file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditSpec<'a> {
    /// Create the file when it does not exist.
    pub create: bool,
    /// Plan only (check mode): take no lock, write nothing.
    pub check: bool,
    /// Backup and validate.
    pub write: WriteSpec<'a>,
}

/// What [`edit_file`] did (or, in check mode, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file edited (a symlink's target).
    pub target: PathBuf,
    /// Its bytes before.
    pub before: Vec<u8>,
    /// The plan, with the bytes after.
    pub plan: Plan,
    /// The steps in words: the plan's actions, then backup and write.
    pub actions: Vec<String>,
    /// What the write did.
    pub written: Written,
}

/// A config file after an edit, as the results report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EditedFile {
    /// The file edited (a symlink's target when the path given is a
    /// symlink).
    pub path: String,
    /// Its pci list after the run, each entry in canonical form.
    pub devices: Vec<String>,
    /// The backup made, when `backup` was set and the file changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file: Option<String>,
}

/// A config file in a module's result: the file and whether it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ConfigResult {
    /// The file and its pci list.
    #[serde(flatten)]
    pub file: EditedFile,
    /// Whether the file changed (or would, in check mode).
    pub changed: bool,
}

impl FileEdit {
    /// The file as a module's result reports it.
    pub fn config_result(&self) -> ConfigResult {
        ConfigResult {
            file: self.edited_file(),
            changed: self.plan.changed(),
        }
    }

    /// The file as the results report it.
    pub fn edited_file(&self) -> EditedFile {
        EditedFile {
            path: self.target.display().to_string(),
            devices: self.plan.devices.iter().map(|d| d.to_string()).collect(),
            backup_file: self
                .written
                .backup_file
                .as_ref()
                .map(|p| p.display().to_string()),
        }
    }
}

/// A config edit read and planned under the file's lock (no lock in check
/// mode), not written yet. The lock is held until the edit is dropped or
/// finished, so the file still holds what the plan was made from.
#[derive(Debug)]
pub struct PreparedEdit {
    /// The file to edit (a symlink's target).
    pub target: PathBuf,
    /// Its bytes now.
    pub before: Vec<u8>,
    /// The plan, with the bytes after.
    pub plan: Plan,
    existed: bool,
    lock: Option<FileLock>,
}

/// The new bytes in a temporary file beside the target, validated: what
/// [`PreparedEdit::finish`] puts in place.
#[derive(Debug)]
pub struct Staged {
    tmp: TempFile,
    validated: Option<CommandOutput>,
}

/// An edit that failed: why, and what it had done by then.
#[derive(Debug)]
pub struct EditFailure {
    /// What went wrong.
    pub error: DomCfgError,
    /// The steps done before the failure, in words: `back up PATH` when the
    /// backup was made; the whole edit when the new file had replaced the
    /// old one and only the flush of the folder failed.
    pub done: Vec<String>,
    /// The backup made, if any.
    pub backup_file: Option<PathBuf>,
    /// Whether the file holds the new bytes.
    pub replaced: bool,
}

impl From<DomCfgError> for Box<EditFailure> {
    fn from(error: DomCfgError) -> Self {
        Box::new(EditFailure {
            error,
            done: Vec::new(),
            backup_file: None,
            replaced: false,
        })
    }
}

impl From<FileError> for Box<EditFailure> {
    fn from(e: FileError) -> Self {
        DomCfgError::from(e).into()
    }
}

/// Resolves, locks (not in check mode), reads and plans the edit of the
/// config at `path` (on `host`'s devices).
pub fn prepare(
    path: &Path,
    req: &PciRequest,
    how: &EditSpec<'_>,
    host: &HostDevices<'_>,
) -> Result<PreparedEdit, DomCfgError> {
    let target = fileio::resolve_target(path)?;
    let missing = || DomCfgError::Missing(path.to_path_buf());
    if !how.create && !target.exists() {
        return Err(missing());
    }
    // Check mode must not even create the lock file.
    let lock = if how.check {
        None
    } else {
        Some(FileLock::acquire(&target)?)
    };
    let before = fileio::read_file(&target, fileio::DEFAULT_MAX_SIZE)?;
    if before.is_none() && !how.create {
        return Err(missing());
    }
    let existed = before.is_some();
    let before = before.unwrap_or_default();
    let cfg = XlConfig::parse(&before).map_err(|err| DomCfgError::Syntax {
        path: target.clone(),
        err,
    })?;
    let plan = plan_on(&cfg, &target, req, host)?;
    Ok(PreparedEdit {
        target,
        before,
        plan,
        existed,
        lock,
    })
}

impl PreparedEdit {
    /// The steps in words: the plan's actions, then backup and write.
    pub fn actions(&self, how: &WriteSpec<'_>) -> Vec<String> {
        let mut actions: Vec<String> = self.plan.actions.iter().map(|a| a.to_string()).collect();
        if self.plan.changed() {
            if how.backup && self.existed {
                actions.push(self.backup_action());
            }
            actions.push(format!("write {}", self.target.display()));
        }
        actions
    }

    fn backup_action(&self) -> String {
        format!("back up {}", self.target.display())
    }

    /// Plans the edit again for `req` (a part of the first request, say:
    /// what a half-done hot-plug did), from the bytes read under the lock
    /// still held.
    pub fn replan(&mut self, req: &PciRequest, host: &HostDevices<'_>) -> Result<(), DomCfgError> {
        let cfg = XlConfig::parse(&self.before).map_err(|err| DomCfgError::Syntax {
            path: self.target.clone(),
            err,
        })?;
        self.plan = plan_on(&cfg, &self.target, req, host)?;
        Ok(())
    }

    /// Writes the new bytes to a temporary file beside the target and runs
    /// `validate` on it: a full folder, a read-only one or a refusing
    /// `validate` fail here, before anything changes. `None` when the file
    /// does not change, or in check mode.
    pub fn stage(&self, how: &WriteSpec<'_>) -> Result<Option<Staged>, DomCfgError> {
        if !self.plan.changed() || self.lock.is_none() {
            return Ok(None);
        }
        let tmp =
            TempFile::create_beside(&self.target, &self.plan.after, &WriteOptions::default())?;
        let validated = match how.validate {
            Some(cmd) => Some(fileio::run_validate(cmd, tmp.path())?),
            None => None,
        };
        Ok(Some(Staged { tmp, validated }))
    }

    /// Puts `staged` in place (backup first, with `how.backup`, of a file
    /// that existed; then the atomic rename) and releases the lock. Without
    /// a staged file (nothing changes, or check mode) it writes nothing.
    pub fn finish(
        self,
        staged: Option<Staged>,
        how: &WriteSpec<'_>,
    ) -> Result<FileEdit, Box<EditFailure>> {
        let actions = self.actions(how);
        let mut written = Written::default();
        if let Some(staged) = staged {
            written.validated = staged.validated;
            if how.backup && self.existed {
                written.backup_file = Some(fileio::backup(&self.target)?);
            }
            if let Err(e) = staged.tmp.persist() {
                // Only the folder's flush comes after the rename.
                let replaced = matches!(
                    e,
                    FileError::Io {
                        op: FileOp::SyncDir,
                        ..
                    }
                );
                let done = if replaced {
                    actions
                } else {
                    written
                        .backup_file
                        .as_ref()
                        .map(|_| self.backup_action())
                        .into_iter()
                        .collect()
                };
                return Err(Box::new(EditFailure {
                    error: e.into(),
                    done,
                    backup_file: written.backup_file,
                    replaced,
                }));
            }
        }
        Ok(FileEdit {
            target: self.target,
            before: self.before,
            plan: self.plan,
            actions,
            written,
        })
    }
}

/// Edits the config at `path` as `req` asks: resolve symlinks, lock (so
/// concurrent runs serialise from read to write), read, plan (on `host`'s
/// devices), write.
pub fn edit_file(
    path: &Path,
    req: &PciRequest,
    how: &EditSpec<'_>,
    host: &HostDevices<'_>,
) -> Result<FileEdit, Box<EditFailure>> {
    let edit = prepare(path, req, how, host)?;
    let staged = edit.stage(&how.write)?;
    edit.finish(staged, &how.write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domcfg::ListState;
    use crate::spec::PciSpec;

    /// A write that fails after its backup (the staged file is gone before
    /// the rename) names the backup as done and leaves the file as it was.
    #[test]
    fn a_failed_rename_after_the_backup_reports_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("vm1.cfg");
        std::fs::write(&cfg, "pci = [ '07:00.0' ]\n").unwrap();
        let req = PciRequest {
            devices: vec![PciSpec::parse_strict("08:00.0").unwrap()],
            state: ListState::Present,
            ..PciRequest::default()
        };
        let how = EditSpec {
            write: WriteSpec {
                backup: true,
                validate: None,
            },
            ..EditSpec::default()
        };
        let edit = prepare(&cfg, &req, &how, &HostDevices::none()).unwrap();
        let staged = edit.stage(&how.write).unwrap().expect("a change to stage");
        std::fs::remove_file(staged.tmp.path()).unwrap();
        let failed = edit.finish(Some(staged), &how.write).unwrap_err();
        let target = cfg.canonicalize().unwrap();
        assert_eq!(failed.done, [format!("back up {}", target.display())]);
        assert!(!failed.replaced);
        let backup = failed.backup_file.clone().expect("a backup");
        assert_eq!(std::fs::read(&backup).unwrap(), b"pci = [ '07:00.0' ]\n");
        assert_eq!(std::fs::read(&cfg).unwrap(), b"pci = [ '07:00.0' ]\n");
    }
}
