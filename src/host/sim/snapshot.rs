//! The snapshot file of a simulated dom0: the types users write by hand (one
//! JSON object, documented field by field here), how it is read and checked,
//! and how the compact SR-IOV form expands into devices and folds back.
//!
//! Reading goes [`parse`]: serde (every error names the JSON path, line and
//! column), then `expand` (defaults made explicit, virtual functions
//! generated), then `validate` (every cross-reference checked). Writing goes
//! [`Snapshot::to_json`]: `compact` undoes `expand`, so a file the simulator
//! wrote reads back to the same state, and an unchanged virtual function is
//! not spelled out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nix::errno::Errno;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::bdf::Bdf;
use crate::host::{BlockUse, Dom0Use, NetUse, PCIBACK};

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
    /// The Xen version the snapshot was taken from, for the reader: the
    /// simulator always behaves as xl and libxl 4.17.7.
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
    /// The kernel log, one line each; the simulator appends what the
    /// kernel would print (`pciback 0000:07:00.0: seizing device`).
    #[serde(default)]
    pub kernel_log: Vec<String>,
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
    /// The IOMMU group of the first VF; VF `i` is in this plus `i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_iommu_group_first: Option<u32>,
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
    /// The PCI devices it holds, in attach order.
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
    /// `/etc/modprobe.d/xenpci-pciback.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modprobe_hide: Option<String>,
}

impl Files {
    fn is_empty(&self) -> bool {
        self.driver_record.is_none() && self.modprobe_hide.is_none()
    }
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
                de::Error::custom(format!("unknown errno {text:?} (known: {})", known.join(", ")))
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
        let v = d.deserialize_any(HexVisitor { max: 0xffff, example: "\"0x8086\"" })?;
        // `HexVisitor` checked the range.
        Ok(Hex16(v as u16))
    }
}

impl<'de> Deserialize<'de> for Hex24 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(HexVisitor { max: 0xff_ffff, example: "\"0x020000\"" })?;
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

impl SimDevice {
    /// Whether it is a bridge: the override, else base class `0x06`.
    pub fn is_bridge(&self) -> bool {
        self.is_bridge.unwrap_or(self.class.0 >> 16 == 0x06)
    }

    /// The drivers whose id table matches it (after `expand`).
    pub fn matching(&self) -> &[String] {
        self.drivers_that_match.as_deref().unwrap_or_default()
    }

    /// Whether `driver`'s id table matches it: pciback's matches all.
    pub fn matches(&self, driver: &str) -> bool {
        driver == PCIBACK || self.matching().iter().any(|d| d == driver)
    }
}

/// The default of `drivers_that_match`: the bound driver, unless it is
/// pciback (whose table says nothing about where the device came from).
fn default_matching(driver: Option<&String>) -> Vec<String> {
    driver.filter(|d| *d != PCIBACK).cloned().into_iter().collect()
}

/// Reads, expands and checks a snapshot. The error is a sentence for
/// `HostError::Snapshot`, naming the JSON path, line and column.
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut snap: Snapshot = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at {path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    snap.expand()?;
    snap.validate()?;
    Ok(snap)
}

impl Snapshot {
    /// The file text: compacted, pretty-printed, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.compact())
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        text.push('\n');
        text
    }

    /// The device at `bdf`.
    pub fn dev(&self, bdf: &Bdf) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.bdf == *bdf)
    }

    /// The device at `bdf`, to change.
    pub fn dev_mut(&mut self, bdf: &Bdf) -> Option<&mut SimDevice> {
        self.devices.iter_mut().find(|d| d.bdf == *bdf)
    }

    /// The virtual function `i` of `pf` as its `sriov` block generates it.
    fn generated_vf(pf: &SimDevice, sriov: &Sriov, i: u16) -> Result<SimDevice, String> {
        let rid = (u32::from(pf.bdf.bus) << 8) | u32::from(pf.bdf.dev) << 3 | u32::from(pf.bdf.func);
        let vf_rid = rid + u32::from(sriov.offset) + u32::from(i) * u32::from(sriov.stride);
        if vf_rid > 0xffff {
            return Err(format!(
                "{}: VF {i} would lie beyond bus ff (offset {}, stride {})",
                pf.bdf, sriov.offset, sriov.stride
            ));
        }
        // The casts keep the bits of a 16-bit routing ID.
        let bdf = Bdf {
            domain: pf.bdf.domain,
            bus: (vf_rid >> 8) as u8,
            dev: ((vf_rid >> 3) & 0x1f) as u8,
            func: (vf_rid & 7) as u8,
        };
        Ok(SimDevice {
            bdf,
            vendor: pf.vendor,
            device: sriov.vf_device,
            class: pf.class,
            driver: sriov.vf_driver.clone(),
            drivers_that_match: Some(
                sriov
                    .vf_drivers_that_match
                    .clone()
                    .unwrap_or_else(|| default_matching(sriov.vf_driver.as_ref())),
            ),
            boot_vga: false,
            is_bridge: None,
            iommu_group: sriov.vf_iommu_group_first.map(|g| g + u32::from(i)),
            parent: pf.parent,
            physfn: Some(pf.bdf),
            sriov: None,
            dom0_use: SimDom0Use::default(),
            quarantined: false,
            reset: true,
            bind_fails: Faults::default(),
            assign_fails: None,
        })
    }

    /// Every VF `sriov` blocks generate, with the PF's BDF.
    fn generated_vfs(&self) -> Result<Vec<SimDevice>, String> {
        let mut out = Vec::new();
        for pf in &self.devices {
            if let Some(sriov) = &pf.sriov {
                for i in 0..sriov.num_vfs {
                    out.push(Self::generated_vf(pf, sriov, i)?);
                }
            }
        }
        Ok(out)
    }

    /// Makes defaults explicit and generates the VFs not listed by hand.
    fn expand(&mut self) -> Result<(), String> {
        for d in &mut self.devices {
            if d.drivers_that_match.is_none() {
                d.drivers_that_match = Some(default_matching(d.driver.as_ref()));
            }
        }
        for vf in self.generated_vfs()? {
            match self.dev(&vf.bdf) {
                None => self.devices.push(vf),
                Some(listed) if listed.physfn == vf.physfn => {}
                Some(listed) => {
                    return Err(format!(
                        "devices: {} is listed, but it is also VF of {} (give it \"physfn\": \"{}\" or change the sriov block)",
                        listed.bdf,
                        vf.physfn.map(|b| b.to_string()).unwrap_or_default(),
                        vf.physfn.map(|b| b.to_string()).unwrap_or_default(),
                    ))
                }
            }
        }
        self.devices.sort_by_key(|d| d.bdf);
        for dom in &mut self.domains {
            if dom.passthrough.is_none() {
                let p = if dom.devices.is_empty() { "disabled" } else { "enabled" };
                dom.passthrough = Some(p.to_string());
            }
        }
        normalize_xenstore(&mut self.xenstore);
        Ok(())
    }

    /// Undoes `expand`: drops VFs equal to their generated form and
    /// defaults equal to what `expand` would fill in.
    fn compact(&self) -> Snapshot {
        let mut out = self.clone();
        // A failure here was refused when the snapshot was read.
        let generated = self.generated_vfs().unwrap_or_default();
        out.devices.retain(|d| !generated.contains(d));
        for d in &mut out.devices {
            if d.drivers_that_match.as_deref() == Some(&default_matching(d.driver.as_ref())[..]) {
                d.drivers_that_match = None;
            }
        }
        normalize_xenstore(&mut out.xenstore);
        out
    }

    /// Checks every cross-reference; the first problem is the error.
    fn validate(&self) -> Result<(), String> {
        let mut drivers = BTreeSet::new();
        for d in &self.drivers {
            if d.is_empty() || d.contains(['/', '\0']) || d == "." || d == ".." {
                return Err(format!("drivers: {d:?} is not a driver name"));
            }
            if !drivers.insert(d.as_str()) {
                return Err(format!("drivers: {d} is listed twice"));
            }
        }
        let mut seen = BTreeSet::new();
        for d in &self.devices {
            let at = format!("devices: {}", d.bdf);
            if !seen.insert(d.bdf) {
                return Err(format!("{at} is listed twice"));
            }
            if let Some(drv) = &d.driver {
                if !drivers.contains(drv.as_str()) {
                    return Err(format!(
                        "{at}: its driver {drv} is not loaded (add it to \"drivers\")"
                    ));
                }
            }
            if let Some(p) = &d.parent {
                match self.dev(p) {
                    None => return Err(format!("{at}: parent {p} is not a device")),
                    Some(pd) if !pd.is_bridge() => {
                        return Err(format!("{at}: parent {p} is not a bridge"))
                    }
                    _ => {}
                }
                if self.ancestors(&d.bdf).len() > self.devices.len() {
                    return Err(format!("{at}: its parents form a loop"));
                }
            }
            if let Some(pf) = &d.physfn {
                match self.dev(pf) {
                    None => return Err(format!("{at}: physfn {pf} is not a device")),
                    Some(p) if p.physfn.is_some() => {
                        return Err(format!("{at}: physfn {pf} is itself a VF"))
                    }
                    _ => {}
                }
                if d.sriov.is_some() {
                    return Err(format!("{at}: a VF cannot have an sriov block"));
                }
            }
            if d.quarantined && self.holder(&d.bdf).is_some() {
                return Err(format!(
                    "{at}: a guest holds it, so Xen cannot also have it quarantined"
                ));
            }
        }
        for p in &self.pciback.permissive {
            if self.dev(p).and_then(|d| d.driver.as_deref()) != Some(PCIBACK) {
                return Err(format!(
                    "pciback.permissive: {p} is not bound to pciback (the kernel forgets the flag on unbind)"
                ));
            }
        }
        if !self.pciback.slots.is_empty() || !self.pciback.permissive.is_empty() {
            if !drivers.contains(PCIBACK) {
                return Err("pciback has slots but is not in \"drivers\"".to_string());
            }
        }
        for path in self.xenstore.keys() {
            if !path.starts_with('/') || (path.len() > 1 && path.ends_with('/')) || path.contains("//") {
                return Err(format!("xenstore: {path:?} is not an absolute xenstore path"));
            }
        }
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::from(["Domain-0"]);
        let mut held = BTreeSet::new();
        for dom in &self.domains {
            let at = format!("domains: {} ({})", dom.name, dom.domid);
            // DOMID_FIRST_RESERVED is 0x7ff0.
            if dom.domid == 0 || dom.domid >= 0x7ff0 {
                return Err(format!("{at}: a guest's domid is 1 to 32751 (Domain-0 is implicit)"));
            }
            if !ids.insert(dom.domid) {
                return Err(format!("{at}: domid {} is used twice", dom.domid));
            }
            if dom.name.is_empty() || !names.insert(dom.name.as_str()) {
                return Err(format!("{at}: the name is empty or used twice"));
            }
            if let Some(p) = &dom.passthrough {
                if !["enabled", "disabled", "sync_pt", "share_pt"].contains(&p.as_str()) {
                    return Err(format!(
                        "{at}: passthrough {p:?} is not enabled, disabled, sync_pt or share_pt"
                    ));
                }
            }
            for a in &dom.devices {
                if self.dev(&a.bdf).is_none() {
                    return Err(format!("{at}: holds {}, which is not a device", a.bdf));
                }
                if !held.insert(a.bdf) {
                    return Err(format!("{at}: {} is held twice", a.bdf));
                }
                if a.vslot > 0x1f {
                    return Err(format!("{at}: vslot {:#x} of {} is above 0x1f", a.vslot, a.bdf));
                }
            }
        }
        Ok(())
    }

    /// The bridges above `bdf`, nearest first (stops on a loop).
    pub fn ancestors(&self, bdf: &Bdf) -> Vec<Bdf> {
        let mut out = Vec::new();
        let mut cur = self.dev(bdf).and_then(|d| d.parent);
        while let Some(p) = cur {
            if out.contains(&p) || out.len() > self.devices.len() {
                out.push(p);
                break;
            }
            out.push(p);
            cur = self.dev(&p).and_then(|d| d.parent);
        }
        out
    }

    /// Everything behind the bridge `bdf`, at any depth.
    pub fn behind(&self, bdf: &Bdf) -> Vec<Bdf> {
        self.devices
            .iter()
            .filter(|d| d.bdf != *bdf && self.ancestors(&d.bdf).contains(bdf))
            .map(|d| d.bdf)
            .collect()
    }

    /// The VFs of `pf`, sorted.
    pub fn virtfns(&self, pf: &Bdf) -> Vec<Bdf> {
        self.devices
            .iter()
            .filter(|d| d.physfn.as_ref() == Some(pf))
            .map(|d| d.bdf)
            .collect()
    }

    /// The guest holding `bdf`, if any.
    pub fn holder(&self, bdf: &Bdf) -> Option<&SimDomain> {
        self.domains
            .iter()
            .find(|d| d.devices.iter().any(|a| a.bdf == *bdf))
    }

    /// The guest with this domid.
    pub fn domain(&self, domid: u32) -> Option<&SimDomain> {
        self.domains.iter().find(|d| d.domid == domid)
    }

    /// The guest with this domid, to change.
    pub fn domain_mut(&mut self, domid: u32) -> Option<&mut SimDomain> {
        self.domains.iter_mut().find(|d| d.domid == domid)
    }

    /// Whether `driver` is loaded.
    pub fn driver_loaded(&self, driver: &str) -> bool {
        self.drivers.iter().any(|d| d == driver)
    }

    /// Appends a kernel log line.
    pub fn klog(&mut self, line: String) {
        self.kernel_log.push(line);
    }
}

/// Drops `""` entries that a child already implies, so a folder is spelled
/// out only when it is empty.
pub fn normalize_xenstore(map: &mut BTreeMap<String, String>) {
    let implied: Vec<String> = map
        .iter()
        .filter(|(k, v)| {
            v.is_empty() && {
                let prefix = if k.as_str() == "/" { "/".to_string() } else { format!("{k}/") };
                map.range(prefix.clone()..).next().is_some_and(|(c, _)| c.starts_with(&prefix))
            }
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in implied {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
  "drivers": ["e1000e", "pciback"],
  "devices": [
    {"bdf": "00:00.0", "vendor": "0x8086", "device": "0x1237", "class": "0x060000"},
    {"bdf": "00:19.0", "vendor": 32902, "device": "0x15bb", "class": 131072, "driver": "e1000e"}
  ]
}"#;

    #[test]
    fn minimal_snapshot_reads_with_defaults() {
        let s = parse(MINIMAL).expect("parse");
        assert!(s.toolstack && s.iommu);
        let nic = s.dev(&Bdf::parse("00:19.0").unwrap()).unwrap();
        assert_eq!(nic.vendor, Hex16(0x8086));
        assert_eq!(nic.class, Hex24(0x020000));
        assert_eq!(nic.matching(), ["e1000e".to_string()]);
        assert!(s.dev(&Bdf::parse("00:00.0").unwrap()).unwrap().is_bridge());
    }

    #[test]
    fn errors_name_the_path_line_and_column() {
        let bad = MINIMAL.replace("\"0x15bb\"", "\"15bb\"");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("devices[1].device"), "{err}");
        assert!(err.contains("line 5 column"), "{err}");
        let err = parse("{\"drivers\": [}").unwrap_err();
        assert!(err.starts_with("invalid JSON: ") && err.contains("line 1 column 14"), "{err}");
        let err = parse(&MINIMAL.replace("\"drivers\"", "\"driverz\"")).unwrap_err();
        assert!(err.contains("unknown field `driverz`"), "{err}");
    }

    #[test]
    fn validation_catches_cross_references() {
        let unloaded = MINIMAL.replace("[\"e1000e\", \"pciback\"]", "[\"pciback\"]");
        assert!(parse(&unloaded).unwrap_err().contains("e1000e is not loaded"));
        let orphan = MINIMAL.replace(
            "\"driver\": \"e1000e\"",
            "\"driver\": \"e1000e\", \"parent\": \"00:01.0\"",
        );
        assert!(parse(&orphan).unwrap_err().contains("parent 0000:00:01.0 is not a device"));
        let twice = MINIMAL.replace("00:19.0", "00:00.0");
        assert!(parse(&twice).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn sriov_expands_in_routing_id_order_and_folds_back() {
        let text = r#"{
  "drivers": ["ixgbe", "ixgbevf"],
  "devices": [
    {"bdf": "81:00.0", "vendor": "0x8086", "device": "0x10fb", "class": "0x020000",
     "driver": "ixgbe", "sriov": {"num_vfs": 64, "vf_device": "0x10ed",
     "vf_driver": "ixgbevf", "vf_iommu_group_first": 100}}
  ]
}"#;
        let mut s = parse(text).expect("parse");
        assert_eq!(s.devices.len(), 65);
        let pf = Bdf::parse("81:00.0").unwrap();
        let vfs = s.virtfns(&pf);
        assert_eq!(vfs.first().unwrap().to_string(), "0000:81:00.1");
        assert_eq!(vfs.last().unwrap().to_string(), "0000:81:08.0");
        let last = s.dev(vfs.last().unwrap()).unwrap();
        assert_eq!((last.iommu_group, last.physfn), (Some(163), Some(pf)));
        // Unchanged VFs are not written out; a changed one is.
        assert!(!s.to_json().contains("81:00.1"));
        s.dev_mut(&vfs[0]).unwrap().driver = None;
        let text2 = s.to_json();
        assert!(text2.contains("\"bdf\": \"0000:81:00.1\""), "{text2}");
        assert_eq!(parse(&text2).expect("reparse"), s);
    }

    #[test]
    fn round_trip_keeps_the_state() {
        let s = parse(MINIMAL).expect("parse");
        let again = parse(&s.to_json()).expect("reparse");
        assert_eq!(again, s);
        assert_eq!(again.to_json(), s.to_json());
    }

    #[test]
    fn xenstore_keeps_only_empty_folders() {
        let mut m = BTreeMap::from([
            ("/libxl/pci".to_string(), String::new()),
            ("/libxl/pci/0000-07-00-0".to_string(), String::new()),
            ("/libxl/pci/0000-08-00-0".to_string(), String::new()),
            ("/libxl/pci/0000-08-00-0/name".to_string(), "x".to_string()),
        ]);
        normalize_xenstore(&mut m);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["/libxl/pci/0000-07-00-0", "/libxl/pci/0000-08-00-0/name"]);
    }

    #[test]
    fn faults_read_as_list_or_map() {
        let l: Faults = serde_json::from_str(r#"["pciback"]"#).unwrap();
        assert_eq!(l.errno_for("pciback"), Some(Errno::ENODEV));
        let m: Faults = serde_json::from_str(r#"{"pciback": "EIO"}"#).unwrap();
        assert_eq!(m.errno_for("pciback"), Some(Errno::EIO));
        assert_eq!(m.errno_for("e1000e"), None);
        assert!(serde_json::from_str::<Faults>(r#"{"pciback": "EWHAT"}"#).is_err());
    }
}
