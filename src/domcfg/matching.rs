//! Which entries of a `pci` list are the device a request names, whatever
//! form names it: a BDF, `name=NAME`, or one function of `BB:DD.*`.
//!
//! Each entry and each requested spec is read as the set of host functions
//! it covers ([`Cover`]): a BDF covers its function; `name=NAME` covers the
//! device libxl would find for it (`name2bdf()` in `libxl_pci.c` reads the
//! `/libxl/pci/DDDD-BB-DD-F/name` records); `BB:DD.*` covers every function
//! of the device. [`plan_list`] plans the list on those sets, so that the
//! same device is never listed twice and a removal leaves none of its
//! functions assigned.
//!
//! The host is asked only when the answer matters ([`HostDevices`] reads
//! lazily): names when the file or request mixes names and BDFs, the
//! functions present when some functions of a wildcard entry are removed.
//! A config can be edited where no Xen runs (prepared in CI): a name that
//! cannot be resolved is compared by name only, with a warning, and a
//! wildcard whose functions cannot be read covers all eight.

use std::path::Path;

use crate::bdf::Func;
use crate::spec::{Device, PciSpec};
use crate::xlcfg::edit::ItemChange;

use super::{Action, DomCfgError, HostDevices, ListState, PciConfig, PciRequest};

/// A PCI device (all its functions): domain, bus, device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u16, u8, u8);

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}", self.0, self.1, self.2)
    }
}

/// Every function bit: what `*` covers when the host's are not known.
const ALL_FUNCS: u8 = 0xff;

/// The host functions a spec covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cover {
    /// Functions of one device, bit `f` for function `f`.
    Funcs(Slot, u8),
    /// A name that could not be resolved: only the same name matches.
    Name(String),
}

impl Cover {
    fn overlaps(&self, other: &Cover) -> bool {
        match (self, other) {
            (Cover::Funcs(a, m), Cover::Funcs(b, n)) => a == b && m & n != 0,
            (Cover::Name(a), Cover::Name(b)) => a == b,
            _ => false,
        }
    }

    /// Whether every function of `other` is one of ours.
    fn contains(&self, other: &Cover) -> bool {
        match (self, other) {
            (Cover::Funcs(a, m), Cover::Funcs(b, n)) => a == b && n & !m == 0,
            (Cover::Name(a), Cover::Name(b)) => a == b,
            _ => false,
        }
    }
}

/// Reads specs as covers, resolving names when `resolve` (the file or
/// request mixes names and BDFs), and collects the warnings that go with it.
struct Resolver<'h, 'a> {
    host: &'h HostDevices<'a>,
    resolve: bool,
    warnings: Vec<String>,
}

impl Resolver<'_, '_> {
    fn cover(&mut self, spec: &PciSpec) -> Cover {
        match &spec.device {
            Device::Bdf(p) => {
                let mask = match p.func {
                    Func::One(f) => 1 << f,
                    Func::All => ALL_FUNCS,
                };
                Cover::Funcs(Slot(p.domain, p.bus, p.dev), mask)
            }
            Device::Name(name) if !self.resolve => Cover::Name(name.clone()),
            Device::Name(name) => match self.host.names() {
                Ok(names) => match names.iter().find(|(n, _)| n == name) {
                    Some((_, b)) => Cover::Funcs(Slot(b.domain, b.bus, b.dev), 1 << b.func),
                    None => {
                        self.warn(format!(
                            "name={name}: no device of this host has that assignable name \
                             (libxl's /libxl/pci records), so it was compared by name only"
                        ));
                        Cover::Name(name.clone())
                    }
                },
                Err(why) => {
                    let why = why.clone();
                    self.warn(format!(
                        "assignable names could not be read ({why}), so name= entries were \
                         compared by name only: a device listed both by name and by BDF \
                         stays listed twice"
                    ));
                    Cover::Name(name.clone())
                }
            },
        }
    }

    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

/// What happens to one existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Keep,
    Remove,
    /// Rewritten as the request's spec at this index.
    Replace(usize),
}

/// The list part of a plan.
pub(super) struct ListPlan {
    /// A change per existing entry.
    pub changes: Vec<ItemChange>,
    /// The entries added at the end.
    pub new: Vec<PciSpec>,
    /// The actions, in list order.
    pub actions: Vec<Action>,
    /// What a person should know (names compared as names, vslot clashes
    /// already in the file).
    pub warnings: Vec<String>,
}

/// Plans the `pci` list: which entries stay, are rewritten or removed, and
/// which requested specs are added, on the functions each covers.
pub(super) fn plan_list(
    current: &PciConfig,
    req: &PciRequest,
    host: &HostDevices<'_>,
    path: &Path,
) -> Result<ListPlan, DomCfgError> {
    let all = || current.entries.iter().map(|(_, s)| s).chain(&req.devices);
    let is_name = |s: &PciSpec| matches!(s.device, Device::Name(_));
    let mut resolver = Resolver {
        host,
        resolve: all().any(is_name) && all().any(|s| !is_name(s)),
        warnings: Vec::new(),
    };
    let have: Vec<Cover> = current
        .entries
        .iter()
        .map(|(_, s)| resolver.cover(s))
        .collect();
    let want: Vec<Cover> = req.devices.iter().map(|s| resolver.cover(s)).collect();
    let conflict = |what: String| DomCfgError::Conflict {
        path: path.to_path_buf(),
        what,
    };
    check_asked_once(&req.devices, &want).map_err(conflict)?;
    let mut changes = vec![Change::Keep; current.entries.len()];
    let mut new = Vec::new();
    match req.state {
        ListState::Absent => {
            plan_absent(&current.entries, &have, &want, host, &mut changes).map_err(conflict)?
        }
        ListState::Present | ListState::Exact => {
            let asked = Asked {
                specs: &req.devices,
                covers: &want,
                exact: req.state == ListState::Exact,
            };
            plan_present(&current.entries, &have, &asked, &mut changes, &mut new)
                .map_err(conflict)?;
        }
    }
    let mut warnings = resolver.warnings;
    warnings
        .extend(check_vslots(&current.entries, &changes, &new, &req.devices).map_err(conflict)?);
    let mut plan = list_plan(current, &changes, &new, &req.devices);
    plan.warnings = warnings;
    Ok(plan)
}

/// Refuses two requested specs that cover a function in common.
fn check_asked_once(asked: &[PciSpec], covers: &[Cover]) -> Result<(), String> {
    for (j, w) in covers.iter().enumerate() {
        if let Some(i) = covers[..j].iter().position(|v| v.overlaps(w)) {
            return Err(format!(
                "'{}' and '{}' name the same host device: give each device once",
                asked[i], asked[j]
            ));
        }
    }
    Ok(())
}

/// The editor's changes, the new entries and the actions, in list order.
fn list_plan(
    current: &PciConfig,
    changes: &[Change],
    new: &[usize],
    asked: &[PciSpec],
) -> ListPlan {
    let mut actions = Vec::new();
    let mut item_changes = Vec::with_capacity(changes.len());
    for ((text, _), change) in current.entries.iter().zip(changes) {
        item_changes.push(match change {
            Change::Keep => ItemChange::Keep,
            Change::Remove => {
                actions.push(Action::Remove(text.clone()));
                ItemChange::Remove
            }
            Change::Replace(r) => {
                let to = asked[*r].clone();
                actions.push(Action::Update {
                    from: text.clone(),
                    to: to.clone(),
                });
                ItemChange::Replace(to.to_string())
            }
        });
    }
    let new: Vec<PciSpec> = new.iter().map(|&r| asked[r].clone()).collect();
    actions.extend(new.iter().cloned().map(Action::Add));
    ListPlan {
        changes: item_changes,
        new,
        actions,
        warnings: Vec::new(),
    }
}

/// The requested specs, with their covers.
struct Asked<'a> {
    specs: &'a [PciSpec],
    covers: &'a [Cover],
    /// `exact`: an entry must be one of these, not a wider one.
    exact: bool,
}

/// `present` and `exact`: each requested spec is listed once. Entries it
/// covers (the same function by another name, functions of a requested
/// `BB:DD.*`) give way to it: the first is rewritten in the form asked, the
/// others removed. A requested function that a wider `BB:DD.*` entry
/// already lists is satisfied by it when the options agree; with `exact`,
/// the wider entry gives way instead.
fn plan_present(
    entries: &[(String, PciSpec)],
    have: &[Cover],
    asked: &Asked<'_>,
    changes: &mut [Change],
    new: &mut Vec<usize>,
) -> Result<(), String> {
    let mut hit = vec![false; entries.len()];
    for (r, (want, cover)) in asked.specs.iter().zip(asked.covers).enumerate() {
        // An entry already rewritten as an earlier request is that one's.
        let hits: Vec<usize> = (0..entries.len())
            .filter(|&i| !matches!(changes[i], Change::Replace(_)) && have[i].overlaps(cover))
            .collect();
        for &i in &hits {
            hit[i] = true;
        }
        let wider = hits.iter().copied().find(|&i| !cover.contains(&have[i]));
        let keep = match wider {
            Some(w) if !asked.exact => {
                if !satisfies(&entries[w].1, want) {
                    return Err(format!(
                        "'{want}' is one function of the entry '{}', which gives every function \
                         of the device the same options and vslot: ask for that entry as a whole \
                         with the options you want, or replace it by the functions one by one",
                        entries[w].0
                    ));
                }
                Some(w)
            }
            Some(w) => {
                changes[w] = Change::Replace(r);
                Some(w)
            }
            None => match hits.first() {
                None => {
                    new.push(r);
                    None
                }
                Some(&first) => {
                    if entries[first].1 != *want {
                        changes[first] = Change::Replace(r);
                    }
                    Some(first)
                }
            },
        };
        // A second entry for the same functions would make xl assign them twice.
        for &i in hits.iter().filter(|&&i| Some(i) != keep) {
            changes[i] = Change::Remove;
        }
    }
    if asked.exact {
        for (i, was_hit) in hit.iter().enumerate() {
            if !was_hit {
                changes[i] = Change::Remove;
            }
        }
    }
    Ok(())
}

/// Whether a wildcard entry already gives a requested function what it asks:
/// the same options, and its vslot if one is asked.
fn satisfies(entry: &PciSpec, want: &PciSpec) -> bool {
    let options = |s: &PciSpec| {
        (
            s.permissive,
            s.msitranslate,
            s.seize,
            s.power_mgmt,
            s.rdm_policy,
        )
    };
    options(entry) == options(want) && want.vslot.is_none_or(|v| entry.vslot == Some(v))
}

/// `absent`: an entry goes when every function it covers is asked away.
/// Removing only some functions of a `BB:DD.*` entry is refused: xl cannot
/// keep the others in that entry, and listing them one by one would place
/// them elsewhere in the guest (a single function with `@S` goes to
/// function 0 of slot S, `device_pci_add_stubdom_done()` in libxl_pci.c,
/// while `BB:DD.*@S` keeps each function's number).
fn plan_absent(
    entries: &[(String, PciSpec)],
    have: &[Cover],
    want: &[Cover],
    host: &HostDevices<'_>,
    changes: &mut [Change],
) -> Result<(), String> {
    for (i, cover) in have.iter().enumerate() {
        let Cover::Funcs(slot, mask) = cover else {
            if want.contains(cover) {
                changes[i] = Change::Remove;
            }
            continue;
        };
        let removed = want.iter().fold(0u8, |acc, w| match w {
            Cover::Funcs(s, m) if s == slot => acc | m,
            _ => acc,
        });
        if removed & mask == 0 {
            continue;
        }
        // All of it, or some functions of a wildcard entry: then what the
        // host has decides.
        if mask & !removed == 0
            || wildcard_all_removed(entries[i].0.as_str(), *slot, removed, host)?
        {
            changes[i] = Change::Remove;
        }
    }
    Ok(())
}

/// Whether removing the functions `removed` of a wildcard entry removes
/// every function of `slot` the host has (`false`: none of them exists, so
/// xl assigns none); `Err` when some would stay, or the host's functions
/// are unknown.
fn wildcard_all_removed(
    entry: &str,
    slot: Slot,
    removed: u8,
    host: &HostDevices<'_>,
) -> Result<bool, String> {
    let why = match host.functions() {
        Err(why) => format!("the functions of {slot} could not be read: {why}"),
        Ok(all) => {
            let present = all
                .iter()
                .filter(|b| Slot(b.domain, b.bus, b.dev) == slot)
                .fold(0u8, |acc, b| acc | 1 << b.func);
            if present == 0 {
                format!("this host has no function of {slot}")
            } else if present & !removed == 0 {
                return Ok(true);
            } else if present & removed == 0 {
                return Ok(false);
            } else {
                format!(
                    "on this host {slot} also has function {}",
                    funcs_text(present & !removed)
                )
            }
        }
    };
    Err(format!(
        "'{entry}' lists every function of {slot} ({why}), so some of them cannot be removed \
         alone: xl would place the others elsewhere in the guest if they were listed one by \
         one (a single function with @S goes to function 0 of slot S): remove {slot}.* as a \
         whole, or list the functions you want yourself"
    ))
}

fn funcs_text(mask: u8) -> String {
    let funcs: Vec<String> = (0..8)
        .filter(|f| mask & (1 << f) != 0)
        .map(|f| f.to_string())
        .collect();
    funcs.join(", ")
}

/// Refuses two entries of the new list at the same vslot when this run
/// writes one of them: libxl passes vslots on without checking them, and
/// for an HVM guest QEMU refuses the second device at creation (`PCI: slot
/// S function 0 not available for xen-pci-passthrough, in use by ...`).
/// A single function with `@S` always goes to function 0 of slot S, and
/// `BB:DD.*@S` takes function 0 too, so any two entries with the same vslot
/// clash. Clashes between entries the run leaves alone are warnings.
fn check_vslots(
    entries: &[(String, PciSpec)],
    changes: &[Change],
    new: &[usize],
    asked: &[PciSpec],
) -> Result<Vec<String>, String> {
    // Each entry of the new list: its vslot, its text (as written when
    // kept), and whether this run writes it.
    let mut list: Vec<(Option<u8>, String, bool)> = Vec::new();
    let written = |s: &PciSpec| (s.vslot, s.to_string(), true);
    for ((text, spec), change) in entries.iter().zip(changes) {
        match change {
            Change::Keep => list.push((spec.vslot, text.clone(), false)),
            Change::Remove => {}
            Change::Replace(r) => list.push(written(&asked[*r])),
        }
    }
    list.extend(new.iter().map(|&r| written(&asked[r])));
    let mut first_at: [Option<usize>; 32] = [None; 32];
    let mut warnings = Vec::new();
    for (j, (vslot, text, written)) in list.iter().enumerate() {
        let Some(slot) = *vslot else { continue };
        let Some(cell) = first_at.get_mut(usize::from(slot)) else {
            continue;
        };
        let Some(i) = *cell else {
            *cell = Some(j);
            continue;
        };
        let (_, other, other_written) = &list[i];
        let clash = format!(
            "'{other}' and '{text}' are both at vslot {slot:02x}: libxl does not check vslots, \
             and QEMU refuses the second device when an HVM guest is created (\"PCI: slot \
             {slot} function 0 not available for xen-pci-passthrough\")"
        );
        if *written || *other_written {
            return Err(format!("{clash}: give each device its own vslot"));
        }
        warnings.push(format!("{clash}; both entries were already in the file"));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::super::{plan, PciRequest};
    use super::*;
    use crate::xlcfg::XlConfig;

    fn run(file: &str, devices: &[&str], state: ListState) -> Result<super::super::Plan, String> {
        let cfg = XlConfig::parse(file.as_bytes()).unwrap();
        let req = PciRequest {
            devices: devices
                .iter()
                .map(|d| PciSpec::parse_xl(d).unwrap())
                .collect(),
            state,
            ..PciRequest::default()
        };
        plan(&cfg, Path::new("vm.cfg"), &req).map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_host_names_are_names() {
        let p = run("pci = [ 'name=nic1' ]\n", &["07:00.0"], ListState::Present).unwrap();
        assert_eq!(p.devices.len(), 2);
        assert!(
            p.warnings[0].contains("compared by name only"),
            "{:?}",
            p.warnings
        );
        // Names alone need no host, and say nothing.
        let p = run("pci = [ 'name=nic1' ]\n", &["name=nic1"], ListState::Absent).unwrap();
        assert!(p.devices.is_empty() && p.warnings.is_empty());
    }

    #[test]
    fn without_a_host_a_wildcard_covers_every_function() {
        let e = run("pci = [ '05:00.*@4' ]\n", &["05:00.1"], ListState::Absent).unwrap_err();
        assert!(e.contains("could not be read: no host was given"), "{e}");
        let all: Vec<String> = (0..8).map(|f| format!("05:00.{f}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let p = run("pci = [ '05:00.*@4' ]\n", &all, ListState::Absent).unwrap();
        assert!(p.devices.is_empty());
    }

    #[test]
    fn a_device_asked_twice_is_refused() {
        let e = run("pci = [ ]\n", &["05:00.*@4", "05:00.1"], ListState::Present).unwrap_err();
        assert!(e.contains("name the same host device"), "{e}");
    }

    #[test]
    fn exact_replaces_a_wider_entry() {
        let p = run(
            "pci = [ '05:00.*@4' ]\n",
            &["05:00.0", "05:00.1"],
            ListState::Exact,
        )
        .unwrap();
        let got: Vec<String> = p.devices.iter().map(|d| d.to_string()).collect();
        assert_eq!(got, ["0000:05:00.0", "0000:05:00.1"]);
    }

    #[test]
    fn vslot_clashes_already_in_the_file_warn() {
        let p = run(
            "pci = [ '03:00.0@5', '04:00.0@5' ]\n",
            &["07:00.0"],
            ListState::Present,
        )
        .unwrap();
        assert!(
            p.warnings.iter().any(|w| w.contains("already in the file")),
            "{:?}",
            p.warnings
        );
    }
}
