//! Host access: the one seam between the modules and a dom0.
//!
//! [`Host`] is what a module may ask of a dom0, in libxl's own steps (see
//! `tools/libs/light/libxl_pci.c`): read PCI devices from sysfs, unbind and
//! bind drivers, add and remove pciback slots, read and write libxl's
//! xenstore records, run `xl`, and learn what dom0 itself uses a device for.
//! It has two sides:
//!
//! - [`real::RealHost`]: the running dom0 (sysfs under a root that tests can
//!   point at a scratch tree, `xl` and the xenstore tools run without a
//!   shell, `/proc` and `ip` for dom0's use of devices);
//! - [`sim::SimHost`]: a simulated dom0 kept in a JSON snapshot file, chosen
//!   with `XENPCI_HOST=FILE`, which answers and changes as the kernel and xl
//!   would, refusals included.
//!
//! [`open`] picks the side. Modules see only the trait.
//!
//! Paths and formats live here once: [`SYSFS_PCI_DEVICES`],
//! [`SYSFS_PCI_DRIVERS`], [`PCIBACK`], [`xs_pci_path`].

pub mod real;
pub mod sim;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bdf::Bdf;
pub use crate::fileio::CommandOutput;

/// `SYSFS_PCI_DEV` in libxl: one entry per PCI function, named by its BDF.
pub const SYSFS_PCI_DEVICES: &str = "bus/pci/devices";
/// Where PCI drivers live, relative to the sysfs root.
pub const SYSFS_PCI_DRIVERS: &str = "bus/pci/drivers";
/// The name of the xen-pciback driver in sysfs (`SYSFS_PCIBACK_DRIVER`).
pub const PCIBACK: &str = "pciback";
/// The environment variable that selects a simulated host.
pub const HOST_ENV: &str = "XENPCI_HOST";

/// libxl's record of a device under `/libxl/pci` (`pci_info_xs_path`):
/// `node` is `driver_path`, `domid` or `name`; `None` gives the folder.
pub fn xs_pci_path(bdf: &Bdf, node: Option<&str>) -> String {
    match node {
        Some(n) => format!("/libxl/pci/{}/{n}", bdf.xenstore_form()),
        None => format!("/libxl/pci/{}", bdf.xenstore_form()),
    }
}

/// One PCI function as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Its address.
    pub bdf: Bdf,
    /// `vendor`.
    pub vendor: u16,
    /// `device`.
    pub device: u16,
    /// `subsystem_vendor` (0 where sysfs has none).
    pub subsystem_vendor: u16,
    /// `subsystem_device` (0 where sysfs has none).
    pub subsystem_device: u16,
    /// `class`, 24 bits: base class, subclass, programming interface.
    pub class: u32,
    /// The bound driver's name, `None` when no driver holds it.
    pub driver: Option<String>,
    /// Whether it is a PCI-to-PCI bridge or a host bridge (class 06xx),
    /// which hides everything behind it.
    pub is_bridge: bool,
    /// Whether it is a bridge to conventional PCI: a PCIe-to-PCI/PCI-X
    /// bridge (PCIe port type 7) or a PCI-to-PCI bridge without a PCIe
    /// capability. DMA from behind it carries its requester id (Xen's
    /// `find_upstream_bridge`), so the devices behind it share one fate.
    pub conventional_bridge: bool,
    /// The bridge it sits behind (`None` on a root bus).
    pub parent: Option<Bdf>,
    /// `boot_vga` is 1: the firmware's console GPU.
    pub boot_vga: bool,
    /// Its IOMMU group, when the kernel has one.
    pub iommu_group: Option<u32>,
    /// The physical function, for an SR-IOV virtual function.
    pub physfn: Option<Bdf>,
    /// The virtual functions, for an SR-IOV physical function.
    pub virtfns: Vec<Bdf>,
    /// Its SR-IOV capability, for a physical function (the `sriov_*` files).
    pub sriov: Option<SriovCap>,
}

/// An SR-IOV physical function's `sriov_*` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovCap {
    /// `sriov_totalvfs`: the most VFs it can have.
    pub total_vfs: u16,
    /// `sriov_numvfs`: the VFs it has now.
    pub num_vfs: u16,
    /// `sriov_offset`: the first VF's routing id, from the PF's.
    pub offset: u16,
    /// `sriov_stride`: the distance between VFs' routing ids.
    pub stride: u16,
    /// `sriov_vf_device`: the VFs' device id.
    pub vf_device: u16,
    /// `sriov_drivers_autoprobe`: whether dom0's drivers probe new VFs.
    pub drivers_autoprobe: bool,
}

/// What dom0 itself does with a device: the dom0 guard's evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dom0Use {
    /// Block devices on the device (disks and their partitions).
    pub block: Vec<BlockUse>,
    /// Network interfaces on the device.
    pub net: Vec<NetUse>,
}

/// One block device on a PCI device, and what holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUse {
    /// The kernel name, e.g. `nvme0n1p2`.
    pub name: String,
    /// Where it (or a partition of it) is mounted.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Whether swap is on it.
    #[serde(default)]
    pub swap: bool,
    /// What holds it: md arrays, LVM volumes, dm devices (`holders/`).
    #[serde(default)]
    pub holders: Vec<String>,
}

/// One network interface on a PCI device, and its use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetUse {
    /// The interface name, e.g. `eno1`.
    pub name: String,
    /// Whether it is administratively up.
    #[serde(default)]
    pub up: bool,
    /// The addresses it carries, `10.0.0.2/24` style.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The routes through it, `default via 10.0.0.1` style.
    #[serde(default)]
    pub routes: Vec<String>,
    /// The bridge or bond it is enslaved to, if any.
    #[serde(default)]
    pub master: Option<String>,
}

/// A running domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Domain {
    /// Its id.
    pub domid: u32,
    /// Its name.
    pub name: String,
}

/// A file the modules manage on the host, named by role; the path of each
/// on a real dom0 is in [`ManagedFile::path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManagedFile {
    /// This project's record of each device's original driver.
    DriverRecord,
    /// The modprobe.d file that hides devices from dom0 drivers at boot:
    /// xen-pciback's `hide=` option, and a `softdep` that loads xen-pciback
    /// before each hidden device's own driver.
    ModprobeHide,
    /// The modules-load.d file that loads xen-pciback at boot, for hidden
    /// devices no dom0 driver would load it for.
    ModulesLoad,
    /// The initramfs-tools hook that puts xen-pciback into the initramfs,
    /// where the softdep needs it for drivers loaded from there.
    InitramfsHook,
    /// Present while the initramfs has not been rebuilt since the boot
    /// files changed (written before they change, removed after the
    /// rebuild): a run that was killed or failed in between rebuilds it.
    InitramfsPending,
    /// The udev rule that gives SR-IOV physical functions their VFs at
    /// boot (pci_sriov `persistent`): when the PF's driver binds, udev
    /// writes `sriov_drivers_autoprobe` and `sriov_numvfs`.
    SriovRule,
}

impl ManagedFile {
    /// The files that decide which devices pciback takes at boot, in the
    /// order they are written.
    pub const BOOT: [ManagedFile; 3] = [
        ManagedFile::ModprobeHide,
        ManagedFile::ModulesLoad,
        ManagedFile::InitramfsHook,
    ];

    /// Where the file lives on a real dom0.
    pub fn path(self) -> &'static str {
        match self {
            ManagedFile::DriverRecord => "/var/lib/xenpci/drivers.json",
            ManagedFile::ModprobeHide => "/etc/modprobe.d/xenpci-pciback.conf",
            ManagedFile::ModulesLoad => "/etc/modules-load.d/xenpci-pciback.conf",
            ManagedFile::InitramfsHook => "/etc/initramfs-tools/hooks/xenpci-pciback",
            ManagedFile::InitramfsPending => "/var/lib/xenpci/initramfs-pending",
            ManagedFile::SriovRule => "/etc/udev/rules.d/70-xenpci-sriov.rules",
        }
    }

    /// The mode a new file gets: initramfs-tools runs only executable hooks.
    pub fn mode(self) -> u32 {
        match self {
            ManagedFile::InitramfsHook => 0o755,
            _ => 0o644,
        }
    }
}

/// The dom0 drivers that would take a device at boot: the modules its
/// `modalias` resolves to (`modprobe -R`), as udev loads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootDrivers {
    /// Loadable modules, by module name (`e1000`, `nvme`).
    pub modules: Vec<String>,
    /// Those built into the kernel: they bind at enumeration, before any
    /// module (xen-pciback included) can load.
    pub builtin: Vec<String>,
}

/// The oldest Xen whose toolstack the modules drive: 4.15 moved libxl's
/// device records to `/libxl/pci` (from `/libxl/pciback`), added
/// assignable names and the PCI spec grammar read here.
pub const OLDEST_XEN: (u32, u32) = (4, 15);

/// Refuses a dom0 whose Xen is older than [`OLDEST_XEN`]: its libxl keeps
/// other records and reads other specs, so every plan made here could be
/// wrong there.
pub fn check_xen_version(host: &dyn Host) -> Result<(), HostError> {
    match host.xen_version()? {
        Some((major, minor)) if (major, minor) < OLDEST_XEN => Err(HostError::Other(format!(
            "this dom0 runs Xen {major}.{minor}: the modules support Xen {}.{} and later \
             (tested with 4.17 and 4.20); Xen {major}.{minor}'s libxl keeps its device records \
             elsewhere (/libxl/pciback) and reads PCI specs with another grammar, so nothing \
             was changed",
            OLDEST_XEN.0, OLDEST_XEN.1
        ))),
        _ => Ok(()),
    }
}

/// What builds a dom0's initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitramfsTool {
    /// No initramfs generator: drivers load from the root filesystem.
    None,
    /// initramfs-tools (`update-initramfs`, Debian's default): managed.
    InitramfsTools,
    /// Another generator (`dracut`), which the modules do not configure.
    Unmanaged(String),
}

/// What went wrong talking to the host: the path or command, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// A sysfs (or other) file operation failed, as the kernel refused it.
    #[error("{op} {path}: {reason}")]
    Sysfs {
        /// What was tried (`write 0000:07:00.0 to`, `read`, `list`).
        op: String,
        /// The path, e.g. `/sys/bus/pci/drivers/pciback/bind`.
        path: String,
        /// The kernel's answer (`No such device`).
        reason: String,
    },
    /// A command could not be started.
    #[error("cannot run {cmd}: {reason}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        reason: String,
    },
    /// The simulated host's snapshot is missing, unreadable or corrupt.
    #[error("simulated host {path}: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Anything else the host could not do.
    #[error("{0}")]
    Other(String),
}

/// A dom0, as the modules see it. Every method is one step of libxl's or
/// the kernel's; composites (make assignable, give back) are plans built on
/// top (see `crate::assignable`).
pub trait Host {
    /// Every PCI function (`/sys/bus/pci/devices/*`), sorted by BDF.
    fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError>;
    /// One function, `None` when it does not exist (libxl's `lstat`).
    fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError>;
    /// Whether the named driver is loaded (`/sys/bus/pci/drivers/NAME`).
    fn driver_loaded(&self, driver: &str) -> Result<bool, HostError>;
    /// Whether a bind of the device to `driver` can work: the driver is
    /// loaded and its id table takes the device (`pci_match_device`).
    /// `Some(false)` when it cannot, `None` when only the kernel knows.
    fn driver_matches(&self, bdf: &Bdf, driver: &str) -> Result<Option<bool>, HostError>;
    /// Writes the BDF to `drivers/DRIVER/unbind` (`sysfs_dev_unbind`).
    fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError>;
    /// Writes the BDF to `drivers/DRIVER/bind`.
    fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError>;
    /// Writes the BDF to `drivers_probe`: the kernel picks a driver.
    fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError>;
    /// The BDFs in pciback's `slots` (`pciback_dev_has_slot` reads it).
    fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError>;
    /// Writes the BDF to pciback's `new_slot`.
    fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError>;
    /// Writes the BDF to pciback's `remove_slot`.
    fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError>;
    /// Writes `count` to the physical function's `sriov_numvfs`
    /// (`sriov_numvfs_store` in `drivers/pci/iov.c`): 0 removes its VFs, N
    /// makes N when it has none (`EBUSY` when it has some).
    fn sriov_set_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), HostError>;
    /// Writes `sriov_drivers_autoprobe`: whether dom0's drivers probe the
    /// VFs made from now on.
    fn sriov_set_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), HostError>;
    /// Whether the Xen toolstack runs here (xl can be used).
    fn toolstack_running(&self) -> Result<bool, HostError>;
    /// Runs `xl ARGS` (no shell) and returns what it did, whatever its rc.
    fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError>;
    /// Reads a xenstore node, `None` when absent.
    fn xs_read(&self, path: &str) -> Result<Option<String>, HostError>;
    /// Writes a xenstore node.
    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError>;
    /// Removes a xenstore node and what is below it.
    fn xs_rm(&mut self, path: &str) -> Result<(), HostError>;
    /// The children of a xenstore node (empty when absent).
    fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError>;
    /// What dom0 uses the device (and anything below it) for.
    fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError>;
    /// The running Xen's major and minor version
    /// (`/sys/hypervisor/version/{major,minor}`), `None` when not on Xen.
    fn xen_version(&self) -> Result<Option<(u32, u32)>, HostError>;
    /// The running domains.
    fn domains(&self) -> Result<Vec<Domain>, HostError>;
    /// Whether Xen runs with an IOMMU, which pass-through needs (`xl info`
    /// lists `directio` in `virt_caps`); `None` when it cannot be told.
    fn iommu_enabled(&self) -> Result<Option<bool>, HostError>;
    /// The `passthrough` a running guest was created with, as libxl keeps
    /// it (`enabled`, `disabled`, `sync_pt`, `share_pt`): a guest created
    /// with `disabled` can never take a device. `None` when it cannot be
    /// told.
    fn domain_passthrough(&self, domid: u32) -> Result<Option<String>, HostError>;
    /// The kernel log (for hints such as pciback's read-only field messages).
    fn kernel_log(&self) -> Result<String, HostError>;
    /// Reads a managed file, `None` when absent.
    fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError>;
    /// Replaces a managed file atomically.
    fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError>;
    /// Removes a managed file (nothing when it is absent).
    fn file_remove(&mut self, file: ManagedFile) -> Result<(), HostError>;
    /// The drivers that would take the device at boot.
    fn boot_drivers(&self, bdf: &Bdf) -> Result<BootDrivers, HostError>;
    /// What builds the dom0's initramfs, which carries a copy of
    /// modprobe.d.
    fn initramfs_tool(&self) -> Result<InitramfsTool, HostError>;
    /// Rebuilds the initramfs of every installed kernel
    /// (`update-initramfs -u -k all`); the output whatever its rc.
    fn initramfs_rebuild(&mut self) -> Result<CommandOutput, HostError>;
    /// Makes the changes so far durable (the simulated host writes its
    /// snapshot; the real host has nothing to do).
    fn commit(&mut self) -> Result<(), HostError>;
    /// Serialises runs that change the host: held until the host is
    /// dropped, taken before the host is read for a plan. The simulated host
    /// is locked from the moment it is opened, hence the default.
    fn lock_for_changes(&mut self) -> Result<(), HostError> {
        Ok(())
    }
}

/// Runs `apply` on `host`, then makes what it did durable, whether it
/// succeeded or not: a failed run keeps what it did before failing (its
/// records, a rollback), on a simulated dom0 as on a real one. Only a
/// simulated dom0's commit can fail (its snapshot cannot be written): its
/// error then stands alone, since the snapshot still holds the dom0 as it
/// was and nothing was done.
pub fn apply_and_commit<T, E: From<HostError>>(
    host: &mut dyn Host,
    apply: impl FnOnce(&mut dyn Host) -> Result<T, E>,
) -> Result<T, E> {
    let result = apply(host);
    let saved = host.commit();
    let done = result?;
    saved?;
    Ok(done)
}

/// The host the modules act on: the simulated one named by `XENPCI_HOST`
/// (locked until dropped, so a run's read-plan-apply is atomic), else the
/// real dom0.
///
/// # Errors
/// `XENPCI_HOST` set but empty fails: it is what a playbook's
/// `environment: {XENPCI_HOST: "{{ sim_host }}"}` gives when the variable
/// is empty, and reading it as "unset" would turn a test run into changes
/// on the real dom0.
pub fn open() -> Result<Box<dyn Host>, HostError> {
    let host: Box<dyn Host> = match std::env::var_os(HOST_ENV) {
        Some(path) if path.is_empty() => {
            return Err(HostError::Other(format!(
                "{HOST_ENV} is set but empty: give it a simulated dom0's snapshot file \
                 (e.g. a copy of playbooks-examples/hosts/typical.json), or unset it to act on this host"
            )))
        }
        Some(path) => sim::open(PathBuf::from(path))?,
        None => Box::new(real::RealHost::new()),
    };
    check_xen_version(host.as_ref())?;
    Ok(host)
}

impl fmt::Display for PciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{:06x}] {:04x}:{:04x}",
            self.bdf, self.class, self.vendor, self.device
        )
    }
}
