//! The snapshot file of a simulated dom0: the types users write by hand (one
//! JSON object, documented field by field here). The look-ups the rest of
//! the simulator shares are in `lookup.rs`; reading and writing the file is
//! in `load.rs`.

use std::collections::BTreeMap;
use std::fmt;

use nix::errno::Errno;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::bdf::Bdf;
use crate::host::{BlockUse, Dom0Use, ManagedFile, NetUse};

/// A simulated dom0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Free text for the reader; the simulator ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the Xen toolstack runs (`xl` can reach libxc and xenstore).
    /// `false`: every `xl` command fails as xl does on a kernel without Xen
    /// (`cannot init xl context`, rc 1). Default `true`.
    #[serde(default = "yes")]
    pub toolstack: bool,
    /// Whether Xen has an IOMMU. `false`: `xl pci-assignable-add` binds the
    /// device but fails with `failed to quarantine`, `-remove` fails with
    /// `failed to de-quarantine`, `pci-attach` with `xc_assign_device
    /// failed: Operation not supported`. Default `true`.
    #[serde(default = "yes")]
    pub iommu: bool,
    /// The Xen version of the dom0 (`xl info`'s `xen_version`, default
    /// `4.17.7`): the modules refuse one older than 4.15, as on a real dom0.
    /// Otherwise the simulator behaves as xl and libxl 4.17.7, except where
    /// a later release changed what they print or do (each such place says
    /// so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xl_version: Option<String>,
    /// The loaded PCI drivers (`/sys/bus/pci/drivers/*`), in the order they
    /// registered: a reprobe offers the device to them in this order. Without
    /// `pciback` here, pciback's sysfs files do not exist.
    pub drivers: Vec<String>,
    /// xen-pciback's own state.
    #[serde(default)]
    pub pciback: Pciback,
    /// Every PCI function (`/sys/bus/pci/devices/*`), any order.
    pub devices: Vec<SimDevice>,
    /// xenstore, as `path: value`. A parent exists when a child does; an
    /// empty folder is `"/libxl/pci/0000-07-00-0": ""`. libxl's records
    /// live under `/libxl/pci/DDDD-BB-DD-F/` (`driver_path`, `domid`,
    /// `name`). The PCI backend nodes of the domains
    /// (`/local/domain/0/backend/pci/DOMID/0/...`) and
    /// `/local/domain/DOMID/name` are computed from `domains`, not stored.
    #[serde(default)]
    pub xenstore: BTreeMap<String, String>,
    /// Domain-0 as `xl list` shows it.
    #[serde(default)]
    pub dom0: Dom0,
    /// The running guests.
    #[serde(default)]
    pub domains: Vec<SimDomain>,
    /// The files the modules manage, by role, as text.
    #[serde(default, skip_serializing_if = "Files::is_empty")]
    pub files: Files,
    /// How the dom0 boots, for a simulated reboot.
    #[serde(default, skip_serializing_if = "Boot::is_empty")]
    pub boot: Boot,
    /// The kernel log, one line each; the simulator appends what the
    /// kernel would print (`pciback 0000:07:00.0: seizing device`).
    #[serde(default)]
    pub kernel_log: Vec<String>,
    /// Fault injection: after this many calls that change the dom0 in one
    /// run, every further call fails, as on a dom0 whose sysfs, xenstore or
    /// xl stops answering mid-run; the changes made until then are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after_changes: Option<u32>,
}

/// One PCI function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDevice {
    /// Its address, `0000:07:00.0` (the domain may be left out).
    pub bdf: Bdf,
    /// `vendor`: a hex string as sysfs prints it (`"0x8086"`) or a number.
    pub vendor: Hex16,
    /// `device`: as `vendor`.
    pub device: Hex16,
    /// `subsystem_vendor`: as `vendor`. Default 0 (none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor: Option<Hex16>,
    /// `subsystem_device`: as `vendor`. Default 0 (none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_device: Option<Hex16>,
    /// `class`, 24 bits: `"0x020000"` or a number. Base class `0x06` makes
    /// it a bridge.
    pub class: Hex24,
    /// The bound driver; absent or `null` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The drivers whose id tables match it (a bind to another one fails
    /// with `ENODEV`; a reprobe only tries these). Default: the bound
    /// driver. pciback matches every device and need not be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drivers_that_match: Option<Vec<String>>,
    /// `boot_vga` is 1: the firmware's console GPU.
    #[serde(default, skip_serializing_if = "is_false")]
    pub boot_vga: bool,
    /// Overrides "is a bridge" (default: class `0x06xxxx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_bridge: Option<bool>,
    /// A bridge to conventional PCI (PCIe-to-PCI/PCI-X, or a PCI bridge
    /// without a PCIe capability): the devices behind it share its
    /// requester id.
    #[serde(default, skip_serializing_if = "is_false")]
    pub conventional_bridge: bool,
    /// Its IOMMU group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
    /// The bridge it sits behind. A bridge's dom0 use includes that of
    /// everything behind it, and a pciback slot for a bridge also claims
    /// the devices behind it (`pcistub_match_one`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Bdf>,
    /// For a virtual function listed by hand: its physical function (whose
    /// `virtfns` are derived from these links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physfn: Option<Bdf>,
    /// For a physical function: its virtual functions, generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov: Option<Sriov>,
    /// What dom0 itself does with it (the dom0 guard's evidence).
    #[serde(default, skip_serializing_if = "SimDom0Use::is_empty")]
    pub dom0_use: SimDom0Use,
    /// Xen has it quarantined (assigned to `DOMID_IO`), as
    /// `xl pci-assignable-add` and a detach from a guest leave it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub quarantined: bool,
    /// sysfs has a `reset` file for it. `false`: xl prints `The kernel
    /// doesn't support reset from sysfs for PCI device ...` on attach and
    /// detach (still rc 0). Default `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub reset: bool,
    /// Fault injection: a probe by these drivers fails, so a `bind` to them
    /// fails with this errno. A list (`["pciback"]`) means `ENODEV`; a map
    /// names the errno (`{"pciback": "EIO"}`).
    #[serde(default, skip_serializing_if = "Faults::is_empty")]
    pub bind_fails: Faults,
    /// Fault injection: Xen refuses to assign it anywhere (quarantine or
    /// guest) with this errno, e.g. `"EPERM"` as for a device with RMRRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_fails: Option<ErrnoName>,
}

/// The compact SR-IOV form of a physical function: its virtual functions
/// are generated at routing ID `PF + offset + i * stride`, as the SR-IOV
/// capability places them (offset 1, stride 1 put 64 VFs of `81:00.0` at
/// `81:00.1` ... `81:08.0`). A VF whose state changed is written out in
/// `devices` with `physfn`, and that entry wins over the generated one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sriov {
    /// `sriov_numvfs`: how many VFs exist now.
    pub num_vfs: u16,
    /// `sriov_totalvfs`. Default: `num_vfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_vfs: Option<u16>,
    /// The capability's First VF Offset. Default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub offset: u16,
    /// The capability's VF Stride. Default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stride: u16,
    /// The VFs' device id.
    pub vf_device: Hex16,
    /// The driver bound to each VF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_driver: Option<String>,
    /// The drivers matching a VF. Default: `vf_driver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_drivers_that_match: Option<Vec<String>>,
    /// Fault injection for every VF: a probe by these drivers fails (as
    /// `bind_fails`), e.g. `["nvme"]` for QEMU's nvme VFs, which nvme
    /// probes and gives up on ("Device not ready"), leaving them driverless.
    #[serde(default, skip_serializing_if = "Faults::is_empty")]
    pub vf_bind_fails: Faults,
    /// The IOMMU group of the first VF; VF `i` is in this plus `i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_iommu_group_first: Option<u32>,
    /// `sriov_drivers_autoprobe`: whether the drivers of `drivers` probe a
    /// VF when it is made (pciback among them, for a VF it has a slot
    /// for). Default `true`, as the kernel starts.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub drivers_autoprobe: bool,
    /// Whether the PF's driver can change `sriov_numvfs` (has
    /// `sriov_configure`). Default `true`; pciback never can.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub configurable: bool,
}

/// What dom0 does with a device: block devices and network interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDom0Use {
    /// Disks and partitions: `{name, mounts, swap, holders}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block: Vec<BlockUse>,
    /// Interfaces: `{name, up, addresses, routes, master}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<NetUse>,
}

/// xen-pciback's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pciback {
    /// `slots`: the BDFs pciback may seize, in order, duplicates kept
    /// (`new_slot` appends without checking, as the kernel does).
    #[serde(default)]
    pub slots: Vec<Bdf>,
    /// `permissive`: devices whose guest may write all of config space.
    #[serde(default)]
    pub permissive: Vec<Bdf>,
}

/// Domain-0's line in `xl list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dom0 {
    /// Memory in MiB. Default 768.
    #[serde(default = "dom0_memory")]
    pub memory_mb: u32,
    /// Online vCPUs. Default 2.
    #[serde(default = "two")]
    pub vcpus: u32,
}

/// A running guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDomain {
    /// Its id, 1 or more.
    pub domid: u32,
    /// Its name.
    pub name: String,
    /// `pv` (default), `pvh` or `hvm`.
    #[serde(default, rename = "type")]
    pub kind: DomainType,
    /// The `passthrough` it was created with: `enabled` (or `sync_pt`,
    /// `share_pt`) lets it take devices; `disabled` makes a hot-plug fail
    /// with `xc_assign_device failed: Operation not supported`, as on Xen.
    /// Default: `enabled` when it has devices, else `disabled` (xl's own
    /// default for a config with or without a `pci` list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
    /// The config file it was created from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Memory in MiB, for `xl list`. Default 512.
    #[serde(default = "guest_memory")]
    pub memory_mb: u32,
    /// vCPUs, for `xl list`. Default 1.
    #[serde(default = "one_u32")]
    pub vcpus: u32,
    /// The PCI devices it holds, in attach order. libxl also keeps
    /// `/libxl/pci/BDF/domid` for each (it is what hides the device from
    /// `xl pci-assignable-list`): write that record in `xenstore` too.
    #[serde(default)]
    pub devices: Vec<AttachedPci>,
}

/// The kind of guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    /// Paravirtualised.
    #[default]
    Pv,
    /// PVH.
    Pvh,
    /// Hardware virtualised.
    Hvm,
}

/// One device a guest holds (what `xl pci-list` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedPci {
    /// The host device.
    pub bdf: Bdf,
    /// The guest slot (`@N`), 0 when none was asked (`xl pci-list` then
    /// shows `00.0` for a PV guest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vslot: u8,
    /// The backend's `opts-N`. Default
    /// `msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict`.
    #[serde(default = "default_opts")]
    pub opts: String,
    /// The name it was attached by, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The managed files, by role (see `ManagedFile`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// `/var/lib/xenpci/drivers.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_record: Option<String>,
    /// `/etc/modprobe.d/xenpci-pciback.conf`: read at boot by every
    /// modprobe (its `options xen-pciback hide=` and `softdep` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modprobe_hide: Option<String>,
    /// `/etc/modules-load.d/xenpci-pciback.conf`: its module names are
    /// loaded at boot after udev's coldplug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules_load: Option<String>,
    /// `/etc/initramfs-tools/hooks/xenpci-pciback`: an initramfs built
    /// while it exists holds xen-pciback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_hook: Option<String>,
    /// `/var/lib/xenpci/initramfs-pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_pending: Option<String>,
    /// `/etc/udev/rules.d/70-xenpci-sriov.rules`: applied at boot when
    /// each PF it names is bound to a driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov_rule: Option<String>,
}

impl Files {
    pub(super) fn is_empty(&self) -> bool {
        *self == Files::default()
    }

    /// The file of a role.
    pub fn get(&self, file: ManagedFile) -> &Option<String> {
        match file {
            ManagedFile::DriverRecord => &self.driver_record,
            ManagedFile::ModprobeHide => &self.modprobe_hide,
            ManagedFile::ModulesLoad => &self.modules_load,
            ManagedFile::InitramfsHook => &self.initramfs_hook,
            ManagedFile::InitramfsPending => &self.initramfs_pending,
            ManagedFile::SriovRule => &self.sriov_rule,
        }
    }

    /// The file of a role, to change.
    pub fn get_mut(&mut self, file: ManagedFile) -> &mut Option<String> {
        match file {
            ManagedFile::DriverRecord => &mut self.driver_record,
            ManagedFile::ModprobeHide => &mut self.modprobe_hide,
            ManagedFile::ModulesLoad => &mut self.modules_load,
            ManagedFile::InitramfsHook => &mut self.initramfs_hook,
            ManagedFile::InitramfsPending => &mut self.initramfs_pending,
            ManagedFile::SriovRule => &mut self.sriov_rule,
        }
    }
}

/// How the dom0 boots: what `xenpci-sim reboot` (see `boot.rs`) needs to
/// decide which driver takes each device. A device's boot drivers are its
/// `drivers_that_match` (a module is named as its driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// PCI drivers built into the kernel: they take their devices when the
    /// bus is enumerated, before any module loads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtin_drivers: Vec<String>,
    /// Modules that `/etc/modules-load.d` (other than this project's file)
    /// loads after udev's coldplug, e.g. `["xen-pciback"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules_load: Vec<String>,
    /// The initramfs of the running kernel, built by initramfs-tools;
    /// absent: the dom0 boots without one (and has no `update-initramfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<Initramfs>,
}

impl Boot {
    pub(super) fn is_empty(&self) -> bool {
        *self == Boot::default()
    }
}

/// An initramfs: udev loads the modules it holds for the devices they
/// match before the root filesystem is mounted, with the modprobe.d it was
/// built with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Initramfs {
    /// The PCI driver modules it holds (`nvme`, `ahci`), `xen-pciback`
    /// included when it holds it.
    #[serde(default)]
    pub modules: Vec<String>,
    /// This project's files as they were when it was built (only
    /// `modprobe_hide` matters at boot).
    #[serde(default, skip_serializing_if = "Files::is_empty")]
    pub files: Files,
    /// Fault injection: `update-initramfs` fails (rc 1, this on stderr),
    /// as it does when /boot is full, and the initramfs stays as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_fails: Option<String>,
}

/// Which drivers fail to probe a device: `["pciback"]` (`ENODEV`) or
/// `{"pciback": "EIO"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Faults {
    /// These drivers fail with `ENODEV`.
    List(Vec<String>),
    /// Each driver fails with its errno.
    Map(BTreeMap<String, ErrnoName>),
}

impl Default for Faults {
    fn default() -> Self {
        Faults::List(Vec::new())
    }
}

impl Faults {
    fn is_empty(&self) -> bool {
        match self {
            Faults::List(l) => l.is_empty(),
            Faults::Map(m) => m.is_empty(),
        }
    }

    /// The errno a probe by `driver` fails with, if it does.
    pub fn errno_for(&self, driver: &str) -> Option<Errno> {
        match self {
            Faults::List(l) => l.iter().any(|d| d == driver).then_some(Errno::ENODEV),
            Faults::Map(m) => m.get(driver).map(|e| e.0),
        }
    }
}

/// An errno written by name (`"ENODEV"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrnoName(pub Errno);

/// The errnos a snapshot may name: those a sysfs store or a Xen domctl
/// plausibly returns.
const ERRNO_NAMES: &[(&str, Errno)] = &[
    ("EPERM", Errno::EPERM),
    ("ENOENT", Errno::ENOENT),
    ("ESRCH", Errno::ESRCH),
    ("EIO", Errno::EIO),
    ("ENXIO", Errno::ENXIO),
    ("EAGAIN", Errno::EAGAIN),
    ("ENOMEM", Errno::ENOMEM),
    ("EACCES", Errno::EACCES),
    ("EBUSY", Errno::EBUSY),
    ("EEXIST", Errno::EEXIST),
    ("EXDEV", Errno::EXDEV),
    ("ENODEV", Errno::ENODEV),
    ("EINVAL", Errno::EINVAL),
    ("ENOSPC", Errno::ENOSPC),
    ("ENOSYS", Errno::ENOSYS),
    ("EOPNOTSUPP", Errno::EOPNOTSUPP),
    ("ETIMEDOUT", Errno::ETIMEDOUT),
];

impl Serialize for ErrnoName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = ERRNO_NAMES
            .iter()
            .find(|(_, e)| *e == self.0)
            .map_or("EIO", |(n, _)| n);
        s.serialize_str(name)
    }
}

impl<'de> Deserialize<'de> for ErrnoName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ERRNO_NAMES
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, e)| ErrnoName(*e))
            .ok_or_else(|| {
                let known: Vec<&str> = ERRNO_NAMES.iter().map(|(n, _)| *n).collect();
                de::Error::custom(format!(
                    "unknown errno {text:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// A 16-bit id: `"0x8086"` or a number; written as `"0x8086"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex16(pub u16);

/// A 24-bit class code: `"0x020000"` or a number; written as `"0x020000"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex24(pub u32);

impl Serialize for Hex16 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#06x}", self.0))
    }
}

impl Serialize for Hex24 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#08x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Hex16 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(HexVisitor {
            max: 0xffff,
            example: "\"0x8086\"",
        })?;
        // `HexVisitor` checked the range.
        Ok(Hex16(v as u16))
    }
}

impl<'de> Deserialize<'de> for Hex24 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(HexVisitor {
            max: 0xff_ffff,
            example: "\"0x020000\"",
        })?;
        Ok(Hex24(v as u32))
    }
}

struct HexVisitor {
    max: u64,
    example: &'static str,
}

impl HexVisitor {
    fn check<E: de::Error>(&self, v: u64) -> Result<u64, E> {
        if v > self.max {
            return Err(E::custom(format!("{v:#x} is above {:#x}", self.max)));
        }
        Ok(v)
    }
}

impl<'de> de::Visitor<'de> for HexVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a hex string like {} or a number", self.example)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        self.check(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        let v = u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))?;
        self.check(v)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| E::custom(format!("{s:?} is not {}", self.example_text())))?;
        let v = u64::from_str_radix(digits, 16)
            .map_err(|_| E::custom(format!("{s:?} is too large")))?;
        self.check(v)
    }
}

impl HexVisitor {
    fn example_text(&self) -> String {
        format!("a hex string like {}", self.example)
    }
}

fn yes() -> bool {
    true
}
fn one() -> u16 {
    1
}
fn one_u32() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn dom0_memory() -> u32 {
    768
}
fn guest_memory() -> u32 {
    512
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_one(v: &u16) -> bool {
    *v == 1
}
fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// The options libxl writes for a device attached with none given
/// (`libxl_create_pci_backend_device`, rdm policy defaulted to strict).
pub fn default_opts() -> String {
    "msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict".to_string()
}

impl Default for Dom0 {
    fn default() -> Self {
        Dom0 {
            memory_mb: dom0_memory(),
            vcpus: two(),
        }
    }
}

impl SimDom0Use {
    fn is_empty(&self) -> bool {
        self.block.is_empty() && self.net.is_empty()
    }

    /// As the trait's type.
    pub fn to_dom0_use(&self) -> Dom0Use {
        Dom0Use {
            block: self.block.clone(),
            net: self.net.clone(),
        }
    }
}
