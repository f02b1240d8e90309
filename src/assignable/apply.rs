//! Running a plan, and putting a device back when a step fails.
//!
//! Steps run in order, one host call each, except the driver record's: it
//! is written once before the first step, with every driver the plan will
//! record, and once after the last device (see [`apply`]), so that a run
//! over many devices does not rewrite it for each. A device whose step fails
//! is put back on the driver it had ([`restore`]): libxl itself leaves a
//! device unbound when pciback refuses it, so the rollback is ours. The run
//! stops at the first failure; devices already done stay done, which is
//! where the user asked them to go.

use std::fmt;

use crate::bdf::Bdf;
use crate::host::{xs_pci_path, CommandOutput, Host, HostError, ManagedFile, PCIBACK};

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
    /// How many devices of the plan, in order, had all their steps done:
    /// those are where they were asked to go.
    pub devices_done: usize,
    /// The device whose step failed and that could not be put back where
    /// it was (its rollback failed too).
    pub stranded: Option<Bdf>,
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
///
/// The driver record is written twice at most, whatever the number of
/// devices: before the first step, with the drivers of every device the
/// plan moves (so that each is on disk before its device is unbound), and
/// after the last device, without those of devices that were rolled back or
/// not reached, and without those the steps forgot.
pub fn apply(host: &mut dyn Host, plan: &Plan) -> Result<Applied, Box<ApplyFailure>> {
    let mut done = Applied {
        actions: Vec::new(),
        drivers_after: Vec::new(),
        warnings: Vec::new(),
    };
    let before = DriverRecord::read(host).map_err(|e| fail(e.into(), &done.actions, None))?;
    let mut record = before.clone();
    for d in &plan.devices {
        for step in &d.steps {
            if let Step::RecordDriver(b, drv, sysfs) = step {
                record.set(*b, drv, *sysfs, &d.netdevs);
            }
        }
    }
    record
        .save(host)
        .map_err(|e| fail(e.into(), &done.actions, None))?;
    for (i, d) in plan.devices.iter().enumerate() {
        if let Err((error, command)) = run_device(host, d, &mut record, &mut done) {
            let (error, back) = roll_back(
                host,
                plan,
                i,
                &before,
                &mut record,
                &mut done.actions,
                error,
            );
            let mut f = fail(error, &done.actions, command);
            f.devices_done = i;
            f.stranded = (!back).then_some(d.bdf);
            return Err(f);
        }
    }
    let all_done = |e: HostError, actions: &[String]| {
        let mut f = fail(e.into(), actions, None);
        f.devices_done = plan.devices.len();
        f
    };
    record.save(host).map_err(|e| all_done(e, &done.actions))?;
    super::boot::apply_boot(host, &plan.boot.steps, &mut done.actions).map_err(
        |(error, command)| {
            let mut f = fail(error, &done.actions, command);
            f.devices_done = plan.devices.len();
            f
        },
    )?;
    for d in &plan.devices {
        let now = host
            .pci_device(&d.bdf)
            .map_err(|e| all_done(e, &done.actions))?
            .and_then(|p| p.driver);
        done.drivers_after.push((d.bdf, now));
    }
    Ok(done)
}

/// After a step of `plan.devices[failed]` failed with `error`: puts that
/// device back on its driver, then writes the record without it (once it is
/// back on its own driver, our note of that driver is stale) and without the
/// devices not reached (as they were before the run). Returns the error to
/// report, and whether the device is back where it was.
fn roll_back(
    host: &mut dyn Host,
    plan: &Plan,
    failed: usize,
    before: &DriverRecord,
    record: &mut DriverRecord,
    actions: &mut Vec<String>,
    error: AssignError,
) -> (AssignError, bool) {
    let d = &plan.devices[failed];
    for later in &plan.devices[failed + 1..] {
        record.reset_to(&later.bdf, before);
    }
    let back = Restore {
        bdf: d.bdf,
        original: d.original.as_deref(),
        xl_restore: d.xl_restore.as_deref(),
    };
    let (error, forgot, back) = match restore(host, &back, actions) {
        Ok(()) if d.original.as_deref() != Some(PCIBACK) => (error, record.forget(&d.bdf), true),
        Ok(()) => (error, false, true),
        Err(e) => {
            let error = AssignError::Invalid(format!(
                "{error}; putting {} back on {} failed too: {e}",
                d.bdf,
                d.original.as_deref().unwrap_or("no driver")
            ));
            (error, false, false)
        }
    };
    let error = match record.save(host) {
        Ok(()) => {
            if forgot {
                actions.push(format!("rollback: {}", Step::ForgetDriver(d.bdf)));
            }
            error
        }
        Err(e) if forgot => {
            AssignError::Invalid(format!("{error}; forgetting {} failed too: {e}", d.bdf))
        }
        Err(e) => AssignError::Invalid(format!(
            "{error}; writing {} failed too: {e}",
            ManagedFile::DriverRecord.path()
        )),
    };
    (error, back)
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
        devices_done: 0,
        stranded: None,
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
        if run_step(host, step, record, done)? == Noted::No {
            done.actions.push(step.to_string());
        }
    }
    Ok(())
}

/// Whether a step noted its own actions (xl refused, and sysfs did the
/// job) or leaves that to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noted {
    No,
    Yes,
}

fn run_step(
    host: &mut dyn Host,
    step: &Step,
    record: &mut DriverRecord,
    done: &mut Applied,
) -> Result<Noted, StepError> {
    let host_err = |e: HostError| (AssignError::Host(e), None);
    let ran = match step {
        // Written before the first step (see `apply`).
        Step::RecordDriver(..) => Ok(()),
        // Written after the last device.
        Step::ForgetDriver(b) => {
            record.forget(b);
            Ok(())
        }
        Step::Unbind(b, drv) => host.dev_unbind(b, drv).map_err(host_err),
        Step::NewSlot(b) => host.pciback_new_slot(b).map_err(host_err),
        Step::Bind(b, drv) => host.dev_bind(b, drv).map_err(host_err),
        Step::RemoveSlot(b) => host.pciback_remove_slot(b).map_err(host_err),
        Step::Reprobe(b) => host.dev_reprobe(b).map_err(host_err),
        Step::Rebind(b, drv) => rebind_if_driverless(host, b, drv.as_deref()).map_err(host_err),
        Step::XsWrite(p, v) => host.xs_write(p, v).map_err(host_err),
        Step::XsRm(p) => host.xs_rm(p).map_err(host_err),
        Step::Xl(args) => return run_xl(host, args, done),
    };
    ran.map(|()| Noted::No)
}

/// Runs xl and checks the device ended where xl was asked to put it: xl
/// prints errors with rc 0 at times, and warnings with rc 1.
fn run_xl(host: &mut dyn Host, args: &[String], done: &mut Applied) -> Result<Noted, StepError> {
    let out = host.xl(args).map_err(|e| (AssignError::Host(e), None))?;
    let adding = args.first().map(String::as_str) == Some("pci-assignable-add");
    let bdf: Option<Bdf> = args.last().and_then(|a| a.parse().ok());
    let driver = match bdf.map(|b| host.pci_device(&b)) {
        Some(Ok(dev)) => dev.and_then(|p| p.driver),
        // xl ran, whatever it did: the result lists it.
        Some(Err(e)) => {
            done.actions.push(Step::Xl(args.to_vec()).to_string());
            return Err((AssignError::Host(e), None));
        }
        None => None,
    };
    let on_pciback = driver.as_deref() == Some(PCIBACK);
    if out.rc == 0 && on_pciback == adding {
        return Ok(Noted::No);
    }
    if !adding && out.rc != 0 && on_pciback && out.stderr.contains("de-quarantine") {
        // Never quarantined (bound through sysfs, or taken by pciback at
        // boot): libxl refuses to release what it did not take, and changed
        // nothing; do it through sysfs instead.
        done.actions.push(format!(
            "{}: refused, the device was never quarantined",
            Step::Xl(args.to_vec())
        ));
        done.warnings.push(format!(
            "xl refused ({}); the device was not quarantined, so it was released through sysfs",
            out.stderr.trim()
        ));
        return release_by_sysfs(host, bdf, done)
            .map(|()| Noted::Yes)
            .map_err(|e| (AssignError::Host(e), None));
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
    // libxl's records of a device it did not release would outlive it.
    for node in ["driver_path", "name"] {
        let path = xs_pci_path(&b, Some(node));
        if host.xs_read(&path)?.is_some() {
            host.xs_rm(&path)?;
            done.actions.push(Step::XsRm(path).to_string());
        }
    }
    Ok(())
}

/// Where a rollback puts a device back.
struct Restore<'a> {
    bdf: Bdf,
    /// The driver it was on.
    original: Option<&'a str>,
    /// How xl had it on pciback, quarantined (see [`DevicePlan::xl_restore`]).
    xl_restore: Option<&'a [String]>,
}

/// Puts the device back on its original driver (libxl's order reversed:
/// unbind what holds it, drop a pciback slot it should not have, bind the
/// original driver, reprobe if that fails). A device xl had on pciback goes
/// back through xl, as `xl pci-assignable-add` put it there: on pciback
/// with its name and quarantined (`xc_assign_device(DOMID_IO)`).
fn restore(
    host: &mut dyn Host,
    back: &Restore<'_>,
    actions: &mut Vec<String>,
) -> Result<(), HostError> {
    let (bdf, original) = (back.bdf, back.original);
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
    if let (Some(PCIBACK), Some(args)) = (original, back.xl_restore) {
        if requarantine(host, bdf, args, actions)? {
            return Ok(());
        }
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
        // A reprobe that found no driver leaves the device without one:
        // the failure must say so.
        let after = host.pci_device(&bdf)?.and_then(|p| p.driver);
        if after.is_none() {
            return Err(HostError::Other(format!(
                "binding {bdf} to {orig} failed, and the reprobe left it without a driver"
            )));
        }
    }
    Ok(())
}

/// Runs `xl pci-assignable-add` for a rollback; whether the device is on
/// pciback afterwards (quarantined when xl succeeded). A failure is noted
/// in the actions, and the caller binds pciback itself.
fn requarantine(
    host: &mut dyn Host,
    bdf: Bdf,
    args: &[String],
    actions: &mut Vec<String>,
) -> Result<bool, HostError> {
    let out = host.xl(args)?;
    let on_pciback = host.pci_device(&bdf)?.and_then(|p| p.driver).as_deref() == Some(PCIBACK);
    let step = Step::Xl(args.to_vec());
    if out.rc == 0 && on_pciback {
        actions.push(format!("rollback: {step}"));
    } else {
        actions.push(format!(
            "rollback: {step} failed with rc {} ({}); {bdf} is not quarantined",
            out.rc,
            out.error_line()
        ));
    }
    Ok(on_pciback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignable::{plan, AssignRequest, AssignState, Method};
    use crate::bdf::BdfPattern;
    use crate::host::sim::SimHost;
    use crate::host::{Dom0Use, Domain, PciDevice};

    const TYPICAL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/playbooks-examples/hosts/typical.json"
    );

    fn b(t: &str) -> Bdf {
        Bdf::parse(t).unwrap()
    }

    /// The typical dom0, with 04:00.0's bind to pciback failing.
    fn typical_with_failing_04() -> (tempfile::TempDir, SimHost) {
        let mut snap: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(TYPICAL).unwrap()).unwrap();
        for d in snap["devices"].as_array_mut().unwrap() {
            if d["bdf"] == "0000:04:00.0" {
                d["bind_fails"] = serde_json::json!({"pciback": "EIO"});
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dom0.json");
        std::fs::write(&path, snap.to_string()).unwrap();
        let host = SimHost::open(path).unwrap();
        (dir, host)
    }

    fn recorded(host: &dyn Host) -> DriverRecord {
        DriverRecord::read(host).unwrap()
    }

    /// A host that checks, at each unbind from a dom0 driver (directly or
    /// by `xl pci-assignable-add`), that the record on disk already names
    /// the device's driver, and counts the record's writes.
    struct Watch<'a> {
        inner: &'a mut SimHost,
        unbinds: usize,
        record_writes: usize,
    }

    impl Watch<'_> {
        fn check_recorded(&mut self, bdf: &Bdf) {
            let driver = self.inner.pci_device(bdf).unwrap().unwrap().driver;
            if let Some(d) = driver.filter(|d| d != PCIBACK) {
                assert_eq!(recorded(self.inner).get(bdf), Some(d.as_str()), "{bdf}");
                self.unbinds += 1;
            }
        }
    }

    impl Host for Watch<'_> {
        fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError> {
            self.inner.pci_devices()
        }
        fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
            self.inner.pci_device(bdf)
        }
        fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
            self.inner.driver_loaded(driver)
        }
        fn driver_matches(&self, bdf: &Bdf, driver: &str) -> Result<Option<bool>, HostError> {
            self.inner.driver_matches(bdf, driver)
        }
        fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
            self.check_recorded(bdf);
            self.inner.dev_unbind(bdf, driver)
        }
        fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
            self.inner.dev_bind(bdf, driver)
        }
        fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError> {
            self.inner.dev_reprobe(bdf)
        }
        fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
            self.inner.pciback_slots()
        }
        fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
            self.inner.pciback_new_slot(bdf)
        }
        fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
            self.inner.pciback_remove_slot(bdf)
        }
        fn sriov_set_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), HostError> {
            self.inner.sriov_set_numvfs(bdf, count)
        }
        fn sriov_set_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), HostError> {
            self.inner.sriov_set_autoprobe(bdf, on)
        }
        fn toolstack_running(&self) -> Result<bool, HostError> {
            self.inner.toolstack_running()
        }
        fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError> {
            if args[0] == "pci-assignable-add" {
                self.check_recorded(&b(args.last().unwrap()));
            }
            self.inner.xl(args)
        }
        fn xs_read(&self, path: &str) -> Result<Option<String>, HostError> {
            self.inner.xs_read(path)
        }
        fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError> {
            self.inner.xs_write(path, value)
        }
        fn xs_rm(&mut self, path: &str) -> Result<(), HostError> {
            self.inner.xs_rm(path)
        }
        fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError> {
            self.inner.xs_directory(path)
        }
        fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError> {
            self.inner.dom0_use(bdf)
        }
        fn domains(&self) -> Result<Vec<Domain>, HostError> {
            self.inner.domains()
        }
        fn iommu_enabled(&self) -> Result<Option<bool>, HostError> {
            self.inner.iommu_enabled()
        }
        fn domain_passthrough(&self, domid: u32) -> Result<Option<String>, HostError> {
            self.inner.domain_passthrough(domid)
        }
        fn kernel_log(&self) -> Result<String, HostError> {
            self.inner.kernel_log()
        }
        fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError> {
            self.inner.file_read(file)
        }
        fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError> {
            if file == ManagedFile::DriverRecord {
                self.record_writes += 1;
            }
            self.inner.file_write(file, bytes)
        }
        fn file_remove(&mut self, file: ManagedFile) -> Result<(), HostError> {
            self.inner.file_remove(file)
        }
        fn boot_drivers(&self, bdf: &Bdf) -> Result<crate::host::BootDrivers, HostError> {
            self.inner.boot_drivers(bdf)
        }
        fn initramfs_tool(&self) -> Result<crate::host::InitramfsTool, HostError> {
            self.inner.initramfs_tool()
        }
        fn xen_version(&self) -> Result<Option<(u32, u32)>, HostError> {
            self.inner.xen_version()
        }
        fn initramfs_rebuild(&mut self) -> Result<CommandOutput, HostError> {
            self.inner.initramfs_rebuild()
        }
        fn commit(&mut self) -> Result<(), HostError> {
            self.inner.commit()
        }
    }

    fn request(devices: &[&str], state: AssignState, method: Method) -> AssignRequest {
        AssignRequest {
            devices: devices
                .iter()
                .map(|d| BdfPattern::parse(d).unwrap())
                .collect(),
            state,
            rebind: true,
            method,
            ..AssignRequest::default()
        }
    }

    /// Three devices, the second refused by pciback: each device's driver
    /// is on disk before it leaves it; afterwards only the first device,
    /// which stayed on pciback, is recorded (the second was rolled back,
    /// the third never reached). The record is written twice.
    #[test]
    fn record_is_written_first_and_pruned_after_a_failure() {
        for method in [Method::Xl, Method::Sysfs] {
            let (_dir, mut sim) = typical_with_failing_04();
            let req = request(
                &["03:00.0", "04:00.0", "05:00.0"],
                AssignState::Present,
                method,
            );
            let p = plan(&sim, &req).unwrap();
            let mut host = Watch {
                inner: &mut sim,
                unbinds: 0,
                record_writes: 0,
            };
            let failure = apply(&mut host, &p).unwrap_err();
            assert!(failure
                .actions
                .last()
                .unwrap()
                .starts_with("rollback: forget 0000:04:00.0"));
            assert_eq!((host.unbinds, host.record_writes), (2, 2), "{method:?}");
            let after = recorded(&sim);
            assert_eq!(after.get(&b("03:00.0")), Some("e1000e"));
            assert_eq!(after.get(&b("04:00.0")), None);
            assert_eq!(after.get(&b("05:00.0")), None);
            let on = |t: &str| sim.pci_device(&b(t)).unwrap().unwrap().driver;
            assert_eq!(on("03:00.0").as_deref(), Some(PCIBACK));
            assert_eq!(on("04:00.0").as_deref(), Some("e1000e"));
            assert_eq!(on("05:00.0").as_deref(), Some("igb"));
        }
    }

    /// Devices made assignable and given back in one run each: the record
    /// is written once each way, and is empty at the end.
    #[test]
    fn one_record_write_each_way() {
        let (_dir, mut sim) = typical_with_failing_04();
        let devices = ["03:00.0", "05:00.*"];
        for (state, want) in [
            (AssignState::Present, Some("igb")),
            (AssignState::Absent, None),
        ] {
            let p = plan(&sim, &request(&devices, state, Method::Auto)).unwrap();
            let mut host = Watch {
                inner: &mut sim,
                unbinds: 0,
                record_writes: 0,
            };
            apply(&mut host, &p).unwrap();
            assert_eq!(host.record_writes, 1, "{state:?}");
            assert_eq!(recorded(&sim).get(&b("05:00.3")), want, "{state:?}");
        }
        assert_eq!(recorded(&sim), DriverRecord::default());
    }
}
