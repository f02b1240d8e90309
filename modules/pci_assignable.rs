//! pci_assignable: bind PCI devices to pciback, or give them back to dom0.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::args::{bool_lenient, OneOrMany};
use crate::assignable::{
    self, AssignRequest, AssignState, AssignableDevice, Method, ResolvedMethod,
};
use crate::bdf::Bdf;
use crate::host;
use crate::protocol::{Diff, Failure, Mode, Module, Outcome};
use crate::select::{self, DeviceArg, Resolved, Resolver, Selected, Selection};
use crate::spec::{self, ListError};

/// Make PCI devices assignable to Xen guests, or give them back to dom0.
///
/// With `state: present`, each device is unbound from its dom0 driver and
/// bound to xen-pciback, as `xl pci-assignable-add` does; with `absent` it
/// leaves pciback and, with `rebind`, goes back to the driver it had, as
/// `xl pci-assignable-remove -r` does. The original driver is kept in this
/// module's own record on disk (so a reboot does not lose it), else taken
/// from libxl's xenstore record, else the kernel reprobes the device.
///
/// The dom0 guard refuses devices that dom0 itself uses, listing every
/// reason: a mounted, swapped-on or md/LVM-held disk on it, a network
/// interface on it that is up or carries addresses or routes, the boot VGA,
/// a bridge, an SR-IOV physical function with VFs enabled (unbinding its
/// driver deletes the VFs). `force: true` overrides it.
///
/// Everything is checked for every device before anything changes. If a
/// step fails, the device is put back where it was (a device xl had on
/// pciback goes back through xl, so quarantined again) and the run fails. Idempotent; check mode and diff mode are supported (the diff shows
/// the boot-time hide file). `XENPCI_HOST=FILE` runs it against a simulated
/// dom0 instead of this host.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// The devices, `[DDDD:]BB:DD.F`; `BB:DD.*` means every function the
    /// device has. A single string is one device. A device may also be
    /// chosen by what it is: `{select: {vendor, device, subsystem_vendor,
    /// subsystem_device, class, driver, netdev, vf_of}, count: N}` (the
    /// keys combine; without `count` every match, with it exactly N,
    /// preferring devices already in the requested state, so a rerun picks
    /// the same ones).
    devices: OneOrMany<DeviceArg<String>>,
    /// `present`: bound to pciback (assignable). `absent`: not bound to
    /// pciback.
    #[serde(default)]
    state: AssignState,
    /// With `absent`, bind each device to the driver it had before. Without
    /// it the device is left with no driver (a warning says so).
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    rebind: bool,
    /// Xen's assignable name for the device (`xl pci-assignable-add -n`),
    /// usable as `name=NAME` in pci specs. One device only; 1 to 64
    /// printable characters, without blanks or commas; not a name another
    /// device already has.
    #[serde(default)]
    name: Option<String>,
    /// Also keep the device on pciback across reboots, or, with `absent`,
    /// give it back to its driver at boot too. The module manages
    /// `/etc/modprobe.d/xenpci-pciback.conf` (`options xen-pciback
    /// hide=(BDF)...` and `softdep DRIVER pre: xen-pciback` for each hidden
    /// device's drivers, so that xen-pciback loads and takes the device
    /// before its driver does), `/etc/modules-load.d/xenpci-pciback.conf`
    /// (xen-pciback loads at boot), and, where initramfs-tools builds the
    /// initramfs, the hook `/etc/initramfs-tools/hooks/xenpci-pciback`
    /// (xen-pciback in the initramfs, for drivers loaded from there), and it
    /// runs `update-initramfs -u -k all` after every change of them. With no
    /// device left hidden, the files are removed. A device whose driver is
    /// built into the kernel cannot be kept from it: refused.
    #[serde(default, deserialize_with = "bool_lenient")]
    persistent: bool,
    /// Take devices even when the dom0 guard refuses them.
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
    /// `auto`: `xl` when the Xen toolstack runs, else `sysfs`. `xl`: through
    /// `xl pci-assignable-*` (the device is also quarantined and libxl's
    /// records stay right). `sysfs`: direct sysfs writes in libxl's order.
    #[serde(default)]
    method: Method,
}

fn yes() -> bool {
    true
}

/// What happened to one device.
#[derive(Debug, Serialize, JsonSchema)]
struct DeviceResult {
    /// The device.
    bdf: Bdf,
    /// Its driver before the run (`null`: none).
    driver_before: Option<String>,
    /// Its driver after the run (in check mode: the expected one).
    driver_after: Option<String>,
    /// Whether the run changed it.
    changed: bool,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
    /// Per device, in BDF order.
    devices: Vec<DeviceResult>,
    /// The assignable devices after the run, as `xl pci-assignable-list -n`
    /// shows them (in check mode: as they are now).
    assignable: Vec<AssignableDevice>,
    /// The method used (`auto` resolved).
    method: ResolvedMethod,
    /// With `persistent`: whether some device's state at the next boot
    /// differs from its state now.
    #[serde(skip_serializing_if = "Option::is_none")]
    reboot_required: Option<bool>,
    /// With `persistent`: why the next boot will leave devices other than
    /// they are now, one sentence per device (empty when
    /// `reboot_required` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    reboot_reasons: Option<Vec<String>>,
    /// With selections in `devices`: each one and the devices it chose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    selected: Vec<Selected>,
}

/// The module.
pub struct PciAssignable;

impl Module for PciAssignable {
    const NAME: &'static str = "pci_assignable";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/pci_assignable.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/pci_assignable.result.json");
    const ALIASES: &'static [(&'static str, &'static str)] = &[("bdf", "devices")];
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        let devices = args.devices.into_vec();
        given_patterns(&devices)?;
        let mut host = host::open()?;
        if !mode.check {
            host.lock_for_changes()?;
        }
        let present = args.state == AssignState::Present;
        let resolved = select::resolve(
            host.as_ref(),
            &devices,
            &Resolver {
                bdf_of: &|t: &String| t.parse().ok(),
                in_place: &|d| (d.driver.as_deref() == Some(host::PCIBACK)) == present,
                make: &|bdf, sel| bdf_only(bdf, sel),
                taken: &Default::default(),
                candidate: &|_| true,
            },
        )?;
        let selected = resolved.selected.clone();
        let req = request(
            &resolved,
            args.state,
            args.rebind,
            args.name,
            args.persistent,
            args.force,
            args.method,
        )?;
        let plan = assignable::plan(host.as_ref(), &req)?;
        let mut warnings = plan.warnings.clone();
        let (actions, drivers_after) = if mode.check || !plan.changed() {
            let steps = plan
                .devices
                .iter()
                .flat_map(|d| d.steps.iter().map(|s| s.to_string()));
            let hide = plan.boot.steps.iter().map(|s| s.to_string());
            let after = plan
                .devices
                .iter()
                .map(|d| (d.bdf, d.driver_after.clone()))
                .collect();
            (steps.chain(hide).collect(), after)
        } else {
            let done = host::apply_and_commit(host.as_mut(), |h| assignable::apply(h, &plan))
                .map_err(|f| {
                    let devices = devices_at_failure(&plan, f.devices_done, host.as_ref());
                    failed_after(Failure::from(f), &plan, devices, host.as_ref())
                })?;
            warnings.extend(done.warnings);
            (done.actions, done.drivers_after)
        };
        let devices: Vec<DeviceResult> = plan
            .devices
            .iter()
            .zip(drivers_after)
            .map(|(d, (_, after))| DeviceResult {
                bdf: d.bdf,
                driver_before: d.driver_before.clone(),
                changed: !d.steps.is_empty(),
                driver_after: after,
            })
            .collect();
        let ran = if mode.check { &[][..] } else { &actions[..] };
        let assignable = match assignable::assignable_list(host.as_ref()) {
            Ok(list) => list,
            Err(e) => {
                let f = Failure::from(e).after(ran);
                return Err(failed_after(f, &plan, devices, host.as_ref()));
            }
        };
        let changed_count = devices.iter().filter(|d| d.changed).count();
        let diff = diffs(&plan, &devices, mode.check);
        Ok(Outcome {
            changed: plan.changed(),
            msg: summary(
                changed_count,
                devices.len(),
                req.state,
                !plan.boot.steps.is_empty(),
            ),
            actions,
            diff,
            warnings,
            facts: Facts {
                devices,
                assignable,
                method: plan.method,
                reboot_required: plan.reboot_required(),
                reboot_reasons: plan.boot.reboot_reasons.clone(),
                selected,
            },
        })
    }
}

/// The diff: each device's driver before and after (in check mode, a device
/// the kernel will reprobe has no known driver yet), the modprobe.d file
/// always, the other boot files when they change.
fn diffs(plan: &assignable::Plan, devices: &[DeviceResult], check: bool) -> Vec<Diff> {
    let kernel_picks: Vec<Bdf> = plan
        .devices
        .iter()
        .filter(|d| {
            d.steps.iter().any(|s| {
                matches!(
                    s,
                    assignable::Step::Reprobe(_) | assignable::Step::Rebind(_, None)
                )
            })
        })
        .map(|d| d.bdf)
        .collect();
    let drivers = |after: bool| -> String {
        devices
            .iter()
            .map(|d| {
                let drv = if after {
                    &d.driver_after
                } else {
                    &d.driver_before
                };
                // In check mode, a device to be reprobed has no known driver yet.
                let none = if after && check && kernel_picks.contains(&d.bdf) {
                    "(no driver, or the kernel's choice)"
                } else {
                    "(no driver)"
                };
                format!("{} {}\n", d.bdf, drv.as_deref().unwrap_or(none))
            })
            .collect()
    };
    let mut diff = vec![Diff {
        before_header: "PCI drivers".into(),
        after_header: "PCI drivers".into(),
        before: drivers(false),
        after: drivers(true),
    }];
    // The modprobe.d file always, the other boot files when they change.
    for f in &plan.boot.files {
        if f.file == host::ManagedFile::ModprobeHide || f.before != f.after {
            diff.push(Diff::from(f));
        }
    }
    diff
}

/// `f`, a failure after the host changed, with what is known of the
/// result's own keys: the devices (see [`devices_at_failure`]), the method,
/// and the assignable list when the host still answers. A failure before
/// any change carries none of them.
fn failed_after(
    f: Failure,
    plan: &assignable::Plan,
    devices: Vec<DeviceResult>,
    host: &dyn host::Host,
) -> Failure {
    if !f.changed {
        return f;
    }
    let f = f
        .with_known("devices", devices)
        .with_known("method", plan.method);
    match assignable::assignable_list(host) {
        Ok(list) => f.with_known("assignable", list),
        Err(_) => f,
    }
}

/// Each device's result at a failure: the first `done` devices had every
/// step done (their driver as the host shows it, else as planned); the
/// others (the one that failed, rolled back or not, and those not reached)
/// as the host shows them, and left out when it cannot say.
fn devices_at_failure(
    plan: &assignable::Plan,
    done: usize,
    host: &dyn host::Host,
) -> Vec<DeviceResult> {
    let mut out = Vec::new();
    for (i, d) in plan.devices.iter().enumerate() {
        let now = host.pci_device(&d.bdf).ok().flatten().map(|p| p.driver);
        let (driver_after, changed) = match now {
            Some(now) if i < done => (now, !d.steps.is_empty()),
            None if i < done => (d.driver_after.clone(), !d.steps.is_empty()),
            Some(now) => {
                let changed = now != d.driver_before;
                (now, changed)
            }
            None => continue,
        };
        out.push(DeviceResult {
            bdf: d.bdf,
            driver_before: d.driver_before.clone(),
            driver_after,
            changed,
        });
    }
    out
}

/// The device texts given as such, checked before the host is opened.
fn given_patterns(devices: &[DeviceArg<String>]) -> Result<(), Failure> {
    for (index, d) in devices.iter().enumerate() {
        if let DeviceArg::Given(text) = d {
            spec::pattern_list(std::slice::from_ref(text)).map_err(|e| ListError { index, ..e })?;
        }
    }
    Ok(())
}

/// A device a selection chose, as a BDF: pci_assignable takes no spec
/// options.
fn bdf_only(bdf: Bdf, sel: &Selection) -> Result<String, String> {
    if sel.options != Default::default() {
        return Err(
            "pci_assignable takes devices, not the options of a guest's spec \
                    (permissive, vslot, ...): give those to pci_attach or domain_pci_config"
                .into(),
        );
    }
    Ok(bdf.to_string())
}

/// The checked request: every BDF parsed and the name checked before
/// anything is planned.
fn request(
    resolved: &Resolved<String>,
    state: AssignState,
    rebind: bool,
    name: Option<String>,
    persistent: bool,
    force: bool,
    method: Method,
) -> Result<AssignRequest, Failure> {
    let devices = spec::pattern_list(&resolved.items).map_err(|e| ListError {
        index: resolved.origin(e.index),
        ..e
    })?;
    if let Some(n) = &name {
        assignable::check_name(n)?;
    }
    Ok(AssignRequest {
        devices,
        state,
        rebind,
        name,
        persistent,
        force,
        method,
        detached: Vec::new(),
        unhide: Vec::new(),
    })
}

fn summary(changed: usize, total: usize, state: AssignState, boot: bool) -> String {
    let verb = match state {
        AssignState::Present => "made assignable",
        AssignState::Absent => "given back to dom0",
    };
    let mut msg = if changed == 0 {
        format!("all {total} device(s) already as requested")
    } else {
        format!("{changed} of {total} device(s) {verb}")
    };
    if boot {
        msg.push_str("; boot configuration updated");
    }
    msg
}
