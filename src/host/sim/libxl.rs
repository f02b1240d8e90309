//! The simulated libxl 4.17.7 (its messages at the lines of the snapshot's
//! `xl_version`: `site`) and hypervisor: `libxl_pci.c`'s assignable
//! composites, step by step as in `tools/libs/light/libxl_pci.c` (each
//! function here is named after the one it mirrors), the messages they log
//! (with libxl's own file, line and function, as xl prints them), and the
//! part of Xen's `xen/drivers/passthrough/pci.c` they reach through
//! `xc_assign_device`/`xc_deassign_device` (who owns a device: dom0,
//! `DOMID_IO` when quarantined, or a guest).
//!
//! Attaching to guests is in `attach.rs`, the logger in `log.rs`, the
//! command line in `xl.rs` and `xl_cmd.rs`.

use nix::errno::Errno;

use super::kernel::{dev_path, drv_attr, drv_path, SysfsError};
pub use super::log::{Level, Logger, Site};
use super::snapshot::Snapshot;
use crate::bdf::Bdf;
use crate::host::{xs_pci_path, PCIBACK};

/// libxl's `ERROR_FAIL`.
pub const ERROR_FAIL: i32 = -3;
/// libxl's `ERROR_INVAL`.
pub const ERROR_INVAL: i32 = -6;
/// libxl's `ERROR_NOTFOUND`.
pub const ERROR_NOTFOUND: i32 = -23;

/// `DOMID_IO`: the domain Xen quarantines devices to.
pub const DOMID_IO: u32 = 0x7ff1;

/// Who holds a device in Xen's eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The hardware domain.
    Dom0,
    /// `DOMID_IO`: quarantined.
    Io,
    /// A guest.
    Guest(u32),
}

const PCI: &str = "libxl_pci.c";

/// libxl with its context: the simulated host and xl's logger.
pub struct Libxl<'a> {
    /// The host.
    pub s: &'a mut Snapshot,
    /// xl's stderr.
    pub log: &'a mut Logger,
}

impl Snapshot {
    /// Who owns `bdf` in Xen.
    pub fn owner(&self, bdf: &Bdf) -> Owner {
        if let Some(d) = self.holder(bdf) {
            Owner::Guest(d.domid)
        } else if self.dev(bdf).is_some_and(|d| d.quarantined) {
            Owner::Io
        } else {
            Owner::Dom0
        }
    }

    /// `XEN_DOMCTL_assign_device` (`iommu_do_domctl`, `device_assigned`,
    /// `assign_device`): `EOPNOTSUPP` without an IOMMU or for a guest
    /// created without passthrough, `ENODEV` for a device Xen does not
    /// know, `EBUSY` when a guest holds it. Quarantining a quarantined
    /// device again succeeds. The caller records a guest's attachment.
    pub fn xc_assign_device(&mut self, domid: u32, bdf: &Bdf) -> Result<(), Errno> {
        self.iommu_enabled_for(domid)?;
        let dev = self.dev(bdf).ok_or(Errno::ENODEV)?;
        if let Owner::Guest(_) = self.owner(bdf) {
            return Err(Errno::EBUSY);
        }
        if let Some(e) = dev.assign_fails {
            return Err(e.0);
        }
        if let Some(d) = self.dev_mut(bdf) {
            d.quarantined = domid == DOMID_IO;
        }
        Ok(())
    }

    /// `XEN_DOMCTL_deassign_device` (`deassign_device`): `ENODEV` unless
    /// `domid` owns the device. From `DOMID_IO` it goes back to dom0; from a
    /// guest to `DOMID_IO`, as 4.17's default `iommu=quarantine` does. The
    /// caller drops a guest's attachment.
    pub fn xc_deassign_device(&mut self, domid: u32, bdf: &Bdf) -> Result<(), Errno> {
        self.iommu_enabled_for(domid)?;
        let owned = match self.owner(bdf) {
            Owner::Io => domid == DOMID_IO,
            Owner::Guest(g) => g == domid,
            Owner::Dom0 => false,
        };
        if !owned || self.dev(bdf).is_none() {
            return Err(Errno::ENODEV);
        }
        if let Some(d) = self.dev_mut(bdf) {
            d.quarantined = domid != DOMID_IO;
        }
        Ok(())
    }

    /// `iommu_do_domctl`'s first check: `is_iommu_enabled(d)`, which for a
    /// guest also needs `passthrough` other than `disabled`.
    pub fn iommu_enabled_for(&self, domid: u32) -> Result<(), Errno> {
        if !self.iommu {
            return Err(Errno::EOPNOTSUPP);
        }
        if domid != DOMID_IO {
            match self.domain(domid) {
                None => return Err(Errno::ESRCH),
                Some(d) if d.passthrough.as_deref() == Some("disabled") => {
                    return Err(Errno::EOPNOTSUPP)
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Where a libxl message comes from in the snapshot's Xen version, given
/// its site in 4.17.7 (which every caller names). From xen.git: 4.18.x and
/// 4.19.x keep 4.17's libxl_pci.c lines up to `libxl_device_pci_add`; 4.20
/// added one line near the top and eleven before the attach path (seen on
/// the lab's 4.20 dom0: `libxl_pci.c:803: ... already assigned to
/// pciback`); libxl_device.c moved by one line in 4.18 and by 14 in 4.20.
pub fn site(version: (u32, u32), file: &'static str, line_417: u32, func: &'static str) -> Site {
    let since_420 = version >= (4, 20);
    let since_418 = version >= (4, 18);
    let line = match (file, line_417) {
        (PCI, 1969) if since_420 => 1978,
        (PCI, 1969) if since_418 => 1967,
        (PCI, 2258) if since_420 => 2293,
        (PCI, 2258) if since_418 => 2273,
        (PCI, l @ ..=1008) if since_420 => l + 1,
        (PCI, l @ 1512..=1809) if since_420 => l + 11,
        ("libxl_device.c", 1486) if since_420 => 1500,
        ("libxl_device.c", 1486) if since_418 => 1487,
        (_, l) => l,
    };
    Site(file, line, func)
}

impl Libxl<'_> {
    /// Logs a libxl_pci.c message; `line` is its line in 4.17.7.
    pub fn log(
        &mut self,
        level: Level,
        line: u32,
        func: &'static str,
        domid: Option<u32>,
        errno: Option<Errno>,
        msg: &str,
    ) {
        let at = site(self.s.xen_version(), PCI, line, func);
        self.log.log(level, at, domid, errno, msg);
    }

    /// `sysfs_write_bdf`: logs the failed `open` or `write`, returns errno.
    pub fn sysfs_write_bdf(
        &mut self,
        path: &str,
        result: Result<(), SysfsError>,
    ) -> Result<(), Errno> {
        match result {
            Ok(()) => Ok(()),
            Err(SysfsError::Open(e)) => {
                self.log(
                    Level::Error,
                    371,
                    "sysfs_write_bdf",
                    None,
                    Some(e),
                    &format!("Couldn't open {path}"),
                );
                Err(e)
            }
            Err(SysfsError::Write(e)) => {
                self.log(
                    Level::Error,
                    380,
                    "sysfs_write_bdf",
                    None,
                    Some(e),
                    &format!("write to {path} returned -1"),
                );
                Err(e)
            }
        }
    }

    /// `pci_info_xs_read`.
    pub fn pci_info_xs_read(&self, bdf: &Bdf, node: &str) -> Option<String> {
        self.s.xs_get(&xs_pci_path(bdf, Some(node)))
    }

    /// `pci_info_xs_write`.
    pub fn pci_info_xs_write(&mut self, bdf: &Bdf, node: &str, value: &str) {
        // Paths under /libxl are always writable in the simulator.
        let _ = self.s.xs_set(&xs_pci_path(bdf, Some(node)), value);
    }

    /// `pci_info_xs_remove`.
    pub fn pci_info_xs_remove(&mut self, bdf: &Bdf, node: &str) {
        let _ = self.s.xs_remove(&xs_pci_path(bdf, Some(node)));
    }

    /// `pciback_dev_is_assigned`: the device's link in pciback's folder.
    /// `Err` (logged) when pciback is not loaded.
    pub fn pciback_dev_is_assigned(&mut self, bdf: &Bdf) -> Result<bool, ()> {
        if !self.s.driver_loaded(PCIBACK) {
            self.log(
                Level::Error,
                693,
                "pciback_dev_is_assigned",
                None,
                None,
                "Looks like pciback driver is not loaded",
            );
            return Err(());
        }
        Ok(self.s.dev(bdf).and_then(|d| d.driver.as_deref()) == Some(PCIBACK))
    }

    /// `pciback_dev_has_slot`. `Err(errno)` (logged) when `slots` cannot
    /// be opened.
    fn pciback_dev_has_slot(&mut self, bdf: &Bdf) -> Result<bool, Errno> {
        match self.s.sysfs_slots() {
            Ok(slots) => Ok(slots.contains(bdf)),
            Err(e) => {
                let path = drv_attr(PCIBACK, "slots");
                self.log(
                    Level::Error,
                    667,
                    "pciback_dev_has_slot",
                    None,
                    Some(e.errno()),
                    &format!("Couldn't open {path}"),
                );
                Err(e.errno())
            }
        }
    }

    /// `pciback_dev_assign`: a slot if there is none, then the bind.
    fn pciback_dev_assign(&mut self, bdf: &Bdf) -> Result<(), ()> {
        const F: &str = "pciback_dev_assign";
        match self.pciback_dev_has_slot(bdf) {
            Err(e) => {
                self.log(
                    Level::Error,
                    718,
                    F,
                    None,
                    Some(e),
                    "Error checking for pciback slot",
                );
                return Err(());
            }
            Ok(false) => {
                let r = self.s.sysfs_new_slot(bdf);
                if let Err(e) = self.sysfs_write_bdf(&drv_attr(PCIBACK, "new_slot"), r) {
                    self.log(
                        Level::Error,
                        723,
                        F,
                        None,
                        Some(e),
                        "Couldn't bind device to pciback!",
                    );
                    return Err(());
                }
            }
            Ok(true) => {}
        }
        let r = self.s.sysfs_bind(bdf, PCIBACK);
        if let Err(e) = self.sysfs_write_bdf(&drv_attr(PCIBACK, "bind"), r) {
            self.log(
                Level::Error,
                729,
                F,
                None,
                Some(e),
                "Couldn't bind device to pciback!",
            );
            return Err(());
        }
        Ok(())
    }

    /// `pciback_dev_unassign`: unbind, then drop the slot.
    fn pciback_dev_unassign(&mut self, bdf: &Bdf) -> Result<(), ()> {
        if self.sysfs_dev_unbind(bdf).is_err() {
            self.log(
                Level::Error,
                739,
                "pciback_dev_unassign",
                None,
                None,
                "Couldn't unbind device!",
            );
            return Err(());
        }
        if self.pciback_dev_has_slot(bdf) == Ok(true) {
            let r = self.s.sysfs_remove_slot(bdf);
            if let Err(e) = self.sysfs_write_bdf(&drv_attr(PCIBACK, "remove_slot"), r) {
                self.log(
                    Level::Error,
                    747,
                    "pciback_dev_unassign",
                    None,
                    Some(e),
                    "Couldn't remove pciback slot",
                );
                return Err(());
            }
        }
        Ok(())
    }

    /// `sysfs_dev_unbind`: unbinds from the current driver, if any, and
    /// returns the driver's path (the `realpath` of the `driver` link).
    fn sysfs_dev_unbind(&mut self, bdf: &Bdf) -> Result<Option<String>, ()> {
        let Some(driver) = self.s.dev(bdf).and_then(|d| d.driver.clone()) else {
            return Ok(None);
        };
        let r = self.s.sysfs_unbind(bdf, &driver);
        if let Err(e) = self.sysfs_write_bdf(&drv_attr(&driver, "unbind"), r) {
            self.log(
                Level::Error,
                520,
                "sysfs_dev_unbind",
                None,
                Some(e),
                "Couldn't unbind device",
            );
            return Err(());
        }
        Ok(Some(drv_path(&driver)))
    }

    /// `libxl__device_pci_assignable_add`. `xl pci-assignable-add` always
    /// passes `rebind` = 1. No rollback: a failed bind leaves the device
    /// without a driver (and the `driver_path` record written).
    pub fn assignable_add(
        &mut self,
        bdf: &Bdf,
        name: Option<&str>,
        rebind: bool,
    ) -> Result<(), i32> {
        const F: &str = "libxl__device_pci_assignable_add";
        if let Some(n) = name {
            if n.len() > 64 {
                self.log(Level::Error, 777, F, None, None, "Name too long");
                return Err(ERROR_FAIL);
            }
            if !n.bytes().all(|c| c.is_ascii_graphic()) {
                self.log(
                    Level::Error,
                    783,
                    F,
                    None,
                    None,
                    "Names may only include printable characters",
                );
                return Err(ERROR_FAIL);
            }
        }
        if self.s.dev(bdf).is_none() {
            let msg = format!("Couldn't lstat {}", dev_path(bdf));
            self.log(Level::Error, 792, F, None, Some(Errno::ENOENT), &msg);
            return Err(ERROR_FAIL);
        }
        let assigned = self.pciback_dev_is_assigned(bdf).map_err(|()| ERROR_FAIL)?;
        if assigned {
            self.log(
                Level::Warn,
                802,
                F,
                None,
                None,
                &format!("{bdf} already assigned to pciback"),
            );
        } else {
            let Ok(driver_path) = self.sysfs_dev_unbind(bdf) else {
                self.log(
                    Level::Error,
                    808,
                    F,
                    None,
                    None,
                    &format!("Couldn't unbind {bdf} from driver"),
                );
                return Err(ERROR_FAIL);
            };
            if rebind {
                if let Some(dp) = &driver_path {
                    self.pci_info_xs_write(bdf, "driver_path", dp);
                } else if let Some(dp) = self.pci_info_xs_read(bdf, "driver_path") {
                    let msg = format!("{bdf} not bound to a driver, will be rebound to {dp}");
                    self.log(Level::Info, 819, F, None, None, &msg);
                } else {
                    let msg = format!("{bdf} not bound to a driver, will not be rebound.");
                    self.log(Level::Warn, 822, F, None, None, &msg);
                }
            } else {
                self.pci_info_xs_remove(bdf, "driver_path");
            }
            if self.pciback_dev_assign(bdf).is_err() {
                self.log(
                    Level::Error,
                    830,
                    F,
                    None,
                    None,
                    "Couldn't bind device to pciback!",
                );
                return Err(ERROR_FAIL);
            }
        }
        match name {
            Some(n) => self.pci_info_xs_write(bdf, "name", n),
            None => self.pci_info_xs_remove(bdf, "name"),
        }
        if self.s.xc_assign_device(DOMID_IO, bdf).is_err() {
            self.log(
                Level::Error,
                848,
                F,
                None,
                None,
                &format!("failed to quarantine {bdf}"),
            );
            return Err(ERROR_FAIL);
        }
        Ok(())
    }

    /// `name2bdf`: the device whose `/libxl/pci/*/name` is `name`. On
    /// failure, libxl's `pci` holds the last record it looked at, which
    /// its callers go on to use (see `attach.rs`); that BDF comes back too.
    pub fn name2bdf(&self, name: &str) -> Result<Bdf, (i32, Option<Bdf>)> {
        let mut last = None;
        for child in self.s.xs_children("/libxl/pci") {
            let Ok(bdf) = Bdf::from_xenstore_form(&child) else {
                continue;
            };
            last = Some(bdf);
            if self.pci_info_xs_read(&bdf, "name").as_deref() == Some(name) {
                return Ok(bdf);
            }
        }
        Err((ERROR_NOTFOUND, last))
    }

    /// `libxl__device_pci_assignable_remove` for a device already looked
    /// up: de-quarantine (nothing else happens if that fails), unassign
    /// from pciback, rebind to the recorded driver with `rebind`, forget
    /// the name. The folder `/libxl/pci/BDF` stays; without `rebind` so
    /// does `driver_path`, and the device is left without a driver.
    pub fn assignable_remove(&mut self, bdf: &Bdf, rebind: bool) -> Result<(), i32> {
        const F: &str = "libxl__device_pci_assignable_remove";
        if self.s.xc_deassign_device(DOMID_IO, bdf).is_err() {
            self.log(
                Level::Error,
                906,
                F,
                None,
                None,
                &format!("failed to de-quarantine {bdf}"),
            );
            return Err(ERROR_FAIL);
        }
        match self.pciback_dev_is_assigned(bdf) {
            Err(()) => return Err(ERROR_FAIL),
            // libxl ignores how the unassign went.
            Ok(true) => {
                let _ = self.pciback_dev_unassign(bdf);
            }
            Ok(false) => self.log(Level::Warn, 917, F, None, None, "Not bound to pciback"),
        }
        match self.pci_info_xs_read(bdf, "driver_path") {
            Some(dp) if rebind => {
                self.log(
                    Level::Info,
                    925,
                    F,
                    None,
                    None,
                    &format!("Rebinding to driver at {dp}"),
                );
                let r = match dp.strip_prefix(&drv_path("")) {
                    Some(driver) if !driver.is_empty() && !driver.contains('/') => {
                        self.s.sysfs_bind(bdf, driver)
                    }
                    // A path outside sysfs's drivers: nothing to open.
                    _ => Err(SysfsError::Open(Errno::ENOENT)),
                };
                if let Err(e) = self.sysfs_write_bdf(&format!("{dp}/bind"), r) {
                    self.log(
                        Level::Error,
                        930,
                        F,
                        None,
                        Some(e),
                        &format!("Couldn't bind device to {dp}"),
                    );
                    return Err(-1);
                }
                self.pci_info_xs_remove(bdf, "driver_path");
            }
            Some(_) => {}
            None if rebind => self.log(
                Level::Warn,
                938,
                F,
                None,
                None,
                "Couldn't find path for original driver; not rebinding",
            ),
            None => {}
        }
        self.pci_info_xs_remove(bdf, "name");
        Ok(())
    }

    /// `libxl_device_pci_assignable_list`: the devices bound to pciback
    /// whose record has no `domid` (not attached), with their names. libxl
    /// reads pciback's folder in `readdir` order, which on sysfs is
    /// kernfs's hash order; the simulator sorts by BDF instead. `None`
    /// (logged) when pciback is not loaded.
    pub fn assignable_list(&mut self) -> Option<Vec<(Bdf, Option<String>)>> {
        if !self.s.driver_loaded(PCIBACK) {
            self.log(
                Level::Error,
                444,
                "libxl_device_pci_assignable_list",
                None,
                None,
                "Looks like pciback driver not loaded",
            );
            return None;
        }
        let bound: Vec<Bdf> = self
            .s
            .devices
            .iter()
            .filter(|d| d.driver.as_deref() == Some(PCIBACK))
            .map(|d| d.bdf)
            .collect();
        Some(
            bound
                .into_iter()
                .filter(|b| self.pci_info_xs_read(b, "domid").is_none())
                .map(|b| (b, self.pci_info_xs_read(&b, "name")))
                .collect(),
        )
    }
}
