//! passthrough: a whole host's PCI pass-through, which guest holds which
//! device, in one task.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::args::bool_lenient;
use crate::attach::{self, GuestDevice};
use crate::bdf::Bdf;
use crate::domcfg::{ConfigResult, EditedFile, FileEdit, PreparedEdit, WriteSpec};
use crate::host;
use crate::passthrough::{self, GuestRequest, Plan, Request, Unlisted};
use crate::protocol::{Diff, Failure, Mode, Module, Outcome};
use crate::select::{self, DeviceArg, Selected};
use crate::spec::SpecArg;

/// State a host's whole PCI pass-through in one task: which guest holds
/// which device.
///
/// One plan over the host, in the order it needs: the dom0 guard on every
/// listed device first; devices made assignable (bound to xen-pciback, as
/// pci_assignable does); devices detached from guests that should no longer
/// hold them (so a device moves from one guest to another in one run);
/// devices attached to the running guests that lack them (as pci_attach
/// does); each guest's config file given exactly its devices (as
/// domain_pci_config with `state: exact` does); and, with `unlisted:
/// give_back`, devices on pciback that no guest lists given back to their
/// dom0 drivers. A guest that is not running gets its config only (its
/// devices are still made assignable, so that `xl create` can take them).
///
/// Check mode returns the whole plan, every step of it: a step planned here
/// knows what the steps before it do (an attach knows its device will be
/// assignable), so the preview is the run. Diff mode shows each guest's
/// devices, each driver change, each config file and, with `persistent`,
/// the boot files.
///
/// All or nothing: when a step fails, the steps already done are undone,
/// last first (an attach detached, a detach attached again at its slot, a
/// config given back its old bytes, a device given back to its driver, the
/// boot files put back), and the failure lists what was done, what was
/// undone (`undone`) and anything that could not be (`not_undone`).
/// Idempotent; `XENPCI_HOST=FILE` runs it against a simulated dom0.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// The guests, by name, each with the devices it should hold; a guest
    /// holds exactly these after the run. A device may be listed for one
    /// guest only. Guests not named here keep what they hold, unless a
    /// listed guest is given one of their devices.
    guests: BTreeMap<String, GuestArgs>,
    /// Also keep the listed devices on pciback across reboots, as
    /// pci_assignable's `persistent` does; with `unlisted: give_back`, the
    /// devices given back are no longer hidden at boot.
    #[serde(default, deserialize_with = "bool_lenient")]
    persistent: bool,
    /// `keep`: devices on pciback that no guest lists stay as they are.
    /// `give_back`: they are detached from the guests named here and given
    /// back to their dom0 drivers (a device a guest not named here holds
    /// stays with it).
    #[serde(default)]
    unlisted: Unlisted,
    /// Take devices even when the dom0 guard refuses them, and detach with
    /// `xl pci-detach -f`.
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
    /// Keep a timestamped copy of each config file that changes.
    #[serde(default, deserialize_with = "bool_lenient")]
    backup: bool,
}

/// One guest's desired state.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestArgs {
    /// The devices it holds: PCI_SPEC_STRINGs as in xl.cfg(5)
    /// (`07:00.0`, `07:00.0@8,permissive=1`, `name=gpu`), or objects with
    /// the fields `bdf`, `vslot`, `permissive`, `msitranslate`, `seize`,
    /// `power_mgmt`, `rdm_policy`, `name`. An empty list takes every device
    /// from it. Devices may also be chosen by what they are: `{select:
    /// {vendor, device, subsystem_vendor, subsystem_device, class, driver,
    /// netdev, vf_of}, count: N}` with spec options beside `select`; with
    /// `count`, devices the guest holds or its config lists come first,
    /// and a device another guest names is never picked.
    #[serde(default)]
    devices: Vec<DeviceArg<SpecArg>>,
    /// Its xl config file, whose `pci` list becomes exactly these devices.
    /// Without it only the running guest changes; a guest that is not
    /// running needs it.
    #[serde(default)]
    config: Option<PathBuf>,
}

/// One guest in the result.
#[derive(Debug, Serialize, JsonSchema)]
struct GuestResult {
    /// Its name.
    name: String,
    /// Its domid, when it runs.
    domid: Option<u32>,
    /// What it held before the run.
    devices_before: Vec<GuestDevice>,
    /// What it holds after the run (in check mode: as before).
    devices_after: Vec<GuestDevice>,
    /// Its config file, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<ConfigResult>,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
    /// Each guest of the request, by name.
    guests: Vec<GuestResult>,
    /// The devices given back to dom0 (`unlisted: give_back`).
    given_back: Vec<Bdf>,
    /// Where, before the run, running guests and their configs disagreed
    /// with each other or with the request: one sentence each.
    drift: Vec<String>,
    /// With `persistent`: whether some device's state at the next boot
    /// differs from its state now.
    #[serde(skip_serializing_if = "Option::is_none")]
    reboot_required: Option<bool>,
    /// With `persistent`: why, one sentence per device.
    #[serde(skip_serializing_if = "Option::is_none")]
    reboot_reasons: Option<Vec<String>>,
    /// After a failure: the steps that undid what the run had done, last
    /// first (also in `actions`, as `undo: STEP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    undone: Option<Vec<String>>,
    /// After a failure: what could not be undone, one sentence each; empty
    /// when the host is as it was before the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_undone: Option<Vec<String>>,
    /// With selections: each guest's, and the devices each chose.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    selected: BTreeMap<String, Vec<Selected>>,
}

/// The module.
pub struct Passthrough;

impl Module for Passthrough {
    const NAME: &'static str = "passthrough";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/passthrough.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/passthrough.result.json");
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        check_given(&args)?;
        let mut host = host::open()?;
        if !mode.check {
            host.lock_for_changes()?;
        }
        let (req, selected) = request(args, mode, host.as_mut())?;
        let plan = passthrough::plan(host.as_mut(), &req)?;
        let write = WriteSpec {
            backup: req.backup,
            validate: None,
        };
        let changed = plan.changed();
        let mut diff = diffs(&plan, mode.check);
        let summary = Summary::of(&plan);
        let facts = Facts {
            guests: Vec::new(),
            given_back: plan
                .give_back
                .iter()
                .flat_map(|p| p.devices.iter().map(|d| d.bdf))
                .collect(),
            drift: plan.drift.clone(),
            reboot_required: plan.assign.as_ref().and_then(|p| p.reboot_required()),
            reboot_reasons: plan
                .assign
                .as_ref()
                .and_then(|p| p.boot.reboot_reasons.clone()),
            undone: None,
            not_undone: None,
            selected,
        };
        let mut warnings = plan.warnings.clone();
        let befores: Vec<_> = plan
            .guests
            .iter()
            .map(|g| (g.domain.clone(), g.before.clone()))
            .collect();
        let (actions, edits): (Vec<String>, Vec<Option<ConfigResult>>) = if mode.check || !changed {
            let actions = plan.actions(&write);
            let edits = plan
                .guests
                .iter()
                .map(|g| g.config.as_ref().map(planned_file))
                .collect();
            (actions, edits)
        } else {
            let applied =
                host::apply_and_commit(host.as_mut(), |h| passthrough::apply(h, plan, &write))?;
            warnings.extend(applied.warnings);
            let edits = applied
                .edits
                .iter()
                .map(|e| e.as_ref().map(FileEdit::config_result))
                .collect();
            (applied.actions, edits)
        };
        let ran = !mode.check && changed;
        let mut guests = Vec::new();
        for ((name, (domain, before)), edit) in summary.names.iter().zip(befores).zip(edits) {
            let after = match (&domain, ran) {
                (Some(d), true) => attach::guest_devices(host.as_mut(), d)
                    .map_err(|e| Failure::from(e).after(&actions))?,
                _ => before.clone(),
            };
            guests.push(GuestResult {
                name: name.clone(),
                domid: domain.map(|d| d.domid),
                devices_before: before,
                devices_after: after,
                config: edit,
            });
        }
        if !mode.diff {
            diff.clear();
        }
        Ok(Outcome {
            changed,
            msg: summary.msg(changed),
            actions,
            diff,
            warnings,
            facts: Facts { guests, ..facts },
        })
    }
}

/// Every guest's name and given specs, checked before the host is opened.
fn check_given(args: &Args) -> Result<(), Failure> {
    if args.guests.is_empty() {
        return Err(Failure::msg("guests is empty: name at least one guest"));
    }
    for (name, g) in &args.guests {
        attach::check_domain(name)?;
        select::check_given_specs(&g.devices, true)
            .map_err(|e| Failure::msg(format!("guests.{name}.{e}")))?;
    }
    Ok(())
}

fn request(
    args: Args,
    mode: &Mode,
    host: &mut dyn host::Host,
) -> Result<(Request, BTreeMap<String, Vec<Selected>>), Failure> {
    // A count never picks a device another guest names.
    let mut taken: BTreeSet<Bdf> = args
        .guests
        .values()
        .flat_map(|g| &g.devices)
        .filter_map(|d| match d {
            DeviceArg::Given(s) => select::spec_bdf(s),
            DeviceArg::Select(_) => None,
        })
        .collect();
    let mut guests = Vec::new();
    let mut selected = BTreeMap::new();
    for (name, g) in args.guests {
        let here = |e: String| Failure::msg(format!("guests.{name}.{e}"));
        let in_place = if select::any_selection(&g.devices) {
            in_place(host, &name, g.config.as_deref())?
        } else {
            Vec::new()
        };
        let resolved =
            select::resolve_specs(host, &g.devices, &|d| in_place.contains(&d.bdf), &taken)
                .map_err(|e| match e {
                    select::SelectError::Host(h) => Failure::from(h),
                    e => here(format!("devices{e}")),
                })?;
        let devices = resolved.specs(true).map_err(|e| here(e.to_string()))?;
        for s in &resolved.selected {
            taken.extend(&s.devices);
        }
        if !resolved.selected.is_empty() {
            selected.insert(name.clone(), resolved.selected);
        }
        guests.push(GuestRequest {
            name,
            devices,
            config: g.config,
        });
    }
    let req = Request {
        guests,
        persistent: args.persistent,
        unlisted: args.unlisted,
        force: args.force,
        check: mode.check,
        backup: args.backup,
    };
    Ok((req, selected))
}

/// The devices already where the request puts them: held by the guest if
/// it runs, listed in its config.
fn in_place(
    host: &mut dyn host::Host,
    name: &str,
    config: Option<&std::path::Path>,
) -> Result<Vec<Bdf>, Failure> {
    let mut out = Vec::new();
    if let Some(d) = host.domains()?.into_iter().find(|d| d.name == name) {
        out.extend(attach::guest_devices(host, &d)?.iter().map(|g| g.bdf));
    }
    if let Some(path) = config {
        let listed = std::fs::read(path)
            .ok()
            .and_then(|b| crate::domcfg::config_bdfs(&b, path));
        out.extend(listed.unwrap_or_default());
    }
    Ok(out)
}

/// A planned edit as the result reports it (check mode, or no change).
fn planned_file(c: &PreparedEdit) -> ConfigResult {
    ConfigResult {
        file: EditedFile {
            path: c.target.display().to_string(),
            devices: c.plan.devices.iter().map(|d| d.to_string()).collect(),
            backup_file: None,
        },
        changed: c.plan.changed(),
    }
}

/// The counts the message is made of, taken before the plan runs.
struct Summary {
    names: Vec<String>,
    moves: usize,
    files: usize,
    given_back: usize,
}

impl Summary {
    fn of(plan: &Plan) -> Summary {
        Summary {
            names: plan.guests.iter().map(|g| g.name.clone()).collect(),
            moves: plan
                .detaches
                .iter()
                .chain(&plan.attaches)
                .map(|p| p.commands.len())
                .sum(),
            files: plan
                .guests
                .iter()
                .filter(|g| g.config.as_ref().is_some_and(|c| c.plan.changed()))
                .count(),
            given_back: plan.give_back.as_ref().map_or(0, |p| p.devices.len()),
        }
    }

    fn msg(&self, changed: bool) -> String {
        let n = self.names.len();
        if !changed {
            return format!("{n} guest(s) already hold exactly their devices");
        }
        format!(
            "{n} guest(s): {} hot-plug(s), {} config file(s) written, {} device(s) given back",
            self.moves, self.files, self.given_back
        )
    }
}

/// Diff mode: each guest's devices, the drivers that change, each config
/// file, and the boot files that change.
fn diffs(plan: &Plan, check: bool) -> Vec<Diff> {
    let mut out = Vec::new();
    let holdings = |after: bool| -> String {
        let mut lines = String::new();
        for g in &plan.guests {
            let devices: Vec<String> = if after {
                g.wanted.iter().map(|(b, _)| b.to_string()).collect()
            } else {
                g.before.iter().map(|d| d.bdf.to_string()).collect()
            };
            let running = if g.domain.is_some() {
                ""
            } else {
                " (not running: config only)"
            };
            let shown = if after && g.domain.is_none() {
                Vec::new()
            } else {
                devices
            };
            let shown = if shown.is_empty() {
                "(none)".to_string()
            } else {
                shown.join(" ")
            };
            lines.push_str(&format!("{}{running}: {shown}\n", g.name));
        }
        lines
    };
    out.push(Diff {
        before_header: "guests' PCI devices".into(),
        after_header: "guests' PCI devices".into(),
        before: holdings(false),
        after: holdings(true),
    });
    let mut drivers: BTreeMap<Bdf, (Option<String>, Option<String>)> = BTreeMap::new();
    for p in plan.assign.iter().chain(&plan.give_back) {
        for d in p.devices.iter().filter(|d| !d.steps.is_empty()) {
            let e = drivers
                .entry(d.bdf)
                .or_insert((d.driver_before.clone(), None));
            e.1 = d.driver_after.clone();
        }
    }
    if !drivers.is_empty() {
        let none = if check {
            "(no driver, or the kernel's choice)"
        } else {
            "(no driver)"
        };
        let side = |after: bool| -> String {
            drivers
                .iter()
                .map(|(b, (x, y))| {
                    let d = if after { y } else { x };
                    format!("{b} {}\n", d.as_deref().unwrap_or(none))
                })
                .collect()
        };
        out.push(Diff {
            before_header: "PCI drivers".into(),
            after_header: "PCI drivers".into(),
            before: side(false),
            after: side(true),
        });
    }
    for c in plan.guests.iter().filter_map(|g| g.config.as_ref()) {
        let path = c.target.display().to_string();
        out.push(Diff {
            before_header: path.clone(),
            after_header: path,
            before: String::from_utf8_lossy(&c.before).into_owned(),
            after: String::from_utf8_lossy(&c.plan.after).into_owned(),
        });
    }
    if let Some(p) = &plan.assign {
        out.extend(
            p.boot
                .files
                .iter()
                .filter(|f| f.before != f.after)
                .map(Diff::from),
        );
    }
    out
}
