//! Running a plan, and putting a device back when a step fails.
//!
//! Steps run in order, one host call each. A device whose step fails is put
//! back on the driver it had ([`restore`]): libxl itself leaves a device
//! unbound when pciback refuses it, so the rollback is ours. The run stops
//! at the first failure; devices already done stay done, which is where the
//! user asked them to go.

use std::fmt;

use crate::bdf::Bdf;
use crate::host::{CommandOutput, Host, HostError, ManagedFile, PCIBACK};

use super::{AssignError, DevicePlan, DriverRecord, Plan, Step};

/// What a run did, device by device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The steps taken, in words.
    pub actions: Vec<String>,
    /// Each device's driver after the run, in plan order.
    pub drivers_after: Vec<(Bdf, Option<String>)>,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

/// A failed run: the error, what was done before it, and the failed
/// command's output when `xl` failed.
#[derive(Debug)]
pub struct ApplyFailure {
    /// What went wrong.
    pub error: AssignError,
    /// The steps taken (rollback included), in words.
    pub actions: Vec<String>,
    /// The failed `xl` run, if that was the failure.
    pub command: Option<Box<CommandOutput>>,
}

impl From<HostError> for Box<ApplyFailure> {
    fn from(e: HostError) -> Self {
        fail(e.into(), &[], None)
    }
}

impl fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// Runs `plan` on `host`.
pub fn apply(host: &mut dyn Host, plan: &Plan) -> Result<Applied, Box<ApplyFailure>> {
    let mut done = Applied {
        actions: Vec::new(),
        drivers_after: Vec::new(),
        warnings: Vec::new(),
    };
    let mut record = DriverRecord::read(host).map_err(|e| fail(e.into(), &done.actions, None))?;
    for d in &plan.devices {
        if let Err((error, command)) = run_device(host, d, &mut record, &mut done) {
            let rolled = restore(host, d.bdf, d.original.as_deref(), &mut done.actions);
            let error = match rolled {
                // Back on its own driver: our note of that driver is stale.
                Ok(())
                    if d.original.as_deref() != Some(PCIBACK) && record.get(&d.bdf).is_some() =>
                {
                    match record.forget(host, &d.bdf) {
                        Ok(()) => {
                            done.actions
                                .push(format!("rollback: {}", Step::ForgetDriver(d.bdf)));
                            error
                        }
                        Err(e) => AssignError::Invalid(format!(
                            "{error}; forgetting {} failed too: {e}",
                            d.bdf
                        )),
                    }
                }
                Ok(()) => error,
                Err(e) => AssignError::Invalid(format!(
                    "{error}; putting {} back on {} failed too: {e}",
                    d.bdf,
                    d.original.as_deref().unwrap_or("no driver")
                )),
            };
            return Err(fail(error, &done.actions, command));
        }
    }
    if let Some(hide) = &plan.hide {
        let step = Step::WriteHideList(hide.clone());
        host.file_write(ManagedFile::ModprobeHide, hide.render().as_bytes())
            .map_err(|e| fail(e.into(), &done.actions, None))?;
        done.actions.push(step.to_string());
    }
    for d in &plan.devices {
        let now = host
            .pci_device(&d.bdf)
            .map_err(|e| fail(e.into(), &done.actions, None))?
            .and_then(|p| p.driver);
        done.drivers_after.push((d.bdf, now));
    }
    Ok(done)
}

fn fail(
    error: AssignError,
    actions: &[String],
    command: Option<Box<CommandOutput>>,
) -> Box<ApplyFailure> {
    Box::new(ApplyFailure {
        error,
        actions: actions.to_vec(),
        command,
    })
}

type StepError = (AssignError, Option<Box<CommandOutput>>);

fn run_device(
    host: &mut dyn Host,
    d: &DevicePlan,
    record: &mut DriverRecord,
    done: &mut Applied,
) -> Result<(), StepError> {
    for step in &d.steps {
        run_step(host, step, record, done)?;
        done.actions.push(step.to_string());
    }
    Ok(())
}

fn run_step(
    host: &mut dyn Host,
    step: &Step,
    record: &mut DriverRecord,
    done: &mut Applied,
) -> Result<(), StepError> {
    let host_err = |e: HostError| (AssignError::Host(e), None);
    match step {
        Step::RecordDriver(b, drv, sysfs) => record.set(host, *b, drv, *sysfs).map_err(host_err),
        Step::ForgetDriver(b) => record.forget(host, b).map_err(host_err),
        Step::Unbind(b, drv) => host.dev_unbind(b, drv).map_err(host_err),
        Step::NewSlot(b) => host.pciback_new_slot(b).map_err(host_err),
        Step::Bind(b, drv) => host.dev_bind(b, drv).map_err(host_err),
        Step::RemoveSlot(b) => host.pciback_remove_slot(b).map_err(host_err),
        Step::Reprobe(b) => host.dev_reprobe(b).map_err(host_err),
        Step::Rebind(b, drv) => rebind_if_driverless(host, b, drv.as_deref()).map_err(host_err),
        Step::XsWrite(p, v) => host.xs_write(p, v).map_err(host_err),
        Step::XsRm(p) => host.xs_rm(p).map_err(host_err),
        Step::WriteHideList(h) => host
            .file_write(ManagedFile::ModprobeHide, h.render().as_bytes())
            .map_err(host_err),
        Step::Xl(args) => run_xl(host, args, done),
    }
}

/// Runs xl and checks the device ended where xl was asked to put it: xl
/// prints errors with rc 0 at times, and warnings with rc 1.
fn run_xl(host: &mut dyn Host, args: &[String], done: &mut Applied) -> Result<(), StepError> {
    let out = host.xl(args).map_err(|e| (AssignError::Host(e), None))?;
    let adding = args.first().map(String::as_str) == Some("pci-assignable-add");
    let bdf: Option<Bdf> = args.last().and_then(|a| a.parse().ok());
    let driver = match bdf {
        Some(b) => host
            .pci_device(&b)
            .map_err(|e| (AssignError::Host(e), None))?
            .and_then(|p| p.driver),
        None => None,
    };
    let on_pciback = driver.as_deref() == Some(PCIBACK);
    if out.rc == 0 && on_pciback == adding {
        return Ok(());
    }
    if !adding && out.rc != 0 && on_pciback && out.stderr.contains("de-quarantine") {
        // Bound to pciback by hand (never quarantined): libxl refuses to
        // release what it did not take; do it through sysfs instead.
        done.warnings.push(format!(
            "xl refused ({}); the device was not quarantined, so it was released through sysfs",
            out.stderr.trim()
        ));
        return release_by_sysfs(host, bdf, done).map_err(|e| (AssignError::Host(e), None));
    }
    let hint = if out.stderr.contains("failed to quarantine") {
        " (Xen could not quarantine the device: pass-through needs an IOMMU, enabled in the firmware and for Xen)"
    } else {
        ""
    };
    let what = format!(
        "`xl {}` failed with rc {}: {}{hint}",
        args.join(" "),
        out.rc,
        out.error_line()
    );
    Err((AssignError::Invalid(what), Some(Box::new(out))))
}

/// xl rebinds only from libxl's record, and a release through sysfs after
/// xl refused rebinds nothing: whichever path ran, the device ends on a
/// driver.
fn rebind_if_driverless(
    host: &mut dyn Host,
    bdf: &Bdf,
    driver: Option<&str>,
) -> Result<(), HostError> {
    if host.pci_device(bdf)?.and_then(|p| p.driver).is_some() {
        return Ok(());
    }
    match driver {
        Some(d) if host.dev_bind(bdf, d).is_ok() => Ok(()),
        _ => host.dev_reprobe(bdf),
    }
}

fn release_by_sysfs(
    host: &mut dyn Host,
    bdf: Option<Bdf>,
    done: &mut Applied,
) -> Result<(), HostError> {
    let Some(b) = bdf else { return Ok(()) };
    host.dev_unbind(&b, PCIBACK)?;
    done.actions
        .push(Step::Unbind(b, PCIBACK.into()).to_string());
    if host.pciback_slots()?.contains(&b) {
        host.pciback_remove_slot(&b)?;
        done.actions.push(Step::RemoveSlot(b).to_string());
    }
    Ok(())
}

/// Puts `bdf` back on `original` (libxl's order reversed: unbind what holds
/// it, drop a pciback slot it should not have, bind the original driver,
/// reprobe if that fails).
fn restore(
    host: &mut dyn Host,
    bdf: Bdf,
    original: Option<&str>,
    actions: &mut Vec<String>,
) -> Result<(), HostError> {
    let now = host.pci_device(&bdf)?.and_then(|p| p.driver);
    if now.as_deref() == original {
        return Ok(());
    }
    let step = |s: Step, actions: &mut Vec<String>| {
        actions.push(format!("rollback: {s}"));
    };
    if let Some(cur) = &now {
        host.dev_unbind(&bdf, cur)?;
        step(Step::Unbind(bdf, cur.clone()), actions);
    }
    if original != Some(PCIBACK) && host.pciback_slots().unwrap_or_default().contains(&bdf) {
        host.pciback_remove_slot(&bdf)?;
        step(Step::RemoveSlot(bdf), actions);
    }
    if original == Some(PCIBACK) && !host.pciback_slots()?.contains(&bdf) {
        host.pciback_new_slot(&bdf)?;
        step(Step::NewSlot(bdf), actions);
    }
    if let Some(orig) = original {
        if host.dev_bind(&bdf, orig).is_ok() {
            step(Step::Bind(bdf, orig.into()), actions);
            return Ok(());
        }
        host.dev_reprobe(&bdf)?;
        step(Step::Reprobe(bdf), actions);
    }
    Ok(())
}
