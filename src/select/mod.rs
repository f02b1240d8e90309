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

mod ids;
mod resolve;

pub use ids::{ClassPrefix, HexId};
pub use resolve::{
    any_selection, check_given_specs, given_only, resolve, resolve_specs, spec_bdf, spec_of,
    Resolver,
};

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::bdf::Bdf;
use crate::host::HostError;
use crate::spec::PciSpecObject;

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

impl fmt::Display for Selector {
    /// As JSON, the way it was given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::PciDevice;

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
