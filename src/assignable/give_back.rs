//! Giving a device back to dom0: `libxl__device_pci_assignable_remove` as
//! steps, by xl or by sysfs, with the driver to rebind chosen from our
//! record, libxl's, or the kernel; and finishing a give-back that a killed
//! run left half done.

use super::checks::{self, RebindChoice};
use super::records::DriverRecord;
use super::{AssignError, AssignRequest, DeviceCtx, DevicePlan, ResolvedMethod, Step};
use crate::bdf::Bdf;
use crate::host::{xs_pci_path, Host, PCIBACK};

/// `libxl__device_pci_assignable_remove`, as steps.
pub(super) fn plan_remove(
    ctx: &DeviceCtx,
    host: &dyn Host,
    req: &AssignRequest,
    record: &DriverRecord,
    warnings: &mut Vec<String>,
) -> Result<DevicePlan, AssignError> {
    let bdf = ctx.bdf;
    let unchanged = DevicePlan {
        bdf,
        driver_before: ctx.driver.clone(),
        driver_after: ctx.driver.clone(),
        original: ctx.driver.clone(),
        xl_restore: None,
        steps: Vec::new(),
        netdevs: Vec::new(),
    };
    if ctx.driver.is_none() && req.rebind {
        if let Some(d) = plan_finish_give_back(ctx, host, record, warnings)? {
            return Ok(d);
        }
    }
    if ctx.driver.as_deref() != Some(PCIBACK) {
        // A give-back killed between the rebind and the record's update
        // (seen on the real dom0) left the device on a driver and our record
        // behind: forgetting it ends the host as an unkilled run would.
        if ctx.driver.is_some() && record.get(&bdf).is_some() {
            return Ok(DevicePlan {
                steps: vec![Step::ForgetDriver(bdf)],
                ..unchanged
            });
        }
        return Ok(unchanged);
    }
    if ctx.toolstack && !req.detached.contains(&bdf) {
        if let Some(domid) = host.xs_read(&xs_pci_path(&bdf, Some("domid")))? {
            return Err(AssignError::Attached { bdf, domid });
        }
    }
    let libxl_driver = libxl_driver(ctx, host)?;
    let choice = checks::choose_rebind(host, bdf, record.get(&bdf), libxl_driver.as_deref())?;
    let original = choice.driver.clone();
    let name = if ctx.toolstack {
        host.xs_read(&xs_pci_path(&bdf, Some("name")))?
    } else {
        None
    };
    // Where the toolstack runs, xl goes first even for a device that went
    // to pciback through sysfs or that xen-pciback took at boot: neither
    // tells whether Xen has it quarantined now (a guest's detach
    // quarantines any device), and only xl de-quarantines; a driver bound
    // to a quarantined device fails to map its interrupts ("xen map irq
    // failed", seen on the real dom0). xl refuses a device never
    // quarantined ("failed to de-quarantine", nothing changed), and then
    // `run_xl` releases it through sysfs.
    if ctx.method == ResolvedMethod::Sysfs && ctx.toolstack {
        warnings.push(format!(
            "method sysfs gives {bdf} back without xl: if Xen has it quarantined (xl made it \
             assignable, or a guest had it), its driver cannot map interrupts until \
             `xl pci-assignable-remove {bdf}` de-quarantines it; method auto does that"
        ));
    }
    let (mut steps, xl_restore) = match ctx.method {
        ResolvedMethod::Xl => give_back_by_xl(req, bdf, &choice, &original, name),
        ResolvedMethod::Sysfs => (
            give_back_by_sysfs(ctx, req, &original, libxl_driver.is_some(), name.is_some()),
            None,
        ),
    };
    if req.rebind && record.get(&bdf).is_some() {
        steps.push(Step::ForgetDriver(bdf));
    }
    if req.rebind {
        warnings.extend(choice.warnings);
    } else {
        warnings.push(format!("{bdf} is left without a driver (rebind: false)"));
    }
    Ok(DevicePlan {
        driver_after: if req.rebind { original } else { None },
        xl_restore,
        steps,
        ..unchanged
    })
}

/// The steps of a give-back through xl, and the xl command that undoes it.
fn give_back_by_xl(
    req: &AssignRequest,
    bdf: Bdf,
    choice: &RebindChoice,
    original: &Option<String>,
    name: Option<String>,
) -> (Vec<Step>, Option<Vec<String>>) {
    let mut steps = Vec::new();
    // Without libxl's record, `-r` rebinds nothing ("Couldn't find path for
    // original driver; not rebinding") and xl succeeds.
    if req.rebind && choice.libxl_unusable {
        steps.push(Step::XsRm(xs_pci_path(&bdf, Some("driver_path"))));
    }
    let mut args = vec!["pci-assignable-remove".to_string()];
    if req.rebind {
        args.push("-r".into());
    }
    args.push(bdf.to_string());
    steps.push(Step::Xl(args));
    let mut add = vec!["pci-assignable-add".to_string()];
    if let Some(n) = name {
        add.extend(["-n".to_string(), n]);
    }
    add.push(bdf.to_string());
    // xl rebinds only from its own record; ours fills the gap.
    if req.rebind {
        steps.push(Step::Rebind(bdf, original.clone()));
    }
    (steps, Some(add))
}

/// The steps of a give-back through sysfs, in libxl's order.
fn give_back_by_sysfs(
    ctx: &DeviceCtx,
    req: &AssignRequest,
    original: &Option<String>,
    libxl_record: bool,
    named: bool,
) -> Vec<Step> {
    let bdf = ctx.bdf;
    let mut steps = vec![Step::Unbind(bdf, PCIBACK.into())];
    if ctx.has_slot {
        steps.push(Step::RemoveSlot(bdf));
    }
    if req.rebind {
        steps.push(rebind_step(bdf, original));
        if libxl_record {
            steps.push(Step::XsRm(xs_pci_path(&bdf, Some("driver_path"))));
        }
    }
    if named {
        steps.push(Step::XsRm(xs_pci_path(&bdf, Some("name"))));
    }
    steps
}

/// A device without a driver that a record says came from one: a give-back
/// that did not finish left it so (on a real dom0, xl killed half-way by
/// SIGPIPE when the run that started it was killed, between pciback's
/// unbind and the rebind). `absent` with `rebind` finishes it; `None` when
/// no record names a driver (the device was simply never bound).
fn plan_finish_give_back(
    ctx: &DeviceCtx,
    host: &dyn Host,
    record: &DriverRecord,
    warnings: &mut Vec<String>,
) -> Result<Option<DevicePlan>, AssignError> {
    let bdf = ctx.bdf;
    let libxl_path = xs_pci_path(&bdf, Some("driver_path"));
    let libxl_driver = libxl_driver(ctx, host)?;
    if record.get(&bdf).is_none() && libxl_driver.is_none() {
        return Ok(None);
    }
    let choice = checks::choose_rebind(host, bdf, record.get(&bdf), libxl_driver.as_deref())?;
    let mut steps = vec![rebind_step(bdf, &choice.driver)];
    if libxl_driver.is_some() {
        steps.push(Step::XsRm(libxl_path));
    }
    if record.get(&bdf).is_some() {
        steps.push(Step::ForgetDriver(bdf));
    }
    warnings.push(format!(
        "{bdf} has no driver, but was recorded as coming from {}: a give-back that did not \
         finish left it so; binding it again",
        record
            .get(&bdf)
            .or(libxl_driver.as_deref())
            .unwrap_or("a driver")
    ));
    warnings.extend(choice.warnings);
    Ok(Some(DevicePlan {
        bdf,
        driver_before: None,
        driver_after: choice.driver.clone(),
        original: None,
        xl_restore: None,
        steps,
        netdevs: Vec::new(),
    }))
}

/// The driver libxl's record (`driver_path`) names, where the toolstack
/// runs.
fn libxl_driver(ctx: &DeviceCtx, host: &dyn Host) -> Result<Option<String>, AssignError> {
    if !ctx.toolstack {
        return Ok(None);
    }
    Ok(host
        .xs_read(&xs_pci_path(&ctx.bdf, Some("driver_path")))?
        .and_then(|p| p.rsplit('/').next().map(str::to_string))
        .filter(|d| !d.is_empty()))
}

fn rebind_step(bdf: Bdf, original: &Option<String>) -> Step {
    match original {
        Some(d) => Step::Bind(bdf, d.clone()),
        None => Step::Reprobe(bdf),
    }
}
