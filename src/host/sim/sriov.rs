//! SR-IOV in the simulated kernel: `sriov_numvfs` and
//! `sriov_drivers_autoprobe` of a physical function, as
//! `drivers/pci/iov.c` handles them (Linux 6.1 and 6.12 alike).
//!
//! `sriov_numvfs_store` checks, in this order: a count above
//! `sriov_totalvfs` is `ERANGE`; the count it already has is a no-op; a PF
//! without a driver, or whose driver has no `sriov_configure` (pciback
//! among them), is `ENOENT`; 0 removes every VF, unless one is assigned
//! (`pci_vfs_assigned`: pciback flags every device it takes as assigned,
//! in a guest or not, and the PF drivers' `sriov_configure` refuse with
//! `EPERM`, "Cannot modify SR-IOV while VFs are assigned"; seen on the
//! lab's nvme PF, 6.1 and 6.12); a new count while VFs exist is `EBUSY`
//! ("Disable before enabling"). New VFs appear
//! at routing id `PF + offset + i * stride` and, with autoprobe on, are
//! offered to the loaded drivers in registration order (pciback takes one
//! it has a slot for, as its `hide=` gives at boot).

use nix::errno::Errno;

use super::kernel::SysfsError;
use super::snapshot::{SimDevice, Snapshot};
use crate::bdf::Bdf;
use crate::host::PCIBACK;

impl Snapshot {
    /// A write of `count` to the PF's `sriov_numvfs`.
    pub fn sysfs_sriov_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), SysfsError> {
        let pf = self.dev(bdf).ok_or(SysfsError::Open(Errno::ENOENT))?;
        // Only a PF has the file.
        let sriov = pf.sriov.clone().ok_or(SysfsError::Open(Errno::ENOENT))?;
        let total = sriov.total_vfs.unwrap_or(sriov.num_vfs);
        if count > total {
            return Err(SysfsError::Write(Errno::ERANGE));
        }
        if count == sriov.num_vfs {
            return Ok(());
        }
        let driver = match pf.driver.clone() {
            None => {
                self.klog(format!(
                    "pci {bdf}: no driver bound to device; cannot configure SR-IOV"
                ));
                return Err(SysfsError::Write(Errno::ENOENT));
            }
            Some(d) if d == PCIBACK || !sriov.configurable => {
                self.klog(format!(
                    "{d} {bdf}: driver does not support SR-IOV configuration via sysfs"
                ));
                return Err(SysfsError::Write(Errno::ENOENT));
            }
            Some(d) => d,
        };
        if count == 0 {
            return self.remove_vfs(bdf, &driver);
        }
        if sriov.num_vfs > 0 {
            self.klog(format!(
                "{driver} {bdf}: {} VFs already enabled. Disable before enabling {count} VFs",
                sriov.num_vfs
            ));
            return Err(SysfsError::Write(Errno::EBUSY));
        }
        self.add_vfs(bdf, count)
    }

    /// A write to `sriov_drivers_autoprobe`.
    pub fn sysfs_sriov_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), SysfsError> {
        let pf = self.dev_mut(bdf).ok_or(SysfsError::Open(Errno::ENOENT))?;
        let sriov = pf.sriov.as_mut().ok_or(SysfsError::Open(Errno::ENOENT))?;
        sriov.drivers_autoprobe = on;
        Ok(())
    }

    /// `sriov_configure(pdev, 0)`: refused while pciback holds a VF (for
    /// a guest or not), else every VF is removed.
    fn remove_vfs(&mut self, pf: &Bdf, driver: &str) -> Result<(), SysfsError> {
        let vfs = self.virtfns(pf);
        let assigned = |s: &Snapshot, vf: &Bdf| {
            s.holder(vf).is_some() || s.dev(vf).and_then(|d| d.driver.as_deref()) == Some(PCIBACK)
        };
        if vfs.iter().any(|vf| assigned(self, vf)) {
            self.klog(format!(
                "{driver} {pf}: Cannot modify SR-IOV while VFs are assigned"
            ));
            return Err(SysfsError::Write(Errno::EPERM));
        }
        self.devices.retain(|d| d.physfn.as_ref() != Some(pf));
        self.pciback.permissive.retain(|p| !vfs.contains(p));
        if let Some(s) = self.dev_mut(pf).and_then(|d| d.sriov.as_mut()) {
            s.num_vfs = 0;
        }
        Ok(())
    }

    /// `sriov_enable`: the VFs made, then probed when autoprobe is on.
    fn add_vfs(&mut self, pf: &Bdf, count: u16) -> Result<(), SysfsError> {
        let Some(dev) = self.dev(pf).cloned() else {
            return Err(SysfsError::Open(Errno::ENOENT));
        };
        let Some(sriov) = dev.sriov.clone() else {
            return Err(SysfsError::Open(Errno::ENOENT));
        };
        let mut made: Vec<SimDevice> = Vec::new();
        for i in 0..count {
            let mut vf = Snapshot::generated_vf(&dev, &sriov, i)
                .map_err(|_| SysfsError::Write(Errno::ERANGE))?;
            vf.driver = None;
            made.push(vf);
        }
        let bdfs: Vec<Bdf> = made.iter().map(|v| v.bdf).collect();
        // A VF listed by hand (its state kept from before) gives way.
        self.devices.retain(|d| !bdfs.contains(&d.bdf));
        self.devices.extend(made);
        self.devices.sort_by_key(|d| d.bdf);
        if let Some(s) = self.dev_mut(pf).and_then(|d| d.sriov.as_mut()) {
            s.num_vfs = count;
        }
        if sriov.drivers_autoprobe {
            for vf in &bdfs {
                // Finding no driver is not an error.
                let _ = self.sysfs_drivers_probe(vf);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::sim::load;

    fn host(extra: &str) -> Snapshot {
        load::parse(&format!(
            r#"{{"drivers": ["nvme", "pciback"], "devices": [
             {{"bdf": "00:07.0", "vendor": "0x1b36", "device": "0x0010", "class": "0x010802",
               "driver": "nvme", "sriov": {{"num_vfs": 0, "total_vfs": 4, "vf_device": "0x0010",
               "vf_driver": "nvme"{extra}}}}}]}}"#
        ))
        .unwrap()
    }

    fn b(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    fn errno(r: Result<(), SysfsError>) -> Errno {
        r.unwrap_err().errno()
    }

    #[test]
    fn numvfs_follows_sriov_numvfs_store() {
        let mut s = host("");
        let pf = b("00:07.0");
        assert_eq!(errno(s.sysfs_sriov_numvfs(&pf, 5)), Errno::ERANGE);
        s.sysfs_sriov_numvfs(&pf, 2).unwrap();
        assert_eq!(s.virtfns(&pf), vec![b("00:07.1"), b("00:07.2")]);
        assert_eq!(
            s.dev(&b("00:07.1")).unwrap().driver.as_deref(),
            Some("nvme")
        );
        // The same count again is nothing; another one is EBUSY.
        s.sysfs_sriov_numvfs(&pf, 2).unwrap();
        assert_eq!(errno(s.sysfs_sriov_numvfs(&pf, 3)), Errno::EBUSY);
        assert!(s
            .kernel_log
            .last()
            .unwrap()
            .contains("2 VFs already enabled"));
        s.sysfs_sriov_numvfs(&pf, 0).unwrap();
        assert!(s.virtfns(&pf).is_empty());
        s.sysfs_sriov_numvfs(&pf, 3).unwrap();
        assert_eq!(s.virtfns(&pf).len(), 3);
    }

    #[test]
    fn a_pf_without_a_configuring_driver_is_enoent() {
        let mut s = host("");
        let pf = b("00:07.0");
        s.sysfs_unbind(&pf, "nvme").unwrap();
        assert_eq!(errno(s.sysfs_sriov_numvfs(&pf, 1)), Errno::ENOENT);
        s.sysfs_new_slot(&pf).unwrap();
        s.sysfs_bind(&pf, PCIBACK).unwrap();
        assert_eq!(errno(s.sysfs_sriov_numvfs(&pf, 1)), Errno::ENOENT);
        assert!(s
            .kernel_log
            .last()
            .unwrap()
            .contains("does not support SR-IOV"));
        // A device without the capability has no sriov_numvfs at all.
        let mut s = host("");
        s.devices[0].sriov = None;
        assert!(matches!(
            s.sysfs_sriov_numvfs(&pf, 1),
            Err(SysfsError::Open(Errno::ENOENT))
        ));
    }

    #[test]
    fn autoprobe_off_leaves_vfs_driverless_and_pciback_takes_hidden_ones() {
        let mut s = host("");
        let pf = b("00:07.0");
        s.sysfs_sriov_autoprobe(&pf, false).unwrap();
        s.sysfs_sriov_numvfs(&pf, 1).unwrap();
        assert_eq!(s.dev(&b("00:07.1")).unwrap().driver, None);
        // No driver may bind it, pciback included (`pci_device_can_probe`).
        s.sysfs_new_slot(&b("00:07.1")).unwrap();
        assert_eq!(
            s.sysfs_bind(&b("00:07.1"), PCIBACK).unwrap_err().errno(),
            Errno::ENODEV
        );
        s.sysfs_remove_slot(&b("00:07.1")).unwrap();
        s.sysfs_sriov_numvfs(&pf, 0).unwrap();
        s.sysfs_sriov_autoprobe(&pf, true).unwrap();
        // pciback registered after nvme, so nvme wins unless pciback is first.
        s.drivers = vec!["pciback".into(), "nvme".into()];
        s.pciback.slots.push(b("00:07.2"));
        s.sysfs_sriov_numvfs(&pf, 2).unwrap();
        assert_eq!(
            s.dev(&b("00:07.1")).unwrap().driver.as_deref(),
            Some("nvme")
        );
        assert_eq!(
            s.dev(&b("00:07.2")).unwrap().driver.as_deref(),
            Some(PCIBACK)
        );
    }
}
