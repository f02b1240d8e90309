//! The simulated libxl 4.17.7, guest side: `libxl_device_pci_list`,
//! `libxl__device_pci_add` and `libxl__device_pci_remove_common` from
//! `tools/libs/light/libxl_pci.c`, with their messages.
//!
//! Simplified on purpose: no device model (QEMU's part of an HVM hot-plug
//! always succeeds, and it puts a device without `@vslot` in the first free
//! slot from 4 up), no BAR or IRQ permissions, no stub domains.

use nix::errno::Errno;

use super::libxl::{site, Level, Libxl, Site, ERROR_FAIL, ERROR_INVAL};
use super::snapshot::{AttachedPci, DomainType};
use crate::bdf::{Bdf, Func};
use crate::host::PCIBACK;
use crate::spec::{Device, PciDefaults, PciSpec};

/// What a spec names once names are resolved: libxl's `libxl_device_pci`
/// address, with `vfunc_mask` all-ones for function `*`.
#[derive(Debug, Clone)]
struct Target {
    bdf: Bdf,
    all_functions: bool,
    name: Option<String>,
}

impl Libxl<'_> {
    /// `libxl__domain_type`: `None` (logged) for a domain that does not run.
    fn domain_type(&mut self, domid: u32) -> Option<DomainType> {
        let t = self.s.domain(domid).map(|d| d.kind);
        if t.is_none() {
            let at = Site("libxl_dom.c", 37, "libxl__domain_type");
            if self.s.xen_version() >= (4, 18) {
                // 4.18 asks with xc_domain_getinfo_single, which fails ESRCH.
                let errno = Some(Errno::ESRCH);
                self.log.log(
                    Level::Error,
                    at,
                    Some(domid),
                    errno,
                    "unable to get dominfo",
                );
            } else {
                let msg = format!("unable to get domain type for domid={domid}");
                self.log.log(Level::Error, at, None, None, &msg);
            }
        }
        t
    }

    /// `libxl_device_pci_list`: `None` when the guest has no PCI backend.
    pub fn device_pci_list(&self, domid: u32) -> Option<Vec<AttachedPci>> {
        self.s
            .domain(domid)
            .map(|d| d.devices.clone())
            .filter(|d| !d.is_empty())
    }

    /// Resolves the spec's device; on an unknown name, libxl's `pci` keeps
    /// the last record `name2bdf` read, and the failure path then removes
    /// that device's `domid` record.
    fn target(&self, spec: &PciSpec) -> Result<Target, (i32, Option<Bdf>)> {
        match &spec.device {
            Device::Bdf(p) => {
                let (func, all) = match p.func {
                    Func::One(f) => (f, false),
                    Func::All => (0, true),
                };
                let bdf = Bdf {
                    domain: p.domain,
                    bus: p.bus,
                    dev: p.dev,
                    func,
                };
                Ok(Target {
                    bdf,
                    all_functions: all,
                    name: None,
                })
            }
            Device::Name(n) => self.name2bdf(n).map(|bdf| Target {
                bdf,
                all_functions: false,
                name: Some(n.clone()),
            }),
        }
    }

    /// `pci_multifunction_check`: every function of the slot must be on
    /// pciback; returns the functions present.
    fn pci_multifunction_check(&mut self, bdf: &Bdf) -> Result<Vec<u8>, ()> {
        let funcs: Vec<Bdf> = self
            .s
            .devices
            .iter()
            .filter(|d| (d.bdf.domain, d.bdf.bus, d.bdf.dev) == (bdf.domain, bdf.bus, bdf.dev))
            .map(|d| d.bdf)
            .collect();
        for f in &funcs {
            if self.s.dev(f).and_then(|d| d.driver.as_deref()) != Some(PCIBACK) {
                let msg = format!("{f} is not assigned to pciback driver");
                self.log(
                    Level::Error,
                    1008,
                    "pci_multifunction_check",
                    None,
                    None,
                    &msg,
                );
                return Err(());
            }
        }
        Ok(funcs.iter().map(|f| f.func).collect())
    }

    /// `libxl__device_pci_reset`: pciback has no `do_flr` on Linux 6.1, so
    /// the device's own `reset` file is used; without one, libxl complains
    /// (with the PCI segment where a domid would go) and carries on.
    fn device_pci_reset(&mut self, bdf: &Bdf) {
        if !self.s.dev(bdf).is_some_and(|d| d.reset) {
            let msg = format!("The kernel doesn't support reset from sysfs for PCI device {bdf}");
            self.log(
                Level::Error,
                1573,
                "libxl__device_pci_reset",
                Some(u32::from(bdf.domain)),
                None,
                &msg,
            );
        }
    }

    /// `xl pci-attach`: `libxl_device_pci_add` and its completion. Returns
    /// libxl's rc.
    pub fn device_pci_add(&mut self, domid: u32, spec: &PciSpec) -> i32 {
        let rc = match self.target(spec) {
            Ok(t) => match self.pci_add(domid, spec, &t) {
                Ok(()) => 0,
                Err(rc) => {
                    self.pci_add_failed(domid, rc, t.name.as_deref(), &t.bdf);
                    rc
                }
            },
            Err((rc, last)) => {
                let name = match &spec.device {
                    Device::Name(n) => Some(n.as_str()),
                    Device::Bdf(_) => None,
                };
                self.pci_add_failed(
                    domid,
                    rc,
                    name,
                    &last.unwrap_or(Bdf {
                        domain: 0,
                        bus: 0,
                        dev: 0,
                        func: 0,
                    }),
                );
                rc
            }
        };
        if rc != 0 {
            self.addrm_failed("add");
        }
        rc
    }

    /// `device_pci_add_done` on failure.
    fn pci_add_failed(&mut self, domid: u32, rc: i32, name: Option<&str>, bdf: &Bdf) {
        const F: &str = "device_pci_add_done";
        match name {
            Some(n) => {
                let msg = format!("libxl__device_pci_add failed for PCI device '{n}' (rc {rc})");
                self.log(Level::Error, 1803, F, Some(domid), None, &msg);
            }
            None => {
                let msg = format!(
                    "libxl__device_pci_add failed for PCI device {:x}:{:x}:{:x}.{:x} (rc {rc})",
                    bdf.domain, bdf.bus, bdf.dev, bdf.func
                );
                self.log(Level::Error, 1809, F, Some(domid), None, &msg);
            }
        }
        self.pci_info_xs_remove(bdf, "domid");
    }

    /// `device_addrm_aocomplete` on failure.
    fn addrm_failed(&mut self, action: &str) {
        let at = site(
            self.s.xen_version(),
            "libxl_device.c",
            1486,
            "device_addrm_aocomplete",
        );
        self.log.log(
            Level::Error,
            at,
            None,
            None,
            &format!("unable to {action} device"),
        );
    }

    /// `libxl__device_pci_add`, `device_pci_add_stubdom_done`, `do_pci_add`
    /// and `pci_add_dm_done`, for a domain without a stub domain.
    fn pci_add(&mut self, domid: u32, spec: &PciSpec, t: &Target) -> Result<(), i32> {
        const F: &str = "libxl__device_pci_add";
        let pci = spec.resolve(&PciDefaults::default());
        let mut bdf = t.bdf;
        if self.domain_type(domid) == Some(DomainType::Hvm) {
            // xc_test_assign_device: the IOMMU check, then device_assigned.
            let why = match self.s.iommu_enabled_for(domid) {
                Err(Errno::EOPNOTSUPP) => Some("cannot be assigned - no IOMMU"),
                _ if self.s.dev(&bdf).is_none() || self.s.holder(&bdf).is_some() => {
                    Some("already assigned to a different guest")
                }
                _ => None,
            };
            if let Some(why) = why {
                let msg = format!("PCI device {bdf} {why}?");
                self.log(Level::Error, 1658, F, Some(domid), None, &msg);
                return Err(-1);
            }
        }
        // `!pciback_dev_is_assigned()` is false for its error (-1) too.
        if pci.seize && self.pciback_dev_is_assigned(&bdf) == Ok(false) {
            self.assignable_add(&bdf, None, true)?;
        }
        let assignable = self
            .assignable_list()
            .is_some_and(|l| l.iter().any(|(b, _)| *b == bdf));
        if !assignable {
            let msg = format!(
                "PCI device {:x}:{:x}:{:x}.{:x} is not assignable",
                bdf.domain, bdf.bus, bdf.dev, bdf.func
            );
            self.log(Level::Error, 1677, F, Some(domid), None, &msg);
            return Err(ERROR_FAIL);
        }
        self.pci_info_xs_write(&bdf, "domid", &domid.to_string());
        self.device_pci_reset(&bdf);

        // device_pci_add_stubdom_done: with `*`, libxl 4.17 goes through
        // the functions from 7 down but returns after adding the first one
        // it finds, so only the highest function is attached.
        if t.all_functions {
            if pci.vslot.is_none() {
                self.log(
                    Level::Error,
                    1756,
                    "device_pci_add_stubdom_done",
                    Some(domid),
                    None,
                    "Must specify a v-slot for multi-function devices",
                );
                return Err(ERROR_INVAL);
            }
            let funcs = self
                .pci_multifunction_check(&bdf)
                .map_err(|()| ERROR_FAIL)?;
            if let Some(hi) = funcs.iter().max() {
                bdf.func = *hi;
            }
        }

        // do_pci_add / pci_add_dm_done, which asks again even when
        // do_pci_add failed (as the lab's dom0 printed for a gone domain).
        let kind = self.domain_type(domid);
        let _ = self.domain_type(domid);
        let kind = kind.ok_or(ERROR_FAIL)?;
        if pci.permissive {
            let r = self.s.sysfs_permissive(&bdf);
            if self
                .sysfs_write_bdf(&super::kernel::drv_attr(PCIBACK, "permissive"), r)
                .is_err()
            {
                self.log(
                    Level::Error,
                    1512,
                    "pci_add_dm_done",
                    Some(domid),
                    None,
                    "Setting permissive for device",
                );
                return Err(ERROR_FAIL);
            }
        }
        if let Err(e) = self.s.xc_assign_device(domid, &bdf) {
            if kind == DomainType::Hvm || e != Errno::ENOSYS {
                self.log(
                    Level::Error,
                    1529,
                    "pci_add_dm_done",
                    Some(domid),
                    Some(e),
                    "xc_assign_device failed",
                );
                return Err(ERROR_FAIL);
            }
        }
        let vslot = match (pci.vslot, kind) {
            (Some(v), _) => v,
            (None, DomainType::Hvm) => self.free_hvm_slot(domid),
            (None, _) => 0,
        };
        let opts = format!(
            "msitranslate={},power_mgmt={},permissive={},rdm_policy={}",
            u8::from(pci.msitranslate),
            u8::from(pci.power_mgmt),
            u8::from(pci.permissive),
            pci.rdm_policy
        );
        if let Some(dom) = self.s.domain_mut(domid) {
            dom.devices.push(AttachedPci {
                bdf,
                vslot,
                opts,
                name: t.name.clone(),
            });
        }
        Ok(())
    }

    /// The slot QEMU would give an HVM guest's new device.
    fn free_hvm_slot(&self, domid: u32) -> u8 {
        let used: Vec<u8> = self
            .s
            .domain(domid)
            .map(|d| d.devices.iter().map(|a| a.vslot).collect())
            .unwrap_or_default();
        (4..=0x1f).find(|s| !used.contains(s)).unwrap_or(0)
    }

    /// `xl pci-detach [-f]`: `libxl__device_pci_remove_common` and its
    /// completion. With `force`, a device not attached still goes through
    /// the reset and deassign steps (which complain) and the result is 0.
    pub fn device_pci_remove(&mut self, domid: u32, spec: &PciSpec, force: bool) -> i32 {
        let rc = match self.target(spec) {
            Err((rc, _)) => rc,
            Ok(t) => self.pci_remove(domid, &t, force),
        };
        if rc != 0 {
            self.addrm_failed("remove");
        }
        rc
    }

    fn pci_remove(&mut self, domid: u32, t: &Target, force: bool) -> i32 {
        let funcs: Vec<u8> = if t.all_functions {
            match self.pci_multifunction_check(&t.bdf) {
                Ok(f) => f,
                Err(()) => return ERROR_FAIL,
            }
        } else {
            vec![t.bdf.func]
        };
        let mut order = funcs.clone();
        order.sort_unstable_by(|a, b| b.cmp(a));
        let mut last = t.bdf;
        for func in order {
            let bdf = Bdf { func, ..t.bdf };
            last = bdf;
            let rc = self.do_pci_remove(domid, &bdf);
            if rc != 0 && !force {
                return rc;
            }
            self.pci_remove_detached(domid, &bdf, t.all_functions);
        }
        self.pci_info_xs_remove(&last, "domid");
        0
    }

    /// `do_pci_remove`: is it attached? (BAR and IRQ permissions are not
    /// simulated.)
    fn do_pci_remove(&mut self, domid: u32, bdf: &Bdf) -> i32 {
        let _ = self.domain_type(domid);
        let Some(list) = self.device_pci_list(domid) else {
            return ERROR_FAIL;
        };
        if !list.iter().any(|a| a.bdf == *bdf) {
            self.log(
                Level::Error,
                1969,
                "do_pci_remove",
                Some(domid),
                None,
                "PCI device not attached to this domain",
            );
            return ERROR_INVAL;
        }
        0
    }

    /// `pci_remove_detached` and `pci_remove_done`: reset, deassign (the
    /// device goes to quarantine), drop the backend entry.
    fn pci_remove_detached(&mut self, domid: u32, bdf: &Bdf, all_functions: bool) {
        let vfunc = if all_functions { bdf.func } else { 0 };
        if vfunc == 0 {
            self.device_pci_reset(bdf);
        }
        let hvm = self
            .s
            .domain(domid)
            .is_some_and(|d| d.kind == DomainType::Hvm);
        if let Err(e) = self.s.xc_deassign_device(domid, bdf) {
            if hvm || e != Errno::ENOSYS {
                self.log(
                    Level::Error,
                    2258,
                    "pci_remove_detached",
                    Some(domid),
                    Some(e),
                    "xc_deassign_device failed",
                );
            }
        }
        // libxl__device_pci_remove_xenstore.
        let Some(dom) = self.s.domain_mut(domid) else {
            return;
        };
        if dom.devices.is_empty() {
            return;
        }
        let before = dom.devices.len();
        dom.devices.retain(|a| a.bdf != *bdf);
        if dom.devices.len() == before {
            self.log(
                Level::Error,
                262,
                "libxl__device_pci_remove_xenstore",
                Some(domid),
                None,
                "Couldn't find the device on xenstore",
            );
        }
    }
}
