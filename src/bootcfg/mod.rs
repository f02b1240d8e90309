//! The boot configuration that keeps devices on xen-pciback across reboots:
//! the text of this project's modprobe.d, modules-load.d and initramfs-tools
//! files, read and written without I/O; and, in [`sriov_rule`], the udev
//! rule that gives SR-IOV physical functions their VFs at boot.
//!
//! On Debian, xen-pciback is a module, and `options xen-pciback hide=(BDF)`
//! alone loses the race: udev's coldplug loads a device's own driver (from
//! the initramfs, or early in the root filesystem's boot) before
//! systemd-modules-load gets to xen-pciback, and pciback's `hide=` only
//! takes devices that no driver holds yet. So [`ModprobeConf`] also says
//! `softdep DRIVER pre: xen-pciback` for each hidden device's drivers:
//! every `modprobe DRIVER`, udev's included, then loads xen-pciback (with
//! its `hide=`) first, and pciback takes the device before its driver
//! registers. The softdep needs xen-pciback where the driver is loaded
//! from: the initramfs, which carries a copy of `/etc/modprobe.d/*.conf`
//! and so has to be rebuilt after every change, and which with Debian's
//! `MODULES=most` holds network drivers as well as storage ones (on a real
//! Debian 12 dom0, e1000 and nvme bound from it). mkinitramfs follows the
//! softdep of a driver it holds and adds xen-pciback by itself (seen on
//! Debian 12); [`INITRAMFS_HOOK`] keeps it there whatever it does.
//! [`MODULES_LOAD`] loads xen-pciback at boot for hidden devices that no
//! dom0 driver matches.
//!
//! ```
//! use xenpci::bootcfg::ModprobeConf;
//!
//! let mut conf = ModprobeConf::default();
//! conf.hidden.push("00:04.0".parse().unwrap());
//! conf.softdeps.insert("e1000".into());
//! let text = conf.render();
//! assert!(text.contains("options xen-pciback hide=(0000:00:04.0)\n"));
//! assert!(text.contains("softdep e1000 pre: xen-pciback\n"));
//! assert_eq!(ModprobeConf::parse(&text), conf);
//! ```

pub mod sriov_rule;

use std::collections::{BTreeMap, BTreeSet};

use crate::bdf::Bdf;

/// The module name of xen-pciback, as modprobe takes it.
pub const PCIBACK_MODULE: &str = "xen-pciback";

/// The text of the modules-load.d file.
pub const MODULES_LOAD: &str =
    "# Managed by xenpci (pci_assignable persistent: true): load xen-pciback\n\
# at boot, so that it takes the devices hidden in\n\
# /etc/modprobe.d/xenpci-pciback.conf. Edits are overwritten.\n\
xen-pciback\n";

/// The text of the initramfs-tools hook.
pub const INITRAMFS_HOOK: &str = "#!/bin/sh\n\
# Managed by xenpci (pci_assignable persistent: true): xen-pciback in the\n\
# initramfs, so that the softdeps of /etc/modprobe.d/xenpci-pciback.conf\n\
# load it before drivers loaded from there. Edits are overwritten.\n\
PREREQ=\"\"\n\
prereqs() { echo \"$PREREQ\"; }\n\
case \"$1\" in prereqs) prereqs; exit 0 ;; esac\n\
. /usr/share/initramfs-tools/hook-functions\n\
manual_add_modules xen-pciback\n";

/// This project's modprobe.d file: the hidden devices and the drivers
/// that must wait for xen-pciback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModprobeConf {
    /// The devices xen-pciback takes when it loads, sorted.
    pub hidden: Vec<Bdf>,
    /// The modules to load only after xen-pciback.
    pub softdeps: BTreeSet<String>,
}

impl ModprobeConf {
    /// What `text` hides and delays. Entries it cannot read as one BDF
    /// (wildcards written by hand) are kept out.
    pub fn parse(text: &str) -> ModprobeConf {
        let rules = ModprobeRules::parse(text);
        let mut hidden = rules.hidden;
        hidden.sort();
        hidden.dedup();
        let softdeps = rules
            .pre
            .into_iter()
            .filter(|(_, pre)| pre.iter().any(|p| is_pciback(p)))
            .map(|(m, _)| m)
            .collect();
        ModprobeConf { hidden, softdeps }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Managed by xenpci (pci_assignable persistent: true): devices that\n\
             # xen-pciback takes before any dom0 driver at boot. Edits are overwritten.\n",
        );
        if !self.hidden.is_empty() {
            let hide: String = self.hidden.iter().map(|b| format!("({b})")).collect();
            out.push_str(&format!("options {PCIBACK_MODULE} hide={hide}\n"));
        }
        if !self.softdeps.is_empty() {
            out.push_str("# Their drivers load only after xen-pciback, which takes them first.\n");
        }
        for m in &self.softdeps {
            out.push_str(&format!("softdep {m} pre: {PCIBACK_MODULE}\n"));
        }
        out
    }

    /// Whether `bdf` is hidden at boot.
    pub fn contains(&self, bdf: &Bdf) -> bool {
        self.hidden.binary_search(bdf).is_ok()
    }

    /// Adds or removes `bdf`; returns whether the list changed.
    pub fn set(&mut self, bdf: Bdf, hidden: bool) -> bool {
        match (self.hidden.binary_search(&bdf), hidden) {
            (Err(i), true) => {
                self.hidden.insert(i, bdf);
                true
            }
            (Ok(i), false) => {
                self.hidden.remove(i);
                true
            }
            _ => false,
        }
    }
}

/// What kmod reads from a modprobe.d text that matters at boot: the
/// devices `hide=` gives xen-pciback, and each module's `softdep ... pre:`
/// modules. The simulated boot reads any file's rules with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModprobeRules {
    /// xen-pciback's `hide=`, in the order given.
    pub hidden: Vec<Bdf>,
    /// Per module, the modules to load before it.
    pub pre: BTreeMap<String, Vec<String>>,
}

impl ModprobeRules {
    /// The rules of `text`: `options xen-pciback hide=(..)(..)` and
    /// `softdep MODULE pre: A B [post: C]`; comments and other lines are
    /// skipped. Module names compare with `-` and `_` alike, as kmod does.
    pub fn parse(text: &str) -> ModprobeRules {
        let mut rules = ModprobeRules::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["options", m, opts @ ..] if is_pciback(m) => {
                    let hide = opts.iter().filter_map(|w| w.strip_prefix("hide="));
                    let bdfs = hide
                        .flat_map(|v| v.split(['(', ')']))
                        .filter_map(|b| Bdf::parse(b).ok());
                    rules.hidden.extend(bdfs);
                }
                ["softdep", m, rest @ ..] => {
                    let pre = rest
                        .iter()
                        .skip_while(|w| **w != "pre:")
                        .skip(1)
                        .take_while(|w| **w != "post:")
                        .map(|w| w.to_string());
                    rules.pre.entry(normal(m)).or_default().extend(pre);
                }
                _ => {}
            }
        }
        rules
    }

    /// The modules to load before `module`.
    pub fn pre_of(&self, module: &str) -> &[String] {
        self.pre.get(&normal(module)).map_or(&[], Vec::as_slice)
    }
}

/// Whether a module name is xen-pciback's (either spelling).
pub fn is_pciback(module: &str) -> bool {
    normal(module) == normal(PCIBACK_MODULE)
}

/// A module name with kmod's `-`/`_` folded to `_`.
pub fn normal(module: &str) -> String {
    module.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    #[test]
    fn conf_round_trips() {
        let mut c = ModprobeConf::default();
        assert!(c.set(b("07:00.0"), true));
        assert!(c.set(b("0000:03:00.1"), true));
        assert!(!c.set(b("07:00.0"), true));
        c.softdeps.insert("nvme".into());
        let text = c.render();
        assert!(text.contains("options xen-pciback hide=(0000:03:00.1)(0000:07:00.0)\n"));
        assert!(text.contains("softdep nvme pre: xen-pciback\n"));
        assert_eq!(ModprobeConf::parse(&text), c);
    }

    #[test]
    fn comments_wildcards_and_other_softdeps_are_kept_out() {
        let c = ModprobeConf::parse(
            "# hide=(0000:01:00.0)\noptions xen-pciback hide=(02:00.*)(0000:04:00.0)\n\
             softdep e1000 pre: foo post: xen-pciback\n",
        );
        assert_eq!(c.hidden, vec![b("0000:04:00.0")]);
        assert!(c.softdeps.is_empty());
    }

    #[test]
    fn rules_read_any_spelling_and_order() {
        let r = ModprobeRules::parse(
            "options xen_pciback permissive=1 hide=(0000:00:05.0)\n\
             softdep ixgbe pre: a xen_pciback post: c\n",
        );
        assert_eq!(r.hidden, vec![b("00:05.0")]);
        assert_eq!(r.pre_of("ixgbe"), ["a", "xen_pciback"]);
        assert!(r.pre_of("e1000").is_empty());
    }
}
