//! PCI addresses (BDF: domain, bus, device, function) as Xen 4.17's xl reads
//! and writes them.
//!
//! This module owns the text forms of a host PCI address:
//!
//! - [`Bdf`]: one function of one device. Its `Display` is the canonical
//!   sysfs form `0000:07:00.0` (libxl's `PCI_BDF`, lowercase hex);
//!   [`Bdf::xenstore_form`] is the dash form `0000-07-00-0` that libxl uses
//!   for its records under `/libxl/pci/` (`PCI_BDF_XSPATH`).
//! - [`BdfPattern`]: a BDF whose function may be `*` ([`Func::All`]), as in
//!   xl's `BB:DD.*` (libxl's `vfunc_mask = LIBXL_PCI_FUNC_ALL`).
//!
//! Two grammars are offered. The strict one ([`Bdf::parse`],
//! [`BdfPattern::parse`], also behind `FromStr` and serde) accepts exactly
//! the form of the `xl-pci-configuration(5)` man page, `[DDDD:]BB:DD.F`
//! with plain hex digits, and nothing xl would read differently from how it
//! looks. The xl one ([`BdfPattern::parse_xl`]) mirrors
//! `xlu_pci_parse_bdf()` (static `parse_bdf()` in
//! `tools/libs/util/libxlu_pci.c`), sloppy forms included: `sscanf("%x")`
//! skips blanks, takes a sign and a `0x` prefix, and truncates to 32 bits;
//! trailing text is ignored. When the strict grammar refuses a text that xl
//! accepts, the error says what xl would read.
//!
//! ```
//! use xenpci::bdf::{Bdf, BdfPattern, Func};
//!
//! let bdf: Bdf = "07:00.0".parse().unwrap();
//! assert_eq!(bdf.to_string(), "0000:07:00.0");
//! assert_eq!(bdf.xenstore_form(), "0000-07-00-0");
//!
//! let all = BdfPattern::parse("0000:07:00.*").unwrap();
//! assert_eq!(all.func, Func::All);
//! assert!(all.matches(&"07:00.3".parse().unwrap()));
//!
//! // xl reads "07: 1f.3" as 07:1f.3; the strict grammar refuses it and says so.
//! assert_eq!(BdfPattern::parse_xl("07: 1f.3").unwrap().to_string(), "0000:07:1f.3");
//! assert!(Bdf::parse("07: 1f.3").unwrap_err().to_string().contains("0000:07:1f.3"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, Metadata, Schema, SchemaObject, StringValidation};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod scan;

pub(crate) use scan::{c_isspace, c_str, scan_plain, scan_xl, Scanf, XlBdfError};

/// Highest PCI domain xl accepts (`parse_bdf()`: `domain > 0xffff` fails).
pub const MAX_DOMAIN: u16 = 0xffff;
/// Highest device (slot) number xl accepts (`parse_bdf()`: `dev > 0x1f` fails).
pub const MAX_DEV: u8 = 0x1f;
/// Highest function number xl accepts (`parse_bdf()`: `func > 7` fails).
pub const MAX_FUNC: u8 = 7;

/// JSON Schema pattern of the strict [`Bdf`] text.
const BDF_PATTERN: &str = r"^([0-9a-fA-F]{1,4}:)?[0-9a-fA-F]{1,2}:[01]?[0-9a-fA-F]\.[0-7]$";
/// JSON Schema pattern of the strict [`BdfPattern`] text.
const BDF_PATTERN_WILD: &str =
    r"^([0-9a-fA-F]{1,4}:)?[0-9a-fA-F]{1,2}:[01]?[0-9a-fA-F]\.([0-7]|\*)$";

/// Why a text is not a BDF (a PCI spec's error wraps it: `SpecError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BdfError {
    /// Malformed or out of range (xl: `ERROR_INVAL`).
    #[error("{input:?}: invalid BDF: {problem}")]
    Invalid {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// xl's result for this text is undefined (a BDF without the `.` before
    /// the function: `parse_bdf()` reads an uninitialised variable).
    #[error("{input:?}: invalid BDF: {problem}")]
    XlUndefined {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// xl accepts this, but reads it differently from how it looks.
    #[error("{input:?}: {problem}")]
    Refused {
        /// The text given.
        input: String,
        /// What xl would make of it, and what to write instead.
        problem: String,
    },
}

impl BdfError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        match self {
            BdfError::Invalid { input, .. }
            | BdfError::XlUndefined { input, .. }
            | BdfError::Refused { input, .. } => input,
        }
    }
}

/// One PCI function on the host: `DDDD:BB:DD.F`.
///
/// Fields are public for matching and construction in tests; values built by
/// hand outside the ranges xl accepts (`dev <= 0x1f`, `func <= 7`) are
/// caught by [`Bdf::new`], not by the field types. Ordering is by domain,
/// bus, device, function, which is also the order of the canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI domain (segment). libxl keeps it in an `int` but xl accepts at most `0xffff`.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, at most `0x1f`.
    pub dev: u8,
    /// Function number, at most 7.
    pub func: u8,
}

/// The function part of a [`BdfPattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Func {
    /// One function, 0 to 7.
    One(u8),
    /// `*`: every function the device has (libxl's `LIBXL_PCI_FUNC_ALL`).
    All,
}

/// A BDF whose function may be `*`: what xl's `parse_bdf()` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BdfPattern {
    /// PCI domain (segment), at most `0xffff`.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, at most `0x1f`.
    pub dev: u8,
    /// One function or all of them.
    pub func: Func,
}

impl Bdf {
    /// Builds a BDF, checking the ranges xl accepts.
    pub fn new(domain: u16, bus: u8, dev: u8, func: u8) -> Result<Bdf, BdfError> {
        let bdf = Bdf {
            domain,
            bus,
            dev,
            func,
        };
        if dev > MAX_DEV || func > MAX_FUNC {
            return Err(BdfError::Invalid {
                input: format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"),
                problem: "device must be at most 1f and function at most 7".into(),
            });
        }
        Ok(bdf)
    }

    /// Parses the strict form `[DDDD:]BB:DD.F` (plain hex digits, no `*`).
    ///
    /// A text xl would accept but read differently from how it looks
    /// (`07: 1f.3`, `07:0x1f.0`, `07:00.0junk`) is refused with a message
    /// giving what xl would read.
    pub fn parse(input: &str) -> Result<Bdf, BdfError> {
        let pattern = BdfPattern::parse(input)?;
        pattern.bdf().ok_or_else(|| BdfError::Invalid {
            input: input.to_string(),
            problem: "function `*` (all functions) is not allowed here: give one function 0-7"
                .into(),
        })
    }

    /// The dash form libxl uses for its records under `/libxl/pci/`:
    /// `0000-07-00-0` (`PCI_BDF_XSPATH` in `libxl_pci.c`).
    pub fn xenstore_form(&self) -> String {
        format!(
            "{:04x}-{:02x}-{:02x}-{:x}",
            self.domain, self.bus, self.dev, self.func
        )
    }

    /// Reads the dash form back, as `name2bdf()` in `libxl_pci.c` does for the
    /// entries of `/libxl/pci/`; only the exact form libxl writes is taken.
    pub fn from_xenstore_form(input: &str) -> Result<Bdf, BdfError> {
        let bad = || BdfError::Invalid {
            input: input.to_string(),
            problem: "expected libxl's xenstore form DDDD-BB-DD-F".into(),
        };
        let parts: Vec<&str> = input.split('-').collect();
        let [d, b, s, f] = parts.as_slice() else {
            return Err(bad());
        };
        let field = |t: &str, width: usize| -> Option<u32> {
            if t.len() == width && t.bytes().all(|c| c.is_ascii_hexdigit()) {
                u32::from_str_radix(t, 16).ok()
            } else {
                None
            }
        };
        match (field(d, 4), field(b, 2), field(s, 2), field(f, 1)) {
            (Some(d), Some(b), Some(s), Some(f)) if s <= MAX_DEV.into() && f <= MAX_FUNC.into() => {
                // Widths checked above: the casts cannot truncate.
                Ok(Bdf {
                    domain: d as u16,
                    bus: b as u8,
                    dev: s as u8,
                    func: f as u8,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Bdf {
    /// The canonical sysfs form `0000:07:00.0` (libxl's `PCI_BDF`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.dev, self.func
        )
    }
}

impl FromStr for Bdf {
    type Err = BdfError;
    fn from_str(s: &str) -> Result<Bdf, BdfError> {
        Bdf::parse(s)
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Func::One(n) => write!(f, "{n:x}"),
            Func::All => f.write_str("*"),
        }
    }
}

impl From<Bdf> for BdfPattern {
    fn from(b: Bdf) -> BdfPattern {
        BdfPattern {
            domain: b.domain,
            bus: b.bus,
            dev: b.dev,
            func: Func::One(b.func),
        }
    }
}

impl BdfPattern {
    /// Parses the strict form `[DDDD:]BB:DD.F` where `F` is 0-7 or `*`.
    ///
    /// Digits: domain 1-4, bus 1-2, device 1-2 (at most `1f`), function 1.
    /// Anything else is refused; when xl would still accept the text, the
    /// message says what xl would read and what to write instead.
    pub fn parse(input: &str) -> Result<BdfPattern, BdfError> {
        if let Some(p) = scan_plain(input.as_bytes()) {
            if p.1 == input.len() {
                return Ok(p.0);
            }
        }
        Err(refusal(input))
    }

    /// Parses exactly as xl 4.17's `xlu_pci_parse_bdf()` does (used by
    /// `xl pci-assignable-add` and `-remove`): xl's sloppy forms are taken
    /// and text after the function is ignored.
    ///
    /// The input is read as a C string: it ends at the first NUL byte.
    pub fn parse_xl(input: &str) -> Result<BdfPattern, BdfError> {
        match scan_xl(c_str(input).as_bytes(), 0) {
            Ok((p, _)) => Ok(p),
            Err(XlBdfError::Invalid(problem)) => Err(BdfError::Invalid {
                input: input.to_string(),
                problem,
            }),
            Err(XlBdfError::Undefined(problem)) => Err(BdfError::XlUndefined {
                input: input.to_string(),
                problem,
            }),
        }
    }

    /// The single function this pattern names, or `None` for `*`.
    pub fn bdf(&self) -> Option<Bdf> {
        match self.func {
            Func::One(func) => Some(Bdf {
                domain: self.domain,
                bus: self.bus,
                dev: self.dev,
                func,
            }),
            Func::All => None,
        }
    }

    /// Whether `bdf` is this function, or a function of this device for `*`.
    pub fn matches(&self, bdf: &Bdf) -> bool {
        self.domain == bdf.domain
            && self.bus == bdf.bus
            && self.dev == bdf.dev
            && match self.func {
                Func::One(f) => f == bdf.func,
                Func::All => true,
            }
    }
}

impl fmt::Display for BdfPattern {
    /// Canonical form: `0000:07:00.0` or `0000:07:00.*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain, self.bus, self.dev, self.func
        )
    }
}

impl FromStr for BdfPattern {
    type Err = BdfError;
    fn from_str(s: &str) -> Result<BdfPattern, BdfError> {
        BdfPattern::parse(s)
    }
}

/// The error for a text the strict grammar refuses: if xl would accept it,
/// say what xl reads and what to write; otherwise give xl's own problem.
fn refusal(input: &str) -> BdfError {
    if input.contains('\0') {
        return BdfError::Refused {
            input: input.to_string(),
            problem: "contains a NUL byte; xl stops reading there".into(),
        };
    }
    match scan_xl(input.as_bytes(), 0) {
        Ok((p, _)) => BdfError::Refused {
            input: input.to_string(),
            problem: format!("xl would read this as {p}; write {p}"),
        },
        Err(XlBdfError::Invalid(problem)) | Err(XlBdfError::Undefined(problem)) => {
            BdfError::Invalid {
                input: input.to_string(),
                problem,
            }
        }
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bdf, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        Bdf::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for BdfPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BdfPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BdfPattern, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        BdfPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A string schema with a pattern and a description.
fn string_schema(pattern: &str, description: &str) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        string: Some(Box::new(StringValidation {
            pattern: Some(pattern.to_string()),
            ..Default::default()
        })),
        metadata: Some(Box::new(Metadata {
            description: Some(description.to_string()),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

impl JsonSchema for Bdf {
    fn schema_name() -> String {
        "Bdf".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            BDF_PATTERN,
            "A host PCI function, [DDDD:]BB:DD.F in hex (domain 0000 when omitted), e.g. 0000:07:00.0.",
        )
    }
}

impl JsonSchema for BdfPattern {
    fn schema_name() -> String {
        "BdfPattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            BDF_PATTERN_WILD,
            "A host PCI function, [DDDD:]BB:DD.F in hex; F may be * for every function of the device.",
        )
    }
}
