//! What a real dom0 would do with a device at its next boot: which modules
//! udev loads for it, and which of them are built into the kernel.
//!
//! udev loads the modules a device's `modalias` resolves to; `modprobe -R`
//! resolves it the same way (`modules.alias`, `modules.builtin.alias`). A
//! module listed in `modules.builtin` of the running kernel is built in: it
//! binds at enumeration, before xen-pciback can load.

use std::path::Path;

use super::cmd::{self, PROBE_TIMEOUT};
use super::sysfs::read_opt;
use super::Roots;
use crate::bdf::Bdf;
use crate::host::{BootDrivers, HostError, SYSFS_PCI_DEVICES};

/// The boot drivers of `bdf` (none when it has no `modalias`, or no
/// module matches it).
pub(super) fn drivers(roots: &Roots, bdf: &Bdf) -> Result<BootDrivers, HostError> {
    let dev = roots.sys.join(SYSFS_PCI_DEVICES).join(bdf.to_string());
    let Some(alias) = read_opt(&dev.join("modalias"))? else {
        return Ok(BootDrivers::default());
    };
    let out = cmd::run(&roots.modprobe, &["-R", alias.trim()], Some(PROBE_TIMEOUT))?;
    // rc 1 and no output: no module matches the alias. A module whose id
    // and class aliases both match is printed twice (nvme, on the lab).
    let mut modules: Vec<String> = Vec::new();
    if out.rc == 0 {
        for m in out.stdout.split_whitespace() {
            if !modules.iter().any(|k| same_module(k, m)) {
                modules.push(m.to_string());
            }
        }
    }
    let builtin_list = builtin_modules(roots)?;
    let builtin = modules
        .iter()
        .filter(|m| builtin_list.iter().any(|b| same_module(b, m)))
        .cloned()
        .collect();
    Ok(BootDrivers { modules, builtin })
}

/// The module names of `modules.builtin` of the running kernel (empty when
/// the file cannot be found).
fn builtin_modules(roots: &Roots) -> Result<Vec<String>, HostError> {
    let Some(release) = read_opt(&roots.proc.join("sys/kernel/osrelease"))? else {
        return Ok(Vec::new());
    };
    let list = roots
        .files
        .join("lib/modules")
        .join(release.trim())
        .join("modules.builtin");
    let text = read_opt(&list)?.unwrap_or_default();
    Ok(text.lines().filter_map(module_of_path).collect())
}

/// `kernel/drivers/nvme/host/nvme.ko` -> `nvme`.
fn module_of_path(line: &str) -> Option<String> {
    let file = Path::new(line.trim()).file_name()?.to_str()?;
    file.strip_suffix(".ko").map(str::to_string)
}

/// kmod treats `-` and `_` in module names alike.
pub(crate) fn same_module(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'-' || x == b'_') && (y == b'-' || y == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_compare_as_kmod_does() {
        assert!(same_module("xen-pciback", "xen_pciback"));
        assert!(!same_module("e1000", "e1000e"));
        assert_eq!(
            module_of_path("kernel/drivers/pci/pcie/portdrv.ko\n").as_deref(),
            Some("portdrv")
        );
    }
}
