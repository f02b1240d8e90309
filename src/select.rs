//! Devices chosen by what they are: selectors.
//!
//! BDFs differ from host to host and move when firmware or cards change; a
//! fleet's playbook names devices by what they are instead. A module
//! argument that takes a device takes a [`DeviceArg`]: the device itself
//! (a BDF, a spec string or object), or a [`Selection`], `{select: {...},
//! count: N}`, whose [`Selector`] keys combine (`vendor`, `device`,
//! `subsystem_vendor`, `subsystem_device`, `class`, `driver`, `netdev`,
//! `vf_of`).
//!
//! [`resolve`] turns the selections into devices against the host, before
//! anything is planned, so that the resolved devices go through every
//! check (the dom0 guard included) like the devices named by BDF:
//!
//! - without `count`, every device that matches; a selector that matches
//!   nothing fails;
//! - with `count`, exactly N: first the devices already where the task
//!   asks (the module says which: on pciback, held by the guest, listed in
//!   the config), so that a rerun picks the same ones; then those the dom0
//!   guard would take; then the lowest BDFs. Fewer than N fails, naming
//!   what matched. A device named by an earlier entry of the same list is
//!   not picked again;
//! - `driver` and `netdev` match the driver and the interfaces dom0 has on
//!   the device now and, for a device this project moved to pciback (where
//!   it has neither), those it had then (kept in the driver record), so a
//!   rerun still finds it.
//!
//! ```
//! use xenpci::select::{DeviceArg, Selector};
//! let arg: DeviceArg<String> =
//!     serde_json::from_str(r#"{"select": {"vendor": "8086", "class": "02"}, "count": 2}"#).unwrap();
//! let DeviceArg::Select(s) = arg else { panic!() };
//! assert_eq!(s.count, Some(2));
//! assert!(serde_json::from_str::<Selector>(r#"{"vendor": 8086}"#).unwrap_err().to_string().contains("quoted"));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::assignable::DriverRecord;
use crate::bdf::Bdf;
use crate::guard;
use crate::host::{Host, HostError, PciDevice};
use crate::spec::{spec_list, Device, ListError, PciSpec, PciSpecObject, SpecArg};

/// A 16-bit PCI id given as hex text (`"8086"`, `"0x8086"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct HexId(
    #[schemars(with = "String", regex(pattern = r"^(0[xX])?[0-9a-fA-F]{1,4}$"))] pub u16,
);

/// A class code prefix given as hex text: 2 digits (base class, `02`
/// any network controller), 4 (with the subclass, `0300` VGA) or 6 (with
/// the programming interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct ClassPrefix {
    /// The prefix's value.
    #[schemars(with = "String", regex(pattern = r"^(0[xX])?([0-9a-fA-F]{2}){1,3}$"))]
    value: u32,
    /// How many hex digits were given: 2, 4 or 6.
    #[schemars(skip)]
    digits: u8,
}

/// What a device must be to be selected; every key given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The vendor id, hex (`"8086"`; quote it: YAML reads 8086 as a
    /// decimal number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<HexId>,
    /// The device id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<HexId>,
    /// The subsystem vendor id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor: Option<HexId>,
    /// The subsystem device id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_device: Option<HexId>,
    /// A prefix of the class code, hex: `"02"` any network controller,
    /// `"0200"` Ethernet, `"0300"` VGA, `"0108"` NVMe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ClassPrefix>,
    /// The dom0 driver bound to it now (`e1000e`; `pciback` for devices
    /// already assignable) or, for a device this project moved to
    /// pciback, the driver it had then (so a rerun finds it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// A dom0 network interface on it (`eth1`), now or when this project
    /// moved it to pciback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
    /// An SR-IOV physical function, `[DDDD:]BB:DD.F`: its virtual
    /// functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_of: Option<Bdf>,
}

/// Devices chosen by a [`Selector`], with the options of a spec for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// What the devices must be.
    pub select: Selector,
    /// How many: exactly this many (none: every match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The spec options of each device chosen (no `bdf`, no `name`).
    #[serde(flatten)]
    pub options: PciSpecObject,
}

/// The schema of a [`Selection`].
#[derive(JsonSchema)]
#[allow(dead_code)]
struct SelectionSchema {
    /// What the devices must be: every key given must match.
    select: Selector,
    /// Exactly this many devices: those already where the task asks
    /// first (a rerun picks the same ones), then those the dom0 guard
    /// allows, then the lowest BDFs. Without it, every device that
    /// matches.
    #[schemars(range(min = 1))]
    count: Option<u32>,
    /// Spec options for each device chosen (`permissive`, `vslot`, ...;
    /// not `bdf` or `name`), where the module takes them.
    #[serde(flatten)]
    options: PciSpecObject,
}

impl JsonSchema for Selection {
    fn schema_name() -> String {
        "Selection".into()
    }
    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        SelectionSchema::json_schema(gen)
    }
}

/// A device argument: the device itself, or a selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DeviceArg<T> {
    /// The device, as the module takes it without selectors.
    Given(T),
    /// Devices chosen by what they are: `{select: {...}, count: N}`.
    Select(Selection),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for DeviceArg<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        match value {
            Value::Object(mut map) if map.contains_key("select") => {
                let select = map.remove("select").unwrap_or(Value::Null);
                let select: Selector = Selector::deserialize(select)
                    .map_err(|e| D::Error::custom(format!("select: {e}")))?;
                if select == Selector::default() {
                    return Err(D::Error::custom(
                        "select: give at least one key (vendor, device, subsystem_vendor, \
                         subsystem_device, class, driver, netdev, vf_of)",
                    ));
                }
                let count = match map.remove("count") {
                    None | Some(Value::Null) => None,
                    Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                        Some(n) if n > 0 => Some(n),
                        _ => {
                            return Err(D::Error::custom(format!(
                                "count must be a whole number, 1 or more, not {v}"
                            )))
                        }
                    },
                };
                let options = PciSpecObject::deserialize(Value::Object(map))
                    .map_err(|e| D::Error::custom(format!("beside select: {e}")))?;
                if options.bdf.is_some() || options.name.is_some() {
                    return Err(D::Error::custom(
                        "a selection chooses the devices: leave bdf and name out of it",
                    ));
                }
                Ok(DeviceArg::Select(Selection {
                    select,
                    count,
                    options,
                }))
            }
            other => T::deserialize(other)
                .map(DeviceArg::Given)
                .map_err(D::Error::custom),
        }
    }
}

/// One selection in a result: what was asked and the devices it chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Selected {
    /// The selector, as given.
    pub select: Selector,
    /// The count asked, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The devices chosen, in BDF order.
    pub devices: Vec<Bdf>,
}

/// Why a selection cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Nothing matches.
    #[error("[{index}]: no PCI device on this host matches select {select}")]
    NoMatch {
        /// The argument's index.
        index: usize,
        /// The selector.
        select: Box<Selector>,
    },
    /// Fewer than `count` match.
    #[error("[{index}]: select {select} with count {count}: only {} device(s) match{}", .matched.len(), matched_text(.matched, .taken))]
    TooFew {
        /// The argument's index.
        index: usize,
        /// The selector.
        select: Box<Selector>,
        /// The count asked.
        count: u32,
        /// What matched.
        matched: Vec<Bdf>,
        /// Of those, the ones earlier entries already name.
        taken: Vec<Bdf>,
    },
    /// A selection that cannot work as given.
    #[error("[{index}]: {problem}")]
    Invalid {
        /// The argument's index.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// The host could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

fn matched_text(matched: &[Bdf], taken: &[Bdf]) -> String {
    if matched.is_empty() {
        return String::new();
    }
    let list: Vec<String> = matched
        .iter()
        .map(|b| {
            if taken.contains(b) {
                format!("{b} (named by an earlier entry)")
            } else {
                b.to_string()
            }
        })
        .collect();
    format!(": {}", list.join(", "))
}

/// The outcome of [`resolve`]: the arguments with every selection
/// replaced by its devices, and what each selection chose.
#[derive(Debug, Clone)]
pub struct Resolved<T> {
    /// The devices, in the order of the arguments.
    pub items: Vec<T>,
    /// For each item, the index of the argument it came from.
    pub origins: Vec<usize>,
    /// Each selection and its devices (empty when there were none).
    pub selected: Vec<Selected>,
}

impl<T> Resolved<T> {
    /// The argument index an item's index came from, for messages.
    pub fn origin(&self, item: usize) -> usize {
        self.origins.get(item).copied().unwrap_or(item)
    }
}

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
    fn matches_ids(&self, d: &PciDevice) -> bool {
        let id = |want: Option<HexId>, have: u16| want.is_none_or(|w| w.0 == have);
        id(self.vendor, d.vendor)
            && id(self.device, d.device)
            && id(self.subsystem_vendor, d.subsystem_vendor)
            && id(self.subsystem_device, d.subsystem_device)
            && self.class.is_none_or(|c| c.matches(d.class))
            && self.vf_of.is_none_or(|pf| d.physfn == Some(pf))
    }
}

impl ClassPrefix {
    fn matches(self, class: u32) -> bool {
        class >> (24 - 4 * u32::from(self.digits)) == self.value
    }
}

impl fmt::Display for Selector {
    /// As JSON, the way it was given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).unwrap_or_default())
    }
}

impl fmt::Display for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl Serialize for HexId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Serialize for ClassPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let width = usize::from(self.digits);
        s.serialize_str(&format!("{:0width$x}", self.value))
    }
}

/// The hex digits of `text`, without a `0x`.
fn hex_digits(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t)
}

/// A number where hex text is wanted: refused, since YAML reads `8086`
/// as decimal 8086 and `0x8086` as 32902, neither of which is what the
/// user wrote.
fn number_refused<E: serde::de::Error>(v: &Value, what: &str) -> E {
    E::custom(format!(
        "{what} {v} is a number: give the hex id as a quoted string (\"{v}\"), since YAML \
         reads unquoted ids as decimal numbers"
    ))
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => {
                let digits = hex_digits(&s);
                match u16::from_str_radix(digits, 16) {
                    Ok(v) if (1..=4).contains(&digits.len()) && !digits.starts_with('+') => {
                        Ok(HexId(v))
                    }
                    _ => Err(D::Error::custom(format!(
                        "{s:?} is not a 16-bit hex id (such as \"8086\")"
                    ))),
                }
            }
            v @ Value::Number(_) => Err(number_refused(&v, "id")),
            other => Err(D::Error::custom(format!(
                "an id must be a hex string, not {other}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for ClassPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => {
                let digits = hex_digits(&s);
                let ok = matches!(digits.len(), 2 | 4 | 6)
                    && digits.chars().all(|c| c.is_ascii_hexdigit());
                match u32::from_str_radix(digits, 16) {
                    Ok(value) if ok => Ok(ClassPrefix {
                        value,
                        // 2, 4 or 6.
                        digits: digits.len() as u8,
                    }),
                    _ => Err(D::Error::custom(format!(
                        "class {s:?} is not a hex class prefix of 2, 4 or 6 digits \
                         (\"02\" network controllers, \"0300\" VGA)"
                    ))),
                }
            }
            v @ Value::Number(_) => Err(number_refused(&v, "class")),
            other => Err(D::Error::custom(format!(
                "class must be a hex string, not {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(json: &str) -> Selector {
        serde_json::from_str(json).unwrap()
    }

    fn dev(bdf: &str, vendor: u16, device: u16, class: u32) -> PciDevice {
        PciDevice {
            bdf: bdf.parse().unwrap(),
            vendor,
            device,
            subsystem_vendor: 0x8086,
            subsystem_device: 0x0001,
            class,
            driver: Some("e1000e".into()),
            is_bridge: false,
            conventional_bridge: false,
            parent: None,
            boot_vga: false,
            iommu_group: None,
            physfn: None,
            virtfns: vec![],
            sriov: None,
        }
    }

    #[test]
    fn keys_combine() {
        let nic = dev("03:00.0", 0x8086, 0x10d3, 0x020000);
        let vga = dev("00:02.0", 0x8086, 0x3e92, 0x030000);
        assert!(sel(r#"{"vendor": "8086"}"#).matches_ids(&nic));
        assert!(sel(r#"{"vendor": "0x8086", "device": "10D3"}"#).matches_ids(&nic));
        assert!(!sel(r#"{"vendor": "8086", "device": "10d4"}"#).matches_ids(&nic));
        assert!(sel(r#"{"class": "02"}"#).matches_ids(&nic));
        assert!(sel(r#"{"class": "0200"}"#).matches_ids(&nic));
        assert!(sel(r#"{"class": "020000"}"#).matches_ids(&nic));
        assert!(!sel(r#"{"class": "02"}"#).matches_ids(&vga));
        assert!(sel(r#"{"class": "0300"}"#).matches_ids(&vga));
        assert!(sel(r#"{"subsystem_vendor": "8086", "subsystem_device": "1"}"#).matches_ids(&nic));
        assert!(!sel(r#"{"vf_of": "03:00.0"}"#).matches_ids(&nic));
    }

    #[test]
    fn bad_selectors_are_named() {
        for (json, want) in [
            (r#"{"vendor": 8086}"#, "quoted string"),
            (r#"{"vendor": "80866"}"#, "16-bit hex id"),
            (r#"{"vendor": "xyz"}"#, "16-bit hex id"),
            (r#"{"class": "020"}"#, "2, 4 or 6 digits"),
            (r#"{"class": 2}"#, "quoted string"),
            (r#"{"vf_of": "3:0"}"#, "3:0"),
            (r#"{"colour": "red"}"#, "colour"),
        ] {
            let e = serde_json::from_str::<Selector>(json).unwrap_err();
            assert!(e.to_string().contains(want), "{json}: {e}");
        }
        for (json, want) in [
            (r#"{"select": {}}"#, "at least one key"),
            (r#"{"select": {"vendor": "8086"}, "count": 0}"#, "1 or more"),
            (
                r#"{"select": {"vendor": "8086"}, "count": "2"}"#,
                "whole number",
            ),
            (
                r#"{"select": {"vendor": "8086"}, "bdf": "07:00.0"}"#,
                "leave bdf and name out",
            ),
            (
                r#"{"select": {"vendor": "8086"}, "permisive": true}"#,
                "permisive",
            ),
        ] {
            let e = serde_json::from_str::<DeviceArg<String>>(json).unwrap_err();
            assert!(e.to_string().contains(want), "{json}: {e}");
        }
        let ok: DeviceArg<String> = serde_json::from_str(
            r#"{"select": {"vendor": "8086"}, "count": 1, "permissive": true, "vslot": 3}"#,
        )
        .unwrap();
        let DeviceArg::Select(s) = ok else {
            panic!("not a selection")
        };
        assert_eq!(s.options.permissive, Some(true));
        assert_eq!(
            serde_json::to_value(&s.select).unwrap(),
            serde_json::json!({"vendor": "8086"})
        );
    }
}
