//! What survives a reboot: the driver record.
//!
//! [`DriverRecord`] is this project's own note of the driver each device had
//! before it went to pciback (JSON, `ManagedFile::DriverRecord`), written
//! before the unbind so that no crash can lose it. libxl keeps the same
//! fact in xenstore (`/libxl/pci/BDF/driver_path`), but xenstore is wiped by
//! a reboot.
//! The boot configuration, which decides where devices are after a reboot,
//! is planned in `boot.rs`.

use std::collections::BTreeMap;

use crate::bdf::Bdf;
use crate::host::{Host, HostError, ManagedFile};

/// The original driver of each device this project moved to pciback.
///
/// Changes are made in memory ([`DriverRecord::set`], [`DriverRecord::forget`])
/// and written by [`DriverRecord::save`], one write for any number of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverRecord {
    drivers: BTreeMap<Bdf, Entry>,
    /// What the file holds, as far as this run knows: as read, then as
    /// last saved.
    on_disk: BTreeMap<Bdf, Entry>,
}

/// One device's record: its driver, and whether it went to pciback through
/// sysfs (then Xen never quarantined it, and `xl pci-assignable-remove`
/// would refuse to give it back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    /// The first format: the driver alone.
    Driver(String),
    /// The driver and the path taken.
    Full {
        driver: String,
        #[serde(default)]
        sysfs: bool,
        /// dom0's network interfaces on it when it went to pciback (where
        /// it has none), for selectors by `netdev`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        netdevs: Vec<String>,
    },
}

impl Entry {
    fn driver(&self) -> &str {
        match self {
            Entry::Driver(d) | Entry::Full { driver: d, .. } => d,
        }
    }

    fn sysfs(&self) -> bool {
        matches!(self, Entry::Full { sysfs: true, .. })
    }
}

impl DriverRecord {
    /// Reads the record (empty when the file does not exist). A corrupt
    /// record is an error: silently forgetting drivers would strand devices.
    pub fn read(host: &dyn Host) -> Result<DriverRecord, HostError> {
        let Some(bytes) = host.file_read(ManagedFile::DriverRecord)? else {
            return Ok(DriverRecord::default());
        };
        let drivers: BTreeMap<Bdf, Entry> = serde_json::from_slice(&bytes).map_err(|e| {
            HostError::Other(format!(
                "{} is corrupt ({e}); fix or remove it",
                ManagedFile::DriverRecord.path()
            ))
        })?;
        Ok(DriverRecord {
            on_disk: drivers.clone(),
            drivers,
        })
    }

    /// The recorded driver of `bdf`.
    pub fn get(&self, bdf: &Bdf) -> Option<&str> {
        self.drivers.get(bdf).map(Entry::driver)
    }

    /// Whether `bdf` went to pciback through sysfs (so it is not
    /// quarantined and xl cannot release it).
    pub fn via_sysfs(&self, bdf: &Bdf) -> bool {
        self.drivers.get(bdf).is_some_and(Entry::sysfs)
    }

    /// Records `driver` for `bdf` (and whether sysfs was the path, and
    /// dom0's interfaces on it), in memory: [`DriverRecord::save`] writes
    /// it.
    pub fn set(&mut self, bdf: Bdf, driver: &str, sysfs: bool, netdevs: &[String]) {
        let entry = Entry::Full {
            driver: driver.to_string(),
            sysfs,
            netdevs: netdevs.to_vec(),
        };
        self.drivers.insert(bdf, entry);
    }

    /// The interfaces dom0 had on `bdf` when it went to pciback.
    pub fn netdevs(&self, bdf: &Bdf) -> &[String] {
        match self.drivers.get(bdf) {
            Some(Entry::Full { netdevs, .. }) => netdevs,
            _ => &[],
        }
    }

    /// Forgets `bdf`, in memory; returns whether it was recorded.
    pub fn forget(&mut self, bdf: &Bdf) -> bool {
        self.drivers.remove(bdf).is_some()
    }

    /// Gives `bdf` the entry it has in `other` (none if none there).
    pub fn reset_to(&mut self, bdf: &Bdf, other: &DriverRecord) {
        match other.drivers.get(bdf) {
            Some(e) => self.drivers.insert(*bdf, e.clone()),
            None => self.drivers.remove(bdf),
        };
    }

    /// Writes the file if the record differs from what it holds.
    pub fn save(&mut self, host: &mut dyn Host) -> Result<(), HostError> {
        if self.drivers == self.on_disk {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&self.drivers)
            .map_err(|e| HostError::Other(e.to_string()))?;
        host.file_write(ManagedFile::DriverRecord, format!("{text}\n").as_bytes())?;
        self.on_disk.clone_from(&self.drivers);
        Ok(())
    }
}
