//! Skeleton of the sim host (being written).
#![allow(unused_variables)]
use super::*;

/// The sim host.
pub struct SimHost;

impl SimHost {
    /// Opens (and locks) the snapshot at `path`.
    pub fn open(path: std::path::PathBuf) -> Result<Self, HostError> {
        let _ = path;
        Err(HostError::Other("skeleton".into()))
    }
}

impl Host for SimHost {
    fn pci_devices(&self) -> Result<Vec<PciDevice>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn pci_device(&self, bdf: &Bdf) -> Result<Option<PciDevice>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn driver_loaded(&self, driver: &str) -> Result<bool, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn dev_unbind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn dev_bind(&mut self, bdf: &Bdf, driver: &str) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn dev_reprobe(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn pciback_slots(&self) -> Result<Vec<Bdf>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn pciback_new_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn pciback_remove_slot(&mut self, bdf: &Bdf) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn toolstack_running(&self) -> Result<bool, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn xl(&mut self, args: &[String]) -> Result<CommandOutput, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn xs_read(&self, path: &str) -> Result<Option<String>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn xs_rm(&mut self, path: &str) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn xs_directory(&self, path: &str) -> Result<Vec<String>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn dom0_use(&self, bdf: &Bdf) -> Result<Dom0Use, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn domains(&self) -> Result<Vec<Domain>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn kernel_log(&self) -> Result<String, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn file_read(&self, file: ManagedFile) -> Result<Option<Vec<u8>>, HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn file_write(&mut self, file: ManagedFile, bytes: &[u8]) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
    fn commit(&mut self) -> Result<(), HostError> {
        Err(HostError::Other("skeleton".into()))
    }
}
