//! The PCI side of sysfs, in `libxl_pci.c`'s steps: reading a device's
//! attributes, `sysfs_write_bdf` and the writes built on it (unbind, bind,
//! reprobe, pciback's `new_slot`/`remove_slot`), and pciback's `slots`.
//!
//! [`Sysfs`] holds the root (`/sys` on a dom0, a scratch tree in tests);
//! every path below it is built here and nowhere else, from the constants
//! of [`crate::host`] (libxl's `SYSFS_PCI_DEV` and `SYSFS_PCIBACK_DRIVER`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::errno_text;
use crate::bdf::Bdf;
use crate::host::{HostError, PciDevice, SriovCap, PCIBACK, SYSFS_PCI_DEVICES, SYSFS_PCI_DRIVERS};

/// The bus-wide "probe this device" file, relative to the sysfs root.
const SYSFS_PCI_DRIVERS_PROBE: &str = "bus/pci/drivers_probe";
/// Block devices (disks; partitions are folders inside them).
pub(super) const SYSFS_BLOCK: &str = "block";
/// Network interfaces.
pub(super) const SYSFS_CLASS_NET: &str = "class/net";
/// What `driver_override` reads when no override is set (`"%s\n"` of NULL
/// in `driver_override_show`).
const NO_OVERRIDE: &str = "(null)";
/// PCI class code of bridges (base class 06: host, ISA, PCI-to-PCI...).
const PCI_BASE_CLASS_BRIDGE: u32 = 0x06;
/// Offset of the header type in configuration space (`PCI_HEADER_TYPE`).
const PCI_HEADER_TYPE: usize = 0x0e;
/// Header types 1 (PCI-to-PCI bridge) and 2 (CardBus bridge), bit 7 masked
/// (it flags a multi-function device).
const BRIDGE_HEADER_TYPES: [u8; 2] = [1, 2];

/// The PCI part of a sysfs tree.
#[derive(Debug, Clone)]
pub(super) struct Sysfs {
    root: PathBuf,
}

/// A sysfs error naming the path and the errno's own text.
pub(super) fn sysfs_err(op: impl Into<String>, path: &Path, e: &io::Error) -> HostError {
    let reason = e.raw_os_error().map_or_else(|| e.to_string(), errno_text);
    sysfs_reason(op, path, reason)
}

pub(super) fn sysfs_reason(
    op: impl Into<String>,
    path: &Path,
    reason: impl Into<String>,
) -> HostError {
    HostError::Sysfs {
        op: op.into(),
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a device name as sysfs spells it, exactly `DDDD:BB:DD.F` in
/// lowercase; anything else (including domains above `ffff`, which xl
/// cannot name) is not a BDF here.
pub(super) fn parse_sysfs_bdf(name: &str) -> Option<Bdf> {
    if name.len() != 12 {
        return None;
    }
    Bdf::parse(name).ok().filter(|b| b.to_string() == name)
}

/// A driver name that stays one path component under `drivers/`.
fn check_driver_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(HostError::Other(format!("invalid driver name {name:?}")));
    }
    Ok(())
}

impl Sysfs {
    pub(super) fn new(root: PathBuf) -> Self {
        Sysfs { root }
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `SYSFS_PCI_DEV`.
    pub(super) fn devices_dir(&self) -> PathBuf {
        self.path(SYSFS_PCI_DEVICES)
    }

    /// `SYSFS_PCI_DEV/BDF`.
    pub(super) fn device_dir(&self, bdf: &Bdf) -> PathBuf {
        self.devices_dir().join(bdf.to_string())
    }

    fn driver_dir(&self, driver: &str) -> Result<PathBuf, HostError> {
        check_driver_name(driver)?;
        Ok(self.path(SYSFS_PCI_DRIVERS).join(driver))
    }

    /// `SYSFS_PCIBACK_DRIVER/FILE`.
    fn pciback_file(&self, file: &str) -> PathBuf {
        self.path(SYSFS_PCI_DRIVERS).join(PCIBACK).join(file)
    }

    /// Every PCI function, sorted by BDF; names that are not BDFs are
    /// skipped, and so is a device that vanishes while being read.
    pub(super) fn devices(&self) -> Result<Vec<PciDevice>, HostError> {
        let dir = self.devices_dir();
        let entries = fs::read_dir(&dir).map_err(|e| sysfs_err("list", &dir, &e))?;
        let mut bdfs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| sysfs_err("list", &dir, &e))?;
            if let Some(bdf) = entry.file_name().to_str().and_then(parse_sysfs_bdf) {
                bdfs.push(bdf);
            }
        }
        bdfs.sort();
        let mut out = Vec::with_capacity(bdfs.len());
        for bdf in bdfs {
            if let Some(dev) = self.device(&bdf)? {
                out.push(dev);
            }
        }
        Ok(out)
    }

    /// One function, `None` when `SYSFS_PCI_DEV/BDF` does not exist (the
    /// `lstat` of `libxl__device_pci_assignable_add`).
    pub(super) fn device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
        let dir = self.device_dir(bdf);
        match fs::symlink_metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sysfs_err("stat", &dir, &e)),
        }
        let class = read_hex(&dir.join("class"))?;
        let config = read_config(&dir.join("config"))?;
        let header_type = config
            .as_deref()
            .and_then(|c| c.get(PCI_HEADER_TYPE).copied());
        let is_bridge = class >> 16 == PCI_BASE_CLASS_BRIDGE
            || header_type.is_some_and(|t| BRIDGE_HEADER_TYPES.contains(&(t & 0x7f)));
        let conventional_bridge = header_type.is_some_and(|t| t & 0x7f == 1)
            && config.as_deref().is_some_and(is_conventional_bridge);
        let parent = fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.parent().and_then(|p| p.file_name()).map(|n| n.to_owned()))
            .and_then(|n| n.to_str().and_then(parse_sysfs_bdf));
        Ok(Some(PciDevice {
            bdf: *bdf,
            // `sysfs_dev_get_vendor`/`_device`/`_class`: hex text `0x8086`.
            vendor: narrow(read_hex(&dir.join("vendor"))?, &dir.join("vendor"))?,
            device: narrow(read_hex(&dir.join("device"))?, &dir.join("device"))?,
            subsystem_vendor: read_opt_hex16(&dir.join("subsystem_vendor"))?,
            subsystem_device: read_opt_hex16(&dir.join("subsystem_device"))?,
            class,
            driver: self.driver_of(bdf)?,
            is_bridge,
            conventional_bridge,
            parent,
            boot_vga: read_opt(&dir.join("boot_vga"))?.is_some_and(|v| v.trim() == "1"),
            iommu_group: link_name(&dir.join("iommu_group"))?.and_then(|g| g.parse().ok()),
            physfn: link_name(&dir.join("physfn"))?
                .as_deref()
                .and_then(parse_sysfs_bdf),
            virtfns: virtfns(&dir)?,
            sriov: sriov_cap(&dir)?,
        }))
    }

    /// The name of the driver bound to the device: the basename of its
    /// `driver` link, `None` without one.
    pub(super) fn driver_of(&self, bdf: &Bdf) -> Result<Option<String>, HostError> {
        link_name(&self.device_dir(bdf).join("driver"))
    }

    /// `drivers/NAME` exists.
    pub(super) fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
        let dir = self.driver_dir(driver)?;
        match fs::metadata(&dir) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(sysfs_err("stat", &dir, &e)),
        }
    }

    /// `sysfs_write_bdf`: one `write(2)` of the BDF text, no newline, to an
    /// existing file (never created: a missing file is the kernel's
    /// `ENOENT`, not ours to invent). The kernel acts on the whole buffer
    /// of one write, so a short write is a failure.
    pub(super) fn write_bdf(&self, path: &Path, bdf: &Bdf) -> Result<(), HostError> {
        write_once(path, bdf.to_string().as_bytes(), &format!("write {bdf} to"))
    }

    /// One write of `value` to the device's SR-IOV attribute `attr`.
    pub(super) fn sriov_write(&self, bdf: &Bdf, attr: &str, value: &str) -> Result<(), HostError> {
        let path = self.device_dir(bdf).join(attr);
        write_once(&path, value.as_bytes(), &format!("write {value} to"))
    }

    /// `sysfs_dev_unbind` for a known driver: the device's `driver` link
    /// must name `driver` (the kernel would answer `ENODEV` otherwise;
    /// saying whom it is bound to helps more), then the BDF goes to
    /// `drivers/DRIVER/unbind`. libxl writes to the link's `realpath`,
    /// which is the same folder.
    pub(super) fn dev_unbind(&self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        let path = self.driver_dir(driver)?.join("unbind");
        match self.driver_of(bdf)? {
            Some(d) if d == driver => self.write_bdf(&path, bdf),
            found => {
                let why = match (found, self.device_dir(bdf).exists()) {
                    (_, false) => format!("no {bdf} in {}", self.devices_dir().display()),
                    (Some(other), _) => format!("{bdf} is bound to {other}"),
                    (None, _) => format!("{bdf} has no driver"),
                };
                Err(sysfs_reason(
                    format!("write {bdf} to"),
                    &path,
                    format!("{} ({why})", errno_text(libc::ENODEV)),
                ))
            }
        }
    }

    /// Writes the BDF to `drivers/DRIVER/bind` (`pciback_dev_assign`'s
    /// last step, and the rebind of `libxl__device_pci_assignable_remove`).
    pub(super) fn dev_bind(&self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        let path = self.driver_dir(driver)?.join("bind");
        self.write_bdf(&path, bdf)
    }

    /// Asks the kernel to find a driver: the BDF to `drivers_probe`. A
    /// `driver_override` would decide the driver instead (after a sysfs
    /// hand-over it often still names pciback), so it is cleared first by
    /// writing a lone newline, which the kernel reads as "no override".
    pub(super) fn dev_reprobe(&self, bdf: &Bdf) -> Result<(), HostError> {
        let over = self.device_dir(bdf).join("driver_override");
        if let Some(text) = read_opt(&over)? {
            let text = text.trim();
            if !text.is_empty() && text != NO_OVERRIDE {
                write_once(&over, b"\n", "clear")?;
            }
        }
        self.write_bdf(&self.path(SYSFS_PCI_DRIVERS_PROBE), bdf)
    }

    /// pciback's `slots`, one `%04x:%02x:%02x.%d` per line (`slots_show` in
    /// Linux's `xen-pciback/pci_stub.c`). `pciback_dev_has_slot` stops at
    /// the first line it cannot scan; we skip such a line and read on.
    pub(super) fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
        let path = self.pciback_file("slots");
        let text = fs::read_to_string(&path).map_err(|e| sysfs_err("read", &path, &e))?;
        Ok(parse_slots(&text))
    }

    /// `pciback_dev_assign`'s first step: the BDF to `new_slot`.
    pub(super) fn pciback_new_slot(&self, bdf: &Bdf) -> Result<(), HostError> {
        self.write_bdf(&self.pciback_file("new_slot"), bdf)
    }

    /// `pciback_dev_unassign`'s last step: the BDF to `remove_slot`.
    pub(super) fn pciback_remove_slot(&self, bdf: &Bdf) -> Result<(), HostError> {
        self.write_bdf(&self.pciback_file("remove_slot"), bdf)
    }
}

/// Reads `slots`: each line `DDDD:BB:DD.F`.
pub(super) fn parse_slots(text: &str) -> Vec<Bdf> {
    let mut out: Vec<Bdf> = text
        .lines()
        .filter_map(|l| parse_sysfs_bdf(l.trim()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One `write(2)` of `bytes` to an existing file.
///
/// Opened `O_WRONLY|O_TRUNC`, as the shell's `echo BDF > bind` does; libxl
/// opens `O_WRONLY` only. sysfs ignores the truncation, and a plain file
/// standing in for a sysfs file (tests) then holds exactly the last write.
fn write_once(path: &Path, bytes: &[u8], op: &str) -> Result<(), HostError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| sysfs_err(op, path, &e))?;
    // `write`, not `write_all`: a sysfs store sees each write(2) as one
    // request, so a retry with the rest would be a second, garbled one.
    let n = file.write(bytes).map_err(|e| sysfs_err(op, path, &e))?;
    if n != bytes.len() {
        return Err(sysfs_reason(
            op,
            path,
            format!("short write: {n} of {} bytes", bytes.len()),
        ));
    }
    Ok(())
}

/// The file's text, `None` when it does not exist (nor its folder).
pub(super) fn read_opt(path: &Path) -> Result<Option<String>, HostError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(sysfs_err("read", path, &e)),
    }
}

/// A 16-bit hex attribute that may be missing (0 then).
fn read_opt_hex16(path: &Path) -> Result<u16, HostError> {
    match read_opt(path)? {
        None => Ok(0),
        Some(text) => {
            let v = parse_hex(&text).ok_or_else(|| {
                sysfs_reason("read", path, format!("not a hex number: {:?}", text.trim()))
            })?;
            narrow(v, path)
        }
    }
}

/// A decimal attribute that may be missing.
fn read_opt_u16(path: &Path) -> Result<Option<u16>, HostError> {
    match read_opt(path)? {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| sysfs_reason("read", path, format!("not a number: {:?}", text.trim()))),
    }
}

/// The `sriov_*` files of a physical function (`sriov_totalvfs` exists
/// only on one); `sriov_vf_device` is hex, the others decimal.
fn sriov_cap(dir: &Path) -> Result<Option<SriovCap>, HostError> {
    let Some(total_vfs) = read_opt_u16(&dir.join("sriov_totalvfs"))? else {
        return Ok(None);
    };
    let num = |name: &str| -> Result<u16, HostError> {
        Ok(read_opt_u16(&dir.join(name))?.unwrap_or_default())
    };
    Ok(Some(SriovCap {
        total_vfs,
        num_vfs: num("sriov_numvfs")?,
        offset: num("sriov_offset")?,
        stride: num("sriov_stride")?,
        vf_device: read_opt_hex16(&dir.join("sriov_vf_device"))?,
        drivers_autoprobe: num("sriov_drivers_autoprobe")? != 0,
    }))
}

/// A hex attribute such as `vendor` (`0x8086\n`).
fn read_hex(path: &Path) -> Result<u32, HostError> {
    let text = fs::read_to_string(path).map_err(|e| sysfs_err("read", path, &e))?;
    parse_hex(&text)
        .ok_or_else(|| sysfs_reason("read", path, format!("not a hex number: {:?}", text.trim())))
}

pub(super) fn parse_hex(text: &str) -> Option<u32> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(digits, 16).ok()
}

fn narrow(value: u32, path: &Path) -> Result<u16, HostError> {
    u16::try_from(value)
        .map_err(|_| sysfs_reason("read", path, format!("{value:#x} is over 16 bits")))
}

/// Configuration space, when `config` is there and readable (its first 64
/// bytes by anyone, the rest by root).
fn read_config(path: &Path) -> Result<Option<Vec<u8>>, HostError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(sysfs_err("read", path, &e)),
    }
}

/// Whether a PCI-to-PCI bridge's configuration space shows a bridge to
/// conventional PCI: a PCIe capability (id 0x10) of port type 7
/// (PCIe-to-PCI/PCI-X), or no PCIe capability at all, as Xen's
/// `pdev_type` tells them. A capability list that cannot be read whole
/// (64 bytes, not root) says nothing.
fn is_conventional_bridge(config: &[u8]) -> bool {
    const CAP_LIST: u8 = 0x10;
    const PCI_CAP_ID_EXP: u8 = 0x10;
    const PCIE_TO_PCI: u16 = 0x7;
    if config.len() < 256 || config.get(0x06).is_none_or(|s| s & CAP_LIST == 0) {
        // No list: a conventional bridge, if the bytes were all there.
        return config.len() >= 256;
    }
    let mut at = usize::from(config[0x34] & 0xfc);
    // A list that loops is cut off, as the kernel does after 48 entries.
    for _ in 0..48 {
        if at < 0x40 || at + 3 >= config.len() {
            break;
        }
        if config[at] == PCI_CAP_ID_EXP {
            let flags = u16::from_le_bytes([config[at + 2], config[at + 3]]);
            return (flags >> 4) & 0xf == PCIE_TO_PCI;
        }
        at = usize::from(config[at + 1] & 0xfc);
    }
    true
}

pub(super) fn link_name(path: &Path) -> Result<Option<String>, HostError> {
    match fs::read_link(path) {
        Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sysfs_err("read the link", path, &e)),
    }
}

/// The SR-IOV virtual functions: links `virtfn0`, `virtfn1`... in order
/// of their number (not of their name: `virtfn10` after `virtfn9`).
fn virtfns(dir: &Path) -> Result<Vec<Bdf>, HostError> {
    let entries = fs::read_dir(dir).map_err(|e| sysfs_err("list", dir, &e))?;
    let mut found: Vec<(u32, Bdf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| sysfs_err("list", dir, &e))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("virtfn"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(bdf) = link_name(&entry.path())?
            .as_deref()
            .and_then(parse_sysfs_bdf)
        {
            found.push((n, bdf));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, b)| b).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge's 256 bytes of config space, with a capability list of
    /// `caps` (id, and for PCIe the port type) from 0x40 on.
    fn bridge_config(caps: &[(u8, u8)]) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0x0e] = 1;
        if caps.is_empty() {
            return c;
        }
        c[0x06] = 0x10;
        c[0x34] = 0x40;
        for (i, (id, port)) in caps.iter().enumerate() {
            let at = 0x40 + i * 0x10;
            c[at] = *id;
            c[at + 1] = if i + 1 < caps.len() {
                (at + 0x10) as u8
            } else {
                0
            };
            c[at + 2] = port << 4;
        }
        c
    }

    #[test]
    fn conventional_bridges_by_their_pcie_port_type() {
        // Power management, then PCIe: a PCIe-to-PCI bridge (7).
        assert!(is_conventional_bridge(&bridge_config(&[
            (0x01, 0),
            (0x10, 7)
        ])));
        // A root port (4) and a downstream port (6) are not.
        assert!(!is_conventional_bridge(&bridge_config(&[(0x10, 4)])));
        assert!(!is_conventional_bridge(&bridge_config(&[
            (0x01, 0),
            (0x10, 6)
        ])));
        // No PCIe capability: a conventional PCI-to-PCI bridge.
        assert!(is_conventional_bridge(&bridge_config(&[(0x01, 0)])));
        assert!(is_conventional_bridge(&bridge_config(&[])));
        // 64 bytes (not root): nothing can be told.
        assert!(!is_conventional_bridge(&bridge_config(&[(0x10, 7)])[..64]));
        // A list that loops ends.
        let mut looped = bridge_config(&[(0x01, 0)]);
        looped[0x41] = 0x40;
        assert!(is_conventional_bridge(&looped));
    }

    #[test]
    fn only_exact_sysfs_names_are_bdfs() {
        assert_eq!(
            parse_sysfs_bdf("0000:07:00.0")
                .map(|b| b.to_string())
                .as_deref(),
            Some("0000:07:00.0")
        );
        for bad in [
            "07:00.0",
            "0000:07:00.0x",
            "0000:07:00.A",
            "0000:07:00.8",
            "10000:00:00.0",
            "pci0000:00",
        ] {
            assert_eq!(parse_sysfs_bdf(bad), None, "{bad}");
        }
    }

    #[test]
    fn slots_are_read_as_slots_show_prints_them() {
        let text = "0000:04:10.0\n0000:00:19.0\ngarbage\n0000:04:10.0\n";
        let slots: Vec<String> = parse_slots(text).iter().map(ToString::to_string).collect();
        assert_eq!(slots, ["0000:00:19.0", "0000:04:10.0"]);
        assert!(parse_slots("").is_empty());
    }

    #[test]
    fn hex_attributes() {
        assert_eq!(parse_hex("0x8086\n"), Some(0x8086));
        assert_eq!(parse_hex("0x020000\n"), Some(0x020000));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn bad_driver_names_never_reach_a_path() {
        let sys = Sysfs::new(PathBuf::from("/nonexistent"));
        for bad in ["", ".", "..", "../../x", "a/b"] {
            assert!(sys.driver_loaded(bad).is_err(), "{bad:?}");
        }
    }
}
