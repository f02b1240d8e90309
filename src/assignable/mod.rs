//! Making devices assignable (bound to pciback) and giving them back.
//!
//! The composites of `libxl_pci.c`, as plans: [`plan`] reads the host and
//! returns, per device, the [`Step`]s that `libxl__device_pci_assignable_add`
//! or `_remove` would take (through `xl`, or directly through sysfs in
//! libxl's own order: check `slots`, `new_slot`, `bind`), after the dom0
//! guard and every other check has passed for every device. [`apply`] runs
//! them, and puts a device back where it was when a step fails.
//!
//! The original driver of a device is known from this project's
//! [`DriverRecord`] (kept on disk, so it survives reboots), else from
//! libxl's xenstore record, else the kernel is asked to reprobe.

mod apply;
pub mod boot;
mod checks;
mod give_back;
pub mod records;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use apply::{apply, Applied, ApplyFailure};
pub use boot::{BootFile, BootPlan, BootStep};
pub use records::DriverRecord;

use crate::bdf::{Bdf, BdfPattern, Func};
use crate::guard::{self, Refusal};
use crate::host::{xs_pci_path, Host, HostError, ManagedFile, PCIBACK};

/// Bound to pciback, or not.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AssignState {
    /// Bound to pciback: assignable to guests.
    #[default]
    Present,
    /// Not bound to pciback: dom0's again.
    Absent,
}

/// How to reach pciback.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `xl` when the Xen toolstack runs, else `sysfs`.
    #[default]
    Auto,
    /// `xl pci-assignable-add/-remove`: the device is also quarantined and
    /// libxl's records stay consistent.
    Xl,
    /// Direct sysfs writes in libxl's order (no quarantine).
    Sysfs,
}

/// The method a plan uses: `auto` resolved to `xl` or `sysfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedMethod {
    /// `xl pci-assignable-add/-remove`.
    Xl,
    /// Direct sysfs writes in libxl's order.
    Sysfs,
}

/// The checked request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignRequest {
    /// The devices; `BB:DD.*` means every function present.
    pub devices: Vec<BdfPattern>,
    /// Bound to pciback or not.
    pub state: AssignState,
    /// With `absent`: bind the original driver again.
    pub rebind: bool,
    /// Xen's assignable name (one device only).
    pub name: Option<String>,
    /// Also keep the boot-time hide list in step.
    pub persistent: bool,
    /// Override the dom0 guard.
    pub force: bool,
    /// How to reach pciback.
    pub method: Method,
    /// Devices an earlier step of the same plan detaches from their guest:
    /// not refused as attached.
    pub detached: Vec<Bdf>,
    /// With `persistent` and `present`: devices a later step of the same
    /// plan gives back, dropped from the hide list in the same boot files.
    pub unhide: Vec<Bdf>,
}

/// One host call of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Note the original driver in this project's record (and whether the
    /// device goes to pciback through sysfs).
    RecordDriver(Bdf, String, bool),
    /// Drop the device from this project's record.
    ForgetDriver(Bdf),
    /// Write the BDF to `drivers/DRIVER/unbind`.
    Unbind(Bdf, String),
    /// Write the BDF to pciback's `new_slot`.
    NewSlot(Bdf),
    /// Write the BDF to `drivers/DRIVER/bind`.
    Bind(Bdf, String),
    /// Write the BDF to pciback's `remove_slot`.
    RemoveSlot(Bdf),
    /// Write the BDF to `drivers_probe`.
    Reprobe(Bdf),
    /// If the device has no driver: bind it to this one (or reprobe).
    Rebind(Bdf, Option<String>),
    /// Write a xenstore node.
    XsWrite(String, String),
    /// Remove a xenstore node.
    XsRm(String),
    /// Run `xl` with these arguments.
    Xl(Vec<String>),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RecordDriver(b, d, _) => write!(
                f,
                "record {b}'s driver {d} in {}",
                ManagedFile::DriverRecord.path()
            ),
            Step::ForgetDriver(b) => {
                write!(f, "forget {b} in {}", ManagedFile::DriverRecord.path())
            }
            Step::Unbind(b, d) => write!(f, "unbind {b} from {d}"),
            Step::NewSlot(b) => write!(f, "add a pciback slot for {b}"),
            Step::Bind(b, d) => write!(f, "bind {b} to {d}"),
            Step::RemoveSlot(b) => write!(f, "remove the pciback slot of {b}"),
            Step::Reprobe(b) => write!(f, "reprobe {b} (the kernel picks its driver)"),
            Step::Rebind(b, Some(d)) => write!(f, "bind {b} to {d} if xl left it without a driver"),
            Step::Rebind(b, None) => write!(f, "reprobe {b} if xl left it without a driver"),
            Step::XsWrite(p, v) => write!(f, "xenstore-write {p} {v}"),
            Step::XsRm(p) => write!(f, "xenstore-rm {p}"),
            Step::Xl(args) => write!(f, "xl {}", args.join(" ")),
        }
    }
}

/// What happens to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// The device.
    pub bdf: Bdf,
    /// Its driver now.
    pub driver_before: Option<String>,
    /// Its driver after the steps (`None` also when the kernel picks it).
    pub driver_after: Option<String>,
    /// The driver it is on now, to put it back on if a step fails.
    pub original: Option<String>,
    /// For a device on pciback through xl (so quarantined): the `xl`
    /// arguments that put it back as xl had it (`pci-assignable-add`, with
    /// its name), for a rollback; pciback alone would leave it out of
    /// quarantine.
    pub xl_restore: Option<Vec<String>>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// dom0's network interfaces on it, recorded with its driver (a
    /// selector by `netdev` finds it on pciback by them).
    pub netdevs: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The method chosen (`auto` resolved).
    pub method: ResolvedMethod,
    /// Per device, in BDF order.
    pub devices: Vec<DevicePlan>,
    /// The boot files and the initramfs.
    pub boot: BootPlan,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether anything changes.
    pub fn changed(&self) -> bool {
        !self.boot.steps.is_empty() || self.devices.iter().any(|d| !d.steps.is_empty())
    }

    /// Whether, after the plan, some device's state at the next boot differs
    /// from its state now; `None` unless `persistent`.
    pub fn reboot_required(&self) -> Option<bool> {
        self.boot.reboot_reasons.as_ref().map(|r| !r.is_empty())
    }
}

/// Why a request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// A device that does not exist.
    #[error("no PCI device {0} on this host (no /sys/bus/pci/devices/{0})")]
    NoDevice(String),
    /// The dom0 guard refused: every device and every reason.
    #[error("refusing devices dom0 uses (set force: true to override): {}", guard_text(.0))]
    Guard(Vec<(Bdf, Vec<Refusal>)>),
    /// A device held by a running guest.
    #[error("{bdf} is attached to domain {domid}; detach it first (pci_attach state: absent)")]
    Attached {
        /// The device.
        bdf: Bdf,
        /// The domain holding it.
        domid: String,
    },
    /// A request that cannot work as given.
    #[error("{0}")]
    Invalid(String),
    /// The host refused a step.
    #[error(transparent)]
    Host(#[from] HostError),
}

fn guard_text(all: &[(Bdf, Vec<Refusal>)]) -> String {
    let per: Vec<String> = all
        .iter()
        .map(|(b, rs)| {
            let reasons: Vec<String> = rs.iter().map(Refusal::to_string).collect();
            format!("{b}: {}", reasons.join("; "))
        })
        .collect();
    per.join(" | ")
}

/// Plans `req` on `host`: checks everything for every device first, so that
/// a refused run changes nothing.
pub fn plan(host: &dyn Host, req: &AssignRequest) -> Result<Plan, AssignError> {
    let method = resolve_method(host, req.method)?;
    let bdfs = expand(host, &req.devices)?;
    if req.name.is_some() && bdfs.len() != 1 {
        return Err(AssignError::Invalid(format!(
            "name applies to one device, but {} were given",
            bdfs.len()
        )));
    }
    if req.state == AssignState::Present && !host.driver_loaded(PCIBACK)? {
        return Err(AssignError::Invalid(
            "the pciback driver is not loaded (modprobe xen-pciback)".into(),
        ));
    }
    let record = DriverRecord::read(host)?;
    let slots = host.pciback_slots().unwrap_or_default();
    let toolstack = host.toolstack_running()?;
    if let (Some(name), [bdf], AssignState::Present) = (&req.name, bdfs.as_slice(), req.state) {
        // Names live in libxl's records: without xenstored there is
        // nowhere to keep one, and a device named nowhere is no use by name.
        if !toolstack {
            return Err(AssignError::Invalid(format!(
                "name {name:?}: the Xen toolstack is not running here, and libxl keeps names \
                 in xenstore ({}); leave name out, or start the toolstack",
                xs_pci_path(bdf, Some("name"))
            )));
        }
        checks::name_free(host, name, bdf)?;
    }
    let mut devices = Vec::new();
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    let all = match req.state {
        AssignState::Present => host.pci_devices()?,
        AssignState::Absent => Vec::new(),
    };
    let fates = guard::Fates::new(&all);
    for bdf in &bdfs {
        let dev = host
            .pci_device(bdf)?
            .ok_or_else(|| AssignError::NoDevice(bdf.to_string()))?;
        let mut ctx = DeviceCtx {
            bdf: *bdf,
            driver: dev.driver.clone(),
            has_slot: slots.contains(bdf),
            method,
            toolstack,
            netdevs: Vec::new(),
        };
        let d = match req.state {
            AssignState::Present => {
                if dev.driver.as_deref() != Some(PCIBACK) {
                    let used = host.dom0_use(bdf)?;
                    ctx.netdevs = used.net.iter().map(|n| n.name.clone()).collect();
                    checks::vf_bindable(host, &dev)?;
                    let mut reasons = guard::refusals(&dev, &used);
                    reasons.extend(fates.refusal(&dev, &bdfs));
                    warnings.extend(fates.group_warning(&dev, &bdfs));
                    if req.force && !reasons.is_empty() {
                        let why: Vec<String> = reasons.iter().map(Refusal::to_string).collect();
                        warnings.push(format!("force: taking {bdf} although {}", why.join("; ")));
                        warnings.extend(checks::forced_pf(&dev, &bdfs)?);
                    } else if !reasons.is_empty() {
                        refused.push((*bdf, reasons));
                    }
                }
                plan_add(&ctx, host, req)?
            }
            AssignState::Absent => give_back::plan_remove(&ctx, host, req, &record, &mut warnings)?,
        };
        devices.push(d);
    }
    if !refused.is_empty() {
        return Err(AssignError::Guard(refused));
    }
    checks::quarantine_possible(host, &devices)?;
    let boot = boot::plan_boot(host, req, &devices, &mut warnings)?;
    Ok(Plan {
        method,
        devices,
        boot,
        warnings,
    })
}

fn resolve_method(host: &dyn Host, m: Method) -> Result<ResolvedMethod, AssignError> {
    let running = host.toolstack_running()?;
    match m {
        Method::Auto if running => Ok(ResolvedMethod::Xl),
        Method::Auto => Ok(ResolvedMethod::Sysfs),
        Method::Xl if !running => Err(AssignError::Invalid(
            "method xl needs the Xen toolstack, which is not running here (use method: sysfs)"
                .into(),
        )),
        Method::Xl => Ok(ResolvedMethod::Xl),
        Method::Sysfs => Ok(ResolvedMethod::Sysfs),
    }
}

/// The BDFs named, `BB:DD.*` expanded to the functions present, sorted and
/// without repeats.
fn expand(host: &dyn Host, patterns: &[BdfPattern]) -> Result<Vec<Bdf>, AssignError> {
    let mut out = Vec::new();
    let all = if patterns.iter().any(|p| p.func == Func::All) {
        host.pci_devices()?
    } else {
        Vec::new()
    };
    for p in patterns {
        match p.bdf() {
            Some(b) => out.push(b),
            None => {
                let found: Vec<Bdf> = all.iter().map(|d| d.bdf).filter(|b| p.matches(b)).collect();
                if found.is_empty() {
                    return Err(AssignError::NoDevice(p.to_string()));
                }
                out.extend(found);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What the plan of one device starts from: its driver now, whether
/// pciback has a slot for it, the method, whether the toolstack runs.
struct DeviceCtx {
    bdf: Bdf,
    driver: Option<String>,
    has_slot: bool,
    method: ResolvedMethod,
    toolstack: bool,
    netdevs: Vec<String>,
}

/// `libxl__device_pci_assignable_add`, as steps.
fn plan_add(
    ctx: &DeviceCtx,
    host: &dyn Host,
    req: &AssignRequest,
) -> Result<DevicePlan, AssignError> {
    let bdf = ctx.bdf;
    let mut steps = Vec::new();
    let on_pciback = ctx.driver.as_deref() == Some(PCIBACK);
    let name_now = if ctx.toolstack {
        host.xs_read(&xs_pci_path(&bdf, Some("name")))?
    } else {
        None
    };
    let name_differs = req.name.is_some() && req.name != name_now;
    if !on_pciback || name_differs {
        if let Some(d) = ctx.driver.as_deref().filter(|d| *d != PCIBACK) {
            steps.push(Step::RecordDriver(
                bdf,
                d.to_string(),
                ctx.method == ResolvedMethod::Sysfs,
            ));
        }
        match ctx.method {
            ResolvedMethod::Xl => {
                let mut args = vec!["pci-assignable-add".to_string()];
                if let Some(n) = &req.name {
                    args.extend(["-n".to_string(), n.clone()]);
                }
                args.push(bdf.to_string());
                steps.push(Step::Xl(args));
            }
            ResolvedMethod::Sysfs => {
                if !on_pciback {
                    if let Some(d) = &ctx.driver {
                        steps.push(Step::Unbind(bdf, d.clone()));
                    }
                    if !ctx.has_slot {
                        steps.push(Step::NewSlot(bdf));
                    }
                    steps.push(Step::Bind(bdf, PCIBACK.into()));
                    if let (true, Some(d)) = (ctx.toolstack, &ctx.driver) {
                        steps.push(Step::XsWrite(
                            xs_pci_path(&bdf, Some("driver_path")),
                            driver_path(d),
                        ));
                    }
                }
                if let (true, Some(n)) = (ctx.toolstack, &req.name) {
                    steps.push(Step::XsWrite(xs_pci_path(&bdf, Some("name")), n.clone()));
                }
            }
        }
    }
    Ok(DevicePlan {
        bdf,
        driver_before: ctx.driver.clone(),
        driver_after: Some(PCIBACK.into()),
        original: ctx.driver.clone(),
        xl_restore: None,
        steps,
        netdevs: ctx.netdevs.clone(),
    })
}

/// libxl's `driver_path` record for a driver name.
pub fn driver_path(driver: &str) -> String {
    format!("/sys/{}/{driver}", crate::host::SYSFS_PCI_DRIVERS)
}

/// One line of `xl pci-assignable-list -n`: a device on pciback that no
/// guest holds, with its assignable name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AssignableDevice {
    /// The device.
    pub bdf: Bdf,
    /// Its name (`xl pci-assignable-add -n`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The assignable devices, as `libxl_device_pci_assignable_list` finds
/// them: bound to pciback, without a `domid` record.
pub fn assignable_list(host: &dyn Host) -> Result<Vec<AssignableDevice>, HostError> {
    let xs = host.toolstack_running()?;
    let mut out = Vec::new();
    for d in host.pci_devices()? {
        if d.driver.as_deref() != Some(PCIBACK) {
            continue;
        }
        if xs && host.xs_read(&xs_pci_path(&d.bdf, Some("domid")))?.is_some() {
            continue;
        }
        let name = if xs {
            host.xs_read(&xs_pci_path(&d.bdf, Some("name")))?
        } else {
            None
        };
        out.push(AssignableDevice { bdf: d.bdf, name });
    }
    Ok(out)
}

/// The one rule for names ([`crate::spec::check_name`]), for `name`.
pub fn check_name(name: &str) -> Result<(), AssignError> {
    crate::spec::check_name(name).map_err(AssignError::Invalid)
}
