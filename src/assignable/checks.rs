//! The plan's checks of what the host can tell before anything runs, so
//! that check mode fails (or warns) where the run would: a recorded driver
//! that cannot take a device back, quarantine without an IOMMU, a name
//! already given, the SR-IOV VFs that vanish with their PF.

use crate::bdf::Bdf;
use crate::host::{xs_pci_path, Host, ManagedFile, PciDevice};

use super::{AssignError, DevicePlan, Step};

/// The driver a give-back binds, chosen among the recorded ones.
pub(super) struct RebindChoice {
    /// The driver to bind, `None` for a reprobe.
    pub driver: Option<String>,
    /// libxl's `driver_path` names a driver that cannot take the device:
    /// `xl pci-assignable-remove -r` would fail on it.
    pub libxl_unusable: bool,
    /// What a person should know about the choice.
    pub warnings: Vec<String>,
}

/// Chooses the driver `bdf` goes back to: this module's record (`ours`)
/// first, then libxl's, skipping one that cannot take the device (not
/// loaded, or not matching it), which would only fail the rebind; a
/// reprobe when none is left. The warnings say what was skipped and why.
pub(super) fn choose_rebind(
    host: &dyn Host,
    bdf: Bdf,
    ours: Option<&str>,
    libxl: Option<&str>,
) -> Result<RebindChoice, AssignError> {
    let mut skipped = Vec::new();
    let mut driver = None;
    let sources = [
        (ours, ManagedFile::DriverRecord.path().to_string()),
        (libxl, xs_pci_path(&bdf, Some("driver_path"))),
    ];
    let mut libxl_unusable = false;
    for (i, (recorded, source)) in sources.iter().enumerate() {
        let Some(d) = recorded else { continue };
        match cannot_take(host, &bdf, d)? {
            Some(why) => {
                libxl_unusable |= i == 1;
                skipped.push(format!("{source} names {d}, which cannot take it ({why})"));
            }
            None if driver.is_none() => driver = Some(d.to_string()),
            None => {}
        }
    }
    let then = match &driver {
        Some(d) => format!("binding {d} instead"),
        None => "reprobing it instead (the kernel picks its driver)".into(),
    };
    let mut warnings: Vec<String> = skipped
        .iter()
        .map(|s| format!("{bdf}: {s}; {then}"))
        .collect();
    if ours.is_none() && libxl.is_none() {
        warnings.push(format!(
            "{bdf}: its original driver is not recorded anywhere; the kernel will pick one"
        ));
    }
    Ok(RebindChoice {
        driver,
        libxl_unusable,
        warnings,
    })
}

/// Why `driver` cannot take `bdf`, when the host can tell.
///
/// `Ok(None)` also when the host cannot tell: the run then binds, and falls
/// back to a reprobe if the kernel refuses.
fn cannot_take(host: &dyn Host, bdf: &Bdf, driver: &str) -> Result<Option<String>, AssignError> {
    if host.driver_matches(bdf, driver)? != Some(false) {
        return Ok(None);
    }
    Ok(Some(if host.driver_loaded(driver)? {
        "its id table does not match the device".into()
    } else {
        "it is not loaded".into()
    }))
}

/// `xl pci-assignable-add` ends by quarantining the device
/// (`xc_assign_device(DOMID_IO)`), which Xen refuses without an IOMMU:
/// xl then fails ("failed to quarantine") after pciback took the device.
/// Known before anything runs, so check mode fails as the run would.
pub(super) fn quarantine_possible(
    host: &dyn Host,
    devices: &[DevicePlan],
) -> Result<(), AssignError> {
    let adds = |s: &Step| match s {
        Step::Xl(args) => args.first().is_some_and(|a| a == "pci-assignable-add"),
        _ => false,
    };
    let adding: Vec<String> = devices
        .iter()
        .filter(|d| d.steps.iter().any(adds))
        .map(|d| d.bdf.to_string())
        .collect();
    if adding.is_empty() || host.iommu_enabled()? != Some(false) {
        return Ok(());
    }
    Err(AssignError::Invalid(format!(
        "Xen runs without an IOMMU, so xl cannot quarantine {} (\"failed to quarantine\") and \
         no guest could take it: enable VT-d or AMD-Vi in the firmware and reboot \
         (method: sysfs binds to pciback without quarantine, for a device only to be kept from dom0)",
        adding.join(", ")
    )))
}

/// Fails for a VF whose PF has `sriov_drivers_autoprobe` off: the kernel
/// lets no driver bind it, pciback included (`pci_device_can_probe` in
/// `drivers/pci/pci-driver.c`; libxl's bind fails with `ENODEV`), so the
/// plan says how to fix it instead.
pub(super) fn vf_bindable(host: &dyn Host, dev: &PciDevice) -> Result<(), AssignError> {
    let Some(pf) = dev.physfn else {
        return Ok(());
    };
    let off = host
        .pci_device(&pf)?
        .and_then(|p| p.sriov)
        .is_some_and(|c| !c.drivers_autoprobe);
    if !off {
        return Ok(());
    }
    Err(AssignError::Invalid(format!(
        "{} is an SR-IOV VF of {pf}, whose sriov_drivers_autoprobe is 0: the kernel lets no \
         driver bind its VFs then, pciback included (the bind fails with ENODEV); turn \
         autoprobe on first (pci_sriov autoprobe: true)",
        dev.bdf
    )))
}

/// Fails when `name` is already another device's. libxl does not check
/// (it would store the name twice), and `name=` would then name whichever
/// device its lookup (`name2bdf`) reads first: a user who gives a name
/// means one device by it, so this is refused rather than warned about.
pub(super) fn name_free(host: &dyn Host, name: &str, bdf: &Bdf) -> Result<(), AssignError> {
    for node in host.xs_directory("/libxl/pci")? {
        let Ok(other) = Bdf::from_xenstore_form(&node) else {
            continue;
        };
        let named = host.xs_read(&xs_pci_path(&other, Some("name")))?;
        if other != *bdf && named.as_deref() == Some(name) {
            return Err(AssignError::Invalid(format!(
                "name {name:?} is already given to {other}, and name={name} must name one device: \
                 choose another name, or give {other} back first (pci_assignable state: absent)"
            )));
        }
    }
    Ok(())
}

/// With `force`, an SR-IOV PF whose VFs are enabled: the warning that
/// they are gone once its driver is unbound, or a failure when the run also
/// names one of them (it would vanish before its turn, failing the run
/// halfway).
pub(super) fn forced_pf(dev: &PciDevice, bdfs: &[Bdf]) -> Result<Option<String>, AssignError> {
    let (bdf, vfs) = (dev.bdf, dev.virtfns.len());
    let Some(driver) = dev.driver.as_deref().filter(|_| vfs > 0) else {
        return Ok(None);
    };
    if let Some(vf) = dev.virtfns.iter().find(|v| bdfs.contains(v)) {
        return Err(AssignError::Invalid(format!(
            "{vf} is an SR-IOV VF of {bdf}, which this run takes from {driver}: the VF \
             vanishes with it; leave the VFs out, or take them without the PF"
        )));
    }
    Ok(Some(format!(
        "{bdf}: its {vfs} SR-IOV VF(s) are gone once {driver} is unbound; to have them \
         again after giving it back, write {vfs} to /sys/bus/pci/devices/{bdf}/sriov_numvfs"
    )))
}
