//! PCI_SPEC_STRING: the per-device entries of `pci = [...]` and the argument
//! of `xl pci-attach`/`pci-detach`, read exactly as Xen 4.17's xl reads them.
//!
//! This module owns the spec grammar and what libxl gets from it:
//!
//! - [`PciSpec`]: one parsed spec: the device ([`Device`]: a [`BdfPattern`]
//!   or an assignable `name`), the virtual slot, and the options
//!   `permissive`, `msitranslate`, `seize`, `power_mgmt`, `rdm_policy`.
//!   [`PciSpec::parse_xl`] mirrors `xlu_pci_parse_spec_string()` in
//!   `tools/libs/util/libxlu_pci.c` (identical in RELEASE-4.17.0 and
//!   stable-4.17), sloppy forms included; [`PciSpec::parse_strict`] takes
//!   the same grammar but refuses what xl would read differently from how it
//!   looks, saying what xl would make of it. `Display` prints the canonical
//!   form, which `parse_xl` reads back to the same value.
//! - [`SpecArg`]: a module argument: a spec string or a [`PciSpecObject`].
//! - [`LibxlPciView`]: the `libxl_device_pci` fields xl leaves after parsing,
//!   for comparison with a C oracle ([`xl_oracle_json`]); [`PciDefaults`] and
//!   [`ResolvedPci`]: what libxl finally uses once `xl_parse.c`'s `pci_*`
//!   defaults and `libxl__device_pci_setdefault()` have applied.
//! - [`SpecError`]: every refusal, keeping the input.
//!
//! What xl 4.17 does that its man page (`xl-pci-configuration(5)`) does not
//! say: boolean options are read with `atoi()` (`permissive=yes` is off,
//! `permissive=2` is on, `permissive=` is off, not "the default"); a
//! parameter given twice is not refused, the last one wins; `bdf` and `name`
//! cannot be combined; `rdm_policy` is compared case-insensitively and also
//! takes `invalid`; the vslot and BDF numbers go through `sscanf("%x")`
//! (blanks, signs, `0x` and 32-bit wrap-around accepted); text after the
//! value of `bdf=` and `vslot=` is ignored.
//!
//! ```
//! use xenpci::spec::PciSpec;
//!
//! let spec = PciSpec::parse_xl("07:00.0@1F,seize=1,permissive=yes").unwrap();
//! // xl reads "yes" with atoi(): permissive is off.
//! assert_eq!(spec.to_string(), "0000:07:00.0@1f,permissive=0,seize=1");
//! assert_eq!(PciSpec::parse_xl(&spec.to_string()).unwrap(), spec);
//!
//! let err = PciSpec::parse_strict("07:00.0,permissive=yes").unwrap_err();
//! assert!(err.to_string().contains("atoi"));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::bdf::{c_isspace, c_str, scan_plain, scan_xl, BdfPattern, Func, Scanf, XlBdfError};

/// libxl's `ERROR_INVAL`: what xl returns for almost every malformed spec.
pub const ERROR_INVAL: i32 = -6;
/// libxl's `ERROR_FAIL`: what xl returns for an unknown `rdm_policy`
/// (`libxl__enum_from_string()` fails with it).
pub const ERROR_FAIL: i32 = -3;
/// libxl's `LIBXL_PCI_FUNC_ALL` (`~0U`): `vfunc_mask` for function `*`.
pub const LIBXL_PCI_FUNC_ALL: u32 = u32::MAX;
/// Highest vslot xl accepts (`parse_vslot()`: `val > 0x1f` fails).
pub const MAX_VSLOT: u8 = 0x1f;

/// A PCI spec or BDF that xl refuses, or that the strict grammar refuses.
///
/// Every variant keeps the offending input. [`SpecError::xl_rc`] gives the
/// code xl's parser returns for it, when xl refuses it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The BDF is malformed or out of range (xl: `ERROR_INVAL`).
    #[error("{input:?}: invalid BDF: {problem}")]
    BadBdf {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// xl's result for this text is undefined: `parse_bdf()` reads an
    /// uninitialised variable (a BDF without the `.` before the function).
    /// Against libxlutil 4.17 these were rejected or crashed
    /// (`xlu_pci_parse_bdf()` segfaulted on about half of them).
    #[error("{input:?}: invalid BDF: {problem}")]
    XlUndefined {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The vslot (`@N` or `vslot=N`) is malformed or above `1f` (xl: `ERROR_INVAL`).
    #[error("{input:?}: invalid vslot {value:?}: {problem}")]
    BadVslot {
        /// The text given.
        input: String,
        /// The vslot text.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Something other than `@`, `,` or the end follows the positional BDF.
    #[error("{input:?}: unexpected {rest:?} after the BDF: expected @VSLOT, ',' or the end")]
    Trailing {
        /// The text given.
        input: String,
        /// The text from the unexpected character on.
        rest: String,
    },
    /// An item without `=` (xl: `parse_key_val()` fails).
    #[error("{input:?}: {item:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The text given.
        input: String,
        /// The rest of the text from that item on.
        item: String,
    },
    /// A key xl does not know (xl prints `Unknown PCI_SPEC_STRING option`).
    #[error("{input:?}: Unknown PCI_SPEC_STRING option: {key:?} (known: bdf, vslot, permissive, msitranslate, seize, power_mgmt, rdm_policy, name)")]
    UnknownOption {
        /// The text given.
        input: String,
        /// The key, exactly as written (xl compares keys case-sensitively).
        key: String,
    },
    /// An `rdm_policy` libxl does not know (xl prints `Unknown RDM policy`; `ERROR_FAIL`).
    #[error("{input:?}: Unknown RDM policy: {value:?} (expected strict or relaxed)")]
    BadRdmPolicy {
        /// The text given.
        input: String,
        /// The policy text.
        value: String,
    },
    /// Both a BDF and `name=` are given; xl wants exactly one.
    #[error("{input:?}: gives both a BDF and a name; xl takes exactly one of them (the name is looked up among the assignable devices)")]
    BdfAndName {
        /// The text given.
        input: String,
    },
    /// Neither a BDF nor `name=` is given.
    #[error("{input:?}: names no device: give a BDF ([DDDD:]BB:DD.F) or name=NAME")]
    NoDevice {
        /// The text given.
        input: String,
    },
    /// xl accepts this, but the strict grammar refuses it because xl would
    /// read it differently from how it looks, or libxl would refuse it later.
    #[error("{input:?}: {problem}")]
    Refused {
        /// The text given.
        input: String,
        /// What xl would make of it, and what to write instead.
        problem: String,
    },
}

impl SpecError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        match self {
            SpecError::BadBdf { input, .. }
            | SpecError::XlUndefined { input, .. }
            | SpecError::BadVslot { input, .. }
            | SpecError::Trailing { input, .. }
            | SpecError::NotKeyValue { input, .. }
            | SpecError::UnknownOption { input, .. }
            | SpecError::BadRdmPolicy { input, .. }
            | SpecError::BdfAndName { input }
            | SpecError::NoDevice { input }
            | SpecError::Refused { input, .. } => input,
        }
    }

    /// The code `xlu_pci_parse_spec_string()` returns for this input, or
    /// `None` when xl accepts it ([`SpecError::Refused`]) or its result is
    /// undefined ([`SpecError::XlUndefined`]).
    pub fn xl_rc(&self) -> Option<i32> {
        match self {
            SpecError::Refused { .. } | SpecError::XlUndefined { .. } => None,
            SpecError::BadRdmPolicy { .. } => Some(ERROR_FAIL),
            _ => Some(ERROR_INVAL),
        }
    }

    /// Whether xl's behaviour on this input is undefined (see
    /// [`SpecError::XlUndefined`]); an oracle comparison must skip it.
    pub fn is_xl_undefined(&self) -> bool {
        matches!(self, SpecError::XlUndefined { .. })
    }
}

/// libxl's `libxl_rdm_reserve_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RdmPolicy {
    /// Fail if the device's reserved memory regions conflict with the guest's memory map.
    Strict,
    /// Only warn on such a conflict.
    Relaxed,
    /// libxl's `LIBXL_RDM_RESERVE_POLICY_INVALID` (-1), the "not set" value
    /// that `libxl__device_pci_setdefault()` turns into strict. xl accepts
    /// `rdm_policy=invalid`; the strict grammar does not.
    #[schemars(skip)]
    Invalid,
}

impl RdmPolicy {
    /// The integer libxl stores (`-1`, `0`, `1`).
    pub fn libxl_value(self) -> i32 {
        match self {
            RdmPolicy::Invalid => -1,
            RdmPolicy::Strict => 0,
            RdmPolicy::Relaxed => 1,
        }
    }

    /// The name libxl prints (`libxl_rdm_reserve_policy_to_string()`).
    pub fn as_str(self) -> &'static str {
        match self {
            RdmPolicy::Invalid => "invalid",
            RdmPolicy::Strict => "strict",
            RdmPolicy::Relaxed => "relaxed",
        }
    }

    /// Reads a policy as `libxl_rdm_reserve_policy_from_string()` does:
    /// `strcasecmp()` against every name of the enum, `invalid` included.
    pub fn from_xl(text: &str) -> Option<RdmPolicy> {
        [RdmPolicy::Invalid, RdmPolicy::Strict, RdmPolicy::Relaxed]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for RdmPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which host device a spec names.
///
/// xl takes exactly one of a BDF and a `name` (`xlu_pci_parse_spec_string()`
/// fails unless `bdf_present ^ name_present`); libxl looks a name up among
/// the assignable devices' records (`name2bdf()` in `libxl_pci.c`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Device {
    /// A host BDF, possibly with function `*`.
    Bdf(BdfPattern),
    /// The name given with `xl pci-assignable-add -n NAME`.
    Name(String),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Bdf(p) => p.fmt(f),
            Device::Name(n) => write!(f, "name={n}"),
        }
    }
}

/// One PCI_SPEC_STRING, parsed.
///
/// Options are `None` when not written, so that the config file's `pci_*`
/// default (or libxl's) applies; see [`PciSpec::resolve`]. Equality is on
/// these parsed values: hex case, leading zeros and option order do not
/// matter, but `permissive=0` differs from no `permissive` (the config's
/// `pci_permissive` may be 1).
///
/// Serde reads and writes it as a [`PciSpecObject`] (checked as
/// [`PciSpecObject::to_spec`] does).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "PciSpecObject", try_from = "PciSpecObject")]
pub struct PciSpec {
    /// The host device.
    pub device: Device,
    /// The guest slot, 1 to `1f`. xl's `@0`/`vslot=0` is `None`: libxl
    /// cannot tell vdevfn 0 from "not set" and picks a slot itself.
    pub vslot: Option<u8>,
    /// `permissive=`: let the guest write all of the config space.
    pub permissive: Option<bool>,
    /// `msitranslate=`: MSI-INTx translation.
    pub msitranslate: Option<bool>,
    /// `seize=`: make the device assignable first if it is not.
    pub seize: Option<bool>,
    /// `power_mgmt=`: let an HVM guest set D0-D3hot.
    pub power_mgmt: Option<bool>,
    /// `rdm_policy=`: reserved-memory policy for this device.
    pub rdm_policy: Option<RdmPolicy>,
}

/// The keys of the spec grammar, in canonical order.
const KEYS: [&str; 8] = [
    "bdf",
    "vslot",
    "permissive",
    "msitranslate",
    "seize",
    "power_mgmt",
    "rdm_policy",
    "name",
];

impl PciSpec {
    /// A spec for one device with nothing else set.
    pub fn new(device: Device) -> PciSpec {
        PciSpec {
            device,
            vslot: None,
            permissive: None,
            msitranslate: None,
            seize: None,
            power_mgmt: None,
            rdm_policy: None,
        }
    }

    /// Parses exactly what xl 4.17's `xlu_pci_parse_spec_string()` accepts,
    /// and reads the values xl reads.
    ///
    /// Rejections name the problem; their xl return code is
    /// [`SpecError::xl_rc`]. The input is read as a C string: it ends at the
    /// first NUL byte. Inputs on which xl's behaviour is undefined (a BDF
    /// without the `.` before the function) are rejected with
    /// [`SpecError::XlUndefined`].
    pub fn parse_xl(input: &str) -> Result<PciSpec, SpecError> {
        let text = c_str(input);
        let b = text.as_bytes();
        let owned = || input.to_string();
        let mut bdf: Option<BdfPattern> = None;
        let mut name: Option<String> = None;
        let mut vslot: u32 = 0;
        let mut spec = PciSpec::new(Device::Name(String::new()));
        let mut pos = 0;

        // xl first tries a positional BDF; if that fails, it parses the whole
        // text as key=value items, so the BDF's own error only matters when
        // the items fail too.
        let mut positional_problem = None;
        match scan_xl(b, 0) {
            Ok((p, end)) => {
                bdf = Some(p);
                pos = end;
                if b.get(pos) == Some(&b'@') {
                    pos += 1;
                    let (v, end) = scan_vslot(b, pos).map_err(|problem| SpecError::BadVslot {
                        input: owned(),
                        value: text[pos..].to_string(),
                        problem,
                    })?;
                    vslot = v;
                    pos = end;
                }
                match b.get(pos) {
                    Some(b',') => pos += 1,
                    None => {}
                    Some(_) => {
                        return Err(SpecError::Trailing {
                            input: owned(),
                            rest: text[pos..].to_string(),
                        })
                    }
                }
            }
            Err(XlBdfError::Undefined(problem)) => {
                return Err(SpecError::XlUndefined {
                    input: owned(),
                    problem,
                })
            }
            Err(XlBdfError::Invalid(problem)) => positional_problem = Some(problem),
        }

        let mut first = true;
        // `parse_key_val()`: the key runs to the first `=` (commas included),
        // the value to the next `,`; one `,` after it is skipped, so a
        // trailing comma is fine.
        while pos < b.len() {
            let bad_bdf = |problem: String| SpecError::BadBdf {
                input: owned(),
                problem,
            };
            let Some(eq) = text[pos..].find('=') else {
                return Err(match positional_problem.take().filter(|_| first) {
                    Some(problem) => bad_bdf(problem),
                    None => SpecError::NotKeyValue {
                        input: owned(),
                        item: text[pos..].to_string(),
                    },
                });
            };
            let key = &text[pos..pos + eq];
            let value_start = pos + eq + 1;
            let value_end = text[value_start..]
                .find(',')
                .map_or(text.len(), |i| value_start + i);
            let value = &text[value_start..value_end];
            pos = if value_end < text.len() {
                value_end + 1
            } else {
                value_end
            };

            match key {
                // `parse_bdf(pci, val, NULL)`: no end pointer, so text after
                // the function is ignored.
                "bdf" => match scan_xl(value.as_bytes(), 0) {
                    Ok((p, _)) => bdf = Some(p),
                    Err(XlBdfError::Invalid(problem)) => return Err(bad_bdf(problem)),
                    Err(XlBdfError::Undefined(problem)) => {
                        return Err(SpecError::XlUndefined {
                            input: owned(),
                            problem,
                        })
                    }
                },
                // `parse_vslot(&pci->vdevfn, val, NULL)`: likewise.
                "vslot" => {
                    vslot = scan_vslot(value.as_bytes(), 0)
                        .map_err(|problem| SpecError::BadVslot {
                            input: owned(),
                            value: value.to_string(),
                            problem,
                        })?
                        .0
                }
                // `pci->permissive = atoi(val)`, stored in a C bool.
                "permissive" => spec.permissive = Some(xl_atoi(value) != 0),
                "msitranslate" => spec.msitranslate = Some(xl_atoi(value) != 0),
                "seize" => spec.seize = Some(xl_atoi(value) != 0),
                "power_mgmt" => spec.power_mgmt = Some(xl_atoi(value) != 0),
                "rdm_policy" => {
                    spec.rdm_policy =
                        Some(
                            RdmPolicy::from_xl(value).ok_or_else(|| SpecError::BadRdmPolicy {
                                input: owned(),
                                value: value.to_string(),
                            })?,
                        )
                }
                "name" => name = Some(value.to_string()),
                _ => {
                    return Err(match positional_problem.take().filter(|_| first) {
                        Some(problem) => bad_bdf(problem),
                        None => SpecError::UnknownOption {
                            input: owned(),
                            key: key.to_string(),
                        },
                    })
                }
            }
            first = false;
        }

        spec.device = match (bdf, name) {
            (Some(p), None) => Device::Bdf(p),
            (None, Some(n)) => Device::Name(n),
            (Some(_), Some(_)) => return Err(SpecError::BdfAndName { input: owned() }),
            (None, None) => return Err(SpecError::NoDevice { input: owned() }),
        };
        // `scan_vslot` checked the range: the value fits.
        spec.vslot = u8::try_from(vslot).ok().filter(|v| *v != 0);
        Ok(spec)
    }

    /// Parses a spec given by a user: xl's grammar, but refusing with
    /// [`SpecError::Refused`] (saying what xl would make of it and what to
    /// write instead) what xl would read differently from how it looks:
    ///
    /// - a NUL byte (xl stops reading there);
    /// - a BDF or vslot not written as plain hex digits (`07: 00.0`,
    ///   `07:0x1f.0`, `+1`, wrap-around, more digits than `DDDD:BB:DD.F`),
    ///   or followed by text xl ignores (`bdf=07:00.0junk`, `vslot=3zz`);
    /// - vslot 0 (libxl reads vdevfn 0 as "pick a slot");
    /// - a boolean option other than `0` or `1` (xl uses `atoi()`);
    /// - a parameter given twice (xl keeps the last; `@N` counts as
    ///   `vslot`, the positional BDF as `bdf`);
    /// - `rdm_policy=invalid`;
    /// - an empty name, or one with leading or trailing blanks;
    /// - function `*` without a vslot (libxl refuses it at attach time:
    ///   "Must specify a v-slot for multi-function devices").
    ///
    /// Anything xl itself rejects is rejected with the same error as
    /// [`PciSpec::parse_xl`].
    pub fn parse_strict(input: &str) -> Result<PciSpec, SpecError> {
        let refuse = |problem: String| SpecError::Refused {
            input: input.to_string(),
            problem,
        };
        if input.contains('\0') {
            return Err(refuse(
                "contains a NUL byte; xl stops reading there: remove it".into(),
            ));
        }
        let spec = PciSpec::parse_xl(input)?;

        // xl accepted the text, so every item after the first is KEY=VALUE
        // with a known key, and the first item is a positional BDF exactly
        // when it has no `=`.
        let body = input.strip_suffix(',').unwrap_or(input);
        let mut seen = BTreeSet::new();
        let mut once = |key: &'static str| {
            if seen.insert(key) {
                Ok(())
            } else {
                Err(refuse(format!(
                    "{key} is given more than once; xl silently keeps the last one: give it once"
                )))
            }
        };
        for (index, item) in body.split(',').enumerate() {
            let Some((key, value)) = item.split_once('=') else {
                if index != 0 {
                    return Err(refuse(format!("{item:?} is not KEY=VALUE")));
                }
                let (bdf_text, vslot_text) = match item.split_once('@') {
                    Some((b, v)) => (b, Some(v)),
                    None => (item, None),
                };
                check_bdf_text(bdf_text).map_err(&refuse)?;
                once("bdf")?;
                if let Some(v) = vslot_text {
                    check_vslot_text(v, &format!("@{v}")).map_err(&refuse)?;
                    once("vslot")?;
                }
                continue;
            };
            let key = KEYS
                .into_iter()
                .find(|k| *k == key)
                .ok_or_else(|| refuse(format!("unknown option {key:?}")))?;
            once(key)?;
            match key {
                "bdf" => check_bdf_text(value).map_err(&refuse)?,
                "vslot" => check_vslot_text(value, item).map_err(&refuse)?,
                "rdm_policy" => {
                    if RdmPolicy::from_xl(value) == Some(RdmPolicy::Invalid) {
                        return Err(refuse(format!(
                            "{item}: xl passes libxl's 'invalid' (-1) policy, which libxl \
                             replaces with strict (or xl with the config's rdm policy): \
                             write rdm_policy=strict or rdm_policy=relaxed, or leave it out"
                        )));
                    }
                }
                "name" => check_name(value).map_err(&refuse)?,
                _ => {
                    if value != "0" && value != "1" {
                        let read = xl_atoi(value);
                        let (word, digit) = if read != 0 { ("on", 1) } else { ("off", 0) };
                        return Err(refuse(format!(
                            "{item}: xl reads the value with atoi() as {read} ({word}); \
                             write {key}={digit} (or {key}={})",
                            1 - digit
                        )));
                    }
                }
            }
        }
        check_func_all(&spec).map_err(refuse)?;
        Ok(spec)
    }

    /// Whether both specs name the same device (normalised BDF, or the same
    /// name). A name and a BDF are never the same here: resolving a name
    /// needs the host's records. `07:00.*` and `07:00.0` differ.
    pub fn same_device(&self, other: &PciSpec) -> bool {
        self.device == other.device
    }

    /// The device, as the key by which entries are compared and sorted.
    pub fn key(&self) -> &Device {
        &self.device
    }

    /// What libxl finally uses for this spec: the options not written take
    /// `defaults` (as `xl_parse.c` presets them), then
    /// `libxl__device_pci_setdefault()` turns an invalid rdm policy into
    /// strict. Use [`PciDefaults::default`] for `xl pci-attach`.
    pub fn resolve(&self, defaults: &PciDefaults) -> ResolvedPci {
        let rdm_policy = match self.rdm_policy.unwrap_or(defaults.rdm_policy) {
            RdmPolicy::Invalid => RdmPolicy::Strict,
            p => p,
        };
        ResolvedPci {
            device: self.device.clone(),
            vslot: self.vslot,
            permissive: self.permissive.unwrap_or(defaults.permissive),
            msitranslate: self.msitranslate.unwrap_or(defaults.msitranslate),
            seize: self.seize.unwrap_or(defaults.seize),
            power_mgmt: self.power_mgmt.unwrap_or(defaults.power_mgmt),
            rdm_policy,
        }
    }

    /// The `libxl_device_pci` that `xl pci-attach` hands to libxl: the
    /// struct after `libxl_device_pci_init()` (all zero, `rdm_policy` -1,
    /// `name` NULL) and `xlu_pci_parse_spec_string()`.
    pub fn libxl_view(&self) -> LibxlPciView {
        self.libxl_view_with(&PciDefaults::default())
    }

    /// The `libxl_device_pci` after `xl_parse.c` built it for one entry of a
    /// config's `pci = [...]`: `libxl_device_pci_init()`, then the `pci_*`
    /// defaults and the global rdm policy from `defaults`, then the parse.
    pub fn libxl_view_with(&self, defaults: &PciDefaults) -> LibxlPciView {
        let (domain, bus, dev, func, vfunc_mask, name) = match &self.device {
            Device::Bdf(p) => {
                let (func, mask) = match p.func {
                    Func::One(f) => (f, 1),
                    Func::All => (0, LIBXL_PCI_FUNC_ALL),
                };
                (i32::from(p.domain), p.bus, p.dev, func, mask, None)
            }
            // Nothing touches the address for a name: it stays as init left it.
            Device::Name(n) => (0, 0, 0, 0, 0, Some(n.clone())),
        };
        let flag = |v: Option<bool>, d: bool| u8::from(v.unwrap_or(d));
        LibxlPciView {
            domain,
            bus,
            dev,
            func,
            vdevfn: self.vslot.map_or(0, |v| u32::from(v) << 3),
            vfunc_mask,
            permissive: flag(self.permissive, defaults.permissive),
            msitranslate: flag(self.msitranslate, defaults.msitranslate),
            seize: flag(self.seize, defaults.seize),
            power_mgmt: flag(self.power_mgmt, defaults.power_mgmt),
            rdm_policy: self.rdm_policy.unwrap_or(defaults.rdm_policy).libxl_value(),
            name,
        }
    }
}

impl fmt::Display for PciSpec {
    /// The canonical form: `0000:07:00.0@1f` then the options set, in the
    /// order permissive, msitranslate, seize, power_mgmt, rdm_policy. A
    /// named device prints `name=NAME` first (xl has no positional name,
    /// and a name cannot follow a BDF) and its slot as `,vslot=1f`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.device {
            Device::Bdf(p) => {
                write!(f, "{p}")?;
                if let Some(v) = self.vslot {
                    write!(f, "@{v:02x}")?;
                }
            }
            Device::Name(n) => {
                write!(f, "name={n}")?;
                if let Some(v) = self.vslot {
                    write!(f, ",vslot={v:02x}")?;
                }
            }
        }
        let flags = [
            ("permissive", self.permissive),
            ("msitranslate", self.msitranslate),
            ("seize", self.seize),
            ("power_mgmt", self.power_mgmt),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                write!(f, ",{key}={}", u8::from(v))?;
            }
        }
        if let Some(p) = self.rdm_policy {
            write!(f, ",rdm_policy={p}")?;
        }
        Ok(())
    }
}

/// The per-device defaults `xl_parse.c` presets before parsing each entry of
/// a config's `pci = [...]`. `Default` is what `xl pci-attach` uses (and a
/// config without `pci_*` settings): all off, rdm policy invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciDefaults {
    /// `pci_permissive`, as a C bool (see [`PciDefaults::flag_from_long`]).
    pub permissive: bool,
    /// `pci_msitranslate`.
    pub msitranslate: bool,
    /// `pci_seize`.
    pub seize: bool,
    /// `pci_power_mgmt`.
    pub power_mgmt: bool,
    /// The global policy (`b_info->u.hvm.rdm.policy`), invalid unless the
    /// config's `rdm` sets it.
    pub rdm_policy: RdmPolicy,
}

impl Default for PciDefaults {
    fn default() -> PciDefaults {
        PciDefaults {
            permissive: false,
            msitranslate: false,
            seize: false,
            power_mgmt: false,
            rdm_policy: RdmPolicy::Invalid,
        }
    }
}

impl PciDefaults {
    /// How `xl_parse.c` turns `pci_permissive = N` (read with
    /// `xlu_cfg_get_long()`) into the default: the long goes into an `int`
    /// (its low 32 bits), then into the C bool of `libxl_device_pci`.
    /// So `4294967296` is off.
    pub fn flag_from_long(value: i64) -> bool {
        // Truncation is the point: it is what the C assignment does.
        value as i32 != 0
    }
}

/// What libxl finally uses for a device: see [`PciSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedPci {
    /// The host device.
    pub device: Device,
    /// The guest slot, `None` when libxl picks one.
    pub vslot: Option<u8>,
    /// Permissive config space access.
    pub permissive: bool,
    /// MSI-INTx translation.
    pub msitranslate: bool,
    /// Seize the device if not assignable.
    pub seize: bool,
    /// Guest power management.
    pub power_mgmt: bool,
    /// Strict or relaxed, never invalid.
    pub rdm_policy: RdmPolicy,
}

/// The fields of `libxl_device_pci` after xl parsed a spec, as a C oracle
/// prints them: `{"domain":..,"bus":..,"dev":..,"func":..,"vdevfn":..,
/// "vfunc_mask":..,"permissive":..,"msitranslate":..,"seize":..,
/// "power_mgmt":..,"rdm_policy":..,"name":null|".."}`.
///
/// Booleans are C `bool`s printed with `%d`: 0 or 1. `rdm_policy` is
/// libxl's integer (-1 invalid, 0 strict, 1 relaxed). For a named device
/// the address fields and `vfunc_mask` stay 0, as `libxl_device_pci_init()`
/// left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibxlPciView {
    /// `domain` (an `int` in libxl).
    pub domain: i32,
    /// `bus`.
    pub bus: u8,
    /// `dev`.
    pub dev: u8,
    /// `func` (0 for `*`).
    pub func: u8,
    /// `vdevfn`: vslot << 3.
    pub vdevfn: u32,
    /// `vfunc_mask`: 1 for one function, `0xffffffff` for `*`, 0 for a name.
    pub vfunc_mask: u32,
    /// `permissive`, 0 or 1.
    pub permissive: u8,
    /// `msitranslate`, 0 or 1.
    pub msitranslate: u8,
    /// `seize`, 0 or 1.
    pub seize: u8,
    /// `power_mgmt`, 0 or 1.
    pub power_mgmt: u8,
    /// `rdm_policy` as libxl's integer.
    pub rdm_policy: i32,
    /// `name`, `null` when NULL.
    pub name: Option<String>,
}

/// What the C oracle prints for `input` given to
/// `xlu_pci_parse_spec_string()` on a `libxl_device_pci_init()`ed struct:
/// `{"rc":0, ...`[`LibxlPciView`]`}` on success, `{"rc":N}` on failure
/// (`N` as [`SpecError::xl_rc`]). `None` when xl's behaviour on this input
/// is undefined, so the comparison must skip it.
pub fn xl_oracle_json(input: &str) -> Option<serde_json::Value> {
    match PciSpec::parse_xl(input) {
        Ok(spec) => {
            let mut value = serde_json::to_value(spec.libxl_view()).ok()?;
            if let serde_json::Value::Object(map) = &mut value {
                map.insert("rc".into(), 0.into());
            }
            Some(value)
        }
        Err(e) => e.xl_rc().map(|rc| serde_json::json!({ "rc": rc })),
    }
}

/// A device spec as a module argument: a PCI_SPEC_STRING in xl's grammar or
/// an object with the same fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SpecArg {
    /// A PCI_SPEC_STRING as in xl's `pci = [...]` and `xl pci-attach`,
    /// e.g. `07:00.0@8,permissive=1` or `name=gpu`. Forms that xl would read
    /// differently from how they look (`permissive=yes`, a parameter given
    /// twice, ...) are refused with an explanation.
    Text(String),
    /// The same as an object.
    Object(PciSpecObject),
}

impl<'de> Deserialize<'de> for SpecArg {
    // By hand rather than `untagged`, so that a wrong object field gets its
    // own message instead of "data did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpecArg, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(SpecArg::Text(s)),
            v @ serde_json::Value::Object(_) => PciSpecObject::deserialize(v)
                .map(SpecArg::Object)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a PCI device spec must be a string or an object, not {other}"
            ))),
        }
    }
}

impl SpecArg {
    /// The spec this argument gives: strings through
    /// [`PciSpec::parse_strict`], objects through [`PciSpecObject::to_spec`].
    pub fn to_spec(&self) -> Result<PciSpec, SpecError> {
        match self {
            SpecArg::Text(s) => PciSpec::parse_strict(s),
            SpecArg::Object(o) => o.to_spec(),
        }
    }
}

/// A PCI device spec as an object. Exactly one of `bdf` and `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PciSpecObject {
    /// Host PCI address `[DDDD:]BB:DD.F` in hex, e.g. `0000:07:00.0`; the
    /// function may be `*` for all functions of the device (then `vslot`
    /// is required).
    // A String, not a BdfPattern, so that a bad value gets to_spec()'s
    // explanation; the schema still shows the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BdfPattern>")]
    pub bdf: Option<String>,
    /// Guest slot (device number the guest sees, bus 0), 1 to 31. A number
    /// is taken as is; a string is hex, as xl reads it (`"1f"`). Omit it to
    /// let libxl choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vslot: Option<VslotArg>,
    /// Allow the guest to write all of the device's PCI config space
    /// (xl's `permissive`). Use with caution. Unset: the config's
    /// `pci_permissive`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissive: Option<bool>,
    /// Turn on MSI-INTx translation (xl's `msitranslate`). Unset: the
    /// config's `pci_msitranslate`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msitranslate: Option<bool>,
    /// Let xl make the device assignable itself if it is not (xl's
    /// `seize`): it will take a device dom0 is using without asking.
    /// Unset: the config's `pci_seize`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seize: Option<bool>,
    /// HVM only: let the guest set the device's D0-D3hot power states (xl's
    /// `power_mgmt`). Unset: the config's `pci_power_mgmt`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_mgmt: Option<bool>,
    /// HVM/x86 only: reserved device memory policy for this device,
    /// `strict` or `relaxed`. Unset: the config's `rdm` policy, else strict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdm_policy: Option<RdmPolicy>,
    /// The name the device was made assignable with (`xl
    /// pci-assignable-add -n NAME`), instead of `bdf`. No commas, no
    /// leading or trailing blanks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A vslot as an argument: a number, or a string of hex digits as xl reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum VslotArg {
    /// The slot number itself, 1 to 31.
    Number(#[schemars(range(min = 1, max = 31))] u64),
    /// Hex digits, as in xl's `@1f` or `vslot=1f`.
    Hex(#[schemars(regex(pattern = r"^[0-9a-fA-F]{1,2}$"))] String),
}

impl<'de> Deserialize<'de> for VslotArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<VslotArg, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(VslotArg::Hex(s)),
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(VslotArg::Number)
                .ok_or_else(|| D::Error::custom(format!("vslot must be 1 to 31, not {n}"))),
            other => Err(D::Error::custom(format!(
                "vslot must be a number or a hex string, not {other}"
            ))),
        }
    }
}

impl PciSpecObject {
    /// Checks the object as [`PciSpec::parse_strict`] checks a string.
    pub fn to_spec(&self) -> Result<PciSpec, SpecError> {
        let input = serde_json::to_string(self).unwrap_or_default();
        let refuse = |problem: String| SpecError::Refused {
            input: input.clone(),
            problem,
        };
        let device = match (&self.bdf, &self.name) {
            (Some(b), None) => Device::Bdf(BdfPattern::parse(b)?),
            (None, Some(n)) => {
                check_name(n).map_err(&refuse)?;
                Device::Name(n.clone())
            }
            (Some(_), Some(_)) => return Err(SpecError::BdfAndName { input }),
            (None, None) => return Err(SpecError::NoDevice { input }),
        };
        let vslot = match &self.vslot {
            None => None,
            Some(VslotArg::Hex(text)) => {
                check_vslot_text(text, &format!("vslot={text}")).map_err(&refuse)?;
                u8::from_str_radix(text, 16).ok()
            }
            Some(VslotArg::Number(0)) => return Err(refuse(VSLOT_ZERO.into())),
            Some(VslotArg::Number(n)) => match u8::try_from(*n) {
                Ok(v) if v <= MAX_VSLOT => Some(v),
                _ => {
                    return Err(SpecError::BadVslot {
                        input,
                        value: n.to_string(),
                        problem: "the slot must be 1 to 31 (1f)".into(),
                    })
                }
            },
        };
        if self.rdm_policy == Some(RdmPolicy::Invalid) {
            return Err(refuse(
                "rdm_policy must be strict or relaxed, or left out".into(),
            ));
        }
        let spec = PciSpec {
            device,
            vslot,
            permissive: self.permissive,
            msitranslate: self.msitranslate,
            seize: self.seize,
            power_mgmt: self.power_mgmt,
            rdm_policy: self.rdm_policy,
        };
        check_func_all(&spec).map_err(refuse)?;
        Ok(spec)
    }
}

impl From<PciSpec> for PciSpecObject {
    fn from(spec: PciSpec) -> PciSpecObject {
        let (bdf, name) = match spec.device {
            Device::Bdf(p) => (Some(p.to_string()), None),
            Device::Name(n) => (None, Some(n)),
        };
        PciSpecObject {
            bdf,
            vslot: spec.vslot.map(|v| VslotArg::Number(v.into())),
            permissive: spec.permissive,
            msitranslate: spec.msitranslate,
            seize: spec.seize,
            power_mgmt: spec.power_mgmt,
            rdm_policy: spec.rdm_policy,
            name,
        }
    }
}

impl TryFrom<PciSpecObject> for PciSpec {
    type Error = SpecError;
    fn try_from(o: PciSpecObject) -> Result<PciSpec, SpecError> {
        o.to_spec()
    }
}

impl JsonSchema for PciSpec {
    fn schema_name() -> String {
        PciSpecObject::schema_name()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        PciSpecObject::json_schema(gen)
    }
}

const VSLOT_ZERO: &str = "vslot 0 is not a slot: libxl reads vdevfn 0 as \"not set\" and \
                          picks a slot itself: leave vslot out, or give 1 to 1f";

/// `parse_vslot()`: one `%x` conversion, at most `0x1f`; returns the slot
/// and the index after it.
fn scan_vslot(b: &[u8], start: usize) -> Result<(u32, usize), String> {
    let mut sc = Scanf::new(b, start);
    match sc.hex() {
        None => Err("expected a hex slot number".into()),
        Some(v) if v > MAX_VSLOT.into() => Err(format!("slot {v:x} is above {MAX_VSLOT:x}")),
        Some(v) => Ok((v, sc.pos)),
    }
}

/// glibc's `atoi()`: `(int) strtol(s, NULL, 10)`. Blanks, a sign and
/// decimal digits; the long saturates, then keeps its low 32 bits.
fn xl_atoi(s: &str) -> i32 {
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|c| c_isspace(**c)).count();
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let limit = i128::from(i64::MAX) + 1;
    let mut value: i128 = 0;
    for c in b[i..].iter().take_while(|c| c.is_ascii_digit()) {
        value = (value * 10 + i128::from(c - b'0')).min(limit);
    }
    let value = if negative { -value } else { value };
    let long = value.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    // `(int)` of a long: its low 32 bits, as gcc does.
    long as i32
}

/// Strict BDF text in a spec: plain hex digits only, nothing after.
fn check_bdf_text(text: &str) -> Result<(), String> {
    match scan_plain(text.as_bytes()) {
        Some((_, end)) if end == text.len() => Ok(()),
        _ => match scan_xl(text.as_bytes(), 0) {
            Ok((p, _)) => Err(format!("xl reads the BDF {text:?} as {p}: write {p}")),
            Err(XlBdfError::Invalid(problem) | XlBdfError::Undefined(problem)) => {
                Err(format!("invalid BDF {text:?}: {problem}"))
            }
        },
    }
}

/// Strict vslot text: one or two hex digits, 1 to `1f`.
fn check_vslot_text(text: &str, shown: &str) -> Result<(), String> {
    let plain = !text.is_empty() && text.len() <= 2 && text.bytes().all(|c| c.is_ascii_hexdigit());
    match scan_vslot(text.as_bytes(), 0) {
        Ok((0, _)) if plain => Err(VSLOT_ZERO.into()),
        Ok(_) if plain => Ok(()),
        Ok((v, _)) => Err(format!(
            "xl reads {shown} as slot {v:02x}{}: write {v:02x}",
            if v == 0 { " (\"not set\")" } else { "" }
        )),
        Err(problem) => Err(format!("invalid vslot {text:?}: {problem}")),
    }
}

/// A name that reads as it looks and can be written in a spec.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("the name is empty".into())
    } else if name.contains(',') || name.contains('\0') {
        Err(format!(
            "the name {name:?} cannot be written in xl's grammar: no ',' or NUL"
        ))
    } else if name.bytes().next().is_some_and(c_isspace)
        || name.bytes().last().is_some_and(c_isspace)
    {
        Err(format!(
            "the name {name:?} has leading or trailing blanks, which xl keeps as part of the name"
        ))
    } else {
        Ok(())
    }
}

/// libxl refuses function `*` without a vslot (`device_pci_add_stubdom_done()`
/// in `libxl_pci.c`: "Must specify a v-slot for multi-function devices").
fn check_func_all(spec: &PciSpec) -> Result<(), String> {
    match &spec.device {
        Device::Bdf(p) if p.func == Func::All && spec.vslot.is_none() => Err(format!(
            "{p} (all functions) needs a vslot: libxl refuses it otherwise \
             (\"Must specify a v-slot for multi-function devices\"): add @SLOT"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// parse_xl accepts, prints this canonical form, and re-reads it to the same value.
    macro_rules! ok {
        ($input:expr => $canonical:expr) => {{
            let spec = PciSpec::parse_xl($input)
                .unwrap_or_else(|e| panic!("{:?} should parse: {e}", $input));
            assert_eq!(
                spec.to_string(),
                $canonical,
                "canonical form of {:?}",
                $input
            );
            assert_eq!(
                PciSpec::parse_xl(&spec.to_string()).as_ref(),
                Ok(&spec),
                "round trip of {:?}",
                $input
            );
        }};
    }
    /// parse_xl rejects; the message contains the text.
    macro_rules! err {
        ($input:expr => $msg:expr) => {{
            let e = PciSpec::parse_xl($input).expect_err($input);
            assert!(e.to_string().contains($msg), "{:?}: {e}", $input);
            assert!(PciSpec::parse_strict($input).is_err());
        }};
    }
    /// parse_strict accepts with this canonical form.
    macro_rules! strict_ok {
        ($input:expr => $canonical:expr) => {{
            let spec = PciSpec::parse_strict($input)
                .unwrap_or_else(|e| panic!("{:?} should pass strict: {e}", $input));
            assert_eq!(spec.to_string(), $canonical);
        }};
    }
    /// xl accepts but parse_strict refuses; the message contains the text.
    macro_rules! refused {
        ($input:expr => $msg:expr) => {{
            assert!(PciSpec::parse_xl($input).is_ok(), "xl accepts {:?}", $input);
            let e = PciSpec::parse_strict($input).expect_err($input);
            assert!(
                matches!(e, SpecError::Refused { .. }),
                "{:?}: {e:?}",
                $input
            );
            assert!(e.to_string().contains($msg), "{:?}: {e}", $input);
        }};
    }
    /// The oracle view (what the C program prints) of an input.
    macro_rules! view {
        ($input:expr => $json:tt) => {
            assert_eq!(
                xl_oracle_json($input),
                Some(serde_json::json!($json)),
                "{:?}",
                $input
            )
        };
    }

    #[test]
    fn positional_bdf() {
        ok!("07:00.0" => "0000:07:00.0");
        ok!("0000:07:00.0" => "0000:07:00.0");
        ok!("ABCD:Ef:1F.7" => "abcd:ef:1f.7");
        ok!("7:0.1" => "0000:07:00.1");
        ok!("00007:000.0" => "0000:07:00.0");
        ok!("ffff:ff:1f.7" => "ffff:ff:1f.7");
        ok!("07:00.*@3" => "0000:07:00.*@03");
        ok!("07:00.0," => "0000:07:00.0");
        // sscanf("%x") leniency, each checked against libxlutil 4.17.
        ok!("07: 1f.3" => "0000:07:1f.3");
        ok!("07:0x1f.0" => "0000:07:1f.0");
        ok!("07:0x.0" => "0000:07:00.0");
        ok!("07:00.0x1" => "0000:07:00.1");
        ok!("07:+1.0" => "0000:07:01.0");
        ok!("07:-0.0" => "0000:07:00.0");
        ok!("07:00.\t5" => "0000:07:00.5");
        ok!("07:00.\u{b}5" => "0000:07:00.5");
        // strtoul() then a cast to unsigned int: 0x100000000 wraps to 0.
        ok!("07:100000000.0" => "0000:07:00.0");
        ok!("100000000:07:00.0" => "0000:07:00.0");
        ok!("07:-100000000.0" => "0000:07:00.0");
        // Text after NUL is not seen by C.
        ok!("07:00.0\0garbage" => "0000:07:00.0");
    }

    #[test]
    fn positional_bdf_rejected() {
        err!("" => "names no device");
        err!("07:00.8" => "function 8 is above 7");
        err!("07:20.0" => "device 20 is above 1f");
        err!("07:20" => "device 20 is above 1f");
        err!("100:00.0" => "bus 100 is above ff");
        err!("10000:07:00.0" => "domain 10000 is above ffff");
        err!("07:-1.0" => "device ffffffff is above 1f");
        err!("07:00.-1" => "function ffffffff is above 7");
        err!("0700.0" => "no ':'");
        err!(" 07:00.0" => "no ':'");
        err!("0:0:0:0.0" => "3 ':'");
        err!("07::00.0" => "no hex number for the bus");
        err!("07 :00.0" => "no ':'");
        err!("07:.0" => "no hex number for the device");
        err!("07:00." => "no function");
        err!("07:00.x" => "no function");
        err!("07:00.0 " => "unexpected \" \" after the BDF");
        err!("07:00.0;" => "after the BDF");
        err!("07:00.0:1" => "after the BDF");
        err!("07:00.0@" => "invalid vslot");
        err!("07:00.0@20" => "slot 20 is above 1f");
        err!("07:00.0@1 " => "after the BDF");
        err!("07:00.0@1@2" => "after the BDF");
        err!("07:00.9,permissive=1" => "function 9 is above 7");
        err!("-0x-1:00.0" => "no ':'");
        err!("0x" => "no ':'");
    }

    #[test]
    fn undefined_in_xl() {
        // parse_bdf() checks the sscanf count but not that %n was reached.
        for input in [
            "07:00",
            "07:00,permissive=1",
            "0000:07:00",
            "07:1 2.0",
            "0000: 07:00.0",
            "bdf=07:00",
        ] {
            let e = PciSpec::parse_xl(input).expect_err(input);
            assert!(e.is_xl_undefined(), "{input}: {e:?}");
            assert_eq!(xl_oracle_json(input), None);
        }
    }

    #[test]
    fn key_value_items() {
        ok!("bdf=07:00.0" => "0000:07:00.0");
        ok!("bdf=36:00.0,vslot=1f,seize=1" => "0000:36:00.0@1f,seize=1");
        ok!("36:00.0,vslot=10,seize=1" => "0000:36:00.0@10,seize=1");
        ok!("07:00.0,rdm_policy=relaxed,power_mgmt=1,seize=0,msitranslate=1,permissive=1"
            => "0000:07:00.0,permissive=1,msitranslate=1,seize=0,power_mgmt=1,rdm_policy=relaxed");
        // No end pointer for bdf= and vslot=: trailing text is ignored.
        ok!("bdf=07:00.1junk,vslot=3zz" => "0000:07:00.1@03");
        ok!("bdf=07:00.0 ,vslot= 0x1f" => "0000:07:00.0@1f");
        // The last of a repeated parameter wins.
        ok!("07:00.0,bdf=08:00.1" => "0000:08:00.1");
        ok!("07:00.*@3,bdf=07:00.2" => "0000:07:00.2@03");
        ok!("07:00.0@4,vslot=5" => "0000:07:00.0@05");
        ok!("07:00.0,permissive=1,permissive=0" => "0000:07:00.0,permissive=0");
        // vslot 0 is vdevfn 0: "not set" to libxl.
        ok!("07:00.0@0" => "0000:07:00.0");
        ok!("07:00.0,vslot=00" => "0000:07:00.0");
        // Value may hold '='.
        ok!("name=a=b" => "name=a=b");
        ok!("name=gpu,vslot=1f,seize=1" => "name=gpu,vslot=1f,seize=1");
        ok!("vslot=2,name=gpu," => "name=gpu,vslot=02");
        ok!("name=" => "name=");
        ok!("name= spaced " => "name= spaced ");
        ok!("name=x,name=y" => "name=y");
    }

    #[test]
    fn booleans_are_atoi() {
        ok!("07:00.0,permissive=yes" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=true" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=0x1" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=2" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive=-1" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive= +1x" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,seize=1 " => "0000:07:00.0,seize=1");
        // (int) of a saturated long: LONG_MAX is -1 (on), LONG_MIN is 0 (off).
        ok!("07:00.0,permissive=4294967296" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=99999999999999999999" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive=-99999999999999999999" => "0000:07:00.0,permissive=0");
        assert_eq!(xl_atoi("4294967297"), 1);
        assert_eq!(xl_atoi("-2147483649"), 2147483647);
    }

    #[test]
    fn rdm_policy() {
        ok!("07:00.0,rdm_policy=strict" => "0000:07:00.0,rdm_policy=strict");
        ok!("07:00.0,rdm_policy=Relaxed" => "0000:07:00.0,rdm_policy=relaxed");
        ok!("07:00.0,rdm_policy=INVALID" => "0000:07:00.0,rdm_policy=invalid");
        err!("07:00.0,rdm_policy=bogus" => "Unknown RDM policy");
        err!("07:00.0,rdm_policy=" => "Unknown RDM policy");
        err!("07:00.0,rdm_policy= strict" => "Unknown RDM policy");
        assert_eq!(
            PciSpec::parse_xl("07:00.0,rdm_policy=x")
                .unwrap_err()
                .xl_rc(),
            Some(ERROR_FAIL)
        );
    }

    #[test]
    fn items_rejected() {
        err!("07:00.0,,permissive=1" => "Unknown PCI_SPEC_STRING option: \",permissive\"");
        err!("07:00.0,," => "\",\" is not KEY=VALUE");
        err!("07:00.0,20" => "\"20\" is not KEY=VALUE");
        err!("07:00.0,Permissive=1" => "Unknown PCI_SPEC_STRING option");
        err!("07:00.0,permissive =1" => "Unknown PCI_SPEC_STRING option");
        err!("07:00.0,=1" => "Unknown PCI_SPEC_STRING option: \"\"");
        err!("07:00.0,foo=1" => "Unknown PCI_SPEC_STRING option: \"foo\"");
        err!("permissive=1" => "names no device");
        err!("07:00.0,name=gpu" => "both a BDF and a name");
        err!("name=gpu,bdf=07:00.0" => "both a BDF and a name");
        err!("bdf=" => "no ':'");
        err!("bdf=07:00.8" => "function 8");
        err!("07:00.0,vslot=" => "invalid vslot");
        err!("07:00.0,vslot=20" => "slot 20 is above 1f");
        err!("07:00.0,vslot=x" => "invalid vslot");
        // The three examples of xl-pci-configuration(5): vslot 0x20 > 0x1f.
        err!("36:00.0@20,seize=1" => "slot 20 is above 1f");
        err!("36:00.0,vslot=20,seize=1" => "slot 20 is above 1f");
        err!("bdf=36:00.0,vslot=20,seize=1" => "slot 20 is above 1f");
        assert_eq!(
            PciSpec::parse_xl("foo").unwrap_err().xl_rc(),
            Some(ERROR_INVAL)
        );
    }

    #[test]
    fn strict_accepts_clean_forms() {
        strict_ok!("07:00.0" => "0000:07:00.0");
        strict_ok!("0000:07:1F.7@1f,permissive=1,seize=0" => "0000:07:1f.7@1f,permissive=1,seize=0");
        strict_ok!("bdf=07:00.0,vslot=8,rdm_policy=Relaxed," => "0000:07:00.0@08,rdm_policy=relaxed");
        strict_ok!("07:00.*@8" => "0000:07:00.*@08");
        strict_ok!("name=gpu,power_mgmt=1" => "name=gpu,power_mgmt=1");
        strict_ok!("name=a=b" => "name=a=b");
    }

    #[test]
    fn strict_refuses_surprises() {
        refused!("07:00.0,permissive=yes" => "atoi() as 0 (off); write permissive=0");
        refused!("07:00.0,permissive=2" => "atoi() as 2 (on); write permissive=1");
        refused!("07:00.0,seize=" => "as 0 (off)");
        refused!("07:00.0,msitranslate= 1" => "as 1 (on)");
        refused!("07: 1f.3" => "xl reads the BDF \"07: 1f.3\" as 0000:07:1f.3");
        refused!("07:0x1f.0" => "as 0000:07:1f.0");
        refused!("07:100000000.0" => "as 0000:07:00.0");
        refused!("00000:07:00.0" => "as 0000:07:00.0");
        refused!("bdf=07:00.1junk" => "as 0000:07:00.1");
        refused!("07:00.0,vslot=3zz" => "xl reads vslot=3zz as slot 03: write 03");
        refused!("07:00.0@0x1f" => "xl reads @0x1f as slot 1f");
        refused!("07:00.0@0" => "vslot 0 is not a slot");
        refused!("07:00.0,vslot=000" => "\"not set\"");
        refused!("07:00.0,bdf=08:00.0" => "bdf is given more than once");
        refused!("07:00.0@3,vslot=4" => "vslot is given more than once");
        refused!("07:00.0,seize=1,seize=1" => "seize is given more than once");
        refused!("07:00.0,rdm_policy=invalid" => "rdm_policy=strict or rdm_policy=relaxed");
        refused!("name=" => "the name is empty");
        refused!("name= gpu" => "leading or trailing blanks");
        refused!("07:00.*" => "needs a vslot");
        refused!("07:00.0\0,seize=1" => "NUL");
    }

    #[test]
    fn strict_passes_xl_errors_through() {
        assert_eq!(
            PciSpec::parse_strict("07:00.8"),
            PciSpec::parse_xl("07:00.8").map(|_| unreachable!())
        );
    }

    #[test]
    fn equality_is_normalised() {
        let a = PciSpec::parse_xl("07:00.0,seize=1,permissive=1").unwrap();
        let b = PciSpec::parse_xl("0000:07:00.0,permissive=1,seize=1").unwrap();
        assert_eq!(a, b);
        let c = PciSpec::parse_xl("0000:07:00.0").unwrap();
        assert!(a.same_device(&c) && a != c);
        assert!(!c.same_device(&PciSpec::parse_xl("07:00.*@1").unwrap()));
    }

    #[test]
    fn oracle_views() {
        view!("07:00.0" => {"rc":0,"domain":0,"bus":7,"dev":0,"func":0,"vdevfn":0,"vfunc_mask":1,
            "permissive":0,"msitranslate":0,"seize":0,"power_mgmt":0,"rdm_policy":-1,"name":null});
        view!("0001:07:00.*@3,permissive=1,rdm_policy=relaxed" => {"rc":0,"domain":1,"bus":7,"dev":0,
            "func":0,"vdevfn":24,"vfunc_mask":4294967295u32,"permissive":1,"msitranslate":0,"seize":0,
            "power_mgmt":0,"rdm_policy":1,"name":null});
        view!("name=foo" => {"rc":0,"domain":0,"bus":0,"dev":0,"func":0,"vdevfn":0,"vfunc_mask":0,
            "permissive":0,"msitranslate":0,"seize":0,"power_mgmt":0,"rdm_policy":-1,"name":"foo"});
        view!("07:00.0,name=foo" => {"rc":-6});
        view!("07:00.0,rdm_policy=bogus" => {"rc":-3});
    }

    #[test]
    fn config_defaults() {
        let defaults = PciDefaults {
            permissive: true,
            rdm_policy: RdmPolicy::Relaxed,
            ..PciDefaults::default()
        };
        let spec = PciSpec::parse_xl("07:00.0,permissive=0,seize=1").unwrap();
        let view = spec.libxl_view_with(&defaults);
        assert_eq!((view.permissive, view.seize, view.rdm_policy), (0, 1, 1));
        let resolved = PciSpec::parse_xl("07:00.0").unwrap().resolve(&defaults);
        assert!(resolved.permissive);
        assert_eq!(resolved.rdm_policy, RdmPolicy::Relaxed);
        let attach = PciSpec::parse_xl("07:00.0,rdm_policy=invalid")
            .unwrap()
            .resolve(&PciDefaults::default());
        assert_eq!(attach.rdm_policy, RdmPolicy::Strict);
        assert!(!PciDefaults::flag_from_long(1 << 32));
        assert!(PciDefaults::flag_from_long(2));
    }

    #[test]
    fn spec_arg_forms() {
        let text: SpecArg = serde_json::from_str(r#""07:00.0@8,seize=1""#).unwrap();
        let object: SpecArg =
            serde_json::from_str(r#"{"bdf":"0000:07:00.0","vslot":8,"seize":true}"#).unwrap();
        let hex: SpecArg =
            serde_json::from_str(r#"{"bdf":"07:00.0","vslot":"08","seize":true}"#).unwrap();
        assert_eq!(text.to_spec(), object.to_spec());
        assert_eq!(hex.to_spec(), object.to_spec());
        let spec = object.to_spec().unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"bdf":"0000:07:00.0","vslot":8,"seize":true})
        );
        assert_eq!(
            serde_json::from_value::<PciSpec>(serde_json::to_value(&spec).unwrap()).unwrap(),
            spec
        );
        for (bad, msg) in [
            (r#"{"bdf":"07:00.0","name":"x"}"#, "both"),
            (r#"{}"#, "names no device"),
            (r#"{"bdf":"07:00.*"}"#, "needs a vslot"),
            (r#"{"bdf":"07:00.0","vslot":0}"#, "vslot 0"),
            (r#"{"bdf":"07:00.0","vslot":32}"#, "1 to 31"),
            (r#"{"name":"a,b"}"#, "no ','"),
            (
                r#"{"bdf":"07:00.0","rdm_policy":"invalid"}"#,
                "strict or relaxed",
            ),
            (r#"{"bdf":"07:0x1f.0"}"#, "0000:07:1f.0"),
            (r#""07:00.0,permissive=yes""#, "atoi"),
        ] {
            let arg: SpecArg = serde_json::from_str(bad).unwrap();
            let e = arg.to_spec().expect_err(bad);
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
        let e =
            serde_json::from_str::<SpecArg>(r#"{"bdf":"07:00.0","permisive":true}"#).unwrap_err();
        assert!(e.to_string().contains("permisive"), "{e}");
        assert!(serde_json::from_str::<SpecArg>("7").is_err());
    }

    #[test]
    fn bdf_forms() {
        use crate::bdf::Bdf;
        let b: Bdf = "07:00.0".parse().unwrap();
        assert_eq!(
            (b.to_string(), b.xenstore_form()),
            ("0000:07:00.0".into(), "0000-07-00-0".into())
        );
        assert_eq!(Bdf::from_xenstore_form("0000-07-00-0"), Ok(b));
        assert!(Bdf::from_xenstore_form("0000-07-20-0").is_err());
        assert!(Bdf::parse("07:00.*").is_err());
        assert!(Bdf::parse("07:00.0,").is_err());
        assert_eq!(serde_json::to_string(&b).unwrap(), r#""0000:07:00.0""#);
        assert_eq!(serde_json::from_str::<Bdf>(r#""0000:07:00.0""#).unwrap(), b);
        assert!(serde_json::from_str::<Bdf>(r#""07: 00.0""#).is_err());
        // xlu_pci_parse_bdf(): no end pointer, trailing text ignored.
        assert_eq!(
            BdfPattern::parse_xl("07:00.1junk").unwrap().to_string(),
            "0000:07:00.1"
        );
        assert!(Bdf::new(0, 7, 0x20, 0).is_err());
        let mut all = [
            Bdf::parse("0001:00:00.0").unwrap(),
            Bdf::parse("00:1f.7").unwrap(),
            b,
        ];
        all.sort();
        assert_eq!(all[0].to_string(), "0000:00:1f.7");
    }
}
