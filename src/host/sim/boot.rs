//! A simulated reboot: which driver takes each device when the dom0 boots
//! again, as Debian 12 and 13 boot it (seen on the real lab: see
//! `xen-lab/scenarios`' reboot scenarios, which compare this with a real
//! reboot).
//!
//! The order, and what each stage reads:
//!
//! 1. The kernel enumerates the bus: built-in drivers
//!    (`boot.builtin_drivers`) take their devices at once.
//! 2. The initramfs (`boot.initramfs`, if any): udev's coldplug loads, for
//!    every device, the modules that match it and that the initramfs holds,
//!    with the modprobe.d copy the initramfs was built with.
//! 3. The root filesystem: udev's coldplug again, every module available,
//!    with the current modprobe.d.
//! 4. systemd-modules-load: `boot.modules_load` and this project's
//!    modules-load.d file.
//!
//! This project's udev rule of SR-IOV functions (pci_sriov `persistent`):
//! a PF it names gets its VFs once bound, with the rule's autoprobe, and
//! the drivers loaded by then probe them. The initramfs has the copy it
//! was built with (initramfs-tools copies `/etc/udev/rules.d`), applied on
//! a PF's `bind` there; the root filesystem's coldplug replays `add` for
//! every PF bound so far and its rule applies then, or on the `bind` of a
//! PF bound later (a count the PF has already is a no-op, another one
//! `EBUSY`: a stale copy in the initramfs wins).
//!
//! Loading a module runs its `softdep ... pre:` modules first (kmod). When
//! xen-pciback loads, its `hide=` becomes its slots and it takes every
//! hidden device that no driver holds yet; any other driver takes every
//! unbound device it matches. A module already loaded is not loaded again:
//! options only count at the first load.
//!
//! Everything else a boot resets is reset: no guest runs, xenstore holds
//! no libxl records, nothing is quarantined, SR-IOV functions are gone
//! (`sriov_numvfs` starts at 0), the kernel log starts afresh. Files on
//! disk (this project's records among them) stay.

use std::collections::BTreeSet;

use super::snapshot::{Files, Snapshot};
use crate::bdf::Bdf;
use crate::bootcfg::sriov_rule::SriovRules;
use crate::bootcfg::{self, ModprobeRules};
use crate::host::{BootDrivers, CommandOutput, PCIBACK};

/// The boot drivers of a device in the snapshot: its `drivers_that_match`
/// (a module is named as its driver).
pub(super) fn boot_drivers(state: &Snapshot, bdf: &Bdf) -> BootDrivers {
    let Some(dev) = state.dev(bdf) else {
        return BootDrivers::default();
    };
    let modules: Vec<String> = dev
        .matching()
        .iter()
        .filter(|d| *d != PCIBACK)
        .cloned()
        .collect();
    let builtin = modules
        .iter()
        .filter(|m| state.boot.builtin_drivers.contains(m))
        .cloned()
        .collect();
    BootDrivers { modules, builtin }
}

/// `update-initramfs -u -k all`: the initramfs now holds the current
/// modprobe.d, and xen-pciback exactly when the hook exists.
pub(super) fn rebuild_initramfs(state: &mut Snapshot) -> CommandOutput {
    let argv = ["update-initramfs", "-u", "-k", "all"]
        .map(String::from)
        .to_vec();
    let hook = state.files.initramfs_hook.is_some();
    let Some(initramfs) = state.boot.initramfs.as_mut() else {
        return CommandOutput {
            argv,
            rc: 127,
            stdout: String::new(),
            stderr: "update-initramfs: not found\n".into(),
        };
    };
    if let Some(stderr) = &initramfs.rebuild_fails {
        return CommandOutput {
            argv,
            rc: 1,
            stdout: String::new(),
            stderr: format!("{stderr}\n"),
        };
    }
    initramfs.modules.retain(|m| !bootcfg::is_pciback(m));
    if hook {
        initramfs.modules.push(bootcfg::PCIBACK_MODULE.into());
    }
    initramfs.files = Files {
        modprobe_hide: state.files.modprobe_hide.clone(),
        modules_load: state.files.modules_load.clone(),
        initramfs_hook: state.files.initramfs_hook.clone(),
        // initramfs-tools' udev hook copies the rules of /etc/udev/rules.d.
        sriov_rule: state.files.sriov_rule.clone(),
        ..Files::default()
    };
    CommandOutput {
        argv,
        rc: 0,
        stdout: "update-initramfs: Generating /boot/initrd.img\n".into(),
        stderr: String::new(),
    }
}

/// Boots the simulated dom0 again.
pub fn reboot(state: &mut Snapshot) {
    reset(state);
    let builtin = state.boot.builtin_drivers.clone();
    let mut boot = Boot {
        state,
        loaded: BTreeSet::new(),
        sriov: None,
    };
    for driver in &builtin {
        boot.register(driver, &ModprobeRules::default());
    }
    if let Some(initramfs) = boot.state.boot.initramfs.clone() {
        let rules = ModprobeRules::parse(initramfs.files.modprobe_hide.as_deref().unwrap_or(""));
        let held: BTreeSet<String> = initramfs
            .modules
            .iter()
            .map(|m| bootcfg::normal(m))
            .collect();
        boot.sriov = Some(SriovRules::parse(
            initramfs.files.sriov_rule.as_deref().unwrap_or(""),
        ));
        boot.coldplug(&rules, &|m| held.contains(&bootcfg::normal(m)));
    }
    let rules = ModprobeRules::parse(boot.state.files.modprobe_hide.as_deref().unwrap_or(""));
    let sriov = SriovRules::parse(boot.state.files.sriov_rule.as_deref().unwrap_or(""));
    let bound: Vec<Bdf> = sriov
        .rules
        .iter()
        .map(|r| r.pf)
        .filter(|pf| boot.state.dev(pf).is_some_and(|d| d.driver.is_some()))
        .collect();
    boot.sriov = Some(sriov);
    for pf in bound {
        boot.sriov_rule(&pf);
    }
    boot.coldplug(&rules, &|_| true);
    let mut later = boot.state.boot.modules_load.clone();
    if let Some(text) = &boot.state.files.modules_load {
        later.extend(module_names(text));
    }
    for m in later {
        boot.modprobe(&m, &rules, &|_| true);
    }
}

/// The module names of a modules-load.d text.
fn module_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

/// The state a boot starts from: no driver bound or loaded, nothing of the
/// last boot's Xen state.
fn reset(state: &mut Snapshot) {
    state.domains.clear();
    state.xenstore.retain(|k, _| !k.starts_with("/libxl"));
    state.kernel_log.clear();
    state.drivers.clear();
    state.pciback = Default::default();
    state.devices.retain(|d| d.physfn.is_none());
    for d in &mut state.devices {
        if d.drivers_that_match.is_none() {
            d.drivers_that_match = Some(super::lookup::default_matching(d.driver.as_ref()));
        }
        d.driver = None;
        d.quarantined = false;
        if let Some(s) = d.sriov.as_mut() {
            s.num_vfs = 0;
            s.drivers_autoprobe = true;
        }
    }
}

/// A boot in progress: the modules loaded so far (normalised names).
struct Boot<'a> {
    state: &'a mut Snapshot,
    loaded: BTreeSet<String>,
    /// The SR-IOV rules, once the root filesystem's udev runs.
    sriov: Option<SriovRules>,
}

impl Boot<'_> {
    /// udev's coldplug: for each device in bus order, every module that
    /// matches it and is `available`, whether the device is bound or not
    /// (udev asks for its modalias either way).
    fn coldplug(&mut self, rules: &ModprobeRules, available: &dyn Fn(&str) -> bool) {
        let wanted: Vec<String> = self
            .state
            .devices
            .iter()
            .flat_map(|d| d.matching().iter().filter(|m| *m != PCIBACK).cloned())
            .collect();
        for m in wanted {
            if available(&m) {
                self.modprobe(&m, rules, available);
            }
        }
    }

    /// `modprobe MODULE`: its pre-softdeps first (those not available are
    /// skipped, as kmod skips a softdep it cannot find), then the module.
    fn modprobe(&mut self, module: &str, rules: &ModprobeRules, available: &dyn Fn(&str) -> bool) {
        if self.loaded.contains(&bootcfg::normal(module)) {
            return;
        }
        for pre in rules.pre_of(module).to_vec() {
            if available(&pre) {
                self.modprobe(&pre, rules, available);
            }
        }
        let driver = if bootcfg::is_pciback(module) {
            PCIBACK
        } else {
            module
        };
        self.register(driver, rules);
        self.loaded.insert(bootcfg::normal(module));
    }

    /// A driver registers (`driver_register`): it probes every unbound
    /// device it matches, in bus order; pciback only those its `hide=`
    /// names (or that sit behind a hidden bridge).
    fn register(&mut self, driver: &str, rules: &ModprobeRules) {
        if self.state.driver_loaded(driver) {
            return;
        }
        self.state.drivers.push(driver.to_string());
        if driver == PCIBACK {
            self.state.pciback.slots.clone_from(&rules.hidden);
        }
        let unbound: Vec<Bdf> = self
            .state
            .devices
            .iter()
            .filter(|d| d.driver.is_none())
            .filter(|d| (driver == PCIBACK) || d.matching().iter().any(|m| m == driver))
            .map(|d| d.bdf)
            .collect();
        for bdf in unbound {
            // A probe that fails leaves the device for the next driver.
            if self.state.boot_probe(&bdf, driver).is_ok() {
                self.sriov_rule(&bdf);
            }
        }
    }

    /// The SR-IOV rule of a PF just bound, if the root filesystem's udev
    /// runs and has one for it (the kernel logs a write it refuses; udev
    /// goes on).
    fn sriov_rule(&mut self, pf: &Bdf) {
        let Some(rule) = self.sriov.as_ref().and_then(|r| r.get(pf)).copied() else {
            return;
        };
        let _ = self.state.sysfs_sriov_autoprobe(pf, rule.autoprobe);
        let _ = self.state.sysfs_sriov_numvfs(pf, rule.num_vfs);
    }
}
