//! The PCI settings of an xl domain config file: read them, plan a change,
//! write it safely.
//!
//! [`PciConfig::read`] takes an [`XlConfig`] and reads what `xl create`
//! would: the `pci` list as [`PciSpec`]s, the `pci_*` defaults and
//! `passthrough`, refusing a file whose pci settings xl would reject or
//! misread. [`plan`] turns a [`PciRequest`] into the new bytes and the
//! [`Action`]s that lead there, with layout-preserving splices, and checks
//! its own work by reading the result back. [`edit_file`] puts the new bytes in
//! place: lock, read, plan, temporary file, `validate` command, backup,
//! atomic rename; [`prepare`] and [`PreparedEdit::stage`] do the part of it
//! that may fail before anything changes, for callers that change something
//! else in between (pci_attach hot-plugs under the file's lock).
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

use crate::bdf::Bdf;
use crate::fileio::{FileError, ValidateError};
use crate::spec::{Device, PciDefaults, PciSpec, SpecError};
use crate::xlcfg::edit::{Editor, ItemChange};
use crate::xlcfg::{CfgError, Node, Value, XlConfig};

mod host_devices;
mod matching;
mod write;

pub use host_devices::HostDevices;
pub use write::{
    edit_file, prepare, ConfigResult, EditFailure, EditSpec, EditedFile, FileEdit, PreparedEdit,
    Staged, WriteSpec, Written,
};

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

/// Where a running guest and its config disagree: one sentence per device
/// it holds that the config does not list, and per device listed that it
/// does not hold.
pub fn config_drift(guest: &str, path: &Path, held: &[Bdf], listed: &[Bdf]) -> Vec<String> {
    let path = path.display();
    let mut out = Vec::new();
    for b in held.iter().filter(|b| !listed.contains(b)) {
        out.push(format!("{guest}: {b} is attached but not in {path}"));
    }
    for b in listed.iter().filter(|b| !held.contains(b)) {
        out.push(format!("{guest}: {b} is in {path} but not attached"));
    }
    out
}

/// The BDFs the pci list of a config file's bytes names (names and `*`
/// aside); `None` when xl would not read it.
pub fn config_bdfs(bytes: &[u8], path: &Path) -> Option<Vec<Bdf>> {
    let cfg = XlConfig::parse(bytes).ok()?;
    let pci = PciConfig::read(&cfg, path).ok()?;
    Some(
        pci.devices()
            .iter()
            .filter_map(|s| match &s.device {
                Device::Bdf(p) => p.bdf(),
                Device::Name(_) => None,
            })
            .collect(),
    )
}
