//! pci_attach: hot-plug PCI devices into a running Xen guest, or out.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::{bool_lenient, OneOrMany};
use crate::attach::{self, AttachRequest, AttachState, GuestDevice};
use crate::bdf::Bdf;
use crate::domcfg::{self, ConfigResult, EditSpec, ListState, PciRequest, WriteSpec};
use crate::host;
use crate::protocol::{Diff, Failure, Mode, Module, Outcome};
use crate::select::{self, DeviceArg, Selected};
use crate::spec::{Device, PciSpec, SpecArg};

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
/// so that it survives a restart of the guest: the file is locked, read and
/// its edit staged before the guest is touched (a file that cannot be
/// edited fails the run with nothing changed), and written under the same
/// lock after the hot-plug, with the devices the guest took if a hot-plug
/// failed half-way. A failure after a change reports `changed: true` and
/// what was done. An attached device whose
/// options differ from the request is reported in `warnings`, not
/// re-attached. Check mode and diff mode (of `config`) are supported;
/// `XENPCI_HOST=FILE` runs against a simulated dom0.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// The guest: its name or its domid.
    domain: String,
    /// The devices: PCI_SPEC_STRINGs as in xl.cfg(5) (`07:00.0`,
    /// `07:00.0@8,permissive=1`, `name=gpu`), or objects with the fields
    /// `bdf`, `vslot`, `permissive`, `msitranslate`, `seize`, `power_mgmt`,
    /// `rdm_policy`, `name`. A single string is one device. Devices may
    /// also be chosen by what they are: `{select: {vendor, device,
    /// subsystem_vendor, subsystem_device, class, driver, netdev, vf_of},
    /// count: N}` with spec options beside `select` (`permissive`, ...);
    /// with `count`, those the guest already holds come first.
    devices: OneOrMany<DeviceArg<SpecArg>>,
    /// `present`: attached to the guest. `absent`: not attached.
    #[serde(default)]
    state: AttachState,
    /// Detach with `xl pci-detach -f`, without the guest's cooperation.
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
    /// Also apply the change to this domain config file (as
    /// domain_pci_config with the same devices and state would), so the
    /// guest keeps the devices when it is next created. An entry naming
    /// the same device in another form (`name=` or BDF) is rewritten in
    /// the form given here, or removed with `state: absent`.
    #[serde(default)]
    config: Option<PathBuf>,
    /// With `config`: keep a timestamped copy of the old file.
    #[serde(default, deserialize_with = "bool_lenient")]
    backup: bool,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
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
    /// With selections in `devices`: each one and the devices it chose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    selected: Vec<Selected>,
}

/// The module.
pub struct PciAttach;

impl Module for PciAttach {
    const NAME: &'static str = "pci_attach";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/pci_attach.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/pci_attach.result.json");
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        let devices = args.devices.clone().into_vec();
        attach::check_domain(&args.domain)?;
        select::check_given_specs(&devices, args.state == AttachState::Present)?;
        let mut host = host::open()?;
        if !mode.check {
            host.lock_for_changes()?;
        }
        let (req, selected) = request(&args, &devices, mode, host.as_mut())?;
        // The config's lock is taken before anything is planned and held to
        // its write, and the new file is staged before the guest is touched:
        // a file that cannot be edited stops the run while neither the guest
        // nor the file has changed.
        let config = match &args.config {
            Some(path) => Some(prepare_config(path, &req, mode, host.as_ref())?),
            None => None,
        };
        let plan = attach::plan(host.as_mut(), &req)?;
        let write = WriteSpec {
            backup: args.backup,
            validate: None,
        };
        let staged = match &config {
            Some(c) => c.stage(&write)?,
            None => None,
        };
        let commands = if mode.check || plan.commands.is_empty() {
            plan.commands
                .iter()
                .map(|c| format!("xl {}", c.join(" ")))
                .collect()
        } else {
            match host::apply_and_commit(host.as_mut(), |h| attach::apply(h, &plan)) {
                Ok(done) => done,
                Err(e) => {
                    let file = config.map(|c| (c, &req));
                    return Err(hotplug_failed(e.into(), &plan, file, &write, host.as_mut()));
                }
            }
        };
        let ran = if mode.check { &[][..] } else { &commands[..] };
        let edit = match config {
            Some(c) => Some(finish_config(c, staged, &write, ran, &plan, host.as_mut())?),
            None => None,
        };
        let mut actions = commands.clone();
        let mut diff = Vec::new();
        let mut warnings = plan.warnings.clone();
        let config = edit.map(|edit| {
            actions.extend(edit.actions.iter().cloned());
            warnings.extend(edit.plan.warnings.iter().cloned());
            diff.push(Diff::from(&edit));
            edit.config_result()
        });
        let after = if ran.is_empty() {
            plan.before.clone()
        } else {
            attach::guest_devices(host.as_mut(), &plan.domain).map_err(|e| {
                let f = Failure::from(e).after(&actions);
                let file = config.as_ref().map(|c| json!(c));
                failed_after(f, ran, &plan, host.as_mut(), file)
            })?
        };
        let changed = !commands.is_empty() || config.as_ref().is_some_and(|c| c.changed);
        Ok(Outcome {
            changed,
            msg: summary(&plan, args.state, config.as_ref()),
            actions,
            diff,
            warnings,
            facts: Facts {
                domain: plan.domain.name.clone(),
                domid: plan.domain.domid,
                devices_before: plan.before.clone(),
                devices_after: after,
                commands,
                config,
                selected,
            },
        })
    }
}

/// Puts the staged config in place, once `ran` was run on the guest. The
/// hot-plug stays whatever happens here: the device is where it was asked
/// to go, a failed write leaves the file whole as it was, the result says
/// which of the two changed, and a rerun writes the file.
fn finish_config(
    edit: domcfg::PreparedEdit,
    staged: Option<domcfg::Staged>,
    write: &WriteSpec<'_>,
    ran: &[String],
    plan: &attach::Plan,
    host: &mut dyn host::Host,
) -> Result<domcfg::FileEdit, Failure> {
    let path = edit.target.display().to_string();
    edit.finish(staged, write).map_err(|e| {
        let file = json!({"path": path, "changed": e.replaced});
        let f = Failure::from(e).after(ran);
        failed_after(f, ran, plan, host, Some(file))
    })
}

/// The failure of a hot-plug, `f`, with the config file, if any, brought
/// to what the guest took: when some commands ran before the failure, the
/// file gets the devices whose commands all ran (and those the guest
/// already held as asked), planned again from the bytes read under the lock
/// still held, so that the file never lists a device the guest was not
/// given, nor misses one it was.
fn hotplug_failed(
    f: Failure,
    plan: &attach::Plan,
    config: Option<(domcfg::PreparedEdit, &AttachRequest)>,
    write: &WriteSpec<'_>,
    host: &mut dyn host::Host,
) -> Failure {
    let ran = f.actions.clone();
    let (mut f, mut file) = (f, None);
    if let (Some((mut edit, req)), false) = (config, ran.is_empty()) {
        let took = config_request(req, specs_done(req, plan, ran.len()));
        let path = edit.target.display().to_string();
        let written = edit
            .replan(&took, &domcfg::HostDevices::of(&*host))
            .and_then(|()| edit.stage(write))
            .map_err(Box::<domcfg::EditFailure>::from)
            .and_then(|staged| edit.finish(staged, write));
        match written {
            Ok(edit) => {
                f.actions.extend(edit.actions.iter().cloned());
                file = Some(json!(edit.config_result()));
            }
            Err(e) => {
                f.msg
                    .push_str(&format!("; {path} was not updated either: {}", e.error));
                f.actions.extend(e.done.iter().cloned());
                file = Some(json!({"path": path, "changed": e.replaced}));
            }
        }
    }
    failed_after(f, &ran, plan, host, file)
}

/// The request's specs whose xl commands all ran: the plan's first `ran`
/// commands did. A detach serves a spec by its BDF; a `name=` spec cannot
/// be told from a BDF here, so it counts as not done while any detach has
/// not run.
fn specs_done(req: &AttachRequest, plan: &attach::Plan, ran: usize) -> Vec<PciSpec> {
    let not_run = plan.commands.get(ran..).unwrap_or_default();
    let serves = |command: &Vec<String>, spec: &PciSpec| {
        let last = command.last().map(String::as_str);
        match (command.first().map(String::as_str), &spec.device) {
            (Some("pci-attach"), _) => last == Some(spec.to_string().as_str()),
            (_, Device::Bdf(p)) => p.bdf().map(|b| b.to_string()).as_deref() == last,
            (_, Device::Name(_)) => true,
        }
    };
    req.devices
        .iter()
        .filter(|s| !not_run.iter().any(|c| serves(c, s)))
        .cloned()
        .collect()
}

/// `f`, a failure after `ran` was run on the guest, with what is known of
/// the result's own keys: the guest, what it held before and holds now (as
/// far as `xl pci-list` still answers), the commands run and the config
/// file's part. Only a failure after a change carries them.
///
/// The guest keeps what it took before a failure (undoing a hot-plug needs
/// the guest's cooperation and may fail in turn): the result lists it, and
/// a rerun finishes the job.
fn failed_after(
    f: Failure,
    ran: &[String],
    plan: &attach::Plan,
    host: &mut dyn host::Host,
    config: Option<serde_json::Value>,
) -> Failure {
    if !f.changed {
        return f;
    }
    let mut f = f
        .with_known("domain", &plan.domain.name)
        .with_known("domid", plan.domain.domid)
        .with_known("devices_before", &plan.before)
        .with_known("commands", ran);
    if let Ok(now) = attach::guest_devices(host, &plan.domain) {
        f = f.with_known("devices_after", now);
    }
    match config {
        Some(c) => f.with_known("config", c),
        None => f,
    }
}

/// The checked request: domain and specs checked before the host is read.
fn request(
    args: &Args,
    devices: &[DeviceArg<SpecArg>],
    mode: &Mode,
    host: &mut dyn host::Host,
) -> Result<(AttachRequest, Vec<Selected>), Failure> {
    let adding = args.state == AttachState::Present;
    // With a count, the devices the guest holds are where an attach asks
    // them to be, and where a detach does not.
    let held: Vec<Bdf> = if select::any_selection(devices) {
        let domain = attach::find_domain(host, &args.domain)?;
        let held = attach::guest_devices(host, &domain)?;
        held.iter().map(|d| d.bdf).collect()
    } else {
        Vec::new()
    };
    let resolved = select::resolve_specs(
        host,
        devices,
        &|d| held.contains(&d.bdf) == adding,
        &Default::default(),
    )?;
    let req = AttachRequest {
        domain: args.domain.clone(),
        devices: resolved.specs(adding)?,
        state: args.state,
        force: args.force,
        check: mode.check,
        ready: Vec::new(),
    };
    Ok((req, resolved.selected))
}

/// Locks (not in check mode), reads and plans the config file's edit: the
/// same devices and state, as domain_pci_config would.
fn prepare_config(
    path: &std::path::Path,
    req: &AttachRequest,
    mode: &Mode,
    host: &dyn host::Host,
) -> Result<domcfg::PreparedEdit, Failure> {
    let cfg_req = config_request(req, req.devices.clone());
    let how = EditSpec {
        create: false,
        check: mode.check,
        ..EditSpec::default()
    };
    // The host says what a `name=` entry is and which functions a device
    // has, so that one device is one entry whatever form names it.
    let devices = domcfg::HostDevices::of(host);
    Ok(domcfg::prepare(path, &cfg_req, &how, &devices)?)
}

/// The config edit of `devices` in the request's state.
fn config_request(req: &AttachRequest, devices: Vec<PciSpec>) -> PciRequest {
    let state = match req.state {
        AttachState::Present => ListState::Present,
        AttachState::Absent => ListState::Absent,
    };
    PciRequest {
        devices,
        state,
        ..PciRequest::default()
    }
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
        msg.push_str(&format!("; {} updated", c.file.path));
    }
    msg
}
