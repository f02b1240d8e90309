//! `persistent`: the boot configuration that keeps hidden devices on
//! xen-pciback after a reboot, planned as file changes and an initramfs
//! rebuild (the mechanism and why it holds: [`crate::bootcfg`]).
//!
//! [`plan_boot`] decides which devices are hidden at boot, renders the
//! three files for them (none at all when no device is hidden), and plans
//! `update-initramfs` whenever a file changes or an earlier run left the
//! rebuild pending. It also says whether the boot state will differ from
//! the running one, device by device, for `reboot_required`.

use std::fmt;

use crate::bdf::Bdf;
use crate::bootcfg::{self, ModprobeConf, INITRAMFS_HOOK, MODULES_LOAD};
use crate::host::{CommandOutput, Host, HostError, InitramfsTool, ManagedFile, PCIBACK};

use super::{AssignError, AssignRequest, AssignState, DevicePlan};

/// One step of the boot side of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootStep {
    /// Write a boot file.
    Write(ManagedFile, String),
    /// Remove a boot file.
    Remove(ManagedFile),
    /// Rebuild the initramfs (`update-initramfs -u -k all`).
    RebuildInitramfs,
}

impl fmt::Display for BootStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootStep::Write(file @ ManagedFile::ModprobeHide, text) => {
                let conf = ModprobeConf::parse(text);
                let list: Vec<String> = conf.hidden.iter().map(Bdf::to_string).collect();
                let deps: Vec<&str> = conf.softdeps.iter().map(String::as_str).collect();
                write!(f, "write {} (hide: {}", file.path(), list.join(" "))?;
                if !deps.is_empty() {
                    write!(f, "; xen-pciback loads before: {}", deps.join(" "))?;
                }
                write!(f, ")")
            }
            BootStep::Write(file, _) => write!(f, "write {}", file.path()),
            BootStep::Remove(file) => write!(f, "remove {}", file.path()),
            BootStep::RebuildInitramfs => write!(f, "update-initramfs -u -k all"),
        }
    }
}

/// One boot file: what it holds now and what it will hold (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Which file.
    pub file: ManagedFile,
    /// Its text now.
    pub before: Option<String>,
    /// Its text after the plan.
    pub after: Option<String>,
}

/// The boot side of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootPlan {
    /// Every boot file, changed or not, in [`ManagedFile::BOOT`] order.
    pub files: Vec<BootFile>,
    /// The steps: file writes and removals, then the initramfs rebuild.
    pub steps: Vec<BootStep>,
    /// With `persistent`: why the next boot will not leave the devices as
    /// they are now (empty: it will).
    pub reboot_reasons: Option<Vec<String>>,
}

/// Plans the boot files for `req`, whose devices end as `devices` say.
pub fn plan_boot(
    host: &dyn Host,
    req: &AssignRequest,
    devices: &[DevicePlan],
    warnings: &mut Vec<String>,
) -> Result<BootPlan, AssignError> {
    let mut conf = ModprobeConf::parse(
        read(host, ManagedFile::ModprobeHide)?
            .as_deref()
            .unwrap_or(""),
    );
    if !req.persistent {
        return unmanaged(host, req, devices, &conf, warnings);
    }
    for d in devices {
        conf.set(d.bdf, req.state == AssignState::Present);
    }
    for b in &req.unhide {
        conf.set(*b, false);
    }
    if req.state == AssignState::Present {
        warn_virtual_functions(host, devices, warnings)?;
    }
    set_softdeps(host, &mut conf, devices, warnings)?;
    let hidden = !conf.hidden.is_empty();
    let initramfs = initramfs_managed(host, hidden, warnings)?;
    let wanted = |file: ManagedFile| -> Option<String> {
        match file {
            ManagedFile::ModprobeHide if hidden => Some(conf.render()),
            ManagedFile::ModulesLoad if hidden => Some(MODULES_LOAD.into()),
            ManagedFile::InitramfsHook if hidden && initramfs => Some(INITRAMFS_HOOK.into()),
            _ => None,
        }
    };
    let mut files = Vec::new();
    let mut steps = Vec::new();
    for file in ManagedFile::BOOT {
        let before = read(host, file)?;
        let after = wanted(file);
        if before != after {
            steps.push(match &after {
                Some(text) => BootStep::Write(file, text.clone()),
                None => BootStep::Remove(file),
            });
        }
        files.push(BootFile {
            file,
            before,
            after,
        });
    }
    let pending = host.file_read(ManagedFile::InitramfsPending)?.is_some();
    if initramfs && (!steps.is_empty() || pending) {
        steps.push(BootStep::RebuildInitramfs);
    }
    let reasons = reboot_reasons(host, &conf, devices)?;
    Ok(BootPlan {
        files,
        steps,
        reboot_reasons: Some(reasons),
    })
}

fn read(host: &dyn Host, f: ManagedFile) -> Result<Option<String>, AssignError> {
    Ok(host
        .file_read(f)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Without `persistent` the boot files are left as they are (shown in the
/// diff as they are); a device given back that they still hide gets a
/// warning.
fn unmanaged(
    host: &dyn Host,
    req: &AssignRequest,
    devices: &[DevicePlan],
    conf: &ModprobeConf,
    warnings: &mut Vec<String>,
) -> Result<BootPlan, AssignError> {
    if req.state == AssignState::Absent {
        for d in devices.iter().filter(|d| conf.contains(&d.bdf)) {
            warnings.push(format!(
                "{} is still hidden from dom0 at boot by {} (set persistent: true to change that)",
                d.bdf,
                ManagedFile::ModprobeHide.path()
            ));
        }
    }
    let files = ManagedFile::BOOT
        .iter()
        .map(|&file| {
            let now = read(host, file)?;
            Ok(BootFile {
                file,
                after: now.clone(),
                before: now,
            })
        })
        .collect::<Result<_, AssignError>>()?;
    Ok(BootPlan {
        files,
        ..BootPlan::default()
    })
}

/// `softdep MODULE pre: xen-pciback` for the modules of every hidden
/// device, so xen-pciback loads first. A driver built into the kernel
/// cannot wait for it: refused for a device of this request, a warning for
/// one hidden before.
fn set_softdeps(
    host: &dyn Host,
    conf: &mut ModprobeConf,
    devices: &[DevicePlan],
    warnings: &mut Vec<String>,
) -> Result<(), AssignError> {
    conf.softdeps.clear();
    for b in conf.hidden.clone() {
        let drivers = host.boot_drivers(&b)?;
        if let Some(builtin) = drivers.builtin.first() {
            if devices.iter().any(|d| d.bdf == b) {
                return Err(AssignError::Invalid(format!(
                    "persistent: {b} cannot stay hidden at boot: its driver {builtin} is built \
                     into this kernel and takes it before xen-pciback can load (build {builtin} \
                     as a module, or leave persistent off and make it assignable after each boot)"
                )));
            }
            warnings.push(format!(
                "{b} is hidden at boot, but its driver {builtin} is built into this kernel and \
                 takes it first"
            ));
        }
        let modules = drivers
            .modules
            .into_iter()
            .filter(|m| !bootcfg::is_pciback(m));
        conf.softdeps.extend(modules);
    }
    Ok(())
}

/// Whether the module manages the initramfs (initramfs-tools builds it);
/// another tool gets a warning when devices are hidden.
fn initramfs_managed(
    host: &dyn Host,
    hidden: bool,
    warnings: &mut Vec<String>,
) -> Result<bool, AssignError> {
    Ok(match host.initramfs_tool()? {
        InitramfsTool::InitramfsTools => true,
        InitramfsTool::None => false,
        InitramfsTool::Unmanaged(tool) => {
            if hidden {
                warnings.push(format!(
                    "this dom0 builds its initramfs with {tool}, which xenpci does not configure: \
                     unless xen-pciback and {} are in it, a driver loaded from the initramfs \
                     takes a hidden device at boot",
                    ManagedFile::ModprobeHide.path()
                ));
            }
            false
        }
    })
}

/// A VF exists at boot only once something writes its PF's `sriov_numvfs`
/// again: `hide=` names it, but nothing here creates it.
fn warn_virtual_functions(
    host: &dyn Host,
    devices: &[DevicePlan],
    warnings: &mut Vec<String>,
) -> Result<(), AssignError> {
    let mut vfs = Vec::new();
    for d in devices {
        if let Some(pf) = host.pci_device(&d.bdf)?.and_then(|p| p.physfn) {
            vfs.push((d.bdf, pf));
        }
    }
    if let Some((first, pf)) = vfs.first() {
        warnings.push(format!(
            "persistent: {} virtual function(s) ({first} of {pf}, ...) exist after a boot only \
             once {pf}'s sriov_numvfs is set again, which this module does not do; \
             xen-pciback takes them then, if it is loaded before their driver",
            vfs.len()
        ));
    }
    Ok(())
}

/// Where the next boot will leave a device other than it is after the
/// plan: the devices of the run, and every hidden one.
fn reboot_reasons(
    host: &dyn Host,
    conf: &ModprobeConf,
    devices: &[DevicePlan],
) -> Result<Vec<String>, AssignError> {
    let mut reasons = Vec::new();
    let mut note = |b: &Bdf, driver: Option<&str>| {
        let on_pciback = driver == Some(PCIBACK);
        if conf.contains(b) && !on_pciback {
            reasons.push(format!(
                "{b} is hidden from dom0 at boot but is on {} now",
                driver.unwrap_or("no driver")
            ));
        } else if !conf.contains(b) && on_pciback {
            reasons.push(format!(
                "{b} is on pciback now but dom0's drivers take it at boot"
            ));
        }
    };
    for d in devices {
        note(&d.bdf, d.driver_after.as_deref());
    }
    for b in conf
        .hidden
        .iter()
        .filter(|b| devices.iter().all(|d| d.bdf != **b))
    {
        let driver = host.pci_device(b)?.and_then(|p| p.driver);
        note(b, driver.as_deref());
    }
    Ok(reasons)
}

/// A failed boot step: the error, and the command's run when it was the
/// initramfs rebuild.
pub type BootFailure = (AssignError, Option<Box<CommandOutput>>);

/// Runs the boot steps, after the devices, noting each in `actions`. The
/// initramfs carries a copy of the boot files, so a rebuild is pending from
/// the first file change until the rebuild succeeds: a marker file says so,
/// and a later run that finds it rebuilds (see [`plan_boot`]), even if this
/// one is killed between.
pub fn apply_boot(
    host: &mut dyn Host,
    steps: &[BootStep],
    actions: &mut Vec<String>,
) -> Result<(), BootFailure> {
    let host_err = |e: HostError| (AssignError::Host(e), None);
    let rebuilds = steps.contains(&BootStep::RebuildInitramfs);
    if rebuilds && steps.len() > 1 {
        host.file_write(ManagedFile::InitramfsPending, PENDING.as_bytes())
            .map_err(host_err)?;
    }
    for step in steps {
        match step {
            BootStep::Write(file, text) => {
                host.file_write(*file, text.as_bytes()).map_err(host_err)?
            }
            BootStep::Remove(file) => host.file_remove(*file).map_err(host_err)?,
            BootStep::RebuildInitramfs => rebuild_initramfs(host)?,
        }
        actions.push(step.to_string());
    }
    if rebuilds {
        host.file_remove(ManagedFile::InitramfsPending)
            .map_err(host_err)?;
    }
    Ok(())
}

/// The marker's text, for a person who finds it; pci_sriov's udev rule
/// shares the marker (the initramfs carries a copy of it too).
pub const PENDING: &str =
    "The boot files of xenpci changed and the initramfs was not rebuilt yet:\n\
                           the next pci_assignable or pci_sriov run with persistent: true\n\
                           rebuilds it (or run update-initramfs -u -k all).\n";

fn rebuild_initramfs(host: &mut dyn Host) -> Result<(), BootFailure> {
    let out = host
        .initramfs_rebuild()
        .map_err(|e| (AssignError::Host(e), None))?;
    if out.rc == 0 {
        return Ok(());
    }
    let what = format!(
        "`update-initramfs -u -k all` failed with rc {}: {}; the boot files are written, but \
         until the initramfs is rebuilt a driver loaded from it can take a hidden device at \
         boot (the next run with persistent: true tries again)",
        out.rc,
        out.error_line()
    );
    Err((AssignError::Invalid(what), Some(Box::new(out))))
}
