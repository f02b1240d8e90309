//! The real host: a running dom0, through sysfs, `/proc`, `/dev/kmsg`, `xl`,
//! the xenstore tools and `ip`.
//!
//! [`RealHost`] implements [`Host`] step by step as `libxl_pci.c` does
//! (each method names the libxl function it mirrors). Where everything
//! lives is one [`Roots`] value: [`RealHost::new`] uses the real `/sys`,
//! `/proc`, `/dev`, `/` and the tools on `PATH`; [`RealHost::with_roots`]
//! points it at a scratch tree and fake tools, which is how the tests drive
//! it. The files below do one job each: `sysfs.rs` (PCI sysfs, libxl's
//! `sysfs_*`/`pciback_*` steps), `dom0_use.rs` (block devices, mounts,
//! swap, network interfaces), `cmd.rs` (running programs, xenstore,
//! `xl list`), `kmsg.rs` (the kernel log).
//!
//! ```no_run
//! use std::path::PathBuf;
//! use xenpci::host::real::{RealHost, Roots};
//! use xenpci::host::Host;
//!
//! let scratch = PathBuf::from("/tmp/scratch");
//! let host = RealHost::with_roots(Roots {
//!     sys: scratch.join("sys"),
//!     proc: scratch.join("proc"),
//!     ..Roots::default()
//! });
//! for dev in host.pci_devices()? {
//!     println!("{dev}");
//! }
//! # Ok::<(), xenpci::host::HostError>(())
//! ```

mod boot;
mod cmd;
mod dom0_use;
mod kmsg;
mod sysfs;

use std::cell::OnceCell;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::bdf::Bdf;
use crate::fileio::{self, FileError, WriteOptions, DEFAULT_MAX_SIZE};
use crate::host::{
    BootDrivers, CommandOutput, Dom0Use, Domain, Host, HostError, InitramfsTool, ManagedFile,
    PciDevice,
};

use cmd::{Xenstore, PROBE_TIMEOUT, XENSTORE_TIMEOUT};
use dom0_use::Scan;
use sysfs::{read_opt, Sysfs};

/// Mode of a folder this host creates for a managed file (`/var/lib/xenpci`).
const MANAGED_DIR_MODE: u32 = 0o755;
/// The node the toolstack probe reads: `xen-init-dom0` writes it when the
/// toolstack starts (`xencommons`, Debian's `xen.service`).
const XS_DOM0_NAME: &str = "/local/domain/0/name";
/// The word in `/proc/xen/capabilities` that marks the control domain.
const CONTROL_D: &str = "control_d";

/// Where the real host finds everything. [`Roots::default`] is a real dom0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The sysfs root, `/sys`.
    pub sys: PathBuf,
    /// The procfs root, `/proc` (`self/mountinfo`, `self/mounts`, `swaps`,
    /// `xen/capabilities`).
    pub proc: PathBuf,
    /// The devices root, `/dev` (`kmsg`).
    pub dev: PathBuf,
    /// The root under which [`ManagedFile::path`] lives, `/`.
    pub files: PathBuf,
    /// The `xl` program.
    pub xl: PathBuf,
    /// The xenstore tools' prefix: `xenstore` runs `xenstore-read`,
    /// `xenstore-write`, `xenstore-rm`, `xenstore-list`; `/opt/bin/xenstore`
    /// runs `/opt/bin/xenstore-read`...
    pub xenstore: PathBuf,
    /// The `ip` program (iproute2, with `-j`).
    pub ip: PathBuf,
    /// The `modprobe` program (kmod, with `-R`).
    pub modprobe: PathBuf,
    /// initramfs-tools' `update-initramfs`; where it does not exist, the
    /// dom0 has no initramfs to keep in step.
    pub update_initramfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            dev: PathBuf::from("/dev"),
            files: PathBuf::from("/"),
            xl: PathBuf::from("xl"),
            xenstore: PathBuf::from("xenstore"),
            ip: PathBuf::from("ip"),
            modprobe: PathBuf::from("modprobe"),
            update_initramfs: PathBuf::from("/usr/sbin/update-initramfs"),
        }
    }
}

/// The running dom0.
#[derive(Debug)]
pub struct RealHost {
    roots: Roots,
    sysfs: Sysfs,
    xenstore: Xenstore,
    /// The toolstack probe's answer, asked once a run: it does not change
    /// while a module runs, and each probe costs a xenstore round trip.
    toolstack: OnceCell<bool>,
    /// Held while a run changes the host (see `lock_for_changes`).
    lock: Option<crate::fileio::FileLock>,
}

impl RealHost {
    /// The real dom0: `/sys`, `/proc`, `/dev`, `/`, and `xl`, `xenstore-*`,
    /// `ip` from `PATH`.
    pub fn new() -> Self {
        Self::with_roots(Roots::default())
    }

    /// A host whose files and tools are where `roots` says.
    pub fn with_roots(roots: Roots) -> Self {
        RealHost {
            sysfs: Sysfs::new(roots.sys.clone()),
            xenstore: Xenstore::new(roots.xenstore.clone()),
            roots,
            toolstack: OnceCell::new(),
            lock: None,
        }
    }

    /// Where this host finds everything.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Where a managed file is on this host.
    fn managed_path(&self, file: ManagedFile) -> PathBuf {
        let rel = file.path().trim_start_matches('/');
        self.roots.files.join(rel)
    }

    /// Whether this is dom0 with a working toolstack:
    ///
    /// 1. `/proc/xen/capabilities` says `control_d`: we run in the control
    ///    domain with xenfs mounted (`/sys/hypervisor/type` would say `xen`
    ///    in a guest too). Without it nothing is run at all.
    /// 2. xenstored answers `xenstore-read /local/domain/0/name` within
    ///    [`PROBE_TIMEOUT`]: every `xl` command needs xenstored, and the
    ///    node exists once the toolstack's start-up (`xen-init-dom0`) ran.
    ///    A missing tool, an error or no answer in time mean "not running".
    fn probe_toolstack(&self) -> Result<bool, HostError> {
        let caps = read_opt(&self.roots.proc.join("xen/capabilities"))?;
        if !caps.is_some_and(|c| c.split_whitespace().any(|w| w == CONTROL_D)) {
            return Ok(false);
        }
        Ok(matches!(
            self.xenstore.read(XS_DOM0_NAME, PROBE_TIMEOUT),
            Ok(Some(_))
        ))
    }

    /// The device's own sysfs folder, resolved (`/sys/devices/pci...`).
    fn device_path(&self, bdf: &Bdf) -> Option<PathBuf> {
        fs::canonicalize(self.sysfs.device_dir(bdf)).ok()
    }
}

impl Default for RealHost {
    fn default() -> Self {
        Self::new()
    }
}

/// The errno's own text: `No such device`, without std's `(os error 19)`.
pub(super) fn errno_text(code: i32) -> String {
    nix::errno::Errno::from_raw(code).desc().to_string()
}

fn file_err(e: FileError) -> HostError {
    match e {
        FileError::Io { op, path, error } => HostError::Sysfs {
            op: op.to_string(),
            path: path.display().to_string(),
            reason: error
                .raw_os_error()
                .map_or_else(|| error.to_string(), errno_text),
        },
        other => HostError::Other(other.to_string()),
    }
}

/// Creates the folder of a managed file, 0755, when it is missing.
fn ensure_dir(dir: &Path) -> Result<(), HostError> {
    if dir.is_dir() {
        return Ok(());
    }
    let create_err = |e: &std::io::Error| sysfs::sysfs_err("create", dir, e);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(MANAGED_DIR_MODE)
        .create(dir)
        .map_err(|e| create_err(&e))?;
    // The umask may have taken bits away; the folder is meant to be 0755.
    fs::set_permissions(dir, fs::Permissions::from_mode(MANAGED_DIR_MODE))
        .map_err(|e| create_err(&e))
}

impl Host for RealHost {
    fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError> {
        self.sysfs.devices()
    }

    fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
        self.sysfs.device(bdf)
    }

    fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
        self.sysfs.driver_loaded(driver)
    }

    /// A driver's id table is not in sysfs (and `new_id` can widen it), so
    /// only a driver that is not loaded is known not to take the device.
    fn driver_matches(&self, _bdf: &Bdf, driver: &str) -> Result<Option<bool>, HostError> {
        Ok((!self.sysfs.driver_loaded(driver)?).then_some(false))
    }

    fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        self.sysfs.dev_unbind(bdf, driver)
    }

    fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        self.sysfs.dev_bind(bdf, driver)
    }

    fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.sysfs.dev_reprobe(bdf)
    }

    fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
        self.sysfs.pciback_slots()
    }

    fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.sysfs.pciback_new_slot(bdf)
    }

    fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.sysfs.pciback_remove_slot(bdf)
    }

    fn sriov_set_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), HostError> {
        self.sysfs
            .sriov_write(bdf, "sriov_numvfs", &count.to_string())
    }

    fn sriov_set_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), HostError> {
        let value = if on { "1" } else { "0" };
        self.sysfs
            .sriov_write(bdf, "sriov_drivers_autoprobe", value)
    }

    fn toolstack_running(&self) -> Result<bool, HostError> {
        if let Some(known) = self.toolstack.get() {
            return Ok(*known);
        }
        let running = self.probe_toolstack()?;
        Ok(*self.toolstack.get_or_init(|| running))
    }

    fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError> {
        // No time limit: `xl create`, `shutdown -w` and pci-attach take as
        // long as they take (seconds under emulation), and xl has its own.
        cmd::run(&self.roots.xl, args, None)
    }

    fn xs_read(&self, path: &str) -> Result<Option<String>, HostError> {
        self.xenstore.read(path, XENSTORE_TIMEOUT)
    }

    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError> {
        self.xenstore.write(path, value)
    }

    fn xs_rm(&mut self, path: &str) -> Result<(), HostError> {
        self.xenstore.rm(path)
    }

    fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError> {
        self.xenstore.list(path)
    }

    fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError> {
        let Some(device) = self.device_path(bdf) else {
            return Ok(Dom0Use::default());
        };
        let scan = Scan {
            sys: &self.roots.sys,
            proc: &self.roots.proc,
            ip: &self.roots.ip,
        };
        Ok(Dom0Use {
            block: scan.block(&device)?,
            net: scan.net(&device)?,
        })
    }

    fn xen_version(&self) -> Result<Option<(u32, u32)>, HostError> {
        let dir = self.roots.sys.join("hypervisor/version");
        let number = |name: &str| -> Result<Option<u32>, HostError> {
            Ok(read_opt(&dir.join(name))?.and_then(|t| t.trim().parse().ok()))
        };
        Ok(number("major")?.zip(number("minor")?))
    }

    fn domains(&self) -> Result<Vec<Domain>, HostError> {
        let out = cmd::run(&self.roots.xl, &["list"], None)?;
        if out.rc != 0 {
            return Err(cmd::failed(&out));
        }
        Ok(cmd::parse_xl_list(&out.stdout))
    }

    // Both are advice for a plan (xl itself refuses later, with its own
    // message), so an xl that fails or prints something else is "cannot
    // tell", not an error.
    fn iommu_enabled(&self) -> Result<Option<bool>, HostError> {
        if !self.toolstack_running()? {
            return Ok(None);
        }
        let out = cmd::run(&self.roots.xl, &["info"], None)?;
        Ok(cmd::parse_xl_info_iommu(&out.stdout).filter(|_| out.rc == 0))
    }

    fn domain_passthrough(&self, domid: u32) -> Result<Option<String>, HostError> {
        if !self.toolstack_running()? {
            return Ok(None);
        }
        let out = cmd::run(&self.roots.xl, &["list", "-l", &domid.to_string()], None)?;
        Ok(cmd::parse_xl_list_passthrough(&out.stdout).filter(|_| out.rc == 0))
    }

    fn kernel_log(&self) -> Result<String, HostError> {
        kmsg::read_kmsg(&self.roots.dev.join("kmsg"))
    }

    fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError> {
        fileio::read_file(&self.managed_path(file), DEFAULT_MAX_SIZE).map_err(file_err)
    }

    fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError> {
        let path = self.managed_path(file);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        // An administrator's symlink is followed, not replaced.
        let target = fileio::resolve_target(&path).map_err(file_err)?;
        let opts = WriteOptions {
            new_file_mode: Some(file.mode()),
        };
        fileio::atomic_write(&target, bytes, &opts).map_err(file_err)
    }

    fn file_remove(&mut self, file: ManagedFile) -> Result<(), HostError> {
        let path = self.managed_path(file);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(sysfs::sysfs_err("remove", &path, &e)),
        }
    }

    fn boot_drivers(&self, bdf: &Bdf) -> Result<BootDrivers, HostError> {
        boot::drivers(&self.roots, bdf)
    }

    fn initramfs_tool(&self) -> Result<InitramfsTool, HostError> {
        if self.roots.update_initramfs.is_file() {
            return Ok(InitramfsTool::InitramfsTools);
        }
        let dracut = ["usr/bin/dracut", "usr/sbin/dracut"]
            .iter()
            .any(|p| self.roots.files.join(p).is_file());
        Ok(if dracut {
            InitramfsTool::Unmanaged("dracut".into())
        } else {
            InitramfsTool::None
        })
    }

    fn initramfs_rebuild(&mut self) -> Result<CommandOutput, HostError> {
        // No time limit: it takes as long as compressing every kernel's
        // initramfs takes (a minute on a slow dom0).
        cmd::run(&self.roots.update_initramfs, &["-u", "-k", "all"], None)
    }

    fn commit(&mut self) -> Result<(), HostError> {
        // Every change above took effect when it was made.
        Ok(())
    }

    /// A lock beside the driver record: two runs that read the record (and
    /// the devices' drivers) and then change them must not interleave.
    fn lock_for_changes(&mut self) -> Result<(), HostError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let record = self.managed_path(ManagedFile::DriverRecord);
        if let Some(dir) = record.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HostError::Sysfs {
                op: "create".into(),
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let lock = crate::fileio::FileLock::acquire(&record)
            .map_err(|e| HostError::Other(e.to_string()))?;
        self.lock = Some(lock);
        Ok(())
    }
}
