//! pci_attach: hot-plug PCI devices into a running Xen guest, or out.

use std::path::PathBuf;
use std::process::ExitCode;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use xenpci::args::{bool_lenient, OneOrMany};
use xenpci::attach::{self, AttachError, AttachRequest, AttachState, GuestDevice};
use xenpci::domcfg::{self, EditSpec, ListState, PciRequest, WriteSpec};
use xenpci::host;
use xenpci::protocol::{self, Failure, Mode, Module, Outcome};
use xenpci::spec::{PciSpec, SpecArg};

/// Hot-plug PCI devices into a running Xen guest, or out of it.
///
/// Reads what the guest holds (`xl pci-list`) and attaches only what is
/// missing (`xl pci-attach`), or detaches only what is there
/// (`xl pci-detach`). A device must be assignable first (see
/// pci_assignable), unless its spec sets `seize=1`. A guest created without
/// a pci list needs `passthrough = "enabled"` in its config (see
/// domain_pci_config) to take hot-plugged devices: such a guest, or a host
/// without an IOMMU, is refused before xl runs, in check mode too.
/// With `config`, the same change is written into the guest's config file,
/// so that it survives a restart of the guest. An attached device whose
/// options differ from the request is reported in `warnings`, not
/// re-attached. Check mode and diff mode (of `config`) are supported;
/// `XENPCI_HOST=FILE` runs against a simulated dom0.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct Args {
    /// The guest: its name or its domid.
    domain: String,
    /// The devices: PCI_SPEC_STRINGs as in xl.cfg(5) (`07:00.0`,
    /// `07:00.0@8,permissive=1`, `name=gpu`), or objects with the fields
    /// `bdf`, `vslot`, `permissive`, `msitranslate`, `seize`, `power_mgmt`,
    /// `rdm_policy`, `name`. A single string is one device.
    devices: OneOrMany<SpecArg>,
    /// `present`: attached to the guest. `absent`: not attached.
    #[serde(default)]
    state: AttachState,
    /// Detach with `xl pci-detach -f`, without the guest's cooperation.
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
    /// Also apply the change to this domain config file (as
    /// domain_pci_config with the same devices and state would), so the
    /// guest keeps the devices when it is next created.
    #[serde(default)]
    config: Option<PathBuf>,
    /// With `config`: keep a timestamped copy of the old file.
    #[serde(default, deserialize_with = "bool_lenient")]
    backup: bool,
}

/// The config file part of the result.
#[derive(Debug, Serialize, JsonSchema)]
struct ConfigResult {
    /// The file edited.
    path: String,
    /// Its pci list after the run.
    devices: Vec<String>,
    /// Whether the file changed (or would, in check mode).
    changed: bool,
    /// The backup made, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_file: Option<String>,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Facts {
    /// The guest's name.
    domain: String,
    /// The guest's domid.
    domid: u32,
    /// What the guest held before the run (`xl pci-list`).
    devices_before: Vec<GuestDevice>,
    /// What it holds after the run (in check mode: as before).
    devices_after: Vec<GuestDevice>,
    /// The xl commands run (in check mode: that would run).
    commands: Vec<String>,
    /// The config file's part, with `config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<ConfigResult>,
}

// `pub(crate)`, with `Args` and `Facts`: tests/schemas.rs includes this file
// to generate `schemas/` from the types.
pub(crate) struct PciAttach;

impl Module for PciAttach {
    const NAME: &'static str = "pci_attach";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/pci_attach.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/pci_attach.result.json");
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        let req = request(&args, mode)?;
        let mut host = host::open().map_err(AttachError::from)?;
        if !mode.check {
            host.lock_for_changes().map_err(AttachError::from)?;
        }
        // A config file that cannot be edited fails the run before the
        // guest is touched, so that the two never disagree by our doing.
        if let Some(path) = &args.config {
            edit_config(
                path,
                &req,
                &args,
                &Mode {
                    check: true,
                    ..*mode
                },
            )?;
        }
        let plan = attach::plan(host.as_mut(), &req)?;
        let planned: Vec<String> = plan
            .commands
            .iter()
            .map(|c| format!("xl {}", c.join(" ")))
            .collect();
        let (commands, after) = if mode.check || plan.commands.is_empty() {
            (planned, plan.before.clone())
        } else {
            let done = host::apply_and_commit(host.as_mut(), |h| attach::apply(h, &plan))?;
            let after = attach::guest_devices(host.as_mut(), &plan.domain)?;
            (done, after)
        };
        let mut actions = commands.clone();
        let mut diff = Vec::new();
        let config = match &args.config {
            None => None,
            Some(path) => {
                let edit = edit_config(path, &req, &args, mode)?;
                actions.extend(edit.actions.iter().cloned());
                diff.push(edit.diff());
                Some(ConfigResult {
                    path: edit.target.display().to_string(),
                    devices: edit.plan.devices.iter().map(|d| d.to_string()).collect(),
                    changed: edit.plan.changed(),
                    backup_file: edit.written.backup_file.map(|p| p.display().to_string()),
                })
            }
        };
        let changed = !commands.is_empty() || config.as_ref().is_some_and(|c| c.changed);
        Ok(Outcome {
            changed,
            msg: summary(&plan, args.state, config.as_ref()),
            actions,
            diff,
            warnings: plan.warnings.clone(),
            facts: Facts {
                domain: plan.domain.name.clone(),
                domid: plan.domain.domid,
                devices_before: plan.before.clone(),
                devices_after: after,
                commands,
                config,
            },
        })
    }
}

/// The checked request: domain and specs checked before the host is read.
fn request(args: &Args, mode: &Mode) -> Result<AttachRequest, Failure> {
    attach::check_domain(&args.domain)?;
    let mut devices: Vec<PciSpec> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, arg) in args.devices.clone().into_vec().iter().enumerate() {
        let spec = arg
            .to_spec()
            .map_err(|e| Failure::msg(format!("devices[{i}]: {e}")))?;
        if !seen.insert(spec.key().clone()) {
            return Err(Failure::msg(format!(
                "devices[{i}]: {} is given twice",
                spec.key()
            )));
        }
        devices.push(spec);
    }
    Ok(AttachRequest {
        domain: args.domain.clone(),
        devices,
        state: args.state,
        force: args.force,
        check: mode.check,
    })
}

fn edit_config(
    path: &std::path::Path,
    req: &AttachRequest,
    args: &Args,
    mode: &Mode,
) -> Result<domcfg::FileEdit, Failure> {
    let state = match req.state {
        AttachState::Present => ListState::Present,
        AttachState::Absent => ListState::Absent,
    };
    let cfg_req = PciRequest {
        devices: req.devices.clone(),
        state,
        ..PciRequest::default()
    };
    let how = EditSpec {
        create: false,
        check: mode.check,
        write: WriteSpec {
            backup: args.backup,
            validate: None,
        },
    };
    Ok(domcfg::edit_file(path, &cfg_req, &how)?)
}

fn summary(plan: &attach::Plan, state: AttachState, config: Option<&ConfigResult>) -> String {
    let n = plan.commands.len();
    let mut msg = match (n, state) {
        (0, AttachState::Present) => format!("{} already holds the devices", plan.domain.name),
        (0, AttachState::Absent) => format!("{} holds none of the devices", plan.domain.name),
        (n, AttachState::Present) => format!("{n} device(s) attached to {}", plan.domain.name),
        (n, AttachState::Absent) => format!("{n} device(s) detached from {}", plan.domain.name),
    };
    if let Some(c) = config.filter(|c| c.changed) {
        msg.push_str(&format!("; {} updated", c.path));
    }
    msg
}

fn main() -> ExitCode {
    protocol::main::<PciAttach>()
}
