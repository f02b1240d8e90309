//! A simulated dom0 that stops answering mid-run ([`Unreliable`]), for the
//! snapshot's `fail_after_changes`: after that many calls that changed the
//! dom0, every call fails but [`Host::commit`], so the changes made until
//! then are kept. It shows what a module reports when a step fails after
//! the host has changed (a re-read of the guest after a hot-plug, say).

use super::SimHost;
use crate::bdf::Bdf;
use crate::host::{
    BootDrivers, CommandOutput, Dom0Use, Domain, Host, HostError, InitramfsTool, ManagedFile,
    PciDevice,
};

/// A [`SimHost`] whose calls fail after `limit` changes.
#[derive(Debug)]
pub struct Unreliable {
    inner: SimHost,
    limit: u32,
    changes: u32,
}

impl Unreliable {
    /// `inner`, failing after `limit` changes.
    pub fn new(inner: SimHost, limit: u32) -> Self {
        Unreliable {
            inner,
            limit,
            changes: 0,
        }
    }

    fn answering(&self) -> Result<(), HostError> {
        if self.changes < self.limit {
            return Ok(());
        }
        Err(HostError::Other(format!(
            "simulated fault: the dom0 stopped answering after {} change(s) (fail_after_changes)",
            self.limit
        )))
    }

    /// Runs a call that may change the dom0, counting it when it did.
    fn change<T>(
        &mut self,
        call: impl FnOnce(&mut SimHost) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        self.answering()?;
        let before = self.inner.state().clone();
        let out = call(&mut self.inner);
        if *self.inner.state() != before {
            self.changes += 1;
        }
        out
    }
}

impl Host for Unreliable {
    fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError> {
        self.answering()?;
        self.inner.pci_devices()
    }
    fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
        self.answering()?;
        self.inner.pci_device(bdf)
    }
    fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
        self.answering()?;
        self.inner.driver_loaded(driver)
    }
    fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        self.change(|h| h.dev_unbind(bdf, driver))
    }
    fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        self.change(|h| h.dev_bind(bdf, driver))
    }
    fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.change(|h| h.dev_reprobe(bdf))
    }
    fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
        self.answering()?;
        self.inner.pciback_slots()
    }
    fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.change(|h| h.pciback_new_slot(bdf))
    }
    fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        self.change(|h| h.pciback_remove_slot(bdf))
    }
    fn sriov_set_numvfs(&mut self, bdf: &Bdf, count: u16) -> Result<(), HostError> {
        self.change(|h| h.sriov_set_numvfs(bdf, count))
    }
    fn sriov_set_autoprobe(&mut self, bdf: &Bdf, on: bool) -> Result<(), HostError> {
        self.change(|h| h.sriov_set_autoprobe(bdf, on))
    }
    fn toolstack_running(&self) -> Result<bool, HostError> {
        self.answering()?;
        self.inner.toolstack_running()
    }
    fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError> {
        self.change(|h| h.xl(args))
    }
    fn xs_read(&self, path: &str) -> Result<Option<String>, HostError> {
        self.answering()?;
        self.inner.xs_read(path)
    }
    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError> {
        self.change(|h| h.xs_write(path, value))
    }
    fn xs_rm(&mut self, path: &str) -> Result<(), HostError> {
        self.change(|h| h.xs_rm(path))
    }
    fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError> {
        self.answering()?;
        self.inner.xs_directory(path)
    }
    fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError> {
        self.answering()?;
        self.inner.dom0_use(bdf)
    }
    fn domains(&self) -> Result<Vec<Domain>, HostError> {
        self.answering()?;
        self.inner.domains()
    }
    fn kernel_log(&self) -> Result<String, HostError> {
        self.answering()?;
        self.inner.kernel_log()
    }
    fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError> {
        self.answering()?;
        self.inner.file_read(file)
    }
    fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError> {
        self.change(|h| h.file_write(file, bytes))
    }
    fn file_remove(&mut self, file: ManagedFile) -> Result<(), HostError> {
        self.change(|h| h.file_remove(file))
    }
    fn boot_drivers(&self, bdf: &Bdf) -> Result<BootDrivers, HostError> {
        self.answering()?;
        self.inner.boot_drivers(bdf)
    }
    fn initramfs_tool(&self) -> Result<InitramfsTool, HostError> {
        self.answering()?;
        self.inner.initramfs_tool()
    }
    fn initramfs_rebuild(&mut self) -> Result<CommandOutput, HostError> {
        self.change(|h| h.initramfs_rebuild())
    }
    fn xen_version(&self) -> Result<Option<(u32, u32)>, HostError> {
        self.answering()?;
        self.inner.xen_version()
    }
    fn driver_matches(&self, bdf: &Bdf, driver: &str) -> Result<Option<bool>, HostError> {
        self.answering()?;
        self.inner.driver_matches(bdf, driver)
    }
    fn iommu_enabled(&self) -> Result<Option<bool>, HostError> {
        self.answering()?;
        self.inner.iommu_enabled()
    }
    fn domain_passthrough(&self, domid: u32) -> Result<Option<String>, HostError> {
        self.answering()?;
        self.inner.domain_passthrough(domid)
    }
    /// Always answers: the fault is the dom0's, not the snapshot file's.
    fn commit(&mut self) -> Result<(), HostError> {
        self.inner.commit()
    }
    fn lock_for_changes(&mut self) -> Result<(), HostError> {
        self.inner.lock_for_changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fail_after_the_last_allowed_change_and_commit_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dom0.json");
        let typical = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/playbooks-examples/hosts/typical.json"
        );
        std::fs::copy(typical, &path).unwrap();
        let mut host = Unreliable::new(SimHost::open(path.clone()).unwrap(), 1);
        // Reads and calls that change nothing do not count.
        let list = ["pci-list".to_string(), "1".to_string()];
        assert_eq!(host.xl(&list).unwrap().rc, 0);
        host.xs_write("/libxl/pci/0000-03-00-0/name", "nic")
            .unwrap();
        let err = host.xs_read("/libxl/pci/0000-03-00-0/name").unwrap_err();
        assert!(err.to_string().contains("stopped answering"), "{err}");
        assert!(host.xl(&list).is_err());
        host.commit().unwrap();
        drop(host);
        let again = SimHost::open(path).unwrap();
        assert_eq!(
            again.xs_read("/libxl/pci/0000-03-00-0/name").unwrap(),
            Some("nic".into())
        );
    }
}
