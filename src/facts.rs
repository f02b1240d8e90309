//! The facts of a dom0's PCI pass-through: every device with its driver,
//! IOMMU group and SR-IOV family, what is assignable, which guest holds
//! what, what the dom0 guard says of each device, and hints from the kernel
//! log. Reads the host, changes nothing.

use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

use crate::assignable::{self, AssignableDevice};
use crate::bdf::{Bdf, BdfPattern};
use crate::bootcfg::ModprobeConf;
use crate::domcfg;
use crate::fileio;
use crate::guard;
use crate::host::{self, xs_pci_path, Domain, Host, HostError, PciDevice};

/// One PCI function.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceFacts {
    /// Its address.
    pub bdf: Bdf,
    /// PCI class, `0x020000` style.
    pub class: String,
    /// What the class means, e.g. `Ethernet controller`.
    pub class_name: &'static str,
    /// Vendor id, `0x8086` style.
    pub vendor: String,
    /// Device id.
    pub device: String,
    /// Subsystem vendor id (`0x0000`: none).
    pub subsystem_vendor: String,
    /// Subsystem device id.
    pub subsystem_device: String,
    /// The bridge it sits behind (`null`: a root bus).
    pub parent: Option<Bdf>,
    /// For an SR-IOV physical function: its VFs now, the most it can have,
    /// and whether dom0's drivers probe new ones (what pci_sriov sets).
    pub sriov: Option<SriovFacts>,
    /// The bound driver (`null`: none).
    pub driver: Option<String>,
    /// Its IOMMU group: devices of one group go to a guest together.
    pub iommu_group: Option<u32>,
    /// The SR-IOV physical function of a virtual function.
    pub physfn: Option<Bdf>,
    /// The SR-IOV virtual functions of a physical function.
    pub virtfns: Vec<Bdf>,
    /// Bound to pciback and held by no guest.
    pub assignable: bool,
    /// Hidden from dom0's drivers at boot (pci_assignable `persistent`):
    /// xen-pciback takes it when the dom0 boots.
    pub hidden_at_boot: bool,
    /// The domain id libxl records as holding it.
    pub domid: Option<u32>,
    /// Why the dom0 guard would refuse to take it (empty: it would not).
    pub guard: Vec<String>,
    /// Advice from the kernel log.
    pub hints: Vec<String>,
}

/// An SR-IOV physical function's `sriov_*` files.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SriovFacts {
    /// `sriov_numvfs`.
    pub numvfs: u16,
    /// `sriov_totalvfs`.
    pub total_vfs: u16,
    /// `sriov_drivers_autoprobe`.
    pub autoprobe: bool,
}

/// The facts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct XenPci {
    /// Every PCI function (or those asked for), in BDF order.
    pub devices: Vec<DeviceFacts>,
    /// The assignable devices, as `xl pci-assignable-list -n` shows them.
    pub assignable: Vec<AssignableDevice>,
    /// The running domains.
    pub domains: Vec<Domain>,
    /// With a folder of domain configs: where a running guest and its
    /// config (`NAME.cfg` there) disagree, one sentence each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Vec<String>>,
}

/// The facts of `host`'s devices (those `filter` matches; all when it is
/// empty), and with `config_dir` the drift between each running guest and
/// its config there.
pub fn gather(
    host: &dyn Host,
    filter: &[BdfPattern],
    config_dir: Option<&Path>,
) -> Result<XenPci, HostError> {
    let assignable = assignable::assignable_list(host)?;
    let toolstack = host.toolstack_running()?;
    let log = host.kernel_log().unwrap_or_default();
    let boot = host
        .file_read(host::ManagedFile::ModprobeHide)?
        .map(|b| ModprobeConf::parse(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let mut devices = Vec::new();
    let mut held: Vec<(u32, Bdf)> = Vec::new();
    let all = host.pci_devices()?;
    let fates = guard::Fates::new(&all);
    for d in &all {
        if !filter.is_empty() && !filter.iter().any(|p| p.matches(&d.bdf)) {
            continue;
        }
        let domid = if toolstack {
            host.xs_read(&xs_pci_path(&d.bdf, Some("domid")))?
                .and_then(|v| v.trim().parse().ok())
        } else {
            None
        };
        held.extend(domid.map(|id| (id, d.bdf)));
        let used = host.dom0_use(&d.bdf)?;
        let mut facts = facts_of(d, &assignable, domid, &used, &log);
        if d.driver.as_deref() != Some(host::PCIBACK) {
            facts
                .guard
                .extend(fates.refusal(d, &[]).map(|r| r.to_string()));
        }
        facts.hidden_at_boot = boot.contains(&d.bdf);
        devices.push(facts);
    }
    // Without the toolstack there is nobody to ask about guests.
    let domains = if toolstack {
        host.domains()?
    } else {
        Vec::new()
    };
    let drift = config_dir.map(|dir| drift(dir, &domains, &held));
    Ok(XenPci {
        devices,
        assignable,
        domains,
        drift,
    })
}

/// Each running guest against `DIR/NAME.cfg`; a guest without one there
/// has nothing to disagree with.
fn drift(dir: &Path, domains: &[Domain], held: &[(u32, Bdf)]) -> Vec<String> {
    let mut out = Vec::new();
    for d in domains.iter().filter(|d| d.domid != 0) {
        let path = dir.join(format!("{}.cfg", d.name));
        let Ok(Some(bytes)) = fileio::read_file(&path, fileio::DEFAULT_MAX_SIZE) else {
            continue;
        };
        let mine: Vec<Bdf> = held
            .iter()
            .filter(|(id, _)| *id == d.domid)
            .map(|(_, b)| *b)
            .collect();
        match domcfg::config_bdfs(&bytes, &path) {
            Some(listed) => out.extend(domcfg::config_drift(&d.name, &path, &mine, &listed)),
            None => out.push(format!(
                "{}: {} is not a config xl reads",
                d.name,
                path.display()
            )),
        }
    }
    out
}

fn facts_of(
    d: &PciDevice,
    assignable: &[AssignableDevice],
    domid: Option<u32>,
    used: &host::Dom0Use,
    log: &str,
) -> DeviceFacts {
    DeviceFacts {
        bdf: d.bdf,
        class: format!("0x{:06x}", d.class),
        class_name: class_name(d.class),
        vendor: format!("0x{:04x}", d.vendor),
        device: format!("0x{:04x}", d.device),
        subsystem_vendor: format!("0x{:04x}", d.subsystem_vendor),
        subsystem_device: format!("0x{:04x}", d.subsystem_device),
        parent: d.parent,
        sriov: d.sriov.map(|c| SriovFacts {
            numvfs: c.num_vfs,
            total_vfs: c.total_vfs,
            autoprobe: c.drivers_autoprobe,
        }),
        driver: d.driver.clone(),
        iommu_group: d.iommu_group,
        physfn: d.physfn,
        virtfns: d.virtfns.clone(),
        assignable: assignable.iter().any(|a| a.bdf == d.bdf),
        hidden_at_boot: false,
        domid,
        guard: guard::refusals(d, used)
            .iter()
            .map(|r| r.to_string())
            .collect(),
        hints: hints(&d.bdf, log),
    }
}

/// pciback logs this (`conf_space.c`) when a guest writes a read-only
/// config-space field: the device probably needs `permissive`.
const READ_ONLY_WRITE: &str = "Driver tried to write to a read-only configuration space field";

fn hints(bdf: &Bdf, log: &str) -> Vec<String> {
    let tag = format!("{bdf}:");
    let hits = log
        .lines()
        .filter(|l| l.contains(READ_ONLY_WRITE) && l.contains(&tag))
        .count();
    if hits == 0 {
        return Vec::new();
    }
    vec![format!(
        "pciback refused {hits} write(s) of a guest to read-only config space of {bdf}; \
         if the device misbehaves in the guest, pass it with permissive=1"
    )]
}

/// The PCI base class and subclass names of the devices one meets in a dom0.
fn class_name(class: u32) -> &'static str {
    match class >> 8 {
        0x0100 => "SCSI storage controller",
        0x0500 => "RAM memory",
        0x0101 => "IDE interface",
        0x0104 => "RAID bus controller",
        0x0106 => "SATA controller",
        0x0107 => "Serial Attached SCSI controller",
        0x0108 => "Non-Volatile memory controller",
        0x0200 => "Ethernet controller",
        0x0207 => "Infiniband controller",
        0x0280 => "Network controller",
        0x0300 => "VGA compatible controller",
        0x0302 => "3D controller",
        0x0380 => "Display controller",
        0x0403 => "Audio device",
        0x0600 => "Host bridge",
        0x0601 => "ISA bridge",
        0x0604 => "PCI bridge",
        0x0c03 => "USB controller",
        0x0c05 => "SMBus",
        0x1200 => "Processing accelerators",
        _ => match class >> 16 {
            0x01 => "Mass storage controller",
            0x02 => "Network controller",
            0x03 => "Display controller",
            0x04 => "Multimedia controller",
            0x05 => "Memory controller",
            0x06 => "Bridge",
            0x08 => "System peripheral",
            0x0c => "Serial bus controller",
            _ => "Other",
        },
    }
}
