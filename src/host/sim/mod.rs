//! The simulated dom0: [`SimHost`], a [`Host`] kept in a JSON snapshot file
//! (`XENPCI_HOST=FILE`), which answers and changes as Linux 6.1's sysfs and
//! Xen 4.17.7's xl and libxl do, refusals and messages included.
//!
//! # The snapshot
//!
//! One JSON object (every type is documented in [`snapshot`]; the shipped
//! examples are `playbooks-examples/hosts/*.json`):
//!
//! ```json
//! {
//!   "toolstack": true, "iommu": true,
//!   "drivers": ["pcieport", "nvme", "e1000e", "pciback"],
//!   "pciback": {"slots": ["0000:07:00.0"], "permissive": []},
//!   "devices": [
//!     {"bdf": "0000:00:1c.0", "vendor": "0x8086", "device": "0xa110", "class": "0x060400",
//!      "driver": "pcieport", "iommu_group": 7},
//!     {"bdf": "0000:03:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000",
//!      "driver": "e1000e", "parent": "0000:00:1c.0", "iommu_group": 8,
//!      "dom0_use": {"net": [{"name": "enp3s0", "up": false}]}},
//!     {"bdf": "0000:07:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000",
//!      "driver": "pciback", "drivers_that_match": ["e1000e"], "quarantined": true}
//!   ],
//!   "xenstore": {"/libxl/pci/0000-07-00-0/driver_path": "/sys/bus/pci/drivers/e1000e"},
//!   "domains": [{"domid": 1, "name": "vm1", "passthrough": "enabled", "devices": []}],
//!   "files": {"driver_record": "{}\n"},
//!   "kernel_log": []
//! }
//! ```
//!
//! Ids and classes are hex strings as sysfs prints them, or numbers. A
//! physical function may declare `"sriov": {"num_vfs": 64, "vf_device":
//! "0x10ed", "vf_driver": "ixgbevf"}` instead of listing its VFs.
//! Fault injection: `"bind_fails": ["pciback"]` on a device (its probe by
//! that driver fails, `ENODEV`, or `{"pciback": "EIO"}`), `"assign_fails":
//! "EPERM"` (Xen refuses to assign it); `"fail_after_changes": N` at the top
//! (after N calls that changed the dom0, every call of the run fails: see
//! [`open`]).
//!
//! # Behaviour
//!
//! Reading and writing the file is in `load.rs`, the sysfs steps in
//! `kernel.rs`, xenstore in `xenstore.rs`, libxl and Xen in `libxl.rs` and
//! `attach.rs` (xl's stderr logger in `log.rs`), the xl command line in
//! `xl.rs` and `xl_cmd.rs`; each says which Linux or Xen function it
//! mirrors. The run holds an exclusive lock
//! on the snapshot from [`SimHost::open`] until the host is dropped, so a
//! module's read-plan-apply is atomic; [`Host::commit`] writes the file back
//! atomically, and only if something changed.

mod attach;
pub mod boot;
mod faults;
mod kernel;
mod libxl;
mod load;
mod log;
mod lookup;
pub mod snapshot;
mod sriov;
mod xenstore;
mod xl;
mod xl_cmd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use self::kernel::{check_driver_name, drv_attr, probe_path, sysfs_error, SysfsError};
use self::snapshot::Snapshot;
use super::*;
use crate::fileio::{self, FileLock, WriteOptions, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_SIZE};

/// A simulated dom0, locked for the whole run.
#[derive(Debug)]
pub struct SimHost {
    path: PathBuf,
    _lock: FileLock,
    state: Snapshot,
    saved: Snapshot,
}

/// The simulated dom0 at `path` as the modules use it: [`SimHost::open`],
/// behind the fault of the snapshot's `fail_after_changes` when it has one.
///
/// # Errors
/// As [`SimHost::open`].
pub fn open(path: PathBuf) -> Result<Box<dyn Host>, HostError> {
    let host = SimHost::open(path)?;
    Ok(match host.state().fail_after_changes {
        Some(limit) => Box::new(faults::Unreliable::new(host, limit)),
        None => Box::new(host),
    })
}

impl SimHost {
    /// Locks the snapshot at `path` (waiting up to 30 s for another run),
    /// reads it and checks it.
    ///
    /// # Errors
    /// [`HostError::Snapshot`] when it is missing, unreadable, not valid
    /// JSON (the reason names line and column), or inconsistent, or when
    /// the lock cannot be had.
    pub fn open(path: PathBuf) -> Result<Self, HostError> {
        Self::open_timeout(path, DEFAULT_LOCK_TIMEOUT)
    }

    /// [`SimHost::open`], waiting at most `timeout` for the lock.
    ///
    /// # Errors
    /// As [`SimHost::open`].
    pub fn open_timeout(path: PathBuf, timeout: Duration) -> Result<Self, HostError> {
        let err = |reason: String| HostError::Snapshot {
            path: path.display().to_string(),
            reason,
        };
        let target = fileio::resolve_target(&path).map_err(|e| err(e.to_string()))?;
        let lock = FileLock::acquire_timeout(&target, timeout).map_err(|e| err(e.to_string()))?;
        let bytes = fileio::read_file(&target, DEFAULT_MAX_SIZE)
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| {
                err(
                    "No such file or directory (start from playbooks-examples/hosts/typical.json)"
                        .into(),
                )
            })?;
        let text = String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 text: {e}")))?;
        let state = load::parse(&text).map_err(err)?;
        Ok(SimHost {
            path: target,
            _lock: lock,
            saved: state.clone(),
            state,
        })
    }

    /// The snapshot file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current state (for tests and tools).
    pub fn state(&self) -> &Snapshot {
        &self.state
    }

    /// Boots the simulated dom0 again (see [`boot`]); [`Host::commit`]
    /// writes the result.
    pub fn reboot(&mut self) {
        boot::reboot(&mut self.state);
    }

    fn to_pci_device(&self, d: &snapshot::SimDevice, virtfns: Vec<Bdf>) -> PciDevice {
        PciDevice {
            bdf: d.bdf,
            vendor: d.vendor.0,
            device: d.device.0,
            subsystem_vendor: d.subsystem_vendor.map_or(0, |h| h.0),
            subsystem_device: d.subsystem_device.map_or(0, |h| h.0),
            class: d.class.0,
            driver: d.driver.clone(),
            is_bridge: d.is_bridge(),
            conventional_bridge: d.conventional_bridge,
            parent: d.parent,
            boot_vga: d.boot_vga,
            iommu_group: d.iommu_group,
            physfn: d.physfn,
            sriov: d.sriov.as_ref().map(|s| SriovCap {
                total_vfs: s.total_vfs.unwrap_or(s.num_vfs),
                num_vfs: s.num_vfs,
                offset: s.offset,
                stride: s.stride,
                vf_device: s.vf_device.0,
                drivers_autoprobe: s.drivers_autoprobe,
            }),
            virtfns,
        }
    }

    fn managed(&mut self, file: ManagedFile) -> &mut Option<String> {
        self.state.files.get_mut(file)
    }
}

/// A sysfs write's failure as the real side reports it.
fn write_error(bdf: &Bdf, path: String, e: SysfsError) -> HostError {
    sysfs_error(format!("write {bdf} to"), path, e.errno().desc())
}

impl Host for SimHost {
    fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError> {
        let mut virtfns = self.state.all_virtfns();
        Ok(self
            .state
            .devices
            .iter()
            .map(|d| self.to_pci_device(d, virtfns.remove(&d.bdf).unwrap_or_default()))
            .collect())
    }

    fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
        Ok(self
            .state
            .dev(bdf)
            .map(|d| self.to_pci_device(d, self.state.virtfns(bdf))))
    }

    fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
        check_driver_name(driver)?;
        Ok(self.state.driver_loaded(driver))
    }

    /// `bind_store`'s checks: the driver is loaded and matches the device.
    fn driver_matches(&self, bdf: &Bdf, driver: &str) -> Result<Option<bool>, HostError> {
        check_driver_name(driver)?;
        let matches = self.state.dev(bdf).is_some_and(|d| d.matches(driver));
        Ok(Some(self.state.driver_loaded(driver) && matches))
    }

    fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        check_driver_name(driver)?;
        let path = drv_attr(driver, "unbind");
        // Like the real side, say why the kernel's ENODEV came.
        let why = match self.state.dev(bdf).map(|d| d.driver.clone()) {
            None => Some(format!("no {bdf} in /sys/{SYSFS_PCI_DEVICES}")),
            Some(Some(d)) if d == driver => None,
            Some(Some(other)) => Some(format!("{bdf} is bound to {other}")),
            Some(None) => Some(format!("{bdf} has no driver")),
        };
        match self.state.sysfs_unbind(bdf, driver) {
            Ok(()) => Ok(()),
            Err(SysfsError::Write(e)) if why.is_some() => Err(sysfs_error(
                format!("write {bdf} to"),
                path,
                format!("{} ({})", e.desc(), why.unwrap_or_default()),
            )),
            Err(e) => Err(write_error(bdf, path, e)),
        }
    }

    fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        check_driver_name(driver)?;
        let path = drv_attr(driver, "bind");
        self.state
            .sysfs_bind(bdf, driver)
            .map_err(|e| write_error(bdf, path, e))
    }

    fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.state
            .sysfs_drivers_probe(bdf)
            .map_err(|e| write_error(bdf, probe_path(), e))
    }

    fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
        let mut slots = self
            .state
            .sysfs_slots()
            .map_err(|e| sysfs_error("read", drv_attr(PCIBACK, "slots"), e.errno().desc()))?;
        // As the real side reports them: sorted, once each.
        slots.sort();
        slots.dedup();
        Ok(slots)
    }

    fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        let path = drv_attr(PCIBACK, "new_slot");
        self.state
            .sysfs_new_slot(bdf)
            .map_err(|e| write_error(bdf, path, e))
    }

    fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        let path = drv_attr(PCIBACK, "remove_slot");
        self.state
            .sysfs_remove_slot(bdf)
            .map_err(|e| write_error(bdf, path, e))
    }

    fn sriov_set_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), HostError> {
        let path = format!("{}/sriov_numvfs", kernel::dev_path(bdf));
        self.state
            .sysfs_sriov_numvfs(bdf, count)
            .map_err(|e| sysfs_error(format!("write {count} to"), path, e.errno().desc()))
    }

    fn sriov_set_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), HostError> {
        let path = format!("{}/sriov_drivers_autoprobe", kernel::dev_path(bdf));
        self.state
            .sysfs_sriov_autoprobe(bdf, on)
            .map_err(|e| sysfs_error(format!("write {} to", u8::from(on)), path, e.errno().desc()))
    }

    fn toolstack_running(&self) -> Result<bool, HostError> {
        Ok(self.state.toolstack)
    }

    fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError> {
        xl::run(&mut self.state, args)
    }

    fn xs_read(&self, path: &str) -> Result<Option<String>, HostError> {
        Ok(self.state.xs_get(path))
    }

    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError> {
        self.state.xs_set(path, value)
    }

    fn xs_rm(&mut self, path: &str) -> Result<(), HostError> {
        self.state.xs_remove(path)
    }

    fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError> {
        Ok(self.state.xs_children(path))
    }

    /// The device's own use, and for a bridge that of everything behind it.
    fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError> {
        let Some(dev) = self.state.dev(bdf) else {
            return Ok(Dom0Use::default());
        };
        let mut out = dev.dom0_use.to_dom0_use();
        if dev.is_bridge() {
            for b in self.state.behind(bdf) {
                if let Some(d) = self.state.dev(&b) {
                    let u = d.dom0_use.to_dom0_use();
                    out.block.extend(u.block);
                    out.net.extend(u.net);
                }
            }
        }
        Ok(out)
    }

    /// Domain-0 first, then the guests by domid, as `xl list` gives them.
    fn domains(&self) -> Result<Vec<Domain>, HostError> {
        let mut out = vec![Domain {
            domid: 0,
            name: "Domain-0".to_string(),
        }];
        let mut guests: Vec<Domain> = self
            .state
            .domains
            .iter()
            .map(|d| Domain {
                domid: d.domid,
                name: d.name.clone(),
            })
            .collect();
        guests.sort_by_key(|d| d.domid);
        out.extend(guests);
        Ok(out)
    }

    /// As `xl info` would say it: only with the toolstack running.
    fn iommu_enabled(&self) -> Result<Option<bool>, HostError> {
        Ok(self.state.toolstack.then_some(self.state.iommu))
    }

    /// As `xl list -l` would say it: only with the toolstack running.
    fn domain_passthrough(&self, domid: u32) -> Result<Option<String>, HostError> {
        Ok(self
            .state
            .domain(domid)
            .filter(|_| self.state.toolstack)
            .and_then(|d| d.passthrough.clone()))
    }

    fn kernel_log(&self) -> Result<String, HostError> {
        Ok(self
            .state
            .kernel_log
            .iter()
            .map(|l| format!("{l}\n"))
            .collect())
    }

    fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError> {
        let text = self.state.files.get(file);
        Ok(text.as_ref().map(|t| t.as_bytes().to_vec()))
    }

    fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError> {
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            HostError::Other(format!(
                "simulated host: {} must be UTF-8 text to fit in the snapshot",
                file.path()
            ))
        })?;
        *self.managed(file) = Some(text);
        Ok(())
    }

    fn file_remove(&mut self, file: ManagedFile) -> Result<(), HostError> {
        *self.managed(file) = None;
        Ok(())
    }

    fn boot_drivers(&self, bdf: &Bdf) -> Result<BootDrivers, HostError> {
        Ok(boot::boot_drivers(&self.state, bdf))
    }

    fn xen_version(&self) -> Result<Option<(u32, u32)>, HostError> {
        Ok(Some(self.state.xen_version()))
    }

    fn initramfs_tool(&self) -> Result<InitramfsTool, HostError> {
        Ok(match self.state.boot.initramfs {
            Some(_) => InitramfsTool::InitramfsTools,
            None => InitramfsTool::None,
        })
    }

    fn initramfs_rebuild(&mut self) -> Result<CommandOutput, HostError> {
        Ok(boot::rebuild_initramfs(&mut self.state))
    }

    fn commit(&mut self) -> Result<(), HostError> {
        if self.state == self.saved {
            return Ok(());
        }
        let text = self.state.to_json();
        fileio::atomic_write(&self.path, text.as_bytes(), &WriteOptions::default()).map_err(
            |e| HostError::Snapshot {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            },
        )?;
        self.saved = self.state.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    const HOSTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks-examples/hosts");

    fn b(t: &str) -> Bdf {
        Bdf::parse(t).unwrap()
    }

    /// A scratch copy of a shipped snapshot.
    fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        fs::copy(Path::new(HOSTS).join(name), &path).expect("copy");
        (dir, path)
    }

    fn snapshot_err(r: Result<SimHost, HostError>) -> String {
        match r {
            Err(HostError::Snapshot { reason, .. }) => reason,
            other => panic!("expected a snapshot error, got {other:?}"),
        }
    }

    #[test]
    fn shipped_snapshots_are_valid_and_canonical() {
        for name in ["typical.json", "sriov.json"] {
            let text = fs::read_to_string(Path::new(HOSTS).join(name)).expect("read");
            let snap = load::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                snap.to_json(),
                text,
                "{name} is not in the form the simulator writes"
            );
        }
    }

    #[test]
    fn typical_host_is_what_the_playbooks_expect() {
        let (_d, path) = scratch("typical.json");
        let host = SimHost::open(path).expect("open");
        let devs = host.pci_devices().unwrap();
        assert!(devs.windows(2).all(|w| w[0].bdf < w[1].bdf), "sorted");
        let nvme = host.dom0_use(&b("01:00.0")).unwrap();
        assert_eq!(nvme.block[2].mounts, ["/"]);
        // A root port's use is that of what is behind it.
        assert_eq!(host.dom0_use(&b("00:01.0")).unwrap(), nvme);
        assert!(host.dom0_use(&b("00:1c.0")).unwrap().net[0].up);
        assert!(host.pci_device(&b("00:02.0")).unwrap().unwrap().boot_vga);
        assert_eq!(host.pciback_slots().unwrap(), [b("07:00.0")]);
        let names: Vec<String> = host
            .domains()
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["Domain-0", "vm1", "vm2"]);
    }

    #[test]
    fn sriov_host_links_pf_and_vfs_both_ways() {
        let (_d, path) = scratch("sriov.json");
        let host = SimHost::open(path).expect("open");
        let pf = host.pci_device(&b("81:00.0")).unwrap().unwrap();
        assert_eq!(pf.virtfns.len(), 64);
        assert_eq!(pf.virtfns[63], b("81:08.0"));
        for vf in &pf.virtfns {
            let d = host.pci_device(vf).unwrap().unwrap();
            assert_eq!(
                (d.physfn, d.driver.as_deref()),
                (Some(pf.bdf), Some("iavf"))
            );
        }
        assert_eq!(host.dom0_use(&pf.bdf).unwrap(), Dom0Use::default());
    }

    #[test]
    fn second_open_waits_for_the_lock() {
        let (_d, path) = scratch("typical.json");
        let first = SimHost::open(path.clone()).expect("first");
        let reason = snapshot_err(SimHost::open_timeout(
            path.clone(),
            Duration::from_millis(100),
        ));
        assert!(reason.contains("timed out"), "{reason}");
        drop(first);
        SimHost::open_timeout(path, Duration::from_millis(100)).expect("free again");
    }

    #[test]
    fn missing_and_corrupt_snapshots_say_why() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.json");
        assert!(snapshot_err(SimHost::open(missing)).starts_with("No such file or directory"));
        let bad = d.path().join("bad.json");
        fs::write(&bad, "{\n  \"drivers\": [],\n  \"devices\": [,]\n}\n").unwrap();
        let reason = snapshot_err(SimHost::open(bad.clone()));
        assert!(reason.contains("line 3 column"), "{reason}");
        let err = SimHost::open(bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "simulated host {}: invalid JSON",
                d.path().join("bad.json").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn commit_writes_only_a_change() {
        let (_d, path) = scratch("typical.json");
        // A hand-formatted file stays byte for byte when nothing changes.
        let text = fs::read_to_string(&path).unwrap();
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&text).unwrap())
                .unwrap();
        fs::write(&path, &compact).unwrap();
        let ino = fs::metadata(&path).unwrap().ino();
        let mut host = SimHost::open(path.clone()).unwrap();
        host.pci_devices().unwrap();
        host.xl(&["pci-assignable-list".to_string()]).unwrap();
        host.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), compact);
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
        // A change is written atomically (a new inode) and reads back.
        host.xl(&["pci-assignable-add".to_string(), "03:00.0".to_string()])
            .unwrap();
        host.commit().unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), ino);
        let state = host.state().clone();
        drop(host);
        let again = SimHost::open(path).unwrap();
        assert_eq!(again.state(), &state);
        assert_eq!(
            again
                .pci_device(&b("03:00.0"))
                .unwrap()
                .unwrap()
                .driver
                .as_deref(),
            Some(PCIBACK)
        );
    }

    #[test]
    fn sysfs_errors_read_as_the_real_sides() {
        let (_d, path) = scratch("typical.json");
        let mut host = SimHost::open(path).unwrap();
        let e = host.dev_bind(&b("03:00.0"), PCIBACK).unwrap_err();
        assert_eq!(
            e,
            HostError::Sysfs {
                op: "write 0000:03:00.0 to".into(),
                path: "/sys/bus/pci/drivers/pciback/bind".into(),
                reason: "Device or resource busy".into(),
            }
        );
        let e = host.dev_unbind(&b("03:00.0"), PCIBACK).unwrap_err();
        assert_eq!(
            e.to_string(),
            "write 0000:03:00.0 to /sys/bus/pci/drivers/pciback/unbind: No such device (0000:03:00.0 is bound to e1000e)"
        );
        host.dev_unbind(&b("03:00.0"), "e1000e").unwrap();
        let e = host.dev_bind(&b("03:00.0"), PCIBACK).unwrap_err();
        assert_eq!(
            e.to_string(),
            "write 0000:03:00.0 to /sys/bus/pci/drivers/pciback/bind: No such device"
        );
        let e = host.pciback_remove_slot(&b("03:00.0")).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("remove_slot: No such file or directory"),
            "{e}"
        );
        host.pciback_new_slot(&b("03:00.0")).unwrap();
        host.dev_bind(&b("03:00.0"), PCIBACK).unwrap();
        assert!(host
            .kernel_log()
            .unwrap()
            .ends_with("pciback 0000:03:00.0: seizing device\n"));
        assert!(matches!(
            host.dev_bind(&b("03:00.0"), "../x"),
            Err(HostError::Other(_))
        ));
        let e = host.dev_reprobe(&b("0a:00.0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "write 0000:0a:00.0 to /sys/bus/pci/drivers_probe: No such device"
        );
    }

    #[test]
    fn files_and_xenstore_round_trip() {
        let (_d, path) = scratch("typical.json");
        let mut host = SimHost::open(path.clone()).unwrap();
        assert_eq!(host.file_read(ManagedFile::DriverRecord).unwrap(), None);
        host.file_write(
            ManagedFile::DriverRecord,
            b"{\"0000:03:00.0\": \"e1000e\"}\n",
        )
        .unwrap();
        host.xs_write("/libxl/pci/0000-03-00-0/name", "spare")
            .unwrap();
        assert_eq!(
            host.xs_directory("/libxl/pci").unwrap(),
            ["0000-03-00-0", "0000-07-00-0"]
        );
        host.xs_rm("/libxl/pci/0000-03-00-0/name").unwrap();
        assert_eq!(
            host.xs_read("/libxl/pci/0000-03-00-0").unwrap().as_deref(),
            Some("")
        );
        host.commit().unwrap();
        drop(host);
        let host = SimHost::open(path).unwrap();
        assert_eq!(
            host.file_read(ManagedFile::DriverRecord)
                .unwrap()
                .as_deref(),
            Some(&b"{\"0000:03:00.0\": \"e1000e\"}\n"[..])
        );
        assert_eq!(
            host.xs_read("/libxl/pci/0000-03-00-0").unwrap().as_deref(),
            Some("")
        );
    }
}
