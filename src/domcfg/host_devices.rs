//! [`HostDevices`]: what the host knows of the devices a config names
//! (libxl's assignable names, the PCI functions present), read through the
//! [`Host`] trait only when a plan first needs it.

use std::cell::OnceCell;

use crate::bdf::Bdf;
use crate::host::{self, xs_pci_path, Host};

/// What the host knows of the devices a config names, read when first
/// needed: libxl's assignable names and the PCI functions present.
pub struct HostDevices<'a> {
    source: Source<'a>,
    opened: OnceCell<Result<Box<dyn Host>, String>>,
    names: OnceCell<Result<Vec<(String, Bdf)>, String>>,
    functions: OnceCell<Result<Vec<Bdf>, String>>,
}

enum Source<'a> {
    Nothing,
    Host(&'a dyn Host),
    Open,
}

impl<'a> HostDevices<'a> {
    /// No host: names are compared as names, a wildcard covers every
    /// function.
    pub fn none() -> HostDevices<'static> {
        HostDevices::from_source(Source::Nothing)
    }

    /// The host a module already holds.
    pub fn of(host: &'a dyn Host) -> HostDevices<'a> {
        HostDevices::from_source(Source::Host(host))
    }

    /// The host [`host::open`] picks, opened only if the plan needs it (and
    /// then held until this is dropped).
    pub fn open() -> HostDevices<'static> {
        HostDevices::from_source(Source::Open)
    }

    fn from_source(source: Source<'a>) -> HostDevices<'a> {
        HostDevices {
            source,
            opened: OnceCell::new(),
            names: OnceCell::new(),
            functions: OnceCell::new(),
        }
    }

    fn host(&self) -> Result<&dyn Host, String> {
        match &self.source {
            Source::Nothing => Err("no host was given".into()),
            Source::Host(h) => Ok(*h),
            Source::Open => match self
                .opened
                .get_or_init(|| host::open().map_err(|e| e.to_string()))
            {
                Ok(h) => Ok(h.as_ref()),
                Err(e) => Err(e.clone()),
            },
        }
    }

    /// Every `/libxl/pci/*/name` record, in xenstore's order (libxl's
    /// `name2bdf()` takes the first match).
    pub(super) fn names(&self) -> &Result<Vec<(String, Bdf)>, String> {
        self.names.get_or_init(|| {
            let host = self.host()?;
            read_names(host)
        })
    }

    /// The PCI functions present on the host.
    pub(super) fn functions(&self) -> &Result<Vec<Bdf>, String> {
        self.functions.get_or_init(|| {
            let host = self.host()?;
            let devices = host.pci_devices().map_err(|e| e.to_string())?;
            Ok(devices.into_iter().map(|d| d.bdf).collect())
        })
    }
}

fn read_names(host: &dyn Host) -> Result<Vec<(String, Bdf)>, String> {
    if !host.toolstack_running().map_err(|e| e.to_string())? {
        return Err("the Xen toolstack does not run on this host".into());
    }
    let mut out = Vec::new();
    for node in host.xs_directory("/libxl/pci").map_err(|e| e.to_string())? {
        let Ok(bdf) = Bdf::from_xenstore_form(&node) else {
            continue;
        };
        let name = host
            .xs_read(&xs_pci_path(&bdf, Some("name")))
            .map_err(|e| e.to_string())?;
        if let Some(name) = name {
            out.push((name, bdf));
        }
    }
    Ok(out)
}
