//! The PCI settings of an xl domain config file: read them, plan a change,
//! write it safely.
//!
//! [`PciConfig::read`] takes an [`XlConfig`] and reads what `xl create`
//! would: the `pci` list as [`PciSpec`]s, the `pci_*` defaults and
//! `passthrough`, refusing a file whose pci settings xl would reject or
//! misread. [`plan`] turns a [`PciRequest`] into the new bytes and the
//! [`Action`]s that lead there, with layout-preserving splices, and checks
//! its own work by reading the result back. [`write()`] puts the new bytes in
//! place: lock, backup, temporary file, `validate` command, atomic rename.
//!
//! ```
//! use xenpci::domcfg::{plan, PciRequest, ListState};
//! use xenpci::spec::PciSpec;
//! use xenpci::xlcfg::XlConfig;
//! let cfg = XlConfig::parse(b"name = 'vm1'\npci = [ '07:00.0' ]\n").unwrap();
//! let req = PciRequest {
//!     devices: vec![PciSpec::parse_strict("08:00.0").unwrap()],
//!     state: ListState::Present,
//!     ..PciRequest::default()
//! };
//! let p = plan(&cfg, std::path::Path::new("vm1.cfg"), &req).unwrap();
//! assert_eq!(p.after, b"name = 'vm1'\npci = [ '07:00.0', '0000:08:00.0' ]\n");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fileio::{
    self, CommandOutput, FileError, FileLock, TempFile, ValidateError, WriteOptions,
};
use crate::spec::{PciDefaults, PciSpec, SpecError};
use crate::xlcfg::edit::{Editor, ItemChange};
use crate::xlcfg::{CfgError, Node, Value, XlConfig};

mod host_devices;
mod matching;

pub use host_devices::HostDevices;

/// The `pci_*` keys that set per-device defaults, with their option names.
pub const DEFAULT_KEYS: [(&str, &str); 4] = [
    ("pci_permissive", "permissive"),
    ("pci_msitranslate", "msitranslate"),
    ("pci_seize", "seize"),
    ("pci_power_mgmt", "power_mgmt"),
];

/// What the `pci` list should become.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListState {
    /// The devices are listed, each with exactly the options given; other
    /// entries stay.
    #[default]
    Present,
    /// No entry for these devices remains (options are not compared).
    Absent,
    /// The list holds exactly these devices: others are removed.
    Exact,
}

/// xl's `passthrough` setting (`libxl_passthrough` in libxl_types.idl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Passthrough {
    /// Let libxl decide: enabled when the config lists devices at creation.
    Default,
    /// No pass-through.
    Disabled,
    /// Pass-through enabled, so that devices can be hot-plugged later.
    Enabled,
    /// Enabled, with IOMMU page tables kept separate (HVM).
    SyncPt,
    /// Enabled, sharing the guest's page tables with the IOMMU (HVM).
    SharePt,
}

impl Passthrough {
    fn as_str(self) -> &'static str {
        match self {
            Passthrough::Default => "default",
            Passthrough::Disabled => "disabled",
            Passthrough::Enabled => "enabled",
            Passthrough::SyncPt => "sync_pt",
            Passthrough::SharePt => "share_pt",
        }
    }
}

/// The change asked of a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciRequest {
    /// The devices, already checked.
    pub devices: Vec<PciSpec>,
    /// What the list should become.
    pub state: ListState,
    /// `pci_permissive`, `pci_msitranslate`, `pci_seize`, `pci_power_mgmt`,
    /// in [`DEFAULT_KEYS`] order; `None` leaves a setting alone.
    pub defaults: [Option<bool>; 4],
    /// `passthrough`, if it should be set.
    pub passthrough: Option<Passthrough>,
}

/// One step of a config edit, as the result's `actions` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A device entry added to the list.
    Add(PciSpec),
    /// A device's entry rewritten with new options.
    Update {
        /// The entry as it was written.
        from: String,
        /// The entry now.
        to: PciSpec,
    },
    /// A device's entry removed.
    Remove(String),
    /// A scalar setting written.
    Set {
        /// The key.
        key: &'static str,
        /// Its new value, as written.
        value: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Add(s) => write!(f, "add '{s}' to pci"),
            Action::Update { from, to } => write!(f, "replace pci entry '{from}' with '{to}'"),
            Action::Remove(s) => write!(f, "remove '{s}' from pci"),
            Action::Set { key, value } => write!(f, "set {key} = {value}"),
        }
    }
}

/// Why a config cannot be edited.
#[derive(Debug, thiserror::Error)]
pub enum DomCfgError {
    /// xl would refuse the file.
    #[error("{path}: {err} (xl would refuse this file; it was left untouched)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        err: CfgError,
    },
    /// The pci settings are there, but not in a form xl reads as a list.
    #[error("{path}: line {line}: {what}; it was left untouched")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The line of the setting.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A pci entry xl cannot parse (`xl create` would fail).
    #[error("{path}: line {line}: invalid pci entry {err} (xl create would fail; the file was left untouched)")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The line of the entry.
        line: usize,
        /// Why (it names the entry).
        err: SpecError,
    },
    /// The request would list a device twice, leave part of a wildcard
    /// entry assigned, or put two devices at one vslot.
    #[error("{path}: {what}; the file was left untouched")]
    Conflict {
        /// The file.
        path: PathBuf,
        /// What clashes, naming the entries.
        what: String,
    },
    /// The file does not exist and may not be created.
    #[error("Destination {} does not exist (set create: true to create it)", .0.display())]
    Missing(PathBuf),
    /// Reading or writing the file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The `validate` command refused the new file.
    #[error(transparent)]
    Validate(#[from] ValidateError),
    /// The edit did not read back as planned: a bug, so nothing was written.
    #[error(
        "internal error: the edited file does not read back as planned ({0}); nothing was written"
    )]
    Verify(String),
}

/// The pci settings of a config, as `xl create` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciConfig {
    /// The `pci` list entries, each with its text as written.
    pub entries: Vec<(String, PciSpec)>,
    /// Legal but suspicious settings (xl warns and ignores them).
    pub warnings: Vec<String>,
}

impl PciConfig {
    /// Reads the pci settings of `cfg` (from `path`, for messages).
    pub fn read(cfg: &XlConfig, path: &Path) -> Result<PciConfig, DomCfgError> {
        let shape = |line, what: String| DomCfgError::Shape {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut entries = Vec::new();
        if let Some(last) = cfg.last("pci") {
            let items = cfg.list_items("pci").ok_or_else(|| {
                shape(
                    last.line,
                    "pci is a single value, but xl expects a list (and would ignore it)".into(),
                )
            })?;
            for item in items {
                let Node::Atom(atom) = &item.node else {
                    return Err(shape(
                        last.line,
                        "pci holds a nested list; xl ignores it and every entry after it".into(),
                    ));
                };
                let text = String::from_utf8(atom.value.clone())
                    .map_err(|_| shape(last.line, "a pci entry is not valid UTF-8".into()))?;
                let spec = PciSpec::parse_xl(&text).map_err(|err| DomCfgError::Entry {
                    path: path.to_path_buf(),
                    line: cfg.line_of(atom.span.start),
                    err,
                })?;
                entries.push((text, spec));
            }
        }
        let mut warnings = Vec::new();
        for (key, _) in DEFAULT_KEYS {
            if let Some(Err(why)) = cfg.long(key) {
                warnings.push(format!("{}: {why}; xl ignores it", path.display()));
            }
        }
        Ok(PciConfig { entries, warnings })
    }

    /// The devices listed, as specs.
    pub fn devices(&self) -> Vec<PciSpec> {
        self.entries.iter().map(|(_, s)| s.clone()).collect()
    }
}

/// The result of [`plan`]: new bytes and how they came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The file as it would be after the edit (equal to the input when
    /// nothing changes).
    pub after: Vec<u8>,
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// The pci list after the edit.
    pub devices: Vec<PciSpec>,
    /// Legal but suspicious settings found in the file.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether the file changes.
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// Plans `req` against `cfg` without a host: names are compared as names
/// and `BB:DD.*` covers every function (see [`plan_on`]).
pub fn plan(cfg: &XlConfig, path: &Path, req: &PciRequest) -> Result<Plan, DomCfgError> {
    plan_on(cfg, path, req, &HostDevices::none())
}

/// Plans `req` against `cfg`: which entries to add, rewrite or remove, and
/// which settings to write, as splices that keep every other byte. Entries
/// are matched on the host functions they cover, `host` telling what a
/// `name=` is and which functions a device has.
pub fn plan_on(
    cfg: &XlConfig,
    path: &Path,
    req: &PciRequest,
    host: &HostDevices<'_>,
) -> Result<Plan, DomCfgError> {
    let current = PciConfig::read(cfg, path)?;
    let matching::ListPlan {
        changes,
        new,
        mut actions,
        warnings,
    } = matching::plan_list(&current, req, host, path)?;
    let mut ed = Editor::new(cfg);
    if changes.iter().any(|c| *c != ItemChange::Keep) || !new.is_empty() {
        let texts: Vec<String> = new.iter().map(|s| s.to_string()).collect();
        ed.edit_list("pci", &changes, &texts);
    }
    for ((key, _), want) in DEFAULT_KEYS.iter().zip(req.defaults) {
        let Some(want) = want else { continue };
        let now = match cfg.long(key) {
            Some(Ok(v)) => Some(PciDefaults::flag_from_long(v)),
            _ => None,
        };
        // Unreadable values (a list, `+=`, junk) read as "not set" to xl.
        if now != Some(want) {
            let value = if want { "1" } else { "0" };
            ed.set_scalar(key, value);
            actions.push(Action::Set {
                key,
                value: value.into(),
            });
        }
    }
    if let Some(pt) = req.passthrough {
        let now = match cfg.value("passthrough") {
            Some(Value::String(s)) => Some(String::from_utf8_lossy(&s).to_ascii_lowercase()),
            _ => None,
        };
        if now.as_deref() != Some(pt.as_str()) {
            let value = format!("\"{}\"", pt.as_str());
            ed.set_scalar("passthrough", &value);
            actions.push(Action::Set {
                key: "passthrough",
                value,
            });
        }
    }
    let after = if actions.is_empty() {
        cfg.source().to_vec()
    } else {
        ed.finish()
    };
    let devices = verify(&after, &current, &changes, &new)?;
    let mut all_warnings = current.warnings;
    all_warnings.extend(warnings);
    Ok(Plan {
        after,
        actions,
        devices,
        warnings: all_warnings,
    })
}

/// Reads `after` back and checks that its pci list is the planned one.
fn verify(
    after: &[u8],
    current: &PciConfig,
    changes: &[ItemChange],
    new: &[PciSpec],
) -> Result<Vec<PciSpec>, DomCfgError> {
    let mut expected: Vec<PciSpec> = Vec::new();
    for ((_, spec), change) in current.entries.iter().zip(changes) {
        match change {
            ItemChange::Keep => expected.push(spec.clone()),
            ItemChange::Remove => {}
            ItemChange::Replace(text) => expected
                .push(PciSpec::parse_xl(text).map_err(|e| DomCfgError::Verify(e.to_string()))?),
        }
    }
    expected.extend(new.iter().cloned());
    let cfg = XlConfig::parse(after).map_err(|e| DomCfgError::Verify(e.to_string()))?;
    let got = PciConfig::read(&cfg, Path::new("edited config"))
        .map_err(|e| DomCfgError::Verify(e.to_string()))?
        .devices();
    if got != expected {
        return Err(DomCfgError::Verify(format!(
            "expected {} entries, read {}",
            expected.len(),
            got.len()
        )));
    }
    Ok(got)
}

/// How [`write()`] puts the new file in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSpec<'a> {
    /// Keep a timestamped copy of the old file first.
    pub backup: bool,
    /// A command with `%s`, run on the new file before it replaces the old.
    pub validate: Option<&'a str>,
}

/// What [`write()`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The backup made, if any.
    pub backup_file: Option<PathBuf>,
    /// The `validate` command's run, if any.
    pub validated: Option<CommandOutput>,
}

/// Writes `after` over `target` (already resolved): backup, temporary file
/// beside it, `validate` on that file, atomic rename. The caller holds the
/// [`FileLock`] of `target`, taken before the file was read, so the file
/// still holds what the plan was made from.
pub fn write(
    target: &Path,
    existed: bool,
    after: &[u8],
    how: &WriteSpec<'_>,
    _lock: &FileLock,
) -> Result<Written, DomCfgError> {
    let mut done = Written::default();
    let tmp = TempFile::create_beside(target, after, &WriteOptions::default())?;
    if let Some(cmd) = how.validate {
        done.validated = Some(fileio::run_validate(cmd, tmp.path())?);
    }
    if how.backup && existed {
        done.backup_file = Some(fileio::backup(target)?);
    }
    tmp.persist()?;
    Ok(done)
}

impl From<DomCfgError> for crate::protocol::Failure {
    fn from(e: DomCfgError) -> Self {
        let f = crate::protocol::Failure::msg(e.to_string());
        match e {
            DomCfgError::Validate(ValidateError::Failed { output }) => f
                .with("cmd", output.command_line())
                .with("rc", output.rc)
                .with("stdout", &output.stdout)
                .with("stderr", &output.stderr),
            _ => f,
        }
    }
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

/// Edits the config at `path` as `req` asks: resolve symlinks, lock (so
/// concurrent runs serialise from read to write), read, plan (on `host`'s
/// devices), write.
pub fn edit_file(
    path: &Path,
    req: &PciRequest,
    how: &EditSpec<'_>,
    host: &HostDevices<'_>,
) -> Result<FileEdit, DomCfgError> {
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
    let mut actions: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    let mut written = Written::default();
    if plan.changed() {
        if how.write.backup && existed {
            actions.push(format!("back up {}", target.display()));
        }
        actions.push(format!("write {}", target.display()));
        if let Some(lock) = &lock {
            written = write(&target, existed, &plan.after, &how.write, lock)?;
        }
    }
    Ok(FileEdit {
        target,
        before,
        plan,
        actions,
        written,
    })
}

impl FileEdit {
    /// The before/after pair of the file, for diff mode.
    pub fn diff(&self) -> crate::protocol::Diff {
        let header = self.target.display().to_string();
        crate::protocol::Diff {
            before_header: header.clone(),
            after_header: header,
            before: String::from_utf8_lossy(&self.before).into_owned(),
            after: String::from_utf8_lossy(&self.plan.after).into_owned(),
        }
    }
}
