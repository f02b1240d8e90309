//! The simulated kernel: what a write to a PCI sysfs file does, refusals
//! included, as Linux 6.1 (Debian 12's dom0 kernel) does it.
//!
//! Sources, read for facts: `drivers/base/bus.c` (`bind_store`,
//! `unbind_store`, `drivers_probe_store`), `drivers/base/dd.c`
//! (`__driver_probe_device`, `really_probe`, `__device_attach_driver`),
//! `drivers/xen/xen-pciback/pci_stub.c` (`pcistub_probe`,
//! `pcistub_match_one`, `pcistub_slot_add`/`_remove`, `permissive_add`,
//! `pci_stub_notifier`).

use nix::errno::Errno;

use super::snapshot::Snapshot;
use crate::bdf::Bdf;
use crate::host::{HostError, PCIBACK, SYSFS_PCI_DEVICES, SYSFS_PCI_DRIVERS};

/// How a sysfs access failed: the file could not be opened (it does not
/// exist: the driver is not loaded), or the kernel refused the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysfsError {
    /// `open` failed.
    Open(Errno),
    /// `write` (the store function) failed.
    Write(Errno),
}

impl SysfsError {
    /// The errno either way.
    pub fn errno(self) -> Errno {
        match self {
            SysfsError::Open(e) | SysfsError::Write(e) => e,
        }
    }
}

/// `/sys/bus/pci/devices/BDF`.
pub fn dev_path(bdf: &Bdf) -> String {
    format!("/sys/{SYSFS_PCI_DEVICES}/{bdf}")
}

/// `/sys/bus/pci/drivers/DRIVER`: also what libxl records as `driver_path`
/// (the `realpath` of the device's `driver` link).
pub fn drv_path(driver: &str) -> String {
    format!("/sys/{SYSFS_PCI_DRIVERS}/{driver}")
}

/// `/sys/bus/pci/drivers/DRIVER/ATTR`.
pub fn drv_attr(driver: &str, attr: &str) -> String {
    format!("{}/{attr}", drv_path(driver))
}

/// `/sys/bus/pci/drivers_probe`.
pub fn probe_path() -> String {
    "/sys/bus/pci/drivers_probe".to_string()
}

/// The driver name as one path component, as the real side checks it.
pub fn check_driver_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(HostError::Other(format!("invalid driver name {name:?}")));
    }
    Ok(())
}

/// A `HostError::Sysfs` with the errno's own text (`No such device`).
pub fn sysfs_error(
    op: impl Into<String>,
    path: impl Into<String>,
    reason: impl Into<String>,
) -> HostError {
    HostError::Sysfs {
        op: op.into(),
        path: path.into(),
        reason: reason.into(),
    }
}

impl Snapshot {
    /// Whether pciback's `pcistub_match` claims the device: a slot names it
    /// or any bridge above it (`pcistub_match_one` walks up the buses).
    pub fn pciback_claims(&self, bdf: &Bdf) -> bool {
        let mut chain = vec![*bdf];
        chain.extend(self.ancestors(bdf));
        chain.iter().any(|b| self.pciback.slots.contains(b))
    }

    /// One probe of `bdf` by `driver` (`really_probe`): pciback first
    /// checks its slots (`pcistub_probe`: `ENODEV` without one), a VF
    /// whose PF has autoprobe off is never probed, then an injected
    /// failure applies; success binds.
    fn probe(&mut self, bdf: &Bdf, driver: &str) -> Result<(), Errno> {
        if driver == PCIBACK && !self.pciback_claims(bdf) {
            return Err(Errno::ENODEV);
        }
        // `pci_device_can_probe`: no driver probes a VF whose PF has
        // sriov_drivers_autoprobe off (without a driver_override), an
        // explicit bind included: `ENODEV` (seen: xl pci-assignable-add of
        // such a VF on the lab's dom0).
        let pf = self.dev(bdf).and_then(|d| d.physfn);
        let autoprobe = pf
            .and_then(|p| self.dev(&p))
            .and_then(|p| p.sriov.as_ref())
            .is_none_or(|s| s.drivers_autoprobe);
        if !autoprobe {
            return Err(Errno::ENODEV);
        }
        let dev = self.dev_mut(bdf).ok_or(Errno::ENODEV)?;
        if let Some(e) = dev.bind_fails.errno_for(driver) {
            // `call_driver_probe`: -ENODEV and -ENXIO are quiet rejections.
            if e != Errno::ENODEV && e != Errno::ENXIO {
                self.klog(format!(
                    "{driver}: probe of {bdf} failed with error -{}",
                    e as i32
                ));
            }
            return Err(e);
        }
        dev.driver = Some(driver.to_string());
        if driver == PCIBACK {
            self.klog(format!("pciback {bdf}: seizing device"));
        }
        Ok(())
    }

    /// A driver's probe of a device at boot, when the driver registers
    /// (`__driver_attach`): as any probe.
    pub fn boot_probe(&mut self, bdf: &Bdf, driver: &str) -> Result<(), Errno> {
        self.probe(bdf, driver)
    }

    /// `drivers/DRIVER/bind` (`bind_store`): `ENODEV` for a missing device
    /// or one the driver's id table does not match, `EBUSY` when it has a
    /// driver (`__driver_probe_device`), else the probe's own errno.
    pub fn sysfs_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), SysfsError> {
        if !self.driver_loaded(driver) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        let dev = self.dev(bdf).ok_or(SysfsError::Write(Errno::ENODEV))?;
        if !dev.matches(driver) {
            return Err(SysfsError::Write(Errno::ENODEV));
        }
        if dev.driver.is_some() {
            return Err(SysfsError::Write(Errno::EBUSY));
        }
        self.probe(bdf, driver).map_err(SysfsError::Write)
    }

    /// `drivers/DRIVER/unbind` (`unbind_store`): `ENODEV` unless that driver
    /// holds the device. Unbinding never fails otherwise (`remove` is void).
    ///
    /// Side effects the kernel has: pciback forgets `permissive` and warns
    /// when a guest still uses the device (`pcistub_remove`); unbinding a
    /// physical function first releases its VFs that pciback holds for no
    /// guest (`pci_stub_notifier`), then its driver disables SR-IOV unless
    /// a VF is still assigned (`pci_vfs_assigned`, as ixgbe, i40e and mlx5
    /// do in their `remove`), and the VFs disappear.
    pub fn sysfs_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), SysfsError> {
        if !self.driver_loaded(driver) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        match self.dev(bdf) {
            Some(d) if d.driver.as_deref() == Some(driver) => {}
            _ => return Err(SysfsError::Write(Errno::ENODEV)),
        }
        let vfs = self.virtfns(bdf);
        for vf in &vfs {
            let idle = self.holder(vf).is_none();
            if idle && self.dev(vf).and_then(|d| d.driver.as_deref()) == Some(PCIBACK) {
                self.release(vf);
            }
        }
        self.release(bdf);
        let vf_assigned = vfs
            .iter()
            .any(|vf| self.dev(vf).and_then(|d| d.driver.as_deref()) == Some(PCIBACK));
        if driver != PCIBACK && !vfs.is_empty() && !vf_assigned {
            self.devices.retain(|d| d.physfn.as_ref() != Some(bdf));
            if let Some(sriov) = self.dev_mut(bdf).and_then(|d| d.sriov.as_mut()) {
                sriov.num_vfs = 0;
            }
        }
        Ok(())
    }

    /// Detaches the driver from a device (`device_release_driver`).
    fn release(&mut self, bdf: &Bdf) {
        let Some(dev) = self.dev_mut(bdf) else { return };
        let old = dev.driver.take();
        if old.as_deref() == Some(PCIBACK) {
            self.pciback.permissive.retain(|p| p != bdf);
            if let Some(dom) = self.holder(bdf).map(|d| d.domid) {
                self.klog(format!(
                    "xen_pciback: ****** removing device {bdf} while still in-use by domain {dom}! ******"
                ));
                self.klog("xen_pciback: ****** driver domain may still access this device's i/o resources!".into());
            }
        }
    }

    /// `/sys/bus/pci/drivers_probe` (`drivers_probe_store`): `ENODEV` for a
    /// missing device; a bound device stays as it is; else each loaded
    /// driver whose table matches gets a probe, in registration order, and
    /// probe failures are skipped (`__device_attach_driver`). Finding no
    /// driver is not an error.
    pub fn sysfs_drivers_probe(&mut self, bdf: &Bdf) -> Result<(), SysfsError> {
        let dev = self.dev(bdf).ok_or(SysfsError::Write(Errno::ENODEV))?;
        if dev.driver.is_some() {
            return Ok(());
        }
        let candidates: Vec<String> = self
            .drivers
            .iter()
            .filter(|d| dev.matches(d))
            .cloned()
            .collect();
        for driver in candidates {
            if self.probe(bdf, &driver).is_ok() {
                break;
            }
        }
        Ok(())
    }

    /// pciback's `new_slot` (`pcistub_slot_add`): appends, duplicates and
    /// absent devices included.
    pub fn sysfs_new_slot(&mut self, bdf: &Bdf) -> Result<(), SysfsError> {
        if !self.driver_loaded(PCIBACK) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        self.pciback.slots.push(*bdf);
        Ok(())
    }

    /// pciback's `remove_slot` (`pcistub_device_id_remove`): removes every
    /// copy; `ENOENT` when there is none. A bound device stays bound.
    pub fn sysfs_remove_slot(&mut self, bdf: &Bdf) -> Result<(), SysfsError> {
        if !self.driver_loaded(PCIBACK) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        let before = self.pciback.slots.len();
        self.pciback.slots.retain(|s| s != bdf);
        if self.pciback.slots.len() == before {
            return Err(SysfsError::Write(Errno::ENOENT));
        }
        Ok(())
    }

    /// pciback's `slots`, as the file lists them (order and duplicates).
    pub fn sysfs_slots(&self) -> Result<Vec<Bdf>, SysfsError> {
        if !self.driver_loaded(PCIBACK) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        Ok(self.pciback.slots.clone())
    }

    /// pciback's `permissive` (`permissive_add`): `ENODEV` unless pciback
    /// holds the device; the first time, two warnings in the log.
    pub fn sysfs_permissive(&mut self, bdf: &Bdf) -> Result<(), SysfsError> {
        if !self.driver_loaded(PCIBACK) {
            return Err(SysfsError::Open(Errno::ENOENT));
        }
        if self.dev(bdf).and_then(|d| d.driver.as_deref()) != Some(PCIBACK) {
            return Err(SysfsError::Write(Errno::ENODEV));
        }
        if !self.pciback.permissive.contains(bdf) {
            self.pciback.permissive.push(*bdf);
            self.klog(format!(
                "pciback {bdf}: enabling permissive mode configuration space accesses!"
            ));
            self.klog(format!(
                "pciback {bdf}: permissive mode is potentially unsafe!"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::parse;
    use super::*;

    const HOST: &str = r#"{
  "drivers": ["pcieport", "e1000e", "ixgbe", "ixgbevf", "pciback"],
  "pciback": {"slots": ["0000:07:00.0"]},
  "devices": [
    {"bdf": "00:1c.0", "vendor": "0x8086", "device": "0xa110", "class": "0x060400", "driver": "pcieport"},
    {"bdf": "03:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000", "driver": "e1000e", "parent": "00:1c.0"},
    {"bdf": "04:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000", "drivers_that_match": ["e1000e"],
     "bind_fails": {"e1000e": "EIO"}},
    {"bdf": "07:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000", "driver": "pciback",
     "drivers_that_match": ["e1000e"]},
    {"bdf": "81:00.0", "vendor": "0x8086", "device": "0x10fb", "class": "0x020000", "driver": "ixgbe",
     "sriov": {"num_vfs": 4, "vf_device": "0x10ed", "vf_driver": "ixgbevf"}}
  ]
}"#;

    fn host() -> Snapshot {
        parse(HOST).expect("parse")
    }

    fn b(s: &str) -> Bdf {
        Bdf::parse(s).unwrap()
    }

    fn driver(s: &Snapshot, bdf: &str) -> Option<String> {
        s.dev(&b(bdf)).unwrap().driver.clone()
    }

    #[test]
    fn bind_refusals_are_the_kernels() {
        let mut s = host();
        // Not loaded: the bind file does not exist.
        assert_eq!(
            s.sysfs_bind(&b("03:00.0"), "igb"),
            Err(SysfsError::Open(Errno::ENOENT))
        );
        // Missing device, then a device the id table does not match.
        assert_eq!(
            s.sysfs_bind(&b("09:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        assert_eq!(
            s.sysfs_bind(&b("81:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        // Already bound, to the same driver or another one.
        assert_eq!(
            s.sysfs_bind(&b("03:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::EBUSY))
        );
        assert_eq!(
            s.sysfs_bind(&b("03:00.0"), PCIBACK),
            Err(SysfsError::Write(Errno::EBUSY))
        );
        // An injected probe failure.
        assert_eq!(
            s.sysfs_bind(&b("04:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::EIO))
        );
        assert!(s
            .kernel_log
            .last()
            .unwrap()
            .contains("probe of 0000:04:00.0 failed with error -5"));
    }

    #[test]
    fn pciback_binds_only_with_a_slot_for_the_device_or_a_bridge_above() {
        let mut s = host();
        s.sysfs_unbind(&b("03:00.0"), "e1000e").expect("unbind");
        assert_eq!(
            s.sysfs_bind(&b("03:00.0"), PCIBACK),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        s.sysfs_new_slot(&b("00:1c.0"))
            .expect("slot for the bridge");
        s.sysfs_bind(&b("03:00.0"), PCIBACK)
            .expect("claimed through the bridge");
        assert_eq!(driver(&s, "03:00.0").as_deref(), Some(PCIBACK));
        assert_eq!(
            s.kernel_log.last().unwrap(),
            "pciback 0000:03:00.0: seizing device"
        );
    }

    #[test]
    fn unbind_refuses_a_driver_that_does_not_hold_the_device() {
        let mut s = host();
        assert_eq!(
            s.sysfs_unbind(&b("03:00.0"), PCIBACK),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        assert_eq!(
            s.sysfs_unbind(&b("04:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        assert_eq!(
            s.sysfs_unbind(&b("09:00.0"), "e1000e"),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        assert_eq!(
            s.sysfs_unbind(&b("03:00.0"), "igb"),
            Err(SysfsError::Open(Errno::ENOENT))
        );
        s.sysfs_unbind(&b("03:00.0"), "e1000e").expect("unbind");
        assert_eq!(driver(&s, "03:00.0"), None);
    }

    #[test]
    fn slots_append_duplicates_and_remove_all_copies() {
        let mut s = host();
        s.sysfs_new_slot(&b("07:00.0")).unwrap();
        s.sysfs_new_slot(&b("0a:00.0")).unwrap();
        assert_eq!(
            s.sysfs_slots().unwrap(),
            [b("07:00.0"), b("07:00.0"), b("0a:00.0")]
        );
        s.sysfs_remove_slot(&b("07:00.0")).unwrap();
        assert_eq!(s.sysfs_slots().unwrap(), [b("0a:00.0")]);
        assert_eq!(
            s.sysfs_remove_slot(&b("07:00.0")),
            Err(SysfsError::Write(Errno::ENOENT))
        );
        // The device stays on pciback: remove_slot does not unbind.
        assert_eq!(driver(&s, "07:00.0").as_deref(), Some(PCIBACK));
    }

    #[test]
    fn without_pciback_its_files_do_not_exist() {
        let mut s = host();
        s.drivers.retain(|d| d != PCIBACK);
        assert_eq!(
            s.sysfs_new_slot(&b("03:00.0")),
            Err(SysfsError::Open(Errno::ENOENT))
        );
        assert_eq!(
            s.sysfs_remove_slot(&b("07:00.0")),
            Err(SysfsError::Open(Errno::ENOENT))
        );
        assert_eq!(s.sysfs_slots(), Err(SysfsError::Open(Errno::ENOENT)));
        assert_eq!(
            s.sysfs_bind(&b("07:00.0"), PCIBACK),
            Err(SysfsError::Open(Errno::ENOENT))
        );
    }

    #[test]
    fn reprobe_tries_matching_drivers_in_order_and_skips_failures() {
        let mut s = host();
        assert_eq!(
            s.sysfs_drivers_probe(&b("09:00.0")),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        // e1000e's probe fails on 04:00.0 and pciback has no slot: unbound, no error.
        s.sysfs_drivers_probe(&b("04:00.0"))
            .expect("no driver is not an error");
        assert_eq!(driver(&s, "04:00.0"), None);
        // With its slot still there, pciback would take it back, but
        // e1000e registered first.
        s.sysfs_unbind(&b("07:00.0"), PCIBACK).unwrap();
        s.sysfs_drivers_probe(&b("07:00.0")).unwrap();
        assert_eq!(driver(&s, "07:00.0").as_deref(), Some("e1000e"));
        // A bound device is left alone.
        s.sysfs_drivers_probe(&b("07:00.0")).unwrap();
        assert_eq!(driver(&s, "07:00.0").as_deref(), Some("e1000e"));
    }

    #[test]
    fn permissive_needs_a_device_on_pciback() {
        let mut s = host();
        assert_eq!(
            s.sysfs_permissive(&b("03:00.0")),
            Err(SysfsError::Write(Errno::ENODEV))
        );
        s.sysfs_permissive(&b("07:00.0")).unwrap();
        s.sysfs_permissive(&b("07:00.0")).unwrap();
        assert_eq!(s.pciback.permissive, [b("07:00.0")]);
        s.sysfs_unbind(&b("07:00.0"), PCIBACK).unwrap();
        assert!(s.pciback.permissive.is_empty());
    }

    #[test]
    fn unbinding_a_pf_drops_its_vfs_unless_one_is_assigned() {
        let mut s = host();
        let pf = b("81:00.0");
        let vf = s.virtfns(&pf)[0];
        s.sysfs_unbind(&vf, "ixgbevf").unwrap();
        s.sysfs_new_slot(&vf).unwrap();
        s.sysfs_bind(&vf, PCIBACK).unwrap();
        // The VF on pciback is idle: the notifier frees it, then ixgbe
        // disables SR-IOV.
        s.sysfs_unbind(&pf, "ixgbe").unwrap();
        assert!(s.virtfns(&pf).is_empty());
        assert_eq!(s.dev(&pf).unwrap().sriov.as_ref().unwrap().num_vfs, 0);
        assert!(s.dev(&vf).is_none());
        // Binding the PF driver again enables no VF: only a write to
        // sriov_numvfs does (ixgbe's probe, like ice's, leaves SR-IOV off).
        s.sysfs_bind(&pf, "ixgbe").unwrap();
        assert!(s.virtfns(&pf).is_empty());
        assert!(s.dev(&vf).is_none());
    }
}
