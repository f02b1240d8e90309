//! The dom0 guard: why a device must not be taken away from dom0.
//!
//! Handing dom0's own disk controller, its management NIC or its console GPU
//! to pciback breaks the host, often beyond a remote repair. [`refusals`]
//! looks at a device and what dom0 uses it for ([`Dom0Use`], which covers
//! everything behind a bridge too) and returns every reason to refuse, not
//! just the first, so that one run tells the whole story. `force: true` in a
//! module overrides it.
//!
//! An SR-IOV physical function with VFs enabled is refused too: its dom0
//! driver's `remove` disables SR-IOV (`ice_free_vfs`, `i40e_free_vfs`,
//! ixgbe and mlx5 alike call `pci_disable_sriov` unless a VF is assigned),
//! which deletes every VF (`sriov_del_vfs` in `drivers/pci/iov.c`), and
//! binding the driver again does not bring them back: only a new write to
//! `sriov_numvfs` does. (nvme keeps them, "driver left SR-IOV enabled after
//! remove", seen on the lab's dom0: VFs whose PF has no driver, whose count
//! nothing can change until it has one again.)
//!
//! ```
//! use xenpci::guard::{refusals, Refusal};
//! use xenpci::host::{Dom0Use, NetUse, PciDevice};
//! # let dev = PciDevice { bdf: "02:00.0".parse().unwrap(), vendor: 0x8086, device: 0x1533,
//! #   subsystem_vendor: 0, subsystem_device: 0, conventional_bridge: false, parent: None,
//! #   class: 0x020000, driver: Some("igb".into()), is_bridge: false, boot_vga: false,
//! #   iommu_group: None, physfn: None, virtfns: vec![], sriov: None };
//! let used = Dom0Use { net: vec![NetUse { name: "eno1".into(), up: true, ..NetUse::default() }], ..Dom0Use::default() };
//! assert_eq!(refusals(&dev, &used), vec![Refusal::NetUp { iface: "eno1".into() }]);
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::bdf::Bdf;
use crate::host::{Dom0Use, PciDevice, PCIBACK};

/// One reason the guard refuses a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// A block device on it is mounted.
    Mounted {
        /// The block device.
        dev: String,
        /// Where.
        mountpoint: String,
    },
    /// Swap is on a block device on it.
    Swap {
        /// The block device.
        dev: String,
    },
    /// A block device on it is held by md, LVM or device-mapper.
    Held {
        /// The block device.
        dev: String,
        /// The holder (`dm-0`, `md0`).
        holder: String,
    },
    /// A network interface on it is up.
    NetUp {
        /// The interface.
        iface: String,
    },
    /// A network interface on it carries an address.
    NetAddress {
        /// The interface.
        iface: String,
        /// The address.
        address: String,
    },
    /// Traffic is routed through a network interface on it.
    NetRoute {
        /// The interface.
        iface: String,
        /// The route.
        route: String,
    },
    /// A network interface on it is a port of a bridge or bond.
    NetEnslaved {
        /// The interface.
        iface: String,
        /// The bridge or bond.
        master: String,
    },
    /// It is the boot/console GPU (`boot_vga`).
    BootVga,
    /// It is a bridge: everything behind it would go with it.
    Bridge,
    /// It is an SR-IOV physical function with VFs enabled: unbinding its
    /// driver disables SR-IOV and the VFs vanish.
    SriovVfs {
        /// The VFs that would vanish, in BDF order.
        vfs: Vec<Bdf>,
    },
    /// It sits behind a bridge to conventional PCI, whose devices share
    /// one requester id, and others behind it are still dom0's.
    SharedRequesterId {
        /// The topmost such bridge above it.
        bridge: Bdf,
        /// The devices behind it that a dom0 driver holds, in BDF order.
        with: Vec<Bdf>,
    },
}

/// How many VFs a refusal names one by one before it counts the rest.
const VFS_NAMED: usize = 3;

/// `vfs` compactly: all of them when few, else the first few, how many
/// more, and the last.
fn vf_list(vfs: &[Bdf]) -> String {
    let named: Vec<String> = vfs.iter().take(VFS_NAMED).map(Bdf::to_string).collect();
    match vfs.len().checked_sub(VFS_NAMED) {
        // "and 1 more" takes as much room as the one.
        None | Some(0) | Some(1) => vfs
            .iter()
            .map(Bdf::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        Some(more) => format!(
            "{} and {more} more, to {}",
            named.join(", "),
            vfs.last().map(Bdf::to_string).unwrap_or_default()
        ),
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Mounted { dev, mountpoint } => write!(f, "{dev} is mounted on {mountpoint}"),
            Refusal::Swap { dev } => write!(f, "{dev} is in use as swap"),
            Refusal::Held { dev, holder } => write!(f, "{dev} is held by {holder}"),
            Refusal::NetUp { iface } => write!(f, "network interface {iface} is up"),
            Refusal::NetAddress { iface, address } => {
                write!(f, "network interface {iface} has address {address}")
            }
            Refusal::NetRoute { iface, route } => {
                write!(f, "network interface {iface} carries the route {route}")
            }
            Refusal::NetEnslaved { iface, master } => {
                write!(f, "network interface {iface} is a port of {master}")
            }
            Refusal::BootVga => f.write_str("it is the boot VGA (dom0's console)"),
            Refusal::Bridge => {
                f.write_str("it is a PCI bridge (everything behind it would go too)")
            }
            Refusal::SharedRequesterId { bridge, with } => write!(
                f,
                "it sits behind the bridge to conventional PCI {bridge}, whose devices share \
                 one requester id: Xen would send the DMA of {} (still on a dom0 driver) to \
                 the guest too; take them together, or leave it",
                vf_list(with)
            ),
            Refusal::SriovVfs { vfs } => write!(
                f,
                "it is an SR-IOV physical function with {} VF(s) enabled ({}): unbinding its \
                 driver deletes them with most drivers (ice, i40e, ixgbe and mlx5 disable \
                 SR-IOV in their remove; nvme leaves them behind without it), and they do not \
                 come back when it is given back (pci_sriov numvfs: 0 first hands over the PF \
                 alone)",
                vfs.len(),
                vf_list(vfs)
            ),
        }
    }
}

/// Every reason dom0 needs `dev`, given what it uses it for.
pub fn refusals(dev: &PciDevice, used: &Dom0Use) -> Vec<Refusal> {
    let mut out = Vec::new();
    if dev.is_bridge {
        out.push(Refusal::Bridge);
    }
    if dev.boot_vga {
        out.push(Refusal::BootVga);
    }
    if !dev.virtfns.is_empty() {
        out.push(Refusal::SriovVfs {
            vfs: dev.virtfns.clone(),
        });
    }
    for b in &used.block {
        for m in &b.mounts {
            out.push(Refusal::Mounted {
                dev: b.name.clone(),
                mountpoint: m.clone(),
            });
        }
        if b.swap {
            out.push(Refusal::Swap {
                dev: b.name.clone(),
            });
        }
        for h in &b.holders {
            out.push(Refusal::Held {
                dev: b.name.clone(),
                holder: h.clone(),
            });
        }
    }
    for n in &used.net {
        let iface = || n.name.clone();
        if n.up {
            out.push(Refusal::NetUp { iface: iface() });
        }
        for a in &n.addresses {
            out.push(Refusal::NetAddress {
                iface: iface(),
                address: a.clone(),
            });
        }
        for r in &n.routes {
            out.push(Refusal::NetRoute {
                iface: iface(),
                route: r.clone(),
            });
        }
        if let Some(m) = &n.master {
            out.push(Refusal::NetEnslaved {
                iface: iface(),
                master: m.clone(),
            });
        }
    }
    out
}

/// The fates devices share, read once from every device of the host:
/// those behind one bridge to conventional PCI (Xen maps them by the
/// bridge's requester id, `find_upstream_bridge` in
/// `xen/drivers/passthrough/pci.c`, and does not refuse to split them: the
/// last domain mapped wins), and those of one IOMMU group where the kernel
/// has groups (a Xen dom0 usually has none: Xen owns the IOMMU).
pub struct Fates<'a> {
    devices: HashMap<Bdf, &'a PciDevice>,
    groups: HashMap<u32, Vec<&'a PciDevice>>,
    any_conventional: bool,
}

impl<'a> Fates<'a> {
    /// The fates of `all`, the host's devices.
    pub fn new(all: &'a [PciDevice]) -> Fates<'a> {
        let mut groups: HashMap<u32, Vec<&PciDevice>> = HashMap::new();
        for d in all {
            if let Some(g) = d.iommu_group {
                groups.entry(g).or_default().push(d);
            }
        }
        Fates {
            devices: all.iter().map(|d| (d.bdf, d)).collect(),
            groups,
            any_conventional: all.iter().any(|d| d.conventional_bridge),
        }
    }

    /// The topmost bridge to conventional PCI above `bdf`, if any.
    fn conventional_root(&self, bdf: &Bdf) -> Option<Bdf> {
        let mut top = None;
        let mut cur = self.devices.get(bdf).and_then(|d| d.parent);
        let mut steps = 0;
        while let Some(p) = cur.filter(|_| steps <= self.devices.len()) {
            let bridge = self.devices.get(&p);
            if bridge.is_some_and(|b| b.conventional_bridge) {
                top = Some(p);
            }
            cur = bridge.and_then(|b| b.parent);
            steps += 1;
        }
        top
    }

    /// Why taking `dev` (with the devices `taking`) would take others from
    /// dom0 too: the devices behind its conventional bridge that a dom0
    /// driver still holds.
    pub fn refusal(&self, dev: &PciDevice, taking: &[Bdf]) -> Option<Refusal> {
        if !self.any_conventional || dev.is_bridge {
            return None;
        }
        let bridge = self.conventional_root(&dev.bdf)?;
        let mut with: Vec<Bdf> = self
            .devices
            .values()
            .filter(|d| d.bdf != dev.bdf && !d.is_bridge && !taking.contains(&d.bdf))
            .filter(|d| d.driver.as_deref().is_some_and(|x| x != PCIBACK))
            .filter(|d| self.conventional_root(&d.bdf) == Some(bridge))
            .map(|d| d.bdf)
            .collect();
        with.sort();
        (!with.is_empty()).then_some(Refusal::SharedRequesterId { bridge, with })
    }

    /// A warning when `dev` shares its IOMMU group with devices a dom0
    /// driver holds (bridges aside, which every group below them has):
    /// Xen does not use the kernel's groups and allows it, but the group
    /// says the devices are not isolated from each other.
    pub fn group_warning(&self, dev: &PciDevice, taking: &[Bdf]) -> Option<String> {
        let g = dev.iommu_group?;
        let mut with: Vec<Bdf> = self
            .groups
            .get(&g)?
            .iter()
            .filter(|d| d.bdf != dev.bdf && !d.is_bridge && !taking.contains(&d.bdf))
            .filter(|d| d.driver.as_deref().is_some_and(|x| x != PCIBACK))
            .map(|d| d.bdf)
            .collect();
        with.sort();
        if with.is_empty() {
            return None;
        }
        Some(format!(
            "{}: it shares IOMMU group {g} with {}, which dom0's drivers still hold: the \
             kernel cannot isolate them from each other (Xen allows it; taking them \
             together is safer)",
            dev.bdf,
            vf_list(&with)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vfs(n: u8) -> Vec<Bdf> {
        (1..=n)
            .map(|i| Bdf {
                domain: 0,
                bus: 0x81,
                dev: i >> 3,
                func: i & 7,
            })
            .collect()
    }

    #[test]
    fn vfs_listed_compactly() {
        assert_eq!(vf_list(&vfs(2)), "0000:81:00.1, 0000:81:00.2");
        assert_eq!(vf_list(&vfs(3)), "0000:81:00.1, 0000:81:00.2, 0000:81:00.3");
        assert_eq!(
            vf_list(&vfs(4)),
            "0000:81:00.1, 0000:81:00.2, 0000:81:00.3, 0000:81:00.4"
        );
        assert_eq!(
            vf_list(&vfs(64)),
            "0000:81:00.1, 0000:81:00.2, 0000:81:00.3 and 61 more, to 0000:81:08.0"
        );
    }
}
