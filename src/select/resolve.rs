//! Resolving selections against the host: [`resolve`] and the
//! [`Resolver`] a module gives it, the ranking of a count, and the spec
//! forms the modules share.

use std::collections::BTreeSet;

use super::{DeviceArg, HexId, Resolved, SelectError, Selected, Selection, Selector};
use crate::assignable::DriverRecord;
use crate::bdf::Bdf;
use crate::guard;
use crate::host::{Host, HostError, PciDevice};
use crate::spec::{spec_list, Device, ListError, PciSpec, PciSpecObject, SpecArg};

/// How a module resolves its arguments.
pub struct Resolver<'a, T> {
    /// The host device a given argument names, if it names one by BDF.
    pub bdf_of: &'a dyn Fn(&T) -> Option<Bdf>,
    /// Whether a device is already where the task asks.
    pub in_place: &'a dyn Fn(&PciDevice) -> bool,
    /// The item for a chosen device, with the selection's options (an
    /// error for options the module does not take).
    pub make: &'a dyn Fn(Bdf, &Selection) -> Result<T, String>,
    /// Devices other parts of the request name: a count never picks them.
    pub taken: &'a BTreeSet<Bdf>,
    /// The devices the module can act on at all (pci_sriov: SR-IOV
    /// physical functions); the others never match.
    pub candidate: &'a dyn Fn(&PciDevice) -> bool,
}

impl Resolved<SpecArg> {
    /// The resolved specs, checked as [`spec_list`] checks them, an error
    /// naming the argument it came from.
    pub fn specs(&self, adding: bool) -> Result<Vec<PciSpec>, ListError> {
        spec_list(&self.items, adding).map_err(|e| ListError {
            index: self.origin(e.index),
            ..e
        })
    }
}

/// The given specs of `args` checked alone, before the host is opened:
/// a bad one fails as it did before selectors, touching nothing.
pub fn check_given_specs(args: &[DeviceArg<SpecArg>], adding: bool) -> Result<(), ListError> {
    for (index, a) in args.iter().enumerate() {
        if let DeviceArg::Given(arg) = a {
            let spec = if adding {
                arg.to_spec_to_add()
            } else {
                arg.to_spec()
            };
            spec.map_err(|e| ListError {
                index,
                problem: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// The host device a spec argument names by BDF.
pub fn spec_bdf(arg: &SpecArg) -> Option<Bdf> {
    match arg.to_spec().ok()?.device {
        Device::Bdf(p) => p.bdf(),
        Device::Name(_) => None,
    }
}

/// The spec of a device a selection chose: its BDF with the selection's
/// options.
pub fn spec_of(bdf: Bdf, sel: &Selection) -> Result<SpecArg, String> {
    Ok(SpecArg::Object(PciSpecObject {
        bdf: Some(bdf.to_string()),
        ..sel.options.clone()
    }))
}

/// [`resolve`] for spec arguments, a device in place when `in_place`
/// says so.
pub fn resolve_specs(
    host: &dyn Host,
    args: &[DeviceArg<SpecArg>],
    in_place: &dyn Fn(&PciDevice) -> bool,
    taken: &BTreeSet<Bdf>,
) -> Result<Resolved<SpecArg>, SelectError> {
    resolve(
        host,
        args,
        &Resolver {
            bdf_of: &spec_bdf,
            in_place,
            make: &spec_of,
            taken,
            candidate: &|_| true,
        },
    )
}

/// `args` without a selection, resolved without a host.
pub fn given_only<T: Clone>(args: &[DeviceArg<T>]) -> Resolved<T> {
    let mut out = Resolved {
        items: Vec::new(),
        origins: Vec::new(),
        selected: Vec::new(),
    };
    for (i, a) in args.iter().enumerate() {
        if let DeviceArg::Given(t) = a {
            out.items.push(t.clone());
            out.origins.push(i);
        }
    }
    out
}

/// Whether any argument is a selection: only then is the host read.
pub fn any_selection<T>(args: &[DeviceArg<T>]) -> bool {
    args.iter().any(|a| matches!(a, DeviceArg::Select(_)))
}

/// Resolves `args` on `host` (see the module's documentation).
pub fn resolve<T: Clone>(
    host: &dyn Host,
    args: &[DeviceArg<T>],
    how: &Resolver<'_, T>,
) -> Result<Resolved<T>, SelectError> {
    let mut out = Resolved {
        items: Vec::new(),
        origins: Vec::new(),
        selected: Vec::new(),
    };
    if !any_selection(args) {
        return Ok(given_only(args));
    }
    let host_view = HostView::read(host)?;
    // Devices the given arguments name are never picked by a count.
    let mut taken: BTreeSet<Bdf> = how.taken.clone();
    taken.extend(args.iter().filter_map(|a| match a {
        DeviceArg::Given(t) => (how.bdf_of)(t),
        DeviceArg::Select(_) => None,
    }));
    for (index, arg) in args.iter().enumerate() {
        let sel = match arg {
            DeviceArg::Given(t) => {
                out.items.push(t.clone());
                out.origins.push(index);
                continue;
            }
            DeviceArg::Select(sel) => sel,
        };
        let mut matched = host_view.matching(host, &sel.select)?;
        matched.retain(|d| (how.candidate)(d));
        let chosen = choose(host, &host_view, index, sel, &matched, &taken, how)?;
        if chosen.len() > 1 && sel.options.vslot.is_some() {
            return Err(SelectError::Invalid {
                index,
                problem: format!(
                    "vslot names one guest slot, but select {} chose {} devices: give count: 1, \
                     or leave vslot out",
                    sel.select,
                    chosen.len()
                ),
            });
        }
        for bdf in &chosen {
            let item =
                (how.make)(*bdf, sel).map_err(|problem| SelectError::Invalid { index, problem })?;
            out.items.push(item);
            out.origins.push(index);
            taken.insert(*bdf);
        }
        out.selected.push(Selected {
            select: sel.select.clone(),
            count: sel.count,
            devices: chosen,
        });
    }
    Ok(out)
}

/// The devices a selection takes among those that match it.
fn choose<T>(
    host: &dyn Host,
    view: &HostView,
    index: usize,
    sel: &Selection,
    matched: &[&PciDevice],
    taken: &BTreeSet<Bdf>,
    how: &Resolver<'_, T>,
) -> Result<Vec<Bdf>, SelectError> {
    if matched.is_empty() {
        return Err(SelectError::NoMatch {
            index,
            select: Box::new(sel.select.clone()),
        });
    }
    let Some(count) = sel.count else {
        return Ok(matched.iter().map(|d| d.bdf).collect());
    };
    let free: Vec<&PciDevice> = matched
        .iter()
        .copied()
        .filter(|d| !taken.contains(&d.bdf))
        .collect();
    if free.len() < count as usize {
        return Err(SelectError::TooFew {
            index,
            select: Box::new(sel.select.clone()),
            count,
            matched: matched.iter().map(|d| d.bdf).collect(),
            taken: matched
                .iter()
                .map(|d| d.bdf)
                .filter(|b| taken.contains(b))
                .collect(),
        });
    }
    let mut ranked = Vec::with_capacity(free.len());
    for d in free {
        // Sorted ascending: false before true, so the keys are negated.
        let guarded = !view.guard_allows(host, d)?;
        ranked.push((!(how.in_place)(d), guarded, d.bdf));
    }
    ranked.sort();
    let mut chosen: Vec<Bdf> = ranked
        .into_iter()
        .take(count as usize)
        .map(|(_, _, b)| b)
        .collect();
    chosen.sort();
    Ok(chosen)
}

/// What selections are matched against, read once.
struct HostView {
    devices: Vec<PciDevice>,
    record: DriverRecord,
}

impl HostView {
    fn read(host: &dyn Host) -> Result<HostView, HostError> {
        Ok(HostView {
            devices: host.pci_devices()?,
            record: DriverRecord::read(host)?,
        })
    }

    /// The devices `sel` matches, in BDF order; dom0's interfaces are read
    /// only for devices the other keys match.
    fn matching(&self, host: &dyn Host, sel: &Selector) -> Result<Vec<&PciDevice>, HostError> {
        let mut out = Vec::new();
        let driver_ok = |d: &PciDevice| {
            sel.driver.as_ref().is_none_or(|w| {
                d.driver.as_ref() == Some(w) || self.record.get(&d.bdf) == Some(w.as_str())
            })
        };
        for d in self
            .devices
            .iter()
            .filter(|d| sel.matches_ids(d) && driver_ok(d))
        {
            if let Some(want) = &sel.netdev {
                // A bridge's dom0 use covers the devices behind it: the
                // interface is the device's own, never the bridge's.
                if d.is_bridge {
                    continue;
                }
                let now = host.dom0_use(&d.bdf)?.net;
                let had = self.record.netdevs(&d.bdf);
                if !now.iter().any(|n| &n.name == want) && !had.iter().any(|n| n == want) {
                    continue;
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Whether the dom0 guard would let the device go (one already on
    /// pciback is gone from dom0 already).
    fn guard_allows(&self, host: &dyn Host, d: &PciDevice) -> Result<bool, HostError> {
        if d.driver.as_deref() == Some(crate::host::PCIBACK) {
            return Ok(true);
        }
        Ok(guard::refusals(d, &host.dom0_use(&d.bdf)?).is_empty())
    }
}

impl Selector {
    /// Whether `d` matches every key but `driver` and `netdev`, which
    /// also look at the driver record.
    pub(super) fn matches_ids(&self, d: &PciDevice) -> bool {
        let id = |want: Option<HexId>, have: u16| want.is_none_or(|w| w.0 == have);
        id(self.vendor, d.vendor)
            && id(self.device, d.device)
            && id(self.subsystem_vendor, d.subsystem_vendor)
            && id(self.subsystem_device, d.subsystem_device)
            && self.class.is_none_or(|c| c.matches(d.class))
            && self.vf_of.is_none_or(|pf| d.physfn == Some(pf))
    }
}
