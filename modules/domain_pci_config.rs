//! domain_pci_config: the `pci` settings of an xl domain config file.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::args::{bool_lenient, opt_bool_lenient, OneOrMany};
use crate::domcfg::{self, EditSpec, EditedFile, ListState, Passthrough, PciRequest, WriteSpec};
use crate::fileio;
use crate::host::{self, PciDevice};
use crate::protocol::{Diff, Failure, Mode, Module, Outcome};
use crate::select::{self, DeviceArg, Selected};
use crate::spec::{PciSpec, SpecArg};

/// Edit the pci list of an xl domain config file.
///
/// Adds, updates or removes entries of the `pci = [ ... ]` list of an xl
/// domain config file (xl.cfg(5)), and sets the `pci_*` per-device defaults
/// and `passthrough`. The file is read with xl's own grammar: a file xl
/// would refuse, or whose pci entries xl cannot parse, is refused with the
/// line and the reason, and left untouched.
///
/// Only what must change changes: every byte outside the edited entries and
/// settings stays as it was, and an edited list keeps its layout (one line,
/// or one entry per line with its indentation, quotes and comments).
///
/// Idempotent: entries are compared as xl reads them (`07:00.0` is
/// `0000:07:00.0`; hex case and option order do not matter), on the host
/// functions they name: `name=NAME` is the device libxl knows by that
/// assignable name (read from the host when the file or request mixes
/// names and BDFs; where Xen does not run, names are compared as names,
/// with a warning), and `BB:DD.*` covers every function of the device. A
/// device asked in another form than the file's is rewritten in the form
/// asked, never listed twice; removing one function of a `BB:DD.*` entry
/// is refused, and so are two entries at one vslot. The file is
/// replaced atomically (temporary file, fsync, rename), keeping its owner
/// and mode, under a lock so that concurrent runs lose no update. A symlink
/// is followed and its target edited. Check mode and diff mode are
/// supported.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// Path of the domain config file, e.g. `/etc/xen/vm1.cfg`.
    path: PathBuf,
    /// The devices: PCI_SPEC_STRINGs as in xl.cfg(5) (`07:00.0`,
    /// `0000:07:00.0@8,permissive=1`, `name=gpu`), or objects with the
    /// fields `bdf`, `vslot`, `permissive`, `msitranslate`, `seize`,
    /// `power_mgmt`, `rdm_policy`, `name`. A single string is one device.
    /// Devices may also be chosen by what they are, on this host:
    /// `{select: {vendor, device, subsystem_vendor, subsystem_device,
    /// class, driver, netdev, vf_of}, count: N}` with spec options beside
    /// `select`; with `count`, devices the file lists already come first.
    #[serde(default)]
    devices: OneOrMany<DeviceArg<SpecArg>>,
    /// `present`: each device is listed, with exactly the options given
    /// (an entry with other options is rewritten). `absent`: no entry for
    /// these devices remains. `exact`: the list holds exactly these devices.
    #[serde(default)]
    state: ListState,
    /// Set `pci_permissive` (the default for entries without `permissive=`).
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    permissive: Option<bool>,
    /// Set `pci_msitranslate`.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    msitranslate: Option<bool>,
    /// Set `pci_seize`.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    seize: Option<bool>,
    /// Set `pci_power_mgmt`.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    power_mgmt: Option<bool>,
    /// Set xl's `passthrough`. A guest created without a pci list needs
    /// `enabled` to take hot-plugged devices later; it takes effect when the
    /// guest is next created.
    #[serde(default)]
    passthrough: Option<Passthrough>,
    /// Keep a timestamped copy of the old file (`FILE.PID.DATE@TIME~`).
    #[serde(default, deserialize_with = "bool_lenient")]
    backup: bool,
    /// A command run on the new file before it replaces the old one; `%s`
    /// stands for the file. A non-zero exit leaves the old file in place,
    /// e.g. `xl create -n %s`.
    #[serde(default)]
    validate: Option<String>,
    /// Create the file when it does not exist (otherwise that is an error).
    #[serde(default, deserialize_with = "bool_lenient")]
    create: bool,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
    /// The file and its pci list.
    #[serde(flatten)]
    file: EditedFile,
    /// With selections in `devices`: each one and the devices it chose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    selected: Vec<Selected>,
}

/// The module.
pub struct DomainPciConfig;

impl Module for DomainPciConfig {
    const NAME: &'static str = "domain_pci_config";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/domain_pci_config.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/domain_pci_config.result.json");
    const ALIASES: &'static [(&'static str, &'static str)] = &[("dest", "path")];
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        let devices = args.devices.clone().into_vec();
        let adding = args.state != ListState::Absent;
        select::check_given_specs(&devices, adding)?;
        if let Some(v) = &args.validate {
            fileio::check_template(v)?;
        }
        // Selections need the host (a name or a wildcard might too: the
        // same host serves both).
        let opened = match select::any_selection(&devices) {
            true => Some(host::open()?),
            false => None,
        };
        let resolved = match &opened {
            Some(h) => {
                let listed = std::fs::read(&args.path)
                    .ok()
                    .and_then(|b| domcfg::config_bdfs(&b, &args.path))
                    .unwrap_or_default();
                let in_place = |d: &PciDevice| listed.contains(&d.bdf) == adding;
                select::resolve_specs(h.as_ref(), &devices, &in_place, &Default::default())?
            }
            None => select::given_only(&devices),
        };
        let req = request(&args, resolved.specs(adding)?);
        let how = EditSpec {
            create: args.create,
            check: mode.check,
            write: WriteSpec {
                backup: args.backup,
                validate: args.validate.as_deref(),
            },
        };
        // Opened only if the plan must know what a `name=` entry is or which
        // functions a device has; a file edited where no Xen runs still is.
        // A failed write says what it had done (a backup, or the new file
        // in place when only the folder's flush failed).
        let host = match &opened {
            Some(h) => domcfg::HostDevices::of(h.as_ref()),
            None => domcfg::HostDevices::open(),
        };
        let edit = domcfg::edit_file(&args.path, &req, &how, &host)?;
        let mut warnings = edit.plan.warnings.clone();
        if args.state == ListState::Absent && req.devices.iter().any(has_options) {
            warnings.push("options of devices are ignored with state=absent".into());
        }
        Ok(Outcome {
            changed: edit.plan.changed(),
            msg: summary(&edit.plan),
            diff: vec![Diff::from(&edit)],
            warnings,
            facts: Facts {
                file: edit.edited_file(),
                selected: resolved.selected,
            },
            actions: edit.actions,
        })
    }
}

/// The checked request: the specs and the settings.
fn request(args: &Args, devices: Vec<PciSpec>) -> PciRequest {
    PciRequest {
        devices,
        state: args.state,
        defaults: [
            args.permissive,
            args.msitranslate,
            args.seize,
            args.power_mgmt,
        ],
        passthrough: args.passthrough,
    }
}

fn has_options(s: &PciSpec) -> bool {
    *s != PciSpec::new(s.key().clone())
}

fn summary(plan: &domcfg::Plan) -> String {
    if !plan.changed() {
        return "pci settings already as requested".into();
    }
    let count = |f: fn(&domcfg::Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    let parts = [
        (count(|a| matches!(a, domcfg::Action::Add(_))), "added"),
        (
            count(|a| matches!(a, domcfg::Action::Update { .. })),
            "updated",
        ),
        (count(|a| matches!(a, domcfg::Action::Remove(_))), "removed"),
        (
            count(|a| matches!(a, domcfg::Action::Set { .. })),
            "setting(s) written",
        ),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| {
            if w.starts_with("setting") {
                format!("{n} {w}")
            } else {
                format!("{n} entr{} {w}", if *n == 1 { "y" } else { "ies" })
            }
        })
        .collect();
    words.join(", ")
}
