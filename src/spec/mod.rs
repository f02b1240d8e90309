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
//! The grammar as xl reads it is in `xl`, the refusals of
//! [`PciSpec::parse_strict`] in `strict`, the argument forms in `arg`, and
//! what libxl makes of a spec in `libxl`; this file keeps the types they
//! share.
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

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bdf::{BdfError, BdfPattern};

mod arg;
mod libxl;
mod list;
mod name;
mod strict;
mod xl;

pub use arg::{PciSpecObject, SpecArg, VslotArg};
pub use libxl::{xl_oracle_json, LibxlPciView, PciDefaults, ResolvedPci, LIBXL_PCI_FUNC_ALL};
pub use list::{pattern_list, spec_list, ListError};
pub use name::{check_name, MAX_NAME_LEN};

/// libxl's `ERROR_INVAL`: what xl returns for almost every malformed spec.
pub const ERROR_INVAL: i32 = -6;
/// libxl's `ERROR_FAIL`: what xl returns for an unknown `rdm_policy`
/// (`libxl__enum_from_string()` fails with it).
pub const ERROR_FAIL: i32 = -3;
/// Highest vslot xl accepts (`parse_vslot()`: `val > 0x1f` fails).
pub const MAX_VSLOT: u8 = 0x1f;

/// A PCI spec or BDF that xl refuses, or that the strict grammar refuses.
///
/// Every variant keeps the offending input. [`SpecError::xl_rc`] gives the
/// code xl's parser returns for it, when xl refuses it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The BDF is malformed, out of range, read by xl in a way its text
    /// does not show, or one whose reading by xl is undefined
    /// ([`BdfError::XlUndefined`]).
    #[error(transparent)]
    Bdf(#[from] BdfError),
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
            SpecError::Bdf(e) => e.input(),
            SpecError::BadVslot { input, .. }
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
    /// undefined ([`BdfError::XlUndefined`]).
    pub fn xl_rc(&self) -> Option<i32> {
        match self {
            SpecError::Refused { .. }
            | SpecError::Bdf(BdfError::Refused { .. } | BdfError::XlUndefined { .. }) => None,
            SpecError::BadRdmPolicy { .. } => Some(ERROR_FAIL),
            _ => Some(ERROR_INVAL),
        }
    }

    /// Whether xl's behaviour on this input is undefined (see
    /// [`BdfError::XlUndefined`]); an oracle comparison must skip it.
    pub fn is_xl_undefined(&self) -> bool {
        matches!(self, SpecError::Bdf(BdfError::XlUndefined { .. }))
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

#[cfg(test)]
mod tests {
    use super::*;

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
