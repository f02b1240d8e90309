//! SR-IOV virtual functions: how many a physical function has, now and at
//! boot, planned then applied.
//!
//! The kernel's rules (`sriov_numvfs_store` in `drivers/pci/iov.c`) shape
//! the plan: a PF goes from N VFs to M through 0 (a write of M while VFs
//! exist is `EBUSY`), only its own dom0 driver can change the count (`ENOENT`
//! without one, or on pciback), and `sriov_drivers_autoprobe` decides
//! whether dom0's drivers take the VFs as they appear, so it is written
//! before the count. No count changes while pciback holds a VF (the PF's
//! driver refuses, `EPERM`), and removing VFs dom0 uses is refused unless
//! `force`. With
//! `persistent`, the udev rule of [`crate::bootcfg::sriov_rule`] gives the PF the same VFs at
//! every boot.
//!
//! [`plan`] reads the host and returns a [`Plan`] of [`Step`]s; [`apply`]
//! runs them and, when making the new VFs fails after the old ones were
//! removed, makes the old count again.

use std::fmt;

use crate::assignable::boot::PENDING;
use crate::bdf::Bdf;
use crate::bootcfg::sriov_rule::{SriovRule, SriovRules};
use crate::guard;
use crate::host::{xs_pci_path, Host, HostError, InitramfsTool, ManagedFile, SriovCap, PCIBACK};

/// The checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SriovRequest {
    /// The physical function.
    pub pf: Bdf,
    /// The VFs it should have.
    pub num_vfs: u16,
    /// `sriov_drivers_autoprobe`, when asked.
    pub autoprobe: Option<bool>,
    /// Also at every boot (the udev rule).
    pub persistent: bool,
    /// Remove VFs that dom0 uses.
    pub force: bool,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `sriov_drivers_autoprobe`.
    Autoprobe(Bdf, bool),
    /// Write `sriov_numvfs`.
    NumVfs(Bdf, u16),
    /// Write the udev rule file (its new text).
    WriteRule(String),
    /// Remove the udev rule file (no PF left in it).
    RemoveRule,
    /// `update-initramfs -u -k all`: initramfs-tools copies the rules of
    /// `/etc/udev/rules.d` into the initramfs, where a stale copy would
    /// make the old count at boot (the root filesystem's then fails with
    /// `EBUSY`).
    RebuildInitramfs,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Autoprobe(b, on) => write!(
                f,
                "write {} to /sys/bus/pci/devices/{b}/sriov_drivers_autoprobe",
                u8::from(*on)
            ),
            Step::NumVfs(b, n) => write!(f, "write {n} to /sys/bus/pci/devices/{b}/sriov_numvfs"),
            Step::WriteRule(_) => write!(f, "write {}", ManagedFile::SriovRule.path()),
            Step::RemoveRule => write!(f, "remove {}", ManagedFile::SriovRule.path()),
            Step::RebuildInitramfs => f.write_str("update-initramfs -u -k all"),
        }
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The physical function.
    pub pf: Bdf,
    /// Its capability as read.
    pub cap: SriovCap,
    /// Its VFs now.
    pub vfs_before: Vec<Bdf>,
    /// Its VFs after the plan (where the capability places them).
    pub vfs_after: Vec<Bdf>,
    /// Autoprobe after the plan.
    pub autoprobe: bool,
    /// The rule file before and after (absent: `None`).
    pub rule_before: Option<String>,
    /// The rule file after the plan.
    pub rule_after: Option<String>,
    /// The VFs the PF gets at boot after the plan (`None`: no rule).
    pub boot_num_vfs: Option<u16>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether anything changes.
    pub fn changed(&self) -> bool {
        !self.steps.is_empty()
    }
}

/// Why a request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    /// A request that cannot work as given, or a refusal.
    #[error("{0}")]
    Invalid(String),
    /// The host refused a step.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Plans `req` on `host`.
pub fn plan(host: &dyn Host, req: &SriovRequest) -> Result<Plan, SriovError> {
    let pf = req.pf;
    let dev = host.pci_device(&pf)?.ok_or_else(|| {
        SriovError::Invalid(format!(
            "no PCI device {pf} on this host (no /sys/bus/pci/devices/{pf})"
        ))
    })?;
    let cap = match (dev.sriov, dev.physfn) {
        (Some(cap), _) => cap,
        (None, Some(parent)) => {
            return Err(SriovError::Invalid(format!(
                "{pf} is a virtual function of {parent}: give the physical function"
            )))
        }
        (None, None) => {
            return Err(SriovError::Invalid(format!(
                "{pf} is not an SR-IOV physical function (it has no sriov_totalvfs)"
            )))
        }
    };
    if req.num_vfs > cap.total_vfs {
        return Err(SriovError::Invalid(format!(
            "{pf} can have at most {} VFs (sriov_totalvfs), not {}",
            cap.total_vfs, req.num_vfs
        )));
    }
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let autoprobe = req.autoprobe.unwrap_or(cap.drivers_autoprobe);
    let count_changes = req.num_vfs != cap.num_vfs;
    if count_changes {
        match dev.driver.as_deref() {
            None => {
                return Err(SriovError::Invalid(format!(
                    "{pf} has no driver, and only its dom0 driver can make VFs (sriov_numvfs \
                 fails with ENOENT): give it back to dom0 first (pci_assignable state: absent)"
                )))
            }
            Some(PCIBACK) => {
                return Err(SriovError::Invalid(format!(
                    "{pf} is on pciback, which cannot make VFs (sriov_numvfs fails with ENOENT): \
                 give it back to dom0 first (pci_assignable state: absent)"
                )))
            }
            Some(_) => {}
        }
    }
    if autoprobe != cap.drivers_autoprobe {
        steps.push(Step::Autoprobe(pf, autoprobe));
    }
    if count_changes && cap.num_vfs > 0 {
        check_removable(host, &dev.virtfns, req.force, &mut warnings)?;
        steps.push(Step::NumVfs(pf, 0));
    }
    if count_changes && req.num_vfs > 0 {
        steps.push(Step::NumVfs(pf, req.num_vfs));
    }
    let rule_before = host
        .file_read(ManagedFile::SriovRule)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut rules = SriovRules::parse(rule_before.as_deref().unwrap_or(""));
    if req.persistent {
        match req.num_vfs {
            0 => rules.remove(&pf),
            n => rules.set(SriovRule {
                pf,
                num_vfs: n,
                autoprobe,
            }),
        }
    }
    // Without persistent the file is left as it is, whoever wrote it.
    let rule_after = if req.persistent {
        let text = rules.render();
        (!text.is_empty()).then_some(text)
    } else {
        rule_before.clone()
    };
    if rule_after != rule_before {
        steps.push(match &rule_after {
            Some(t) => Step::WriteRule(t.clone()),
            None => Step::RemoveRule,
        });
    }
    // The rule changed, or a run killed before its rebuild left the marker.
    let pending = host.file_read(ManagedFile::InitramfsPending)?.is_some();
    let rule_changed = rule_after != rule_before;
    if (rule_changed || (req.persistent && pending))
        && host.initramfs_tool()? == InitramfsTool::InitramfsTools
    {
        steps.push(Step::RebuildInitramfs);
    }
    let boot_num_vfs = rules.get(&pf).map(|r| r.num_vfs);
    if !req.persistent && boot_num_vfs.is_some_and(|n| n != req.num_vfs) {
        warnings.push(format!(
            "{pf}: {} gives it {} VFs at boot; persistent: true makes that {}",
            ManagedFile::SriovRule.path(),
            boot_num_vfs.unwrap_or_default(),
            req.num_vfs
        ));
    }
    Ok(Plan {
        pf,
        cap,
        vfs_before: dev.virtfns.clone(),
        vfs_after: vf_bdfs(&pf, &cap, req.num_vfs),
        autoprobe,
        rule_before,
        rule_after,
        boot_num_vfs,
        steps,
        warnings,
    })
}

/// Refuses to remove VFs that pciback holds (made assignable, or in a
/// guest): xen-pciback flags every device it takes as assigned, and the PF
/// drivers' `sriov_configure` then refuse any change (`EPERM`, "Cannot
/// modify SR-IOV while VFs are assigned", seen on the lab's nvme; ice,
/// i40e, ixgbe and mlx5 check `pci_vfs_assigned` alike), so no `force`
/// can help. VFs dom0 uses (the guard's reasons) are refused unless
/// `force`, which warns. Every VF is named with its reason.
fn check_removable(
    host: &dyn Host,
    vfs: &[Bdf],
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<(), SriovError> {
    let mut assigned = Vec::new();
    let mut used = Vec::new();
    for vf in vfs {
        if let Some(domid) = host.xs_read(&xs_pci_path(vf, Some("domid")))? {
            assigned.push(format!("{vf} is attached to domain {domid}"));
            continue;
        }
        let Some(dev) = host.pci_device(vf)? else {
            continue;
        };
        if dev.driver.as_deref() == Some(PCIBACK) {
            assigned.push(format!("{vf} is on pciback"));
            continue;
        }
        let reasons = guard::refusals(&dev, &host.dom0_use(vf)?);
        if !reasons.is_empty() {
            let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            used.push(format!("{vf}: {}", why.join("; ")));
        }
    }
    if !assigned.is_empty() {
        return Err(SriovError::Invalid(format!(
            "refusing to change the VFs while pciback holds some ({}): the kernel refuses \
             it too (EPERM: the PF's driver cannot modify SR-IOV while VFs are assigned), \
             force or not; detach them (pci_attach state: absent) and give them back \
             (pci_assignable state: absent) first",
            assigned.join("; ")
        )));
    }
    if used.is_empty() {
        return Ok(());
    }
    if force {
        warnings.extend(
            used.iter()
                .map(|h| format!("force: removing the VF although {h}")),
        );
        return Ok(());
    }
    Err(SriovError::Invalid(format!(
        "refusing to remove VFs dom0 uses (set force: true to override): {}",
        used.join(" | ")
    )))
}

/// Where the capability places the first `n` VFs of `pf`: routing id
/// `PF + offset + i * stride` (the casts keep the bits of a 16-bit id).
pub fn vf_bdfs(pf: &Bdf, cap: &SriovCap, n: u16) -> Vec<Bdf> {
    let rid = (u32::from(pf.bus) << 8) | (u32::from(pf.dev) << 3) | u32::from(pf.func);
    (0..n)
        .map(|i| rid + u32::from(cap.offset) + u32::from(i) * u32::from(cap.stride))
        .take_while(|r| *r <= 0xffff)
        .map(|r| Bdf {
            domain: pf.domain,
            bus: (r >> 8) as u8,
            dev: ((r >> 3) & 0x1f) as u8,
            func: (r & 7) as u8,
        })
        .collect()
}

/// What a failed apply did.
#[derive(Debug)]
pub struct ApplyFailure {
    /// The error.
    pub error: SriovError,
    /// The steps done, a restore included.
    pub done: Vec<String>,
}

impl From<HostError> for Box<ApplyFailure> {
    /// A host error before any step (the simulated host's commit).
    fn from(e: HostError) -> Self {
        Box::new(ApplyFailure {
            error: e.into(),
            done: Vec::new(),
        })
    }
}

/// Runs the plan. When the new count cannot be made after the old VFs
/// were removed, the old count is made again (the PF then has its VFs
/// back, though their drivers are whatever autoprobe gives them).
pub fn apply(host: &mut dyn Host, plan: &Plan) -> Result<Vec<String>, Box<ApplyFailure>> {
    let mut done = Vec::new();
    let mut old_removed = false;
    // From the rule's change to the end of the rebuild, the marker says a
    // rebuild is due (pci_assignable's boot files share it).
    let rebuilds = plan.steps.contains(&Step::RebuildInitramfs);
    let marks = rebuilds
        && plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::WriteRule(_) | Step::RemoveRule));
    for step in &plan.steps {
        let result = match step {
            Step::Autoprobe(b, on) => host.sriov_set_autoprobe(b, *on),
            Step::NumVfs(b, n) => host.sriov_set_numvfs(b, *n),
            Step::WriteRule(text) => mark(host, marks)
                .and_then(|()| host.file_write(ManagedFile::SriovRule, text.as_bytes())),
            Step::RemoveRule => {
                mark(host, marks).and_then(|()| host.file_remove(ManagedFile::SriovRule))
            }
            Step::RebuildInitramfs => rebuild(host),
        };
        if let Err(e) = result {
            if old_removed && matches!(step, Step::NumVfs(..)) {
                let back = Step::NumVfs(plan.pf, plan.cap.num_vfs);
                match host.sriov_set_numvfs(&plan.pf, plan.cap.num_vfs) {
                    Ok(()) => done.push(format!("undo: {back}")),
                    Err(e2) => done.push(format!("could not undo: {back}: {e2}")),
                }
            }
            return Err(Box::new(ApplyFailure {
                error: e.into(),
                done,
            }));
        }
        old_removed |= *step == Step::NumVfs(plan.pf, 0) && plan.cap.num_vfs > 0;
        done.push(step.to_string());
    }
    if rebuilds {
        host.file_remove(ManagedFile::InitramfsPending)
            .map_err(|e| {
                Box::new(ApplyFailure {
                    error: e.into(),
                    done: done.clone(),
                })
            })?;
    }
    Ok(done)
}

/// Writes the pending-rebuild marker, when the plan rebuilds.
fn mark(host: &mut dyn Host, marks: bool) -> Result<(), HostError> {
    if !marks {
        return Ok(());
    }
    host.file_write(ManagedFile::InitramfsPending, PENDING.as_bytes())
}

/// `update-initramfs -u -k all`, its failure a sentence with its error.
fn rebuild(host: &mut dyn Host) -> Result<(), HostError> {
    let out = host.initramfs_rebuild()?;
    if out.rc == 0 {
        return Ok(());
    }
    Err(HostError::Other(format!(
        "`update-initramfs -u -k all` failed with rc {}: {}; the udev rule is written, but \
         until the initramfs is rebuilt its old copy there acts at boot (the next run with \
         persistent: true tries again)",
        out.rc,
        out.error_line()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vfs_sit_at_offset_and_stride() {
        let cap = SriovCap {
            total_vfs: 64,
            num_vfs: 0,
            offset: 1,
            stride: 1,
            vf_device: 0x10ed,
            drivers_autoprobe: true,
        };
        let pf: Bdf = "81:00.0".parse().unwrap();
        let vfs = vf_bdfs(&pf, &cap, 64);
        assert_eq!(vfs[0].to_string(), "0000:81:00.1");
        assert_eq!(vfs[63].to_string(), "0000:81:08.0");
        let wide = SriovCap {
            offset: 0x80,
            stride: 2,
            ..cap
        };
        let vfs = vf_bdfs(&pf, &wide, 2);
        assert_eq!(vfs[0].to_string(), "0000:81:10.0");
        assert_eq!(vfs[1].to_string(), "0000:81:10.2");
    }
}
