//! The look-ups the rest of the simulator shares over a [`Snapshot`]: a
//! device by BDF, a bridge's ancestors, a PF's VFs, the guest holding a
//! device, the loaded drivers. The types themselves, as users write them,
//! are in `snapshot.rs`.

use std::collections::HashMap;

use super::snapshot::{SimDevice, SimDomain, Snapshot};
use crate::bdf::Bdf;
use crate::host::PCIBACK;

impl SimDevice {
    /// Whether it is a bridge: the override, else base class `0x06`.
    pub fn is_bridge(&self) -> bool {
        self.is_bridge.unwrap_or(self.class.0 >> 16 == 0x06)
    }

    /// The drivers whose id table matches it (after `expand`).
    pub fn matching(&self) -> &[String] {
        self.drivers_that_match.as_deref().unwrap_or_default()
    }

    /// Whether `driver`'s id table matches it: pciback's matches all.
    pub fn matches(&self, driver: &str) -> bool {
        driver == PCIBACK || self.matching().iter().any(|d| d == driver)
    }
}

/// The default of `drivers_that_match`: the bound driver, unless it is
/// pciback (whose table says nothing about where the device came from).
pub(super) fn default_matching(driver: Option<&String>) -> Vec<String> {
    driver
        .filter(|d| *d != PCIBACK)
        .cloned()
        .into_iter()
        .collect()
}

impl Snapshot {
    /// [`Snapshot::xl_version`]'s major and minor numbers (4.17 when
    /// absent or unreadable).
    pub fn xen_version(&self) -> (u32, u32) {
        let parsed = self.xl_version.as_deref().and_then(|v| {
            let mut parts = v.split('.').map(|p| p.trim().parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        });
        parsed.unwrap_or((4, 17))
    }

    /// The position of the device at `bdf` in `devices`: every snapshot is
    /// made by `load::parse`, whose `expand` sorts them by BDF, and the
    /// simulator only ever removes devices, so a binary search finds it.
    fn position(&self, bdf: &Bdf) -> Option<usize> {
        self.devices.binary_search_by(|d| d.bdf.cmp(bdf)).ok()
    }

    /// The device at `bdf`.
    pub fn dev(&self, bdf: &Bdf) -> Option<&SimDevice> {
        self.position(bdf).map(|i| &self.devices[i])
    }

    /// The device at `bdf`, to change.
    pub fn dev_mut(&mut self, bdf: &Bdf) -> Option<&mut SimDevice> {
        self.position(bdf).map(|i| &mut self.devices[i])
    }

    /// The bridges above `bdf`, nearest first (stops on a loop).
    pub fn ancestors(&self, bdf: &Bdf) -> Vec<Bdf> {
        let mut out = Vec::new();
        let mut cur = self.dev(bdf).and_then(|d| d.parent);
        while let Some(p) = cur {
            if out.contains(&p) || out.len() > self.devices.len() {
                out.push(p);
                break;
            }
            out.push(p);
            cur = self.dev(&p).and_then(|d| d.parent);
        }
        out
    }

    /// Everything behind the bridge `bdf`, at any depth.
    pub fn behind(&self, bdf: &Bdf) -> Vec<Bdf> {
        self.devices
            .iter()
            .filter(|d| d.bdf != *bdf && self.ancestors(&d.bdf).contains(bdf))
            .map(|d| d.bdf)
            .collect()
    }

    /// The VFs of `pf`, sorted.
    pub fn virtfns(&self, pf: &Bdf) -> Vec<Bdf> {
        // A VF has none: `validate` refuses a physfn that is itself a VF.
        if self.dev(pf).is_some_and(|d| d.physfn.is_some()) {
            return Vec::new();
        }
        self.devices
            .iter()
            .filter(|d| d.physfn.as_ref() == Some(pf))
            .map(|d| d.bdf)
            .collect()
    }

    /// The VFs of every physical function that has any, each list sorted:
    /// [`Snapshot::virtfns`] of all devices in one pass.
    pub fn all_virtfns(&self) -> HashMap<Bdf, Vec<Bdf>> {
        let mut out: HashMap<Bdf, Vec<Bdf>> = HashMap::new();
        for d in &self.devices {
            if let Some(pf) = d.physfn {
                out.entry(pf).or_default().push(d.bdf);
            }
        }
        out
    }

    /// The guest holding `bdf`, if any.
    pub fn holder(&self, bdf: &Bdf) -> Option<&SimDomain> {
        self.domains
            .iter()
            .find(|d| d.devices.iter().any(|a| a.bdf == *bdf))
    }

    /// The guest with this domid.
    pub fn domain(&self, domid: u32) -> Option<&SimDomain> {
        self.domains.iter().find(|d| d.domid == domid)
    }

    /// The guest with this domid, to change.
    pub fn domain_mut(&mut self, domid: u32) -> Option<&mut SimDomain> {
        self.domains.iter_mut().find(|d| d.domid == domid)
    }

    /// Whether `driver` is loaded.
    pub fn driver_loaded(&self, driver: &str) -> bool {
        self.drivers.iter().any(|d| d == driver)
    }

    /// Appends a kernel log line.
    pub fn klog(&mut self, line: String) {
        self.kernel_log.push(line);
    }
}
